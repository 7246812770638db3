//! One socket's TCP state, straight from the kernel: `getsockopt(TCP_INFO)`.
//!
//! `getsockopt(fd, IPPROTO_TCP, TCP_INFO, ...)` fills a `struct tcp_info`
//! (include/uapi/linux/tcp.h) with what the kernel's TCP code knows about
//! the socket behind `fd`: its state, round-trip time estimate, congestion
//! window, how many segments are in flight, how many were retransmitted.
//! This is how netlab can say "fd 4 is CLOSE_WAIT" about a socket it holds,
//! without looking it up in `/proc/net/tcp`.
//!
//! nix has no wrapper for `TCP_INFO`, so this file calls `libc::getsockopt`
//! directly, inside the one `unsafe` block of this file. (The only other
//! `unsafe` in `kernel/` is the plain-integer `sysconf` call in `process.rs`.)
//!
//! A kernel fact worth knowing: for a socket in LISTEN, two fields change
//! meaning. There is no peer and nothing is ever "unacknowledged", so the
//! kernel (`tcp_get_info()` in net/ipv4/tcp.c) reuses `tcpi_unacked` for
//! the accept-queue length and `tcpi_sacked` for the accept-queue limit.
//! [`listen_queue`] reads them that way.

use std::mem::{self, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use super::TcpState;

/// A digest of `struct tcp_info` for one TCP socket.
///
/// The kernel fills many more fields; these are the ones netlab narrates.
/// Times are in microseconds, window and queue sizes are in segments
/// (packets), not bytes, except the MSS fields, which are in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// The connection's state (`tcpi_state`).
    pub state: TcpState,
    /// Smoothed round-trip time estimate, in microseconds (`tcpi_rtt`).
    /// Over loopback it is tiny (tens of microseconds); 0 before any
    /// measurement.
    pub rtt_us: u32,
    /// How much the round-trip time varies, in microseconds (`tcpi_rttvar`).
    pub rttvar_us: u32,
    /// Congestion window: how many segments the sender may have in flight
    /// (`tcpi_snd_cwnd`). Starts at 10 on modern Linux.
    pub snd_cwnd: u32,
    /// Segments sent but not yet acknowledged (`tcpi_unacked`).
    /// **For a LISTEN socket: connections waiting for `accept()`.**
    pub unacked: u32,
    /// Segments the peer reported as received out of order via SACK
    /// (`tcpi_sacked`). **For a LISTEN socket: the accept-queue limit.**
    pub sacked: u32,
    /// Segments the kernel believes were lost (`tcpi_lost`).
    pub lost: u32,
    /// Retransmissions of the current unacknowledged data, counting the
    /// timeouts in a row (`tcpi_retransmits`).
    pub retransmits: u8,
    /// Segments retransmitted over the whole life of the connection
    /// (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Maximum segment size this side sends, in bytes (`tcpi_snd_mss`).
    pub snd_mss: u32,
    /// Maximum segment size estimated for what this side receives, in bytes
    /// (`tcpi_rcv_mss`).
    pub rcv_mss: u32,
}

/// A listening socket's accept queue, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenQueue {
    /// Connections whose three-way handshake is complete and which wait
    /// for the program to call `accept()` (the kernel's `sk_ack_backlog`).
    pub waiting: u32,
    /// The most connections the queue may hold (`sk_max_ack_backlog`): the
    /// `backlog` given to `listen()`, capped by `net.core.somaxconn`.
    pub backlog: u32,
}

/// Asks the kernel for `TCP_INFO` on a TCP socket.
///
/// Errors: the kernel's own error for a file descriptor that is not a TCP
/// socket (`ENOTSOCK`, `EOPNOTSUPP`, `ENOPROTOOPT`, ...), and `EPROTO` if
/// the kernel's answer is too short or carries a state number this program
/// does not know.
pub fn tcp_info(fd: BorrowedFd<'_>) -> nix::Result<TcpInfo> {
    let raw = raw_tcp_info(fd)?;
    let state = TcpState::from_kernel(raw.tcpi_state).ok_or(Errno::EPROTO)?;
    Ok(TcpInfo {
        state,
        rtt_us: raw.tcpi_rtt,
        rttvar_us: raw.tcpi_rttvar,
        snd_cwnd: raw.tcpi_snd_cwnd,
        unacked: raw.tcpi_unacked,
        sacked: raw.tcpi_sacked,
        lost: raw.tcpi_lost,
        retransmits: raw.tcpi_retransmits,
        total_retrans: raw.tcpi_total_retrans,
        snd_mss: raw.tcpi_snd_mss,
        rcv_mss: raw.tcpi_rcv_mss,
    })
}

/// The accept queue of a socket in LISTEN, from tcp_info: `tcpi_unacked`
/// is the number of connections whose handshake is complete and which wait
/// for accept(), `tcpi_sacked` the backlog limit (`sk_max_ack_backlog`).
/// Returns `Ok(None)` when the socket is not listening.
///
/// Connections still in the middle of their handshake are not counted
/// here: they sit in the separate SYN queue (as NEW_SYN_RECV request
/// sockets). Note that the kernel's "queue full" test is
/// `sk_ack_backlog > sk_max_ack_backlog` (greater, not greater-or-equal),
/// so `waiting` can reach `backlog + 1`.
pub fn listen_queue(fd: BorrowedFd<'_>) -> nix::Result<Option<ListenQueue>> {
    let info = tcp_info(fd)?;
    if info.state != TcpState::Listen {
        return Ok(None);
    }
    Ok(Some(ListenQueue {
        waiting: info.unacked,
        backlog: info.sacked,
    }))
}

/// The raw `getsockopt(IPPROTO_TCP, TCP_INFO)` call.
fn raw_tcp_info(fd: BorrowedFd<'_>) -> nix::Result<libc::tcp_info> {
    // Older kernels fill a shorter struct than libc's (fields were appended
    // over the years) and report how much they wrote in `len`. We need at
    // least everything up to and including `tcpi_total_retrans`, which every
    // Linux since 2.6 provides.
    const NEEDED: usize =
        mem::offset_of!(libc::tcp_info, tcpi_total_retrans) + mem::size_of::<u32>();

    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` points to writable memory of `size_of::<tcp_info>()`
    // bytes and `len` says exactly that, so the kernel writes at most that
    // many bytes. `fd` is a BorrowedFd, so it stays open during the call.
    // `tcp_info` is plain integers, for which all-zero bytes (from
    // `zeroed()`) are a valid value, so `assume_init` is sound even if the
    // kernel wrote fewer bytes than the whole struct.
    let (rc, info) = unsafe {
        let rc = libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast::<libc::c_void>(),
            &mut len,
        );
        (rc, info.assume_init())
    };
    Errno::result(rc)?;
    if (len as usize) < NEEDED {
        return Err(Errno::EPROTO);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::super::sysctl;
    use super::*;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    /// The backlog Rust's std passes to listen(2) on Linux.
    const STD_BACKLOG: u32 = 128;

    /// Polls `check` until it returns Some, for at most one second.
    fn poll<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(value) = check() {
                return Some(value);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn listener_queue_established_and_close_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");

        let info = tcp_info(listener.as_fd()).expect("tcp_info on listener");
        assert_eq!(info.state, TcpState::Listen);

        // The kernel caps the backlog at net.core.somaxconn.
        let somaxconn = sysctl::somaxconn().expect("read somaxconn");
        let queue = listen_queue(listener.as_fd())
            .expect("listen_queue")
            .expect("a listener has a queue");
        assert_eq!(queue.backlog, STD_BACKLOG.min(somaxconn));
        assert_eq!(queue.waiting, 0);

        // Two clients connect; nobody has called accept() yet, so the kernel
        // completes both handshakes and holds them in the accept queue.
        let client_a = TcpStream::connect(addr).expect("connect a");
        let _client_b = TcpStream::connect(addr).expect("connect b");
        let waiting = poll(|| {
            let q = listen_queue(listener.as_fd()).ok()??;
            (q.waiting == 2).then_some(q.waiting)
        });
        assert_eq!(waiting, Some(2), "two connections should wait for accept()");

        // accept() takes the oldest one off the queue: client_a's.
        let (server_a, peer) = listener.accept().expect("accept");
        assert_eq!(peer, client_a.local_addr().expect("client local_addr"));
        let info = tcp_info(server_a.as_fd()).expect("tcp_info on accepted");
        assert_eq!(info.state, TcpState::Established);
        assert!(info.snd_mss > 0);
        assert!(info.snd_cwnd > 0);
        assert_eq!(
            listen_queue(server_a.as_fd()).expect("listen_queue on accepted"),
            None
        );

        // The client shuts down its sending half: a FIN travels to the
        // server side, which moves to CLOSE_WAIT until it closes too.
        client_a.shutdown(Shutdown::Write).expect("shutdown");
        let state = poll(|| {
            let state = tcp_info(server_a.as_fd()).ok()?.state;
            (state == TcpState::CloseWait).then_some(state)
        });
        assert_eq!(state, Some(TcpState::CloseWait));
        // ...and the client, whose FIN was acknowledged, is in FIN_WAIT2.
        let state = poll(|| {
            let state = tcp_info(client_a.as_fd()).ok()?.state;
            (state == TcpState::FinWait2).then_some(state)
        });
        assert_eq!(state, Some(TcpState::FinWait2));
    }

    #[test]
    fn not_a_tcp_socket_is_an_error_not_a_panic() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        assert!(tcp_info(udp.as_fd()).is_err());
        let file = std::fs::File::open("/proc/self/stat").expect("open a file");
        assert_eq!(tcp_info(file.as_fd()), Err(Errno::ENOTSOCK));
    }

    #[test]
    fn fresh_socket_is_close() {
        // A TCP socket that has neither connected nor listened is CLOSE.
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        let info = tcp_info(fd.as_fd()).expect("tcp_info");
        assert_eq!(info.state, TcpState::Close);
        assert_eq!(listen_queue(fd.as_fd()).expect("listen_queue"), None);
    }
}
