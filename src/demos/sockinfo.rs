//! # sockinfo: what a socket is, as the kernel describes it
//!
//! Python's `s.family`, `s.type`, `s.fileno()`, `s.getsockname()` and
//! `s.getpeername()` look like properties of an object, but each is a
//! question to the kernel about a file descriptor. This demo creates a TCP
//! socket and a UDP socket and asks every question: the family, type and
//! protocol (getsockopt SO_DOMAIN, SO_TYPE, SO_PROTOCOL), the descriptor
//! number, the local address before and after bind(), the peer address
//! before and after connect() (to a local listener it starts itself), and
//! the main socket options with the values the kernel really holds,
//! including the doubling of SO_RCVBUF and SO_SNDBUF.
//!
//! System calls, in order: socket, bind, listen (the helper listener); then
//! for the TCP socket: getsockopt(SO_DOMAIN, SO_TYPE, SO_PROTOCOL),
//! getsockname, bind, getsockname, getpeername, connect, getpeername,
//! accept, getpeername, getsockopt/setsockopt of the options; for the UDP
//! socket the same without connect; close.
//!
//! Try it:
//!
//! ```text
//! netlab sockinfo
//! netlab sockinfo --rcvbuf 100000 --sndbuf 4096
//! ```
//!
//! Lesson: `netlab lesson osi-and-sockets`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, getpeername, getsockopt, listen, setsockopt, socket, sockopt, AddressFamily,
    Backlog, SockFlag, SockType, SockaddrIn, SockaddrStorage,
};
use serde_json::{json, Map, Value};

use crate::kernel::socket_limits;
use crate::narrate::{Fact, Narrator};
use crate::sys;

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The receive buffer to ask for with setsockopt(SO_RCVBUF), in bytes.
    /// getsockopt then reports twice as much (capped by net.core.rmem_max).
    #[arg(long, value_name = "BYTES", default_value_t = 32768, value_parser = clap::value_parser!(u32).range(1..=1_073_741_823))]
    pub rcvbuf: u32,

    /// The send buffer to ask for with setsockopt(SO_SNDBUF), in bytes
    /// (doubled too, and capped by net.core.wmem_max).
    #[arg(long, value_name = "BYTES", default_value_t = 32768, value_parser = clap::value_parser!(u32).range(1..=1_073_741_823))]
    pub sndbuf: u32,
}

/// Which of the two sockets a line is about.
#[derive(Clone, Copy)]
enum Kind {
    Tcp,
    Udp,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Udp => "udp",
        }
    }
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "sockinfo",
        "osi-and-sockets",
        "A TCP and a UDP socket, and everything the kernel can tell about them: family, type, protocol, descriptor, addresses and options.",
    );
    // Nothing here but descriptors: `q` in --step may end the run at once.
    nar.may_end_at_any_step();
    let loopback_any_port = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);

    // 0. A listener on loopback, only so that the TCP socket has someone
    //    to connect to. The kernel finishes the handshake on its own.
    let step = nar.call("socket", "AF_INET, SOCK_STREAM, 0");
    let listener = step.check(new_socket(SockType::Stream), |fd| {
        format!("fd {}", fd.as_raw_fd())
    })?;
    let step = nar.call(
        "bind",
        format!("fd {}, {loopback_any_port}", listener.as_raw_fd()),
    );
    step.check(
        bind(listener.as_raw_fd(), &SockaddrIn::from(loopback_any_port)),
        |_| "0".into(),
    )?;
    let step = nar.call("listen", format!("fd {}, backlog 1", listener.as_raw_fd()));
    step.check(
        listen(&listener, Backlog::new(1).unwrap_or(Backlog::MAXCONN)),
        |_| "0".into(),
    )?;
    let server = sys::local_addr(listener.as_raw_fd())?;
    nar.note("A helper listener on 127.0.0.1, so that our TCP socket has a peer to connect to.");

    // 1. The TCP socket.
    let step = nar.call("socket", "AF_INET, SOCK_STREAM, 0");
    let tcp = step.check(new_socket(SockType::Stream), |fd| {
        format!("fd {}", fd.as_raw_fd())
    })?;
    nar.note("fileno() is just this number: the socket is file descriptor number N of this process, found in /proc/self/fd like any open file.");
    let mut tcp_info = identity(nar, &tcp, Kind::Tcp);
    addresses(nar, &tcp, Kind::Tcp, loopback_any_port, &mut tcp_info)?;

    let step = nar.call("connect", format!("fd {}, {server}", tcp.as_raw_fd()));
    step.check(connect(tcp.as_raw_fd(), &sys::to_kernel(server)), |_| {
        "0".into()
    })?;
    let peer = peer_name(nar, tcp.as_raw_fd());
    tcp_info.insert("peername".into(), json!(peer.map(|p| p.to_string())));
    nar.note("After connect(), getpeername() names the other end: a TCP socket is tied to one peer for its whole life.");

    // The server's side of the same connection: its peer is us.
    let step = nar.blocking(
        "accept",
        format!("fd {}", listener.as_raw_fd()),
        "taking the finished handshake off the queue",
    );
    let (conn, client) = step.check(sys::accept_with_peer(listener.as_fd()), |(fd, peer)| {
        format!("fd {}, peer {peer}", fd.as_raw_fd())
    })?;
    let seen_by_server = peer_name(nar, conn.as_raw_fd());
    if seen_by_server == Some(client) {
        nar.note("On the server's connected socket, getpeername() is the client's address: the same address our TCP socket's getsockname() gave.");
    }

    options(nar, &tcp, Kind::Tcp, args, &mut tcp_info);
    describe(nar, Kind::Tcp, tcp_info);

    // 2. The UDP socket.
    let step = nar.call("socket", "AF_INET, SOCK_DGRAM, 0");
    let udp = step.check(new_socket(SockType::Datagram), |fd| {
        format!("fd {}", fd.as_raw_fd())
    })?;
    let mut udp_info = identity(nar, &udp, Kind::Udp);
    addresses(nar, &udp, Kind::Udp, loopback_any_port, &mut udp_info)?;
    udp_info.insert("peername".into(), Value::Null);
    nar.note("A UDP socket without connect() has no peer: each datagram names its own destination, and recvfrom() tells who sent each one.");
    options(nar, &udp, Kind::Udp, args, &mut udp_info);
    describe(nar, Kind::Udp, udp_info);

    for fd in [udp, conn, tcp, listener] {
        let step = nar.call("close", format!("fd {}", fd.as_raw_fd()));
        step.check(nix::unistd::close(fd), |_| "0".into())?;
    }
    Ok(())
}

fn new_socket(kind: SockType) -> nix::Result<OwnedFd> {
    socket(AddressFamily::Inet, kind, SockFlag::empty(), None)
}

/// An identity option: its name, its number, and how to name its value.
type Question = (&'static str, libc::c_int, fn(i32) -> &'static str);

/// Family, type and protocol, read back with getsockopt.
fn identity(nar: &Narrator, fd: &OwnedFd, kind: Kind) -> Map<String, Value> {
    let raw = fd.as_raw_fd();
    let mut info = Map::new();
    info.insert("fileno".into(), json!(raw));
    let questions: [Question; 3] = [
        ("SO_DOMAIN", libc::SO_DOMAIN, family_name),
        ("SO_TYPE", libc::SO_TYPE, type_name),
        ("SO_PROTOCOL", libc::SO_PROTOCOL, protocol_name),
    ];
    for (option, code, name_of) in questions {
        let step = nar.call("getsockopt", format!("fd {raw}, SOL_SOCKET, {option}"));
        match socket_int(raw, libc::SOL_SOCKET, code) {
            Ok(value) => {
                step.ok_value(i64::from(value), format!("{value} ({})", name_of(value)));
                info.insert(
                    option.trim_start_matches("SO_").to_lowercase(),
                    json!(name_of(value)),
                );
                sockopt_fact(nar, raw, kind, option, "read", json!(value), name_of(value));
            }
            Err(errno) => step.fail(errno),
        }
    }
    info
}

/// getsockname before and after bind(), and getpeername before connect().
fn addresses(
    nar: &Narrator,
    fd: &OwnedFd,
    kind: Kind,
    wanted: SocketAddrV4,
    info: &mut Map<String, Value>,
) -> Result<()> {
    let raw = fd.as_raw_fd();
    let step = nar.call("getsockname", format!("fd {raw}"));
    let before = step.check(sys::local_addr(raw), |addr| addr.to_string())?;
    nar.note("Before bind(), getsockname() says 0.0.0.0:0: the socket has no address yet.");
    let step = nar.call("bind", format!("fd {raw}, {wanted}"));
    step.check(bind(raw, &SockaddrIn::from(wanted)), |_| "0".into())?;
    let step = nar.call("getsockname", format!("fd {raw}"));
    let after = step.check(sys::local_addr(raw), |addr| addr.to_string())?;
    nar.note("After bind() to port 0, getsockname() is the only way to learn which port the kernel chose.");
    let step = nar.call("getpeername", format!("fd {raw}"));
    match getpeername::<SockaddrStorage>(raw) {
        Ok(addr) => step.ok(format!("{addr}")),
        Err(errno) => {
            step.fail(errno);
            if errno == Errno::ENOTCONN && matches!(kind, Kind::Tcp) {
                nar.note("ENOTCONN: not connected yet, so there is no peer to name.");
            }
        }
    }
    info.insert("sockname_before_bind".into(), json!(before.to_string()));
    info.insert("sockname".into(), json!(after.to_string()));
    Ok(())
}

/// getpeername(), narrated; None when the socket has no peer.
fn peer_name(nar: &Narrator, fd: RawFd) -> Option<SocketAddr> {
    let step = nar.call("getpeername", format!("fd {fd}"));
    let peer = getpeername::<SockaddrStorage>(fd)
        .and_then(|addr| sys::to_std(&addr).ok_or(Errno::EAFNOSUPPORT));
    step.check(peer, |addr| addr.to_string()).ok()
}

/// The options of the lesson: buffers (set, then read back doubled), and
/// the on/off switches, each read from the kernel.
fn options(nar: &Narrator, fd: &OwnedFd, kind: Kind, args: &Args, info: &mut Map<String, Value>) {
    let raw = fd.as_raw_fd();
    let mut found = Map::new();

    // Buffers: the default, then what we ask for, then what the kernel keeps.
    let buffers: [(&'static str, u32, std::io::Result<u64>, &'static str); 2] = [
        (
            "SO_RCVBUF",
            args.rcvbuf,
            socket_limits::rmem_max(),
            socket_limits::RMEM_MAX,
        ),
        (
            "SO_SNDBUF",
            args.sndbuf,
            socket_limits::wmem_max(),
            socket_limits::WMEM_MAX,
        ),
    ];
    for (option, asked, cap, cap_source) in buffers {
        let default = read_buffer(nar, fd, kind, option, "default");
        let step = nar.call(
            "setsockopt",
            format!("fd {raw}, SOL_SOCKET, {option}, {asked}"),
        );
        let set = if option == "SO_RCVBUF" {
            setsockopt(fd, sockopt::RcvBuf, &(asked as usize))
        } else {
            setsockopt(fd, sockopt::SndBuf, &(asked as usize))
        };
        if step.check(set, |_| "0".into()).is_err() {
            continue;
        }
        let kept = read_buffer(nar, fd, kind, option, "after setsockopt");
        match &cap {
            Ok(max) => nar.kernel(Fact::new(
                cap_source
                    .trim_start_matches("/proc/sys/")
                    .replace('/', "."),
                "buffer_cap",
                json!({ "option": option, "max": max }),
                cap_source,
                format!("{option} requests are capped at {max} bytes"),
            )),
            Err(err) => nar.kernel(Fact::unavailable(
                "the buffer cap",
                "buffer_cap",
                cap_source,
                err,
            )),
        }
        if kept == Some(u64::from(asked) * 2) {
            nar.note("The kernel keeps twice the size we asked for: the extra half pays for its own bookkeeping of each packet. getsockopt() reports the doubled number.");
        } else if cap.as_ref().is_ok_and(|max| u64::from(asked) > *max) {
            nar.note("We asked for more than the cap allows, so the kernel used the cap (and doubled it).");
        } else {
            nar.note("The kernel did not keep exactly twice our request: very small requests are raised to a minimum.");
        }
        found.insert(
            option.to_string(),
            json!({ "default": default, "asked": asked, "kept": kept }),
        );
    }

    // Switches: 0 is off, 1 is on.
    let switches: Vec<(&'static str, &'static str, nix::Result<bool>)> = match kind {
        Kind::Tcp => vec![
            (
                "SOL_SOCKET",
                "SO_REUSEADDR",
                getsockopt(fd, sockopt::ReuseAddr),
            ),
            (
                "SOL_SOCKET",
                "SO_KEEPALIVE",
                getsockopt(fd, sockopt::KeepAlive),
            ),
            (
                "IPPROTO_TCP",
                "TCP_NODELAY",
                getsockopt(fd, sockopt::TcpNoDelay),
            ),
        ],
        Kind::Udp => vec![
            (
                "SOL_SOCKET",
                "SO_REUSEADDR",
                getsockopt(fd, sockopt::ReuseAddr),
            ),
            (
                "SOL_SOCKET",
                "SO_BROADCAST",
                getsockopt(fd, sockopt::Broadcast),
            ),
        ],
    };
    for (level, option, value) in switches {
        let step = nar.call("getsockopt", format!("fd {raw}, {level}, {option}"));
        if let Ok(on) = step.check(value, |on| u8::from(*on).to_string()) {
            sockopt_fact(
                nar,
                raw,
                kind,
                option,
                "read",
                json!(u8::from(on)),
                if on { "on" } else { "off" },
            );
            found.insert(option.to_string(), json!(u8::from(on)));
        }
    }
    match kind {
        Kind::Tcp => nar.note("All off by default: SO_REUSEADDR (servers turn it on before bind), SO_KEEPALIVE (probes on an idle connection) and TCP_NODELAY (Nagle's algorithm, which holds back small segments, stays on)."),
        Kind::Udp => nar.note("SO_BROADCAST is off by default: without it, sendto() to a broadcast address fails with EACCES (see netlab broadcast)."),
    }
    info.insert("options".into(), Value::Object(found));
}

/// getsockopt(SO_RCVBUF or SO_SNDBUF), narrated and recorded as a fact.
fn read_buffer(
    nar: &Narrator,
    fd: &OwnedFd,
    kind: Kind,
    option: &'static str,
    phase: &'static str,
) -> Option<u64> {
    let raw = fd.as_raw_fd();
    let step = nar.call("getsockopt", format!("fd {raw}, SOL_SOCKET, {option}"));
    let value = if option == "SO_RCVBUF" {
        getsockopt(fd, sockopt::RcvBuf)
    } else {
        getsockopt(fd, sockopt::SndBuf)
    };
    let value = step.check(value, |bytes| bytes.to_string()).ok()? as u64;
    sockopt_fact(
        nar,
        raw,
        kind,
        option,
        phase,
        json!(value),
        &format!("{value} bytes"),
    );
    Some(value)
}

/// A `kernel:` line for one option's value.
fn sockopt_fact(
    nar: &Narrator,
    fd: RawFd,
    kind: Kind,
    option: &'static str,
    phase: &'static str,
    value: Value,
    shown: &str,
) {
    let subject = format!("fd {fd}");
    nar.kernel(Fact::new(
        &subject,
        "sockopt",
        json!({ "socket": kind.label(), "fd": fd, "option": option, "phase": phase, "value": value }),
        "getsockopt",
        format!("{subject} ({}) {option} is {shown}", kind.label().to_uppercase()),
    ));
}

/// The course's list of attributes, for one socket, in one line.
fn describe(nar: &Narrator, kind: Kind, info: Map<String, Value>) {
    let text = |key: &str| {
        info.get(key)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let line = format!(
        "{} socket: family {}, type {}, protocol {}, fileno {}, sockname {} (before bind {}), peername {}",
        kind.label().to_uppercase(),
        text("domain"),
        text("type"),
        text("protocol"),
        info.get("fileno").map_or("?".into(), Value::to_string),
        text("sockname"),
        text("sockname_before_bind"),
        info.get("peername").and_then(Value::as_str).unwrap_or("none"),
    );
    let mut value = info;
    value.insert("socket".into(), json!(kind.label()));
    nar.info("socket", Value::Object(value), line);
}

/// getsockopt() for an int option that nix does not wrap (SO_DOMAIN, SO_PROTOCOL).
fn socket_int(fd: RawFd, level: libc::c_int, option: libc::c_int) -> nix::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes, and `len` holds the
    // size of `value`, as getsockopt(2) requires.
    let result = unsafe {
        libc::getsockopt(
            fd,
            level,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    Errno::result(result).map(|_| value)
}

fn family_name(value: i32) -> &'static str {
    match value {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_UNIX => "AF_UNIX",
        _ => "another family",
    }
}

fn type_name(value: i32) -> &'static str {
    match value {
        libc::SOCK_STREAM => "SOCK_STREAM",
        libc::SOCK_DGRAM => "SOCK_DGRAM",
        libc::SOCK_RAW => "SOCK_RAW",
        _ => "another type",
    }
}

fn protocol_name(value: i32) -> &'static str {
    match value {
        libc::IPPROTO_TCP => "IPPROTO_TCP",
        libc::IPPROTO_UDP => "IPPROTO_UDP",
        _ => "another protocol",
    }
}
