//! `--model iterative`: one client at a time, blocking calls.
//!
//! The course's first HTTP server: accept() a client, serve its requests
//! until it leaves, then accept the next. It is the simplest server to read,
//! and the worst to use: while one client holds the connection (a browser
//! keeps it open for keep-alive; a slow client trickles its request), every
//! other client waits in the kernel's accept queue. The narration reads that
//! queue's length from the kernel (TCP_INFO on the listening socket) while
//! the server is busy, and at each accept() says how long ago the new
//! client last sent anything (its time in the queue, at least).
//!
//! The timeouts use blocking sockets: SO_RCVTIMEO makes recv() give up
//! with EAGAIN after a tick (at most a second), so the loop can check the
//! connection's deadline; SO_SNDTIMEO does the same for a send that makes
//! no progress.
//!
//! The per-connection loop `serve_connection` is shared with `--model thread`.
//!
//! Try it: `netlab http-server --model iterative --port 8000`, then in two
//! terminals `nc 127.0.0.1 8000` (type nothing) and `curl http://127.0.0.1:8000/`.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use serde_json::json;

use super::conn::{Conn, Ending, Next, Received, Sent, SMALL_FILE};
use super::Config;
use crate::demos::accept;
use crate::kernel;
use crate::narrate::{Fact, Narrator};
use crate::stop;
use crate::sys;

pub fn serve(nar: &Narrator, config: &Config, listen_fd: BorrowedFd<'_>) -> Result<()> {
    nar.note("One client at a time: this server serves a connection from accept() to close(). Meanwhile, every other client waits in the accept queue.");
    let mut scratch = vec![0u8; SMALL_FILE];
    while stop::requested().is_none() {
        let Some((conn_fd, peer)) = accept_blocking(nar, listen_fd)? else {
            continue;
        };
        if nar.showing() {
            time_in_queue(nar, conn_fd.as_fd());
            nar.listen_queue(listen_fd);
        }
        let conn = Conn::new(conn_fd, peer);
        let (conn, ending) = serve_connection(nar, config, conn, &mut scratch, Some(listen_fd));
        conn.close(nar, ending);
    }
    Ok(())
}

/// A blocking accept(). None when interrupted or when the failure belongs
/// to one client (the caller loops).
pub fn accept_blocking(
    nar: &Narrator,
    listen_fd: BorrowedFd<'_>,
) -> Result<Option<(OwnedFd, SocketAddr)>> {
    let fd = listen_fd.as_raw_fd();
    let step = nar.blocking_with("accept", || format!("fd {fd}"), "waiting for a client");
    match sys::accept_with_peer(listen_fd) {
        Ok((conn_fd, peer)) => {
            let raw = conn_fd.as_raw_fd();
            step.ok_with(i64::from(raw), || format!("fd {raw}, peer {peer}"));
            nar.count("connections", 1);
            if nar.showing() {
                nar.info(
                    "client",
                    json!({ "peer": peer.to_string(), "fd": raw }),
                    format!("client {peer} connected on fd {raw}"),
                );
            }
            Ok(Some((conn_fd, peer)))
        }
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            Ok(None)
        }
        Err(errno) if accept::is_transient(errno) => {
            step.fail(errno);
            accept::carry_on(nar, errno);
            Ok(None)
        }
        Err(errno) => {
            step.fail(errno);
            Err(errno).context("accept() failed")
        }
    }
}

/// Serve one connection with blocking calls until it ends; the caller
/// closes it. `listen_fd` (iterative only): the listener whose queue to watch.
pub fn serve_connection(
    nar: &Narrator,
    config: &Config,
    mut conn: Conn,
    scratch: &mut [u8],
    listen_fd: Option<BorrowedFd<'_>>,
) -> (Conn, Ending) {
    let tick =
        (config.shortest_timeout() / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
    conn.blocking = true;
    if let Err(errno) = set_timeouts(nar, &conn, tick, config.send_timeout) {
        return (conn, Ending::Failed(errno));
    }
    let mut queue_seen = 0;
    let ending = loop {
        if stop::requested().is_some() {
            break Ending::Shutdown;
        }
        // First answer every complete request already buffered (pipelining),
        // one response at a time, in order.
        match conn.next_request(nar, config) {
            Next::Respond | Next::Busy => match conn.send_response(nar, scratch) {
                Sent::Done { keep_alive: true } => continue,
                Sent::Done { keep_alive: false } => {
                    if conn.finish(nar) {
                        linger(nar, config, &mut conn);
                    }
                    break Ending::AfterResponse;
                }
                // A blocking send with SO_SNDTIMEO: no progress in time.
                Sent::Blocked => break Ending::SendTimeout,
                Sent::Gone(ending) => break ending,
            },
            Next::TooLarge => break Ending::TooLarge,
            Next::NeedMore if conn.peer_done() => break Ending::PeerClosed,
            Next::NeedMore => {}
        }
        // No complete request: has the deadline passed? Checked before
        // every recv(), not only when SO_RCVTIMEO passes: a client that
        // trickles a byte at a time never lets it pass, and must time out too.
        let (deadline, ending) = conn.deadline(config);
        if Instant::now() >= deadline {
            if ending != Ending::HeaderTimeout {
                break ending;
            }
            nar.note("The request head did not arrive in time: a client that sends half a request must not hold a connection for ever. It gets 408 Request Timeout, and the connection closes.");
            conn.request_timeout(nar);
            match conn.send_response(nar, scratch) {
                Sent::Done { .. } => {
                    if conn.finish(nar) {
                        linger(nar, config, &mut conn);
                    }
                    break Ending::HeaderTimeout;
                }
                Sent::Blocked => break Ending::SendTimeout,
                Sent::Gone(ending) => break ending,
            }
        }
        match conn.receive(nar, config) {
            Received::Data(_) | Received::End | Received::Interrupted => {}
            Received::Gone(ending) => break ending,
            // SO_RCVTIMEO passed: a tick. (Iterative) who is kept waiting?
            Received::Drained => {
                if let Some(listen_fd) = listen_fd {
                    queue_seen = show_waiting(nar, listen_fd, queue_seen);
                }
            }
        }
    };
    (conn, ending)
}

/// SO_RCVTIMEO (the tick) and SO_SNDTIMEO (the send timeout): a blocking
/// call then returns EAGAIN instead of waiting for ever.
fn set_timeouts(nar: &Narrator, conn: &Conn, tick: Duration, send: Duration) -> nix::Result<()> {
    let fd = conn.raw_fd();
    for (name, value) in [("SO_RCVTIMEO", tick), ("SO_SNDTIMEO", send)] {
        let step = nar.call_with("setsockopt", || {
            format!("fd {fd}, SOL_SOCKET, {name}, {} ms", value.as_millis())
        });
        let timeval = TimeVal::from(libc::timeval {
            tv_sec: value.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(value.subsec_micros()),
        });
        let result = if name == "SO_RCVTIMEO" {
            setsockopt(&conn.fd, sockopt::ReceiveTimeout, &timeval)
        } else {
            setsockopt(&conn.fd, sockopt::SendTimeout, &timeval)
        };
        match result {
            Ok(()) => step.ok_with(0, || "0".into()),
            Err(errno) => {
                step.fail(errno);
                return Err(errno);
            }
        }
    }
    nar.note("SO_RCVTIMEO: a blocking recv() on this socket returns EAGAIN when nothing arrives for one tick, so the loop can check the request and idle deadlines. SO_SNDTIMEO does the same for a send that makes no progress.");
    Ok(())
}

/// After the last response, with unread bytes: read and drop until the
/// client closes, for at most LINGER.
fn linger(nar: &Narrator, config: &Config, conn: &mut Conn) {
    let (until, _) = conn.deadline(config);
    while Instant::now() < until && stop::requested().is_none() {
        if conn.discard(nar, config) {
            return;
        }
    }
}

/// Iterative: how many clients wait in the accept queue while this one is
/// served? Narrated when the number changes (read from TCP_INFO).
fn show_waiting(nar: &Narrator, listen_fd: BorrowedFd<'_>, seen: u32) -> u32 {
    if !nar.showing() {
        return seen;
    }
    let Ok(Some(queue)) = kernel::listen_queue(listen_fd) else {
        return seen;
    };
    if queue.waiting != seen {
        nar.listen_queue(listen_fd);
        if queue.waiting > 0 {
            nar.info(
                "clients_waiting",
                json!(queue.waiting),
                format!(
                    "{} client(s) wait in the accept queue while this one holds the server",
                    queue.waiting
                ),
            );
            nar.note("An iterative server serves one connection at a time: while this client keeps its connection open, the clients behind it wait in the kernel's accept queue, however quick their requests would be.");
        }
    }
    queue.waiting
}

/// At accept(): how long ago did the new client last send anything? For a
/// client that sent its request right after connecting, that is how long
/// the accept queue held it. Read from TCP_INFO's `tcpi_last_data_recv`.
fn time_in_queue(nar: &Narrator, conn_fd: BorrowedFd<'_>) {
    let subject = format!("fd {}", conn_fd.as_raw_fd());
    // SAFETY: tcp_info is a plain C struct of integers; all zeroes is valid.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, a live,
    // writable libc::tcp_info, and updates `len`.
    let result = unsafe {
        libc::getsockopt(
            conn_fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_last_data_recv) + 4;
    if result != 0 || (len as usize) < needed {
        nar.kernel(Fact::unavailable(
            subject,
            "last_data_recv",
            "tcp_info",
            Errno::last().desc(),
        ));
        return;
    }
    let millis = info.tcpi_last_data_recv;
    nar.kernel(Fact::new(
        &subject,
        "last_data_recv",
        json!(millis),
        "tcp_info",
        format!("{subject}: the client's last bytes (or its handshake) arrived {millis} ms ago"),
    ));
    if millis >= 200 {
        nar.note("This client waited in the accept queue for that long before the server got to it: its handshake was done by the kernel, but an iterative server accepts only when the previous client is gone.");
    }
}
