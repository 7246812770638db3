//! # chatroom: the course's UDP chat, server and client
//!
//! The project that ends the course, built from everything before it: UDP
//! sockets, a text protocol, a map from names to addresses, and fork() on
//! both sides so that one process can wait on the keyboard while another
//! waits on the network.
//!
//! **The server** binds one UDP socket and keeps a map from each user's
//! name to the address their datagrams come from. It then forks: the child
//! reads lines typed on the server's console and sends each one, as
//! `C admin text`, to the server's own socket (at 127.0.0.1, or ::1 for an
//! IPv6 server, never at 0.0.0.0, which is not a destination), so that
//! admin messages take the same path as everyone's. The parent runs the
//! receive loop. **The client** logs in, then forks: the parent reads the
//! keyboard and sends, the child receives and prints.
//!
//! ## The protocol
//!
//! One message per datagram, UTF-8, no newline, at most 1024 bytes in
//! either direction (`protocol::MAX_DATAGRAM`). A name is 1 to 16 characters, each a letter
//! or digit (of any script), `_` or `-`; `admin` is reserved (in any case).
//!
//! Client to server: `L name` (log in), `C name text` (say `text`; not
//! empty, no control characters), `Q name` (leave), `W name` (who is here:
//! the `/who` extension). The server forwards `C name text` as `MSG name
//! text`, 2 bytes longer, so a `C` may have at most 1022 bytes
//! (`protocol::MAX_CHAT_REQUEST`): the client cuts a long line to that, at a
//! character boundary, and the server refuses a longer `C` (`line too
//! long`) and any datagram over 1024 bytes (`datagram too long`).
//!
//! Server to client:
//! - `OK`: the login worked (sent again if the same address retries it).
//! - `ERR reason`: the request was refused, sent only to the address it
//!   came from. Reasons: `name invalid`, `name reserved`, `name taken`,
//!   `already logged in`, `unknown name`, `not your name` (a `C`, `Q` or
//!   `W` from an address that is not the named user's), `malformed
//!   request`, `empty datagram`, `not UTF-8`, `datagram too long`, `line
//!   too long`. A client that gets `unknown name` or `not your name` back
//!   ends: the server was restarted or dropped it.
//! - `EXIT`: the answer to `Q` (also for a name that already left, so a
//!   client whose first `EXIT` was lost can ask again).
//! - `JOIN name` and `LEAVE name`: sent to everyone else present.
//! - `MSG name text`: a chat line, sent to every user but its sender
//!   (an admin line goes to every user).
//! - `USERS name name ...`: the answer to `W`, names in sorted order.
//! - `DOWN`: the server is stopping (Ctrl-C or SIGTERM); clients end.
//!
//! System calls: socket(SOCK_DGRAM), bind, getsockname, sigaction(SIGCHLD),
//! fork, prctl(PR_SET_PDEATHSIG), getppid, pthread_sigmask (the server
//! blocks SIGCHLD) and ppoll (its receive loop waits with SIGCHLD let in),
//! recvmsg (with MSG_TRUNC) and sendto in loops, pipe, read and write, poll
//! (a reply with a timeout; the keyboard and the receiver's pipe together),
//! kill, waitpid.
//!
//! Try it, each line in its own terminal:
//!
//! ```text
//! netlab chatroom server --port 8888
//! netlab --quiet chatroom client --name ana --server 127.0.0.1:8888
//! netlab --quiet chatroom client --name bo --server 127.0.0.1:8888
//! ```
//!
//! Lesson: `netlab lesson chatroom`.

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::socket::{recvmsg, sendto, MsgFlags, SockaddrStorage};
use nix::unistd::Pid;
use serde_json::json;

use super::children;
use crate::narrate::text::show_bytes;
use crate::narrate::Narrator;

mod client;
mod console;
pub mod protocol;
mod receiver;
mod server;

/// How much of a datagram a narration line shows.
const SHOW_CHARS: usize = 80;

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub role: Role,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Role {
    /// Run the chat server: one UDP socket, a map of users, and a console
    /// process whose lines go to everyone as `admin`.
    #[command(
        after_help = "Lesson: netlab lesson chatroom\n\nExample:\n  netlab chatroom server --host 127.0.0.1 --port 8888"
    )]
    Server {
        /// The local address to bind: 0.0.0.0 receives on every interface,
        /// 127.0.0.1 only from this machine, :: or ::1 for IPv6.
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        /// The port to bind; 0 lets the kernel pick a free one.
        #[arg(long, short, default_value_t = 8888)]
        port: u16,
    },
    /// Join a chat server: log in, then type lines; /who lists the users,
    /// /quit or Ctrl-D or Ctrl-C leaves.
    #[command(
        after_help = "Lesson: netlab lesson chatroom\n\nExample:\n  netlab --quiet chatroom client --name ana --server 127.0.0.1:8888"
    )]
    Client {
        /// Your name: 1 to 16 letters, digits, `_` or `-` (`admin` is reserved).
        #[arg(long)]
        name: String,
        /// The server's address, HOST:PORT ([::1]:8888 for IPv6).
        #[arg(long, default_value = "127.0.0.1:8888")]
        server: String,
        /// How long to wait for each answer (the login's OK, the quit's
        /// EXIT) before asking again, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
        timeout: u64,
        /// How many times to ask before giving up.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        tries: u32,
    },
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    match &args.role {
        Role::Server { host, port } => server::run(nar, host, *port),
        Role::Client {
            name,
            server,
            timeout,
            tries,
        } => client::run(nar, name, server, *timeout, *tries),
    }
}

/// sendto(), narrated: one datagram of the protocol to one address.
/// Returns false if it failed (the caller goes on either way: UDP has no
/// connection that a failed send could break).
fn send_datagram(nar: &Narrator, fd: RawFd, datagram: &str, to: SocketAddr) -> bool {
    send_datagram_if(nar, fd, datagram, to, true)
}

/// `send_datagram`, narrated only if `narrate`: a server's replies follow
/// the request they answer, so that under load (when the throttle hid the
/// request) a reply is never shown without the datagram that caused it.
/// A reply not narrated is still counted in the summary.
fn send_datagram_if(
    nar: &Narrator,
    fd: RawFd,
    datagram: &str,
    to: SocketAddr,
    narrate: bool,
) -> bool {
    if !narrate {
        let sent = sendto(
            fd,
            datagram.as_bytes(),
            &crate::sys::to_kernel(to),
            MsgFlags::empty(),
        );
        nar.count("datagrams_out", 1);
        return sent.is_ok();
    }
    let step = nar.call_with("sendto", || {
        format!(
            "fd {fd}, {}, {to}",
            show_bytes(datagram.as_bytes(), SHOW_CHARS)
        )
    });
    match sendto(
        fd,
        datagram.as_bytes(),
        &crate::sys::to_kernel(to),
        MsgFlags::empty(),
    ) {
        Ok(count) => {
            step.ok_with(count as i64, || format!("{count} bytes"));
            nar.count("datagrams_out", 1);
            true
        }
        Err(errno) => {
            step.fail(errno);
            false
        }
    }
}

/// Where a process on this machine sends to reach a socket bound to
/// `bound`: the loopback address of the same family when the server bound
/// the wildcard address (0.0.0.0 or ::), which names no machine and is not
/// a destination; the bound address itself otherwise.
fn local_destination(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound.port())
        }
        _ => bound,
    }
}

/// First thing in a forked child of this demo: ask the kernel to send us
/// SIGTERM when our parent dies (prctl(PR_SET_PDEATHSIG)), then check with
/// getppid() that the parent did not die before the request was made. A
/// child must never outlive the program it belongs to. Returns false if
/// the parent is already gone.
fn die_with_parent(nar: &Narrator, parent: Pid) -> bool {
    let step = nar.call("prctl", "PR_SET_PDEATHSIG, SIGTERM");
    if let Err(errno) = step.check(nix::sys::prctl::set_pdeathsig(Signal::SIGTERM), |_| {
        "0".into()
    }) {
        // Without it, the getppid() check below and the parent's kill()
        // still end us; say so and go on.
        nar.warning(
            format!("prctl(PR_SET_PDEATHSIG) failed with {errno}; this process relies on its parent to end it"),
            None,
        );
    }
    let step = nar.call("getppid", "");
    let now = nix::unistd::getppid();
    step.ok_value(i64::from(now.as_raw()), format!("{now}"));
    if now != parent {
        nar.info(
            "parent_gone",
            json!({ "parent": parent.as_raw(), "ppid": now.as_raw() }),
            format!(
                "the parent {parent} is already gone (our parent is now {now}); this process ends"
            ),
        );
        return false;
    }
    nar.note("If the parent dies, even by SIGKILL, the kernel now sends this process SIGTERM, so it cannot be left running on its own.");
    true
}

/// One datagram as recvmsg() returned it.
struct Datagram {
    /// How many bytes are in the buffer.
    kept: usize,
    /// How long the datagram really was (MSG_TRUNC): more than `kept` when
    /// it did not fit, and the rest is gone.
    real: usize,
    from: SocketAddr,
}

impl Datagram {
    /// Was it longer than the buffer (so longer than the protocol allows)?
    fn oversized(&self) -> bool {
        self.real > self.kept
    }

    /// The step's result line: the real length, what was kept, the start.
    fn describe(&self, buf: &[u8]) -> String {
        let shown = show_bytes(&buf[..self.kept], SHOW_CHARS);
        if self.oversized() {
            format!(
                "{} bytes from {}, only {} kept (MSG_TRUNC): {shown}",
                self.real, self.from, self.kept
            )
        } else {
            format!("{} bytes from {}: {shown}", self.real, self.from)
        }
    }
}

/// recvmsg() with MSG_TRUNC as an input flag: one datagram into `buf`, and
/// its real length even when it is longer than `buf` (Linux, for UDP), as
/// the udp-server demo does. A datagram is read whole or cut, never kept
/// for the next call, so the real length is the only way to know.
/// `flags` are added to MSG_TRUNC: the server passes MSG_DONTWAIT, because
/// it calls recvmsg() only after ppoll() said the socket is readable.
fn recv_datagram(fd: RawFd, buf: &mut [u8], flags: MsgFlags) -> nix::Result<Datagram> {
    let capacity = buf.len();
    let mut iov = [IoSliceMut::new(buf)];
    let message = recvmsg::<SockaddrStorage>(fd, &mut iov, None, MsgFlags::MSG_TRUNC | flags)?;
    let from = message
        .address
        .as_ref()
        .and_then(crate::sys::to_std)
        .ok_or(Errno::EAFNOSUPPORT)?;
    Ok(Datagram {
        kept: message.bytes.min(capacity),
        real: message.bytes,
        from,
    })
}

/// A receive failure that a loop should survive: a signal, or the
/// kernel short of memory for a moment.
fn is_transient(errno: Errno) -> bool {
    matches!(errno, Errno::EINTR | Errno::ENOMEM | Errno::ENOBUFS)
}

/// Narrate one process's place in the demo from /proc/PID/stat.
fn show_process(nar: &Narrator, pid: Pid, role: &str) {
    let _ = children::process_state(nar, pid, role);
}
