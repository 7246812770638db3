//! Every UDP socket in this network namespace: `/proc/net/udp` and
//! `/proc/net/udp6`, and the limit on receive buffers.
//!
//! The table has the same layout as `/proc/net/tcp` (see
//! [`super::proc_net`] for the byte order of the addresses), plus one
//! column at the end that only UDP fills in:
//!
//! ```text
//!    sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
//!  1234: 0100007F:22B8 00000000:0000 07 00000000:00000900 00:00000000 00000000  1000        0 41234 2 0000000000000000 734
//! ```
//!
//! * `st` is 07 (CLOSE) for an ordinary socket and 01 (ESTABLISHED) for a
//!   "connected" one: UDP borrows the TCP numbers, but no handshake ever
//!   happened; `connect()` only fixed the peer's address.
//! * `rx_queue`: the receive buffer memory in use, in bytes. The kernel
//!   counts what each datagram really costs it (its `truesize`: payload,
//!   headers and bookkeeping), so a 10-byte datagram takes far more than
//!   10 bytes of the buffer.
//! * `drops`: datagrams the kernel threw away for this socket, mostly
//!   because its receive buffer was full. The same counter is what
//!   `SO_RXQ_OVFL` attaches to received datagrams.
//!
//! The same two numbers for one socket of our own come cheaper from
//! `getsockopt(SO_MEMINFO)` ([`socket_memory`]): one system call instead of
//! reading the whole table, cheap enough to ask after every datagram.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use super::proc_net::{parse_endpoint, parse_hex_u32};

/// The IPv4 table.
pub const PROC_NET_UDP: &str = "/proc/net/udp";
/// The IPv6 table (absent when IPv6 is disabled).
pub const PROC_NET_UDP6: &str = "/proc/net/udp6";

/// One line of `/proc/net/udp` or `/proc/net/udp6`: one UDP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpEntry {
    /// The bound address and port (`0.0.0.0:0` before bind or the first send).
    pub local: SocketAddr,
    /// The connected peer, or `0.0.0.0:0` for an unconnected socket.
    pub remote: SocketAddr,
    /// True when `connect()` fixed a peer (the table shows state 01).
    pub connected: bool,
    /// Send buffer memory in use, in bytes.
    pub tx_queue: u32,
    /// Receive buffer memory in use, in bytes (datagrams not read yet).
    pub rx_queue: u32,
    /// The owner's user id.
    pub uid: u32,
    /// The socket's inode (the number in `/proc/PID/fd/N -> socket:[INODE]`).
    pub inode: u64,
    /// Datagrams the kernel dropped for this socket.
    pub drops: u64,
}

/// Parses the text of `/proc/net/udp` or `/proc/net/udp6`. The header and
/// any malformed line are skipped, never a panic.
pub fn parse_udp_table(text: &str) -> Vec<UdpEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads `/proc/net/udp` and then `/proc/net/udp6` (a missing udp6 is fine).
pub fn read_udp_table() -> io::Result<Vec<UdpEntry>> {
    let mut entries = parse_udp_table(&std::fs::read_to_string(PROC_NET_UDP)?);
    match std::fs::read_to_string(PROC_NET_UDP6) {
        Ok(text) => entries.extend(parse_udp_table(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(entries)
}

/// The table that lists a socket bound to `addr`: `/proc/net/udp6` for
/// IPv6 sockets (IPv4-mapped peers included), `/proc/net/udp` otherwise.
pub fn table_of(addr: &SocketAddr) -> &'static str {
    match addr {
        SocketAddr::V4(_) => PROC_NET_UDP,
        SocketAddr::V6(_) => PROC_NET_UDP6,
    }
}

/// The socket with this inode (from [`super::socket_inode_of`]), read now.
/// `Ok(None)` when no UDP socket has it.
pub fn udp_socket(inode: u64) -> io::Result<Option<UdpEntry>> {
    if inode == 0 {
        return Ok(None);
    }
    Ok(read_udp_table()?.into_iter().find(|e| e.inode == inode))
}

/// The line of the UDP socket on `fd`, read now: its inode (fstat) looked
/// up in the table. The error says why there is none to show, "the socket
/// is not in the table" included.
pub fn udp_socket_of(fd: BorrowedFd<'_>) -> io::Result<UdpEntry> {
    udp_socket(super::socket_inode_of(fd)?)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the socket is not in the table"))
}

/// Every UDP socket bound to local port `port`, whatever its address.
pub fn udp_sockets_on_port(port: u16) -> io::Result<Vec<UdpEntry>> {
    Ok(read_udp_table()?
        .into_iter()
        .filter(|e| e.local.port() == port)
        .collect())
}

/// One socket's memory, from `getsockopt(SO_MEMINFO)` (Linux 4.12 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketMemory {
    /// Receive buffer memory in use now (the `rx_queue` of `/proc/net/udp`).
    pub rmem_alloc: u32,
    /// The receive buffer's size (what `getsockopt(SO_RCVBUF)` reports).
    pub rcvbuf: u32,
    /// Datagrams dropped for this socket (the `drops` of `/proc/net/udp`).
    pub drops: u32,
}

/// `SO_MEMINFO` from asm-generic/socket.h, the value on x86, ARM and
/// RISC-V (libc does not export it for them).
const SO_MEMINFO: libc::c_int = 55;

/// Reads a socket's memory counters with `getsockopt(SO_MEMINFO)`.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64"
))]
pub fn socket_memory(fd: BorrowedFd<'_>) -> nix::Result<SocketMemory> {
    // The kernel fills SK_MEMINFO_VARS (9) u32 counters, in the order of
    // libc's SK_MEMINFO_* indexes.
    let mut info = [0u32; 9];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is valid for `len` bytes of writes, and `len` is valid
    // for reading and writing, as getsockopt(2) requires.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    Errno::result(rc)?;
    if (len as usize) < std::mem::size_of_val(&info) {
        return Err(Errno::EPROTO);
    }
    Ok(SocketMemory {
        rmem_alloc: info[libc::SK_MEMINFO_RMEM_ALLOC as usize],
        rcvbuf: info[libc::SK_MEMINFO_RCVBUF as usize],
        drops: info[libc::SK_MEMINFO_DROPS as usize],
    })
}

/// On other architectures SO_MEMINFO has another number; not read there.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64"
)))]
pub fn socket_memory(_fd: BorrowedFd<'_>) -> nix::Result<SocketMemory> {
    Err(Errno::ENOPROTOOPT)
}

/// Parses one table line; `None` for the header or anything malformed.
fn parse_line(line: &str) -> Option<UdpEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // Column 0 is the slot, "1234:"; the header's "sl" fails here.
    fields.first()?.strip_suffix(':')?.parse::<u64>().ok()?;
    let local = parse_endpoint(fields.get(1)?)?;
    let remote = parse_endpoint(fields.get(2)?)?;
    let state = fields.get(3)?;
    let (tx, rx) = fields.get(4)?.split_once(':')?;
    let uid = fields.get(7)?.parse::<u32>().ok()?;
    let inode = fields.get(9)?.parse::<u64>().ok()?;
    // After the inode: the reference count, the kernel pointer (zeros for
    // unprivileged readers), then drops.
    let drops = fields.get(12)?.parse::<u64>().ok()?;
    Some(UdpEntry {
        local,
        remote,
        connected: *state == "01",
        tx_queue: parse_hex_u32(tx)?,
        rx_queue: parse_hex_u32(rx)?,
        uid,
        inode,
        drops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    const FIXTURE: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  365: 0100007F:22B8 00000000:0000 07 00000000:00000900 00:00000000 00000000  1000        0 41234 2 0000000000000000 734
  366: 0100007F:A1B2 0100007F:22B8 01 00000000:00000000 00:00000000 00000000     0        0 41235 2 0000000000000000 0
garbage line
  367: 0100007F:22B8 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41236
";

    #[test]
    fn parses_addresses_queues_inode_and_drops() {
        let entries = parse_udp_table(FIXTURE);
        assert_eq!(
            entries.len(),
            2,
            "the header, garbage and a cut line are skipped"
        );
        let server = &entries[0];
        assert_eq!(server.local, "127.0.0.1:8888".parse().unwrap());
        assert_eq!(server.remote, "0.0.0.0:0".parse().unwrap());
        assert!(!server.connected);
        assert_eq!(server.rx_queue, 0x900);
        assert_eq!(server.uid, 1000);
        assert_eq!(server.inode, 41234);
        assert_eq!(server.drops, 734);
        let client = &entries[1];
        assert!(client.connected);
        assert_eq!(client.remote, "127.0.0.1:8888".parse().unwrap());
    }

    #[test]
    fn finds_a_socket_of_ours_by_inode() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let inode = crate::kernel::socket_inode_of(socket.as_fd()).expect("inode");
        let entry = udp_socket(inode)
            .expect("read")
            .expect("our socket is listed");
        assert_eq!(entry.local, socket.local_addr().unwrap());
        assert_eq!(entry.drops, 0);
        assert_eq!(udp_socket(0).expect("read"), None);
        let on_port = udp_sockets_on_port(entry.local.port()).expect("read");
        assert!(on_port.iter().any(|e| e.inode == inode));
    }

    #[test]
    fn so_meminfo_sees_a_queued_datagram() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let empty = socket_memory(socket.as_fd()).expect("SO_MEMINFO");
        assert_eq!((empty.rmem_alloc, empty.drops), (0, 0));
        assert!(empty.rcvbuf > 0);
        socket
            .send_to(b"hi", socket.local_addr().unwrap())
            .expect("send");
        let queued = socket_memory(socket.as_fd()).expect("SO_MEMINFO");
        assert!(
            queued.rmem_alloc > 2,
            "truesize counts more than the payload: {queued:?}"
        );
    }
}
