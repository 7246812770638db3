//! Kernel tunables that explain what the demos see: `/proc/sys/net/...`.
//!
//! Every file under `/proc/sys` is a kernel setting ("sysctl"): reading it
//! gives the current value as text, and `sysctl net.core.somaxconn` is the
//! same as reading `/proc/sys/net/core/somaxconn`. The `net` settings belong
//! to the network namespace, so a container may see different values from
//! its host. netlab reads them rather than assuming the defaults, because
//! they decide things it narrates: which port `bind(port 0)` picks, how
//! long an accept queue may grow, which ports need privileges.
//!
//! This module only reads; nothing here changes a setting.

use std::io;
use std::str::FromStr;

/// `net.ipv4.ip_local_port_range`: the ephemeral ports the kernel picks from.
pub const IP_LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// `net.ipv4.ip_unprivileged_port_start`: the lowest port anyone may bind.
pub const IP_UNPRIVILEGED_PORT_START: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
/// `net.core.somaxconn`: the cap on every `listen()` backlog.
pub const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";
/// `net.ipv4.tcp_fin_timeout`: how long an orphaned FIN_WAIT2 lingers.
pub const TCP_FIN_TIMEOUT: &str = "/proc/sys/net/ipv4/tcp_fin_timeout";

/// Parses the text of `ip_local_port_range`: two port numbers separated by
/// whitespace, e.g. `"32768\t60999\n"`. Returns `None` unless it is exactly
/// two valid ports with the first not above the second.
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut words = text.split_whitespace();
    let low = words.next()?.parse::<u16>().ok()?;
    let high = words.next()?.parse::<u16>().ok()?;
    if words.next().is_some() || low > high {
        return None;
    }
    Some((low, high))
}

/// The range of ephemeral ports (`/proc/sys/net/ipv4/ip_local_port_range`),
/// inclusive. When a client calls `connect()` without `bind()`, or a
/// program binds port 0, the kernel picks a free port from this range
/// (32768 to 60999 by default).
pub fn local_port_range() -> io::Result<(u16, u16)> {
    let text = std::fs::read_to_string(IP_LOCAL_PORT_RANGE)?;
    parse_port_range(&text).ok_or_else(|| invalid(IP_LOCAL_PORT_RANGE, &text))
}

/// The lowest port an unprivileged program may bind
/// (`/proc/sys/net/ipv4/ip_unprivileged_port_start`, 1024 by default).
/// Binding a port below it needs root or the `CAP_NET_BIND_SERVICE`
/// capability, otherwise `bind()` fails with `EACCES`.
pub fn unprivileged_port_start() -> io::Result<u16> {
    read_number(IP_UNPRIVILEGED_PORT_START)
}

/// The upper limit on a listening socket's accept queue
/// (`/proc/sys/net/core/somaxconn`; 4096 since Linux 5.4, 128 before).
/// `listen(fd, backlog)` silently uses `min(backlog, somaxconn)`.
pub fn somaxconn() -> io::Result<u32> {
    read_number(SOMAXCONN)
}

/// Seconds an orphaned connection stays in FIN_WAIT2
/// (`/proc/sys/net/ipv4/tcp_fin_timeout`, 60 by default).
///
/// When a program closes a socket and the peer acknowledges the FIN but
/// never sends its own, no program can read the socket any more, so the
/// kernel gives up after this long instead of waiting forever. (It is not
/// the length of TIME_WAIT, which is fixed at 60 s in the kernel source.)
pub fn tcp_fin_timeout() -> io::Result<u32> {
    read_number(TCP_FIN_TIMEOUT)
}

/// Reads a file holding one number.
fn read_number<T: FromStr>(path: &str) -> io::Result<T> {
    let text = std::fs::read_to_string(path)?;
    parse_number(path, &text)
}

/// Parses the text of a one-number sysctl file; `path` is only used in
/// the error message.
fn parse_number<T: FromStr>(path: &str, text: &str) -> io::Result<T> {
    text.trim().parse().map_err(|_| invalid(path, text))
}

/// An `InvalidData` error that names the file and shows what it held.
fn invalid(path: &str, text: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{path}: unexpected contents {:?}", text.trim_end()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_ranges() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1024 65535"), Some((1024, 65535)));
        assert_eq!(parse_port_range("5000\t5000\n"), Some((5000, 5000)));
        for bad in [
            "",
            "32768",
            "60999 32768",
            "1 2 3",
            "a b",
            "70000 80000",
            "-1 5",
        ] {
            assert_eq!(parse_port_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_contents_name_the_file() {
        let err = parse_number::<u32>(SOMAXCONN, "lots\n").expect_err("not a number");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains(SOMAXCONN), "{err}");
        assert_eq!(parse_number::<u32>(SOMAXCONN, "4096\n").ok(), Some(4096));
        assert!(parse_number::<u16>(IP_UNPRIVILEGED_PORT_START, "65536\n").is_err());
    }

    #[test]
    fn reads_live_values() {
        let (low, high) = local_port_range().expect("ip_local_port_range");
        assert!(low <= high);
        assert!(somaxconn().expect("somaxconn") > 0);
        tcp_fin_timeout().expect("tcp_fin_timeout");
        unprivileged_port_start().expect("ip_unprivileged_port_start");
    }
}
