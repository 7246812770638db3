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
//! setsockopt(SO_BROADCAST), getsockopt(SO_BROADCAST); then sendto, and one
//! recvfrom in each listener thread; close. This file is the self-contained
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
use std::sync::Barrier;

use anyhow::Result;
use nix::errno::Errno;
use serde_json::json;

use crate::cli::parse_seconds;
use crate::error::Failure;
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::Narrator;
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

/// What one listener's recvfrom() brought.
enum Heard {
    Datagram { from: SocketAddr, data: Vec<u8> },
    Nothing,
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
    //    --step pauses one call at a time) and hands the step to the
    //    thread. Two barriers keep the narration in the order of events:
    //    every thread is about to call recvfrom() before the sender sends,
    //    and none reports what it got before the sendto() line is complete.
    let ready = Barrier::new(listeners.len() + 1);
    let sent = Barrier::new(listeners.len() + 1);
    let (outcome, heard) = std::thread::scope(|scope| {
        let waiting: Vec<_> = listeners
            .iter()
            .enumerate()
            .map(|(index, fd)| {
                let number = index + 1;
                let raw = fd.as_raw_fd();
                let step = nar.blocking(
                    "recvfrom",
                    format!("fd {raw}, {}, 0", bytes(DATAGRAM_MAX)),
                    format!("listener {number} waits for a datagram"),
                );
                let barriers = (&ready, &sent);
                scope.spawn(move || {
                    crate::stop::block_stop_signals_in_this_thread();
                    listen_once(nar, step, number, raw, barriers)
                })
            })
            .collect();
        ready.wait();
        // If the send fails, the listeners wait until SO_RCVTIMEO ends;
        // the error is reported once everything is closed.
        let outcome = send_datagram(nar, &sender, target, args.message.as_bytes());
        sent.wait();
        let heard: Vec<Heard> = waiting
            .into_iter()
            .map(|thread| thread.join().unwrap_or(Heard::Nothing))
            .collect();
        (outcome, heard)
    });

    // 4. The verdict, from what each recvfrom() returned.
    let received = heard
        .iter()
        .filter(|heard| matches!(heard, Heard::Datagram { data, .. } if data == args.message.as_bytes()))
        .count();
    let senders: Vec<String> = heard
        .iter()
        .filter_map(|heard| match heard {
            Heard::Datagram { from, .. } => Some(from.to_string()),
            Heard::Nothing => None,
        })
        .collect();
    nar.info(
        "all_received",
        json!({ "listeners": listeners.len(), "received": received, "from": senders }),
        format!(
            "{received} of {} listeners received the same datagram",
            listeners.len()
        ),
    );
    if received == listeners.len() {
        nar.note("One sendto() and every listener got its own copy: the kernel delivered the broadcast to each socket bound to the port. Unicast would have reached just one of them.");
    }

    let step = nar.call("close", format!("fd {}", sender.as_raw_fd()));
    step.check(nix::unistd::close(sender), |_| "0".into())?;
    for fd in listeners {
        let step = nar.call("close", format!("fd {}", fd.as_raw_fd()));
        step.check(nix::unistd::close(fd), |_| "0".into())?;
    }
    outcome?;
    if received < heard.len() {
        return Err(Failure::new(
            format!(
                "only {received} of {} listeners received the broadcast",
                heard.len()
            ),
            Some("a firewall may drop broadcasts on lo; `ip route show table local type broadcast` lists what this machine treats as broadcast"),
        )
        .into());
    }
    Ok(())
}

/// One listener thread: let the sender go, then recvfrom() and say what came.
fn listen_once(
    nar: &Narrator,
    step: crate::narrate::Step<'_>,
    number: usize,
    fd: RawFd,
    (ready, sent): (&Barrier, &Barrier),
) -> Heard {
    ready.wait();
    let result = receive(fd);
    sent.wait();
    match result {
        Ok((data, from)) => {
            // Three threads answer at once: say whose answer each line is.
            step.ok_value(
                data.len() as i64,
                format!(
                    "listener {number} (fd {fd}): {} from {from}: {}",
                    bytes(data.len()),
                    show_bytes(&data, SHOW_CHARS)
                ),
            );
            nar.info(
                "datagram",
                json!({ "listener": number, "fd": fd, "from": from.to_string(), "bytes": data.len(), "text": show_bytes(&data, SHOW_CHARS) }),
                format!("listener {number} got its own copy"),
            );
            Heard::Datagram { from, data }
        }
        Err(errno) => {
            step.fail(errno);
            if errno == Errno::EAGAIN {
                nar.note("EAGAIN after SO_RCVTIMEO: no datagram arrived in time. UDP never tells the sender; the datagram is simply not there.");
            }
            Heard::Nothing
        }
    }
}
