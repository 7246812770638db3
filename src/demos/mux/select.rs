//! # select-demo: an echo server for many clients with select()
//!
//! select() is the oldest answer to "which of my sockets can I use without
//! waiting?". The program fills three bit sets, one bit per fd number: the
//! fds to watch for reading (rlist), for writing (wlist) and for exceptional
//! conditions (xlist). select() copies the sets into the kernel, sleeps until
//! at least one fd is ready (or the timeout passes), and copies them back
//! with only the ready bits left set. So the program rebuilds the sets before
//! every call, and both it and the kernel scan every fd up to the highest.
//!
//! The sets have a fixed size, FD_SETSIZE (1024) bits: an fd of 1024 or more
//! cannot be watched at all. This demo checks every new client against that
//! limit, and refuses (closes) one it cannot watch, instead of corrupting
//! memory as C would or panicking as nix's FdSet would.
//!
//! System calls: getrlimit/setrlimit(RLIMIT_NOFILE), socket, bind, listen,
//! select, accept, fcntl, recv, send, close.
//!
//! Try it:
//!
//! ```text
//! netlab select-demo --port 8888 --timeout 5    # this terminal
//! nc 127.0.0.1 8888                             # two or three more
//! ```
//!
//! Lesson: `netlab lesson io-multiplexing`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::select::{select, FdSet};
use nix::sys::socket::{recv, MsgFlags};
use nix::sys::time::{TimeVal, TimeValLike};
use serde_json::json;

use super::conn::{ConnTable, Ending, Flushed, Received};
use super::{accept_client, close_listener, open_listener, raise_fd_limit, Accepted, ServerArgs};
use crate::cli::parse_seconds;
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::Narrator;
use crate::stop;

/// The number of bits in each fd set: fds 0 to 1023.
pub const FD_SETSIZE: RawFd = libc::FD_SETSIZE as RawFd;

/// The flags of this demo.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,

    /// select()'s timeout: return after this many seconds even when no
    /// socket is ready (0 polls without waiting). Without it, select() waits
    /// for as long as it takes.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
}

/// Which fds came back ready from one select() call.
#[derive(Default)]
struct Ready {
    readable: Vec<RawFd>,
    writable: Vec<RawFd>,
    exceptional: Vec<RawFd>,
}

impl Ready {
    fn clear(&mut self) {
        self.readable.clear();
        self.writable.clear();
        self.exceptional.clear();
    }
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "select-demo",
        "io-multiplexing",
        "An echo server for many clients in one thread: select() says which sockets are ready, from three fd sets rebuilt before every call.",
    );
    raise_fd_limit(nar)?;
    let listen_fd = open_listener(nar, &args.server)?;
    nar.note("Every socket in the loop below is non-blocking, and the loop calls recv(), send() or accept() only on the fds select() reported: no call can wait, so one slow client cannot stall the others.");

    let mut clients = ConnTable::new();
    let result = event_loop(nar, args, listen_fd.as_fd(), &mut clients);
    clients.close_all(nar);
    close_listener(nar, listen_fd)?;
    result
}

fn event_loop(
    nar: &Narrator,
    args: &Args,
    listen_fd: BorrowedFd<'_>,
    clients: &mut ConnTable,
) -> Result<()> {
    let mut buf = vec![0u8; args.server.bufsize as usize];
    // Filled after each select(), so the sets (which borrow the sockets) are
    // dropped before a client is closed. Reused: no allocation per call.
    let mut ready = Ready::default();
    let mut wakeups = 0u64;
    let mut refused = 0u64;

    while stop::requested().is_none() {
        ready.clear();
        {
            // Rebuild the three sets: select() overwrote the last ones.
            // rlist: the listener (a new client is "readable") and every
            // client we read from; wlist: clients with unsent bytes, whose
            // reading pauses; xlist: every client (on TCP, urgent data).
            let mut rlist = FdSet::new();
            let mut wlist = FdSet::new();
            let mut xlist = FdSet::new();
            rlist.insert(listen_fd);
            for conn in clients.iter() {
                if conn.backed_up() {
                    wlist.insert(conn.fd.as_fd());
                } else {
                    rlist.insert(conn.fd.as_fd());
                }
                xlist.insert(conn.fd.as_fd());
            }
            let mut timeout = args
                .timeout
                .map(|secs| TimeVal::microseconds((secs * 1e6) as i64));
            let step = nar.blocking_with(
                "select",
                || {
                    format!(
                        "nfds {}, rlist {}, wlist {}, xlist {}, timeout {}",
                        highest(&[&rlist, &wlist, &xlist]) + 1,
                        fd_list(&rlist),
                        fd_list(&wlist),
                        fd_list(&xlist),
                        args.timeout
                            .map_or("NULL (wait for ever)".to_string(), |secs| format!(
                                "{secs} s"
                            )),
                    )
                },
                "until a socket in one of the sets is ready",
            );
            let count = match select(None, &mut rlist, &mut wlist, &mut xlist, timeout.as_mut()) {
                Ok(count) => count,
                Err(Errno::EINTR) => {
                    step.fail(Errno::EINTR);
                    continue;
                }
                Err(errno) => {
                    step.fail(errno);
                    return Err(errno).context("select() failed");
                }
            };
            step.ok_with(i64::from(count), || {
                if count == 0 {
                    "0: the timeout expired, nothing is ready".into()
                } else {
                    format!(
                        "{count} ready: rlist {}, wlist {}, xlist {}",
                        fd_list(&rlist),
                        fd_list(&wlist),
                        fd_list(&xlist)
                    )
                }
            });
            if count == 0 {
                nar.note("select() returned 0: the timeout passed with no socket ready. A server can use this to do periodic work between clients.");
                continue;
            }
            // Scanning the sets is the program's half of select's cost: every
            // fd up to the highest is tested, ready or not.
            let limit = highest(&[&rlist, &wlist, &xlist]);
            for (set, list) in [
                (&rlist, &mut ready.readable),
                (&wlist, &mut ready.writable),
                (&xlist, &mut ready.exceptional),
            ] {
                list.extend(set.fds(Some(limit)).map(|fd| fd.as_raw_fd()));
            }
        }
        wakeups += 1;
        nar.count("wakeups", 1);

        for &fd in &ready.writable {
            let Some(conn) = clients.get_mut(fd) else {
                continue;
            };
            match conn.flush(nar) {
                Flushed::AllSent | Flushed::StillBackedUp => {}
                Flushed::Gone(ending) => close_client(nar, clients, fd, ending),
            }
        }
        for &fd in &ready.readable {
            if fd == listen_fd.as_raw_fd() {
                accept_all(nar, args, listen_fd, clients, &mut refused)?;
                continue;
            }
            let Some(conn) = clients.get_mut(fd) else {
                continue;
            };
            if conn.backed_up() {
                continue;
            }
            // One recv() per report: select is level-triggered, so whatever
            // is left is reported again by the next call.
            match conn.receive_and_echo(nar, &mut buf) {
                Received::Echoed(_) | Received::Drained | Received::Interrupted => {}
                Received::Gone(ending) => close_client(nar, clients, fd, ending),
            }
        }
        for &fd in &ready.exceptional {
            if clients.get_mut(fd).is_some() {
                read_urgent_byte(nar, fd);
            }
        }
        // After this wakeup's accepts and closes.
        nar.gauge("connections_open", clients.len() as u64);
    }
    nar.info(
        "wakeups",
        json!({ "select": wakeups }),
        format!("select returned {wakeups} times with something ready"),
    );
    Ok(())
}

/// An fd in xlist: on TCP, the client sent an urgent byte (send with
/// MSG_OOB). It stays "exceptional" until it is read with MSG_OOB, and an
/// unread one would make every select() return at once, so it is read and
/// dropped: an echo server has no use for it.
fn read_urgent_byte(nar: &Narrator, fd: RawFd) {
    let mut byte = [0u8; 1];
    let step = nar.call_with("recv", || format!("fd {fd}, 1 byte, MSG_OOB"));
    match recv(fd, &mut byte, MsgFlags::MSG_OOB) {
        Ok(count) => step.ok_with(count as i64, || {
            format!("{}: {}", bytes(count), show_bytes(&byte[..count], 4))
        }),
        // EINVAL: the urgent byte was already consumed; nothing to do.
        Err(errno) => step.fail(errno),
    }
    nar.note("xlist reported this client: it sent an urgent (out-of-band) byte. It is read with MSG_OOB and dropped; left unread, it would make every select() return at once.");
}

/// Accept every waiting client, refusing those whose fd select cannot watch.
/// `refused` counts the refusals of the whole run.
fn accept_all(
    nar: &Narrator,
    args: &Args,
    listen_fd: BorrowedFd<'_>,
    clients: &mut ConnTable,
    refused: &mut u64,
) -> Result<()> {
    loop {
        match accept_client(nar, listen_fd, &args.server)? {
            Accepted::Client(conn) if conn.raw_fd() >= FD_SETSIZE => {
                // FD_SETSIZE: a set has bits for fds 0..1023 only. Setting
                // bit 1024 would write past the end of the set (C) or panic
                // (nix), so this one client is refused; the rest go on.
                *refused += 1;
                warn_refused(nar, conn.raw_fd(), conn.peer, *refused);
                conn.close(nar, Ending::Refused);
            }
            Accepted::Client(conn) => clients.insert(conn),
            Accepted::QueueEmpty | Accepted::Failed => return Ok(()),
        }
    }
}

/// The warning for a refused client: the first in full, then at 10, 100,
/// 1000... refusals, so that a flood of clients cannot flood the output.
fn warn_refused(nar: &Narrator, fd: RawFd, peer: std::net::SocketAddr, refused: u64) {
    if refused == 1 {
        nar.warning(
            format!("client {peer} got fd {fd}, but select() can only watch fds below FD_SETSIZE ({FD_SETSIZE}); closing this connection"),
            Some("this is select()'s built-in limit: poll-demo and epoll-demo have no such limit"),
        );
    } else if is_power_of_ten(refused) {
        nar.warning(
            format!("{refused} clients refused so far: their fds were at or above FD_SETSIZE ({FD_SETSIZE})"),
            None,
        );
    }
    nar.info(
        "refused",
        json!({ "fd": fd, "peer": peer.to_string(), "fd_setsize": FD_SETSIZE, "refused": refused }),
        format!("client {peer} refused: fd {fd} is beyond FD_SETSIZE"),
    );
}

/// 10, 100, 1000, ...: when a count is worth saying again.
fn is_power_of_ten(count: u64) -> bool {
    count >= 10 && 10u64.pow(count.ilog10()) == count
}

fn close_client(nar: &Narrator, clients: &mut ConnTable, fd: RawFd, ending: Ending) {
    if let Some(conn) = clients.remove(fd) {
        conn.close(nar, ending);
    }
}

/// The highest fd in any of the sets (-1 if all are empty).
fn highest(sets: &[&FdSet<'_>]) -> RawFd {
    sets.iter()
        .filter_map(|set| set.highest())
        .map(|fd| fd.as_raw_fd())
        .max()
        .unwrap_or(-1)
}

/// "[3, 5, 6]": the fds in a set (the first few, when there are many).
fn fd_list(set: &FdSet<'_>) -> String {
    const SHOW_FDS: usize = 16;
    let mut fds: Vec<String> = set
        .fds(None)
        .take(SHOW_FDS)
        .map(|fd| fd.as_raw_fd().to_string())
        .collect();
    let total = set.fds(None).count();
    if total > SHOW_FDS {
        fds.push(format!("... (+{} more)", total - SHOW_FDS));
    }
    format!("[{}]", fds.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_aloud_at_powers_of_ten() {
        let said: Vec<u64> = (1..=20_000).filter(|&n| is_power_of_ten(n)).collect();
        assert_eq!(said, [10, 100, 1000, 10_000]);
    }
}
