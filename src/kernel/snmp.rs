//! The kernel's protocol counters: `/proc/net/snmp`.
//!
//! The file holds, per protocol, a header line of counter names and a line
//! of values (the MIB counters of RFC 1213 and later, hence the name):
//!
//! ```text
//! Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors ...
//! Udp: 84 0 0 85 0 0 ...
//! ```
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

/// The IPv4 counters (`/proc/net/snmp6` holds IPv6's, in another format).
pub const PROC_NET_SNMP: &str = "/proc/net/snmp";

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
