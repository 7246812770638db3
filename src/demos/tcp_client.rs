//! # tcp-client: connect, talk, close, and what goes wrong
//!
//! The other half of the first TCP lesson. The client makes the handshake
//! with connect(), lets the kernel pick its local port, sends and receives,
//! and closes. Along the way it shows every classic failure by name:
//! ECONNREFUSED (nothing listens), recv() returning 0 (the server closed
//! first), EPIPE or death by SIGPIPE (writing to a connection the server has
//! closed), ECONNRESET (the server reset it). At the end it reads from
//! /proc/net/tcp which end of the connection is left in TIME_WAIT.
//!
//! System calls, in order: sigaction(SIGPIPE), socket, connect, getsockname,
//! then send and recv for each message (or each line read from stdin),
//! shutdown(SHUT_WR) with --half-close, close.
//!
//! Try it (with `netlab tcp-server` running in another terminal):
//!
//! ```text
//! netlab tcp-client --message hello --message world
//! netlab tcp-client --message hello --half-close
//! netlab tcp-client                   # type lines; Ctrl-D ends
//! ```
//!
//! Lesson: `netlab lesson tcp`.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{
    connect, recv, send, shutdown, socket, MsgFlags, Shutdown, SockFlag, SockType,
};
use serde_json::json;

use super::{sigpipe, stdin_lines};
use crate::cli::SigpipeChoice;
use crate::error::Failure;
use crate::kernel::{self, TcpState};
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{errno_name, Fact, Narrator};
use crate::stop;
use crate::sys;

const SHOW_CHARS: usize = 60;

/// What we know about the connection as the conversation goes on.
struct Connection {
    fd: OwnedFd,
    local: SocketAddr,
    server: SocketAddr,
    /// recv() returned 0: the server sent FIN.
    server_closed: bool,
    /// We sent our FIN (shutdown) before the server sent its own.
    we_closed_first: bool,
    /// A call failed with EPIPE or ECONNRESET: the connection is dead.
    broken: Option<Errno>,
}

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The server's address (an IP address or a host name).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// The server's port.
    #[arg(long, short, default_value_t = 8888)]
    pub port: u16,

    /// Send this text (repeat the flag for several messages). Without it, each
    /// line typed on standard input is sent, until Ctrl-D.
    #[arg(long, short, value_name = "TEXT")]
    pub message: Vec<String>,

    /// After sending, call shutdown(SHUT_WR) and read until the server closes.
    #[arg(long)]
    pub half_close: bool,

    /// What SIGPIPE does to this process when it writes to a closed connection.
    #[arg(long, value_enum, default_value_t = SigpipeChoice::Ignore)]
    pub sigpipe: SigpipeChoice,

    /// How many bytes each recv() asks for.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub bufsize: u32,
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "tcp-client",
        "tcp",
        "A TCP client: connect, send, receive, close, and the errors you meet when the other side is gone.",
    );
    // Nothing here but descriptors: `q` in --step may end the run at once.
    nar.may_end_at_any_step();
    let server = sys::resolve(&args.host, args.port)?;
    sigpipe::set(nar, args.sigpipe)?;

    let Some(mut conn) = connect_to(nar, server)? else {
        return Ok(()); // interrupted before the handshake finished
    };
    let mut buf = vec![0u8; args.bufsize as usize];

    if args.message.is_empty() {
        // Interactive, like the course's client: each line typed is one message.
        let how = "Type a line and press Enter to send it; Ctrl-D ends the input.";
        stdin_lines::send_each_line(nar, how, |line| {
            exchange(nar, args, &mut conn, line, &mut buf);
            conn.broken.is_none()
        })?;
    } else {
        for message in &args.message {
            if stop::requested().is_some() || conn.broken.is_some() {
                break;
            }
            exchange(nar, args, &mut conn, message.as_bytes(), &mut buf);
        }
    }

    if args.half_close && conn.broken.is_none() && stop::requested().is_none() {
        half_close(nar, &mut conn, &mut buf);
    }
    let Connection {
        fd,
        local,
        server,
        broken,
        we_closed_first,
        ..
    } = conn;
    close_and_look(nar, fd, local, server, we_closed_first)?;

    match broken {
        Some(errno) => Err(Failure::with_hint(
            format!(
                "the connection broke: {} ({})",
                errno_name(errno),
                errno.desc()
            ),
            "the server closed or reset the connection before every message was delivered",
        )
        .into()),
        None => Ok(()),
    }
}

/// socket, connect, getsockname. None if a stop interrupted the handshake.
fn connect_to(nar: &Narrator, server: SocketAddr) -> Result<Option<Connection>> {
    let step = nar.call(
        "socket",
        format!("{}, SOCK_STREAM, 0", sys::family_name(&server)),
    );
    let fd = step.check(
        socket(
            sys::family_of(&server),
            SockType::Stream,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let raw = fd.as_raw_fd();

    // connect(): the kernel sends SYN, waits for SYN+ACK, answers ACK.
    let step = nar.blocking(
        "connect",
        format!("fd {raw}, {server}"),
        format!("waiting for the handshake with {server}"),
    );
    match connect(raw, &sys::to_kernel(server)) {
        Ok(()) => step.ok("0"),
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            return Ok(None);
        }
        Err(errno) => {
            step.fail(errno);
            return Err(connect_failure(nar, errno, server).into());
        }
    }
    nar.tcp_state(fd.as_fd());

    // getsockname(): we never chose a local port; the kernel did.
    let step = nar.call("getsockname", format!("fd {raw}"));
    let local = step.check(sys::local_addr(raw), |addr| addr.to_string())?;
    match kernel::sysctl::local_port_range() {
        Ok((low, high)) => nar.kernel(Fact::new(
            "net.ipv4.ip_local_port_range",
            "local_port_range",
            json!({ "low": low, "high": high, "port": local.port() }),
            "/proc/sys/net/ipv4/ip_local_port_range",
            format!(
                "the kernel picked local port {} from the ephemeral range {low}-{high}",
                local.port()
            ),
        )),
        Err(err) => nar.kernel(Fact::unavailable(
            "net.ipv4.ip_local_port_range",
            "local_port_range",
            "/proc/sys/net/ipv4/ip_local_port_range",
            err,
        )),
    }
    nar.note("A client rarely calls bind(): connect() binds it to this machine's address and a free ephemeral port.");
    nar.info(
        "connected",
        json!({ "local": local.to_string(), "server": server.to_string() }),
        format!("connected from {local} to {server}"),
    );
    Ok(Some(Connection {
        fd,
        local,
        server,
        server_closed: false,
        we_closed_first: false,
        broken: None,
    }))
}

/// Explain a failed connect() and what to do about it.
fn connect_failure(nar: &Narrator, errno: Errno, server: SocketAddr) -> Failure {
    match errno {
        Errno::ECONNREFUSED => {
            nar.note("ECONNREFUSED: nothing listens on that port, so the server machine's kernel answered our SYN with RST.");
            let message = format!("could not connect to {server}: connection refused");
            let port = server.port();
            // A server can never be started on the port to suggest when it
            // is 0 (bind takes 0 as "any free port") or, without root, a
            // port below the unprivileged start (1024 by default).
            let first_free = kernel::sysctl::unprivileged_port_start().unwrap_or(1024);
            if port == 0 {
                Failure::with_hint(message, "port 0 is no server's port: `netlab tcp-server --port 0` gets a free port from the kernel and prints it (`listening on ...`); pass that port to --port")
            } else if port < first_free {
                Failure::with_hint(
                    message,
                    format!("a server on port {port} needs root (ports below {first_free} are privileged); start one on a free port with `netlab tcp-server --port 0` and pass the port it prints to --port"),
                )
            } else {
                Failure::with_hint(
                    message,
                    format!("start a server first, e.g. `netlab tcp-server --port {port}`"),
                )
            }
        }
        Errno::ETIMEDOUT => Failure::new(
            format!("could not connect to {server}: no answer (timed out)"),
            Some("a firewall may drop the SYN, or the host is down"),
        ),
        Errno::ENETUNREACH | Errno::EHOSTUNREACH => Failure::new(
            format!("could not connect to {server}: no route to that network or host"),
            Some("check the address; `ip route` shows where this machine can send"),
        ),
        other => Failure::new(
            format!(
                "could not connect to {server}: {} ({})",
                errno_name(other),
                other.desc()
            ),
            None,
        ),
    }
}

/// Send one message and, unless we half-close later, read one reply.
fn exchange(nar: &Narrator, args: &Args, conn: &mut Connection, message: &[u8], buf: &mut [u8]) {
    if message.is_empty() {
        // send() of 0 bytes puts nothing on the wire, and an echo server
        // would have nothing to answer: waiting for a reply would hang.
        nar.note("An empty message is skipped: a byte stream has no empty messages, so zero bytes would send nothing and no reply would come.");
        return;
    }
    if conn.server_closed {
        nar.note("The server has already closed its end, but we send anyway, to see what the kernel does with data for a closed connection.");
        if args.sigpipe == SigpipeChoice::Default {
            nar.note("With SIGPIPE at its default, if this write meets a reset connection the process dies right here; a shell then shows exit status 141 (128 + signal 13).");
        }
    }
    if let Err(errno) = send_all(nar, conn, message) {
        if errno != Errno::EINTR {
            conn.broken = Some(errno);
        }
        return;
    }
    if conn.server_closed {
        // The server's kernel has no socket for our data and answers RST.
        nar.tcp_state(conn.fd.as_fd());
        nar.note("The first write after the server closed still succeeds: the kernel queued it. The server's kernel answers it with RST, and the next write fails.");
    }
    if !args.half_close && !conn.server_closed {
        receive_once(nar, conn, buf);
    }
}

/// send() until all of `data` is out, narrating each call.
fn send_all(nar: &Narrator, conn: &Connection, data: &[u8]) -> Result<(), Errno> {
    let fd = conn.fd.as_raw_fd();
    let mut sent = 0;
    while sent < data.len() {
        let rest = &data[sent..];
        let step = nar.call(
            "send",
            format!(
                "fd {fd}, {}: {}, 0",
                bytes(rest.len()),
                show_bytes(rest, SHOW_CHARS)
            ),
        );
        match send(fd, rest, MsgFlags::empty()) {
            Ok(count) => {
                step.ok_value(count as i64, bytes(count));
                sent += count;
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if stop::requested().is_some() {
                    return Err(Errno::EINTR);
                }
            }
            Err(errno) => {
                step.fail(errno);
                match errno {
                    Errno::EPIPE => nar.note("EPIPE: the connection is closed in both directions now (the server's RST arrived), so the kernel refuses the write. SIGPIPE is ignored, so we live to report it."),
                    Errno::ECONNRESET => nar.note("ECONNRESET: the server reset the connection; the data cannot be delivered."),
                    _ => {}
                }
                return Err(errno);
            }
        }
    }
    Ok(())
}

/// One recv(): the reply, or the news that the server closed or reset.
fn receive_once(nar: &Narrator, conn: &mut Connection, buf: &mut [u8]) -> usize {
    let fd = conn.fd.as_raw_fd();
    let step = nar.blocking(
        "recv",
        format!("fd {fd}, {}, 0", bytes(buf.len())),
        format!("waiting for data from {}", conn.server),
    );
    match recv(fd, buf, MsgFlags::empty()) {
        Ok(0) => {
            step.ok_value(0, "0: end of stream");
            nar.note("recv() returned 0: the server closed its end (it sent FIN). It will send nothing more.");
            conn.server_closed = true;
            explain_state_after_fin(nar, conn);
            0
        }
        Ok(received) => {
            step.ok_value(
                received as i64,
                format!(
                    "{}: {}",
                    bytes(received),
                    show_bytes(&buf[..received], SHOW_CHARS)
                ),
            );
            nar.info(
                "reply",
                json!({ "bytes": received }),
                format!("the server answered {}", bytes(received)),
            );
            received
        }
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            0
        }
        Err(errno) => {
            step.fail(errno);
            if errno == Errno::ECONNRESET {
                nar.note("ECONNRESET: the server reset the connection (RST), for example by closing it with data still unread or by being killed.");
            }
            conn.broken = Some(errno);
            0
        }
    }
}

/// shutdown(SHUT_WR): "I have nothing more to send", while still reading.
fn half_close(nar: &Narrator, conn: &mut Connection, buf: &mut [u8]) {
    let fd = conn.fd.as_raw_fd();
    let step = nar.call("shutdown", format!("fd {fd}, SHUT_WR"));
    if let Err(errno) = step.check(shutdown(fd, Shutdown::Write), |_| "0".into()) {
        conn.broken = Some(errno);
        return;
    }
    nar.note("shutdown(SHUT_WR) sends FIN but keeps the socket open for reading: the server sees end of stream, and can still answer.");
    conn.we_closed_first = !conn.server_closed;
    explain_state_after_fin(nar, conn);
    while !conn.server_closed && conn.broken.is_none() && stop::requested().is_none() {
        receive_once(nar, conn, buf);
    }
}

/// Read our socket's state after a FIN went one way or the other. TCP_INFO
/// may already say CLOSE while we can still read, for two different reasons;
/// /proc/net/tcp tells them apart, so read it too and explain what it shows.
fn explain_state_after_fin(nar: &Narrator, conn: &Connection) {
    if nar.tcp_state(conn.fd.as_fd()) != Some(TcpState::Close) {
        return;
    }
    match nar.connection_state(conn.local, conn.server, "this client's end") {
        Some(TcpState::TimeWait) => nar.note("TCP_INFO says CLOSE although we can still read: both FINs have crossed, and the kernel keeps the connection's last phase in a separate TIME_WAIT record. The socket itself only holds the bytes not read yet."),
        None => nar.note("TCP_INFO says CLOSE and /proc/net/tcp has no trace of the connection: the server's kernel answered with RST, which ends a connection at once, without TIME_WAIT."),
        Some(_) => {}
    }
}

/// close(), then read from /proc/net/tcp where each end of the connection
/// is now: the side that closed first is the one left in TIME_WAIT.
fn close_and_look(
    nar: &Narrator,
    fd: OwnedFd,
    local: SocketAddr,
    server: SocketAddr,
    we_closed_first: bool,
) -> Result<()> {
    let step = nar.call("close", format!("fd {}", fd.as_raw_fd()));
    step.check(nix::unistd::close(fd), |_| "0".into())?;
    // First what the kernel says, then the explanation that fits it.
    let ours = nar.connection_state(local, server, "this client's end");
    if sys::is_on_this_machine(server.ip()) {
        nar.connection_state(server, local, "the server's end");
    }
    match ours {
        Some(TcpState::TimeWait) if we_closed_first => nar.note("We sent the first FIN (with shutdown), so our end is the one left in TIME_WAIT, for 60 seconds, so that late packets of this connection cannot confuse a new one."),
        Some(TcpState::FinWait1 | TcpState::FinWait2) => nar.note("Our FIN went out, but the server has not sent its own FIN yet, so our end is not in TIME_WAIT: no program holds it any more, and the kernel drops it after net.ipv4.tcp_fin_timeout seconds unless the server's FIN arrives first."),
        _ => nar.note("The end that sends the first FIN waits in TIME_WAIT for 60 seconds, so that late packets of this connection cannot confuse a new one. The kernel lines above say which end that is."),
    }
    Ok(())
}
