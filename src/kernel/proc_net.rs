//! Every TCP socket in this network namespace: `/proc/net/tcp` and `/proc/net/tcp6`.
//!
//! These two text files are the kernel's table of TCP sockets (the older
//! interface that `netstat` reads; `ss` uses the netlink `inet_diag` API for
//! the same data). Each line is one socket, listening, connected or in
//! TIME_WAIT, of every process, not only ours. netlab uses the table to
//! show states of sockets it no longer holds (a TIME_WAIT left after
//! `close()`), and to join a file descriptor to its connection through the
//! inode number.
//!
//! A line looks like this (wrapped here; the columns after `inode` vary
//! between kernel versions and are ignored):
//!
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//!    1: 0100007F:1F90 0100007F:C3A2 01 00000000:00000000 00:00000000 00000000  1000        0 41234 1 ...
//! ```
//!
//! * `local_address`, `rem_address`: IP and port in hex (see below).
//! * `st`: the TCP state number in hex ([`TcpState::from_kernel`]); `0A` is LISTEN.
//! * `tx_queue`: bytes sent but not yet acknowledged (for a listener: 0).
//! * `rx_queue`: bytes received but not yet read by the program (for a
//!   listener: the number of connections waiting for `accept()`).
//! * `uid`: the owner's user id, `inode`: the socket's inode number, the same
//!   number that `/proc/PID/fd/N -> socket:[INODE]` shows. It is 0 for
//!   TIME_WAIT and half-open (SYN_RECV) entries: those are lightweight
//!   kernel objects that no file descriptor points to.
//!
//! ## Why the addresses look byte-swapped
//!
//! The kernel keeps an IPv4 address as four bytes in network order
//! (127.0.0.1 is the bytes `7F 00 00 01`) and prints them with
//! `printf("%08X", addr)`, that is, it reads those four bytes as one
//! native `u32` and prints the number. On a little-endian machine (x86,
//! most ARM) the first byte in memory is the least significant, so the
//! number is `0x0100007F` and the file says `0100007F`. To undo it, parse
//! the hex back into a `u32` and take its native-endian bytes
//! (`u32::to_ne_bytes`): that gives back `7F 00 00 01`, on any machine.
//! IPv6 addresses are printed the same way, as four such 32-bit words.
//! Ports, on the other hand, are converted to host order before printing,
//! so `1F90` is simply port 8080.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::TcpState;

/// The IPv4 table.
pub const PROC_NET_TCP: &str = "/proc/net/tcp";
/// The IPv6 table (absent when IPv6 is disabled).
pub const PROC_NET_TCP6: &str = "/proc/net/tcp6";

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`: one TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    /// This socket's address and port. A listener on all interfaces shows
    /// `0.0.0.0` (or `::`).
    pub local: SocketAddr,
    /// The peer's address and port; `0.0.0.0:0` (or `[::]:0`) for a listener.
    pub remote: SocketAddr,
    /// The TCP state.
    pub state: TcpState,
    /// Bytes in the send queue not yet acknowledged by the peer.
    pub tx_queue: u32,
    /// Bytes received and waiting for the program to read them; for a
    /// listener, connections waiting for `accept()`.
    pub rx_queue: u32,
    /// The user id that owns the socket.
    pub uid: u32,
    /// The socket's inode number (matches `socket:[INODE]` in
    /// `/proc/PID/fd`); 0 when no file descriptor can refer to it
    /// (TIME_WAIT, SYN_RECV).
    pub inode: u64,
}

/// Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`.
///
/// The header line and any line that does not parse are skipped, so
/// garbage never causes a panic, only a shorter result. Both address forms
/// are accepted: 8 hex digits (IPv4) and 32 hex digits (IPv6). The hex
/// words are the kernel's in-memory `u32`s printed with `%08X` (see the
/// module docs), so they are decoded with `u32::from_str_radix` and
/// `to_ne_bytes`; ports are plain hex in host order.
pub fn parse_tcp_table(text: &str) -> Vec<TcpEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads `/proc/net/tcp` and then `/proc/net/tcp6`, in that order.
///
/// A missing `/proc/net/tcp6` is fine (IPv6 may be disabled); any other
/// error is returned. The two files are read one after the other, not
/// atomically: a socket that changes state in between may appear in
/// neither or in its new state only.
pub fn read_tcp_table() -> io::Result<Vec<TcpEntry>> {
    let mut entries = parse_tcp_table(&std::fs::read_to_string(PROC_NET_TCP)?);
    match std::fs::read_to_string(PROC_NET_TCP6) {
        Ok(text) => entries.extend(parse_tcp_table(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(entries)
}

/// Finds the entry for the connection `local` <-> `remote`.
///
/// An IPv4 address and its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`) count
/// as equal, because a dual-stack (IPv6) socket talking to an IPv4 peer
/// appears in `/proc/net/tcp6` with mapped addresses. IPv6 flow info and
/// scope ids are ignored (the table does not show them).
///
/// When several entries match, the first in file order is returned. That
/// happens when a connection between the same two ports is opened again
/// while the previous one is still in TIME_WAIT; the kernel's listing order
/// says nothing about which is newer. Use [`connections_matching`] to see
/// them all, or [`find_by_inode`] to pick the socket a file descriptor
/// refers to.
pub fn find_connection(
    entries: &[TcpEntry],
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<&TcpEntry> {
    entries.iter().find(|e| same_pair(e, local, remote))
}

/// Every entry for the connection `local` <-> `remote`, in file order (see
/// [`find_connection`] for how addresses are compared).
pub fn connections_matching(
    entries: &[TcpEntry],
    local: SocketAddr,
    remote: SocketAddr,
) -> Vec<&TcpEntry> {
    entries
        .iter()
        .filter(|e| same_pair(e, local, remote))
        .collect()
}

/// Reads the tables and finds the connection `local` <-> `remote`
/// ([`read_tcp_table`] plus [`find_connection`]).
pub fn connection(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<TcpEntry>> {
    let entries = read_tcp_table()?;
    Ok(find_connection(&entries, local, remote).cloned())
}

/// Every entry whose local port is `port`: the listener and the
/// connections it accepted (which share its port), plus any client sockets
/// that happen to use that port.
pub fn entries_on_local_port(entries: &[TcpEntry], port: u16) -> Vec<&TcpEntry> {
    entries.iter().filter(|e| e.local.port() == port).collect()
}

/// Finds the socket with this inode number (from [`super::socket_inode_of`] or
/// a `socket:[INODE]` link in `/proc/PID/fd`).
///
/// Inode 0 never matches: the kernel prints 0 for entries that have no
/// socket inode (TIME_WAIT, SYN_RECV), so it identifies nothing.
pub fn find_by_inode(entries: &[TcpEntry], inode: u64) -> Option<&TcpEntry> {
    if inode == 0 {
        return None;
    }
    entries.iter().find(|e| e.inode == inode)
}

/// True if `entry` is the connection `local` <-> `remote`.
fn same_pair(entry: &TcpEntry, local: SocketAddr, remote: SocketAddr) -> bool {
    same_endpoint(entry.local, local) && same_endpoint(entry.remote, remote)
}

/// Compares IP and port, treating `::ffff:a.b.c.d` as `a.b.c.d`.
fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// Parses one table line; `None` for the header or anything malformed.
fn parse_line(line: &str) -> Option<TcpEntry> {
    let mut fields = line.split_whitespace();
    // Column 0 is the slot number, "0:", "1:", ... The header's "sl" fails here.
    let slot = fields.next()?;
    slot.strip_suffix(':')?.parse::<u64>().ok()?;
    let local = parse_endpoint(fields.next()?)?;
    let remote = parse_endpoint(fields.next()?)?;
    let state = TcpState::from_kernel(parse_hex_u8(fields.next()?)?)?;
    let (tx, rx) = fields.next()?.split_once(':')?;
    let tx_queue = parse_hex_u32(tx)?;
    let rx_queue = parse_hex_u32(rx)?;
    let _timer = fields.next()?; // "tr:tm->when": which timer runs, jiffies left
    let _retransmits = fields.next()?; // "retrnsmt"
    let uid = fields.next()?.parse::<u32>().ok()?;
    let _timeout = fields.next()?; // unanswered zero-window probes / keepalives
    let inode = fields.next()?.parse::<u64>().ok()?;
    Some(TcpEntry {
        local,
        remote,
        state,
        tx_queue,
        rx_queue,
        uid,
        inode,
    })
}

/// Parses `"0100007F:1F90"` (IPv4) or 32 hex digits, a colon and a port (IPv6).
pub(super) fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = text.split_once(':')?;
    if port_hex.len() != 4 {
        return None;
    }
    // The port was converted to host order (ntohs) before printing.
    let port = parse_hex_u16(port_hex)?;
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(parse_hex_u32(ip_hex)?.to_ne_bytes())),
        32 => {
            // Four 32-bit words, each printed as the native u32 it is in memory.
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = parse_hex_u32(ip_hex.get(i * 8..i * 8 + 8)?)?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Hex digits only; `from_str_radix` alone would also accept a leading '+'.
fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn parse_hex_u32(text: &str) -> Option<u32> {
    if !is_hex(text) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

fn parse_hex_u16(text: &str) -> Option<u16> {
    if !is_hex(text) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

fn parse_hex_u8(text: &str) -> Option<u8> {
    if !is_hex(text) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dump from a little-endian (x86-64) machine, trimmed to the columns
    /// up to the inode plus a few of the trailing ones, with one line of
    /// garbage and one truncated line added.
    const FIXTURE_V4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:22B8 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C3A2 01 00000010:00000020 00:00000000 00000000  1000        0 41234 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:C3A0 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
this is not a socket line at all
   3: 0100007F:1F90 0100007F
   4: 0100007G:1F90 0100007F:C3A2 01 00000000:00000000 00:00000000 00000000  1000        0 1 1
   5: 0100007F:1F90 0100007F:C3A2 FF 00000000:00000000 00:00000000 00000000  1000        0 2 1
";

    const FIXTURE_V6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5555 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 6666 1 0000000000000000 20 4 30 10 -1
";

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((a, port))
    }

    #[test]
    fn skips_header_and_garbage() {
        // Lines 3 (truncated), 4 (bad hex) and 5 (unknown state) are dropped.
        let entries = parse_tcp_table(FIXTURE_V4);
        assert_eq!(entries.len(), 3);
        assert_eq!(parse_tcp_table(FIXTURE_V6).len(), 2);
        assert!(parse_tcp_table("").is_empty());
        assert!(parse_tcp_table("\u{0}\u{ff}:::: 0: : :\n 1: x:y").is_empty());
    }

    #[test]
    fn byte_order_independent_fields() {
        let entries = parse_tcp_table(FIXTURE_V4);
        let listen = &entries[0];
        assert_eq!(listen.state, TcpState::Listen);
        assert_eq!(listen.local, v4([0, 0, 0, 0], 8888)); // 0x22B8 = 8888
        assert_eq!(listen.remote, v4([0, 0, 0, 0], 0));
        assert_eq!(listen.rx_queue, 2); // two connections wait for accept()
        assert_eq!(listen.uid, 0);
        assert_eq!(listen.inode, 12345);

        let est = &entries[1];
        assert_eq!(est.state, TcpState::Established);
        assert_eq!((est.tx_queue, est.rx_queue), (0x10, 0x20));
        assert_eq!(est.uid, 1000);
        assert_eq!(est.inode, 41234);
        assert_eq!(est.local.port(), 8080);
        assert_eq!(est.remote.port(), 0xC3A2);

        let tw = &entries[2];
        assert_eq!(tw.state, TcpState::TimeWait);
        assert_eq!(tw.inode, 0);

        assert_eq!(entries_on_local_port(&entries, 8080).len(), 1);
        assert_eq!(entries_on_local_port(&entries, 8888).len(), 1);
        assert!(entries_on_local_port(&entries, 1).is_empty());
        assert_eq!(find_by_inode(&entries, 41234), Some(&entries[1]));
        assert_eq!(find_by_inode(&entries, 0), None); // TIME_WAIT has no inode
        assert_eq!(find_by_inode(&entries, 999), None);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn decodes_little_endian_addresses() {
        let entries = parse_tcp_table(FIXTURE_V4);
        let localhost = [127, 0, 0, 1];
        assert_eq!(entries[1].local, v4(localhost, 8080));
        assert_eq!(entries[1].remote, v4(localhost, 50082));
        assert_eq!(entries[2].local, v4(localhost, 50080));

        let v6 = parse_tcp_table(FIXTURE_V6);
        assert_eq!(
            v6[0].local,
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 8080)
        );
        assert_eq!(
            v6[0].remote,
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)
        );
        assert_eq!(v6[0].state, TcpState::Listen);
        let mapped: Ipv6Addr = "::ffff:127.0.0.1".parse().expect("valid address");
        assert_eq!(v6[1].local, SocketAddr::new(mapped.into(), 8080));
        assert_eq!(v6[1].remote, SocketAddr::new(mapped.into(), 0xD431));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn finds_connections_including_mapped_addresses() {
        let entries = parse_tcp_table(FIXTURE_V4);
        let server = v4([127, 0, 0, 1], 8080);
        let client = v4([127, 0, 0, 1], 50082);
        assert_eq!(
            find_connection(&entries, server, client).map(|e| e.inode),
            Some(41234)
        );
        // Direction matters: this table has no entry for the client's side.
        assert_eq!(find_connection(&entries, client, server), None);

        // The tcp6 entry with ::ffff:127.0.0.1 is found with plain IPv4
        // addresses, and with mapped ones.
        let v6 = parse_tcp_table(FIXTURE_V6);
        let peer = v4([127, 0, 0, 1], 0xD431);
        assert_eq!(
            find_connection(&v6, server, peer).map(|e| e.inode),
            Some(6666)
        );
        let mapped: Ipv6Addr = "::ffff:127.0.0.1".parse().expect("valid address");
        let server6 = SocketAddr::new(mapped.into(), 8080);
        assert_eq!(
            find_connection(&v6, server6, peer).map(|e| e.inode),
            Some(6666)
        );
        // ::1 is not 127.0.0.1.
        let any = v4([0, 0, 0, 0], 0);
        assert_eq!(find_connection(&v6, v4([127, 0, 0, 1], 8080), any), None);
    }

    #[test]
    fn first_match_wins_when_a_pair_repeats() {
        // A TIME_WAIT from an earlier connection and a new one on the same
        // ports: the first line in file order is returned.
        let text = "\
   0: 0100007F:C3A0 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3
   1: 0100007F:C3A0 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 777 1
";
        let entries = parse_tcp_table(text);
        let (a, b) = (entries[0].local, entries[0].remote);
        let found = find_connection(&entries, a, b).expect("a match");
        assert_eq!(found.state, TcpState::TimeWait);
        let all = connections_matching(&entries, a, b);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].inode, 777);
    }

    /// Polls the live table until `pick` finds something, for up to 1 s.
    fn poll_table(pick: impl Fn(&[TcpEntry]) -> Option<TcpEntry>) -> Option<TcpEntry> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            let entries = read_tcp_table().expect("read /proc/net/tcp");
            if let Some(found) = pick(&entries) {
                return Some(found);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn live_listen_established_then_time_wait() {
        use std::net::{TcpListener, TcpStream};

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let server_addr = listener.local_addr().expect("local_addr");
        let client = TcpStream::connect(server_addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let client_addr = client.local_addr().expect("client addr");

        let entries = read_tcp_table().expect("read /proc/net/tcp");
        let any = v4([0, 0, 0, 0], 0);
        let listen = find_connection(&entries, server_addr, any).expect("listener listed");
        assert_eq!(listen.state, TcpState::Listen);
        assert_ne!(listen.inode, 0);
        let c = find_connection(&entries, client_addr, server_addr).expect("client side");
        assert_eq!(c.state, TcpState::Established);
        let s = find_connection(&entries, server_addr, client_addr).expect("server side");
        assert_eq!(s.state, TcpState::Established);
        // The accepted socket shares the listener's port.
        assert!(entries_on_local_port(&entries, server_addr.port()).len() >= 2);

        // The client closes first: it sends FIN, and the server side moves
        // to CLOSE_WAIT.
        drop(client);
        let wanted = |state| {
            move |entries: &[TcpEntry]| {
                find_connection(entries, server_addr, client_addr)
                    .filter(|e| e.state == state)
                    .cloned()
            }
        };
        assert!(poll_table(wanted(TcpState::CloseWait)).is_some());
        // Then the server closes: the client side, which closed first, ends
        // in TIME_WAIT, with inode 0 because no fd refers to it any more.
        drop(server);
        let tw = poll_table(|entries| {
            find_connection(entries, client_addr, server_addr)
                .filter(|e| e.state == TcpState::TimeWait)
                .cloned()
        })
        .expect("client pair should reach TIME_WAIT");
        assert_eq!(tw.inode, 0);
    }
}
