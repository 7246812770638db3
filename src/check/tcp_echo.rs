//! # tcp-echo: check a student's TCP echo server
//!
//! The student writes a server that accepts clients one after another and
//! sends back every byte each one sends, until the client closes. That is
//! the whole protocol: no framing, no greeting, bytes in, the same bytes
//! out, in order. The probes play the clients a real server meets:
//!
//! | probe        | the client                                       | what is read from the kernel      |
//! |--------------|--------------------------------------------------|-----------------------------------|
//! | `echo`       | sends one line, waits for it                     |                                   |
//! | `binary`     | sends all 256 byte values (NUL, invalid UTF-8), then waits for more that should not come | |
//! | `large`      | sends 1 MiB, reads the echo slowly (small window) | the accept queue, if nothing came |
//! | `disconnect` | one leaves without a word, one hangs up after its line |                             |
//! | `reset`      | aborts with RST (SO_LINGER 0) in recv(), then while the server is stuck in sendall() | the server's queues and state (/proc/net/tcp) |
//! | `close-wait` | half-closes (FIN) and waits for the server's FIN | the server's end (/proc/net/tcp)  |
//! | `fd-growth`  | 50 clients come and go                           | the server's descriptors (/proc/PID/fd) |
//!
//! A server that passes `echo` can still lose bytes (one `recv()` is not
//! the whole message), die on the first reset (an uncaught
//! ConnectionResetError, or SIGPIPE in C), or never close a finished client's socket: the
//! kernel then keeps that connection in CLOSE_WAIT and the descriptor
//! open. The last two probes read exactly that from the kernel.
//!
//! `tcp-concurrent` (tcp_concurrent.rs) runs these same probes first, through
//! [`PROBES`] and [`run_probes`].
//!
//! Try it: `netlab check tcp-echo -- python3 echo_server.py {port}`.
//! Reference answer: `tests/exercises/tcp_echo/good.py`. Lesson: `netlab lesson tcp`.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde_json::json;

use super::net::{self, End};
use super::session::{Exercise, Outcome, ProbeInfo, Role, Session, Status, Target};
use crate::kernel::{proc_net, TcpState};
use crate::narrate::Fact;

pub static EXERCISE: Exercise = Exercise {
    name: "tcp-echo",
    summary: "A TCP echo server: every byte back, clients that vanish or reset, no CLOSE_WAIT, no leaked descriptors.",
    lesson: "tcp",
    role: Role::TcpServer,
    example: "python3 echo_server.py {port}",
    probes: PROBES,
    prepare: None,
    run,
};

pub const ECHO: ProbeInfo = ProbeInfo {
    name: "echo",
    checks: "one line comes back unchanged",
};
pub const BINARY: ProbeInfo = ProbeInfo {
    name: "binary",
    checks: "all 256 byte values (NUL, bytes that are not UTF-8) come back unchanged",
};
pub const LARGE: ProbeInfo = ProbeInfo {
    name: "large",
    checks: "a 1 MiB message comes back whole and in order (short reads and writes)",
};
pub const DISCONNECT: ProbeInfo = ProbeInfo {
    name: "disconnect",
    checks: "clients that leave silently, or hang up right after their last line, do not stop the server",
};
pub const RESET: ProbeInfo = ProbeInfo {
    name: "reset",
    checks: "a client that resets the connection (RST) does not kill the server",
};
pub const CLOSE_WAIT: ProbeInfo = ProbeInfo {
    name: "close-wait",
    checks: "the server closes its side when the client closes (no CLOSE_WAIT in /proc/net/tcp)",
};
pub const FD_GROWTH: ProbeInfo = ProbeInfo {
    name: "fd-growth",
    checks: "open descriptors (/proc/PID/fd) do not grow after 50 clients come and go",
};

/// Every probe of tcp-echo, in the order they run.
pub const PROBES: &[ProbeInfo] = &[
    ECHO, BINARY, LARGE, DISCONNECT, RESET, CLOSE_WAIT, FD_GROWTH,
];

/// The size of the `large` probe's message.
const LARGE_LEN: usize = 1 << 20;
/// netlab's receive buffer in the `large` probe (the kernel doubles it).
const SMALL_RCVBUF: usize = 4096;
/// netlab's maximum segment size in the `large` probe (TCP_MAXSEG).
const SMALL_MSS: u32 = 1024;
/// How long the `large` probe writes before it starts reading, in seconds.
const PAUSE_SECONDS: f64 = 0.2;
/// The `large` probe's time limit, in seconds (times --patience). A
/// server that loses bytes is told after a second with nothing new; one
/// whose echo keeps coming gets this long to finish.
const LARGE_SECONDS: f64 = 10.0;
/// How long `binary` waits, after the 512 bytes, for bytes that should
/// not come (a newline the server added), in seconds.
const EXTRA_WAIT_SECONDS: f64 = 0.2;
/// How long the second `reset` client may write, without reading, until
/// the server is stuck sending (usually a few tenths of a second), in
/// seconds (times --patience).
const RESET_FILL_SECONDS: f64 = 1.5;
/// How long it then waits for its bytes and its FIN to reach the server.
const RESET_WRITE_SECONDS: f64 = 0.6;
/// Clients in the `fd-growth` probe.
const CLIENTS: usize = 50;
/// Descriptors a correct server may open once, lazily, during the 50
/// clients (an epoll instance a selector creates on first use, a log file
/// opened on the first connection). A leak grows with every client, so it
/// shows up as 50 or more; anything above this is not noise.
const FD_NOISE: usize = 3;

fn run(session: &mut Session) {
    run_probes(session);
}

/// Why the probes after a failed `echo` are not run.
pub const NEEDS_ECHO: &str = "not run: the echo probe failed, and this probe needs a working echo";

/// Run tcp-echo's probes in order (tcp-concurrent runs them first too).
/// Returns false if the basic echo failed: then every other probe is
/// skipped, since each of them needs a working echo to say anything.
pub fn run_probes(session: &mut Session) -> bool {
    // (If the program died, the session skips every later probe itself,
    // saying so.)
    if session.probe(ECHO.name, 2.0, probe_echo) == Status::Fail && session.target().alive() {
        for probe in &PROBES[1..] {
            session.skip(probe.name, NEEDS_ECHO);
        }
        return false;
    }
    session.probe(BINARY.name, 3.0, probe_binary);
    // large ends early on a stall; its long limit only matters for a
    // correct but slow server, whose bytes keep coming.
    session.probe(LARGE.name, LARGE_SECONDS, probe_large);
    session.probe(DISCONNECT.name, 3.0, probe_disconnect);
    session.probe(RESET.name, 4.0, probe_reset);
    session.probe(CLOSE_WAIT.name, 3.0, probe_close_wait);
    session.probe(FD_GROWTH.name, 8.0, probe_fd_growth);
    true
}

/// A finished exchange: what came back for what was sent, and how the read ended.
pub struct Echoed {
    pub stream: TcpStream,
    pub got: Vec<u8>,
    pub end: End,
}

impl Echoed {
    /// Did exactly `sent` come back?
    pub fn matches(&self, sent: &[u8]) -> bool {
        self.end == End::Complete && self.got == sent
    }

    /// What came back, for the report (see [`describe_echo`]).
    pub fn describe(&self, sent: &[u8]) -> String {
        describe_echo(sent, &self.got, &self.end)
    }
}

/// What came back for `sent`, for the report: "sent "hi\n", got back
/// nothing; nothing more came before the time ran out".
pub fn describe_echo(sent: &[u8], got: &[u8], end: &End) -> String {
    if *end == End::Complete && got != sent {
        let at = first_difference(sent, got);
        return format!(
            "sent {}, got back {} bytes that differ from byte {at} on: {}",
            net::show(sent),
            got.len(),
            net::show(&got[at.min(got.len())..])
        );
    }
    let detail = match end {
        End::Error(err) => format!("the read failed: {err}"),
        end => end.describe().to_string(),
    };
    if got.is_empty() {
        format!("sent {}, got back nothing; {detail}", net::show(sent))
    } else {
        format!(
            "sent {}, got back {} of {} bytes ({}); {detail}",
            net::show(sent),
            got.len(),
            sent.len(),
            net::show(got)
        )
    }
}

/// Did the program ever accept() the connection `stream`? From
/// /proc/net/tcp: the program's end of a connection still waiting in the
/// accept queue has no socket yet, so the kernel shows inode 0; once
/// accept() has returned it, it has one. None: the connection is neither
/// established nor in CLOSE_WAIT, or could not be found.
pub fn accept_state(stream: &TcpStream) -> Option<(bool, Fact)> {
    let (ours, theirs) = (stream.local_addr().ok()?, stream.peer_addr().ok()?);
    let entry = proc_net::connection(theirs, ours).ok()??;
    // CLOSE_WAIT too: a connection still in the accept queue takes the
    // client's FIN all the same (an accepted one that was closed is not
    // in CLOSE_WAIT but LAST_ACK, or gone).
    if !matches!(entry.state, TcpState::Established | TcpState::CloseWait) {
        return None;
    }
    let accepted = entry.inode != 0;
    let subject = format!("{theirs} -> {ours}");
    let text = if accepted {
        format!(
            "your program's end {subject} has socket inode {}: it was accept()ed",
            entry.inode
        )
    } else {
        format!("your program's end {subject} has no socket inode (0): it is still in the accept queue, never accept()ed")
    };
    Some((
        accepted,
        Fact::new(subject, "accepted", json!(accepted), "/proc/net/tcp", text),
    ))
}

/// For an exchange that got nothing back before the time ran out, what
/// the kernel says about it: the sentence to add, and the fact.
pub fn silence(echo: &Echoed) -> Option<(bool, String, Fact)> {
    if !echo.got.is_empty() || echo.end != End::TimedOut {
        return None;
    }
    let (accepted, fact) = accept_state(&echo.stream)?;
    let sentence = if accepted {
        "your program accept()ed the connection but sent nothing back"
    } else {
        "your program never accept()ed the connection: it is still waiting in the accept queue"
    };
    Some((accepted, sentence.to_string(), fact))
}

/// A failed echo of `sent`: what happened, the hint (`hint`, or the one
/// for a connection never accepted) and the kernel's word on it.
fn echo_failure(
    echo: &Echoed,
    sent: &[u8],
    hint: &'static str,
) -> (String, &'static str, Vec<Fact>) {
    match silence(echo) {
        Some((accepted, sentence, fact)) => (
            format!("{}; {sentence}", echo.describe(sent)),
            if accepted { hint } else { HINT_NOT_ACCEPTED },
            vec![fact],
        ),
        None => match whole_lines_only(sent, &echo.got, &echo.end) {
            Some(sentence) => (
                format!("{}; {sentence}", echo.describe(sent)),
                HINT_WHOLE_LINES,
                Vec::new(),
            ),
            None => (echo.describe(sent), hint, Vec::new()),
        },
    }
}

/// For an echo that stopped short, right after a newline: the sentence
/// that says the server echoes whole lines only (readline(), makefile()),
/// so the bytes after the last newline wait for one that never comes.
/// None when the echo went wrong some other way.
pub fn whole_lines_only(sent: &[u8], got: &[u8], end: &End) -> Option<String> {
    let missing = sent.get(got.len()..)?;
    let whole_lines = *end == End::TimedOut
        && got.last() == Some(&b'\n')
        && sent.starts_with(got)
        && !missing.is_empty()
        && !missing.contains(&b'\n');
    whole_lines.then(|| {
        format!(
            "the echo stopped right after a newline (\\n): the {} bytes after the last newline never came back",
            missing.len()
        )
    })
}

/// Connect, send `payload` and read back as many bytes, all before the
/// deadline. Err: a sentence saying why the exchange could not even start.
pub fn exchange(addr: SocketAddr, payload: &[u8], deadline: Instant) -> Result<Echoed, String> {
    let mut stream =
        net::connect(addr, deadline).map_err(|err| net::connect_failure(addr, &err))?;
    let (sent, error) = net::write_all(&mut stream, payload, deadline);
    if let Some(err) = error {
        return Err(format!(
            "sending {} bytes failed after {sent}: {err}",
            payload.len()
        ));
    }
    let (got, end) = net::read_exact(&mut stream, payload.len(), deadline);
    Ok(Echoed { stream, got, end })
}

/// The index of the first byte where `a` and `b` differ (or the shorter length).
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// If the program has died, how, and the hint for that way of dying
/// (None: the probe's own): "your program exited with status 1 after the
/// client's reset (...)".
fn exit_after(target: &Target, after: &str) -> Option<(String, Option<&'static str>)> {
    use std::os::unix::process::ExitStatusExt;
    // The program may still be going down: give it a moment to be reaped.
    let until = Instant::now() + Duration::from_millis(300);
    let ended = loop {
        if let Some(ended) = target.ended() {
            break ended;
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = target.program.server_status();
    if status.and_then(|status| status.signal()) == Some(libc::SIGPIPE) {
        return Some((
            format!("{ended} {after}: it wrote to a connection the client had reset"),
            Some(HINT_SIGPIPE),
        ));
    }
    // Status 0 and no traceback: the program reached the end of its code,
    // which a server does when it has no loop around accept().
    let clean = status.and_then(|status| status.code()) == Some(0)
        && target.program.last_traceback(usize::MAX).is_none();
    if clean {
        return Some((
            format!("{ended}: it ended by itself, printing no error, instead of going back to accept() for the next client"),
            Some(HINT_ONE_CLIENT),
        ));
    }
    Some((
        format!("{ended} {after} (its output below shows why)"),
        None,
    ))
}

const HINT_NO_ECHO: &str = "After recv() returns data, send the same bytes back with sendall() before calling recv() again.";
const HINT_NOT_ACCEPTED: &str = "Your program never called accept() for this client: look at what it does between two accept() calls (still serving an earlier client, waiting for something else, or never looping back to accept()).";
const HINT_EXACT: &str = "Send back exactly the bytes recv() returned: do not decode(), strip() or add to them, since a client's bytes need not be text.";
const HINT_WHOLE_LINES: &str = "Your server echoes only whole lines (readline(), makefile(), or a loop over lines): bytes after the last newline wait for a newline that never comes. Echo at once whatever recv() returns, newline or not.";
const HINT_ONE_CLIENT: &str = "Your program served a client and then reached its end (status 0): put accept() and the conversation with each client in a loop (while True: conn, addr = listener.accept() ...), so that when one client leaves it goes back to accept() for the next.";
const HINT_SIGPIPE: &str = "Your program was killed by SIGPIPE: it wrote to a connection the client had reset, and SIGPIPE's default action ends the process. Ignore it once at the start (signal(SIGPIPE, SIG_IGN)) or send with send(fd, buf, n, MSG_NOSIGNAL); write() then fails with EPIPE, which your loop can handle by closing that client.";
const HINT_RESET_SENDING: &str = "A client can reset the connection while your program is sending to it: sendall() then raises ConnectionResetError or BrokenPipeError. Catch OSError around the whole conversation with a client (recv() and sendall()), not only around recv(), then close that socket and go back to accept().";
const HINT_RESET_EPIPE: &str = "Your program died on BrokenPipeError while sending: a client can reset while your program sends to it, and a reset that comes after the client's FIN makes send() fail with EPIPE (BrokenPipeError), not ECONNRESET (ConnectionResetError). Both mean the client is gone: catch OSError, which covers both, around the whole conversation with a client (recv() and sendall()), not only around recv(), then close that socket and go back to accept().";
const HINT_SLOW: &str = "Your echo is slow, as if it handled a byte or two per recv(): read in large chunks (recv(65536)) and send each chunk back with sendall(). Only the bytes that came back in time were checked; on a slow or busy machine, run the check with --patience 3 to give every probe three times as long, and see whether the whole 1 MiB comes back.";
const HINT_CHILDREN_STAY: &str = "Each child forked for a client has its own descriptors, and these children stayed: a child must end with os._exit(0) as soon as its client has gone (not go back into the parent's loop, nor wait for something).";
const HINT_CLOSED_EARLY: &str = "Keep the conversation going until recv() returns b\"\": close the client's socket only after that, not after the first message.";

fn probe_echo(target: Target, deadline: Instant) -> Outcome {
    let line = b"hello from netlab check\n";
    let expected = "the line comes back unchanged";
    let after = "after receiving the line";
    match exchange(target.addr, line, deadline) {
        Err(why) => died_or(&target, after, expected, why, HINT_NO_ECHO),
        Ok(echo) if echo.matches(line) => {
            Outcome::pass(expected, format!("sent and got back {}", net::show(line)))
        }
        Ok(echo) => {
            let hint = match echo.end {
                End::Complete => HINT_EXACT,
                End::Eof | End::Reset if echo.got.is_empty() => HINT_CLOSED_EARLY,
                _ => HINT_NO_ECHO,
            };
            let (happened, hint, facts) = echo_failure(&echo, line, hint);
            died_or_with(&target, after, expected, happened, hint, facts)
        }
    }
}

fn probe_binary(target: Target, deadline: Instant) -> Outcome {
    // Every byte value up and then down: NUL, \r, \n, and bytes that are
    // not valid UTF-8 (0x80-0xff), so a server that decodes text fails.
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let expected = "all 512 bytes (every byte value twice) come back unchanged";
    let after = "after receiving the 512 bytes";
    match exchange(target.addr, &bytes, deadline) {
        Err(why) => died_or(&target, after, expected, why, HINT_EXACT),
        Ok(mut echo) if echo.matches(&bytes) => {
            // Then nothing more: a server that adds a byte (a newline
            // after strip()) must not pass because netlab stopped reading.
            let wait = (Instant::now() + target.time(EXTRA_WAIT_SECONDS)).min(deadline);
            let (extra, _) = net::read_exact(&mut echo.stream, 64, wait);
            if extra.is_empty() {
                Outcome::pass(
                    expected,
                    "sent and got back 512 bytes, 0x00 to 0xff and back, identical, and nothing after them",
                )
            } else {
                Outcome::fail(
                    expected,
                    format!(
                        "the 512 bytes came back unchanged, then {} more byte(s) that netlab never sent: {}",
                        extra.len(),
                        net::show(&extra)
                    ),
                    HINT_EXACT,
                )
            }
        }
        Ok(echo) => {
            let (happened, hint, facts) = echo_failure(&echo, &bytes, HINT_EXACT);
            died_or_with(&target, after, expected, happened, hint, facts)
        }
    }
}

/// 1 MiB of pseudo-random bytes (xorshift), so a chunk that comes back
/// twice, late or out of order does not match.
fn large_message() -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..LARGE_LEN)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Connect with a small receive buffer (SO_RCVBUF, set before connect()
/// so the window is small from the handshake on): the server's echo then
/// piles up in its own send buffer, which fills, and a send() that is not
/// looped shows as lost bytes. connect() obeys SO_SNDTIMEO on Linux,
/// which bounds it by the deadline.
fn connect_small_window(addr: SocketAddr, deadline: Instant) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use nix::sys::time::TimeVal;
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::RcvBuf, &SMALL_RCVBUF)?;
    // Small segments too: over loopback (MTU 65536) the server's send
    // buffer would otherwise start at some 1 MiB and hold the whole echo.
    socket::setsockopt(&fd, sockopt::TcpMaxSeg, &SMALL_MSS)?;
    // A zero timeout would mean "wait for ever".
    let wait = net::left(deadline).max(Duration::from_millis(1));
    let timeout = TimeVal::new(wait.as_secs() as _, wait.subsec_micros() as _);
    socket::setsockopt(&fd, sockopt::SendTimeout, &timeout)?;
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => {}
        // The timeout ran out with the handshake still under way.
        Err(nix::errno::Errno::EINPROGRESS) => {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
        }
        Err(errno) => return Err(errno.into()),
    }
    let stream = TcpStream::from(fd);
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn probe_large(target: Target, deadline: Instant) -> Outcome {
    let expected = "all 1048576 bytes come back, in order";
    let hint = "recv() returns whatever has arrived, often far less than was sent: keep calling recv() until it returns b\"\", and send each chunk back whole with sendall() (send() may write only part of it).";
    let message = large_message();
    let mut stream = match connect_small_window(target.addr, deadline) {
        Ok(stream) => stream,
        Err(err) => return Outcome::fail(expected, net::connect_failure(target.addr, &err), hint),
    };
    let mut writer =
        match stream.try_clone() {
            Ok(writer) => writer,
            Err(err) => return Outcome::fail(
                expected,
                format!("netlab could not duplicate its socket: {err}"),
                "netlab itself ran out of resources; close some programs and run the check again.",
            ),
        };
    // Write and read at the same time: a client that wrote the whole
    // mebibyte first would stall any echo server once both sides' socket
    // buffers are full (the server blocks in sendall() on us, we in send()
    // on it). But start reading only after a pause: with netlab's small
    // receive buffer, the server's send buffer fills meanwhile; a blocking
    // send() then waits for room, but a non-blocking one (or one with a
    // timeout) writes only part of what it is given.
    let started = Instant::now();
    let pause = target.time(PAUSE_SECONDS);
    let stall = target.time(1.0);
    let (got, end, sent, arriving, silent) = std::thread::scope(|scope| {
        let message = &message;
        let sending = scope.spawn(move || net::write_all(&mut writer, message, deadline));
        std::thread::sleep(pause.min(net::left(deadline)));
        // Read in rounds of up to a second, and give up early after a
        // round in which nothing came: lost bytes never arrive. A round
        // that brought bytes when the time ran out means the echo was
        // still coming: a slow server, not a lost byte.
        let mut got = Vec::with_capacity(LARGE_LEN);
        let mut arriving = false;
        let end = loop {
            let round = (Instant::now() + stall).min(deadline);
            let (more, end) = net::read_exact(&mut stream, LARGE_LEN - got.len(), round);
            got.extend_from_slice(&more);
            if end != End::TimedOut || more.is_empty() {
                break end;
            }
            if net::passed(deadline) {
                arriving = true;
                break end;
            }
        };
        // Nothing at all came back: was the connection ever accept()ed?
        // (Asked before the shutdown below ends it.)
        let silent = match got.is_empty() && end == End::TimedOut {
            true => accept_state(&stream),
            false => None,
        };
        if end != End::Complete {
            // Wake the writer if it is blocked on a server that stopped reading.
            let _ = stream.shutdown(Shutdown::Both);
        }
        let (sent, _) = sending.join().unwrap_or((0, None));
        (got, end, sent, arriving, silent)
    });
    if end == End::Complete && got == message {
        return Outcome::pass(
            expected,
            format!(
                "sent 1048576 bytes while reading; all came back in order ({} bytes checked) in {:.1} s",
                got.len(),
                started.elapsed().as_secs_f64()
            ),
        );
    }
    if arriving && message.starts_with(&got) {
        return Outcome::warn(
            expected,
            format!(
                "slow: after {:.1} s, {} of 1048576 bytes had come back, all in order so far, and more were still arriving when the probe's time ran out (netlab had sent {sent}); the rest was not checked",
                started.elapsed().as_secs_f64(),
                got.len()
            ),
            HINT_SLOW,
        );
    }
    if let Some((accepted, fact)) = silent {
        let (sentence, hint) = match accepted {
            true => ("your program accept()ed the connection but sent nothing back", hint),
            false => (
                "your program never accept()ed the connection: it is still waiting in the accept queue",
                HINT_NOT_ACCEPTED,
            ),
        };
        let happened =
            format!("netlab sent {sent} of 1048576 bytes; nothing came back; {sentence}");
        // The connection is still there: the program is running.
        return Outcome::fail(expected, happened, hint).with_fact(fact);
    }
    let mut hint = hint;
    let happened = if end == End::Complete || arriving {
        let at = first_difference(&message, &got);
        let came = match arriving {
            true => format!("{} bytes had come back, more still arriving,", got.len()),
            false => "all 1048576 bytes came back,".to_string(),
        };
        format!(
            "{came} but from byte {at} on they differ (sent 0x{:02x}, got 0x{:02x}): bytes were lost, repeated or reordered",
            message.get(at).copied().unwrap_or(0),
            got.get(at).copied().unwrap_or(0)
        )
    } else {
        let detail = match &end {
            End::Error(err) => format!("the read failed: {err}"),
            end => end.describe().to_string(),
        };
        let mut happened = format!(
            "netlab sent {sent} of 1048576 bytes; {} came back, then {detail}",
            got.len()
        );
        if let Some(sentence) = whole_lines_only(&message, &got, &end) {
            happened = format!("{happened}; {sentence}");
            hint = HINT_WHOLE_LINES;
        }
        happened
    };
    died_or(
        &target,
        "during the 1 MiB exchange",
        expected,
        happened,
        hint,
    )
}

fn probe_disconnect(target: Target, deadline: Instant) -> Outcome {
    let expected = "a client that leaves without a word, and one that hangs up right after its last line (still getting that line back), do not stop your program serving the next";
    let hint = "recv() returning b\"\" means the client has gone: leave that client's loop, close() its socket and go back to accept().";
    // Both clients below close with FIN, never RST: a socket closed with
    // unread bytes sends RST instead, and that is the `reset` probe's case.
    // The first connects and closes without sending anything.
    let silent = match net::connect(target.addr, deadline) {
        Ok(stream) => stream,
        Err(err) => return Outcome::fail(expected, net::connect_failure(target.addr, &err), hint),
    };
    drop(silent);
    // The second sends its line and at once shuts down its sending side
    // (FIN right behind the data); it reads its echo, then closes.
    let last = b"my last words, then I hang up\n";
    let hung_up = net::connect(target.addr, deadline).and_then(|mut stream| {
        let (_, error) = net::write_all(&mut stream, last, deadline);
        match error {
            Some(err) => Err(err),
            None => net::half_close(&stream).map(|()| stream),
        }
    });
    let mut hung_up = match hung_up {
        Ok(stream) => stream,
        Err(err) => {
            return Outcome::fail(
                expected,
                format!("the client that hangs up could not send its line: {err}"),
                hint,
            )
        }
    };
    let (got, end) = net::read_exact(&mut hung_up, last.len(), deadline);
    let third = b"still there?\n";
    let failure = if end != End::Complete || got != last {
        let echo = Echoed {
            stream: hung_up,
            got,
            end,
        };
        let (happened, hint, facts) = echo_failure(&echo, last, hint);
        Some((
            format!("the client that hung up after its line: {happened}"),
            hint,
            facts,
        ))
    } else {
        drop(hung_up);
        match exchange(target.addr, third, deadline) {
            Ok(echo) if echo.matches(third) => None,
            Ok(echo) => {
                let (happened, hint, facts) = echo_failure(&echo, third, hint);
                Some((format!("the client after them: {happened}"), hint, facts))
            }
            Err(why) => Some((format!("the client after them: {why}"), hint, Vec::new())),
        }
    };
    match failure {
        None => Outcome::pass(
            expected,
            "one client left silently, one hung up right after its line and still got it back; the next got its echo",
        ),
        Some((happened, hint, facts)) => {
            died_or_with(&target, "after those clients left", expected, happened, hint, facts)
        }
    }
}

/// Like `died_or`, with the facts `echo_failure` read. When the kernel
/// showed the connection still there, waiting to be accept()ed or
/// answered, the program was running: no need to wait for it to end.
fn died_or_with(
    target: &Target,
    after: &str,
    expected: &str,
    happened: String,
    hint: &'static str,
    facts: Vec<Fact>,
) -> Outcome {
    if facts.iter().any(|fact| fact.fact == "accepted") {
        return Outcome::fail(expected, happened, hint).with_facts(facts);
    }
    died_or(target, after, expected, happened, hint).with_facts(facts)
}

/// A failed outcome: if the program has died, that is what happened
/// (the framework shows its output); else `happened`.
fn died_or(
    target: &Target,
    after: &str,
    expected: &str,
    happened: String,
    hint: &'static str,
) -> Outcome {
    match exit_after(target, after) {
        Some((ended, how)) => Outcome::fail(expected, ended, how.unwrap_or(hint)),
        None => Outcome::fail(expected, happened, hint),
    }
}

fn probe_reset(target: Target, deadline: Instant) -> Outcome {
    let expected = "after a client resets its connection, while your program waits in recv() and while it is sending, your program still runs and serves the next client";
    let hint = "recv() and sendall() raise ConnectionResetError (or BrokenPipeError) when a client resets: catch OSError around one client's conversation, close that socket, and keep accepting.";
    // First a normal exchange, so the server is surely back in recv() for
    // this client once its echo is here; then an abortive close: SO_LINGER
    // 0 makes close() send RST, and the server's recv() fails with
    // ECONNRESET. (No bytes go with it: the server would then meet the
    // reset in recv() or in sendall(), by chance; the second client below
    // is the sendall() case, every time.)
    let first = b"this client will reset\n";
    let after = "after receiving the line";
    match exchange(target.addr, first, deadline) {
        Ok(echo) if echo.matches(first) => {
            if let Err(err) = net::reset(echo.stream) {
                return cannot_reset(expected, &err);
            }
        }
        Ok(echo) => {
            let (happened, hint, facts) = echo_failure(&echo, first, HINT_NO_ECHO);
            return died_or_with(&target, after, expected, happened, hint, facts);
        }
        Err(why) => return died_or(&target, after, expected, why, HINT_NO_ECHO),
    }
    let after = "after a client reset the connection while your program waited in recv()";
    if let Some(failed) = next_client(&target, deadline, expected, after, hint) {
        return failed;
    }
    // Then a client that resets while the server is sending: it sends on
    // a small window and never reads, so the server's echo fills its send
    // buffer and it blocks in sendall(); the RST then ends that sendall()
    // (ECONNRESET, or EPIPE and SIGPIPE on the next write).
    let (stream, fact) = match fill_without_reading(&target, deadline) {
        Ok(Filled::Stuck(stream, fact)) => (stream, fact),
        // The program ended that conversation itself (after one recv(),
        // say): nothing to reset, and another probe judges that; is it
        // still serving?
        Ok(Filled::Closed) => {
            let after = "after a client that sent without reading";
            if let Some(failed) = next_client(&target, deadline, expected, after, hint) {
                return failed;
            }
            return Outcome::pass(
                expected,
                "the first client reset its connection (RST) while your program waited in recv(), and your program went on; the second, which sends without reading, could not reset while your program was sending: your program closed that connection first; the next client got its echo",
            );
        }
        Err(why) => {
            return died_or(
                &target,
                after,
                expected,
                format!("the second client, which sends without reading: {why}"),
                HINT_NO_ECHO,
            )
        }
    };
    if let Err(err) = net::reset(stream) {
        return cannot_reset(expected, &err).with_fact(fact);
    }
    let after = "after a client reset the connection while your program was sending to it";
    if let Some(mut failed) = next_client(&target, deadline, expected, after, HINT_RESET_SENDING) {
        // A program that catches ConnectionResetError and still died here
        // met the other name the same reset can have.
        let broken_pipe = target
            .program
            .last_traceback(usize::MAX)
            .is_some_and(|tb| tb.class() == Some("BrokenPipeError"));
        if broken_pipe && failed.hint == Some(HINT_RESET_SENDING) {
            failed.hint = Some(HINT_RESET_EPIPE);
        }
        return failed.with_fact(fact);
    }
    Outcome::pass(
        expected,
        "two clients reset their connections (RST), one while your program waited in recv(), one while it was sending its echo; each time your program went on and echoed the next client",
    )
    .with_fact(fact)
}

fn cannot_reset(expected: &str, err: &std::io::Error) -> Outcome {
    Outcome::fail(
        expected,
        format!("netlab could not set SO_LINGER on its socket: {err}"),
        "netlab itself could not reset the connection; run the check again.",
    )
}

/// After a reset: does the next client get its echo from a server still
/// running? None if so, else the failed outcome, with `hint` when the
/// program died or was silent after accepting.
fn next_client(
    target: &Target,
    deadline: Instant,
    expected: &str,
    after: &str,
    hint: &'static str,
) -> Option<Outcome> {
    let line = b"after the reset\n";
    match exchange(target.addr, line, deadline) {
        Ok(echo) if echo.matches(line) && target.alive() => None,
        Ok(echo) => {
            let (happened, hint, facts) = echo_failure(&echo, line, hint);
            let happened = format!("{after}, the next client: {happened}");
            Some(died_or_with(target, after, expected, happened, hint, facts))
        }
        Err(why) => {
            let happened = format!("{after}, the next client: {why}");
            Some(died_or(target, after, expected, happened, hint))
        }
    }
}

/// Connect on a small window and send, reading nothing, until the
/// server's echo has filled its send buffer and it is stuck in send()
/// (at most 1 MiB, for a moment); let those bytes reach the server's
/// kernel, then half-close (FIN). A reset of a connection in CLOSE_WAIT
/// makes the server's blocked or next write fail with EPIPE, which kills
/// a C server that does not ignore SIGPIPE, and raises BrokenPipeError
/// in Python. Returns the stream, ready for its reset, and the server's
/// end as read from /proc/net/tcp.
fn fill_without_reading(target: &Target, deadline: Instant) -> Result<Filled, String> {
    const PIECE: usize = 8 * 1024;
    const STUCK_UNREAD: u64 = 16 * 1024;
    // More than a server's send buffer (some 80 KiB with these small
    // segments) can take in, so that it stays stuck.
    const MIN_FILL: usize = 96 * 1024;
    let mut stream = connect_small_window(target.addr, deadline)
        .map_err(|err| net::connect_failure(target.addr, &err))?;
    let message = large_message();
    let until = (Instant::now() + target.time(RESET_FILL_SECONDS)).min(deadline);
    // Stuck: output waiting, and a good deal of input it has stopped
    // reading (the same unread count twice, a moment apart). A little
    // would not do: the window update our FIN carries frees a few KiB of
    // its send buffer, and a server with one small read left would finish
    // it, read our FIN and close before the reset.
    let unread = |stream: &TcpStream, sent: usize| match send_queue_fact(stream, sent) {
        (true, fact) => fact.value.get("receive_queue").and_then(|v| v.as_u64()),
        (false, _) => None,
    };
    // The first MIN_FILL bytes at once; then more, a piece at a time,
    // only while the server reads (little unread), so that everything
    // netlab sends reaches the server and our FIN can follow it. Once a
    // good deal is unread, wait for that count to stand still: stuck.
    let mut sent = 0;
    let mut last_unread = None;
    while !net::passed(until) {
        let piece = match sent {
            0 => MIN_FILL,
            _ => match unread(&stream, sent) {
                Some(now) if now >= STUCK_UNREAD => {
                    if last_unread == Some(now) {
                        break;
                    }
                    last_unread = Some(now);
                    std::thread::sleep(Duration::from_millis(30));
                    continue;
                }
                _ if sent >= LARGE_LEN => break,
                _ => PIECE,
            },
        };
        last_unread = None;
        let piece = &message[sent..(sent + piece).min(LARGE_LEN)];
        let (n, error) = net::write_all(&mut stream, piece, until);
        sent += n;
        match error {
            None => {}
            Some(err) if err.kind() == std::io::ErrorKind::TimedOut => break,
            Some(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
            Some(err) if closed_by_peer(&err) => return Ok(Filled::Closed),
            Some(err) => return Err(format!("sending failed after {sent} bytes: {err}")),
        }
    }
    // Wait until the server's kernel has all netlab sent (our send queue
    // is empty), so that our FIN reaches it too; then for CLOSE_WAIT.
    let until = (Instant::now() + target.time(RESET_WRITE_SECONDS)).min(deadline);
    let ours_sent = |stream: &TcpStream| -> bool {
        match (stream.local_addr(), stream.peer_addr()) {
            (Ok(ours), Ok(theirs)) => matches!(
                proc_net::connection(ours, theirs),
                Ok(Some(entry)) if entry.tx_queue == 0
            ),
            _ => true,
        }
    };
    while !ours_sent(&stream) && !net::passed(until) {
        std::thread::sleep(Duration::from_millis(10));
    }
    net::half_close(&stream)
        .map_err(|err| format!("netlab could not shut down its side: {err}"))?;
    loop {
        let (stuck, fact) = send_queue_fact(&stream, sent);
        let closing = server_state(&stream) == Some(TcpState::CloseWait);
        if (stuck && closing) || net::passed(until) {
            return Ok(Filled::Stuck(stream, fact));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How the second `reset` client's sending ended.
enum Filled {
    /// The server is (most likely) stuck sending: reset now. The fact is
    /// its end of the connection.
    Stuck(TcpStream, Fact),
    /// The server closed or reset the connection itself first.
    Closed,
}

/// A write failed because the program closed or reset the connection.
fn closed_by_peer(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(err.kind(), ConnectionReset | BrokenPipe | ConnectionAborted)
}

/// The TCP state of the program's end of `stream`, read now.
fn server_state(stream: &TcpStream) -> Option<TcpState> {
    net::server_side_state(stream).0
}

/// The program's end of `stream` before netlab resets it: bytes waiting
/// in its send queue (its echo, which netlab does not read) and bytes
/// received that it has not read, from /proc/net/tcp.
/// The bool: its send queue is not empty (its echo is waiting).
fn send_queue_fact(stream: &TcpStream, sent: usize) -> (bool, Fact) {
    let (Ok(ours), Ok(theirs)) = (stream.local_addr(), stream.peer_addr()) else {
        let fact = Fact::unavailable(
            "the connection",
            "queues",
            "/proc/net/tcp",
            "the socket has no addresses",
        );
        return (false, fact);
    };
    let subject = format!("{theirs} -> {ours}");
    let source = net::tcp_table_of(theirs);
    let entry = match proc_net::connection(theirs, ours) {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            let why = "the connection is not listed";
            return (false, Fact::unavailable(subject, "queues", source, why));
        }
        Err(err) => return (false, Fact::unavailable(subject, "queues", source, err)),
    };
    let (tx, rx, state) = (entry.tx_queue, entry.rx_queue, entry.state.name());
    let meaning = match (tx > 0, rx > 0) {
        (true, true) => ": it was stuck sending its echo to a client that does not read, and had stopped reading",
        (true, false) => ": its echo was waiting for the client to read",
        (false, true) => ": it had stopped reading, with nothing to send",
        (false, false) => "",
    };
    let fact = Fact::new(
        subject.clone(),
        "queues",
        json!({ "netlab_sent": sent, "send_queue": tx, "receive_queue": rx, "tcp_state": state }),
        source,
        format!("netlab sent {sent} bytes, read none and closed its side; just before its reset, your program's end {subject} was {state}, with {tx} bytes in its send queue and {rx} unread in its receive queue{meaning}"),
    );
    (tx > 0, fact)
}

fn probe_close_wait(target: Target, deadline: Instant) -> Outcome {
    let expected = "when the client closes its side (FIN), your program closes its own within 1 s";
    let hint = "When recv() returns b\"\" the client has closed: leave the loop and close() the socket (a forking server's parent must close its copy too), or the kernel holds the connection in CLOSE_WAIT.";
    let line = b"last words\n";
    let mut stream = match exchange(target.addr, line, deadline) {
        Ok(echo) if echo.matches(line) => echo.stream,
        Ok(echo) => {
            let (happened, hint, facts) = echo_failure(&echo, line, HINT_NO_ECHO);
            return died_or_with(
                &target,
                "after receiving the line",
                expected,
                happened,
                hint,
                facts,
            );
        }
        Err(why) => {
            return died_or(
                &target,
                "after receiving the line",
                expected,
                why,
                HINT_NO_ECHO,
            )
        }
    };
    // Both ends' addresses, kept to find the program's end in /proc/net/tcp
    // (getpeername() fails once the connection is fully closed).
    let (Ok(ours), Ok(theirs)) = (stream.local_addr(), stream.peer_addr()) else {
        return Outcome::fail(
            expected,
            "the connection ended before netlab could close its side",
            HINT_CLOSED_EARLY,
        );
    };
    // shutdown(SHUT_WR): our FIN goes out, and we can still read theirs.
    if let Err(err) = net::half_close(&stream) {
        return Outcome::fail(
            expected,
            format!("netlab could not shut down its side: {err}"),
            "netlab itself could not close its side; run the check again.",
        );
    }
    let started = Instant::now();
    let fin_deadline = (started + target.time(1.0)).min(deadline);
    let end = net::wait_for_eof(&mut stream, fin_deadline);
    let waited_ms = started.elapsed().as_millis();
    match end {
        End::Eof => {
            let (_, state) = net::server_side_state_of(ours, theirs);
            let (_, waiting) = net::close_wait_on(target.addr.port());
            Outcome::pass(
                expected,
                format!("netlab sent FIN; your program's FIN came {waited_ms} ms later"),
            )
            .with_facts([state, waiting])
        }
        End::Reset => Outcome::warn(
            expected,
            format!("netlab sent FIN; {waited_ms} ms later your program reset the connection (RST) instead of closing it with FIN"),
            "Your program closed with unread bytes (or with SO_LINGER 0), which sends RST: read until recv() returns b\"\" before close().",
        ),
        _ => {
            // No FIN: ask the kernel what the program's end of this
            // connection is now. CLOSE_WAIT means: the FIN arrived and was
            // acknowledged, and the program has not called close().
            let (state, fact) = net::server_side_state_of(ours, theirs);
            let (_, waiting) = net::close_wait_on(target.addr.port());
            let now = match state {
                Some(state) => format!("its end of the connection is {}", state.name()),
                None => "its end of the connection could not be found".to_string(),
            };
            Outcome::fail(
                expected,
                format!("netlab sent FIN and waited {waited_ms} ms; your program did not close its side: {now}"),
                hint,
            )
            .with_facts([fact, waiting])
        }
    }
}

/// The server's open descriptors as a fact, and the count: the server's
/// own plus those of every live process under it (pre-forked workers, a
/// child that serves for a reloading parent), read from /proc/PID/fd now.
/// The count is (descriptors, processes).
fn fd_fact(target: &Target, when: &'static str) -> (Option<(usize, usize)>, Fact) {
    let pid = target.pid();
    let (mut fds, mut sockets) = match net::open_fds(pid) {
        Ok(counts) => counts,
        Err(fact) => return (None, fact),
    };
    let mut below = 0;
    for stat in target.descendants().iter().filter(|stat| stat.state != 'Z') {
        // One that ended between the two reads has nothing open.
        if let Ok((more, more_sockets)) = net::open_fds(stat.pid) {
            fds += more;
            sockets += more_sockets;
            below += 1;
        }
    }
    let who = match below {
        0 => format!("pid {pid} had"),
        n => format!("pid {pid} and the {n} process(es) under it had, in all,"),
    };
    (
        Some((fds, below + 1)),
        Fact::new(
            format!("pid {pid}"),
            "open_fds",
            json!({ "when": when, "fds": fds, "sockets": sockets, "processes": below + 1 }),
            "/proc/PID/fd",
            format!(
                "{when} the {CLIENTS} clients, {who} {fds} descriptors open ({sockets} sockets)"
            ),
        ),
    )
}

fn probe_fd_growth(target: Target, deadline: Instant) -> Outcome {
    let expected = format!(
        "after {CLIENTS} clients have come and gone, your program has no more descriptors open than before (at most {FD_NOISE} more, opened once)"
    );
    let hint = "Every accepted socket must be closed with close() once its client has gone (shutdown() alone sends FIN but keeps the descriptor), and nothing may keep a reference to it.";
    let (before, before_fact) = fd_fact(&target, "before");
    // Each client: connect, one line, its echo, close (FIN).
    let mut served = 0;
    let mut trouble = None;
    let mut trouble_hint = HINT_NO_ECHO;
    let mut trouble_facts = Vec::new();
    for n in 0..CLIENTS {
        let line = format!("client {} of {CLIENTS}\n", n + 1);
        match exchange(target.addr, line.as_bytes(), deadline) {
            Ok(echo) if echo.matches(line.as_bytes()) => served += 1,
            Ok(echo) => {
                let (happened, hint, facts) = echo_failure(&echo, line.as_bytes(), HINT_NO_ECHO);
                trouble = Some(format!("client {}: {happened}", n + 1));
                trouble_hint = hint;
                trouble_facts = facts;
            }
            Err(why) => trouble = Some(format!("client {}: {why}", n + 1)),
        }
        if trouble.is_some() {
            break;
        }
    }
    if let Some(trouble) = trouble {
        return Outcome::fail(
            expected,
            format!("{served} of {CLIENTS} clients were served; then {trouble}"),
            trouble_hint,
        )
        .with_fact(before_fact)
        .with_facts(trouble_facts);
    }
    let Some(before) = before else {
        return Outcome::pass(
            expected,
            format!("{served} clients were served; the descriptors could not be counted"),
        )
        .with_fact(before_fact);
    };
    // The last clients' FINs may still be on their way to the server:
    // give it a moment to see them and close.
    let settle_until = (Instant::now() + target.time(1.0)).min(deadline);
    let (after, after_fact) = loop {
        let (after, fact) = fd_fact(&target, "after");
        let settled = after.is_none_or(|after| after.0 <= before.0);
        if settled || net::passed(settle_until) {
            break (after, fact);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let facts = [before_fact, after_fact];
    match after {
        None => Outcome::pass(expected, format!("{served} clients were served; the descriptors after could not be counted"))
            .with_facts(facts),
        Some((after, _)) if after <= before.0 + FD_NOISE => Outcome::pass(
            expected,
            format!(
                "{served} clients came and went; descriptors: {} before, {after} after",
                before.0
            ),
        )
        .with_facts(facts),
        // More processes, each with its own descriptors: children that
        // did not exit, not sockets left open.
        Some((after, processes)) if processes > before.1 + FD_NOISE => Outcome::fail(
            expected,
            format!(
                "{served} clients came and went; descriptors: {} before, {after} after: {} more, held by {} more process(es) under your server than before ({} before, {processes} after): the children forked for clients did not exit",
                before.0,
                after - before.0,
                processes - before.1,
                before.1
            ),
            HINT_CHILDREN_STAY,
        )
        .with_facts(facts),
        Some((after, _)) => Outcome::fail(
            expected,
            format!(
                "{served} clients came and went; descriptors: {} before, {after} after: {} more",
                before.0,
                after - before.0
            ),
            hint,
        )
        .with_facts(facts),
    }
}
