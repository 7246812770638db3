//! # The `tcp-client` exercise: netlab is the server, the student's program the client
//!
//! The student writes a client that takes a host and a port from its
//! command line, connects, sends one line of text ending in `\n`, reads the
//! reply (the same line, sent back) until its newline, closes the socket,
//! and exits with status 0. netlab listens on 127.0.0.1, starts the client
//! with `{host} {port}`, and plays the server, one probe per step of the
//! conversation:
//!
//! - `connect`: the client connects (netlab's `accept()` returns).
//! - `request`: it sends one whole line.
//! - `reply`: netlab answers after 0.2 s, in two pieces with a pause
//!   between them, as a reply may arrive over a real network. The client
//!   must wait for the reply and read both pieces. Whether it read them is
//!   not guessed: `/proc/net/tcp` shows the bytes waiting in the client's
//!   receive queue, and 0 there (with netlab's bytes acknowledged) means
//!   the program took them.
//! - `close`: the client closes with FIN, not RST, before netlab's timeout.
//!   A client that closes while reply bytes are still unread makes its
//!   kernel send RST instead of FIN, and a reply that reaches a socket the
//!   client already closed is answered with RST too; the probes tell which
//!   happened (`SO_ERROR` on netlab's socket, the states in /proc/net/tcp).
//! - `exit`: the program exits by itself, with status 0, having connected
//!   only once.
//!
//! The probes share the one connection: each takes it from the
//! `Conversation`, and gives it back for the next.
//!
//! Try it: `netlab check tcp-client -- python3 client.py {host} {port}`.
//! Lesson: `netlab lesson tcp` ("Exercise: your own client").

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::net::{self, End};
use super::session::{Exercise, Outcome, ProbeInfo, Role, Session, Status};
use crate::kernel::proc_net::{self, TcpEntry};
use crate::narrate::Fact;

pub static EXERCISE: Exercise = Exercise {
    name: "tcp-client",
    summary: "A TCP client: connect, send, read the reply, close cleanly (FIN, not RST); netlab is the server.",
    lesson: "tcp",
    role: Role::TcpClient,
    example: "python3 echo_client.py {host} {port}",
    probes: PROBES,
    prepare: None,
    run,
};

const PROBES: &[ProbeInfo] = &[
    ProbeInfo {
        name: "connect",
        checks: "connects to the host and port it was given",
    },
    ProbeInfo {
        name: "request",
        checks: "sends one line of text ending in a newline",
    },
    ProbeInfo {
        name: "reply",
        checks: "waits for the reply and reads all of it, though it arrives in two pieces",
    },
    ProbeInfo {
        name: "close",
        checks: "closes the connection with FIN (not RST), before netlab's timeout",
    },
    ProbeInfo {
        name: "exit",
        checks: "exits by itself with status 0, having connected once",
    },
];

/// The longest line netlab waits for (a line is short; this only stops a
/// client that sends without end).
const MAX_LINE: usize = 64 * 1024;
/// How long netlab "thinks" before it answers, so that a client which
/// closes without waiting for the reply has done so before it comes.
const REPLY_DELAY: Duration = Duration::from_millis(200);
/// The pause between the reply's two pieces, once the first has been read.
const PIECE_PAUSE: Duration = Duration::from_millis(100);
/// Reply bytes seen unread this long before an RST were closed unread (a
/// client that reads them is woken at once, and takes far less).
const UNREAD_FOR: Duration = Duration::from_millis(50);
/// How often the kernel's tables are read while netlab waits.
const POLL: Duration = Duration::from_millis(5);

/// What the `reply` probe expects.
const EXPECT_REPLY: &str = "it waits for the reply and reads it all, though it comes in two pieces";

const HINT_NETLAB_BUG: &str = "Please report this with the command you ran.";
const HINT_CONNECT_EXITED: &str = "Connect to the host and port netlab passes as the two arguments (sys.argv[1] and int(sys.argv[2])), for example with socket.create_connection((host, port)).";
const HINT_CONNECT_NEVER: &str = "Your program runs but never connected: call connect() (or socket.create_connection) with the host and port from the command line, before anything that could wait (its stdin is empty).";
const HINT_SEND_NOTHING: &str = "Send one line with sendall() right after connecting: in this conversation the client speaks first, and the server waits for it.";
const HINT_NEWLINE: &str = "End the line with a newline (b\"hello\\n\"): the server answers only a complete line, and waits until then.";
const HINT_SEND_RESET: &str = "The connection was reset before the line was complete: send it all with sendall() before closing, and do not set SO_LINGER to 0.";
const HINT_NO_WAIT: &str = "Call recv() and wait for the reply before you close the socket: a client that closes right after sendall() throws the reply away, and its kernel answers the reply with RST.";
const HINT_ONE_RECV: &str = "Keep calling recv() until the reply's newline has arrived (or recv() returns b\"\"): a reply can come in several pieces, and one recv() returns only what has arrived so far.";
const HINT_NOT_READ: &str = "Read the reply with recv() after sending the line: bytes left unread in the socket make close() send RST instead of FIN.";
const HINT_LINGER: &str = "Your client waited for the reply and then reset the connection: remove the SO_LINGER option with a zero timeout, which turns close() into an abort (RST).";
const HINT_RESET: &str = "A close() sends RST instead of FIN when reply bytes are still unread or SO_LINGER is set to 0: read the reply to its newline first, and leave SO_LINGER alone.";
const HINT_NEVER_CLOSES: &str = "Close the socket once the reply is read (sock.close(), or leave the with block) and let the program end: the connection stayed open until netlab gave up.";
const HINT_TWICE: &str = "Connect once: a second connect() opens a second connection, which the server must serve as a new client.";
const HINT_EXIT_STATUS: &str = "Your client ended with an error: its output below shows the exception or signal, and a client whose conversation went well exits with status 0.";
const HINT_EXIT_SILENT: &str = "Your client ended with an error but printed nothing: look for a sys.exit() with a non-zero status (or exit(1) in C), and end with status 0 once the conversation went well.";
const HINT_STILL_RUNNING: &str = "After close(), let the program end: look for a loop, a sleep or an input() that keeps it running.";

/// How the program's side of the connection ended, as netlab saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// FIN before the whole reply was read (the reply probe failed).
    EarlyFin,
    /// FIN after the whole reply.
    Fin,
    /// RST.
    Reset,
}

/// What the probes share: the one connection, and what was learnt on it.
#[derive(Default)]
struct Conversation {
    /// netlab's end of the connection, once accepted.
    stream: Option<TcpStream>,
    /// netlab's address and the program's, kept for reading /proc/net/tcp
    /// after the socket can no longer tell them.
    ends: Option<(SocketAddr, SocketAddr)>,
    /// The line the program sent, its newline included: the reply.
    line: Vec<u8>,
    /// Set once the program's side has ended.
    ending: Option<Ending>,
    /// The kernel showed the program reading (part of) the reply: it waits
    /// for it.
    reply_read: bool,
    /// It half-closed (shutdown(SHUT_WR)) after its line, and reads on.
    half_closed: bool,
}

type Shared = Arc<Mutex<Conversation>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Conversation> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run(session: &mut Session) {
    let conversation: Shared = Arc::default();

    let shared = Arc::clone(&conversation);
    if session.probe("connect", 5.0, move |target, deadline| {
        connect(&target, &shared, deadline)
    }) != Status::Pass
    {
        for name in ["request", "reply", "close"] {
            session.skip(name, "not run: your program never connected");
        }
    } else {
        let shared = Arc::clone(&conversation);
        let request_ok = session.probe("request", 2.0, move |_, deadline| {
            request(&shared, deadline)
        }) == Status::Pass;
        if request_ok {
            let shared = Arc::clone(&conversation);
            session.probe("reply", 3.0, move |_, deadline| reply(&shared, deadline));
        } else {
            session.skip("reply", "not run: netlab answers only a whole line");
        }
        let shared = Arc::clone(&conversation);
        let closed = session.probe("close", 2.0, move |_, deadline| close(&shared, deadline));
        if closed == Status::Fail && lock(&conversation).ending.is_none() {
            session.skip(
                "exit",
                "not run: your program has not closed its connection",
            );
            return;
        }
    }
    session.probe("exit", 2.0, move |target, deadline| exit(&target, deadline));
}

/// `connect`: wait for the program's connection on netlab's listener.
fn connect(target: &super::session::Target, shared: &Shared, deadline: Instant) -> Outcome {
    let expected = "your program connects to the address it was given";
    let Some(listener) = target.listener.as_ref() else {
        return Outcome::fail(
            expected,
            "netlab has no listening socket (a bug in netlab)",
            HINT_NETLAB_BUG,
        );
    };
    // A non-blocking accept() in a loop: the program may never connect,
    // and this probe must end by its deadline.
    if let Err(err) = listener.set_nonblocking(true) {
        return Outcome::fail(
            expected,
            format!("netlab could not make its listener non-blocking: {err}"),
            HINT_NETLAB_BUG,
        );
    }
    let started = Instant::now();
    let (stream, peer) = loop {
        match listener.accept() {
            Ok(accepted) => break accepted,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Outcome::fail(
                    expected,
                    format!("netlab's accept() failed: {err}"),
                    HINT_NETLAB_BUG,
                )
            }
        }
        if let Some(ended) = target.program.exit_description() {
            return Outcome::fail(
                expected,
                format!("your program {ended} without connecting to {}", target.addr),
                HINT_CONNECT_EXITED,
            );
        }
        if net::passed(deadline) {
            return Outcome::fail(
                expected,
                format!(
                    "no connection came to {} in {:.1} s, and your program is still running",
                    target.addr,
                    started.elapsed().as_secs_f64()
                ),
                HINT_CONNECT_NEVER,
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let (_, fact) = net::server_side_state(&stream);
    let mut conversation = lock(shared);
    conversation.ends = stream.local_addr().ok().map(|ours| (ours, peer));
    conversation.stream = Some(stream);
    Outcome::pass(
        expected,
        format!(
            "it connected from {peer} to {} {:.2} s after the check began",
            target.addr,
            started.elapsed().as_secs_f64()
        ),
    )
    .with_fact(fact)
}

/// `request`: read until the first newline.
fn request(shared: &Shared, deadline: Instant) -> Outcome {
    let expected = "one line of text ending in \\n";
    let Some(mut stream) = lock(shared).stream.take() else {
        return Outcome::fail(
            expected,
            "netlab lost the connection (a bug in netlab)",
            HINT_NETLAB_BUG,
        );
    };
    let mut got: Vec<u8> = Vec::new();
    let mut reads = 0;
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(newline) = got.iter().position(|&b| b == b'\n') {
            // Anything after the first line is not part of the request.
            got.truncate(newline + 1);
            break End::Complete;
        }
        if got.len() > MAX_LINE {
            break End::Complete;
        }
        if net::passed(deadline) {
            break End::TimedOut;
        }
        if let Err(err) = stream.set_read_timeout(Some(net::left(deadline))) {
            break End::Error(err.to_string());
        }
        match stream.read(&mut buf) {
            Ok(0) => break End::Eof,
            Ok(n) => {
                reads += 1;
                got.extend_from_slice(&buf[..n]);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break End::TimedOut
            }
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => break End::Reset,
            Err(err) => break End::Error(err.to_string()),
        }
    };
    let mut conversation = lock(shared);
    conversation.stream = Some(stream);
    let shown = net::show(&got);
    match end {
        End::Complete if got.ends_with(b"\n") => {
            conversation.line = got.clone();
            Outcome::pass(
                expected,
                format!(
                    "it sent {} bytes, {shown}, in {reads} recv() call(s) on netlab's side",
                    got.len()
                ),
            )
        }
        End::Complete => Outcome::fail(
            expected,
            format!("it sent more than {MAX_LINE} bytes with no newline"),
            HINT_NEWLINE,
        ),
        End::Eof if got.is_empty() => Outcome::fail(
            expected,
            "it closed the connection (FIN) without sending anything",
            HINT_SEND_NOTHING,
        ),
        End::Eof => Outcome::fail(
            expected,
            format!(
                "it sent {} bytes, {shown}, and closed the connection before a newline",
                got.len()
            ),
            HINT_NEWLINE,
        ),
        End::TimedOut if got.is_empty() => Outcome::fail(
            expected,
            "it connected but sent nothing; netlab waited until its time ran out",
            HINT_SEND_NOTHING,
        ),
        End::TimedOut => Outcome::fail(
            expected,
            format!(
                "it sent {} bytes, {shown}, and then nothing more: no newline came",
                got.len()
            ),
            HINT_NEWLINE,
        ),
        End::Reset => Outcome::fail(
            expected,
            format!(
                "after {} bytes ({shown}) the connection was reset (RST)",
                got.len()
            ),
            HINT_SEND_RESET,
        ),
        End::Error(err) => Outcome::fail(
            expected,
            format!("netlab's recv() failed after {} bytes: {err}", got.len()),
            HINT_SEND_RESET,
        ),
    }
}

/// What a look at netlab's socket, without waiting, shows of the program's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peek {
    /// Nothing new: the program is quiet.
    Quiet,
    /// It sent more bytes (read and counted).
    Data,
    /// recv() would return 0: it closed its side (FIN).
    Fin,
    /// It reset the connection (RST).
    Reset,
}

/// Look at netlab's socket without blocking: MSG_PEEK with O_NONBLOCK.
/// Extra bytes the program sends are read and dropped.
fn peek(stream: &mut TcpStream) -> Peek {
    if stream.set_nonblocking(true).is_err() {
        return Peek::Quiet;
    }
    let mut buf = [0u8; 4096];
    let seen = match stream.peek(&mut buf[..1]) {
        Ok(0) => Peek::Fin,
        Ok(_) => {
            let _ = stream.read(&mut buf);
            Peek::Data
        }
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => Peek::Reset,
        Err(_) => Peek::Quiet,
    };
    let _ = stream.set_nonblocking(false);
    seen
}

/// Both ends of the connection in /proc/net/tcp now: netlab's, the program's.
fn both_ends(ours: SocketAddr, theirs: SocketAddr) -> (Option<TcpEntry>, Option<TcpEntry>) {
    match proc_net::read_tcp_table() {
        Ok(table) => (
            proc_net::find_connection(&table, ours, theirs).cloned(),
            proc_net::find_connection(&table, theirs, ours).cloned(),
        ),
        Err(_) => (None, None),
    }
}

/// How waiting for the program to read what netlab sent ended.
enum Watch {
    /// The kernel shows every byte acknowledged and taken by the program.
    Read,
    Fin,
    /// RST; `unread_for`: how long the kernel had shown bytes waiting
    /// unread in the program's socket, without a break, when it came.
    Reset {
        unread_for: Duration,
    },
    /// The deadline passed with `unread` bytes still in its receive queue.
    TimedOut {
        unread: u32,
    },
}

/// Wait until the program has read everything netlab sent (its receive
/// queue empty, netlab's bytes acknowledged), or until it closes or resets.
fn watch_read(stream: &mut TcpStream, half_closed: bool, deadline: Instant) -> Watch {
    let (Ok(ours), Ok(theirs)) = (stream.local_addr(), stream.peer_addr()) else {
        return Watch::Reset {
            unread_for: Duration::ZERO,
        };
    };
    let mut unread = 0;
    let mut unread_since: Option<Instant> = None;
    loop {
        let reset = Watch::Reset {
            unread_for: unread_since.map_or(Duration::ZERO, |since| since.elapsed()),
        };
        match peek(stream) {
            // A half-closed program sent its FIN long ago: only the kernel's
            // table tells what it does now.
            Peek::Fin if half_closed => {}
            Peek::Fin => return Watch::Fin,
            Peek::Reset => return reset,
            Peek::Quiet | Peek::Data => {}
        }
        match both_ends(ours, theirs) {
            (Some(our_end), Some(their_end)) => {
                unread = their_end.rx_queue;
                if our_end.tx_queue == 0 && their_end.rx_queue == 0 {
                    return Watch::Read;
                }
                if unread == 0 {
                    unread_since = None;
                } else if unread_since.is_none() {
                    unread_since = Some(Instant::now());
                }
            }
            // Its end vanished: an RST ended the connection.
            (_, None) if half_closed => return reset,
            _ => {}
        }
        if net::passed(deadline) {
            return Watch::TimedOut { unread };
        }
        std::thread::sleep(POLL);
    }
}

/// After the program's FIN: is its socket still open, half-closed with
/// shutdown(SHUT_WR)? In /proc/net/tcp a socket no descriptor refers to
/// any more (closed, its connection left to the kernel) has inode 0.
fn still_open(stream: &TcpStream) -> bool {
    let (Ok(ours), Ok(theirs)) = (stream.local_addr(), stream.peer_addr()) else {
        return false;
    };
    matches!(both_ends(ours, theirs), (_, Some(their_end)) if their_end.inode != 0)
}

/// `SO_ERROR` on netlab's socket, a moment after a write: a pending
/// ECONNRESET or EPIPE means the program's kernel answered with RST.
fn reset_followed(stream: &TcpStream) -> (bool, Fact) {
    std::thread::sleep(Duration::from_millis(30));
    let subject = match (stream.local_addr(), stream.peer_addr()) {
        (Ok(ours), Ok(theirs)) => format!("{ours} -> {theirs}"),
        _ => "netlab's socket".to_string(),
    };
    match stream.take_error() {
        Ok(Some(err)) => (
            true,
            Fact::new(
                subject,
                "so_error",
                json!(err.to_string()),
                "SO_ERROR",
                format!("netlab's socket holds the error \"{err}\": your program's kernel answered the reply with RST, because no socket was open to take it"),
            ),
        ),
        Ok(None) => (
            false,
            Fact::new(subject, "so_error", json!(null), "SO_ERROR", "netlab's socket holds no error: no RST came"),
        ),
        Err(err) => (false, Fact::unavailable(subject, "so_error", "SO_ERROR", err)),
    }
}

/// `reply`: answer after a pause, in two pieces; see the module header.
fn reply(shared: &Shared, deadline: Instant) -> Outcome {
    let expected = EXPECT_REPLY;
    let (stream, line) = {
        let mut conversation = lock(shared);
        (conversation.stream.take(), conversation.line.clone())
    };
    let Some(mut stream) = stream else {
        return Outcome::fail(
            expected,
            "netlab lost the connection (a bug in netlab)",
            HINT_NETLAB_BUG,
        );
    };
    let outcome = reply_on(&mut stream, &line, deadline, shared);
    lock(shared).stream = Some(stream);
    outcome
}

fn reply_on(stream: &mut TcpStream, line: &[u8], deadline: Instant, shared: &Shared) -> Outcome {
    let expected = EXPECT_REPLY;
    let set_ending = |ending: Ending| lock(shared).ending = Some(ending);

    // A server takes a moment to answer; a client must wait for it.
    std::thread::sleep(REPLY_DELAY.min(net::left(deadline)));
    let half_closed = peek(stream) == Peek::Fin && still_open(stream);
    lock(shared).half_closed = half_closed;
    match peek(stream) {
        Peek::Fin if half_closed => {}
        Peek::Fin => {
            set_ending(Ending::EarlyFin);
            // Send the reply anyway: its kernel's answer is the evidence.
            let _ = net::write_all(stream, line, deadline);
            let (_, fact) = reset_followed(stream);
            return Outcome::fail(
                expected,
                format!("it closed the connection (FIN) before the reply, which netlab sent {} ms after its line", REPLY_DELAY.as_millis()),
                HINT_NO_WAIT,
            )
            .with_fact(fact);
        }
        Peek::Reset => {
            set_ending(Ending::Reset);
            return Outcome::fail(
                expected,
                "it reset the connection (RST) before the reply came",
                HINT_NO_WAIT,
            );
        }
        Peek::Quiet | Peek::Data => {}
    }

    // The reply in two pieces: the first half, then (once the program has
    // read it) the rest with the newline.
    let (first, second) = line.split_at(line.len() / 2);
    let pieces = if first.is_empty() {
        vec![second]
    } else {
        vec![first, second]
    };
    let started = Instant::now();
    for (index, piece) in pieces.iter().enumerate() {
        let last = index + 1 == pieces.len();
        if let (sent, Some(err)) = net::write_all(stream, piece, deadline) {
            set_ending(Ending::Reset);
            return Outcome::fail(
                expected,
                format!(
                    "netlab could send only {sent} of the reply's {} bytes: {err}",
                    piece.len()
                ),
                HINT_NOT_READ,
            );
        }
        match watch_read(stream, half_closed, deadline) {
            Watch::Read if last => {}
            Watch::Read => {
                lock(shared).reply_read = true;
                // Give a client that stops after one recv() the time to close.
                std::thread::sleep(PIECE_PAUSE.min(net::left(deadline)));
                match peek(stream) {
                    Peek::Fin if half_closed && still_open(stream) => {}
                    Peek::Fin | Peek::Reset => {
                        set_ending(Ending::EarlyFin);
                        let _ = net::write_all(stream, pieces[index + 1], deadline);
                        let (_, fact) = reset_followed(stream);
                        return Outcome::fail(
                            expected,
                            format!("it read the first piece of the reply ({} bytes, {}) and closed the connection without waiting for the rest", piece.len(), net::show(piece)),
                            HINT_ONE_RECV,
                        )
                        .with_fact(fact);
                    }
                    Peek::Quiet | Peek::Data => {}
                }
            }
            Watch::Fin => {
                // FIN with the bytes acknowledged: was the piece read before
                // the close? If it arrived after, the kernel answered RST.
                let (reset, fact) = reset_followed(stream);
                if last && !reset {
                    set_ending(Ending::Fin);
                    lock(shared).reply_read = true;
                    return Outcome::pass(
                        expected,
                        format!("it read the whole reply ({} bytes, in {} pieces) and closed with FIN; its kernel had nothing unread", line.len(), pieces.len()),
                    )
                    .with_fact(fact);
                }
                set_ending(Ending::EarlyFin);
                let hint = if reset { HINT_NO_WAIT } else { HINT_ONE_RECV };
                return Outcome::fail(
                    expected,
                    format!("it closed the connection (FIN) after {} of the reply's {} bytes had been sent", pieces[..=index].iter().map(|p| p.len()).sum::<usize>(), line.len()),
                    hint,
                )
                .with_fact(fact);
            }
            Watch::Reset { unread_for } if index > 0 && unread_for >= UNREAD_FOR => {
                // The second piece sat unread, then the reset: the client
                // stopped reading after the first piece and closed.
                set_ending(Ending::Reset);
                lock(shared).reply_read = false;
                return Outcome::fail(
                    expected,
                    format!("it read the first piece of the reply ({} bytes) but not the second: those {} bytes waited unread for {} ms, then its close sent RST", first.len(), second.len(), unread_for.as_millis()),
                    HINT_ONE_RECV,
                );
            }
            Watch::Reset { .. } if index > 0 => {
                // It read the first piece (the kernel showed it) and the
                // connection was reset while the second came: the close
                // probe says why.
                set_ending(Ending::Reset);
                return Outcome::pass(
                    expected,
                    format!("it read the first piece ({} bytes; /proc/net/tcp showed its receive queue empty) and waited for the second; then the connection was reset, before netlab could see the second read", first.len()),
                );
            }
            Watch::Reset { .. } => {
                set_ending(Ending::Reset);
                return Outcome::fail(
                    expected,
                    "the connection was reset (RST) before your program read the reply",
                    HINT_NOT_READ,
                );
            }
            Watch::TimedOut { unread } => {
                return Outcome::fail(
                    expected,
                    format!("{unread} bytes of the reply were still unread in your program's receive queue {:.1} s after they arrived", started.elapsed().as_secs_f64()),
                    HINT_NOT_READ,
                )
                .with_fact(Fact::new(
                    format!("{} -> {}", stream.peer_addr().map(|a| a.to_string()).unwrap_or_default(), stream.local_addr().map(|a| a.to_string()).unwrap_or_default()),
                    "rx_queue",
                    json!(unread),
                    "/proc/net/tcp",
                    format!("{unread} bytes wait in your program's receive queue: it has not called recv() for them"),
                ));
            }
        }
    }
    // Read: now netlab closes its side, so a client that reads until
    // recv() returns b"" gets its end of file.
    lock(shared).reply_read = true;
    let _ = net::half_close(stream);
    let how = if half_closed {
        " (it had half-closed its side with shutdown(SHUT_WR) after its line, and read on: fine)"
    } else {
        ""
    };
    Outcome::pass(
        expected,
        format!(
            "it read the whole reply ({} bytes, sent in {} pieces): /proc/net/tcp showed its receive queue empty after each{how}",
            line.len(),
            pieces.len()
        ),
    )
}

/// `close`: how the program's side of the connection ended.
fn close(shared: &Shared, deadline: Instant) -> Outcome {
    let expected = "it closes the connection with FIN once the reply is read";
    let (stream, ending, reply_read, ends) = {
        let mut conversation = lock(shared);
        let c = &mut *conversation;
        (c.stream.take(), c.ending, c.reply_read, c.ends)
    };
    let Some(mut stream) = stream else {
        return Outcome::fail(
            expected,
            "netlab lost the connection (a bug in netlab)",
            HINT_NETLAB_BUG,
        );
    };
    let ending = match ending {
        Some(ending) => ending,
        // Its FIN came before the reply; now only an RST could still come.
        None if lock(shared).half_closed => {
            let _ = net::half_close(&stream);
            if reset_followed(&stream).0 {
                Ending::Reset
            } else {
                Ending::Fin
            }
        }
        None => {
            // Make sure the client has netlab's end of file (the reply probe
            // sends it once the reply is read), then wait for its close.
            let _ = net::half_close(&stream);
            let (extra, end) = net::read_exact(&mut stream, usize::MAX, deadline);
            match end {
                End::Eof => Ending::Fin,
                End::Reset => Ending::Reset,
                _ => {
                    let (_, fact) = net::server_side_state(&stream);
                    let more = match extra.len() {
                        0 => String::new(),
                        n => format!(" (it sent {n} more bytes)"),
                    };
                    return Outcome::fail(
                        expected,
                        format!("the connection was still open when netlab's time ran out{more}"),
                        HINT_NEVER_CLOSES,
                    )
                    .with_fact(fact);
                }
            }
        }
    };
    lock(shared).ending = Some(ending);
    // The program's end as the kernel shows it after the close.
    drop(stream);
    let fact = match ends {
        Some((ours, theirs)) => net::server_side_state_of(ours, theirs).1,
        None => Fact::unavailable(
            "the connection",
            "tcp_state",
            "/proc/net/tcp",
            "its addresses were not known",
        ),
    };
    match ending {
        Ending::Fin if reply_read => {
            Outcome::pass(expected, "it closed with FIN after reading the reply").with_fact(fact)
        }
        Ending::Fin => Outcome::pass(expected, "it closed with FIN").with_fact(fact),
        Ending::EarlyFin => Outcome::pass(
            expected,
            "it closed with FIN (too early, as the reply probe says; the close itself was clean)",
        )
        .with_fact(fact),
        Ending::Reset if reply_read => Outcome::fail(
            expected,
            "it waited for the reply (the kernel showed it reading) and then reset the connection (RST)",
            HINT_LINGER,
        )
        .with_fact(fact),
        Ending::Reset => Outcome::fail(expected, "the connection ended with RST, not FIN", HINT_RESET).with_fact(fact),
    }
}

/// `exit`: the program ends by itself, with status 0, and connected once.
fn exit(target: &super::session::Target, deadline: Instant) -> Outcome {
    let expected = "it exits by itself with status 0, after one connection";
    while target.program.exit_description().is_none() && !net::passed(deadline) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let connected_again = target.listener.as_ref().is_some_and(|listener| {
        listener.set_nonblocking(true).is_ok() && listener.accept().is_ok()
    });
    match (
        target.program.exit_code(),
        target.program.exit_description(),
    ) {
        _ if connected_again => Outcome::fail(
            expected,
            "it made a second connection to netlab",
            HINT_TWICE,
        ),
        (_, None) => Outcome::fail(
            expected,
            "it was still running when netlab's time ran out",
            HINT_STILL_RUNNING,
        ),
        (Some(0), Some(ended)) => Outcome::pass(expected, format!("it {ended}")),
        (_, Some(ended)) => {
            let printed = !target.program.output_tail(1).0.is_empty();
            let hint = match printed {
                true => HINT_EXIT_STATUS,
                false => HINT_EXIT_SILENT,
            };
            Outcome::fail(expected, format!("it {ended}"), hint)
        }
    }
}
