//! `--model iterative`: one client at a time, blocking calls.
//!
//! The course's first HTTP server: accept() a client, serve its requests
//! until it leaves, then accept the next. It is the simplest server to read,
//! and the worst to use: while one client holds the connection (a browser
//! keeps it open for keep-alive; a slow client trickles its request), every
//! other client waits in the kernel's accept queue. The narration reads that
//! queue's length from the kernel (TCP_INFO on the listening socket) while
//! the server is busy (each time a recv() returns), and at each accept()
//! says how long ago the new client last sent anything (its time in the
//! queue, at least).
//!
//! The timeouts use blocking sockets: before each recv(), SO_RCVTIMEO is
//! set to the time left until the connection's deadline (the head, or the
//! idle timeout), so recv() gives up with EAGAIN exactly then; SO_SNDTIMEO
//! does the same for the sends (see `conn.rs`). An idle keep-alive client
//! therefore costs one recv() that waits, not one a second.
//!
//! The per-connection loop `serve_connection` is shared with `--model thread`.
//!
//! Try it: `netlab http-server --model iterative --port 8000`, then in two
//! terminals `nc 127.0.0.1 8000` (type nothing) and `curl http://127.0.0.1:8000/`.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use anyhow::Result;
use nix::errno::Errno;
use serde_json::json;

use super::conn::{Conn, Ending, Next, Received, Sent, BLOCKING_CHUNK};
use super::listener::{Accepted, Acceptor};
use super::Config;
use crate::kernel;
use crate::narrate::{Fact, Narrator};
use crate::stop;

pub fn serve(nar: &Narrator, config: &Config, acceptor: &mut Acceptor<'_>) -> Result<()> {
    nar.note("One client at a time: this server serves a connection from accept() to close(). Meanwhile, every other client waits in the accept queue.");
    let listen_fd = acceptor.listen_fd;
    let mut scratch = vec![0u8; BLOCKING_CHUNK];
    while stop::requested().is_none() {
        let Some((conn_fd, peer)) = accept_blocking(nar, acceptor)? else {
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

/// A blocking accept(). None when it timed out (a summary was due), was
/// interrupted, or failed for one client only (the caller loops).
pub fn accept_blocking(
    nar: &Narrator,
    acceptor: &mut Acceptor<'_>,
) -> Result<Option<(OwnedFd, SocketAddr)>> {
    acceptor.arm_timeout(nar);
    let accepted = acceptor.accept(nar, true)?;
    // accept() returned: print the last busy second's summary if it is due.
    nar.tick();
    let Accepted::Client(conn_fd, peer) = accepted else {
        return Ok(None);
    };
    if nar.showing() {
        let raw = conn_fd.as_raw_fd();
        nar.info(
            "client",
            json!({ "peer": peer.to_string(), "fd": raw }),
            format!("client {peer} connected on fd {raw}"),
        );
    }
    Ok(Some((conn_fd, peer)))
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
    conn.blocking = true;
    let mut queue_seen = 0;
    let ending = loop {
        if stop::requested().is_some() {
            break Ending::Shutdown;
        }
        // First answer every complete request already buffered (pipelining),
        // one response at a time, in order.
        match conn.next_request(nar, config) {
            Next::Respond | Next::Busy => match conn.send_response(nar, config, scratch) {
                Sent::Done { keep_alive: true } => continue,
                Sent::Done { keep_alive: false } => {
                    if conn.finish(nar) {
                        linger(nar, config, &mut conn);
                    }
                    break Ending::AfterResponse;
                }
                // No progress for --send-timeout.
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
            match conn.send_response(nar, config, scratch) {
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
        let received = conn.receive(nar, config);
        // recv() returned: print the last busy second's summary if it is due.
        nar.tick();
        // (Iterative) who is kept waiting meanwhile?
        if let Some(listen_fd) = listen_fd {
            queue_seen = show_waiting(nar, listen_fd, queue_seen);
        }
        match received {
            // Drained: SO_RCVTIMEO passed; the deadline is checked above.
            Received::Data(_) | Received::End | Received::Interrupted | Received::Drained => {}
            Received::Gone(ending) => break ending,
        }
    };
    (conn, ending)
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
