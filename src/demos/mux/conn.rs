//! One client of a multiplexing echo server, and the table of all of them.
//!
//! The three servers differ only in how they learn which sockets are ready;
//! what they do with a ready socket is the same, and lives here:
//!
//! * **Readable**: recv() once into the buffer every client shares, then
//!   send() the same bytes back. The socket is non-blocking, so recv()
//!   returns EAGAIN instead of waiting when there is nothing (left) to read.
//! * **A short write**: send() may take only part of the bytes when the
//!   client reads slower than it writes and its socket's send buffer is
//!   full. The rest is kept in this client's `unsent` buffer, and the
//!   server stops reading from this client (it would only pile up more) and
//!   watches for *writability* instead.
//! * **Writable**: send() the unsent bytes; when all are out, go back to
//!   reading.
//!
//! Nothing here allocates or formats per event when nothing is narrated:
//! the shared read buffer is the only buffer, `unsent` is allocated only
//! for a client that is backed up, and every narration string is built in a
//! closure the narrator calls only if it prints the step.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};
use serde_json::json;

use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{errno_name, Narrator};

/// How much of each message the narration shows.
const SHOW_CHARS: usize = 60;

/// One connected client.
pub struct Conn {
    /// The connected socket (non-blocking). Dropping the Conn closes it.
    pub fd: OwnedFd,
    /// The client's address, from accept().
    pub peer: SocketAddr,
    /// Bytes received but not yet echoed, because send() took fewer than we
    /// gave it. Empty (and unallocated) for a client that keeps up.
    unsent: Vec<u8>,
    /// How many bytes at the front of `unsent` have been sent since.
    unsent_from: usize,
}

/// Why a client is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// recv() returned 0: the client sent FIN.
    PeerClosed,
    /// ECONNRESET or EPIPE: the client reset the connection or vanished.
    Reset,
    /// Another error from recv() or send().
    Failed(Errno),
    /// The server cannot watch this client (select's FD_SETSIZE).
    Refused,
    /// The server is stopping.
    Shutdown,
}

impl Ending {
    fn name(self) -> &'static str {
        match self {
            Ending::PeerClosed => "closed by the client",
            Ending::Reset => "reset",
            Ending::Failed(_) => "failed",
            Ending::Refused => "refused: select() cannot watch its fd",
            Ending::Shutdown => "server stopping",
        }
    }
}

/// What one recv() brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Bytes arrived and were echoed (all of them, or the rest is unsent).
    Echoed(usize),
    /// EAGAIN: nothing more to read for now.
    Drained,
    /// The client is gone; close it.
    Gone(Ending),
}

/// What sending the unsent bytes achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything is out: read from this client again.
    AllSent,
    /// Some bytes are still waiting: keep watching for writability.
    StillBackedUp,
    /// The client is gone; close it.
    Gone(Ending),
}

impl Conn {
    pub fn new(fd: OwnedFd, peer: SocketAddr) -> Conn {
        Conn {
            fd,
            peer,
            unsent: Vec::new(),
            unsent_from: 0,
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Is this client's output backed up? Then the server must not read
    /// from it, only wait until its socket is writable.
    pub fn backed_up(&self) -> bool {
        self.unsent_from < self.unsent.len()
    }

    /// recv() once into `buf`, then echo what came. Call it only when the
    /// client is not backed up.
    pub fn receive_and_echo(&mut self, nar: &Narrator, buf: &mut [u8]) -> Received {
        let fd = self.raw_fd();
        let step = nar.call_with("recv", || format!("fd {fd}, {}, 0", bytes(buf.len())));
        match recv(fd, buf, MsgFlags::empty()) {
            Ok(0) => {
                step.ok_with(0, || "0: end of stream".into());
                if nar.showing() {
                    nar.tcp_state(self.fd.as_fd());
                }
                nar.note("recv() returned 0: the client sent FIN and will send nothing more, so we close our end too.");
                Received::Gone(Ending::PeerClosed)
            }
            Ok(received) => {
                step.ok_with(received as i64, || {
                    format!(
                        "{}: {}",
                        bytes(received),
                        show_bytes(&buf[..received], SHOW_CHARS)
                    )
                });
                nar.count("reads", 1);
                nar.count("bytes_in", received as u64);
                match self.send_some(nar, &buf[..received]) {
                    Ok(sent) if sent < received => {
                        // Keep what the kernel did not take. The buffer is
                        // reused for this client's next backlog.
                        self.unsent.clear();
                        self.unsent.extend_from_slice(&buf[sent..received]);
                        self.unsent_from = 0;
                        nar.note("A short write: this socket's send buffer is full because the client reads slower than it sends. The rest is kept, and we stop reading from this client until its socket is writable again.");
                        Received::Echoed(received)
                    }
                    Ok(_) => Received::Echoed(received),
                    Err(ending) => Received::Gone(ending),
                }
            }
            Err(Errno::EAGAIN) => {
                step.fail(Errno::EAGAIN);
                nar.note("EAGAIN: the receive queue is empty. A blocking socket would wait here; a non-blocking one returns, and the loop goes back to waiting for readiness.");
                Received::Drained
            }
            // Only a signal; the loop checks whether it asks us to stop.
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                Received::Drained
            }
            Err(Errno::ECONNRESET) => {
                step.fail(Errno::ECONNRESET);
                nar.note("ECONNRESET: the client reset the connection (it sent RST). There is nothing more to read or write.");
                Received::Gone(Ending::Reset)
            }
            Err(errno) => {
                step.fail(errno);
                Received::Gone(Ending::Failed(errno))
            }
        }
    }

    /// send() the unsent bytes. Call it when the socket is writable.
    pub fn flush(&mut self, nar: &Narrator) -> Flushed {
        let pending = std::mem::take(&mut self.unsent);
        let result = self.send_some(nar, &pending[self.unsent_from..]);
        self.unsent = pending;
        match result {
            Ok(sent) => {
                self.unsent_from += sent;
                if self.backed_up() {
                    Flushed::StillBackedUp
                } else {
                    // Keep the allocation for next time; only the length resets.
                    self.unsent.clear();
                    self.unsent_from = 0;
                    nar.note("Every unsent byte is out: this client's socket is watched for reading again.");
                    Flushed::AllSent
                }
            }
            Err(ending) => Flushed::Gone(ending),
        }
    }

    /// One send(); returns how many bytes the kernel took (0 on EAGAIN).
    fn send_some(&mut self, nar: &Narrator, data: &[u8]) -> Result<usize, Ending> {
        let fd = self.raw_fd();
        let step = nar.call_with("send", || format!("fd {fd}, {}, 0", bytes(data.len())));
        match send(fd, data, MsgFlags::empty()) {
            Ok(sent) => {
                step.ok_with(sent as i64, || bytes(sent));
                nar.count("writes", 1);
                nar.count("bytes_out", sent as u64);
                Ok(sent)
            }
            Err(errno @ (Errno::EAGAIN | Errno::EINTR)) => {
                step.fail(errno);
                if errno == Errno::EAGAIN {
                    nar.note("EAGAIN from send(): the socket's send buffer is full because the client reads slower than it writes.");
                }
                Ok(0)
            }
            Err(errno @ (Errno::EPIPE | Errno::ECONNRESET)) => {
                step.fail(errno);
                nar.note("The client is gone (EPIPE or ECONNRESET): nothing we send can arrive. SIGPIPE is ignored, so this is an error we handle, not a crash.");
                Err(Ending::Reset)
            }
            Err(errno) => {
                step.fail(errno);
                Err(Ending::Failed(errno))
            }
        }
    }

    /// close(): our end sends FIN (or nothing, if the connection is dead).
    pub fn close(self, nar: &Narrator, why: Ending) {
        let fd = self.raw_fd();
        let peer = self.peer;
        if let Ending::Failed(errno) = why {
            nar.warning(
                format!(
                    "client {peer} on fd {fd}: {} ({}); closing it",
                    errno_name(errno),
                    errno.desc()
                ),
                None,
            );
        }
        let step = nar.call_with("close", || format!("fd {fd}"));
        // close() on a socket fails only for a bad fd; the table owned it.
        match nix::unistd::close(self.fd) {
            Ok(()) => step.ok_with(0, || "0".into()),
            Err(errno) => step.fail(errno),
        }
        if nar.showing() {
            nar.info(
                "client_done",
                json!({ "peer": peer.to_string(), "fd": fd, "why": why.name() }),
                format!("client {peer} on fd {fd}: {}", why.name()),
            );
        }
    }
}

/// The fd-to-client map every multiplexing server keeps: the kernel answers
/// with fd numbers, and this finds the client behind each. Indexed by the
/// fd itself, the kernel's lowest-free-number rule keeps it dense.
#[derive(Default)]
pub struct ConnTable {
    slots: Vec<Option<Conn>>,
    open: usize,
}

impl ConnTable {
    pub fn new() -> ConnTable {
        ConnTable::default()
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.open
    }

    pub fn insert(&mut self, conn: Conn) {
        let index = conn.raw_fd() as usize;
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        if self.slots[index].replace(conn).is_none() {
            self.open += 1;
        }
    }

    pub fn get_mut(&mut self, fd: RawFd) -> Option<&mut Conn> {
        self.slots.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }

    pub fn remove(&mut self, fd: RawFd) -> Option<Conn> {
        let conn = self.slots.get_mut(usize::try_from(fd).ok()?)?.take()?;
        self.open -= 1;
        Some(conn)
    }

    /// Every client, in fd order.
    pub fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().flatten()
    }

    /// Close every client (the server is stopping).
    pub fn close_all(&mut self, nar: &Narrator) {
        for slot in &mut self.slots {
            if let Some(conn) = slot.take() {
                conn.close(nar, Ending::Shutdown);
            }
        }
        self.open = 0;
    }
}
