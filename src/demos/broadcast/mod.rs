//! # broadcast: one datagram, every listener receives it
//!
//! UDP can send one datagram to a *broadcast address*, the last address of
//! a subnet, and the kernel delivers a copy to every socket bound to that
//! port on the subnet: one sender, many receivers, no connection. This
//! module runs the whole idea on one machine (`netlab broadcast`): several
//! listeners share one port, one sender sends once to 127.255.255.255, and
//! each listener gets its own copy. `send` and `listen` do each half alone,
//! for a real network of machines.
//!
//! System calls, in order: for each listener socket, setsockopt
//! (SO_REUSEADDR, SO_RCVTIMEO), bind, getsockname; for the sender socket,
//! setsockopt(SO_BROADCAST), getsockopt(SO_BROADCAST); then sendto,
//! getsockname (the sender's address, which tells our datagram from one
//! another program broadcast to the same port), and recvfrom in each
//! listener thread, again after a datagram from another sender; close. This file is the self-contained
//! demo; `send.rs` and `listen.rs` are the two halves, and `sockets.rs`
//! holds the narrated socket steps all three share.
//!
//! Try it:
//!
//! ```text
//! netlab broadcast                          # 3 listeners, 1 sender, this machine only
//! netlab broadcast listen --port 9999       # in two terminals
//! netlab broadcast send --port 9999         # in a third: both listeners print it
//! netlab broadcast send --no-broadcast-flag # the kernel refuses: EACCES
//! ```
//!
//! Lesson: `netlab lesson broadcast`.

mod listen;
mod send;
mod sockets;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::errno::Errno;
use serde_json::json;

use crate::cli::parse_seconds;
use crate::error::Failure;
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::Narrator;
use crate::sys;
use sockets::{
    is_kernel_broadcast, open_listener, open_sender, receive, send_datagram, show_sockets_on_port,
};

/// The default target: the broadcast address of lo's 127.0.0.0/8, so a
/// broadcast never leaves this machine unless the user names a network.
pub const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// The largest UDP datagram over IPv4 is 65507 bytes; this buffer holds any.
const DATAGRAM_MAX: usize = 65_536;

/// How much of each datagram the narration shows.
const SHOW_CHARS: usize = 60;

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Without a subcommand, the whole idea runs on this machine.
    #[command(subcommand)]
    pub mode: Option<Mode>,

    /// How many listeners to start (threads, each with its own socket).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub listeners: u32,

    /// The port all listeners share; 0 lets the kernel pick one for the first
    /// listener, and the others bind the same one.
    #[arg(long, short, default_value_t = 9999)]
    pub port: u16,

    /// The text of the one datagram the sender broadcasts.
    #[arg(long, short, value_name = "TEXT", default_value = "hello, everyone")]
    pub message: String,

    /// How long each listener waits for the datagram (SO_RCVTIMEO), from 0.1 to 60.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = parse_timeout)]
    pub timeout: f64,
}

/// `--timeout`: never 0, which SO_RCVTIMEO would take as "wait for ever",
/// and short enough that Ctrl-C is never kept waiting for long.
fn parse_timeout(text: &str) -> Result<f64, String> {
    match parse_seconds(text) {
        Ok(secs) if (0.1..=60.0).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "`{text}` is not a number of seconds from 0.1 to 60"
        )),
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Mode {
    /// Send datagrams to a broadcast address (127.255.255.255 unless --to or --iface).
    #[command(after_help = "Example:\n  netlab broadcast send --port 9999 --count 3 --interval 1")]
    Send(send::SendArgs),

    /// Receive broadcasts on a port that other listeners may share (SO_REUSEADDR).
    #[command(after_help = "Example:\n  netlab broadcast listen --port 9999")]
    Listen(listen::ListenArgs),
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    match &args.mode {
        Some(Mode::Send(send_args)) => send::run(nar, send_args),
        Some(Mode::Listen(listen_args)) => listen::run(nar, listen_args),
        None => run_all(nar, args),
    }
}

/// The self-contained demo: N listeners, one sender, one datagram.
fn run_all(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "broadcast",
        "broadcast",
        "Several listeners share one UDP port; one datagram sent to the broadcast address 127.255.255.255 reaches every one of them.",
    );

    // 1. The listeners: each its own socket, all on the same port. The
    //    first one fixes the port (the kernel's choice with --port 0).
    let mut listeners: Vec<OwnedFd> = Vec::new();
    let mut port = args.port;
    for _ in 0..args.listeners {
        let (fd, bound) = open_listener(nar, port, Some(args.timeout))?;
        port = bound.port();
        listeners.push(fd);
    }
    nar.note("Every listener set SO_REUSEADDR before bind(), so the kernel let them all bind the same port. For ordinary datagrams one of them would get each one; a broadcast is copied to all.");
    show_sockets_on_port(nar, port);
    nar.info(
        "listeners",
        json!({ "port": port, "count": listeners.len() }),
        format!("{} listeners share UDP port {port}", listeners.len()),
    );

    // 2. The sender: an ordinary UDP socket that is allowed to broadcast.
    is_kernel_broadcast(nar, LOOPBACK_BROADCAST);
    let sender = open_sender(nar, true)?;
    let target = SocketAddrV4::new(LOOPBACK_BROADCAST, port);

    // 3. Each listener waits in recvfrom() in a thread of its own, like
    //    separate programs would. The main thread announces each wait (so
    //    --step pauses one call at a time) and keeps the step. The threads
    //    only collect what they receive; the main thread tells it, listener
    //    by listener, once sendto() and getsockname() are complete, so no
    //    listener's result is printed where it would look like sendto's.
    //    Two barriers order the events: every thread is about to call
    //    recvfrom() before the sender sends, and no thread judges a
    //    datagram before our sender's address is known.
    let ready = Barrier::new(listeners.len() + 1);
    let sent = Barrier::new(listeners.len() + 1);
    let our_sender: OnceLock<SocketAddr> = OnceLock::new();
    let timeout = Duration::from_secs_f64(args.timeout);
    let (outcome, steps, heard) = std::thread::scope(|scope| {
        let mut steps = Vec::new();
        let mut waiting = Vec::new();
        for (index, fd) in listeners.iter().enumerate() {
            let raw = fd.as_raw_fd();
            steps.push(nar.blocking(
                "recvfrom",
                format!("fd {raw}, {}, 0", bytes(DATAGRAM_MAX)),
                format!("listener {} waits for a datagram", index + 1),
            ));
            let shared = (&ready, &sent, &our_sender);
            waiting.push(scope.spawn(move || {
                crate::stop::block_stop_signals_in_this_thread();
                listen_once(raw, shared, timeout)
            }));
        }
        ready.wait();
        // If the send fails, the listeners wait until SO_RCVTIMEO ends;
        // the error is reported once everything is closed.
        let outcome = send_datagram(nar, &sender, target, args.message.as_bytes());
        if matches!(outcome, Ok(Some(_))) {
            if let Some(local) = sender_address(nar, &sender) {
                let _ = our_sender.set(local);
            }
        }
        sent.wait();
        let heard: Vec<Vec<Received>> = waiting
            .into_iter()
            .map(|thread| thread.join().unwrap_or_default())
            .collect();
        (outcome, steps, heard)
    });

    // 4. What each listener's recvfrom() calls returned, listener by
    //    listener. Only our own datagram counts; one from another program
    //    broadcasting to the same port is shown as such.
    nar.info(
        "listeners_returned",
        json!({ "listeners": listeners.len() }),
        "sendto() is complete. The listeners' recvfrom() calls announced above returned, each in its own thread:",
    );
    let mut received = 0;
    let mut others = 0;
    let mut senders: Vec<String> = Vec::new();
    for (index, (step, results)) in steps.into_iter().zip(&heard).enumerate() {
        let number = index + 1;
        let fd = listeners[index].as_raw_fd();
        let mut announced = Some(step);
        for result in results {
            // The first result belongs to the call announced before the
            // send; a listener that got another sender's datagram called
            // recvfrom() again, and each further call is a step of its own.
            let step = announced.take().unwrap_or_else(|| {
                nar.call(
                    "recvfrom",
                    format!(
                        "fd {fd}, {}, 0 (listener {number}, again)",
                        bytes(DATAGRAM_MAX)
                    ),
                )
            });
            match result {
                Received::Datagram { from, data, ours } => {
                    step.ok_value(
                        data.len() as i64,
                        format!(
                            "listener {number} (fd {fd}): {} from {from}: {}",
                            bytes(data.len()),
                            show_bytes(data, SHOW_CHARS)
                        ),
                    );
                    let value = json!({ "listener": number, "fd": fd, "from": from.to_string(), "bytes": data.len(), "text": show_bytes(data, SHOW_CHARS) });
                    if *ours {
                        nar.info(
                            "datagram",
                            value,
                            format!("listener {number} got its own copy"),
                        );
                        senders.push(from.to_string());
                        if data == args.message.as_bytes() {
                            received += 1;
                        }
                    } else {
                        others += 1;
                        nar.info(
                            "other_sender",
                            value,
                            format!("listener {number}: this datagram came from {from}, not from our sender, so it is not counted"),
                        );
                        if others == 1 {
                            nar.note("Another program broadcasts to the same port: every socket bound to the port gets its datagrams too. The source address, compared with what getsockname() said of our sender, tells them apart, and the listener calls recvfrom() again.");
                        }
                    }
                }
                Received::Failed(errno) => {
                    step.fail(*errno);
                    if *errno == Errno::EAGAIN {
                        nar.note("EAGAIN after SO_RCVTIMEO: no datagram arrived in time. UDP never tells the sender; the datagram is simply not there.");
                    }
                }
            }
        }
        if let Some(step) = announced {
            // The thread never reported (it panicked): say so, not guess.
            step.fail_code("unknown", "the listener thread ended without a result");
        }
    }
    nar.info(
        "all_received",
        json!({ "listeners": listeners.len(), "received": received, "from": senders, "other_senders": others }),
        format!(
            "{received} of {} listeners received the same datagram",
            listeners.len()
        ),
    );
    if received == listeners.len() {
        nar.note("One sendto() and every listener got its own copy: the kernel delivered the broadcast to each socket bound to the port. Unicast would have reached just one of them.");
    }

    let listeners_count = listeners.len();
    let step = nar.call("close", format!("fd {}", sender.as_raw_fd()));
    step.check(nix::unistd::close(sender), |_| "0".into())?;
    for fd in listeners {
        let step = nar.call("close", format!("fd {}", fd.as_raw_fd()));
        step.check(nix::unistd::close(fd), |_| "0".into())?;
    }
    outcome?;
    if received < listeners_count {
        return Err(Failure::new(
            format!(
                "only {received} of {listeners_count} listeners received the broadcast"
            ),
            Some("a firewall may drop broadcasts on lo; `ip route show table local type broadcast` lists what this machine treats as broadcast"),
        )
        .into());
    }
    Ok(())
}

/// getsockname() on the sender after its first sendto(): the address the
/// kernel bound it to, which the listeners see as the datagram's source.
fn sender_address(nar: &Narrator, sender: &OwnedFd) -> Option<SocketAddr> {
    let step = nar.call("getsockname", format!("fd {}", sender.as_raw_fd()));
    let local = step
        .check(sys::local_addr(sender.as_raw_fd()), |addr| addr.to_string())
        .ok()?;
    nar.note("sendto() bound our sender to an ephemeral port: a datagram from that port is ours, one from any other address was sent by another program.");
    Some(local)
}

/// Is a datagram from `from` one our sender sent? The sender is bound to
/// 0.0.0.0 (any address of this machine) and an ephemeral port, which no
/// other socket here holds: the port decides, and the address too when
/// the sender was bound to one.
fn is_ours(from: SocketAddr, ours: SocketAddr) -> bool {
    from.port() == ours.port() && (ours.ip().is_unspecified() || ours.ip() == from.ip())
}

/// What one recvfrom() of a listener brought.
enum Received {
    Datagram {
        from: SocketAddr,
        data: Vec<u8>,
        ours: bool,
    },
    Failed(Errno),
}

/// One listener thread: let the sender go, then recvfrom() until our
/// sender's datagram comes (or SO_RCVTIMEO ends a wait). A datagram from
/// another sender is kept, marked, and the listener waits again, unless
/// `timeout` has passed since the first wait began. The thread narrates nothing: the main thread
/// tells the results in order.
fn listen_once(
    fd: RawFd,
    (ready, sent, our_sender): (&Barrier, &Barrier, &OnceLock<SocketAddr>),
    timeout: Duration,
) -> Vec<Received> {
    ready.wait();
    let deadline = Instant::now() + timeout;
    let mut results = Vec::new();
    let mut first = true;
    loop {
        let result = receive(fd);
        if first {
            // Judge nothing before our sender's address is known.
            sent.wait();
            first = false;
        }
        let (data, from) = match result {
            Ok(datagram) => datagram,
            Err(errno) => {
                results.push(Received::Failed(errno));
                return results;
            }
        };
        let ours = our_sender.get().is_some_and(|&local| is_ours(from, local));
        results.push(Received::Datagram { from, data, ours });
        if ours || our_sender.get().is_none() || Instant::now() >= deadline {
            return results;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_is_ours_when_it_comes_from_our_senders_port() {
        let ours: SocketAddr = "0.0.0.0:40000".parse().unwrap();
        assert!(is_ours("127.0.0.1:40000".parse().unwrap(), ours));
        assert!(!is_ours("127.0.0.1:40001".parse().unwrap(), ours));
        let bound: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        assert!(is_ours("10.0.0.1:40000".parse().unwrap(), bound));
        assert!(!is_ours("10.0.0.2:40000".parse().unwrap(), bound));
    }
}
