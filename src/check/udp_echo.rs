//! # udp-echo: check a student's UDP echo server
//!
//! The exercise: bind one UDP socket on the port you are given, and for
//! every datagram that arrives send the same bytes back to the address
//! `recvfrom()` returned with it. There is no connection and no
//! `accept()`: one socket serves every client, and the address that comes
//! with each datagram is the only way to know where its reply goes.
//!
//! The probes, in order. Each sends from sockets of its own on 127.0.0.1
//! (or ::1), so a late reply to one probe never lands in another:
//!
//! - `echo`: one datagram comes back byte for byte, from the port the
//!   server bound (a client that `connect()`ed would drop a reply from any
//!   other port).
//! - `each-sender`: three clients take turns; each gets its own replies and
//!   nobody else's. A server that keeps the first address, or replies to a
//!   fixed one, fails here; so does one that connect()ed its socket, which
//!   its line in /proc/net/udp shows (a remote address), with a hint of its
//!   own. A reply at the right client with bytes added or taken off is a
//!   changed reply, and one that came after netlab stopped waiting is
//!   late; neither is misdirected. When a reply went to another client,
//!   or a client got none even after a longer settle, the later probes,
//!   which then get none either, say "see each-sender" with its hint,
//!   after a short wait.
//! - `binary`: bytes that are not UTF-8 come back unchanged. A server that
//!   decodes the datagram dies (or changes the bytes) here.
//! - `empty`: a datagram of 0 bytes is a real message, not the end of
//!   anything (TCP's `recv()` returns b"" only at FIN; UDP's returns b""
//!   for an empty datagram). The server must go on; an empty reply and no
//!   reply both pass, and the report says which.
//! - `large`: 60,000 bytes, more than most buffers (the ordinary datagram
//!   after it goes once its reply came, or after 0.1 s: sent back to back,
//!   a tiny receive buffer would drop it). `recvfrom(N)` gives
//!   the first N bytes and the kernel discards the rest of that datagram;
//!   the server must survive. Echoing the part it got, refusing with a
//!   short answer, and dropping the datagram all pass; the report says
//!   which, and how many bytes came back.
//! - `burst`: 100 datagrams at once. Loopback seldom loses any, but UDP
//!   may: a loss is a warning, with the socket's `drops` counter from
//!   /proc/net/udp as the evidence of where they went.
//! - `still-serving`: after all that, one more echo, and the socket's line
//!   in /proc/net/udp (bytes queued, datagrams dropped).
//!
//! Try it: `netlab check udp-echo -- python3 udp_echo_server.py {port}`.
//! A reference answer: `tests/exercises/udp_echo/good.py`.
//! Lesson: `netlab lesson udp`.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;

use super::net::{left, passed, show};
use super::session::{Exercise, Outcome, ProbeInfo, Role, Session, Target};
use crate::kernel::udp::{self, UdpEntry};
use crate::narrate::{text, Fact};

pub static EXERCISE: Exercise = Exercise {
    name: "udp-echo",
    summary:
        "A UDP echo server: reply to each datagram's sender; survive empty and oversized datagrams.",
    lesson: "udp",
    role: Role::UdpServer,
    example: "python3 udp_echo_server.py {port}",
    probes: PROBES,
    prepare: None,
    run,
};

const PROBES: &[ProbeInfo] = &[
    ProbeInfo {
        name: "echo",
        checks: "one datagram comes back unchanged, from the port the server bound",
    },
    ProbeInfo {
        name: "each-sender",
        checks: "three clients take turns; each gets its own replies and no one else's",
    },
    ProbeInfo {
        name: "binary",
        checks: "bytes that are not UTF-8 come back unchanged",
    },
    ProbeInfo {
        name: "empty",
        checks: "an empty datagram does not stop the server",
    },
    ProbeInfo {
        name: "large",
        checks: "a 60,000-byte datagram does not stop the server",
    },
    ProbeInfo {
        name: "burst",
        checks: "100 datagrams sent at once: how many replies come back",
    },
    ProbeInfo {
        name: "still-serving",
        checks: "after all the above, one more datagram is echoed",
    },
];

/// The size of the `large` probe's datagram: more than the 1024, 2048 or
/// 4096 bytes students usually pass to recvfrom(), less than the 65,507
/// that one IPv4 UDP datagram can carry.
const LARGE: usize = 60_000;
/// LARGE as the report writes it.
const LARGE_TEXT: &str = "60,000";
/// The longest answer to the large datagram that `large` takes for a
/// refusal ("ERR too big") when it is no part of the datagram.
const REFUSAL_MAX: usize = 200;
/// How many datagrams the `burst` probe sends without waiting.
const BURST: usize = 100;
/// How long one reply may take before it counts as missing. A Python
/// server answers in well under a millisecond on loopback; the margin is
/// for a loaded machine (and `--patience` scales it).
const REPLY_WAIT: f64 = 1.0;
/// How long the probes after a failed each-sender wait for a reply that
/// each-sender already found going elsewhere: a short look, since their
/// verdict only points back there.
const MISDIRECTED_WAIT: f64 = 0.3;

/// How long `empty` and `large` wait for the reply to their odd datagram
/// before they send the ordinary one.
const ODD_GAP: f64 = 0.1;

/// How many unexpected datagrams a probe keeps for its report: enough to
/// describe any mistake, and a bound on a program that floods.
const KEEP: usize = 8;

/// Every hint, one place: the whole sentence the student reads.
const HINT_NO_REPLY: &str = "Send each reply with sendto(data, addr), where addr is the address recvfrom() returned with that datagram, and check that your loop reaches the sendto().";
const HINT_WRONG_SOCKET: &str = "Reply from the socket that received the datagram (the one you bound to the port), not from a new socket: a client that connect()ed its socket drops datagrams from any other port.";
const HINT_CHANGED: &str = "Send back exactly the bytes recvfrom() returned: no added newline or prefix, no strip(), no decode() and encode() on the way.";
const HINT_LATE: &str = "Your replies reach the right clients, but late: answer each datagram as soon as it arrives (no sleep or slow work between recvfrom() and sendto()). On a slow or busy machine, run the check with --patience 3 to give every probe three times as long.";
const HINT_ONE_REPLY: &str = "Send one reply per datagram: one sendto() for each recvfrom(), not a reply and then another copy of it.";
const HINT_EACH_SENDER: &str = "Reply to the address recvfrom() returned with this very datagram, every time: do not keep the first client's address in a variable, or reply to a fixed one.";
const HINT_BINARY: &str = "An echo server returns bytes, not text: do not decode() the datagram, which raises UnicodeDecodeError on bytes that are not UTF-8 (or, with errors='replace', changes them).";
const HINT_EMPTY: &str = "A datagram of 0 bytes is a real message: recvfrom() returning b'' does not mean the client left (that is TCP's recv()), so do not break out of your loop or index data[0] then.";
const HINT_LARGE: &str = "A datagram longer than your buffer must not stop your server: recvfrom(N) returns its first N bytes and the kernel discards the rest, so echo what you got (or refuse it) and go back to recvfrom(); never raise or exit on MSG_TRUNC.";
const HINT_DROPPED: &str = "The kernel dropped the follow-up datagram at your socket because the one before it still filled the receive buffer: read each datagram promptly, and do not make SO_RCVBUF smaller than the datagrams your server must take (or leave it at its default).";
const HINT_BURST_LOST: &str = "Datagrams that arrive faster than your loop reads them wait in the socket's receive buffer, and the kernel drops them when it is full: keep the work between two recvfrom() calls short (no sleep, no print per datagram), or raise SO_RCVBUF.";
const HINT_BURST_NONE: &str = "Your server answered single datagrams but none of a burst: look for a delay or a condition in your loop that stops it answering when many datagrams arrive together.";
const HINT_STOPPED: &str = "Your server answered at first but not now: after an error or an odd datagram your loop must go back to recvfrom() for the next one, not stop or sleep.";
const HINT_CONNECTED: &str = "Do not connect() your server's socket: a connected UDP socket receives datagrams from its one peer only, and the kernel delivers it nothing from any other address. Leave it unconnected, and answer each datagram with sendto(data, addr).";
const HINT_OWN_SOCKET: &str = "netlab could not use a UDP socket of its own on loopback; check that the loopback interface is up (ip link show lo) and run the check again.";

/// What `each-sender` found when a client's own reply never came while the
/// server lived: the replies go to another address (or, with a connected
/// socket, the datagrams never reach the server). The later probes, whose
/// replies are then missing for the same reason, say "see each-sender"
/// instead of blaming their own subject.
struct Elsewhere {
    /// Why, in a few words, for the later probes' reports.
    why: &'static str,
    /// each-sender's hint, which the later probes repeat.
    hint: &'static str,
}

/// Set at most once, by `each-sender`; read by the probes after it.
type Misdirected = Arc<OnceLock<Elsewhere>>;

fn run(session: &mut Session) {
    let misdirected: Misdirected = Arc::default();
    session.probe("echo", 3.0, echo);
    let found = misdirected.clone();
    session.probe("each-sender", 5.0, move |target, deadline| {
        each_sender(target, deadline, &found)
    });
    let seen = misdirected.clone();
    session.probe("binary", 3.0, move |target, deadline| {
        binary(target, deadline, &seen)
    });
    let seen = misdirected.clone();
    session.probe("empty", 3.0, move |target, deadline| {
        empty(target, deadline, &seen)
    });
    let seen = misdirected.clone();
    session.probe("large", 3.0, move |target, deadline| {
        large(target, deadline, &seen)
    });
    let seen = misdirected.clone();
    session.probe("burst", 4.0, move |target, deadline| {
        burst(target, deadline, &seen)
    });
    session.probe("still-serving", 3.0, move |target, deadline| {
        still_serving(target, deadline, &misdirected)
    });
}

/// `echo`: one text datagram, the same bytes back from the server's port.
fn echo(target: Target, deadline: Instant) -> Outcome {
    let payload = b"hello from netlab check udp-echo";
    let expected = format!(
        "the reply {} ({} bytes) from {}",
        show(payload),
        payload.len(),
        target.addr
    );
    exchange_once(
        &target,
        payload,
        deadline,
        &expected,
        HINT_NO_REPLY,
        &Misdirected::default(),
    )
}

/// `binary`: every byte value, and sequences that are not UTF-8.
fn binary(target: Target, deadline: Instant, misdirected: &Misdirected) -> Outcome {
    let mut payload = b"\xff\xfe not UTF-8: \xc3\x28 \x80 \x00".to_vec();
    payload.extend((0..=255u8).rev());
    let expected = format!(
        "the same {} bytes back, including \\xff, \\x80 and \\x00",
        payload.len()
    );
    exchange_once(
        &target,
        &payload,
        deadline,
        &expected,
        HINT_BINARY,
        misdirected,
    )
}

/// Send `payload` once from a new socket and judge the one reply: missing
/// (`missing_hint`, or each-sender's when it found replies going
/// elsewhere), from another port, or changed.
fn exchange_once(
    target: &Target,
    payload: &[u8],
    deadline: Instant,
    expected: &str,
    missing_hint: &'static str,
    misdirected: &Misdirected,
) -> Outcome {
    let socket = match client_socket(target.addr) {
        Ok(socket) => socket,
        Err(err) => return own_socket_failure(expected, &err),
    };
    if let Err(err) = socket.send_to(payload, target.addr) {
        return own_socket_failure(expected, &err);
    }
    let sent_at = Instant::now();
    let reply = match receive(target, &socket, reply_by(target, deadline, misdirected)) {
        Ok(reply) => reply,
        Err(err) => return own_socket_failure(expected, &err),
    };
    let Some(reply) = reply else {
        let (happened, hint) = no_reply(target, payload.len(), sent_at, misdirected);
        return Outcome::fail(expected, happened, hint.unwrap_or(missing_hint));
    };
    if reply.from != target.addr {
        return Outcome::fail(
            expected,
            format!(
                "the reply came from {}, not from {} where the datagram was sent",
                reply.from, target.addr
            ),
            HINT_WRONG_SOCKET,
        );
    }
    if reply.bytes != payload {
        let hint = if std::str::from_utf8(payload).is_ok() || related(&reply.bytes, payload) {
            HINT_CHANGED
        } else {
            missing_hint
        };
        return Outcome::fail(
            expected,
            format!(
                "the reply was {} instead: {}",
                text::bytes(reply.bytes.len()),
                show(&reply.bytes)
            ),
            hint,
        );
    }
    Outcome::pass(
        expected,
        format!(
            "{} bytes came back unchanged from {}",
            reply.bytes.len(),
            reply.from
        ),
    )
}

/// `each-sender`: clients A, B and C send in turn (A, B, C, A); each waits
/// for its own reply. Datagrams that reach the wrong client are noted; a
/// reply at the right client that came back changed, or came only after
/// netlab stopped waiting for it, is named as such, not as misdirected.
fn each_sender(target: Target, deadline: Instant, misdirected: &Misdirected) -> Outcome {
    let expected = "each of 3 clients gets the reply to its own datagrams, and none of the others'";
    let mut clients = Vec::new();
    for _ in 0..3 {
        match client_socket(target.addr) {
            Ok(socket) => clients.push(socket),
            Err(err) => return own_socket_failure(expected, &err),
        }
    }
    let names = ["A", "B", "C"];
    // Who sent which payload, so a misdelivered reply can be traced back.
    let turns = [0usize, 1, 2, 0];
    let payloads: Vec<Vec<u8>> = turns
        .iter()
        .enumerate()
        .map(|(turn, &client)| {
            format!("turn {} from client {}", turn + 1, names[client]).into_bytes()
        })
        .collect();
    let mut seen = Seen::new(&names, &payloads, &turns);
    for (turn, &client) in turns.iter().enumerate() {
        let socket = &clients[client];
        if let Err(err) = socket.send_to(&payloads[turn], target.addr) {
            return own_socket_failure(expected, &err);
        }
        let wait_until = deadline.min(Instant::now() + target.time(REPLY_WAIT));
        // Read this client's datagrams until its own reply comes.
        loop {
            match receive(&target, socket, wait_until) {
                Ok(Some(reply)) => {
                    if seen.take(client, &reply, Some(turn)) {
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => return own_socket_failure(expected, &err),
            }
        }
        seen.waited_for(turn);
    }
    // A reply sent to the wrong client, or a late one, may still be on its
    // way: look at every socket, longer when a turn has no reply yet (a
    // slow server's replies are late, not lost).
    let settle = if seen.all_replied() { 0.1 } else { REPLY_WAIT };
    let settle_until = deadline.min(Instant::now() + target.time(settle));
    loop {
        let mut quiet = true;
        for (client, socket) in clients.iter().enumerate() {
            let slice = settle_until.min(Instant::now() + Duration::from_millis(20));
            if let Ok(Some(reply)) = receive(&target, socket, slice) {
                seen.take(client, &reply, None);
                quiet = false;
            }
        }
        if passed(settle_until) || (quiet && seen.all_replied() && settle > 0.5) {
            break;
        }
        if quiet && !target.alive() {
            break;
        }
    }
    let problems = seen.problems(&clients, &payloads);
    if problems.is_empty() {
        return Outcome::pass(
            expected,
            "4 datagrams from 3 client sockets (A, B, C, A): each reply went to its sender only",
        );
    }
    let listed: Vec<String> = problems
        .iter()
        .map(|(problem, count)| match count {
            1 => problem.clone(),
            n => format!("{problem} ({n} times)"),
        })
        .collect();
    let happened = match target.ended() {
        Some(ended) => format!("{}; {ended}", listed.join("; ")),
        None => listed.join("; "),
    };
    if target.ended().is_some() {
        return Outcome::fail(expected, happened, HINT_EACH_SENDER);
    }
    // The server lives: is its socket connect()ed to one peer?
    let (connected, fact) = connection_fact(&target);
    let lost = seen.never_replied() > 0;
    let hint = if connected {
        HINT_CONNECTED
    } else if seen.elsewhere || lost {
        HINT_EACH_SENDER
    } else if seen.changed > 0 {
        HINT_CHANGED
    } else if seen.late > 0 {
        HINT_LATE
    } else if seen.copies > 0 && seen.notes.len() == seen.distinct_copies() {
        HINT_ONE_REPLY
    } else {
        HINT_EACH_SENDER
    };
    // Only replies that really go elsewhere (or never come) make the later
    // probes point back here: a changed or late reply still reaches them.
    if connected || seen.elsewhere || lost {
        let why = if connected {
            "your socket is connect()ed to one client, so the kernel delivers it nothing from other addresses"
        } else {
            "your server's replies do not reach the clients that sent the datagrams"
        };
        let _ = misdirected.set(Elsewhere { why, hint });
    }
    Outcome::fail(expected, happened, hint).with_fact(fact)
}

/// What each-sender's clients received, turn by turn.
struct Seen<'a> {
    names: &'a [&'a str],
    payloads: &'a [Vec<u8>],
    turns: &'a [usize],
    /// Per turn: how its reply came (None: not yet).
    replies: Vec<Option<Reply>>,
    /// Turns whose own wait is over (a reply after that is late).
    waited: usize,
    /// Stray datagrams, second copies: described, with their counts.
    notes: Vec<(String, usize)>,
    /// A reply reached a client that did not send its datagram.
    elsewhere: bool,
    /// A client got its own reply a second time.
    copies: usize,
    changed: usize,
    late: usize,
}

/// How one turn's reply came to its own client.
enum Reply {
    OnTime,
    Late,
    Changed(Vec<u8>),
}

impl<'a> Seen<'a> {
    fn new(names: &'a [&'a str], payloads: &'a [Vec<u8>], turns: &'a [usize]) -> Self {
        Seen {
            names,
            payloads,
            turns,
            replies: payloads.iter().map(|_| None).collect(),
            waited: 0,
            notes: Vec::new(),
            elsewhere: false,
            copies: 0,
            changed: 0,
            late: 0,
        }
    }

    /// Turn `turn`'s own wait is over.
    fn waited_for(&mut self, turn: usize) {
        self.waited = self.waited.max(turn + 1);
    }

    fn all_replied(&self) -> bool {
        self.replies.iter().all(Option::is_some)
    }

    fn never_replied(&self) -> usize {
        self.replies.iter().filter(|r| r.is_none()).count()
    }

    /// Client `at` received `reply` while waiting for turn `waiting` (None
    /// while settling). True when it is the reply to that turn, changed or
    /// not.
    fn take(&mut self, at: usize, reply: &Datagram, waiting: Option<usize>) -> bool {
        let exact = self.payloads.iter().position(|p| *p == reply.bytes);
        let related = exact.or_else(|| self.payloads.iter().position(|p| related(&reply.bytes, p)));
        let Some(turn) = related else {
            self.note(format!(
                "client {} received {}, which none of the clients sent",
                self.names[at],
                show(&reply.bytes)
            ));
            return false;
        };
        if self.turns[turn] != at {
            self.elsewhere = true;
            self.note(format!(
                "client {} received {}, the reply meant for client {}",
                self.names[at],
                show(&reply.bytes),
                self.names[self.turns[turn]]
            ));
            return false;
        }
        if self.replies[turn].is_some() {
            self.copies += 1;
            self.note(format!(
                "client {} received {} a second time",
                self.names[at],
                show(&reply.bytes)
            ));
            return false;
        }
        let this_turn = waiting == Some(turn) && turn >= self.waited;
        if exact.is_none() {
            self.changed += 1;
            self.replies[turn] = Some(Reply::Changed(reply.bytes.clone()));
        } else if this_turn {
            self.replies[turn] = Some(Reply::OnTime);
        } else {
            self.late += 1;
            self.replies[turn] = Some(Reply::Late);
        }
        this_turn
    }

    /// How many of the notes are second copies (each listed once).
    fn distinct_copies(&self) -> usize {
        self.notes
            .iter()
            .filter(|(problem, _)| problem.ends_with(" a second time"))
            .count()
    }

    fn note(&mut self, problem: String) {
        note(&mut self.notes, problem);
    }

    /// Every problem, turn by turn, then the strays.
    fn problems(&self, clients: &[UdpSocket], payloads: &[Vec<u8>]) -> Vec<(String, usize)> {
        let mut problems = Vec::new();
        for (turn, reply) in self.replies.iter().enumerate() {
            let client = self.turns[turn];
            let name = self.names[client];
            let sent = show(&payloads[turn]);
            match reply {
                Some(Reply::OnTime) => {}
                Some(Reply::Late) => problems.push((
                    format!(
                        "client {name}'s reply to {sent} came only after netlab had stopped waiting for it ({REPLY_WAIT:.1} s)"
                    ),
                    1,
                )),
                Some(Reply::Changed(bytes)) => problems.push((
                    format!(
                        "client {name}'s reply to {sent} came back changed: {} ({} instead of {})",
                        show(bytes),
                        text::bytes(bytes.len()),
                        payloads[turn].len()
                    ),
                    1,
                )),
                None => problems.push((
                    format!(
                        "client {name} ({}) got no reply to {sent}",
                        local(&clients[client])
                    ),
                    1,
                )),
            }
        }
        problems.extend(self.notes.iter().cloned());
        problems
    }
}

/// Is `reply` the datagram `sent` with bytes added (a newline, a prefix)
/// or a few taken off (a strip()), rather than some other datagram?
fn related(reply: &[u8], sent: &[u8]) -> bool {
    contains(reply, sent) || (reply.len() * 2 >= sent.len() && contains(sent, reply))
}

/// Does `haystack` hold `needle` (not empty) somewhere?
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack.windows(needle.len()).any(|w| w == needle)
}

/// How long to wait for a reply: the probe's whole time, or
/// MISDIRECTED_WAIT when each-sender already found replies that never
/// reach their senders (a reply that goes elsewhere will not come later).
fn reply_by(target: &Target, deadline: Instant, misdirected: &Misdirected) -> Instant {
    match misdirected.get() {
        Some(_) => deadline.min(Instant::now() + target.time(MISDIRECTED_WAIT)),
        None => deadline,
    }
}

/// Is the program's socket connect()ed? Read from its line in
/// /proc/net/udp (a non-zero remote address), as a fact for the report.
fn connection_fact(target: &Target) -> (bool, Fact) {
    let subject = "your program's UDP socket";
    let source = proc_source(target);
    let Some(inode) = target.socket_inode else {
        return (
            false,
            Fact::unavailable(subject, "remote", source, "its inode is unknown"),
        );
    };
    match udp::udp_socket(inode) {
        Ok(Some(entry)) if entry.connected => (
            true,
            Fact::new(
                subject,
                "remote",
                json!(entry.remote.to_string()),
                source,
                format!(
                    "your socket {} is connect()ed to {}, so the kernel delivers it nothing from other addresses",
                    entry.local, entry.remote
                ),
            ),
        ),
        Ok(Some(entry)) => (
            false,
            Fact::new(
                subject,
                "remote",
                json!(entry.remote.to_string()),
                source,
                format!(
                    "your socket {} is not connect()ed (remote {}): it receives from every address",
                    entry.local, entry.remote
                ),
            ),
        ),
        Ok(None) => (
            false,
            Fact::unavailable(
                subject,
                "remote",
                source,
                format!("no UDP socket with inode {inode} is in the table"),
            ),
        ),
        Err(err) => (
            false,
            Fact::unavailable(subject, "remote", source, err),
        ),
    }
}

/// Add a problem to the list. A repeat (a program that sends the same
/// wrong datagram again and again) is counted, not listed again.
fn note(problems: &mut Vec<(String, usize)>, problem: String) {
    if let Some((_, count)) = problems.iter_mut().find(|(known, _)| *known == problem) {
        *count += 1;
    } else if problems.len() < KEEP {
        problems.push((problem, 1));
    }
}

/// `empty`: a 0-byte datagram, then an ordinary one. A live server echoes
/// the second (after an empty reply to the first, or none).
fn empty(target: Target, deadline: Instant, misdirected: &Misdirected) -> Outcome {
    let expected = "the server goes on after an empty datagram: the next datagram is echoed";
    let follow_up = b"still there after the empty datagram?";
    let sent_at = Instant::now();
    let until = reply_by(&target, deadline, misdirected);
    let after = match odd_then_ordinary(&target, b"", follow_up, until) {
        Ok(result) => result,
        Err(err) => return own_socket_failure(expected, &err),
    };
    let what = "the empty datagram";
    if let Some((happened, hint)) =
        after_odd_failure(&target, &after, what, follow_up.len(), sent_at, misdirected)
    {
        return Outcome::fail(expected, happened, hint.unwrap_or(HINT_EMPTY));
    }
    let happened = match after.before.first() {
        Some(reply) if reply.is_empty() => {
            "it answered the empty datagram with an empty one (echo of nothing), then echoed the next"
                .to_string()
        }
        Some(reply) => format!(
            "it answered the empty datagram with {}, then echoed the next",
            show(reply)
        ),
        None => {
            "it sent nothing back for the empty datagram (fine: there was nothing to echo), then echoed the next"
                .to_string()
        }
    };
    Outcome::pass(expected, happened)
}

/// `large`: 60,000 bytes, then an ordinary datagram.
fn large(target: Target, deadline: Instant, misdirected: &Misdirected) -> Outcome {
    let expected = format!(
        "the server survives a {LARGE_TEXT}-byte datagram (all of it, or the part its buffer holds, comes back) and echoes the next"
    );
    // A pattern whose every byte says where it is, so a cut is visible.
    let payload: Vec<u8> = (0..)
        .flat_map(|n: u32| format!("[{:05}]", n * 7).into_bytes())
        .take(LARGE)
        .collect();
    let follow_up = b"still there after the large datagram?";
    let sent_at = Instant::now();
    let until = reply_by(&target, deadline, misdirected);
    let after = match odd_then_ordinary(&target, &payload, follow_up, until) {
        Ok(result) => result,
        Err(err) => return own_socket_failure(&expected, &err),
    };
    let what = format!("the {LARGE_TEXT}-byte datagram");
    if let Some((happened, hint)) = after_odd_failure(
        &target,
        &after,
        &what,
        follow_up.len(),
        sent_at,
        misdirected,
    ) {
        return Outcome::fail(expected, happened, hint.unwrap_or(HINT_LARGE));
    }
    let Some(reply) = after.before.first() else {
        // Dropping a datagram too large to echo whole is a server's right
        // (the issue asks only that it survive); the report says so.
        return Outcome::pass(
            expected,
            format!(
                "nothing came back for the {LARGE_TEXT}-byte datagram, and the next one was echoed: your server dropped it and went on serving"
            ),
        );
    };
    if reply.len() == LARGE && *reply == payload {
        return Outcome::pass(
            expected,
            format!("all {LARGE_TEXT} bytes came back: your buffer holds the whole datagram"),
        );
    }
    if reply.len() < LARGE && payload.starts_with(reply) {
        return Outcome::pass(
            expected,
            format!(
                "the first {} of {LARGE_TEXT} bytes came back, then the next datagram was echoed: your recvfrom() buffer holds {} bytes, and the kernel discarded the other {} bytes of that datagram (UDP keeps no rest for the next call)",
                reply.len(),
                reply.len(),
                LARGE - reply.len()
            ),
        );
    }
    if reply.len() <= REFUSAL_MAX && !payload.starts_with(&reply[..reply.len().min(7)]) {
        // A short answer that is no part of the datagram: a refusal
        // ("too big"), a server's right too.
        return Outcome::pass(
            expected,
            format!(
                "your server answered the {LARGE_TEXT}-byte datagram with {} instead of an echo (a refusal), and echoed the next one",
                show(reply)
            ),
        );
    }
    Outcome::fail(
        expected,
        format!(
            "{} bytes came back, and they are not the start of what was sent: {}",
            reply.len(),
            show(reply)
        ),
        HINT_CHANGED,
    )
}

/// What came back after `odd` and then `ordinary` were sent.
struct AfterOdd {
    /// The replies that came before the one to `ordinary` (to `odd`).
    before: Vec<Vec<u8>>,
    /// How the reply to `ordinary` came.
    answer: Answer,
    /// Datagrams the kernel dropped at the program's socket while `ordinary`
    /// went unanswered (/proc/net/udp), when that could be read.
    dropped: Option<u64>,
    /// `ordinary` was sent a second time after a drop.
    resent: bool,
}

enum Answer {
    Echoed,
    /// It came, with bytes added or taken off.
    Changed(Vec<u8>),
    Missing,
}

/// Send `odd`, then `ordinary`, from one socket, and read until the echo
/// of `ordinary` comes. `ordinary` goes after the reply to `odd`, or
/// after ODD_GAP: sent back to back, a large `odd` waiting in a small
/// receive buffer makes the kernel drop `ordinary`. When no reply came to
/// `ordinary` and the socket's drops counter rose, it is sent once more.
/// One socket and one server keep the order: a reply to `odd` arrives
/// before the reply to `ordinary`.
fn odd_then_ordinary(
    target: &Target,
    odd: &[u8],
    ordinary: &[u8],
    deadline: Instant,
) -> io::Result<AfterOdd> {
    let drops = || {
        target
            .socket_inode
            .and_then(|inode| udp::udp_socket(inode).ok().flatten())
            .map(|entry| entry.drops)
    };
    let socket = client_socket(target.addr)?;
    socket.send_to(odd, target.addr)?;
    let mut before = Vec::new();
    let gap = deadline.min(Instant::now() + target.time(ODD_GAP));
    if let Some(reply) = receive(target, &socket, gap)? {
        before.push(reply.bytes);
    }
    let drops_before = drops();
    socket.send_to(ordinary, target.addr)?;
    let mut resent = false;
    let mut until = deadline.min(Instant::now() + target.time(REPLY_WAIT));
    loop {
        while let Some(reply) = receive(target, &socket, until)? {
            if reply.bytes == ordinary {
                return Ok(AfterOdd {
                    before,
                    answer: Answer::Echoed,
                    dropped: None,
                    resent,
                });
            }
            if related(&reply.bytes, ordinary) && !related(&reply.bytes, odd) {
                return Ok(AfterOdd {
                    before,
                    answer: Answer::Changed(reply.bytes),
                    dropped: None,
                    resent,
                });
            }
            if before.len() < KEEP {
                before.push(reply.bytes);
            }
        }
        if until >= deadline || !target.alive() {
            break;
        }
        let dropped = match (drops_before, drops()) {
            (Some(was), Some(now)) => now.saturating_sub(was),
            _ => 0,
        };
        if dropped > 0 && !resent {
            socket.send_to(ordinary, target.addr)?;
            resent = true;
        }
        until = deadline;
    }
    let dropped = match (drops_before, drops()) {
        (Some(was), Some(now)) => Some(now.saturating_sub(was)),
        _ => None,
    };
    Ok(AfterOdd {
        before,
        answer: Answer::Missing,
        dropped,
        resent,
    })
}

/// The text and hint when the reply to the follow-up was not a plain echo,
/// None when it was.
fn after_odd_failure(
    target: &Target,
    after: &AfterOdd,
    what: &str,
    follow_up: usize,
    sent_at: Instant,
    misdirected: &Misdirected,
) -> Option<(String, Option<&'static str>)> {
    match &after.answer {
        Answer::Echoed => None,
        Answer::Changed(bytes) => Some((
            format!(
                "your server went on after {what}, but the reply to the {follow_up}-byte datagram came back changed: {} ({})",
                show(bytes),
                text::bytes(bytes.len())
            ),
            Some(HINT_CHANGED),
        )),
        Answer::Missing => {
            let (happened, hint) = no_reply(target, follow_up, sent_at, misdirected);
            let happened = format!("after {what}, {happened}");
            match after.dropped {
                Some(dropped) if dropped > 0 && target.ended().is_none() => Some((
                    format!(
                        "{happened}; the kernel dropped {dropped} datagram(s) at your socket meanwhile (/proc/net/{}): its receive buffer was full{}",
                        udp_table(target),
                        if after.resent { ", even when netlab sent it a second time" } else { "" }
                    ),
                    Some(HINT_DROPPED),
                )),
                _ => Some((happened, hint)),
            }
        }
    }
}

/// `burst`: BURST numbered datagrams sent back to back, then the replies
/// counted. The server's `drops` counter is read before and after.
fn burst(target: Target, deadline: Instant, misdirected: &Misdirected) -> Outcome {
    let expected = format!("all {BURST} datagrams of a burst come back");
    let socket = match client_socket(target.addr) {
        Ok(socket) => socket,
        Err(err) => return own_socket_failure(&expected, &err),
    };
    let drops_before = target
        .socket_inode
        .and_then(|inode| udp::udp_socket(inode).ok().flatten());
    let payloads: Vec<Vec<u8>> = (0..BURST)
        .map(|n| {
            format!("burst datagram {n:03} of {BURST}, padded to about 64 bytes ....").into_bytes()
        })
        .collect();
    for payload in &payloads {
        if let Err(err) = socket.send_to(payload, target.addr) {
            return own_socket_failure(&expected, &err);
        }
    }
    // Collect replies until all are in, or none has come for REPLY_WAIT.
    let mut came_back = BTreeSet::new();
    let mut changed: Option<Vec<u8>> = None;
    let mut changed_count = 0;
    let quiet = match misdirected.get() {
        Some(_) => MISDIRECTED_WAIT,
        None => REPLY_WAIT,
    };
    while came_back.len() < BURST && !passed(deadline) {
        let quiet_until = deadline.min(Instant::now() + target.time(quiet));
        match receive(&target, &socket, quiet_until) {
            Ok(Some(reply)) => {
                if let Some(n) = payloads.iter().position(|p| *p == reply.bytes) {
                    came_back.insert(n);
                } else if payloads.iter().any(|p| related(&reply.bytes, p)) {
                    changed_count += 1;
                    changed.get_or_insert(reply.bytes);
                }
            }
            Ok(None) => break,
            Err(err) => return own_socket_failure(&expected, &err),
        }
    }
    let facts = burst_facts(&target, drops_before.as_ref(), &socket);
    let count = came_back.len();
    if count == BURST {
        return Outcome::pass(expected, format!("{count} of {BURST} replies came back"))
            .with_facts(facts);
    }
    let missing: Vec<String> = (0..BURST)
        .filter(|n| !came_back.contains(n))
        .take(10)
        .map(|n| format!("{n:03}"))
        .collect();
    let happened = format!(
        "{count} of {BURST} replies came back; missing numbers include {}",
        missing.join(", ")
    );
    if let Some(example) = changed {
        return Outcome::fail(
            expected,
            format!(
                "{happened}; {changed_count} came back changed, such as {}",
                show(&example)
            ),
            HINT_CHANGED,
        )
        .with_facts(facts);
    }
    if count == 0 {
        if let (Some(elsewhere), true) = (misdirected.get(), target.alive()) {
            return Outcome::fail(
                expected,
                format!("no reply came: see each-sender ({})", elsewhere.why),
                elsewhere.hint,
            )
            .with_facts(facts);
        }
        return Outcome::fail(expected, happened, HINT_BURST_NONE).with_facts(facts);
    }
    Outcome::warn(expected, happened, HINT_BURST_LOST).with_facts(facts)
}

/// The kernel's side of a burst: datagrams dropped at the server's socket
/// during it (/proc/net/udp) and at ours (SO_MEMINFO).
fn burst_facts(target: &Target, before: Option<&UdpEntry>, ours: &UdpSocket) -> Vec<Fact> {
    let mut facts = Vec::new();
    let subject = "your program's UDP socket";
    let source = proc_source(target);
    match (before, target.socket_inode.map(udp::udp_socket)) {
        (Some(before), Some(Ok(Some(after)))) => {
            let dropped = after.drops.saturating_sub(before.drops);
            let why = if dropped > 0 {
                " (its receive buffer was full)"
            } else {
                ""
            };
            facts.push(Fact::new(
                subject,
                "drops",
                json!(dropped),
                source,
                format!(
                    "the kernel dropped {dropped} datagram(s) at your socket during the burst{why}; {} in all since it was made",
                    after.drops
                ),
            ));
        }
        (_, Some(Err(err))) => facts.push(Fact::unavailable(subject, "drops", source, err)),
        _ => facts.push(Fact::unavailable(
            subject,
            "drops",
            source,
            "the socket is not in the table",
        )),
    }
    match udp::socket_memory(ours.as_fd()) {
        Ok(memory) => facts.push(Fact::new(
            "netlab's probe socket",
            "drops",
            json!(memory.drops),
            "getsockopt(SO_MEMINFO)",
            format!(
                "the kernel dropped {} reply datagram(s) at netlab's own socket",
                memory.drops
            ),
        )),
        Err(errno) => facts.push(Fact::unavailable(
            "netlab's probe socket",
            "drops",
            "getsockopt(SO_MEMINFO)",
            errno,
        )),
    }
    facts
}

/// `still-serving`: one more echo after everything, and the socket's line
/// in /proc/net/udp.
fn still_serving(target: Target, deadline: Instant, misdirected: &Misdirected) -> Outcome {
    let payload = b"one more, after all the odd ones";
    let expected = format!("{} comes back unchanged", show(payload));
    let outcome = exchange_once(
        &target,
        payload,
        deadline,
        &expected,
        HINT_STOPPED,
        misdirected,
    );
    outcome.with_fact(socket_fact(&target))
}

/// "udp" or "udp6": the table in /proc/net that lists the program's socket.
fn proc_source(target: &Target) -> &'static str {
    if target.addr.is_ipv6() {
        "/proc/net/udp6"
    } else {
        "/proc/net/udp"
    }
}

/// "udp" or "udp6", the same table's name.
fn udp_table(target: &Target) -> &'static str {
    if target.addr.is_ipv6() {
        "udp6"
    } else {
        "udp"
    }
}

/// The program's socket as /proc/net/udp shows it now.
pub(super) fn socket_fact(target: &Target) -> Fact {
    let subject = "your program's UDP socket";
    let source = proc_source(target);
    let Some(inode) = target.socket_inode else {
        return Fact::unavailable(subject, "udp_socket", source, "its inode is unknown");
    };
    match udp::udp_socket(inode) {
        Ok(Some(entry)) => Fact::new(
            subject,
            "udp_socket",
            json!({ "local": entry.local.to_string(), "rx_queue": entry.rx_queue, "drops": entry.drops }),
            source,
            format!(
                "socket {} (inode {inode}): {} bytes waiting to be read, {} datagram(s) dropped since it was made",
                entry.local, entry.rx_queue, entry.drops
            ),
        ),
        Ok(None) => Fact::new(
            subject,
            "udp_socket",
            serde_json::Value::Null,
            source,
            format!("no UDP socket with inode {inode} is left: your program closed the socket it bound"),
        ),
        Err(err) => Fact::unavailable(subject, "udp_socket", source, err),
    }
}

/// One datagram received, and who sent it.
pub(super) struct Datagram {
    pub bytes: Vec<u8>,
    pub from: SocketAddr,
}

/// A UDP socket for a probe, on the loopback address of the same family as
/// the program's (127.0.0.1 or ::1), on a port the kernel picks.
pub(super) fn client_socket(server: SocketAddr) -> io::Result<UdpSocket> {
    let ip = match server.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    UdpSocket::bind(SocketAddr::new(ip, 0))
}

/// The next datagram from anyone, or None when `until` passes first or
/// the program has exited (a dead program sends nothing more, so there is
/// no point waiting out the deadline).
pub(super) fn receive(
    target: &Target,
    socket: &UdpSocket,
    until: Instant,
) -> io::Result<Option<Datagram>> {
    // 65,536 bytes: room for the largest datagram, so nothing is cut here.
    let mut buf = vec![0u8; 65_536];
    loop {
        if passed(until) || !target.alive() {
            return Ok(None);
        }
        // Wait in slices, to look at the program between them.
        let slice = left(until).min(Duration::from_millis(100));
        socket.set_read_timeout(Some(slice))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                return Ok(Some(Datagram {
                    bytes: buf[..n].to_vec(),
                    from,
                }))
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            // An ICMP error from an earlier datagram (the program's port
            // closed): not a datagram, and not netlab's failure.
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(err) => return Err(err),
        }
    }
}

/// "no reply came to the 37-byte datagram within 1.0 s", or, when the
/// program has exited, how it ended. When each-sender found the replies
/// going elsewhere (and the program lives), the text points there, and
/// each-sender's hint comes with it, to take the place of the probe's.
fn no_reply(
    target: &Target,
    sent: usize,
    sent_at: Instant,
    misdirected: &Misdirected,
) -> (String, Option<&'static str>) {
    let waited = sent_at.elapsed().as_secs_f64();
    match (target.ended(), misdirected.get()) {
        (Some(ended), _) => (
            format!(
                "no reply came to the {sent}-byte datagram: {ended} ({waited:.1} s after it was sent)"
            ),
            None,
        ),
        (None, Some(elsewhere)) => (
            format!(
                "no reply came to the {sent}-byte datagram within {waited:.1} s: see each-sender ({})",
                elsewhere.why
            ),
            Some(elsewhere.hint),
        ),
        (None, None) => (
            format!(
                "no reply came to the {sent}-byte datagram within {waited:.1} s, and your program is still running"
            ),
            None,
        ),
    }
}

/// The probe socket's own address, for the report.
fn local(socket: &UdpSocket) -> String {
    socket
        .local_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_else(|_| "unknown address".into())
}

/// netlab's own socket failed: not the student's fault, said so.
fn own_socket_failure(expected: &str, err: &io::Error) -> Outcome {
    Outcome::fail(
        expected,
        format!("netlab's own UDP socket failed: {err}"),
        HINT_OWN_SOCKET,
    )
}
