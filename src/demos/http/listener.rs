//! The listening socket of http-server, accept(), and what to do when the
//! process runs out of file descriptors.
//!
//! * **epoll** gets a non-blocking listener (SOCK_NONBLOCK): the loop calls
//!   accept() only after epoll said a client waits, and stops at EAGAIN.
//! * **iterative** and **thread** get a blocking one: the main thread
//!   sleeps in accept() until a client arrives. SO_RCVTIMEO on the
//!   listener limits that sleep while the narration has a summary to print
//!   (after a burst of traffic), so the summary comes on time.
//! * **EMFILE**: with every descriptor in use, accept() fails, the client
//!   stays in the queue, and the listener stays readable: a loop that only
//!   warns and retries spins. The classic way out is a *spare* descriptor,
//!   opened at start-up and kept for this moment: close it, accept the
//!   client with the freed number, close the client at once (it sees the
//!   connection end instead of waiting in the queue for ever), and open
//!   the spare again.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{bind, listen, setsockopt, socket, sockopt, Backlog, SockFlag, SockType};
use nix::sys::stat::Mode;
use nix::sys::time::TimeVal;
use serde_json::json;

use crate::cli::SigpipeChoice;
use crate::demos::{accept, mux, sigpipe};
use crate::narrate::{errno_name, Narrator};
use crate::sys;

/// SIGPIPE ignored, then socket, setsockopt(SO_REUSEADDR), bind,
/// getsockname, listen; the address really bound is announced.
pub fn open_listener(
    nar: &Narrator,
    host: &str,
    port: u16,
    backlog: i32,
    blocking: bool,
) -> Result<OwnedFd> {
    let wanted = sys::resolve(host, port)?;
    // A client that vanishes must not kill the server: with SIGPIPE
    // ignored, a send to a dead connection fails with EPIPE instead.
    sigpipe::set(nar, SigpipeChoice::Ignore)?;

    let flags = if blocking {
        SockFlag::empty()
    } else {
        SockFlag::SOCK_NONBLOCK
    };
    let step = nar.call(
        "socket",
        format!(
            "{}, SOCK_STREAM{}, 0",
            sys::family_name(&wanted),
            if blocking { "" } else { " | SOCK_NONBLOCK" }
        ),
    );
    let listen_fd = step.check(
        socket(sys::family_of(&wanted), SockType::Stream, flags, None),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    if blocking {
        nar.note("A blocking socket: accept() on it sleeps until a client has finished its handshake. This model has nothing else to do meanwhile.");
    } else {
        nar.note("SOCK_NONBLOCK: with no client in the queue, accept() on this socket fails with EAGAIN instead of waiting. The event loop calls it only after epoll said a client waits, and stops at EAGAIN.");
    }
    let fd = listen_fd.as_raw_fd();

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
        return Err(mux::bind_failure(errno, wanted, 8000).into());
    }
    step.ok("0");

    let step = nar.call("getsockname", format!("fd {fd}"));
    let bound = step.check(sys::local_addr(fd), |addr| addr.to_string())?;

    let step = nar.call("listen", format!("fd {fd}, backlog {backlog}"));
    let queue = Backlog::new(backlog).context("the backlog is out of range")?;
    step.check(listen(&listen_fd, queue), |_| "0".into())?;
    nar.listen_queue(listen_fd.as_fd());
    announce(nar, bound);
    Ok(listen_fd)
}

/// The start-up line, shown even with --quiet: the address, and a URL to
/// open (an IPv6 address goes in brackets in a URL).
fn announce(nar: &Narrator, bound: SocketAddr) {
    let target = sys::connectable(bound);
    let url = match target {
        SocketAddr::V4(v4) => format!("http://{}:{}/", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("http://[{}]:{}/", v6.ip(), v6.port()),
    };
    nar.startup(
        "listening",
        json!({ "addr": bound.to_string(), "port": bound.port(), "url": url }),
        format!("listening on {bound}; try: curl -v {url} (or open it in a browser)"),
    );
}

/// The listening socket is closed last: from then on the kernel refuses
/// new connections to this port.
pub fn close_listener(nar: &Narrator, listen_fd: OwnedFd) -> Result<()> {
    let step = nar.call("close", format!("fd {}", listen_fd.as_raw_fd()));
    step.check(nix::unistd::close(listen_fd), |_| "0".into())?;
    nar.note("The listening socket is closed: from now on the kernel refuses new connections to this port.");
    Ok(())
}

/// What one accept() gave.
pub enum Accepted {
    /// A new client.
    Client(OwnedFd, SocketAddr),
    /// Nothing now: the queue is empty (EAGAIN), SO_RCVTIMEO passed, or a
    /// signal came (EINTR).
    Nothing,
    /// accept() failed for a reason that does not end the server (the
    /// client gave up, or descriptors ran out and it was turned away).
    Failed,
}

/// The accept() side of the server: the listener, the spare descriptor,
/// and the throttled reports of running out of descriptors.
pub struct Acceptor<'a> {
    pub listen_fd: BorrowedFd<'a>,
    /// Opened at start-up (/dev/null), closed only to make room for one
    /// accept() when the process is out of descriptors.
    spare: Option<OwnedFd>,
    /// The accept timeout now set on a blocking listener (SO_RCVTIMEO);
    /// None: wait for ever.
    armed: Option<Duration>,
    /// Clients turned away since the last warning; the warning is printed
    /// at most once a second.
    turned_away: u64,
    last_warning: Option<Instant>,
    /// The note on EMFILE with an empty queue has been printed.
    idle_note_given: bool,
}

impl<'a> Acceptor<'a> {
    /// Open the spare descriptor.
    pub fn new(nar: &Narrator, listen_fd: BorrowedFd<'a>) -> Acceptor<'a> {
        let spare = open_spare(nar);
        if spare.is_some() {
            nar.note("A spare descriptor, kept for one moment: when every descriptor is in use (EMFILE), the server closes this one, accepts the waiting client with the freed number, closes it at once, and opens the spare again. Without it, the client would stay in the queue, the listener would stay readable, and the loop would spin.");
        }
        Acceptor {
            listen_fd,
            spare,
            armed: None,
            turned_away: 0,
            last_warning: None,
            idle_note_given: false,
        }
    }

    /// One accept(). `waits`: the listener is blocking (the line is printed
    /// before the call sleeps).
    pub fn accept(&mut self, nar: &Narrator, waits: bool) -> Result<Accepted> {
        let fd = self.listen_fd.as_raw_fd();
        let step = if waits {
            nar.blocking_with("accept", || format!("fd {fd}"), "waiting for a client")
        } else {
            nar.call_with("accept", || format!("fd {fd}"))
        };
        match sys::accept_with_peer(self.listen_fd) {
            Ok((conn_fd, peer)) => {
                let raw = conn_fd.as_raw_fd();
                step.ok_with(i64::from(raw), || format!("fd {raw}, peer {peer}"));
                nar.count("connections", 1);
                Ok(Accepted::Client(conn_fd, peer))
            }
            Err(Errno::EAGAIN) => {
                step.fail(Errno::EAGAIN);
                if !waits {
                    nar.note("EAGAIN: the accept queue is empty; every waiting client has been accepted.");
                }
                Ok(Accepted::Nothing)
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                Ok(Accepted::Nothing)
            }
            Err(errno @ (Errno::EMFILE | Errno::ENFILE)) => {
                step.fail(errno);
                self.turn_away(nar, errno);
                Ok(Accepted::Failed)
            }
            // The client gave up before we accepted it, or memory ran short
            // for a moment: the server goes on with the others.
            Err(errno) if accept::is_transient(errno) => {
                step.fail(errno);
                nar.count("accept_failed", 1);
                if nar.showing() {
                    nar.info(
                        "accept_failed",
                        json!(errno_name(errno)),
                        format!(
                            "accept() failed with {}; the server goes on",
                            errno_name(errno)
                        ),
                    );
                }
                Ok(Accepted::Failed)
            }
            Err(errno) => {
                step.fail(errno);
                Err(errno).context("accept() failed")
            }
        }
    }

    /// Out of descriptors: free the spare, accept the client into it and
    /// close it, then take the spare back. Without a spare, pause 100 ms so
    /// the loop does not spin on the same error.
    fn turn_away(&mut self, nar: &Narrator, errno: Errno) {
        // A blocking accept() fails with EMFILE before it waits, even when
        // the queue is empty. Closing the spare then would let the next
        // accept() sleep, and the healthy client it finally takes would be
        // closed. So first ask, without waiting, whether a client is there.
        if self.spare.is_some() && !self.client_waiting(nar) {
            if !self.idle_note_given {
                self.idle_note_given = true;
                nar.note("EMFILE with no client waiting: a blocking accept() checks for a free descriptor before it waits. The spare is kept; the server waits 100 ms (a connection may end meanwhile) and tries again.");
            }
            let _ = sys::nanosleep(Duration::from_millis(100));
            return;
        }
        nar.count("clients_turned_away", 1);
        self.turned_away += 1;
        match self.spare.take() {
            Some(spare) => {
                let spare_fd = spare.as_raw_fd();
                let step = nar.call_with("close", || format!("fd {spare_fd} (the spare)"));
                match nix::unistd::close(spare) {
                    Ok(()) => step.ok_with(0, || "0".into()),
                    Err(errno) => step.fail(errno),
                }
                let fd = self.listen_fd.as_raw_fd();
                let step = nar.call_with("accept", || format!("fd {fd}"));
                match sys::accept_with_peer(self.listen_fd) {
                    Ok((conn_fd, peer)) => {
                        let raw = conn_fd.as_raw_fd();
                        step.ok_with(i64::from(raw), || format!("fd {raw}, peer {peer}"));
                        let step = nar.call_with("close", || format!("fd {raw}"));
                        match nix::unistd::close(conn_fd) {
                            Ok(()) => step.ok_with(0, || "0".into()),
                            Err(errno) => step.fail(errno),
                        }
                    }
                    Err(errno) => step.fail(errno),
                }
                self.spare = open_spare(nar);
            }
            None => {
                let _ = sys::nanosleep(Duration::from_millis(100));
            }
        }
        // One warning a second at most, however many clients came.
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1))
        {
            self.last_warning = Some(now);
            nar.warning(
                format!(
                    "accept() failed with {}: out of file descriptors; {} client(s) turned away since the last report",
                    errno_name(errno),
                    self.turned_away
                ),
                Some("EMFILE means this process has as many fds open as RLIMIT_NOFILE allows (`ulimit -n`)"),
            );
            self.turned_away = 0;
        }
    }

    /// poll() the listener with a zero timeout: is a client in the accept
    /// queue now? (An error counts as yes, the old behaviour.)
    fn client_waiting(&self, nar: &Narrator) -> bool {
        let fd = self.listen_fd.as_raw_fd();
        let step = nar.call_with("poll", || format!("[fd {fd} POLLIN], 0 ms"));
        let mut fds = [PollFd::new(self.listen_fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(ready) => {
                step.ok_with(i64::from(ready), || match ready {
                    0 => "0: no client waiting".into(),
                    _ => format!("{ready}: a client is waiting"),
                });
                ready > 0
            }
            Err(errno) => {
                step.fail(errno);
                true
            }
        }
    }

    /// Blocking listener: limit accept()'s sleep while the narration holds
    /// a summary to print (SO_RCVTIMEO; 0 means no limit). Set only when it
    /// changes, so a quiet server makes no extra call.
    pub fn arm_timeout(&mut self, nar: &Narrator) {
        // Rounded up to whole milliseconds, at least 1 (0 would mean "never").
        let wanted = nar
            .tick_due_in()
            .map(|due| Duration::from_millis(due.as_millis() as u64 + 1));
        let changed = match (self.armed, wanted) {
            (None, None) => false,
            (Some(_), None) | (None, Some(_)) => true,
            // Re-arm only when the difference matters.
            (Some(armed), Some(wanted)) => armed.abs_diff(wanted) > Duration::from_millis(50),
        };
        if !changed {
            return;
        }
        let value = wanted.unwrap_or(Duration::ZERO);
        let fd = self.listen_fd.as_raw_fd();
        let step = nar.call_with("setsockopt", || {
            format!("fd {fd}, SOL_SOCKET, SO_RCVTIMEO, {} ms", value.as_millis())
        });
        match setsockopt(&self.listen_fd, sockopt::ReceiveTimeout, &timeval(value)) {
            Ok(()) => {
                step.ok_with(0, || "0".into());
                self.armed = wanted;
                if wanted.is_some() {
                    nar.note("SO_RCVTIMEO on the listener: accept() gives up with EAGAIN when the last busy second's summary is due, so it is printed on time. Once things are quiet again, accept() waits for ever (0).");
                }
            }
            Err(errno) => step.fail(errno),
        }
    }
}

/// A Duration as the struct timeval that SO_RCVTIMEO and SO_SNDTIMEO take.
pub fn timeval(value: Duration) -> TimeVal {
    TimeVal::from(libc::timeval {
        tv_sec: value.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(value.subsec_micros()),
    })
}

/// open("/dev/null"): the spare descriptor.
fn open_spare(nar: &Narrator) -> Option<OwnedFd> {
    let step = nar.call_with("open", || "\"/dev/null\", O_RDONLY|O_CLOEXEC".into());
    match open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(spare) => {
            let raw = spare.as_raw_fd();
            step.ok_with(i64::from(raw), || format!("fd {raw}"));
            Some(spare)
        }
        Err(errno) => {
            step.fail(errno);
            None
        }
    }
}

/// epoll's clients are non-blocking: accept() does not pass O_NONBLOCK on
/// from the listener (on Linux), so it is set on each new socket.
pub fn make_nonblocking(nar: &Narrator, conn_fd: &OwnedFd) -> nix::Result<()> {
    let fd = conn_fd.as_raw_fd();
    let step = nar.call_with("fcntl", || format!("fd {fd}, F_SETFL, O_RDWR | O_NONBLOCK"));
    // A fresh socket's status flags are only its access mode, O_RDWR, which
    // F_SETFL ignores; setting O_NONBLOCK alone keeps nothing else from it.
    match fcntl(conn_fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)) {
        Ok(_) => {
            step.ok_with(0, || "0".into());
            Ok(())
        }
        Err(errno) => {
            step.fail(errno);
            Err(errno)
        }
    }
}
