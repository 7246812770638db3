//! `kernel:` lines: read a fact from the kernel now, and narrate it.
//!
//! The readers themselves live in `crate::kernel` and know nothing about
//! printing; this file turns what they return into `Fact`s with a sentence,
//! a machine-readable value and the source it came from. When a fact cannot
//! be read, the line says so and why; it never guesses.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Narrator;
use crate::kernel::{self, ListenQueue, TcpState};

/// One fact read from the kernel.
#[derive(Debug, Clone)]
pub struct Fact {
    /// What the fact is about: "fd 4", "127.0.0.1:8888 -> 127.0.0.1:51234".
    pub subject: String,
    /// A stable key for programs: "tcp_state", "accept_queue", ...
    pub fact: &'static str,
    /// The value (null when it could not be read).
    pub value: Value,
    /// Where it was read: "tcp_info", "/proc/net/tcp", ...
    pub source: &'static str,
    /// Whether it could be read at all.
    pub available: bool,
    /// The sentence shown after `kernel:`.
    pub text: String,
}

impl Fact {
    pub fn new(
        subject: impl Into<String>,
        fact: &'static str,
        value: Value,
        source: &'static str,
        text: impl Into<String>,
    ) -> Fact {
        Fact {
            subject: subject.into(),
            fact,
            value,
            source,
            available: true,
            text: text.into(),
        }
    }

    /// A fact we tried to read and could not; `why` says what stopped us.
    pub fn unavailable(
        subject: impl Into<String>,
        fact: &'static str,
        source: &'static str,
        why: impl std::fmt::Display,
    ) -> Fact {
        let subject = subject.into();
        Fact {
            text: format!("could not read {fact} of {subject}: {why}"),
            subject,
            fact,
            value: Value::Null,
            source,
            available: false,
        }
    }

    /// The fact as the fields of a `kernel` event (for `probe` events).
    pub fn to_json(&self) -> Value {
        json!({
            "subject": self.subject,
            "fact": self.fact,
            "value": self.value,
            "source": self.source,
            "available": self.available,
            "text": self.text,
        })
    }

    pub(super) fn into_kind(self) -> super::Kind {
        super::Kind::Kernel {
            subject: self.subject,
            fact: self.fact.into(),
            value: self.value,
            source: self.source.into(),
            available: self.available,
            text: self.text,
        }
    }
}

/// How long `connection_state` waits for a state that normally lasts one
/// round trip (FIN_WAIT1, LAST_ACK...) to move on before it reports.
const SETTLE: Duration = Duration::from_millis(500);

impl Narrator {
    /// Read a TCP socket's state with getsockopt(TCP_INFO) and narrate it:
    /// `kernel: fd 4 is ESTABLISHED (tcp_info)`.
    pub fn tcp_state(&self, fd: BorrowedFd<'_>) -> Option<TcpState> {
        let subject = format!("fd {}", fd.as_raw_fd());
        match kernel::tcp_info(fd) {
            Ok(info) => {
                self.kernel(Fact::new(
                    &subject,
                    "tcp_state",
                    Value::from(info.state.name()),
                    "tcp_info",
                    format!("{subject} is {}", info.state.name()),
                ));
                Some(info.state)
            }
            Err(errno) => {
                self.kernel(Fact::unavailable(
                    subject,
                    "tcp_state",
                    "tcp_info",
                    errno_text(errno),
                ));
                None
            }
        }
    }

    /// Read a listening socket's accept queue from TCP_INFO and narrate it:
    /// `kernel: fd 3 is LISTEN, 1 connection waits in the accept queue (backlog 5)`.
    pub fn listen_queue(&self, fd: BorrowedFd<'_>) -> Option<ListenQueue> {
        let subject = format!("fd {}", fd.as_raw_fd());
        match kernel::listen_queue(fd) {
            Ok(Some(queue)) => {
                let waiting = match queue.waiting {
                    0 => "no connection waits".to_string(),
                    1 => "1 connection waits".to_string(),
                    n => format!("{n} connections wait"),
                };
                self.kernel(Fact::new(
                    &subject,
                    "accept_queue",
                    json!({ "waiting": queue.waiting, "backlog": queue.backlog }),
                    "tcp_info",
                    format!(
                        "{subject} is LISTEN, {waiting} in the accept queue (backlog {})",
                        queue.backlog
                    ),
                ));
                Some(queue)
            }
            Ok(None) => {
                self.kernel(Fact::unavailable(
                    subject,
                    "accept_queue",
                    "tcp_info",
                    "the socket is not listening",
                ));
                None
            }
            Err(errno) => {
                self.kernel(Fact::unavailable(
                    subject,
                    "accept_queue",
                    "tcp_info",
                    errno_text(errno),
                ));
                None
            }
        }
    }

    /// Look a connection up by its address pair in /proc/net/tcp(6) and
    /// narrate its state, e.g. `kernel: 127.0.0.1:51234 -> 127.0.0.1:8888 is
    /// TIME_WAIT`. This works after the socket is closed, which TCP_INFO
    /// cannot. A state that normally lasts one round trip is read again for
    /// up to 500 ms, and the line says how long it waited. `whose` names the
    /// end in the note ("this client's end").
    pub fn connection_state(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        whose: &str,
    ) -> Option<TcpState> {
        let subject = format!("{local} -> {remote}");
        let started = Instant::now();
        // Waiting for a state to settle is worth it only when the line is
        // shown; under --quiet or the throttle one read is enough (a
        // server shutting down with 50 connections would otherwise wait
        // half a second for each, with nobody to read the result).
        let settle = if self.showing() {
            SETTLE
        } else {
            Duration::ZERO
        };
        let entry = loop {
            match kernel::proc_net::connection(local, remote) {
                Ok(entry) => {
                    let settling = entry.as_ref().is_some_and(|entry| {
                        entry.state.is_transitional() || entry.state == TcpState::FinWait2
                    });
                    if !settling || started.elapsed() >= settle {
                        break entry;
                    }
                }
                Err(err) => {
                    self.kernel(Fact::unavailable(
                        subject,
                        "connection_state",
                        "/proc/net/tcp",
                        err,
                    ));
                    return None;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let waited = started.elapsed();
        let after = if waited >= Duration::from_millis(10) {
            format!(" (read again for {} ms)", waited.as_millis())
        } else {
            String::new()
        };
        match entry {
            Some(entry) => {
                self.kernel(Fact::new(
                    &subject,
                    "connection_state",
                    json!({ "local": local.to_string(), "remote": remote.to_string(), "state": entry.state.name(), "whose": whose }),
                    "/proc/net/tcp",
                    format!("{whose} {subject} is {}{after}", entry.state.name()),
                ));
                Some(entry.state)
            }
            None => {
                self.kernel(Fact::new(
                    &subject,
                    "connection_state",
                    json!({ "local": local.to_string(), "remote": remote.to_string(), "state": Value::Null, "whose": whose }),
                    "/proc/net/tcp",
                    format!("{whose} {subject} is gone: the kernel keeps nothing of it{after}"),
                ));
                None
            }
        }
    }
}

impl Narrator {
    /// List this process's open file descriptors from /proc/self/fd, with
    /// each socket's TCP state and addresses joined from /proc/net/tcp by
    /// inode: `kernel: open fds: 0 terminal, 1 pipe, 2 terminal, 3 socket
    /// LISTEN 0.0.0.0:8888, 4 socket ESTABLISHED 127.0.0.1:8888 <-> ...`.
    pub fn fd_table(&self) {
        let pid = std::process::id() as i32;
        let subject = format!("pid {pid}");
        let fds = match kernel::fds::list_fds(pid) {
            Ok(fds) => fds,
            Err(err) => {
                self.kernel(Fact::unavailable(subject, "open_fds", "/proc/self/fd", err));
                return;
            }
        };
        let sockets = kernel::proc_net::read_tcp_table().unwrap_or_default();
        let mut parts = Vec::with_capacity(fds.len());
        let mut values = Vec::with_capacity(fds.len());
        for entry in &fds {
            let tcp = match entry.kind {
                kernel::FdKind::Socket { inode } => {
                    kernel::proc_net::find_by_inode(&sockets, inode)
                }
                _ => None,
            };
            let part = match tcp {
                Some(tcp) if tcp.state == TcpState::Listen => {
                    format!("{} socket LISTEN {}", entry.fd, tcp.local)
                }
                Some(tcp) => format!(
                    "{} socket {} {} <-> {}",
                    entry.fd,
                    tcp.state.name(),
                    tcp.local,
                    tcp.remote
                ),
                None if crate::stop::self_pipe_fds().contains(&entry.fd) => {
                    format!(
                        "{} pipe (netlab's own, to stop cleanly on a signal)",
                        entry.fd
                    )
                }
                None => match &entry.kind {
                    kernel::FdKind::File(path) | kernel::FdKind::Terminal(path) => {
                        format!("{} {path}", entry.fd)
                    }
                    kind => format!("{} {}", entry.fd, kind.label()),
                },
            };
            parts.push(part);
            values.push(json!({
                "fd": entry.fd,
                "kind": entry.kind.label(),
                "target": entry.target,
                "tcp_state": tcp.map(|tcp| tcp.state.name()),
            }));
        }
        self.kernel(Fact::new(
            subject,
            "open_fds",
            Value::from(values),
            "/proc/self/fd",
            format!("open fds: {}", parts.join(", ")),
        ));
    }
}

fn errno_text(errno: nix::errno::Errno) -> String {
    format!("{} ({})", super::errno_name(errno), errno.desc())
}
