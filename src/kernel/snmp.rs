//! The kernel's protocol counters: `/proc/net/snmp` (IPv4) and
//! `/proc/net/snmp6` (IPv6).
//!
//! The file holds, per protocol, a header line of counter names and a line
//! of values (the MIB counters of RFC 1213 and later, hence the name):
//!
//! ```text
//! Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors ...
//! Udp: 84 0 0 85 0 0 ...
//! ```
//!
//! IPv6 keeps its own counters in `/proc/net/snmp6`, one per line, with the
//! protocol glued to the name: `Udp6InDatagrams 12`, `Icmp6InDestUnreachs 0`.
//! [`read_counters_of`] reads either file and returns the same names
//! (`InDatagrams`), so a demo reads the counters of the family it uses.
//!
//! The counters belong to the whole network namespace, not to one socket
//! or one program: every process on the machine (or in the container) adds
//! to them. A demo therefore reads them before and after what it shows and
//! reports the difference, saying that other traffic may have added to it.
//!
//! The counters UDP demos use:
//!
//! * `Udp InDatagrams`: datagrams delivered to a socket.
//! * `Udp NoPorts`: datagrams that arrived for a port no socket was bound to
//!   (the kernel answered each with an ICMP "port unreachable").
//! * `Udp RcvbufErrors`: datagrams dropped because the receiving socket's
//!   buffer was full. `Udp InErrors` counts them too, with other errors.
//! * `Icmp InDestUnreachs` / `OutDestUnreachs`: "destination unreachable"
//!   messages received and sent, "port unreachable" among them.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;

/// The IPv4 counters.
pub const PROC_NET_SNMP: &str = "/proc/net/snmp";
/// The IPv6 counters, in another format (one `NameValue` pair a line).
pub const PROC_NET_SNMP6: &str = "/proc/net/snmp6";

/// Which counters: IPv4's or IPv6's. A UDP socket bound to `::1` adds to
/// `Udp6InDatagrams`, never to `Udp InDatagrams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The counters an address's traffic adds to.
    pub fn of(addr: &SocketAddr) -> Family {
        match addr {
            SocketAddr::V4(_) => Family::V4,
            // An IPv4-mapped address (::ffff:1.2.3.4) on an IPv6 socket
            // carries IPv4 packets, counted with IPv4's.
            SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => Family::V4,
            SocketAddr::V6(_) => Family::V6,
        }
    }

    /// The file the counters are read from.
    pub fn path(self) -> &'static str {
        match self {
            Family::V4 => PROC_NET_SNMP,
            Family::V6 => PROC_NET_SNMP6,
        }
    }

    /// How the file names a protocol: `Udp` stays `Udp` for IPv4 and
    /// becomes `Udp6` for IPv6.
    pub fn protocol(self, protocol: &str) -> String {
        match self {
            Family::V4 => protocol.to_string(),
            Family::V6 => format!("{protocol}6"),
        }
    }
}

/// Parses the counters of `protocol` (`"Udp6"`, `"Icmp6"`) from the text of
/// `/proc/net/snmp6`, with the protocol cut from each name
/// (`Udp6InDatagrams 5` becomes `InDatagrams -> 5`). `None` when the file
/// has none of them.
pub fn parse_counters6(text: &str, protocol: &str) -> Option<Counters> {
    let counters: Counters = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?.strip_prefix(protocol)?;
            let value = words.next()?.parse::<u64>().ok()?;
            // "Udp6InDatagrams" starts with "Udp6", but so would "Udp6x":
            // a counter name starts with a capital letter.
            name.starts_with(|c: char| c.is_ascii_uppercase())
                .then(|| (name.to_string(), value))
        })
        .collect();
    (!counters.is_empty()).then_some(counters)
}

/// Reads the counters of `protocol` (`"Udp"`, `"Icmp"`) for `family` now,
/// from `/proc/net/snmp` or `/proc/net/snmp6`.
pub fn read_counters_of(family: Family, protocol: &str) -> io::Result<Counters> {
    match family {
        Family::V4 => read_counters(protocol),
        Family::V6 => {
            let name = family.protocol(protocol);
            let text = std::fs::read_to_string(PROC_NET_SNMP6)?;
            parse_counters6(&text, &name).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{PROC_NET_SNMP6} has no {name} counters"),
                )
            })
        }
    }
}

/// The counters of one protocol, by name: `"RcvbufErrors" -> 0`.
pub type Counters = BTreeMap<String, u64>;

/// Parses the counters of `protocol` (`"Udp"`, `"Icmp"`, ...) from the
/// text of `/proc/net/snmp`. Returns `None` when the protocol is missing
/// or its two lines do not pair up (a name without a number, or the
/// reverse); counters that are not numbers are left out.
pub fn parse_counters(text: &str, protocol: &str) -> Option<Counters> {
    let prefix = format!("{protocol}:");
    let mut lines = text
        .lines()
        .filter(|line| line.split_whitespace().next() == Some(prefix.as_str()));
    let names = lines.next()?;
    let values = lines.next()?;
    let names: Vec<&str> = names.split_whitespace().skip(1).collect();
    let values: Vec<&str> = values.split_whitespace().skip(1).collect();
    if names.len() != values.len() || names.is_empty() {
        return None;
    }
    Some(
        names
            .into_iter()
            .zip(values)
            .filter_map(|(name, value)| Some((name.to_string(), value.parse::<u64>().ok()?)))
            .collect(),
    )
}

/// Reads the counters of `protocol` from `/proc/net/snmp` now.
pub fn read_counters(protocol: &str) -> io::Result<Counters> {
    let text = std::fs::read_to_string(PROC_NET_SNMP)?;
    parse_counters(&text, protocol).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{PROC_NET_SNMP} has no {protocol} counters"),
        )
    })
}

/// One counter by name; 0 when the kernel does not have it.
pub fn counter(counters: &Counters, name: &str) -> u64 {
    counters.get(name).copied().unwrap_or(0)
}

/// Only the counters named in `names` (those the kernel has).
pub fn only(counters: &Counters, names: &[&str]) -> Counters {
    counters
        .iter()
        .filter(|(name, _)| names.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), *value))
        .collect()
}

/// How much each counter grew from `before` to `after` (counters missing
/// from either side are left out; a counter that went down, which only a
/// wrap-around can cause, counts as 0).
pub fn growth(before: &Counters, after: &Counters) -> Counters {
    after
        .iter()
        .filter_map(|(name, now)| {
            let then = before.get(name)?;
            Some((name.clone(), now.saturating_sub(*then)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counters_lose_their_prefix() {
        let text = "Ip6InReceives 10\nUdp6InDatagrams 5\nUdp6NoPorts 2\nUdpLite6InDatagrams 9\nIcmp6InDestUnreachs 1\n";
        let udp = parse_counters6(text, "Udp6").expect("udp6");
        assert_eq!(counter(&udp, "InDatagrams"), 5);
        assert_eq!(counter(&udp, "NoPorts"), 2);
        assert_eq!(udp.len(), 2, "UdpLite6 is another protocol: {udp:?}");
        let icmp = parse_counters6(text, "Icmp6").expect("icmp6");
        assert_eq!(counter(&icmp, "InDestUnreachs"), 1);
        assert!(parse_counters6("garbage", "Udp6").is_none());
    }

    #[test]
    fn this_machine_has_ipv6_udp_counters_or_says_why_not() {
        match read_counters_of(Family::V6, "Udp") {
            Ok(counters) => assert!(counters.contains_key("InDatagrams"), "{counters:?}"),
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn the_family_follows_the_address() {
        assert_eq!(Family::of(&"127.0.0.1:1".parse().unwrap()), Family::V4);
        assert_eq!(Family::of(&"[::1]:1".parse().unwrap()), Family::V6);
        assert_eq!(
            Family::of(&"[::ffff:127.0.0.1]:1".parse().unwrap()),
            Family::V4
        );
        assert_eq!(Family::V6.protocol("Udp"), "Udp6");
    }

    const FIXTURE: &str = "Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 1000
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs OutMsgs OutDestUnreachs
Icmp: 2 0 0 2 3 3
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 84 1 7 85 7 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn reads_one_protocols_counters_by_name() {
        let udp = parse_counters(FIXTURE, "Udp").expect("Udp counters");
        assert_eq!(udp["InDatagrams"], 84);
        assert_eq!(udp["NoPorts"], 1);
        assert_eq!(udp["RcvbufErrors"], 7);
        assert_eq!(udp.len(), 9);
        // "UdpLite:" must not be taken for "Udp:".
        let icmp = parse_counters(FIXTURE, "Icmp").expect("Icmp counters");
        assert_eq!(icmp["InDestUnreachs"], 2);
        assert_eq!(icmp["OutDestUnreachs"], 3);
    }

    #[test]
    fn garbage_gives_none_not_a_panic() {
        assert_eq!(parse_counters("", "Udp"), None);
        assert_eq!(parse_counters("Udp: A B\n", "Udp"), None);
        assert_eq!(parse_counters("Udp: A B\nUdp: 1\n", "Udp"), None);
        let odd = parse_counters("Udp: A B\nUdp: 1 x\n", "Udp").expect("pairs");
        assert_eq!(odd.len(), 1, "a value that is not a number is left out");
    }

    #[test]
    fn growth_is_the_difference_per_counter() {
        let before = parse_counters(FIXTURE, "Udp").unwrap();
        let mut after = before.clone();
        after.insert("RcvbufErrors".into(), 10);
        after.insert("InDatagrams".into(), 80);
        let grown = growth(&before, &after);
        assert_eq!(grown["RcvbufErrors"], 3);
        assert_eq!(grown["InDatagrams"], 0);
        assert_eq!(grown["NoPorts"], 0);
    }

    #[test]
    fn this_machine_has_udp_counters() {
        let udp = read_counters("Udp").expect("/proc/net/snmp");
        assert!(udp.contains_key("RcvbufErrors"), "{udp:?}");
    }
}
