//! Small wrappers every socket demo needs: address conversions, and the few
//! calls nix does not offer in the shape the lessons want.
//!
//! Each wrapper makes exactly one system call, so a demo that narrates
//! `accept` really made one accept().

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike, SockaddrStorage};

use crate::error::Failure;

/// The C name of an address family, as the narration shows it.
pub fn family_name(addr: &SocketAddr) -> &'static str {
    match addr {
        SocketAddr::V4(_) => "AF_INET",
        SocketAddr::V6(_) => "AF_INET6",
    }
}

/// The nix address family for a std address.
pub fn family_of(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// A kernel socket address as a std one (None for other families).
pub fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// getsockname(): the address the kernel gave this end of the socket.
pub fn local_addr(fd: RawFd) -> nix::Result<SocketAddr> {
    let addr: SockaddrStorage = getsockname(fd)?;
    to_std(&addr).ok_or(Errno::EAFNOSUPPORT)
}

/// recvfrom(): one datagram into `buf`, its length, and who sent it, as a
/// std address (EAFNOSUPPORT for a sender of another family, which a UDP
/// socket never has).
pub fn recvfrom(fd: RawFd, buf: &mut [u8]) -> nix::Result<(usize, SocketAddr)> {
    let (length, from) = nix::sys::socket::recvfrom::<SockaddrStorage>(fd, buf)?;
    let from = from.as_ref().and_then(to_std).ok_or(Errno::EAFNOSUPPORT)?;
    Ok((length, from))
}

/// accept() that also returns the client's address, like C's
/// `accept(fd, &addr, &len)` and Python's `conn, addr = sock.accept()`.
/// (nix's `accept` passes NULL for the address.)
pub fn accept_with_peer(listen_fd: BorrowedFd<'_>) -> nix::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are valid for writes and `len` holds the
    // buffer's size, as accept(2) requires.
    let fd = unsafe {
        libc::accept(
            listen_fd.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
            &mut len,
        )
    };
    let fd = Errno::result(fd)?;
    // SAFETY: accept returned a new descriptor that nothing else owns.
    let conn_fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the kernel wrote a valid address of `len` bytes into storage.
    let addr = unsafe {
        SockaddrStorage::from_raw(
            (&storage as *const libc::sockaddr_storage).cast(),
            Some(len),
        )
    };
    let peer = addr.as_ref().and_then(to_std).ok_or(Errno::EAFNOSUPPORT)?;
    Ok((conn_fd, peer))
}

/// nanosleep(): sleep, but return EINTR when a signal arrives, so Ctrl-C
/// is not delayed by a long `--accept-delay`. (std's sleep restarts.)
pub fn nanosleep(duration: Duration) -> nix::Result<()> {
    let request = libc::timespec {
        tv_sec: duration.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(duration.subsec_nanos() as i32),
    };
    // SAFETY: `request` is a valid timespec; we pass no remainder pointer.
    let result = unsafe { libc::nanosleep(&request, std::ptr::null_mut()) };
    Errno::result(result).map(drop)
}

/// Turn `--host` and `--port` into one socket address. An IP address is
/// used as is; a name ("localhost") is looked up with getaddrinfo, and the
/// first answer is taken (the lookup lesson shows them all).
///
/// Something written like an address (only digits and dots, or with a `:`
/// or brackets) that does not parse, such as `999.1.1.1`, is a typing
/// mistake: it is refused here and never sent to a DNS server as a name.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, Failure> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if looks_like_an_address(host) {
        return Err(Failure::new(
            format!("`{host}` is not a valid IP address"),
            Some("an IPv4 address is four numbers from 0 to 255 joined by dots (127.0.0.1); an IPv6 address uses colons (::1)"),
        ));
    }
    let found = (trimmed, port)
        .to_socket_addrs()
        .map(|mut addrs| addrs.next());
    match found {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) | Err(_) => Err(Failure::new(
            format!("cannot find an address for the host `{host}`"),
            Some("give an IP address such as 127.0.0.1, or a name in /etc/hosts or DNS"),
        )),
    }
}

/// Is `host` written as an address literal rather than a name? Host names
/// may contain digits and dots, but never only those (the last label of a
/// real name has a letter), and never a colon or brackets.
fn looks_like_an_address(host: &str) -> bool {
    let only_digits_and_dots =
        !host.is_empty() && host.chars().all(|c| c.is_ascii_digit() || c == '.');
    only_digits_and_dots || host.contains([':', '[', ']'])
}

/// The address to suggest for `nc` when a server bound the wildcard address.
pub fn connectable(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), bound.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), bound.port())
        }
        _ => bound,
    }
}

/// This machine's own non-loopback addresses (getifaddrs), so a teacher can
/// tell the class where to connect. Read only; no traffic is sent.
pub fn other_local_addresses(family_of_bound: AddressFamily) -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut found: Vec<IpAddr> = interfaces
        .filter_map(|interface| interface.address.as_ref().and_then(to_std))
        .map(|addr| addr.ip())
        .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
        .filter(|ip| family_of_bound == AddressFamily::Inet6 || ip.is_ipv4())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Where other machines can reach a server bound to `bound`: for the
/// wildcard address, each of [`other_local_addresses`] with the port; for
/// one address, nowhere else.
pub fn other_local_endpoints(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return Vec::new();
    }
    other_local_addresses(family_of(&bound))
        .into_iter()
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .collect()
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// A std address as a kernel one.
pub fn to_kernel(addr: SocketAddr) -> SockaddrStorage {
    SockaddrStorage::from(addr)
}

/// Whether the kernel on this machine owns `addr`'s end: true for loopback,
/// so its state can be read from our own /proc/net/tcp.
pub fn is_on_this_machine(ip: IpAddr) -> bool {
    if ip.is_loopback() {
        return true;
    }
    let mapped_loopback =
        matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()));
    mapped_loopback || other_local_addresses(AddressFamily::Inet6).contains(&ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_resolve_to_addresses() {
        assert_eq!(
            resolve("127.0.0.1", 80).ok(),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(resolve("::1", 80).ok(), Some("[::1]:80".parse().unwrap()));
        assert_eq!(resolve("[::1]", 80).ok(), Some("[::1]:80".parse().unwrap()));
        // No test resolves an unknown name: that would ask a DNS server,
        // and tests send traffic only to loopback.
    }

    #[test]
    fn broken_address_literals_are_refused_without_a_lookup() {
        for host in [
            "999.1.1.1",
            "1.2.3",
            "127.0.0.1.",
            "::g",
            "1:2",
            "[::1]:80",
            "...",
        ] {
            let failure = resolve(host, 80).expect_err(host);
            assert_eq!(
                failure.message,
                format!("`{host}` is not a valid IP address"),
                "{host} must be refused as an address, not looked up as a name"
            );
        }
        assert!(!looks_like_an_address("localhost"));
        assert!(!looks_like_an_address("host1.example"));
    }

    #[test]
    fn the_wildcard_is_replaced_by_loopback_for_nc() {
        assert_eq!(
            connectable("0.0.0.0:8888".parse().unwrap()),
            "127.0.0.1:8888".parse().unwrap()
        );
        assert_eq!(
            connectable("[::]:8888".parse().unwrap()),
            "[::1]:8888".parse().unwrap()
        );
        assert_eq!(
            connectable("127.0.0.2:1".parse().unwrap()),
            "127.0.0.2:1".parse().unwrap()
        );
    }

    #[test]
    fn kernel_and_std_addresses_convert_both_ways() {
        for text in ["127.0.0.1:8888", "[::1]:9"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(to_std(&to_kernel(addr)), Some(addr));
        }
    }
}
