//! Socket helpers for probes: every call has a deadline, so no probe can
//! wait forever on a program that never answers.
//!
//! Each helper turns "how long is left until the deadline" into a socket
//! timeout (SO_RCVTIMEO / SO_SNDTIMEO, through std) before it blocks, and
//! says precisely how a read ended: the bytes it got, and whether the
//! stream ended (FIN), was reset (RST), or the time ran out.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{setsockopt, sockopt};
use serde_json::json;

use crate::kernel::fds::{list_fds, FdKind};
use crate::kernel::{proc_net, TcpState};
use crate::narrate::text::show_bytes;
use crate::narrate::Fact;

/// Time left until `deadline`, at least 1 ms (a zero timeout means "never"
/// to SO_RCVTIMEO, the opposite of what a passed deadline means).
pub fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Has the deadline passed?
pub fn passed(deadline: Instant) -> bool {
    Instant::now() >= deadline
}

/// How a read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Got everything asked for.
    Complete,
    /// recv() returned 0: the program closed its side (FIN).
    Eof,
    /// ECONNRESET: the program's kernel sent RST.
    Reset,
    /// The deadline passed first.
    TimedOut,
    /// Any other error, as text.
    Error(String),
}

impl End {
    /// A few words for the report: "the connection was closed (FIN)".
    pub fn describe(&self) -> &'static str {
        match self {
            End::Complete => "everything arrived",
            End::Eof => "the program closed the connection (FIN)",
            End::Reset => "the connection was reset (RST)",
            End::TimedOut => "nothing more came before the time ran out",
            End::Error(_) => "the read failed",
        }
    }

    fn of(err: &io::Error) -> End {
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => End::TimedOut,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => End::Reset,
            _ => End::Error(err.to_string()),
        }
    }
}

/// Connect to `addr`, giving up at the deadline.
pub fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, left(deadline))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A sentence for a failed connect.
pub fn connect_failure(addr: SocketAddr, err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!(
                "connect() to {addr} was refused (ECONNREFUSED): nothing listens there any more"
            )
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
            "connect() to {addr} did not complete in time: the accept queue is probably full"
        ),
        _ => format!("connect() to {addr} failed: {err}"),
    }
}

/// Write all of `bytes`, looping over short writes, until the deadline.
/// Returns how many bytes were written and the error that stopped it.
pub fn write_all(
    stream: &mut TcpStream,
    bytes: &[u8],
    deadline: Instant,
) -> (usize, Option<io::Error>) {
    let mut sent = 0;
    while sent < bytes.len() {
        if passed(deadline) {
            return (sent, Some(io::Error::from(io::ErrorKind::TimedOut)));
        }
        if let Err(err) = stream.set_write_timeout(Some(left(deadline))) {
            return (sent, Some(err));
        }
        match stream.write(&bytes[sent..]) {
            Ok(0) => return (sent, Some(io::Error::from(io::ErrorKind::WriteZero))),
            Ok(n) => sent += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return (sent, Some(err)),
        }
    }
    (sent, None)
}

/// Read until `want` bytes have arrived, the stream ends, or the deadline.
pub fn read_exact(stream: &mut TcpStream, want: usize, deadline: Instant) -> (Vec<u8>, End) {
    let mut got = Vec::with_capacity(want.min(1 << 20));
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < want {
        if passed(deadline) {
            return (got, End::TimedOut);
        }
        if let Err(err) = stream.set_read_timeout(Some(left(deadline))) {
            return (got, End::Error(err.to_string()));
        }
        let room = (want - got.len()).min(buf.len());
        match stream.read(&mut buf[..room]) {
            Ok(0) => return (got, End::Eof),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return (got, End::of(&err)),
        }
    }
    (got, End::Complete)
}

/// Wait (up to the deadline) for the program to close its side after ours:
/// the next read returns 0 (FIN), or an error.
pub fn wait_for_eof(stream: &mut TcpStream, deadline: Instant) -> End {
    let (extra, end) = read_exact(stream, usize::MAX, deadline);
    if !extra.is_empty() && end == End::Eof {
        return End::Eof;
    }
    end
}

/// Half-close: we send FIN and can still read (shutdown(SHUT_WR)).
pub fn half_close(stream: &TcpStream) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)
}

/// Close with RST instead of FIN: SO_LINGER on with a zero timeout, then
/// close(). The program's next recv() fails with ECONNRESET.
pub fn reset(stream: TcpStream) -> io::Result<()> {
    setsockopt(
        &stream.as_fd(),
        sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .map_err(io::Error::from)?;
    drop(stream);
    Ok(())
}

/// Bytes for the report: printable text shown as text, the rest escaped,
/// long ones cut.
pub fn show(bytes: &[u8]) -> String {
    show_bytes(bytes, 60)
}

/// The program's side of the connection whose client end is `client`
/// (our socket): its TCP state, read from /proc/net/tcp now, as a fact.
/// Our local address is the program's remote, and the other way round.
pub fn server_side_state(client: &TcpStream) -> (Option<TcpState>, Fact) {
    let (Ok(ours), Ok(theirs)) = (client.local_addr(), client.peer_addr()) else {
        return (
            None,
            Fact::unavailable(
                "the connection",
                "tcp_state",
                "/proc/net/tcp",
                "the socket has no addresses",
            ),
        );
    };
    server_side_state_of(ours, theirs)
}

/// Like `server_side_state`, from the two addresses (usable after our
/// socket is closed): the line whose local is `server` and remote `client`.
pub fn server_side_state_of(client: SocketAddr, server: SocketAddr) -> (Option<TcpState>, Fact) {
    let subject = format!("{server} -> {client}");
    let source = tcp_table_of(server);
    match proc_net::connection(server, client) {
        Ok(Some(entry)) => (
            Some(entry.state),
            Fact::new(
                subject.clone(),
                "tcp_state",
                json!(entry.state.name()),
                source,
                format!("your program's end {subject} is {}", entry.state.name()),
            ),
        ),
        Ok(None) => (
            None,
            Fact::new(
                subject.clone(),
                "tcp_state",
                serde_json::Value::Null,
                source,
                format!("your program's end {subject} is gone: the kernel keeps nothing of it"),
            ),
        ),
        Err(err) => (None, Fact::unavailable(subject, "tcp_state", source, err)),
    }
}

/// The table that lists a TCP socket bound to `addr`: /proc/net/tcp6 for
/// IPv6 (IPv4-mapped included), /proc/net/tcp for IPv4.
pub fn tcp_table_of(addr: SocketAddr) -> &'static str {
    match addr {
        SocketAddr::V4(_) => proc_net::PROC_NET_TCP,
        SocketAddr::V6(_) => proc_net::PROC_NET_TCP6,
    }
}

/// Every connection on the program's port in CLOSE_WAIT (the client closed,
/// the program has not), read now.
pub fn close_wait_on(port: u16) -> (Vec<proc_net::TcpEntry>, Fact) {
    let subject = format!("port {port}");
    match proc_net::read_tcp_table() {
        Ok(entries) => {
            let waiting: Vec<proc_net::TcpEntry> = entries
                .into_iter()
                .filter(|e| e.local.port() == port && e.state == TcpState::CloseWait)
                .collect();
            let text = match waiting.len() {
                0 => format!("no connection on port {port} is in CLOSE_WAIT"),
                n => format!("{n} connection(s) on port {port} in CLOSE_WAIT: the client closed, your program has not"),
            };
            let fact = Fact::new(
                subject,
                "close_wait",
                json!(waiting.len()),
                "/proc/net/tcp, /proc/net/tcp6",
                text,
            );
            (waiting, fact)
        }
        Err(err) => (
            Vec::new(),
            Fact::unavailable(subject, "close_wait", "/proc/net/tcp, /proc/net/tcp6", err),
        ),
    }
}

/// How many descriptors process `pid` has open, and how many are sockets,
/// read from /proc/PID/fd now.
pub fn open_fds(pid: i32) -> Result<(usize, usize), Fact> {
    match list_fds(pid) {
        Ok(fds) => {
            let sockets = fds
                .iter()
                .filter(|e| matches!(e.kind, FdKind::Socket { .. }))
                .count();
            Ok((fds.len(), sockets))
        }
        Err(err) => Err(Fact::unavailable(
            format!("pid {pid}"),
            "open_fds",
            "/proc/PID/fd",
            err,
        )),
    }
}
