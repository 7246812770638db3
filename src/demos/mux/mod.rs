//! The three multiplexing echo servers: select, poll and epoll.
//!
//! An iterative server (`netlab tcp-server`) blocks in recv() on one client
//! while every other client waits. These three servers serve any number of
//! clients from one thread instead: they ask the kernel *which* sockets are
//! ready, and only then call accept(), recv() or send() on those, so no call
//! ever waits. Each demo's loop lives in its own file and follows its API's
//! real shape:
//!
//! | file        | the question asked of the kernel |
//! |-------------|----------------------------------|
//! | `select.rs` | three bit sets (read, write, error), copied in and out on every call, fds below FD_SETSIZE only |
//! | `poll.rs`   | an array of `{fd, events, revents}`, copied in and out on every call |
//! | `epoll.rs`  | an interest list kept in the kernel; epoll_wait returns only the ready fds |
//!
//! What a student need not read three times is here and in `conn.rs`: the
//! listening socket, the open-file limit, accepting clients, and one
//! client's echo with its unsent bytes.
//!
//! Lesson: `netlab lesson io-multiplexing`.

pub mod conn;
pub mod epoll;
pub mod poll;
pub mod select;

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::socket::{bind, listen, setsockopt, socket, sockopt, Backlog, SockFlag, SockType};
use serde_json::json;

use super::{accept, sigpipe};
use crate::cli::SigpipeChoice;
use crate::error::Failure;
use crate::narrate::{errno_name, Narrator};
use crate::sys;
use conn::Conn;

/// The flags the three servers share (each demo adds its own).
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The local address to bind: 0.0.0.0 accepts clients on every interface,
    /// 127.0.0.1 only from this machine, :: or ::1 for IPv6.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,

    /// The port to listen on; 0 lets the kernel pick a free one.
    #[arg(long, short, default_value_t = 8888)]
    pub port: u16,

    /// listen()'s backlog. A server for thousands of clients needs a long
    /// accept queue: they may all connect in the same instant.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(i32).range(0..=65535))]
    pub backlog: i32,

    /// How many bytes each recv() asks for (one buffer shared by all clients).
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub bufsize: u32,

    /// Set SO_SNDBUF on every client socket to this many bytes (the kernel
    /// doubles it). A small send buffer makes short writes easy to see.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub sndbuf: Option<u32>,
}

/// RLIMIT_NOFILE: every client is one file descriptor, and the soft limit
/// (often 1024) would stop us long before 10,000 clients. A process may
/// raise its own soft limit up to the hard limit without privileges.
pub fn raise_fd_limit(nar: &Narrator) -> Result<()> {
    let step = nar.call("getrlimit", "RLIMIT_NOFILE");
    let (soft, hard) = step.check(getrlimit(Resource::RLIMIT_NOFILE), |(soft, hard)| {
        format!("soft {}, hard {}", limit_text(*soft), limit_text(*hard))
    })?;
    if soft < hard {
        let step = nar.call(
            "setrlimit",
            format!(
                "RLIMIT_NOFILE, soft {}, hard {}",
                limit_text(hard),
                limit_text(hard)
            ),
        );
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                step.ok("0");
                nar.note("The soft limit on open files is raised to the hard limit, so this one process can hold thousands of client sockets at once.");
            }
            // Not fatal: the server works, it only holds fewer clients.
            Err(errno) => {
                step.fail(errno);
                nar.warning(
                    format!(
                        "cannot raise the open-file limit ({}); serving at most {} fds",
                        errno_name(errno),
                        limit_text(soft)
                    ),
                    Some("`ulimit -n` shows the limit in your shell"),
                );
            }
        }
    } else {
        nar.note("The soft limit on open files is already the hard limit: this process may open that many descriptors, clients included.");
    }
    // Read back what the kernel now enforces, rather than assume it.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?;
    nar.info(
        "fd_limit",
        json!({ "soft": soft, "hard": hard }),
        format!(
            "this process may now open {} file descriptors",
            limit_text(soft)
        ),
    );
    Ok(())
}

fn limit_text(limit: u64) -> String {
    if limit == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        limit.to_string()
    }
}

/// SIGPIPE ignored, then socket, setsockopt(SO_REUSEADDR), bind,
/// getsockname, listen: a non-blocking listening socket, announced.
pub fn open_listener(nar: &Narrator, args: &ServerArgs) -> Result<OwnedFd> {
    let wanted = sys::resolve(&args.host, args.port)?;
    // A client that vanishes must not kill the server: with SIGPIPE
    // ignored, a send to a dead connection fails with EPIPE instead.
    sigpipe::set(nar, SigpipeChoice::Ignore)?;

    // SOCK_NONBLOCK: the readiness APIs say "a client is waiting", but it may
    // give up before we accept it; a blocking accept() would then stall every
    // other client. Non-blocking, it fails with EAGAIN and we move on.
    let step = nar.call(
        "socket",
        format!(
            "{}, SOCK_STREAM | SOCK_NONBLOCK, 0",
            sys::family_name(&wanted)
        ),
    );
    let listen_fd = step.check(
        socket(
            sys::family_of(&wanted),
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK,
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let fd = listen_fd.as_raw_fd();
    nar.note("SOCK_NONBLOCK: with no client in the queue, accept() on this socket fails with EAGAIN instead of waiting. The loop calls it only after the kernel said a client waits, and stops at EAGAIN.");

    let step = nar.call(
        "setsockopt",
        format!("fd {fd}, SOL_SOCKET, SO_REUSEADDR, 1"),
    );
    step.check(setsockopt(&listen_fd, sockopt::ReuseAddr, &true), |_| {
        "0".into()
    })?;

    let step = nar.call("bind", format!("fd {fd}, {wanted}"));
    if let Err(errno) = bind(fd, &sys::to_kernel(wanted)) {
        step.fail(errno);
        return Err(bind_failure(errno, wanted, 8888).into());
    }
    step.ok("0");

    let step = nar.call("getsockname", format!("fd {fd}"));
    let bound = step.check(sys::local_addr(fd), |addr| addr.to_string())?;

    let step = nar.call("listen", format!("fd {fd}, backlog {}", args.backlog));
    let backlog = Backlog::new(args.backlog).context("the backlog is out of range")?;
    step.check(listen(&listen_fd, backlog), |_| "0".into())?;
    nar.listen_queue(listen_fd.as_fd());
    announce(nar, bound);
    Ok(listen_fd)
}

/// Why bind() failed, for a TCP server (mux's three and http-server):
/// EADDRINUSE here, every other errno through `Failure::of_bind`, whose
/// hint suggests `example_port`.
pub fn bind_failure(errno: Errno, wanted: SocketAddr, example_port: u16) -> Failure {
    match errno {
        Errno::EADDRINUSE => Failure::with_hint(
            format!(
                "cannot bind {wanted}: port {} is in use (Address already in use)",
                wanted.port()
            ),
            "stop the other server, or choose another port (--port 0 lets the kernel pick one)",
        ),
        other => Failure::of_bind(other, wanted, example_port),
    }
}

/// The start-up line, the same as tcp-server's: shown even with --quiet,
/// because without it nobody (no test, no benchmark) can connect.
fn announce(nar: &Narrator, bound: SocketAddr) {
    let target = sys::connectable(bound);
    nar.startup(
        "listening",
        json!({ "addr": bound.to_string(), "port": bound.port() }),
        format!(
            "listening on {bound}; try: nc {} {}",
            target.ip(),
            target.port()
        ),
    );
}

/// What one accept() gave.
pub enum Accepted {
    /// A new client, its socket already non-blocking.
    Client(Conn),
    /// The accept queue is empty (EAGAIN), or the call was interrupted.
    QueueEmpty,
    /// accept() failed for a reason that does not end the server.
    Failed,
}

/// accept(), then fcntl(O_NONBLOCK) on the new socket. The listening socket
/// is non-blocking, so with the queue empty this returns at once.
pub fn accept_client(
    nar: &Narrator,
    listen_fd: BorrowedFd<'_>,
    args: &ServerArgs,
) -> Result<Accepted> {
    let step = nar.call_with("accept", || format!("fd {}", listen_fd.as_raw_fd()));
    let (conn_fd, peer) = match sys::accept_with_peer(listen_fd) {
        Ok(accepted) => accepted,
        Err(Errno::EAGAIN) => {
            step.fail(Errno::EAGAIN);
            nar.note("EAGAIN: the accept queue is empty; every waiting client has been accepted.");
            return Ok(Accepted::QueueEmpty);
        }
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            return Ok(Accepted::QueueEmpty);
        }
        // The client gave up before we accepted it, or descriptors or memory
        // ran out for a moment: the server goes on with the others.
        Err(errno) if accept::is_transient(errno) => {
            step.fail(errno);
            accept::carry_on(nar, errno);
            return Ok(Accepted::Failed);
        }
        Err(errno) => {
            step.fail(errno);
            return Err(errno).context("accept() failed");
        }
    };
    let fd = conn_fd.as_raw_fd();
    step.ok_with(i64::from(fd), || format!("fd {fd}, peer {peer}"));
    if nar.showing() {
        nar.tcp_state(conn_fd.as_fd());
    }

    // accept() does not pass O_NONBLOCK on from the listener (on Linux), so
    // the new socket is set non-blocking here: a recv() or send() that
    // cannot proceed must return EAGAIN, never stall the other clients.
    let step = nar.call_with("fcntl", || format!("fd {fd}, F_SETFL, O_RDWR | O_NONBLOCK"));
    // A fresh socket's status flags are only its access mode, O_RDWR, which
    // F_SETFL ignores; setting O_NONBLOCK alone keeps nothing else from it.
    if let Err(errno) = fcntl(&conn_fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)) {
        step.fail(errno);
        nar.warning(
            format!(
                "cannot make fd {fd} non-blocking ({}); closing it",
                errno_name(errno)
            ),
            None,
        );
        return Ok(Accepted::Failed);
    }
    step.ok_with(0, || "0".into());
    if let Some(size) = args.sndbuf {
        set_send_buffer(nar, &conn_fd, size);
    }
    if nar.showing() {
        nar.info(
            "client",
            json!({ "peer": peer.to_string(), "fd": fd }),
            format!("client {peer} connected on fd {fd}"),
        );
    }
    Ok(Accepted::Client(Conn::new(conn_fd, peer)))
}

/// --sndbuf: setsockopt(SO_SNDBUF), then read back what the kernel made of it.
fn set_send_buffer(nar: &Narrator, conn_fd: &OwnedFd, size: u32) {
    let fd = conn_fd.as_raw_fd();
    let step = nar.call_with("setsockopt", || {
        format!("fd {fd}, SOL_SOCKET, SO_SNDBUF, {size}")
    });
    match setsockopt(conn_fd, sockopt::SndBuf, &(size as usize)) {
        Ok(()) => step.ok_with(0, || "0".into()),
        Err(errno) => {
            step.fail(errno);
            return;
        }
    }
    if nar.showing() {
        if let Ok(actual) = nix::sys::socket::getsockopt(conn_fd, sockopt::SndBuf) {
            nar.kernel(crate::narrate::Fact::new(
                format!("fd {fd}"),
                "send_buffer",
                json!(actual),
                "getsockopt(SO_SNDBUF)",
                format!("fd {fd} may hold {} unsent (the kernel doubles the request for its bookkeeping)", crate::narrate::text::bytes(actual)),
            ));
        }
        nar.note("A small send buffer fills after a few kilobytes, so a client that reads slowly soon makes send() come up short.");
    }
}

/// ioctl(FIONREAD), also called SIOCINQ: how many received bytes wait in
/// this socket's receive queue in the kernel, not yet read by us. The same
/// number is the `rx_queue` column of /proc/net/tcp.
pub fn receive_queue(fd: RawFd) -> nix::Result<i32> {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which points to
    // a live, writable c_int.
    let result = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut waiting) };
    Errno::result(result).map(|_| waiting)
}

/// Narrate a socket's receive queue as a kernel fact.
pub fn narrate_receive_queue(nar: &Narrator, fd: RawFd) -> Option<i32> {
    use crate::narrate::Fact;
    let subject = format!("fd {fd}");
    match receive_queue(fd) {
        Ok(waiting) => {
            nar.kernel(Fact::new(
                &subject,
                "receive_queue",
                json!(waiting),
                "ioctl(FIONREAD)",
                format!(
                    "{subject} has {} waiting unread in its receive queue",
                    crate::narrate::text::bytes(waiting as usize)
                ),
            ));
            Some(waiting)
        }
        Err(errno) => {
            nar.kernel(Fact::unavailable(
                subject,
                "receive_queue",
                "ioctl(FIONREAD)",
                errno_name(errno),
            ));
            None
        }
    }
}

/// A listening socket must be closed last: until then the kernel keeps
/// accepting handshakes for us.
pub fn close_listener(nar: &Narrator, listen_fd: OwnedFd) -> Result<()> {
    let step = nar.call("close", format!("fd {}", listen_fd.as_raw_fd()));
    step.check(nix::unistd::close(listen_fd), |_| "0".into())?;
    nar.note("The listening socket is closed: from now on the kernel refuses new connections to this port.");
    Ok(())
}
