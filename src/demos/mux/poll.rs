//! # poll-demo: an echo server for many clients with poll()
//!
//! poll() replaces select's three fixed-size bit sets with one array of
//! `struct pollfd { int fd; short events; short revents; }`: for each fd,
//! the program says what it waits for in `events`, and the kernel answers in
//! `revents`. Both are bit masks built with `|`: POLLIN 0x001 (data to read),
//! POLLOUT 0x004 (room to write), POLLERR 0x008, POLLHUP 0x010 (the peer
//! hung up), POLLNVAL 0x020 (the fd is not open). The last three are always
//! reported, asked for or not. There is no FD_SETSIZE: the array is as long
//! as the program wants. But like select(), the whole array is copied into
//! the kernel and checked on every call, so each call costs as much as the
//! number of clients, ready or not.
//!
//! The kernel answers with fd numbers, so the program keeps its own map
//! from fd to client, "registers" a client by adding it to the array, and
//! "unregisters" it by leaving it out.
//!
//! System calls: getrlimit/setrlimit(RLIMIT_NOFILE), socket, bind, listen,
//! poll, accept, fcntl, recv, send, close.
//!
//! Try it:
//!
//! ```text
//! netlab poll-demo --port 8888     # this terminal
//! nc 127.0.0.1 8888                # two or three more
//! ```
//!
//! Lesson: `netlab lesson io-multiplexing`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::json;

use super::conn::{ConnTable, Ending, Flushed, Received};
use super::{accept_client, close_listener, open_listener, raise_fd_limit, Accepted, ServerArgs};
use crate::narrate::Narrator;
use crate::stop;

/// The flags of this demo.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What a client is watched for while it keeps up: data to read. POLLERR
/// is reported anyway; asking for it says in the code that we handle it.
const READ_EVENTS: PollFlags = PollFlags::POLLIN.union(PollFlags::POLLERR);
/// ...and while its output is backed up: room to write.
const WRITE_EVENTS: PollFlags = PollFlags::POLLOUT.union(PollFlags::POLLERR);

/// How many entries of the array the narration lists.
const SHOW_FDS: usize = 12;

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "poll-demo",
        "io-multiplexing",
        "An echo server for many clients in one thread: poll() takes an array of fds with event bits and fills in the bits that are ready.",
    );
    raise_fd_limit(nar)?;
    let listen_fd = open_listener(nar, &args.server)?;
    nar.info(
        "poll_register",
        json!({ "fd": listen_fd.as_raw_fd(), "events": READ_EVENTS.bits(), "bits": poll_bits(READ_EVENTS) }),
        format!("register fd {} (the listener) for {}", listen_fd.as_raw_fd(), poll_bits(READ_EVENTS)),
    );
    nar.note("For a listening socket, POLLIN means a finished handshake waits in the accept queue: accept() will not block.");

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
    // (fd, revents) of the entries poll() marked, copied out so the array,
    // which borrows the sockets, is gone before a client is closed.
    let mut ready: Vec<(RawFd, PollFlags)> = Vec::new();
    let mut wakeups = 0u64;

    while stop::requested().is_none() {
        ready.clear();
        {
            // The array, built from the fd map: the listener first, then
            // every client with the bits it waits for now. All of it goes
            // into the kernel on every call, however few clients are busy:
            // that is the cost that grows with idle connections.
            let mut pollfds = Vec::with_capacity(clients.len() + 1);
            pollfds.push(PollFd::new(listen_fd, READ_EVENTS));
            for conn in clients.iter() {
                let events = if conn.backed_up() {
                    WRITE_EVENTS
                } else {
                    READ_EVENTS
                };
                pollfds.push(PollFd::new(conn.fd.as_fd(), events));
            }
            let step = nar.blocking_with(
                "poll",
                || {
                    format!(
                        "{}, nfds {}, timeout -1",
                        describe_array(&pollfds),
                        pollfds.len()
                    )
                },
                "until an fd in the array has one of its events",
            );
            let count = match poll(&mut pollfds, PollTimeout::NONE) {
                Ok(count) => count,
                Err(Errno::EINTR) => {
                    step.fail(Errno::EINTR);
                    continue;
                }
                Err(errno) => {
                    step.fail(errno);
                    return Err(errno).context("poll() failed");
                }
            };
            // The program's half of the cost: scan the whole array for the
            // entries whose revents the kernel filled in.
            ready.extend(pollfds.iter().filter_map(|entry| {
                let revents = entry.revents().filter(|bits| !bits.is_empty())?;
                Some((entry.as_fd().as_raw_fd(), revents))
            }));
            step.ok_with(i64::from(count), || describe_ready(&ready));
        }
        wakeups += 1;
        nar.count("wakeups", 1);

        for &(fd, revents) in &ready {
            if fd == listen_fd.as_raw_fd() {
                accept_all(nar, args, listen_fd, clients)?;
            } else {
                serve(nar, clients, &mut buf, fd, revents);
            }
        }
        // After this wakeup's accepts and closes.
        nar.gauge("connections_open", clients.len() as u64);
    }
    nar.info(
        "wakeups",
        json!({ "poll": wakeups }),
        format!("poll returned {wakeups} times with something ready"),
    );
    Ok(())
}

/// Accept every waiting client and "register" it: from the next call on,
/// it has an entry in the array.
fn accept_all(
    nar: &Narrator,
    args: &Args,
    listen_fd: BorrowedFd<'_>,
    clients: &mut ConnTable,
) -> Result<()> {
    loop {
        match accept_client(nar, listen_fd, &args.server)? {
            Accepted::Client(conn) => {
                if nar.showing() {
                    let fd = conn.raw_fd();
                    nar.info(
                        "poll_register",
                        json!({ "fd": fd, "events": READ_EVENTS.bits(), "bits": poll_bits(READ_EVENTS) }),
                        format!("register fd {fd} for {}", poll_bits(READ_EVENTS)),
                    );
                }
                clients.insert(conn);
            }
            Accepted::QueueEmpty | Accepted::Failed => return Ok(()),
        }
    }
}

/// One client's entry came back with `revents` set.
fn serve(nar: &Narrator, clients: &mut ConnTable, buf: &mut [u8], fd: RawFd, revents: PollFlags) {
    if revents.contains(PollFlags::POLLNVAL) {
        // POLLNVAL: the fd is not open. A bug in the fd map, never the
        // client's doing: say so and forget the entry.
        nar.warning(
            format!("poll() reported POLLNVAL for fd {fd}: it is not an open fd; unregistering it"),
            None,
        );
        return unregister(nar, clients, fd, Ending::Failed(Errno::EBADF));
    }
    let Some(conn) = clients.get_mut(fd) else {
        return;
    };
    // POLLHUP and POLLERR: let recv() or send() tell what happened (0 for
    // a FIN, ECONNRESET for a reset), then close.
    let trouble = revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP);
    if conn.backed_up() {
        if revents.contains(PollFlags::POLLOUT) || trouble {
            match conn.flush(nar) {
                Flushed::AllSent => watch_for(nar, fd, READ_EVENTS),
                Flushed::StillBackedUp => {}
                Flushed::Gone(ending) => unregister(nar, clients, fd, ending),
            }
        }
        return;
    }
    if revents.contains(PollFlags::POLLIN) || trouble {
        // One recv() per report: poll is level-triggered, so whatever is
        // left is reported again by the next call.
        match conn.receive_and_echo(nar, buf) {
            Received::Echoed(_) if conn.backed_up() => watch_for(nar, fd, WRITE_EVENTS),
            Received::Echoed(_) | Received::Drained | Received::Interrupted => {}
            Received::Gone(ending) => unregister(nar, clients, fd, ending),
        }
    }
}

/// The client's entry changes its events from the next call on.
fn watch_for(nar: &Narrator, fd: RawFd, events: PollFlags) {
    if nar.showing() {
        nar.info(
            "poll_modify",
            json!({ "fd": fd, "events": events.bits(), "bits": poll_bits(events) }),
            format!("fd {fd} now waits for {}", poll_bits(events)),
        );
    }
}

/// Leave the client out of the array from now on, and close it.
fn unregister(nar: &Narrator, clients: &mut ConnTable, fd: RawFd, ending: Ending) {
    let Some(conn) = clients.remove(fd) else {
        return;
    };
    conn.close(nar, ending);
    if nar.showing() {
        nar.info(
            "poll_unregister",
            json!({ "fd": fd }),
            format!("unregister fd {fd}: it is no longer in the array"),
        );
    }
}

/// "POLLIN 0x001 | POLLERR 0x008 = 0x009": each bit by name and value, and
/// the number they make together, as the kernel sees it.
pub fn poll_bits(flags: PollFlags) -> String {
    const NAMES: [(PollFlags, &str); 6] = [
        (PollFlags::POLLIN, "POLLIN"),
        (PollFlags::POLLPRI, "POLLPRI"),
        (PollFlags::POLLOUT, "POLLOUT"),
        (PollFlags::POLLERR, "POLLERR"),
        (PollFlags::POLLHUP, "POLLHUP"),
        (PollFlags::POLLNVAL, "POLLNVAL"),
    ];
    let parts: Vec<String> = NAMES
        .iter()
        .filter(|(bit, _)| flags.contains(*bit))
        .map(|(bit, name)| format!("{name} {:#05x}", bit.bits()))
        .collect();
    // Bits this table does not name (POLLRDNORM...) still count in the total.
    format!("{} = {:#05x}", parts.join(" | "), flags.bits())
}

/// "[fd 3 POLLIN|POLLERR, fd 5 POLLIN|POLLERR, ... (+990)]".
fn describe_array(pollfds: &[PollFd<'_>]) -> String {
    let mut shown: Vec<String> = pollfds
        .iter()
        .take(SHOW_FDS)
        .map(|entry| {
            format!(
                "{{fd {}, events {:#05x}}}",
                entry.as_fd().as_raw_fd(),
                entry.events().bits()
            )
        })
        .collect();
    if pollfds.len() > SHOW_FDS {
        shown.push(format!("... (+{} more)", pollfds.len() - SHOW_FDS));
    }
    format!("[{}]", shown.join(", "))
}

/// "2 ready: fd 5 revents POLLIN 0x001 = 0x001, ...".
fn describe_ready(ready: &[(RawFd, PollFlags)]) -> String {
    let list: Vec<String> = ready
        .iter()
        .take(SHOW_FDS)
        .map(|(fd, revents)| format!("fd {fd} revents {}", poll_bits(*revents)))
        .collect();
    let more = ready.len().saturating_sub(SHOW_FDS);
    let more = if more > 0 {
        format!(", ... (+{more} more)")
    } else {
        String::new()
    };
    format!("{} ready: {}{more}", ready.len(), list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_named_with_their_values_and_sum() {
        assert_eq!(
            poll_bits(READ_EVENTS),
            "POLLIN 0x001 | POLLERR 0x008 = 0x009"
        );
        assert_eq!(
            poll_bits(WRITE_EVENTS),
            "POLLOUT 0x004 | POLLERR 0x008 = 0x00c"
        );
        assert_eq!(
            poll_bits(PollFlags::POLLIN | PollFlags::POLLHUP),
            "POLLIN 0x001 | POLLHUP 0x010 = 0x011"
        );
    }
}
