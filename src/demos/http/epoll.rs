//! `--model epoll` (the default): every connection in one thread.
//!
//! The loop of `netlab epoll-demo`, with HTTP on top: non-blocking sockets,
//! a level-triggered epoll interest list, and per connection a buffer, the
//! response being sent and a clock (`conn.rs`). One wakeup serves every
//! ready socket; no call ever waits, except epoll_wait itself.
//!
//! * A socket is watched for **EPOLLIN** while its connection waits for a
//!   request. A response is written at once, without asking epoll first
//!   (the send buffer is almost always empty); only when the kernel takes
//!   part of it (EAGAIN) is the socket switched to **EPOLLOUT** until the
//!   rest is out. So the usual request costs no epoll_ctl at all.
//! * **Timeouts**: each connection has one deadline at a time (head, idle,
//!   send or linger; see `Conn::deadline`), and epoll_wait's timeout is the
//!   time left to the nearest one. No sorted timer list is kept (every
//!   request moves a deadline, and keeping a list sorted would cost work per
//!   request): after each event the connection's deadline is compared with
//!   the nearest one (two comparisons), and when the nearest comes, one scan
//!   over the connections closes the expired ones and finds the next. With
//!   no connection open there is no deadline, and epoll_wait waits for ever
//!   (or until the narration's summary of a busy second is due).
//!
//! Try it: `netlab http-server --port 8000`, then `curl -v http://127.0.0.1:8000/`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Instant;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{setsockopt, sockopt};
use serde_json::json;

use super::conn::{Conn, Ending, Next, Received, Sent, SMALL_FILE};
use super::listener::{self, Accepted, Acceptor};
use super::Config;
use crate::demos::mux::epoll::epoll_bits;
use crate::narrate::Narrator;
use crate::stop;

/// How many ready sockets one epoll_wait() may return.
const MAX_EVENTS: usize = 1024;

/// Everything the event loop works with.
struct Server<'a, 'l> {
    nar: &'a Narrator,
    config: &'a Config,
    epoll: Epoll,
    listen_fd: BorrowedFd<'l>,
    /// accept(), and what to do when descriptors run out.
    acceptor: &'a mut Acceptor<'l>,
    /// The connections, indexed by their fd (the kernel hands out the
    /// lowest free number, so the table stays dense).
    conns: Vec<Option<Conn>>,
    open: usize,
    /// One buffer for the small files read with pread() before writev().
    scratch: Vec<u8>,
    /// Said once: the first TCP_NODELAY note.
    told_nodelay: bool,
    /// The nearest deadline of any connection: when to scan for expired
    /// ones (None with no connection open: nothing can expire).
    next_scan: Option<Instant>,
}

pub fn serve(nar: &Narrator, config: &Config, acceptor: &mut Acceptor<'_>) -> Result<()> {
    let listen_fd = acceptor.listen_fd;
    let step = nar.call("epoll_create1", "EPOLL_CLOEXEC");
    let epoll = step.check(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC), |epoll| {
        format!("epfd {}", epoll.0.as_raw_fd())
    })?;
    nar.note("One thread serves every connection: epoll keeps the interest list in the kernel and reports only the ready sockets. Level-triggered, so one recv() per event is enough.");
    let mut server = Server {
        nar,
        config,
        epoll,
        listen_fd,
        acceptor,
        conns: Vec::new(),
        open: 0,
        scratch: vec![0u8; SMALL_FILE],
        told_nodelay: false,
        next_scan: None,
    };
    let epfd = server.epoll.0.as_raw_fd();
    let raw = listen_fd.as_raw_fd();
    let step = nar.call(
        "epoll_ctl",
        format!("epfd {epfd}, EPOLL_CTL_ADD, fd {raw}, EPOLLIN"),
    );
    step.check(
        server
            .epoll
            .add(listen_fd, EpollEvent::new(EpollFlags::EPOLLIN, raw as u64)),
        |_| "0".into(),
    )?;

    let result = server.event_loop();
    for slot in &mut server.conns {
        if let Some(conn) = slot.take() {
            conn.close(nar, Ending::Shutdown);
        }
    }
    let Server { epoll, .. } = server;
    let step = nar.call("close", format!("epfd {}", epoll.0.as_raw_fd()));
    step.check(nix::unistd::close(epoll.0), |_| "0".into())?;
    result
}

impl Server<'_, '_> {
    fn event_loop(&mut self) -> Result<()> {
        let nar = self.nar;
        let mut events = vec![EpollEvent::empty(); MAX_EVENTS];
        let epfd = self.epoll.0.as_raw_fd();
        while stop::requested().is_none() {
            // Wake for the nearest deadline, or when the last busy second's
            // summary is due (so it is printed when the traffic stops, not
            // at the next client), whichever comes first.
            let now = Instant::now();
            let left = match (self.next_scan, nar.tick_due_in()) {
                (None, None) => None,
                (Some(due), None) => Some(due.saturating_duration_since(now)),
                (None, Some(tick)) => Some(tick),
                (Some(due), Some(tick)) => Some(due.saturating_duration_since(now).min(tick)),
            };
            let (timeout, millis) = match left {
                None => (EpollTimeout::NONE, -1),
                Some(left) => {
                    // Rounded up, so that we never wake a little early and spin.
                    let millis = left.as_micros().div_ceil(1000).min(60_000) as u16;
                    (EpollTimeout::from(millis), i32::from(millis))
                }
            };
            let step = nar.blocking_with(
                "epoll_wait",
                || match millis {
                    -1 => format!("epfd {epfd}, {MAX_EVENTS} slots, timeout -1 (no deadline)"),
                    millis => format!("epfd {epfd}, {MAX_EVENTS} slots, timeout {millis} ms"),
                },
                "until a socket is ready or the nearest deadline",
            );
            let ready = match self.epoll.wait(&mut events, timeout) {
                Ok(ready) => ready,
                Err(Errno::EINTR) => {
                    step.fail(Errno::EINTR);
                    continue;
                }
                Err(errno) => {
                    step.fail(errno);
                    return Err(errno).context("epoll_wait() failed");
                }
            };
            step.ok_with(ready as i64, || format!("{ready} ready"));
            nar.tick();
            for event in &events[..ready] {
                // The u64 registered with each fd is the fd itself.
                let fd = event.data() as RawFd;
                if fd == self.listen_fd.as_raw_fd() {
                    self.accept_all()?;
                } else if let Some(ending) = self.serve(fd) {
                    self.drop_conn(fd, ending);
                } else {
                    self.note_deadline(fd);
                }
            }
            let now = Instant::now();
            if self.next_scan.is_some_and(|due| now >= due) {
                self.next_scan = self.check_deadlines(now);
            }
            nar.gauge("connections_open", self.open as u64);
        }
        Ok(())
    }

    /// The listener is readable: accept every waiting client.
    fn accept_all(&mut self) -> Result<()> {
        let nar = self.nar;
        loop {
            let (fd, peer) = match self.acceptor.accept(nar, false)? {
                Accepted::Client(fd, peer) => (fd, peer),
                // Level-triggered: if more clients wait, epoll says so again.
                Accepted::Failed | Accepted::Nothing => return Ok(()),
            };
            if nar.showing() {
                nar.tcp_state(fd.as_fd());
            }
            if let Err(errno) = listener::make_nonblocking(nar, &fd) {
                let conn = Conn::new(fd, peer);
                conn.close(nar, Ending::Failed(errno));
                continue;
            }
            if nar.showing() {
                let raw = fd.as_raw_fd();
                nar.info(
                    "client",
                    json!({ "peer": peer.to_string(), "fd": raw }),
                    format!("client {peer} connected on fd {raw}"),
                );
            }
            let conn = Conn::new(fd, peer);
            self.no_delay(&conn);
            let raw = conn.raw_fd();
            let epfd = self.epoll.0.as_raw_fd();
            let step = nar.call_with("epoll_ctl", || {
                format!("epfd {epfd}, EPOLL_CTL_ADD, fd {raw}, EPOLLIN")
            });
            match self.epoll.add(
                conn.fd.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, raw as u64),
            ) {
                Ok(()) => step.ok_with(0, || "0".into()),
                Err(errno) => {
                    step.fail(errno);
                    conn.close(nar, Ending::Failed(errno));
                    continue;
                }
            }
            nar.count("connections", 1);
            let index = raw as usize;
            if index >= self.conns.len() {
                self.conns.resize_with(index + 1, || None);
            }
            if self.conns[index].replace(conn).is_none() {
                self.open += 1;
            }
            self.note_deadline(raw);
        }
    }

    /// TCP_NODELAY: a response goes out whole in one call, so Nagle's
    /// algorithm (hold a small segment until the previous one is
    /// acknowledged) could only delay the second of two pipelined responses.
    fn no_delay(&mut self, conn: &Conn) {
        let nar = self.nar;
        let fd = conn.raw_fd();
        let step = nar.call_with("setsockopt", || {
            format!("fd {fd}, IPPROTO_TCP, TCP_NODELAY, 1")
        });
        match setsockopt(&conn.fd, sockopt::TcpNoDelay, &true) {
            Ok(()) => step.ok_with(0, || "0".into()),
            Err(errno) => step.fail(errno),
        }
        if !self.told_nodelay && nar.showing() {
            self.told_nodelay = true;
            nar.note("TCP_NODELAY turns off Nagle's algorithm on this connection: each response is written whole, and a small one must not wait for the acknowledgement of the one before it.");
        }
    }

    /// A connection's socket is ready. Returns why to close it, if it must be.
    fn serve(&mut self, fd: RawFd) -> Option<Ending> {
        let (nar, config) = (self.nar, self.config);
        let conn = self.conns.get_mut(fd as usize)?.as_mut()?;
        if conn.is_lingering() {
            return conn.discard(nar, config).then_some(Ending::AfterResponse);
        }
        if conn.is_sending() {
            // Watched for EPOLLOUT: the rest of the response can go now.
            // (EPOLLERR and EPOLLHUP come too; the send says what happened.)
            return self.progress(fd);
        }
        // EPOLLIN, or EPOLLERR/EPOLLHUP: recv() says which (0 for FIN,
        // ECONNRESET for a reset).
        match conn.receive(nar, config) {
            Received::Data(_) | Received::End => self.progress(fd),
            Received::Drained | Received::Interrupted => None,
            Received::Gone(ending) => Some(ending),
        }
    }

    /// Send what can be sent, then start the next buffered request, until
    /// the connection needs more bytes or the socket is full.
    fn progress(&mut self, fd: RawFd) -> Option<Ending> {
        let (nar, config) = (self.nar, self.config);
        let conn = self.conns.get_mut(fd as usize)?.as_mut()?;
        loop {
            if conn.is_sending() {
                match conn.send_response(nar, config, &mut self.scratch) {
                    Sent::Blocked => {
                        return set_interest(nar, &self.epoll, conn, true);
                    }
                    Sent::Gone(ending) => return Some(ending),
                    Sent::Done { keep_alive: false } => {
                        if conn.finish(nar) {
                            // Lingering: watch for the client's bytes and FIN.
                            return set_interest(nar, &self.epoll, conn, false);
                        }
                        return Some(Ending::AfterResponse);
                    }
                    Sent::Done { keep_alive: true } => {}
                }
            }
            match conn.next_request(nar, config) {
                Next::Respond | Next::Busy => continue,
                Next::TooLarge => return Some(Ending::TooLarge),
                Next::NeedMore if conn.peer_done() => return Some(Ending::PeerClosed),
                Next::NeedMore => return set_interest(nar, &self.epoll, conn, false),
            }
        }
    }

    /// Close every connection whose deadline has passed (a half-received
    /// request head gets its 408 first). Returns when to scan next: the
    /// nearest deadline left, or None with no connection open.
    fn check_deadlines(&mut self, now: Instant) -> Option<Instant> {
        let (nar, config) = (self.nar, self.config);
        let mut nearest: Option<Instant> = None;
        let mut keep = |deadline: Instant| {
            nearest = Some(nearest.map_or(deadline, |n: Instant| n.min(deadline)));
        };
        for fd in 0..self.conns.len() {
            let Some(conn) = self.conns[fd].as_mut() else {
                continue;
            };
            let (deadline, ending) = conn.deadline(config);
            if now < deadline {
                keep(deadline);
                continue;
            }
            let fd = fd as RawFd;
            if nar.showing() {
                nar.info(
                    "timeout",
                    json!({ "fd": fd, "peer": conn.peer.to_string(), "why": ending.name() }),
                    format!("fd {fd} ({}): {}", conn.peer, ending.name()),
                );
            }
            if ending == Ending::HeaderTimeout {
                nar.note("The request head did not arrive in time: a client that sends half a request must not hold a connection for ever. It gets 408 Request Timeout, and the connection closes.");
                conn.request_timeout(nar);
                match self.progress(fd) {
                    // The 408 is out: the connection ends for the timeout.
                    Some(Ending::AfterResponse) => self.drop_conn(fd, Ending::HeaderTimeout),
                    Some(ending) => self.drop_conn(fd, ending),
                    None => {}
                }
            } else {
                self.drop_conn(fd, ending);
            }
            // A connection still open (sending its 408) has a new deadline.
            if let Some(conn) = self.conns[fd as usize].as_ref() {
                keep(conn.deadline(config).0);
            }
        }
        nearest
    }

    /// After an event: this connection's deadline may have moved (a request
    /// began, a response got stuck, a lingering close began); scan no later.
    fn note_deadline(&mut self, fd: RawFd) {
        if let Some(conn) = self.conns.get(fd as usize).and_then(Option::as_ref) {
            let deadline = conn.deadline(self.config).0;
            self.next_scan = Some(self.next_scan.map_or(deadline, |due| due.min(deadline)));
        }
    }

    /// epoll_ctl(DEL), then close().
    fn drop_conn(&mut self, fd: RawFd, ending: Ending) {
        let nar = self.nar;
        let Some(conn) = self.conns.get_mut(fd as usize).and_then(Option::take) else {
            return;
        };
        self.open -= 1;
        if self.open == 0 {
            // Nothing left that could expire: epoll_wait may wait for ever.
            self.next_scan = None;
        }
        let epfd = self.epoll.0.as_raw_fd();
        let step = nar.call_with("epoll_ctl", || {
            format!("epfd {epfd}, EPOLL_CTL_DEL, fd {fd}")
        });
        match self.epoll.delete(conn.fd.as_fd()) {
            Ok(()) => step.ok_with(0, || "0".into()),
            Err(errno) => step.fail(errno),
        }
        conn.close(nar, ending);
    }
}

/// epoll_ctl(MOD) between EPOLLIN (waiting for a request) and EPOLLOUT (a
/// response is stuck), only when it changes.
fn set_interest(nar: &Narrator, epoll: &Epoll, conn: &mut Conn, out: bool) -> Option<Ending> {
    if conn.watching_out == out {
        return None;
    }
    let interest = if out {
        EpollFlags::EPOLLOUT
    } else {
        EpollFlags::EPOLLIN
    };
    let (epfd, fd) = (epoll.0.as_raw_fd(), conn.raw_fd());
    let step = nar.call_with("epoll_ctl", || {
        format!(
            "epfd {epfd}, EPOLL_CTL_MOD, fd {fd}, {}",
            epoll_bits(interest)
        )
    });
    let mut event = EpollEvent::new(interest, fd as u64);
    match epoll.modify(conn.fd.as_fd(), &mut event) {
        Ok(()) => {
            step.ok_with(0, || "0".into());
            conn.watching_out = out;
            if out {
                nar.note("The response is stuck in a full send buffer: this socket is now watched for EPOLLOUT, and not read from, until the rest is out. The next pipelined request waits its turn.");
            }
            None
        }
        Err(errno) => {
            step.fail(errno);
            Some(Ending::Failed(errno))
        }
    }
}
