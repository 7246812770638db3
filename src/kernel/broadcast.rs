//! What the kernel says about broadcast: which IPv4 addresses it treats as
//! broadcast addresses. (Which UDP sockets share a port is in [`super::udp`].)
//!
//! **Broadcast addresses.** When an address is added to an interface, the
//! kernel puts routes for it in its `local` routing table: a `LOCAL` route
//! for the address itself and a `BROADCAST` route for the subnet's last
//! address (127.255.255.255 for lo's 127.0.0.0/8). `/proc/net/fib_trie`
//! prints those tables as a tree; a broadcast address is a leaf followed by
//! a line `/32 link BROADCAST`:
//!
//! ```text
//!         |-- 127.255.255.255
//!            /32 link BROADCAST
//! ```
//!
//! A datagram sent to one of these addresses is delivered to every socket
//! bound to the port on that subnet, and `sendto()` refuses it with EACCES
//! unless the socket has SO_BROADCAST. (255.255.255.255, the "limited
//! broadcast", needs no route and never appears in the file.)

use std::io;
use std::net::Ipv4Addr;

pub const PROC_NET_FIB_TRIE: &str = "/proc/net/fib_trie";

/// The IPv4 addresses the kernel's routing tables mark as broadcast,
/// sorted and without repeats (the file lists the main and local tables).
pub fn broadcast_addresses() -> io::Result<Vec<Ipv4Addr>> {
    Ok(parse_fib_trie(&std::fs::read_to_string(PROC_NET_FIB_TRIE)?))
}

/// Parses the text of `/proc/net/fib_trie`: every leaf `|-- ADDRESS` that is
/// followed by a `/32 link BROADCAST` line.
pub fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(address) = line.strip_prefix("|-- ") {
            leaf = address.trim().parse().ok();
        } else if line.starts_with('/') {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let (Some(address), ["/32", _, "BROADCAST"]) = (leaf, words.as_slice()) {
                found.push(address);
            }
        } else {
            // A "+--" node or a table name: the leaf's route lines are over.
            leaf = None;
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 127.255.255.255
           /32 link BROADCAST
";

    #[test]
    fn broadcast_leaves_are_found_once() {
        assert_eq!(
            parse_fib_trie(SAMPLE),
            [
                Ipv4Addr::new(127, 255, 255, 255),
                Ipv4Addr::new(192, 0, 2, 255)
            ]
        );
    }

    #[test]
    fn local_and_unicast_leaves_are_not_broadcast() {
        let found = parse_fib_trie(SAMPLE);
        assert!(!found.contains(&Ipv4Addr::new(127, 0, 0, 1)));
        assert!(!found.contains(&Ipv4Addr::new(0, 0, 0, 0)));
        assert!(parse_fib_trie("garbage\n|-- not-an-address\n/32 link BROADCAST").is_empty());
    }

    #[test]
    fn this_machine_has_the_loopback_broadcast_address() {
        let found = broadcast_addresses().expect("read /proc/net/fib_trie");
        assert!(
            found.contains(&Ipv4Addr::new(127, 255, 255, 255)),
            "{found:?}"
        );
    }
}
