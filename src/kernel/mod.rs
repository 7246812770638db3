//! Read-only evidence from the Linux kernel.
//!
//! netlab narrates what the kernel does while a demo makes real system
//! calls. Every claim in that narration ("fd 4 is CLOSE_WAIT", "two
//! connections wait in the accept queue", "the child is a zombie") must be
//! something the kernel told us *in that run*, not something we assume.
//! This module is where those facts are read. It never changes anything: it
//! only asks the kernel questions, through these windows:
//!
//! | file                      | window into the kernel |
//! |---------------------------|------------------------|
//! | [`tcp_info`](mod@tcp_info) | `getsockopt(TCP_INFO)`: one socket's TCP state and counters, and a listener's accept queue |
//! | [`proc_net`]              | `/proc/net/tcp` and `/proc/net/tcp6`: every TCP socket in this network namespace, with addresses, queues and inode |
//! | [`process`]               | `/proc/PID/stat`: a process's (or thread's) state letter, parent, threads and CPU time |
//! | [`fds`]                   | `/proc/PID/fd`: what each file descriptor of a process points at (socket, pipe, file, ...) |
//! | [`sysctl`]                | `/proc/sys/net/...`: the tunables that shape what we see (port range, `somaxconn`, ...) |
//! | [`broadcast`]             | `/proc/net/fib_trie`: the addresses the kernel treats as broadcast |
//! | [`socket_limits`]         | `/proc/sys/net/core/rmem_max`, `wmem_max`: the caps on SO_RCVBUF and SO_SNDBUF |
//! | [`udp`]                   | `/proc/net/udp` and `/proc/net/udp6`: every UDP socket, with its queues and its count of dropped datagrams |
//! | [`snmp`]                  | `/proc/net/snmp`: the namespace's protocol counters (`Udp RcvbufErrors`, `Udp NoPorts`, `Icmp InDestUnreachs`, ...) |
//! | [`io`]                    | `ioctl(SIOCINQ/SIOCOUTQ)`, `/proc/PID/task/TID/wchan`, `getrusage`: bytes waiting in a socket's queues, where a thread sleeps, its CPU time |
//! | [`proc_unix`]             | `/proc/net/unix`: every Unix domain socket, with its state and bound name |
//!
//! The TCP state machine itself, [`TcpState`], lives here because both
//! `getsockopt(TCP_INFO)` and `/proc/net/tcp` report it with the same
//! numbers.
//!
//! Errors: nothing read from the kernel is trusted to be well formed. A
//! surprise becomes an `Err` (usually `io::ErrorKind::InvalidData` or
//! `Errno::EPROTO`), never a panic.

// This module is a small library inside the binary: it offers a complete,
// documented API even though a given version of the demos may not call every
// item. In a binary crate unused `pub` items would otherwise warn.
#![allow(dead_code)]

pub mod broadcast;
pub mod fds;
pub mod io;
pub mod proc_net;
pub mod proc_unix;
pub mod process;
pub mod snmp;
pub mod socket_limits;
pub mod sysctl;
pub mod tcp_info;
pub mod udp;

// The main items, re-exported so callers can write `kernel::tcp_info(fd)`.
// A binary that does not use all of them would otherwise warn.
#[allow(unused_imports)]
pub use fds::{classify, list_fds, socket_inode_of, FdEntry, FdKind};
#[allow(unused_imports)]
pub use proc_net::{
    connection, connections_matching, entries_on_local_port, find_by_inode, find_connection,
    parse_tcp_table, read_tcp_table, TcpEntry,
};
#[allow(unused_imports)]
pub use process::{
    children_of, clock_ticks_per_second, parse_stat, read_stat, read_task_stat, state_name,
    ProcStat,
};
#[allow(unused_imports)]
pub use sysctl::{
    local_port_range, parse_port_range, somaxconn, tcp_fin_timeout, unprivileged_port_start,
};
#[allow(unused_imports)]
pub use tcp_info::{listen_queue, tcp_info, ListenQueue, TcpInfo};

use std::fmt;

/// TCP states with the kernel's numbering (include/net/tcp_states.h): 1 ESTABLISHED ... 12 NEW_SYN_RECV.
///
/// The same numbers appear in `tcpi_state` of `getsockopt(TCP_INFO)` and,
/// printed as two hex digits, in the `st` column of `/proc/net/tcp`
/// (`0A` is LISTEN, `06` is TIME_WAIT).
///
/// A typical life, with the side that closes first ("active close") on the
/// left and the other side ("passive close") on the right:
///
/// ```text
/// client: SYN_SENT -> ESTABLISHED -> FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT -> (gone)
/// server: LISTEN .. SYN_RECV -> ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> (gone)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// 1: the connection is open; data flows both ways.
    Established,
    /// 2: `connect()` sent a SYN and waits for the SYN-ACK.
    SynSent,
    /// 3: a SYN arrived and was answered; waiting for the handshake's last ACK.
    SynRecv,
    /// 4: this side closed and sent FIN; waiting for the peer to ACK it.
    FinWait1,
    /// 5: our FIN was acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// 6: both FINs exchanged and this side closed first; lingering 60 s.
    TimeWait,
    /// 7: no connection (a fresh socket, or one that is fully closed).
    Close,
    /// 8: the peer sent FIN; waiting for this program to `close()`.
    CloseWait,
    /// 9: the peer closed first, we then sent our FIN; waiting for its ACK.
    LastAck,
    /// 10: a listening socket (`listen()` was called).
    Listen,
    /// 11: both sides sent FIN at the same time (simultaneous close).
    Closing,
    /// 12: a lightweight "request socket" for a half-open connection in a
    /// listener's SYN queue (Linux 4.4 and later).
    NewSynRecv,
}

impl TcpState {
    /// Every state, in the kernel's numeric order (1 to 12).
    pub const ALL: [TcpState; 12] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
    ];

    /// Converts the kernel's state number (`tcpi_state`, or the `st` column
    /// of `/proc/net/tcp`) into a state. Returns `None` for a number the
    /// kernel does not use for TCP sockets (0, or anything above 12).
    pub fn from_kernel(code: u8) -> Option<TcpState> {
        // The enum is in kernel order, so code N is ALL[N - 1].
        let index = usize::from(code).checked_sub(1)?;
        TcpState::ALL.get(index).copied()
    }

    /// The kernel's number for this state (the inverse of [`TcpState::from_kernel`]).
    pub fn code(self) -> u8 {
        match self {
            TcpState::Established => 1,
            TcpState::SynSent => 2,
            TcpState::SynRecv => 3,
            TcpState::FinWait1 => 4,
            TcpState::FinWait2 => 5,
            TcpState::TimeWait => 6,
            TcpState::Close => 7,
            TcpState::CloseWait => 8,
            TcpState::LastAck => 9,
            TcpState::Listen => 10,
            TcpState::Closing => 11,
            TcpState::NewSynRecv => 12,
        }
    }

    /// The state's name as `ss` and the kernel sources spell it, with
    /// underscores: `"ESTABLISHED"`, `"CLOSE_WAIT"`, `"FIN_WAIT1"`, ...
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "NEW_SYN_RECV",
        }
    }

    /// One whole sentence that explains the state to a student.
    pub fn meaning(self) -> &'static str {
        match self {
            TcpState::Established => {
                "The three-way handshake is complete and both sides can send and receive data."
            }
            TcpState::SynSent => {
                "This side has sent a SYN to open a connection and waits for the peer's SYN-ACK."
            }
            TcpState::SynRecv => {
                "A SYN arrived and was answered with a SYN-ACK; the kernel waits for the final ACK of the handshake."
            }
            TcpState::FinWait1 => {
                "This side closed its end and sent a FIN; it waits for the peer to acknowledge it."
            }
            TcpState::FinWait2 => {
                "The peer acknowledged this side's FIN; the connection waits for the peer to send its own FIN."
            }
            TcpState::TimeWait => {
                "This side closed first and waits (60 s on Linux) so that late packets of the old connection die out."
            }
            TcpState::Close => {
                "The socket has no connection: it is new, or its connection is completely finished."
            }
            TcpState::CloseWait => {
                "The peer has sent FIN; the connection waits for this program to close its end."
            }
            TcpState::LastAck => {
                "The peer closed first and this side has now sent its own FIN; it waits for the peer's final ACK."
            }
            TcpState::Listen => {
                "The socket waits for connections; the kernel completes handshakes on its own and queues them for accept()."
            }
            TcpState::Closing => {
                "Both sides sent FIN at the same moment; this side waits for the peer to acknowledge its FIN."
            }
            TcpState::NewSynRecv => {
                "A half-open connection in a listener's SYN queue: the kernel answered the SYN and waits for the handshake's final ACK."
            }
        }
    }

    /// True for states that normally last only about one round trip
    /// (FIN_WAIT1, LAST_ACK, CLOSING, SYN_SENT, SYN_RECV and NEW_SYN_RECV).
    ///
    /// Seeing a socket stuck in one of them usually means packets are not
    /// getting through. The long-lived states are ESTABLISHED, LISTEN,
    /// CLOSE_WAIT (lasts until the program closes), FIN_WAIT2 (until the peer
    /// closes), TIME_WAIT (60 s) and CLOSE.
    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            TcpState::FinWait1
                | TcpState::LastAck
                | TcpState::Closing
                | TcpState::SynSent
                | TcpState::SynRecv
                | TcpState::NewSynRecv
        )
    }
}

impl fmt::Display for TcpState {
    /// Prints [`TcpState::name`], e.g. `CLOSE_WAIT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::TcpState;

    #[test]
    fn kernel_numbers_round_trip() {
        for code in 1..=12u8 {
            let state = TcpState::from_kernel(code).expect("1..=12 are TCP states");
            assert_eq!(state.code(), code);
        }
        assert_eq!(TcpState::from_kernel(0), None);
        assert_eq!(TcpState::from_kernel(13), None);
        assert_eq!(TcpState::from_kernel(255), None);
        // Spot checks against include/net/tcp_states.h.
        assert_eq!(TcpState::from_kernel(1), Some(TcpState::Established));
        assert_eq!(TcpState::from_kernel(6), Some(TcpState::TimeWait));
        assert_eq!(TcpState::from_kernel(8), Some(TcpState::CloseWait));
        assert_eq!(TcpState::from_kernel(0x0A), Some(TcpState::Listen));
        assert_eq!(TcpState::from_kernel(12), Some(TcpState::NewSynRecv));
    }

    #[test]
    fn names_meanings_and_display() {
        assert_eq!(TcpState::CloseWait.name(), "CLOSE_WAIT");
        assert_eq!(TcpState::FinWait1.to_string(), "FIN_WAIT1");
        assert_eq!(TcpState::NewSynRecv.to_string(), "NEW_SYN_RECV");
        for state in TcpState::ALL {
            let meaning = state.meaning();
            assert!(meaning.ends_with('.'), "{state}: {meaning}");
            assert!(meaning.starts_with(char::is_uppercase), "{state}");
            assert_eq!(state.to_string(), state.name());
        }
        assert!(TcpState::LastAck.is_transitional());
        assert!(TcpState::SynSent.is_transitional());
        assert!(!TcpState::TimeWait.is_transitional());
        assert!(!TcpState::CloseWait.is_transitional());
        assert!(!TcpState::Established.is_transitional());
    }
}
