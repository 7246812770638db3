//! # The `framing` exercise: a server for length-prefixed messages
//!
//! The protocol (lesson: `netlab lesson sticky-packets`, "Exercise: a
//! length-prefixed server"): every message is a 4-byte unsigned length in
//! network byte order (`struct.pack("!I", n)`) followed by that many bytes.
//! The server answers each message with one message holding the same bytes
//! in reverse order, so an answer proves the server found the message's
//! borders: a plain byte echo returns the stream unchanged and fails. A
//! length of 0 is an empty message (answered with an empty one). A length
//! above 1 MiB (1,048,576) is refused: the server closes that connection
//! without trying to read the message, and goes on serving other clients.
//!
//! TCP keeps no borders between writes (the sticky-packets lesson), so the
//! probes cut the stream the ways a network may: several messages in one
//! write, a message (and its 4-byte header) in pieces with pauses, 1 MiB at
//! once (short reads and writes), 500 messages cut at random points. Each
//! probe is its own connection. `close-wait` reads /proc/net/tcp after the
//! client leaves: the server's end must not stay in CLOSE_WAIT.
//!
//! Try it: `netlab check framing -- python3 framing_server.py {port}`.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

use super::net::{self, End};
use super::session::{Exercise, Outcome, ProbeInfo, Role, Session, Status, Target};
use crate::kernel::{proc_net, TcpState};
use crate::narrate::Fact;

pub static EXERCISE: Exercise = Exercise {
    name: "framing",
    summary: "A TCP server for length-prefixed messages: each message answered whole, however the stream cuts it.",
    lesson: "sticky-packets",
    role: Role::TcpServer,
    example: "python3 framing_server.py {port}",
    probes: PROBES,
    prepare: None,
    run,
};

const PROBES: &[ProbeInfo] = &[
    ProbeInfo {
        name: "one-message",
        checks: "one message in one write is answered with its bytes reversed",
    },
    ProbeInfo {
        name: "merged",
        checks: "three messages in one write get three answers, in order",
    },
    ProbeInfo {
        name: "split-message",
        checks: "a message written in pieces, with pauses between them, is answered whole",
    },
    ProbeInfo {
        name: "empty",
        checks: "an empty message (length 0) gets an empty answer, and the connection goes on",
    },
    ProbeInfo {
        name: "large",
        checks: "a 1 MiB message (many short reads and writes) is answered whole",
    },
    ProbeInfo {
        name: "pipelined",
        checks: "500 messages, the stream cut at random points, answered whole and in order",
    },
    ProbeInfo {
        name: "close-wait",
        checks: "the server closes its end when the client leaves (no CLOSE_WAIT in /proc/net/tcp)",
    },
    ProbeInfo {
        name: "split-header",
        checks: "a 4-byte length that arrives as 1 byte, then 3, is read whole",
    },
    ProbeInfo {
        name: "oversized",
        checks: "a length above 1 MiB closes that connection, and the next client is served",
    },
];

/// The largest message the protocol allows: 1 MiB.
const MAX_MESSAGE: usize = 1 << 20;
/// The pause between the pieces of a split message.
const PAUSE: Duration = Duration::from_millis(100);
/// After the last answer netlab half-closes and reads on, this long at
/// most, for bytes that should not be there. A server sends an answer in
/// one go, so anything it adds comes with it; a correct server closes on
/// netlab's FIN at once, so the wait costs only servers that do not close.
const AFTER_WAIT: Duration = Duration::from_millis(200);

const HINT_ONE: &str = "Read 4 bytes, unpack them with struct.unpack(\"!I\", ...) to get the length, read exactly that many bytes, and send struct.pack(\"!I\", len(answer)) + answer, where answer is the message reversed.";
const HINT_ECHO: &str = "Answer each message with its bytes reversed (message[::-1]) behind its own 4-byte length: an answer equal to the message means the bytes went straight back without the frames being read.";
const HINT_MERGED: &str = "One recv() can return several messages glued together: read exactly 4 bytes, then exactly the length, with a recv_exactly() loop, so no byte of the next message is lost.";
const HINT_SPLIT: &str = "One recv() may return only part of a message: keep calling recv() until you have as many bytes as the length prefix says.";
const HINT_EMPTY: &str = "A length of 0 is a valid, empty message: answer it with 4 zero bytes, and do not take its empty payload (b\"\") for the client closing.";
const HINT_LARGE: &str = "A 1 MiB message takes many recv() calls and its answer many send()s: loop until every byte is read, and send the answer with sendall().";
const HINT_LIMIT: &str = "Exactly 1,048,576 bytes is allowed: refuse only a length above 1 MiB (length > 1048576, not >=), and read a 1 MiB message like any other.";
const HINT_BYTE_ORDER: &str = "The server closed straight after the length, as if it had read a length above 1 MiB: check the byte order, the length is big-endian, struct.unpack(\"!I\", ...), not \"<I\" or the machine's own \"I\".";
const HINT_PIPELINED: &str = "Keep the bytes that follow one message for the next one, and answer messages in the order they came: hundreds may arrive in one stream, cut anywhere.";
const HINT_CLOSE_WAIT: &str = "When recv() returns b\"\" the client has closed: close() the connection's socket too, or it stays in CLOSE_WAIT and keeps its descriptor.";
const HINT_SPLIT_HEADER: &str = "recv(4) may return fewer than 4 bytes: read the length prefix with the same recv_exactly() loop as the message itself.";
const HINT_OVERSIZED: &str = "Right after unpacking the length, refuse anything above 1 MiB (1048576 bytes): close that connection without reading the message and without answering it (the protocol has no error message), and keep serving the others.";
const HINT_EXTRA: &str = "Send each answer as exactly struct.pack(\"!I\", len(answer)) + answer and nothing more: no newline or other byte between answers, or the client reads it as the start of the next length.";
const HINT_TWICE: &str = "Send each answer once: one sendall() of struct.pack(\"!I\", len(answer)) + answer per message, and nothing else.";
const HINT_NOTHING_BEFORE: &str = "Send nothing but answers: no greeting or line before the first one, since the client reads the first 4 bytes it gets as the length of the first answer.";
const HINT_NEXT_CLIENT: &str = "After refusing a message, close only that connection and go back to accept(): the next client must still be served.";

fn run(session: &mut Session) {
    if session.probe("one-message", 2.0, |target, deadline| {
        let message = b"hello, framing!".to_vec();
        let writes = vec![Piece::now(frame(&message))];
        let result = exchange(target.addr, writes, &[message], deadline);
        if let Err(Trouble::Ended { answered: 0, got: 0, end: End::Eof | End::Reset, .. }) = result {
            // A length of 15 refused at once, while an empty message is
            // answered: the length was read in the wrong byte order.
            if closes_after_header(target.addr, 15, deadline)
                && !closes_after_header(target.addr, 0, deadline)
            {
                return Outcome::fail(
                    "each message answered with one message holding its bytes reversed, in order",
                    "the server closed the connection without answering; a second connection that sent only the length, 15, was closed at once, before any byte of the message, as if the length were above 1 MiB",
                    HINT_BYTE_ORDER,
                );
            }
        }
        judge(result, HINT_ONE)
    }) != Status::Pass
    {
        for info in &PROBES[1..] {
            session.skip(info.name, "not run: one message must be answered first");
        }
        return;
    }

    session.probe("merged", 1.5, |target, deadline| {
        let messages: Vec<Vec<u8>> = ["first message", "the second one", "third"]
            .iter()
            .map(|text| text.as_bytes().to_vec())
            .collect();
        let all: Vec<u8> = messages.iter().flat_map(|m| frame(m)).collect();
        judge(
            exchange(target.addr, vec![Piece::now(all)], &messages, deadline),
            HINT_MERGED,
        )
    });

    session.probe("split-message", 2.0, |target, deadline| {
        // The header and 3 bytes, then the rest in two pieces.
        let message = b"a message in three pieces".to_vec();
        let bytes = frame(&message);
        let writes = vec![
            Piece::now(bytes[..7].to_vec()),
            Piece::after(PAUSE, bytes[7..15].to_vec()),
            Piece::after(PAUSE, bytes[15..].to_vec()),
        ];
        judge(
            exchange(target.addr, writes, &[message], deadline),
            HINT_SPLIT,
        )
    });

    session.probe("empty", 2.0, |target, deadline| {
        // The empty message alone, then (once it is answered) another on
        // the same connection: an empty one must not end the conversation.
        let after = b"after the empty one".to_vec();
        let writes = vec![Piece::now(frame(b"")), Piece::after(PAUSE, frame(&after))];
        judge(
            exchange(target.addr, writes, &[Vec::new(), after], deadline),
            HINT_EMPTY,
        )
    });

    session.probe("large", 5.0, |target, deadline| {
        let message: Vec<u8> = (0..MAX_MESSAGE).map(|i| (i % 251) as u8).collect();
        let writes = vec![Piece::now(frame(&message))];
        let result = exchange(target.addr, writes, &[message], deadline);
        if let Err(Trouble::Ended { answered: 0, got: 0, end: End::Eof | End::Reset, .. }) = result {
            // Closed before any answer: did it refuse the length itself?
            if closes_after_header(target.addr, MAX_MESSAGE as u32, deadline) {
                return Outcome::fail(
                    "a message of exactly 1 MiB (1,048,576 bytes) is answered, its bytes reversed",
                    "the server closed the connection without answering; a second connection that sent only the length, 1048576, was closed at once, before any byte of the message: the server refused exactly 1 MiB",
                    HINT_LIMIT,
                );
            }
        }
        judge(result, HINT_LARGE)
    });

    session.probe("pipelined", 5.0, |target, deadline| {
        let (messages, writes) = pipelined_stream(500);
        judge(
            exchange(target.addr, writes, &messages, deadline),
            HINT_PIPELINED,
        )
    });

    session.probe("close-wait", 1.5, close_wait);

    session.probe("split-header", 2.0, |target, deadline| {
        let message = b"a header in two pieces".to_vec();
        let bytes = frame(&message);
        let writes = vec![
            Piece::now(bytes[..1].to_vec()),
            Piece::after(PAUSE, bytes[1..4].to_vec()),
            Piece::after(PAUSE, bytes[4..].to_vec()),
        ];
        judge(
            exchange(target.addr, writes, &[message], deadline),
            HINT_SPLIT_HEADER,
        )
    });

    session.probe("oversized", 2.5, oversized);
}

/// A message on the wire: its length (4 bytes, big-endian), then its bytes.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut bytes = (message.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(message);
    bytes
}

/// The answer the protocol asks for: the same bytes, in reverse order.
fn reversed(message: &[u8]) -> Vec<u8> {
    message.iter().rev().copied().collect()
}

/// One write netlab makes, after a pause.
struct Piece {
    pause: Duration,
    bytes: Vec<u8>,
}

impl Piece {
    fn now(bytes: Vec<u8>) -> Piece {
        Piece::after(Duration::ZERO, bytes)
    }

    fn after(pause: Duration, bytes: Vec<u8>) -> Piece {
        Piece { pause, bytes }
    }
}

/// How a conversation went wrong.
enum Trouble {
    Connect(String),
    /// `answered` answers were right; then the stream ended (or the time
    /// ran out) with `got` bytes of the next answer's `part`.
    Ended {
        answered: usize,
        end: End,
        part: &'static str,
        got: usize,
    },
    /// Answer `index` (0-based) was not the expected one.
    Wrong {
        index: usize,
        got: Vec<u8>,
        want: Vec<u8>,
        echoed: bool,
    },
    /// Answer `index` announced a length no answer can have; `header` is
    /// its 4 bytes as they came.
    TooLong {
        index: usize,
        header: [u8; 4],
    },
    /// All `answered` answers were right, but `extra` bytes followed the
    /// last one.
    Extra {
        answered: usize,
        extra: Vec<u8>,
        /// The extra bytes begin with the last answer again, whole.
        copy: bool,
    },
}

/// Connect, make the writes (in a thread of their own, so that a large
/// answer is read while netlab is still writing), and read one answer per
/// message in `messages`.
fn exchange(
    addr: SocketAddr,
    writes: Vec<Piece>,
    messages: &[Vec<u8>],
    deadline: Instant,
) -> Result<usize, Trouble> {
    let mut stream = net::connect(addr, deadline)
        .map_err(|err| Trouble::Connect(net::connect_failure(addr, &err)))?;
    let writer = stream.try_clone().ok().map(|mut out| {
        std::thread::spawn(move || {
            for piece in writes {
                std::thread::sleep(piece.pause.min(net::left(deadline)));
                if net::write_all(&mut out, &piece.bytes, deadline).1.is_some() {
                    return;
                }
            }
        })
    });
    let mut result = read_answers(&mut stream, messages, deadline);
    if let Ok(answered) = result {
        // Every byte netlab wrote has been answered, so the writer is done:
        // half-close, and read what else comes before the server closes.
        let _ = net::half_close(&stream);
        let by = deadline.min(Instant::now() + AFTER_WAIT);
        let (extra, _) = net::read_exact(&mut stream, usize::MAX, by);
        if !extra.is_empty() {
            let copy = answered > 0
                && messages.get(answered - 1).is_some_and(|message| {
                    let mut frame = (message.len() as u32).to_be_bytes().to_vec();
                    frame.extend(message.iter().rev());
                    extra.starts_with(&frame)
                });
            result = Err(Trouble::Extra {
                answered,
                extra,
                copy,
            });
        }
    }
    // The writer ends by the deadline at the latest (its writes time out);
    // shutting the socket down (which its copy of the descriptor shares)
    // ends a write blocked on a server that stopped reading at once.
    let _ = stream.shutdown(Shutdown::Both);
    drop(stream);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    result
}

/// Read one framed answer per message and compare it with the message reversed.
fn read_answers(
    stream: &mut TcpStream,
    messages: &[Vec<u8>],
    deadline: Instant,
) -> Result<usize, Trouble> {
    for (index, message) in messages.iter().enumerate() {
        let (header, end) = net::read_exact(stream, 4, deadline);
        if end != End::Complete {
            return Err(Trouble::Ended {
                answered: index,
                end,
                part: "length",
                got: header.len(),
            });
        }
        let header = [header[0], header[1], header[2], header[3]];
        let length = u32::from_be_bytes(header);
        if length as usize > MAX_MESSAGE {
            return Err(Trouble::TooLong { index, header });
        }
        let (answer, end) = net::read_exact(stream, length as usize, deadline);
        if end != End::Complete {
            return Err(Trouble::Ended {
                answered: index,
                end,
                part: "message",
                got: answer.len(),
            });
        }
        let want = reversed(message);
        if answer != want {
            let echoed = answer == *message;
            return Err(Trouble::Wrong {
                index,
                got: answer,
                want,
                echoed,
            });
        }
    }
    Ok(messages.len())
}

/// Turn a conversation into the probe's outcome; `hint` is the probe's own.
fn judge(result: Result<usize, Trouble>, hint: &'static str) -> Outcome {
    let expected = "each message answered with one message holding its bytes reversed, in order";
    match result {
        Ok(1) => Outcome::pass(expected, "the answer came whole, its bytes reversed"),
        Ok(count) => Outcome::pass(expected, format!("all {count} answers came whole and in order")),
        Err(Trouble::Connect(why)) => Outcome::fail(expected, why, hint),
        Err(Trouble::Ended { answered, end, part, got }) => Outcome::fail(
            expected,
            format!(
                "{answered} answer(s) came right; then, with {got} bytes of the next answer's {part}, {}",
                end.describe()
            ),
            hint,
        ),
        Err(Trouble::Wrong { index, got, want, echoed }) => Outcome::fail(
            expected,
            format!(
                "answer {} was {} bytes, {}, where {} bytes, {}, were expected{}",
                index + 1,
                got.len(),
                net::show(&got),
                want.len(),
                net::show(&want),
                if echoed { ": the message itself, not reversed" } else { "" }
            ),
            if echoed { HINT_ECHO } else { hint },
        ),
        Err(Trouble::TooLong { index, header }) => {
            let length = u32::from_be_bytes(header);
            let bytes = hex(&header);
            if index == 0 {
                // Text where the first length belongs: a greeting, or a
                // line, sent before the first answer.
                if header.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) {
                    return Outcome::fail(
                        expected,
                        format!(
                            "something came before the first answer: the 4 bytes read as its length were {bytes}, {} as text (a length of {length} bytes, more than any message here)",
                            net::show(&header)
                        ),
                        HINT_NOTHING_BEFORE,
                    );
                }
                return Outcome::fail(
                    expected,
                    format!("answer 1 announced a length of {length} bytes (its 4 bytes: {bytes}, {} as text), more than any message here", net::show(&header)),
                    hint,
                );
            }
            // The answers before it were right, whole and exactly as long
            // as they said: what stands where this length should be was
            // added after the previous answer.
            Outcome::fail(
                expected,
                format!(
                    "{index} answer(s) came right; then, where the length of answer {} should be, came {bytes}, a length of {length} bytes, more than any message here: bytes were added between the answers, after answer {index}",
                    index + 1
                ),
                HINT_EXTRA,
            )
        }
        Err(Trouble::Extra {
            answered,
            extra,
            copy: true,
        }) => Outcome::fail(
            expected,
            format!(
                "{}, then a second copy of {} ({} bytes: {})",
                if answered == 1 {
                    "the answer came whole, its bytes reversed".to_string()
                } else {
                    format!("all {answered} answers came whole and in order")
                },
                if answered == 1 { "it" } else { "the last one" },
                extra.len(),
                hex(&extra)
            ),
            HINT_TWICE,
        ),
        Err(Trouble::Extra { answered, extra, .. }) => {
            let count = extra.len();
            let bytes = if count == 1 { "byte" } else { "bytes" };
            let answers = if answered == 1 {
                format!("the answer came whole, its bytes reversed, but {count} {bytes} came after it")
            } else {
                format!("all {answered} answers came whole and in order, but {count} {bytes} came after the last one")
            };
            Outcome::fail(
                expected,
                format!("{answers}: {} ({}), where the protocol has nothing", hex(&extra), net::show(&extra)),
                HINT_EXTRA,
            )
        }
    }
}

/// Bytes as hex for the report ("0x0a 0x00"); at most 16, then "...".
fn hex(bytes: &[u8]) -> String {
    let mut shown: Vec<String> = bytes
        .iter()
        .take(16)
        .map(|b| format!("0x{b:02x}"))
        .collect();
    if bytes.len() > 16 {
        shown.push("...".to_string());
    }
    shown.join(" ")
}

/// 500 messages of up to about 2,000 bytes (each starting with its number, so an
/// answer out of order shows), written in chunks cut at random points.
fn pipelined_stream(count: usize) -> (Vec<Vec<u8>>, Vec<Piece>) {
    // A fixed xorshift generator: the same "random" stream on every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let messages: Vec<Vec<u8>> = (0..count)
        .map(|number| {
            let mut message = format!("#{number}:").into_bytes();
            let length = next(2001) as usize;
            message.extend((0..length).map(|_| next(256) as u8));
            message
        })
        .collect();
    let stream: Vec<u8> = messages.iter().flat_map(|m| frame(m)).collect();
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let size = 1 + next(3000) as usize;
        let end = (at + size).min(stream.len());
        pieces.push(Piece::now(stream[at..end].to_vec()));
        at = end;
    }
    (messages, pieces)
}

/// `close-wait`: one message, then netlab closes; the server's end of the
/// connection must leave CLOSE_WAIT (its close() sends FIN).
fn close_wait(target: Target, deadline: Instant) -> Outcome {
    let expected = "when the client closes, the server closes its end too (no CLOSE_WAIT)";
    let message = b"goodbye".to_vec();
    let mut stream = match net::connect(target.addr, deadline) {
        Ok(stream) => stream,
        Err(err) => {
            return Outcome::fail(
                expected,
                net::connect_failure(target.addr, &err),
                HINT_CLOSE_WAIT,
            )
        }
    };
    let (_, err) = net::write_all(&mut stream, &frame(&message), deadline);
    if let Some(err) = err {
        return Outcome::fail(
            expected,
            format!("netlab could not send its message: {err}"),
            HINT_CLOSE_WAIT,
        );
    }
    if let Err(trouble) = read_answers(&mut stream, &[message], deadline) {
        return judge(Err(trouble), HINT_CLOSE_WAIT);
    }
    let (Ok(ours), Ok(theirs)) = (stream.local_addr(), stream.peer_addr()) else {
        return Outcome::fail(
            expected,
            "netlab's socket lost its addresses",
            HINT_CLOSE_WAIT,
        );
    };
    drop(stream); // FIN to the server
    let started = Instant::now();
    loop {
        let (state, fact) = net::server_side_state_of(ours, theirs);
        let waited = started.elapsed().as_secs_f64();
        if state != Some(TcpState::CloseWait) {
            return Outcome::pass(
                expected,
                format!("the server closed its end {waited:.2} s after netlab closed"),
            )
            .with_fact(fact);
        }
        if net::passed(deadline) {
            return Outcome::fail(
                expected,
                format!(
                    "{waited:.1} s after netlab closed, the server's end was still in CLOSE_WAIT"
                ),
                HINT_CLOSE_WAIT,
            )
            .with_fact(fact);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `oversized`: a length of 0xFFFFFFFF must close that connection; then a
/// new client must be served.
fn oversized(target: Target, deadline: Instant) -> Outcome {
    let expected =
        "the server closes a connection that announces more than 1 MiB, and serves the next client";
    let mut stream = match net::connect(target.addr, deadline) {
        Ok(stream) => stream,
        Err(err) => {
            return Outcome::fail(
                expected,
                net::connect_failure(target.addr, &err),
                HINT_OVERSIZED,
            )
        }
    };
    // The length, and a few bytes of the "message": nowhere near 4 GB.
    let mut bytes = u32::MAX.to_be_bytes().to_vec();
    bytes.extend_from_slice(b"not 4 GB of data");
    let _ = net::write_all(&mut stream, &bytes, deadline);
    // Half of the time for the close, the rest for the next client.
    let sent_at = Instant::now();
    let close_by = sent_at + net::left(deadline) / 2;
    let (extra, end) = net::read_exact(&mut stream, usize::MAX, close_by);
    let how = match end {
        End::Eof => "closed the connection (FIN)",
        End::Reset => "reset the connection (RST)",
        _ if !target.alive() => {
            let ended = target.ended().unwrap_or_default();
            return Outcome::fail(
                expected,
                format!("after a length of {} bytes, {ended}", u32::MAX),
                HINT_OVERSIZED,
            );
        }
        _ => return still_open(&stream, sent_at, extra.len()),
    };
    drop(stream);
    if !extra.is_empty() {
        return Outcome::fail(
            expected,
            format!(
                "it answered a length of {} bytes with {} bytes, {}, before it {how}",
                u32::MAX,
                extra.len(),
                net::show(&extra)
            ),
            HINT_OVERSIZED,
        );
    }
    let message = b"the next client".to_vec();
    match exchange(
        target.addr,
        vec![Piece::now(frame(&message))],
        &[message],
        deadline,
    ) {
        Ok(_) => Outcome::pass(
            expected,
            format!("it {how} at once, and then answered the next client"),
        ),
        Err(trouble) => {
            let outcome = judge(Err(trouble), HINT_NEXT_CLIENT);
            Outcome::fail(
                expected,
                format!("it {how}, but then: {}", outcome.happened),
                HINT_NEXT_CLIENT,
            )
        }
    }
}

/// Send only a 4-byte `length` and wait briefly: does the server close at
/// once, without waiting for the message? (A correct server waits.)
fn closes_after_header(addr: SocketAddr, length: u32, deadline: Instant) -> bool {
    let Ok(mut stream) = net::connect(addr, deadline) else {
        return false;
    };
    if net::write_all(&mut stream, &length.to_be_bytes(), deadline)
        .1
        .is_some()
    {
        return false;
    }
    let by = Instant::now() + net::left(deadline).min(Duration::from_millis(500));
    let (extra, end) = net::read_exact(&mut stream, 1, by);
    extra.is_empty() && matches!(end, End::Eof | End::Reset)
}

/// The oversized length's connection is still open: is the server reading
/// (waiting for 4 GB), or has it stopped without closing? The bytes unread
/// in its socket, from /proc/net/tcp, tell.
fn still_open(stream: &TcpStream, sent_at: Instant, answered: usize) -> Outcome {
    let expected =
        "the server closes a connection that announces more than 1 MiB, and serves the next client";
    let waited = sent_at.elapsed().as_secs_f64();
    let answered = match answered {
        0 => String::new(),
        n => format!(" (it sent {n} bytes)"),
    };
    let unread = match (stream.local_addr(), stream.peer_addr()) {
        (Ok(ours), Ok(theirs)) => proc_net::connection(theirs, ours).ok().flatten(),
        _ => None,
    };
    let Some(their_end) = unread else {
        return Outcome::fail(
            expected,
            format!("after a length of {} bytes the connection was still open {waited:.1} s later{answered}", u32::MAX),
            HINT_OVERSIZED,
        );
    };
    let fact = Fact::new(
        format!("{} -> {}", their_end.local, their_end.remote),
        "rx_queue",
        json!(their_end.rx_queue),
        "/proc/net/tcp",
        format!(
            "{} bytes wait unread in your server's socket",
            their_end.rx_queue
        ),
    );
    let happened = if their_end.rx_queue == 0 {
        format!("after a length of {} bytes the connection was still open {waited:.1} s later{answered}, and the server had read everything: it is waiting for 4 GB", u32::MAX)
    } else {
        format!("after a length of {} bytes the server stopped reading but did not close the connection: it was still open {waited:.1} s later{answered}", u32::MAX)
    };
    Outcome::fail(expected, happened, HINT_OVERSIZED).with_fact(fact)
}
