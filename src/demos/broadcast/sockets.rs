//! The socket steps that the demo, `send` and `listen` share: a listener
//! on a shared port, a sender with (or without) SO_BROADCAST, one sendto(),
//! one recvfrom(), and the kernel's word on broadcast addresses and on the
//! sockets bound to a port.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{
    bind, getsockopt, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag,
    SockType, SockaddrIn,
};
use nix::sys::time::{TimeVal, TimeValLike};
use serde_json::json;

use super::{DATAGRAM_MAX, SHOW_CHARS};
use crate::error::Failure;
use crate::kernel;
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{errno_name, Fact, Narrator};
use crate::sys;

/// socket(AF_INET, SOCK_DGRAM, 0), narrated: listeners and senders alike
/// are ordinary IPv4 UDP sockets (broadcast is an IPv4 idea).
fn udp_socket(nar: &Narrator) -> Result<OwnedFd> {
    let step = nar.call("socket", "AF_INET, SOCK_DGRAM, 0");
    Ok(step.check(
        socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?)
}

/// socket, SO_REUSEADDR, (SO_RCVTIMEO), bind 0.0.0.0:port, getsockname.
pub fn open_listener(
    nar: &Narrator,
    port: u16,
    timeout: Option<f64>,
) -> Result<(OwnedFd, SocketAddrV4)> {
    let fd = udp_socket(nar)?;
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
pub fn bind_failure(errno: Errno, wanted: SocketAddrV4) -> Failure {
    let port = wanted.port();
    match errno {
        Errno::EADDRINUSE => {
            let holders = kernel::udp::udp_sockets_on_port(port)
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
pub fn receive(fd: RawFd) -> nix::Result<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let (count, from) = sys::recvfrom(fd, &mut buf)?;
    buf.truncate(count);
    Ok((buf, from))
}

/// socket, and SO_BROADCAST unless `--no-broadcast-flag` asked us not to.
pub fn open_sender(nar: &Narrator, broadcast_flag: bool) -> Result<OwnedFd> {
    let fd = udp_socket(nar)?;
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
pub fn send_datagram(
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
pub fn is_kernel_broadcast(nar: &Narrator, ip: Ipv4Addr) -> Option<bool> {
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
pub fn show_sockets_on_port(nar: &Narrator, port: u16) {
    let subject = format!("UDP port {port}");
    match kernel::udp::udp_sockets_on_port(port) {
        Ok(found) => {
            let inodes: Vec<u64> = found.iter().map(|entry| entry.inode).collect();
            nar.kernel(Fact::new(
                &subject,
                "udp_sockets_on_port",
                json!({ "port": port, "sockets": found.len(), "inodes": inodes }),
                kernel::udp::PROC_NET_UDP,
                format!("{} UDP sockets are bound to port {port}", found.len()),
            ));
        }
        Err(err) => nar.kernel(Fact::unavailable(
            subject,
            "udp_sockets_on_port",
            kernel::udp::PROC_NET_UDP,
            err,
        )),
    }
}

/// Sleep between datagrams; false if a stop interrupted the sleep.
pub fn pause(nar: &Narrator, seconds: f64) -> bool {
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
