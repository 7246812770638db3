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
//! recvfrom in each listener thread; close.
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

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Barrier;
use std::time::Duration;

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{
    bind, getsockopt, recvfrom, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags,
    SockFlag, SockType, SockaddrIn, SockaddrStorage,
};
use nix::sys::time::{TimeVal, TimeValLike};
use serde_json::json;

use crate::cli::parse_seconds;
use crate::error::Failure;
use crate::kernel;
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{errno_name, Fact, Narrator};
use crate::sys;

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

/// socket, SO_REUSEADDR, (SO_RCVTIMEO), bind 0.0.0.0:port, getsockname.
fn open_listener(
    nar: &Narrator,
    port: u16,
    timeout: Option<f64>,
) -> Result<(OwnedFd, SocketAddrV4)> {
    let step = nar.call("socket", "AF_INET, SOCK_DGRAM, 0");
    let fd = step.check(
        socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let raw = fd.as_raw_fd();

    // Two sockets may bind one port only if both ask for it first.
    let step = nar.call(
        "setsockopt",
        format!("fd {raw}, SOL_SOCKET, SO_REUSEADDR, 1"),
    );
    step.check(setsockopt(&fd, sockopt::ReuseAddr, &true), |_| "0".into())?;

    if let Some(seconds) = timeout {
        // A lost datagram must not hang the demo: recvfrom() gives up
        // with EAGAIN after this long.
        let step = nar.call(
            "setsockopt",
            format!("fd {raw}, SOL_SOCKET, SO_RCVTIMEO, {seconds} s"),
        );
        let micros = (seconds * 1e6) as i64;
        step.check(
            setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::microseconds(micros)),
            |_| "0".into(),
        )?;
    }

    // 0.0.0.0, not 127.0.0.1: a socket bound to one unicast address only
    // receives datagrams sent to that address, never a broadcast.
    let wanted = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    let step = nar.call("bind", format!("fd {raw}, {wanted}"));
    if let Err(errno) = bind(raw, &SockaddrIn::from(wanted)) {
        step.fail(errno);
        return Err(bind_failure(errno, wanted).into());
    }
    step.ok("0");
    let step = nar.call("getsockname", format!("fd {raw}"));
    let bound = step.check(sys::local_addr(raw), |addr| addr.to_string())?;
    let SocketAddr::V4(bound) = bound else {
        return Err(Errno::EAFNOSUPPORT.into());
    };
    Ok((fd, bound))
}

/// Explain a failed bind() of a listener.
fn bind_failure(errno: Errno, wanted: SocketAddrV4) -> Failure {
    let port = wanted.port();
    match errno {
        Errno::EADDRINUSE => {
            let holders = kernel::broadcast::udp_sockets_on_port(port)
                .map(|found| found.len())
                .unwrap_or(0);
            Failure::with_hint(
                format!("cannot bind {wanted}: UDP port {port} is in use by {holders} socket(s) that did not set SO_REUSEADDR (Address already in use)"),
                format!("sharing a port needs SO_REUSEADDR on every socket: stop the other program, or choose another port; `ss -lunp 'sport = :{port}'` shows who holds it"),
            )
        }
        Errno::EACCES => Failure::new(
            format!("cannot bind {wanted}: permission denied; low ports need root or CAP_NET_BIND_SERVICE"),
            Some("use a port of 1024 or above, such as the default 9999"),
        ),
        other => Failure::new(
            format!("cannot bind {wanted}: {} ({})", errno_name(other), other.desc()),
            None,
        ),
    }
}

/// recvfrom() into a buffer big enough for any datagram.
fn receive(fd: RawFd) -> nix::Result<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let (count, from) = recvfrom::<SockaddrStorage>(fd, &mut buf)?;
    buf.truncate(count);
    let from = from
        .as_ref()
        .and_then(sys::to_std)
        .ok_or(Errno::EAFNOSUPPORT)?;
    Ok((buf, from))
}

/// socket, and SO_BROADCAST unless `--no-broadcast-flag` asked us not to.
fn open_sender(nar: &Narrator, broadcast_flag: bool) -> Result<OwnedFd> {
    let step = nar.call("socket", "AF_INET, SOCK_DGRAM, 0");
    let fd = step.check(
        socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let raw = fd.as_raw_fd();
    if broadcast_flag {
        let step = nar.call(
            "setsockopt",
            format!("fd {raw}, SOL_SOCKET, SO_BROADCAST, 1"),
        );
        step.check(setsockopt(&fd, sockopt::Broadcast, &true), |_| "0".into())?;
        nar.note("SO_BROADCAST is the socket's permission to send to a broadcast address. It is off by default, so that no program floods a network by mistake.");
    } else {
        nar.note("--no-broadcast-flag: SO_BROADCAST stays off, so the kernel will refuse to send to a broadcast address.");
    }
    // Read the option back: the kernel's word, not our intention.
    let step = nar.call("getsockopt", format!("fd {raw}, SOL_SOCKET, SO_BROADCAST"));
    let on = step.check(getsockopt(&fd, sockopt::Broadcast), |on| {
        u8::from(*on).to_string()
    })?;
    nar.kernel(Fact::new(
        format!("fd {raw}"),
        "so_broadcast",
        json!(on),
        "getsockopt",
        format!(
            "fd {raw} has SO_BROADCAST {}",
            if on { "on" } else { "off" }
        ),
    ));
    Ok(fd)
}

/// sendto() one datagram. EACCES (no SO_BROADCAST) becomes a Failure with
/// the explanation; Ok(None) means a stop interrupted the call.
fn send_datagram(
    nar: &Narrator,
    fd: &OwnedFd,
    target: SocketAddrV4,
    message: &[u8],
) -> Result<Option<usize>> {
    let raw = fd.as_raw_fd();
    let step = nar.call(
        "sendto",
        format!(
            "fd {raw}, {}: {}, 0, {target}",
            bytes(message.len()),
            show_bytes(message, SHOW_CHARS)
        ),
    );
    match sendto(raw, message, &SockaddrIn::from(target), MsgFlags::empty()) {
        Ok(count) => {
            step.ok_value(count as i64, bytes(count));
            nar.count("datagrams_out", 1);
            Ok(Some(count))
        }
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            Ok(None)
        }
        Err(Errno::EACCES) => {
            step.fail(Errno::EACCES);
            nar.note("EACCES: the target is a broadcast address and this socket lacks SO_BROADCAST, so the kernel refused to send. Nothing left this machine.");
            Err(Failure::with_hint(
                format!("sendto {target} was refused: EACCES (Permission denied), because SO_BROADCAST is off"),
                "this is the kernel's guard against accidental broadcasts; run again without --no-broadcast-flag",
            )
            .into())
        }
        Err(Errno::EMSGSIZE) => {
            step.fail(Errno::EMSGSIZE);
            Err(Failure::new(
                format!("sendto {target} failed: the message of {} is too long for one UDP datagram (EMSGSIZE)", bytes(message.len())),
                Some("a UDP datagram over IPv4 holds at most 65507 bytes"),
            )
            .into())
        }
        Err(errno) => {
            step.fail(errno);
            Err(Failure::new(
                format!("sendto {target} failed: {} ({})", errno_name(errno), errno.desc()),
                Some("`ip route get ADDRESS` shows whether and how this machine can reach the address"),
            )
            .into())
        }
    }
}

/// Read the kernel's list of broadcast addresses and say whether `ip` is
/// one of them. Returns None when the list could not be read.
fn is_kernel_broadcast(nar: &Narrator, ip: Ipv4Addr) -> Option<bool> {
    let subject = ip.to_string();
    match kernel::broadcast::broadcast_addresses() {
        Ok(found) => {
            let listed: Vec<String> = found.iter().map(Ipv4Addr::to_string).collect();
            let is_broadcast = found.contains(&ip) || ip == Ipv4Addr::BROADCAST;
            let verdict = if is_broadcast { "is" } else { "is not" };
            nar.kernel(Fact::new(
                &subject,
                "broadcast_addresses",
                json!({ "addresses": listed, "target": subject, "is_broadcast": is_broadcast }),
                kernel::broadcast::PROC_NET_FIB_TRIE,
                format!(
                    "this machine's broadcast addresses are {}; {subject} {verdict} one of them",
                    listed.join(", ")
                ),
            ));
            Some(is_broadcast)
        }
        Err(err) => {
            nar.kernel(Fact::unavailable(
                subject,
                "broadcast_addresses",
                kernel::broadcast::PROC_NET_FIB_TRIE,
                err,
            ));
            None
        }
    }
}

/// How many UDP sockets the kernel has bound to `port` (/proc/net/udp).
fn show_sockets_on_port(nar: &Narrator, port: u16) {
    let subject = format!("UDP port {port}");
    match kernel::broadcast::udp_sockets_on_port(port) {
        Ok(found) => {
            let inodes: Vec<u64> = found.iter().map(|entry| entry.inode).collect();
            nar.kernel(Fact::new(
                &subject,
                "udp_sockets_on_port",
                json!({ "port": port, "sockets": found.len(), "inodes": inodes }),
                kernel::broadcast::PROC_NET_UDP,
                format!("{} UDP sockets are bound to port {port}", found.len()),
            ));
        }
        Err(err) => nar.kernel(Fact::unavailable(
            subject,
            "udp_sockets_on_port",
            kernel::broadcast::PROC_NET_UDP,
            err,
        )),
    }
}

/// Sleep between datagrams; false if a stop interrupted the sleep.
fn pause(nar: &Narrator, seconds: f64) -> bool {
    let step = nar.blocking(
        "nanosleep",
        format!("{seconds} s"),
        "--interval: waiting before the next datagram",
    );
    match sys::nanosleep(Duration::from_secs_f64(seconds)) {
        Ok(()) => {
            step.ok("0");
            true
        }
        Err(errno) => {
            step.fail(errno);
            false
        }
    }
}
