//! One HTTP connection: its input buffer, the response being sent, its clock.
//!
//! The three models (epoll, iterative, thread) differ in how they wait; what
//! they do once a socket is ready is the same, and lives here:
//!
//! * **Reading**: recv() appends to this connection's input buffer, which
//!   starts at 4 KiB and grows (doubling) up to a full head plus a full body.
//!   TCP is a byte stream, so one recv() may bring half a request, or three
//!   pipelined ones: `exchange::handle` says which.
//! * **One request at a time**: `next_request` hands the buffered bytes to
//!   `exchange::handle`. A complete request becomes the response being sent,
//!   and its bytes leave the buffer; the next pipelined request is not
//!   looked at until this response is completely out, so responses can never
//!   be reordered.
//! * **Writing**: the head and the body go out with as few calls as possible:
//!   a body in memory, or a small file read with pread(), goes with the head
//!   in one writev(); a large file follows the head with sendfile(), which
//!   copies from the page cache to the socket inside the kernel. A call may
//!   take only part of the bytes (a short write): the connection remembers
//!   how far it got and continues when the socket is writable again.
//! * **Closing politely**: a connection that ends after a response first
//!   shuts down its sending side (FIN after the last byte). Closing a socket
//!   whose receive queue still holds unread bytes would make the kernel send
//!   RST and drop what is left in the send buffer, the end of our response;
//!   so when bytes are left, the connection *lingers*: it reads and discards
//!   until the client closes (or LINGER passes).
//!
//! A socket here may be non-blocking (epoll) or blocking (iterative,
//! thread). A blocking socket's waits are bounded by SO_RCVTIMEO and
//! SO_SNDTIMEO, set before each wait to the time left until the
//! connection's deadline (`arm_timeout`): each option bounds one call, so
//! the deadline itself is kept here. In both cases EAGAIN means "not now":
//! for epoll, wait for readiness; for the blocking models, the time is up.
//!
//! The files a response sends come from `exchange/`, which opens them; the
//! calls it made (openat2, fstat...) are narrated here as steps, after the
//! request, and the file's close() when its response is done.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, setsockopt, shutdown, sockopt, MsgFlags, Shutdown};
use nix::sys::uio::{pread, writev};
use serde_json::json;

use super::exchange::{self, Body, Outcome, Response, Traced};
use super::{listener, show, Config};
use crate::demos::mux::{narrate_receive_queue, receive_queue};
use crate::narrate::text::bytes;
use crate::narrate::{errno_name, Narrator};
use crate::stop;

/// The input buffer's first size: a typical browser request head is under
/// 1 KiB, and 1,000 idle connections then hold 4 MiB.
const FIRST_INPUT: usize = 4096;

/// A file up to this size is read with pread() and sent with its head in
/// one writev(); a larger one is sent with sendfile().
pub const SMALL_FILE: usize = 32 * 1024;

/// The blocking models send every file through a buffer of this size
/// (pread, then send), since sendfile() there would not keep SO_SNDTIMEO.
pub const BLOCKING_CHUNK: usize = 256 * 1024;

/// How much one sendfile() is asked to send: a blocking socket then comes
/// back (and checks for a stop) at least once per chunk.
const SENDFILE_CHUNK: usize = 1 << 20;

/// How long a closing connection may keep sending us bytes we discard.
const LINGER: Duration = Duration::from_secs(2);

/// Why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// recv() returned 0 with nothing left to answer: the client closed.
    PeerClosed,
    /// The last response said `Connection: close`, and it is out.
    AfterResponse,
    /// ECONNRESET or EPIPE: the client reset the connection or vanished.
    Reset,
    /// Another error from a call on the socket.
    Failed(Errno),
    /// The file being sent became shorter than its Content-Length.
    FileShrank,
    /// A request head did not arrive complete within --header-timeout.
    HeaderTimeout,
    /// Nothing in flight for --idle-timeout.
    IdleTimeout,
    /// The client took none of the response for --send-timeout.
    SendTimeout,
    /// A lingering close lasted its full time.
    LingerOver,
    /// More bytes than a head and a body may hold, still incomplete.
    TooLarge,
    /// The server is stopping.
    Shutdown,
}

impl Ending {
    pub fn name(self) -> &'static str {
        match self {
            Ending::PeerClosed => "closed by the client",
            Ending::AfterResponse => "closed after its last response",
            Ending::Reset => "reset by the client",
            Ending::Failed(_) => "failed",
            Ending::FileShrank => "the file shrank while it was sent",
            Ending::HeaderTimeout => "request head timeout (408)",
            Ending::IdleTimeout => "idle timeout",
            Ending::SendTimeout => "send timeout: the client stopped reading",
            Ending::LingerOver => "lingering close timed out",
            Ending::TooLarge => "request larger than the limits",
            Ending::Shutdown => "server stopping",
        }
    }
}

/// What one recv() brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Bytes arrived and were added to the input buffer.
    Data(usize),
    /// EAGAIN: nothing to read now (or, on a blocking socket, SO_RCVTIMEO passed).
    Drained,
    /// EINTR: a signal came first; nothing was read.
    Interrupted,
    /// recv() returned 0: the client will send nothing more (it may still
    /// read what we answer).
    End,
    /// The connection is unusable.
    Gone(Ending),
}

/// What `next_request` found in the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A response is ready to send.
    Respond,
    /// No complete request yet.
    NeedMore,
    /// A response is still being sent: the next request waits its turn.
    Busy,
    /// The buffer is full and `exchange::handle` still wants more.
    TooLarge,
}

/// What sending the current response achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The whole response is out; `keep_alive` says whether another may follow.
    Done { keep_alive: bool },
    /// EAGAIN: the send buffer is full (or SO_SNDTIMEO passed); the rest waits.
    Blocked,
    /// The connection is unusable.
    Gone(Ending),
}

/// The response being sent, and how far it got.
struct Sending {
    head: Vec<u8>,
    head_sent: usize,
    body: Body,
    body_sent: u64,
    keep_alive: bool,
}

impl Sending {
    fn body_len(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Count `sent` bytes, the head's first.
    fn advance(&mut self, sent: usize) {
        let from_head = sent.min(self.head.len() - self.head_sent);
        self.head_sent += from_head;
        self.body_sent += (sent - from_head) as u64;
    }

    fn is_complete(&self) -> bool {
        self.head_sent == self.head.len() && self.body_sent >= self.body_len()
    }
}

/// One connected HTTP client.
pub struct Conn {
    /// The connected socket. Dropping the Conn closes it.
    pub fd: OwnedFd,
    /// The client's address, from accept().
    pub peer: SocketAddr,
    /// Received bytes live in `input[..filled]`; the rest is room for recv().
    /// Unallocated until the first recv().
    input: Vec<u8>,
    filled: usize,
    /// The response being written, if one is.
    sending: Option<Sending>,
    /// When the first byte of the request now being received arrived (None
    /// while the buffer is empty): the start of the header timeout.
    head_started: Option<Instant>,
    /// The last time a byte moved either way, or a response started or
    /// ended: the start of the idle and send timeouts.
    last_progress: Instant,
    /// recv() returned 0: answer what is buffered, then close.
    peer_done: bool,
    /// epoll only: the socket is watched for EPOLLOUT (a response is stuck)
    /// rather than EPOLLIN.
    pub watching_out: bool,
    /// Our side has sent FIN, and we discard what still arrives until the
    /// client closes or this instant (fixed: a client that keeps sending
    /// cannot extend it).
    linger_until: Option<Instant>,
    /// Requests answered on this connection.
    pub requests: u64,
    /// The blocking models' sockets: recv() and send() may wait (up to
    /// SO_RCVTIMEO and SO_SNDTIMEO).
    pub blocking: bool,
    /// The SO_RCVTIMEO and SO_SNDTIMEO now set (blocking sockets), so that
    /// they are set again only when the time left has changed.
    receive_armed: Option<Duration>,
    send_armed: Option<Duration>,
    /// Thread model: set by the main thread just before its own shutdown()
    /// of this socket, when the server stops. Then a recv() of 0 or an
    /// EPIPE is our doing, not the client's.
    pub stopping: Option<Arc<AtomicBool>>,
}

/// Which of a blocking socket's two timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Receive,
    Send,
}

impl Conn {
    pub fn new(fd: OwnedFd, peer: SocketAddr) -> Conn {
        Conn {
            fd,
            peer,
            input: Vec::new(),
            filled: 0,
            sending: None,
            head_started: None,
            last_progress: Instant::now(),
            peer_done: false,
            watching_out: false,
            linger_until: None,
            requests: 0,
            blocking: false,
            receive_armed: None,
            send_armed: None,
            stopping: None,
        }
    }

    /// Has the server itself shut this connection down (it is stopping)?
    fn shut_by_server(&self) -> bool {
        self.stopping
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Blocking sockets: before a recv() or a send(), make the call give up
    /// when this connection's deadline comes (and, for recv, when the
    /// narration's summary of a busy second is due), not later. Set again
    /// only when the time left differs by more than 50 ms from what is set,
    /// so a keep-alive connection's usual request costs no extra call.
    fn arm_timeout(&mut self, nar: &Narrator, config: &Config, wait: Wait) -> nix::Result<()> {
        let (deadline, _) = self.deadline(config);
        let mut left = deadline.saturating_duration_since(Instant::now());
        if wait == Wait::Receive {
            if let Some(due) = nar.tick_due_in() {
                left = left.min(due);
            }
        }
        // 0 would mean "wait for ever": 1 ms is the least.
        let left = left.max(Duration::from_millis(1));
        let armed = match wait {
            Wait::Receive => &mut self.receive_armed,
            Wait::Send => &mut self.send_armed,
        };
        let first = armed.is_none();
        if armed.is_some_and(|set| set.abs_diff(left) <= Duration::from_millis(50)) {
            return Ok(());
        }
        let fd = self.fd.as_raw_fd();
        let name = match wait {
            Wait::Receive => "SO_RCVTIMEO",
            Wait::Send => "SO_SNDTIMEO",
        };
        let step = nar.call_with("setsockopt", || {
            format!("fd {fd}, SOL_SOCKET, {name}, {} ms", left.as_millis())
        });
        let value = listener::timeval(left);
        let result = match wait {
            Wait::Receive => setsockopt(&self.fd, sockopt::ReceiveTimeout, &value),
            Wait::Send => setsockopt(&self.fd, sockopt::SendTimeout, &value),
        };
        match result {
            Ok(()) => step.ok_with(0, || "0".into()),
            Err(errno) => {
                step.fail(errno);
                return Err(errno);
            }
        }
        *armed = Some(left);
        if first && wait == Wait::Receive {
            nar.note("SO_RCVTIMEO: the next recv() on this blocking socket returns EAGAIN if nothing arrives before this connection's deadline (head, idle), so a silent client cannot hold the server. It is set again only when the time left changes.");
        }
        if first && wait == Wait::Send {
            nar.note("SO_SNDTIMEO: a blocking send that makes no progress gives up with EAGAIN when the --send-timeout runs out. The option bounds each call, not the response, so the deadline (no progress for that long) is kept here, and the option is set to the time left before each call.");
        }
        Ok(())
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Is a response being written? Then do not read: wait for writability.
    pub fn is_sending(&self) -> bool {
        self.sending.is_some()
    }

    pub fn is_lingering(&self) -> bool {
        self.linger_until.is_some()
    }

    /// Has the client sent FIN (recv() returned 0)?
    pub fn peer_done(&self) -> bool {
        self.peer_done
    }

    /// The next deadline of this connection, and what passing it means.
    pub fn deadline(&self, config: &Config) -> (Instant, Ending) {
        if self.sending.is_some() {
            (
                self.last_progress + config.send_timeout,
                Ending::SendTimeout,
            )
        } else if let Some(until) = self.linger_until {
            (until, Ending::LingerOver)
        } else if let Some(started) = self.head_started {
            (started + config.header_timeout, Ending::HeaderTimeout)
        } else {
            (
                self.last_progress + config.idle_timeout,
                Ending::IdleTimeout,
            )
        }
    }

    /// recv() once into the input buffer.
    pub fn receive(&mut self, nar: &Narrator, config: &Config) -> Received {
        if self.filled == self.input.len() {
            // Full: grow, doubling, up to a full head and a full body.
            let grown = if self.input.is_empty() {
                FIRST_INPUT
            } else {
                (self.input.len() * 2).min(config.max_input())
            };
            if grown <= self.input.len() {
                return Received::Gone(Ending::TooLarge);
            }
            self.input.resize(grown, 0);
        }
        let fd = self.raw_fd();
        let room_len = self.input.len() - self.filled;
        let args = move || format!("fd {fd}, {}, 0", bytes(room_len));
        // A blocking socket's recv() may wait: its line is printed first.
        if self.blocking {
            if let Err(errno) = self.arm_timeout(nar, config, Wait::Receive) {
                return Received::Gone(Ending::Failed(errno));
            }
        }
        let room = &mut self.input[self.filled..];
        let step = if self.blocking {
            nar.blocking_with(
                "recv",
                args,
                "waiting for the client's bytes, until this connection's deadline",
            )
        } else {
            nar.call_with("recv", args)
        };
        match recv(fd, room, MsgFlags::empty()) {
            Ok(0) => {
                step.ok_with(0, || "0: end of stream".into());
                if self.shut_by_server() {
                    if nar.showing() {
                        nar.tcp_state(self.fd.as_fd());
                        nar.note("The server is stopping: our own shutdown() ended this connection (it sent our FIN, hence FIN_WAIT1), and recv() returns 0 because of it, not because the client closed.");
                    }
                    return Received::Gone(Ending::Shutdown);
                }
                if nar.showing() {
                    nar.tcp_state(self.fd.as_fd());
                    if self.is_lingering() {
                        nar.note("recv() returned 0: the client has closed its side too, after reading our response. Now close() cannot cause a reset.");
                    } else {
                        nar.note("recv() returned 0: the client sent FIN and will send no more requests. Whole requests already received are still answered, an incomplete one is dropped, and then we close.");
                    }
                }
                self.peer_done = true;
                Received::End
            }
            Ok(received) => {
                step.ok_with(received as i64, || {
                    format!(
                        "{}: {}",
                        bytes(received),
                        crate::narrate::text::show_bytes(
                            &self.input[self.filled..self.filled + received],
                            60
                        )
                    )
                });
                nar.count("bytes_in", received as u64);
                let now = Instant::now();
                if self.filled == 0 {
                    self.head_started = Some(now);
                }
                self.filled += received;
                self.last_progress = now;
                Received::Data(received)
            }
            Err(Errno::EAGAIN) => {
                step.fail(Errno::EAGAIN);
                Received::Drained
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                Received::Interrupted
            }
            Err(errno @ (Errno::ECONNRESET | Errno::EPIPE)) if self.shut_by_server() => {
                step.fail(errno);
                nar.note("The server is stopping: our own shutdown() ended this connection, which is why the call failed.");
                Received::Gone(Ending::Shutdown)
            }
            Err(Errno::ECONNRESET) => {
                step.fail(Errno::ECONNRESET);
                nar.note("ECONNRESET: the client reset the connection (it sent RST). There is nothing more to read or write on it.");
                Received::Gone(Ending::Reset)
            }
            Err(errno) => {
                step.fail(errno);
                Received::Gone(Ending::Failed(errno))
            }
        }
    }

    /// Hand the buffered bytes to `exchange::handle`; a complete request
    /// becomes the response to send. Never while a response is being sent.
    pub fn next_request(&mut self, nar: &Narrator, config: &Config) -> Next {
        if self.sending.is_some() {
            return Next::Busy;
        }
        if self.filled == 0 || self.is_lingering() {
            return Next::NeedMore;
        }
        let input = &self.input[..self.filled];
        let outcome = exchange::handle(
            &config.site,
            &config.limits,
            input,
            self.peer,
            SystemTime::now(),
        );
        let exchange = match outcome {
            Outcome::NeedMore if self.filled >= config.max_input() => return Next::TooLarge,
            Outcome::NeedMore => return Next::NeedMore,
            Outcome::Reply(exchange) => exchange,
        };
        let fd = self.fd.as_raw_fd();
        if nar.showing() {
            match &exchange.request {
                Some(head) => show::request(nar, fd, self.peer, head, input),
                None => show::unparsed(nar, fd, self.peer, input, exchange.parse_error),
            }
        }
        // The file system calls `exchange::handle` made (empty with --quiet).
        for traced in &exchange.trace {
            narrate_traced(nar, traced);
        }
        if nar.showing() {
            let head_request = exchange
                .request
                .as_ref()
                .is_some_and(|head| head.method == "HEAD");
            show::response(nar, fd, &exchange.response, head_request);
        }
        show::count_response(nar, exchange.response.status);
        // Drop the request's bytes; a pipelined request moves to the front.
        let consumed = exchange.consumed.clamp(1, self.filled);
        self.start_sending(exchange.response);
        self.input.copy_within(consumed..self.filled, 0);
        self.filled -= consumed;
        self.head_started = (self.filled > 0).then(Instant::now);
        self.requests += 1;
        Next::Respond
    }

    /// Start sending a response built outside `exchange::handle` (the 408).
    /// Its send timeout starts now: each response gets the whole of it,
    /// however long its request took to arrive.
    fn start_sending(&mut self, response: Response) {
        self.last_progress = Instant::now();
        self.sending = Some(Sending {
            head: response.head,
            head_sent: 0,
            body: response.body,
            body_sent: 0,
            keep_alive: response.keep_alive,
        });
    }

    /// The header timeout passed with a request half-received: answer 408
    /// and close (the bytes so far are dropped). The 408 says whether the
    /// head was late, or the body its Content-Length announced.
    pub fn request_timeout(&mut self, nar: &Narrator) {
        let head_complete = head_is_complete(&self.input[..self.filled]);
        let response = exchange::timeout_response(SystemTime::now(), head_complete);
        if nar.showing() {
            show::response(nar, self.raw_fd(), &response, false);
        }
        show::count_response(nar, response.status);
        self.filled = 0;
        self.head_started = None;
        self.start_sending(response);
    }

    /// Send as much of the current response as the socket takes (a
    /// blocking socket: until it is out, or no byte went for --send-timeout).
    pub fn send_response(&mut self, nar: &Narrator, config: &Config, scratch: &mut [u8]) -> Sent {
        let fd = self.raw_fd();
        loop {
            let Some(out) = self.sending.as_ref() else {
                return Sent::Done { keep_alive: true };
            };
            if out.is_complete() {
                let keep_alive = out.keep_alive;
                if let Some(done) = self.sending.take() {
                    close_body(nar, done.body);
                }
                self.last_progress = Instant::now();
                return Sent::Done { keep_alive };
            }
            if self.blocking {
                if stop::requested().is_some() {
                    return Sent::Gone(Ending::Shutdown);
                }
                if Instant::now() >= self.deadline(config).0 {
                    nar.note("No byte of the response went out for --send-timeout: the client stopped reading. The connection is dropped.");
                    return Sent::Blocked;
                }
                if let Err(errno) = self.arm_timeout(nar, config, Wait::Send) {
                    return Sent::Gone(Ending::Failed(errno));
                }
            }
            let shut_by_server = self.shut_by_server();
            let Some(out) = self.sending.as_mut() else {
                continue;
            };
            let result = write_some(nar, fd, &self.fd, out, scratch, self.blocking);
            match result {
                Ok((0, _)) => return Sent::Gone(Ending::FileShrank),
                Ok((sent, offered)) => {
                    nar.count("bytes_out", sent as u64);
                    out.advance(sent);
                    // A blocking call returns short only when SO_SNDTIMEO ran
                    // out (or a signal came): it took what fitted at once, then
                    // waited in vain for the client to make room. That is no
                    // progress, so the deadline stays where it was.
                    if !self.blocking || sent == offered {
                        self.last_progress = Instant::now();
                    } else if nar.showing() {
                        nar.note("A short write on a blocking socket: the call took what fitted in the send buffer, then waited until SO_SNDTIMEO ran out without the client making room. That counts as no progress.");
                    }
                }
                // Blocking: SO_SNDTIMEO passed; the loop checks the deadline.
                Err(Errno::EAGAIN) if self.blocking => {}
                Err(Errno::EAGAIN) => {
                    nar.note("EAGAIN from a send: the socket's send buffer is full because the client reads slower than we write. The rest of the response waits until the socket is writable.");
                    return Sent::Blocked;
                }
                Err(Errno::EINTR) => {
                    if stop::requested().is_some() {
                        return Sent::Gone(Ending::Shutdown);
                    }
                }
                Err(Errno::EPIPE | Errno::ECONNRESET) if shut_by_server => {
                    nar.note("The server is stopping: our own shutdown() ended this connection in the middle of a response, which is why the send failed.");
                    return Sent::Gone(Ending::Shutdown);
                }
                Err(Errno::EPIPE | Errno::ECONNRESET) => {
                    nar.note("The client is gone (EPIPE or ECONNRESET) in the middle of a response. SIGPIPE is ignored, so this is an error we handle: only this connection ends.");
                    return Sent::Gone(Ending::Reset);
                }
                Err(errno) => return Sent::Gone(Ending::Failed(errno)),
            }
        }
    }

    /// The last response is out and the connection ends: shut down our
    /// sending side, and say whether bytes are left to discard (linger).
    pub fn finish(&mut self, nar: &Narrator) -> bool {
        let fd = self.raw_fd();
        let step = nar.call_with("shutdown", || format!("fd {fd}, SHUT_WR"));
        match shutdown(fd, Shutdown::Write) {
            Ok(()) => step.ok_with(0, || "0".into()),
            // ENOTCONN: the client is already gone; close() does the rest.
            Err(errno) => {
                step.fail(errno);
                return false;
            }
        }
        if self.peer_done {
            return false;
        }
        // Bytes we already read into our buffer do not matter to the kernel;
        // bytes still in the socket's receive queue do.
        let unread = receive_queue(fd).is_ok_and(|waiting| waiting > 0);
        if unread {
            if nar.showing() {
                narrate_receive_queue(nar, fd);
                nar.note("Bytes from the client wait unread in the kernel. close() now would make the kernel send RST and drop whatever of our response is still in the send buffer, so we linger: read and discard until the client closes.");
            }
            self.linger_until = Some(Instant::now() + LINGER);
            self.filled = 0;
        }
        unread
    }

    /// While lingering: read and drop what arrives. True once the client
    /// has closed (or reset) and the socket may be closed.
    pub fn discard(&mut self, nar: &Narrator, config: &Config) -> bool {
        self.filled = 0;
        match self.receive(nar, config) {
            Received::Data(_) => {
                self.filled = 0;
                false
            }
            Received::Drained | Received::Interrupted => false,
            Received::End | Received::Gone(_) => true,
        }
    }

    /// close(): the end of this connection (and of the file a response in
    /// progress was sending).
    pub fn close(mut self, nar: &Narrator, why: Ending) {
        if let Some(unfinished) = self.sending.take() {
            close_body(nar, unfinished.body);
        }
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
        match nix::unistd::close(self.fd) {
            Ok(()) => step.ok_with(0, || "0".into()),
            Err(errno) => step.fail(errno),
        }
        if nar.showing() {
            nar.info(
                "connection_closed",
                json!({ "peer": peer.to_string(), "fd": fd, "why": why.name(), "requests": self.requests }),
                format!(
                    "connection from {peer} on fd {fd} closed: {}; requests on this connection: {}",
                    why.name(),
                    self.requests
                ),
            );
        }
    }
}

/// One system call that sends the next part of `out`, narrated. Returns how
/// many bytes the kernel took (0 only when the file has no more bytes),
/// and how many the call offered it.
fn write_some(
    nar: &Narrator,
    fd: RawFd,
    sock: &OwnedFd,
    out: &Sending,
    scratch: &mut [u8],
    blocking: bool,
) -> nix::Result<(usize, usize)> {
    let head_left = &out.head[out.head_sent..];
    let total_left = head_left.len() as u64 + out.body_len() - out.body_sent;
    let offered = |sent: usize, asked: usize| (sent, asked);
    match &out.body {
        Body::Empty => send_head(nar, fd, head_left, MsgFlags::empty(), blocking)
            .map(|sent| offered(sent, head_left.len())),
        Body::Bytes(body) => {
            let body_left = &body[out.body_sent as usize..];
            writev_parts(nar, fd, sock, head_left, body_left, total_left, blocking)
                .map(|sent| offered(sent, head_left.len() + body_left.len()))
        }
        Body::File { file, len } => {
            let file_left = len - out.body_sent;
            let offset = out.body_sent as i64;
            if file_left == 0 {
                // An empty file: the head is all there is.
                send_head(nar, fd, head_left, MsgFlags::empty(), blocking)
                    .map(|sent| offered(sent, head_left.len()))
            } else if blocking
                || !head_left.is_empty() && file_left <= scratch.len().min(SMALL_FILE) as u64
            {
                // A small file: read it, and send it with the head in one
                // call. A blocking socket gets every file this way, a buffer
                // at a time: sendfile() on a blocking socket does not keep
                // SO_SNDTIMEO (it waits as long as the client does not
                // read), while send() and writev() do.
                let chunk = (file_left as usize).min(scratch.len());
                let want = &mut scratch[..chunk];
                let file_fd = file.as_raw_fd();
                let step = nar.call_with("pread", || {
                    format!("fd {file_fd}, {}, offset {offset}", bytes(want.len()))
                });
                let got = match pread(file, want, offset) {
                    Ok(got) => {
                        step.ok_with(got as i64, || bytes(got));
                        got
                    }
                    Err(errno) => {
                        step.fail(errno);
                        return Err(errno);
                    }
                };
                if got == 0 {
                    return Ok((0, 0));
                }
                if head_left.is_empty() {
                    return send_bytes(
                        nar,
                        fd,
                        "body",
                        &scratch[..got],
                        MsgFlags::empty(),
                        blocking,
                    )
                    .map(|sent| offered(sent, got));
                }
                writev_parts(
                    nar,
                    fd,
                    sock,
                    head_left,
                    &scratch[..got],
                    total_left,
                    blocking,
                )
                .map(|sent| offered(sent, head_left.len() + got))
            } else if !head_left.is_empty() {
                // MSG_MORE: hold this partial segment; the file follows at once.
                send_head(nar, fd, head_left, msg_more(), blocking)
                    .map(|sent| offered(sent, head_left.len()))
            } else {
                let count = (file_left as usize).min(SENDFILE_CHUNK);
                let file_fd = file.as_raw_fd();
                let step = begin_send(nar, blocking, "sendfile", || {
                    format!(
                        "fd {fd}, file fd {file_fd}, offset {offset}, {}",
                        bytes(count)
                    )
                });
                match sendfile(sock, file, offset, count) {
                    Ok(sent) => {
                        step.ok_with(sent as i64, || bytes(sent));
                        if sent < count && sent > 0 && nar.showing() {
                            nar.note("A short write: sendfile() copied only what fits in the socket's send buffer. The connection remembers the offset and goes on when the socket is writable.");
                        }
                        Ok((sent, count))
                    }
                    Err(errno) => {
                        step.fail(errno);
                        Err(errno)
                    }
                }
            }
        }
    }
}

/// MSG_MORE (nix 0.32 has no constant for it): more data follows at once,
/// so the kernel may hold this partial segment to fill it.
fn msg_more() -> MsgFlags {
    MsgFlags::from_bits_retain(libc::MSG_MORE)
}

/// sendfile(2): copy `count` bytes of `file`, from `offset`, to the socket,
/// inside the kernel (no copy through our memory). nix has it only behind a
/// cargo feature this crate does not enable, so libc it is.
fn sendfile(sock: &OwnedFd, file: &std::fs::File, offset: i64, count: usize) -> nix::Result<usize> {
    let mut at: libc::off64_t = offset;
    // SAFETY: both fds are open for the duration of the call, and `at` is
    // a live off64_t the kernel updates.
    let sent = unsafe { libc::sendfile64(sock.as_raw_fd(), file.as_raw_fd(), &mut at, count) };
    Errno::result(sent).map(|sent| sent as usize)
}

/// A sending call's step: on a blocking socket it may wait, so its line is
/// printed before the call, saying so.
fn begin_send<'n>(
    nar: &'n Narrator,
    blocking: bool,
    call: &'static str,
    args: impl FnOnce() -> String,
) -> crate::narrate::Step<'n> {
    if blocking {
        nar.blocking_with(
            call,
            args,
            "waiting for room in the send buffer, until --send-timeout",
        )
    } else {
        nar.call_with(call, args)
    }
}

fn send_head(
    nar: &Narrator,
    fd: RawFd,
    head: &[u8],
    flags: MsgFlags,
    blocking: bool,
) -> nix::Result<usize> {
    send_bytes(nar, fd, "head", head, flags, blocking)
}

/// send(): `what` ("head", "body") says which part of the response it is.
fn send_bytes(
    nar: &Narrator,
    fd: RawFd,
    what: &'static str,
    data: &[u8],
    flags: MsgFlags,
    blocking: bool,
) -> nix::Result<usize> {
    let step = begin_send(nar, blocking, "send", || {
        let more = if flags.contains(msg_more()) {
            "MSG_MORE"
        } else {
            "0"
        };
        format!("fd {fd}, {what} {}, {more}", bytes(data.len()))
    });
    match send(fd, data, flags) {
        Ok(sent) => {
            step.ok_with(sent as i64, || bytes(sent));
            Ok(sent)
        }
        Err(errno) => {
            step.fail(errno);
            Err(errno)
        }
    }
}

/// writev(): the head and (part of) the body in one system call.
fn writev_parts(
    nar: &Narrator,
    fd: RawFd,
    sock: &OwnedFd,
    head: &[u8],
    body: &[u8],
    total_left: u64,
    blocking: bool,
) -> nix::Result<usize> {
    let step = begin_send(nar, blocking, "writev", || {
        format!(
            "fd {fd}, [head {}, body {}]",
            bytes(head.len()),
            bytes(body.len())
        )
    });
    match writev(sock, &[IoSlice::new(head), IoSlice::new(body)]) {
        Ok(sent) => {
            step.ok_with(sent as i64, || bytes(sent));
            if (sent as u64) < total_left && sent < head.len() + body.len() && nar.showing() {
                nar.note("A short write: the socket's send buffer took only part of the response. The connection remembers how far it got and sends the rest when the socket is writable.");
            }
            Ok(sent)
        }
        Err(errno) => {
            step.fail(errno);
            Err(errno)
        }
    }
}

/// Has the whole request head arrived (the empty line that ends it)? Then
/// a 408 is about the body. httparse accepts a bare LF for CRLF, so the
/// head ends at LF CRLF or LF LF.
fn head_is_complete(input: &[u8]) -> bool {
    input.windows(3).any(|three| three == b"\n\r\n") || input.windows(2).any(|pair| pair == b"\n\n")
}

/// One file system call that `exchange::handle` made, as a step (after
/// the fact: it has returned already).
fn narrate_traced(nar: &Narrator, traced: &Traced) {
    let step = nar.call_with(traced.call, || traced.args.clone());
    match &traced.result {
        Ok(result) => {
            // "fd 7": the value is the fd, as for the calls made here.
            let value = result
                .strip_prefix("fd ")
                .and_then(|number| number.parse().ok())
                .unwrap_or(0);
            step.ok_with(value, || result.clone());
        }
        Err(errno) => step.fail(Errno::from_raw(*errno)),
    }
}

/// A response is done (or its connection ends): a file it was sending is
/// closed here, as a step, since this layer owns the `File`.
fn close_body(nar: &Narrator, body: Body) {
    if let Body::File { file, .. } = body {
        let fd = file.as_raw_fd();
        let step = nar.call_with("close", || format!("fd {fd} (the file)"));
        match nix::unistd::close(file) {
            Ok(()) => step.ok_with(0, || "0".into()),
            Err(errno) => step.fail(errno),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_the_head_first() {
        let mut out = Sending {
            head: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
            head_sent: 0,
            body: Body::Bytes(b"hello".to_vec()),
            body_sent: 0,
            keep_alive: true,
        };
        out.advance(10);
        assert_eq!((out.head_sent, out.body_sent), (10, 0));
        out.advance(11);
        assert_eq!((out.head_sent, out.body_sent), (19, 2));
        assert!(!out.is_complete());
        out.advance(3);
        assert!(out.is_complete());
    }

    #[test]
    fn a_head_is_complete_at_its_empty_line() {
        assert!(!head_is_complete(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n"
        ));
        assert!(head_is_complete(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"
        ));
        assert!(head_is_complete(
            b"POST / HTTP/1.1\nContent-Length: 5\n\nab"
        ));
    }
}
