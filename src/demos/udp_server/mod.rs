//! # udp-server: one socket, many senders, no connections
//!
//! The UDP echo server of the course, and what TCP had that UDP has not.
//! There is no listen() and no accept(): after bind() the one socket
//! receives datagrams from anyone, and each datagram arrives with its
//! sender's address, which is where the reply goes. A datagram arrives
//! whole or not at all: one that does not fit the buffer is cut, and the
//! rest is gone (the kernel says so with MSG_TRUNC). When the receive
//! buffer is full, new datagrams are dropped, and only the kernel's
//! counters tell.
//!
//! System calls, in order: socket(SOCK_DGRAM), getsockopt(SO_RCVBUF),
//! setsockopt(SO_RCVBUF) and getsockopt again with --rcvbuf,
//! setsockopt(SO_RXQ_OVFL), bind, getsockname, then recvmsg and sendto in a
//! loop (nanosleep between them with --slow), close.
//!
//! Try it:
//!
//! ```text
//! netlab udp-server --port 9999                      # this terminal
//! nc -u 127.0.0.1 9999                               # another: type lines
//! netlab udp-server --port 9999 --bufsize 8          # long lines are cut
//! netlab udp-server --port 9999 --rcvbuf 4096 --slow 20
//! netlab udp-client --port 9999 --count 500 --size 200   # and watch the drops
//! ```
//!
//! Lesson: `netlab lesson udp`.

use std::collections::HashSet;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    bind, getsockopt, recvmsg, sendto, setsockopt, socket, sockopt, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, SockaddrStorage,
};
use serde_json::json;

use crate::error::Failure;
use crate::kernel::{self, snmp};
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{errno_name, Fact, Narrator};
use crate::stop;
use crate::sys;

mod drops;
use drops::{report_drops, report_drops_when_due, udp_counters};

/// How much of each datagram the narration shows.
const SHOW_CHARS: usize = 60;

/// New senders announced one by one; after that many, no longer tracked.
const MAX_TRACKED_PEERS: usize = 1024;

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The local address to bind: 0.0.0.0 receives on every interface,
    /// 127.0.0.1 only from this machine, :: or ::1 for IPv6.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,

    /// The port to bind; 0 lets the kernel pick a free one.
    #[arg(long, short, default_value_t = 8888)]
    pub port: u16,

    /// How many bytes each recvmsg() can take. A longer datagram is cut to
    /// this size and the rest is lost (the kernel reports MSG_TRUNC).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub bufsize: u32,

    /// Answer every datagram with this text (and a newline) instead of echoing it.
    #[arg(long, value_name = "TEXT")]
    pub reply: Option<String>,

    /// Ask for this receive buffer size (SO_RCVBUF). Linux doubles the value
    /// and enforces a minimum; the size the kernel really gives is read back.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=1_073_741_823))]
    pub rcvbuf: Option<u32>,

    /// Sleep this many milliseconds before each recvmsg(), so that a flood
    /// fills the receive buffer and the kernel starts dropping datagrams.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub slow: u64,

    /// Exit after receiving this many datagrams.
    #[arg(long, value_name = "N")]
    pub max_datagrams: Option<u64>,
}

/// What the server has seen so far.
#[derive(Default)]
struct Tally {
    datagrams: u64,
    truncated: u64,
    empty: u64,
    /// The socket's drop counter, as the last SO_RXQ_OVFL message gave it.
    drops_seen: u64,
    /// The drop count in the last loss report.
    drops_reported: u64,
    last_report: Option<Instant>,
    /// When drops were first seen that no report has shown yet.
    unreported_since: Option<Instant>,
    peers: HashSet<SocketAddr>,
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "udp-server",
        "udp",
        "A UDP echo server: one socket, no connections; every datagram arrives with its sender's address.",
    );
    let wanted = sys::resolve(&args.host, args.port)?;
    // The namespace's UDP counters before we start, to show what grew.
    // IPv6 traffic is counted apart from IPv4's, in /proc/net/snmp6.
    let family = snmp::Family::of(&wanted);
    let counters_before = udp_counters(nar, "now", family);

    let sock = open_socket(nar, args, wanted)?;
    let fd = sock.as_raw_fd();
    // Where the kernel lists the socket: /proc/net/udp, or udp6 for IPv6.
    let table = kernel::udp::table_of(&wanted);
    let mut buf = vec![0u8; args.bufsize as usize];
    let mut tally = Tally::default();

    while stop::requested().is_none() && args.max_datagrams.is_none_or(|max| tally.datagrams < max)
    {
        if args.slow > 0 && !slow_down(nar, &sock, args.slow, table) {
            break;
        }
        let Some((length, peer)) = receive(nar, fd, &mut buf, &mut tally)? else {
            continue;
        };
        let kept = length.min(buf.len());
        let reply = match &args.reply {
            Some(text) => format!("{text}\n").into_bytes(),
            None => buf[..kept].to_vec(),
        };
        send_reply(nar, fd, &reply, peer, tally.datagrams == 1);
        report_drops_when_due(
            nar,
            &sock,
            table,
            &mut tally,
            counters_before.as_ref(),
            family,
        );
    }

    // Before close: the socket's own drop counter only exists while it does.
    report_drops(
        nar,
        &sock,
        table,
        &mut tally,
        counters_before.as_ref(),
        family,
    );
    nar.info(
        "datagrams",
        json!({
            "received": tally.datagrams,
            "truncated": tally.truncated,
            "empty": tally.empty,
            "dropped": tally.drops_reported,
            "senders": tally.peers.len(),
        }),
        format!(
            "received {} datagram(s) from {} sender(s): {} cut short, {} empty; {} dropped by the kernel",
            tally.datagrams,
            tally.peers.len(),
            tally.truncated,
            tally.empty,
            tally.drops_reported
        ),
    );
    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(sock), |_| "0".into())?;
    nar.note("The socket is closed. No peer is told: there was no connection to end, so there is no FIN and no TIME_WAIT.");
    Ok(())
}

/// socket, SO_RCVBUF, SO_RXQ_OVFL, bind, getsockname.
fn open_socket(nar: &Narrator, args: &Args, wanted: SocketAddr) -> Result<OwnedFd> {
    // 1. socket(SOCK_DGRAM): a datagram endpoint.
    let step = nar.call(
        "socket",
        format!("{}, SOCK_DGRAM, 0", sys::family_name(&wanted)),
    );
    let sock = step.check(
        socket(
            sys::family_of(&wanted),
            SockType::Datagram,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let fd = sock.as_raw_fd();
    nar.fd_table();
    nar.note("SOCK_DGRAM makes a UDP socket: every send is one message, a datagram, that arrives whole or not at all. There is no byte stream and no connection.");

    // 2. The receive buffer: where datagrams wait until we read them, and
    //    the place where they are lost when it is full.
    read_rcvbuf(nar, &sock, None);
    if let Some(asked) = args.rcvbuf {
        let step = nar.call(
            "setsockopt",
            format!("fd {fd}, SOL_SOCKET, SO_RCVBUF, {asked}"),
        );
        step.check(
            setsockopt(&sock, sockopt::RcvBuf, &(asked as usize)),
            |_| "0".into(),
        )?;
        read_rcvbuf(nar, &sock, Some(asked));
    }

    // 3. SO_RXQ_OVFL: the kernel attaches its drop count to what we receive.
    let step = nar.call("setsockopt", format!("fd {fd}, SOL_SOCKET, SO_RXQ_OVFL, 1"));
    step.check(setsockopt(&sock, sockopt::RxqOvfl, &1), |_| "0".into())?;
    nar.note("SO_RXQ_OVFL asks the kernel to attach to each datagram we receive how many datagrams it has dropped for this socket so far. Without it, loss is silent.");

    // 4. bind(): the address and port senders will write to. No
    //    SO_REUSEADDR: UDP has no TIME_WAIT to wait out.
    let step = nar.call("bind", format!("fd {fd}, {wanted}"));
    if let Err(errno) = bind(fd, &sys::to_kernel(wanted)) {
        step.fail(errno);
        return Err(bind_failure(errno, wanted).into());
    }
    step.ok("0");

    let step = nar.call("getsockname", format!("fd {fd}"));
    let bound = step.check(sys::local_addr(fd), |addr| addr.to_string())?;
    if args.port == 0 {
        nar.note(
            "Port 0 asks the kernel for any free port; getsockname() tells us which one it chose.",
        );
    }
    nar.note("That is all a UDP server needs: no listen() and no accept(). From now on the kernel queues every datagram sent to this port, from anyone, in this one socket.");

    let target = sys::connectable(bound);
    nar.startup(
        "listening",
        json!({ "addr": bound.to_string(), "port": bound.port() }),
        format!(
            "listening on {bound} (UDP); try: nc -u {} {}",
            target.ip(),
            target.port()
        ),
    );
    let others: Vec<String> = sys::other_local_endpoints(bound)
        .iter()
        .map(SocketAddr::to_string)
        .collect();
    if !others.is_empty() {
        nar.startup(
            "reachable_at",
            json!(others),
            format!("other machines can send to: {}", others.join(", ")),
        );
    }
    Ok(sock)
}

/// getsockopt(SO_RCVBUF), and what it says about the size we asked for.
fn read_rcvbuf(nar: &Narrator, sock: &OwnedFd, asked: Option<u32>) {
    let fd = sock.as_raw_fd();
    let step = nar.call("getsockopt", format!("fd {fd}, SOL_SOCKET, SO_RCVBUF"));
    let Ok(granted) = step.check(getsockopt(sock, sockopt::RcvBuf), |size| bytes(*size)) else {
        return;
    };
    let rmem_max = kernel::socket_limits::rmem_max().ok();
    let text = match asked {
        None => format!(
            "fd {fd} may hold {} of datagrams waiting to be read",
            bytes(granted)
        ),
        Some(asked) => format!(
            "fd {fd} asked for {}, the kernel gave {} (net.core.rmem_max is {})",
            bytes(asked as usize),
            bytes(granted),
            rmem_max.map_or_else(|| "unreadable".to_string(), |max| max.to_string())
        ),
    };
    nar.kernel(Fact::new(
        format!("fd {fd}"),
        "rcvbuf",
        json!({ "asked": asked, "granted": granted, "rmem_max": rmem_max }),
        "getsockopt(SO_RCVBUF)",
        text,
    ));
    let Some(asked) = asked.map(|asked| asked as usize) else {
        nar.note("The receive buffer is counted in the kernel's memory per datagram, headers and bookkeeping included, so far fewer small datagrams fit in it than its size in bytes suggests.");
        return;
    };
    if granted == asked * 2 {
        nar.note("Linux doubled the value we set, to leave room for its own bookkeeping, and getsockopt() reports the doubled size.");
    } else if granted > asked * 2 {
        nar.note("The kernel raised the value to its minimum receive buffer: a buffer too small for one datagram would be useless.");
    } else {
        nar.note("The kernel capped the value at net.core.rmem_max (before doubling it): an unprivileged program cannot ask for more. SO_RCVBUFFORCE, for root, can.");
    }
}

/// Explain a failed bind() with what the kernel's UDP table says.
fn bind_failure(errno: Errno, wanted: SocketAddr) -> Failure {
    let port = wanted.port();
    match errno {
        Errno::EADDRINUSE => {
            let holders = kernel::udp::udp_sockets_on_port(port).unwrap_or_default();
            let message = if holders.is_empty() {
                format!("cannot bind {wanted}: port {port} is in use (Address already in use)")
            } else {
                format!(
                    "cannot bind {wanted}: {} UDP socket(s) already bound to port {port} ({}) (Address already in use)",
                    holders.len(),
                    holders.iter().map(|entry| entry.local.to_string()).collect::<Vec<_>>().join(", ")
                )
            };
            Failure::with_hint(
                message,
                format!("stop the other program or choose another port (--port 0 lets the kernel pick one); `ss -lunp 'sport = :{port}'` shows who holds it"),
            )
        }
        other => Failure::of_bind(other, wanted, 9999),
    }
}

/// --slow: sleep without reading, then show how full the receive queue is.
/// Returns false if a stop came.
fn slow_down(nar: &Narrator, sock: &OwnedFd, millis: u64, table: &'static str) -> bool {
    let step = nar.blocking(
        "nanosleep",
        format!("{millis} ms"),
        "--slow: not reading, so datagrams pile up in the receive buffer",
    );
    match sys::nanosleep(Duration::from_millis(millis)) {
        Ok(()) => step.ok("0"),
        Err(errno) => {
            step.fail(errno);
            if stop::requested().is_some() {
                return false;
            }
        }
    }
    if let Ok(entry) = kernel::udp::udp_socket_of(sock.as_fd()) {
        nar.kernel(Fact::new(
            format!("fd {}", sock.as_raw_fd()),
            "receive_queue",
            json!({ "bytes": entry.rx_queue, "drops": entry.drops }),
            table,
            format!(
                "{} of the receive buffer in use; {} datagram(s) dropped so far",
                bytes(entry.rx_queue as usize),
                entry.drops
            ),
        ));
    }
    true
}

/// recvmsg(): one datagram, its sender, its real length, the drop count.
/// None when interrupted (the loop checks for a stop) or when there is
/// nothing to answer.
fn receive(
    nar: &Narrator,
    fd: RawFd,
    buf: &mut [u8],
    tally: &mut Tally,
) -> Result<Option<(usize, SocketAddr)>> {
    let capacity = buf.len();
    let step = nar.blocking(
        "recvmsg",
        format!("fd {fd}, {}, MSG_TRUNC", bytes(capacity)),
        "waiting for a datagram from anyone",
    );
    let mut iov = [IoSliceMut::new(buf)];
    let mut control = nix::cmsg_space!(u32);
    // MSG_TRUNC as an input flag: return the datagram's real length even
    // when it is longer than the buffer (Linux, for UDP).
    let received =
        recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut control), MsgFlags::MSG_TRUNC);
    let message = match received {
        Ok(message) => message,
        // A signal (Ctrl-C, a closed output): the loop checks why.
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            return Ok(None);
        }
        // Short of memory for a moment: not a reason to stop serving.
        Err(errno @ (Errno::ENOMEM | Errno::ENOBUFS)) => {
            step.fail(errno);
            nar.warning(
                format!(
                    "recvmsg() failed with {}; the server goes on",
                    errno_name(errno)
                ),
                None,
            );
            let _ = sys::nanosleep(Duration::from_millis(100));
            return Ok(None);
        }
        Err(errno) => {
            step.fail(errno);
            return Err(errno).context("recvmsg() failed");
        }
    };
    let length = message.bytes;
    let cut = message.flags.contains(MsgFlags::MSG_TRUNC);
    let peer = message.address.as_ref().and_then(sys::to_std);
    // The kernel only attaches the counter once something was dropped.
    let mut new_drops = String::new();
    if let Ok(cmsgs) = message.cmsgs() {
        for cmsg in cmsgs {
            if let ControlMessageOwned::RxqOvfl(count) = cmsg {
                let count = u64::from(count);
                if count > tally.drops_seen {
                    nar.count("dropped", count - tally.drops_seen);
                    new_drops = format!(" [SO_RXQ_OVFL: {count} dropped before it]");
                    tally.drops_seen = count;
                }
            }
        }
    }
    let kept = length.min(capacity);
    let data = &iov[0][..kept];
    let from = peer.map_or_else(|| "an unknown sender".to_string(), |peer| peer.to_string());
    let result = if cut {
        format!(
            "{} from {from}, only {kept} kept (MSG_TRUNC): {}",
            bytes(length),
            show_bytes(data, SHOW_CHARS)
        )
    } else if length == 0 {
        format!("0 bytes from {from}: an empty datagram")
    } else {
        format!(
            "{} from {from}: {}",
            bytes(length),
            show_bytes(data, SHOW_CHARS)
        )
    };
    step.ok_value(length as i64, result + &new_drops);
    tally.datagrams += 1;
    nar.count("datagrams", 1);
    nar.count("bytes_in", kept as u64);

    let Some(peer) = peer else {
        nar.warning(
            "the datagram came without a sender address we understand; it is not answered",
            None,
        );
        return Ok(None);
    };
    if tally.datagrams == 1 {
        nar.note("recvmsg() returned one whole datagram and the address of whoever sent it. There was no accept() and there is no connection: the next datagram may come from someone else.");
    }
    if cut {
        tally.truncated += 1;
        nar.kernel(Fact::new(
            format!("fd {fd}"),
            "datagram_truncated",
            json!({ "length": length, "kept": kept, "lost": length - kept }),
            "recvmsg msg_flags",
            format!(
                "MSG_TRUNC: the datagram had {}; {kept} fit in the buffer, the other {} are gone",
                bytes(length),
                length - kept
            ),
        ));
        nar.note("A datagram is read in one piece or not at all: what did not fit is thrown away, not kept for the next call as TCP would. Only MSG_TRUNC and the real length tell us.");
    }
    if length == 0 {
        tally.empty += 1;
        nar.note("An empty datagram is a real message with no payload. For UDP, 0 does not mean end of stream: there is no stream to end.");
    }
    if tally.peers.len() < MAX_TRACKED_PEERS && tally.peers.insert(peer) {
        nar.info(
            "sender",
            json!({ "peer": peer.to_string() }),
            format!("a new sender: {peer}"),
        );
    }
    Ok(Some((length, peer)))
}

/// sendto(): the reply goes to the address the datagram came from.
fn send_reply(nar: &Narrator, fd: RawFd, reply: &[u8], peer: SocketAddr, first: bool) {
    let step = nar.call(
        "sendto",
        format!(
            "fd {fd}, {}: {}, {peer}",
            bytes(reply.len()),
            show_bytes(reply, SHOW_CHARS)
        ),
    );
    match sendto(fd, reply, &sys::to_kernel(peer), MsgFlags::empty()) {
        Ok(count) => {
            step.ok_value(count as i64, bytes(count));
            nar.count("bytes_out", count as u64);
            if first {
                nar.note("sendto() names the destination on every call: this socket is tied to no client. If the reply is lost on the way, nobody is told; UDP neither acknowledges nor sends again.");
            }
        }
        Err(errno) => {
            step.fail(errno);
            if errno != Errno::EINTR {
                nar.warning(
                    format!(
                        "sendto({peer}) failed with {}; the server goes on",
                        errno_name(errno)
                    ),
                    None,
                );
            }
        }
    }
}
