//! The probes about how the bytes of requests arrive on a connection: a
//! request in small pieces, two requests on one connection (keep-alive),
//! and bytes that are not HTTP at all.

use std::time::{Duration, Instant};

use super::exchange::{Broken, Conn};
use super::*; // the hints and the helpers that check a response
use crate::check::net::{self, End};
use crate::check::session::{Outcome, Target};

/// `small-pieces`: one request written in seven pieces, with pauses, must
/// get one answer, after its last piece.
pub(super) fn small_pieces(target: Target, deadline: Instant) -> Outcome {
    let file = &files::SUB_PAGE;
    let expected =
        "one 200 OK with the file, sent after the request's last piece (the blank line) arrived";
    let host = format!("Host: {}\r\n", target.addr);
    // Cut inside the method, the path, between \r and \n, and inside the
    // final blank line: a server has to keep reading until \r\n\r\n.
    let pieces: [&[u8]; 7] = [
        b"GE",
        b"T /sub/pa",
        b"ge.html HTTP/1.1\r",
        b"\n",
        host.as_bytes(),
        b"Connection: close\r\n\r",
        b"\n",
    ];
    let pause = Duration::from_millis(80);
    let mut conn = match Conn::open(target.addr, deadline) {
        Ok(conn) => conn,
        Err(failed) => return miss_of("connect", failed).outcome(expected),
    };
    let (mut sent, mut pieces_sent) = (Vec::new(), 0);
    for piece in pieces {
        // A send that fails means the server has closed already; what it
        // said before closing is read below, like an early answer.
        let delivered = conn.send(piece, deadline).is_ok();
        if delivered {
            sent.extend_from_slice(piece);
            pieces_sent += 1;
            if pieces_sent == pieces.len() {
                break;
            }
        }
        // The pause doubles as a look-out: a server that answers (or
        // closes) before the request is complete took a piece for all of it.
        let heard = if delivered {
            conn.listen(Instant::now() + pause)
        } else {
            Ok(true)
        };
        let early = match heard {
            Ok(false) => continue,
            Ok(true) => match conn.read_response(deadline, true) {
                Ok(response) => format!("answered {}", response.summary()),
                Err(failed) if failed.got.is_empty() => failed.what,
                Err(failed) => format!("answered, but {}", failed.what),
            },
            Err(end) => format!("{} without answering", end.describe()),
        };
        return Outcome::fail(
            expected,
            format!(
                "after {} of {} pieces ({} bytes: {}), {early}",
                pieces_sent,
                pieces.len(),
                sent.len(),
                net::show(&sent)
            ),
            HINT_PIECES,
        );
    }
    let what = format!(
        "GET {} in {} pieces, {} ms apart",
        file.url,
        pieces.len(),
        pause.as_millis()
    );
    match conn.read_response(deadline, true) {
        Ok(response) if response.status != 200 => Outcome::fail(
            expected,
            format!("{what}: {}", response.summary()),
            HINT_PIECES,
        ),
        Ok(response) => match check_served(&what, &response, file) {
            Ok(served) => Outcome::pass(expected, format!("{what}: {served}")),
            Err(miss) => miss.outcome(expected),
        },
        Err(failed) if failed.broken == Broken::NoResponse => {
            Outcome::fail(expected, format!("{what}: {}", failed.what), HINT_PIECES)
        }
        Err(failed) => miss_of(&what, failed).outcome(expected),
    }
}

/// `keep-alive`: two requests on one connection. Closing after the first is
/// a warning; keeping the connection without answering the second fails.
pub(super) fn keep_alive(target: Target, deadline: Instant) -> Outcome {
    let expected = "both requests answered on the same connection, which stays open";
    let (first, second) = (&files::SUB_PAGE, &files::STYLE);
    let mut conn = match Conn::open(target.addr, deadline) {
        Ok(conn) => conn,
        Err(failed) => return miss_of("connect", failed).outcome(expected),
    };
    // The first request, without Connection: close: HTTP/1.1's default is
    // to keep the connection open.
    let what = format!("GET {} (HTTP/1.1, no Connection header)", first.url);
    let response = match conn
        .send(&request("GET", first.url, target.addr, false), deadline)
        .and_then(|()| conn.read_response(deadline, true))
    {
        Ok(response) => response,
        Err(failed) => return miss_of(&what, failed).outcome(expected),
    };
    let answered = match check_served(&what, &response, first) {
        Ok(served) => served,
        Err(miss) => return miss.outcome(expected),
    };

    // Does the server close now? A short look before the second request
    // tells a server that closes apart from one that never answers again.
    let ended = match conn
        .listen(Instant::now() + Duration::from_millis(150).min(net::left(deadline)))
    {
        Err(end) => end,
        Ok(true) => {
            let (extra, _) = conn.rest(Instant::now() + Duration::from_millis(100));
            return Outcome::fail(
                expected,
                format!(
                    "{what}: {answered}, then {} more bytes that Content-Length did not announce: {}",
                    extra.len(),
                    net::show(&extra)
                ),
                HINT_EXTRA,
            );
        }
        // Still open: the second request, on the same connection.
        Ok(false) => {
            let what2 = format!("then GET {} on the same connection", second.url);
            let result = conn
                .send(&request("GET", second.url, target.addr, false), deadline)
                .and_then(|()| conn.read_response(deadline, true));
            match result {
                Ok(response) => {
                    let (_, fact) = net::server_side_state(conn.stream());
                    return match check_served(&what2, &response, second) {
                        Ok(served) => {
                            Outcome::pass(expected, format!("{what}: {answered}; {what2}: {served}"))
                                .with_fact(fact)
                        }
                        Err(miss) => miss.outcome(expected),
                    };
                }
                Err(failed) if !failed.got.is_empty() => {
                    return miss_of(&what2, failed).outcome(expected)
                }
                // The send failed: the server had closed, and its kernel
                // answered our bytes with RST.
                Err(failed) if failed.broken == Broken::NoSend => End::Reset,
                Err(failed) => match failed.end {
                    Some(end @ (End::Eof | End::Reset)) => end,
                    Some(End::TimedOut) => {
                        return Outcome::fail(
                            expected,
                            format!("{what}: {answered}; {what2}: no answer, and the connection stayed open"),
                            HINT_KEEP_ALIVE_STUCK,
                        )
                    }
                    _ => return miss_of(&what2, failed).outcome(expected),
                },
            }
        }
    };
    // The server closed after one response: allowed (HTTP/1.0 does it),
    // but every request then pays for a new connection.
    let (_, fact) = net::server_side_state(conn.stream());
    let said = match (response.version, response.header("connection")) {
        (_, Some(value)) if value.to_ascii_lowercase().contains("close") => {
            " (it announced this with Connection: close)"
        }
        (0, _) => " (an HTTP/1.0 response: closing is that version's default)",
        _ => " (without saying Connection: close)",
    };
    let how = ended.describe();
    Outcome::warn(
        expected,
        format!("{what}: {answered}; then {how}{said}, so a second request needs a new connection"),
        HINT_KEEP_ALIVE,
    )
    .with_fact(fact)
}

/// The end of `bad-request`, when the server has passed the rest: DELETE
/// must get 405 Method Not Allowed or 501 Not Implemented (a warning).
fn other_method(target: &Target, deadline: Instant, expected: &str, happened: String) -> Outcome {
    let path = files::STYLE.url;
    let what = format!("DELETE {path}");
    let (result, _conn) = exchange(
        target.addr,
        &request("DELETE", path, target.addr, true),
        true,
        deadline,
    );
    let response = match result {
        Ok(response) => response,
        Err(failed) => {
            let no_answer = matches!(failed.broken, Broken::NoResponse | Broken::NoSend);
            if no_answer {
                if let Some(ended) = ended_after(target) {
                    return Outcome::fail(
                        expected,
                        format!("{happened}; but {what}: {}, and {ended}", failed.what),
                        HINT_METHOD_CRASH,
                    )
                    .about_a_crash();
                }
            }
            let hint = if no_answer {
                HINT_METHOD_CLOSE
            } else {
                broken_hint(failed.broken)
            };
            return Outcome::warn(
                expected,
                format!("{happened}; but {what}: {}", failed.what),
                hint,
            );
        }
    };
    if matches!(response.status, 405 | 501) {
        return Outcome::pass(
            expected,
            format!("{happened}; {what}: {}", response.summary()),
        );
    }
    let wanted = "where 405 Method Not Allowed or 501 Not Implemented was expected";
    let (note, hint) = if (200..300).contains(&response.status) {
        if response.body == files::STYLE.bytes() {
            (" (the file, as if it were a GET)".to_string(), HINT_METHOD)
        } else {
            let left = match target.root.as_ref() {
                Some(root) if root.join(files::STYLE.path).exists() => {
                    " (the file is still there)".to_string()
                }
                Some(root) => format!(
                    " ({} is gone: your server deleted it)",
                    root.join(files::STYLE.path).display()
                ),
                None => String::new(),
            };
            (left, HINT_METHOD_CHANGED)
        }
    } else {
        (String::new(), HINT_METHOD_STATUS)
    };
    Outcome::warn(
        expected,
        format!(
            "{happened}; but {what}: {}{note}, {wanted}",
            response.summary()
        ),
        hint,
    )
}

/// `bad-request`: bytes that are not HTTP get a 4xx or a closed connection,
/// and the next request on a new connection is served.
pub(super) fn bad_request(target: Target, deadline: Instant) -> Outcome {
    let expected = "400 Bad Request (or a closed connection) for bytes that are not HTTP, then 200 for the next request";
    // The start of a TLS handshake (what a browser sends to https://),
    // invalid UTF-8 and a NUL, ended by a blank line so that a server that
    // waits for one has it.
    let garbage: &[u8] = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\xff\xfe not http \x00\r\n\r\n";
    let mut conn = match Conn::open(target.addr, deadline) {
        Ok(conn) => conn,
        Err(failed) => return miss_of("connect", failed).outcome(expected),
    };
    // Up to half the probe's time for the answer to the garbage, the rest
    // for the request after it.
    let patience = Instant::now() + Duration::from_millis(1500).min(net::left(deadline) / 2);
    let sent = conn.send(garbage, patience);
    let reply = match (sent, conn.read_response(patience, true)) {
        (_, Ok(response)) if (400..500).contains(&response.status) => {
            Ok(format!("answered {}", response.summary()))
        }
        (_, Ok(response)) => Err(format!("answered {}", response.summary())),
        (_, Err(failed))
            if failed.got.is_empty() && matches!(failed.end, Some(End::Eof) | Some(End::Reset)) =>
        {
            Ok("closed the connection without an answer".to_string())
        }
        (Err(failed), Err(_)) => Ok(format!("stopped reading ({})", failed.what)),
        (_, Err(failed)) if failed.got.is_empty() => Err(failed.what),
        (_, Err(failed)) => Err(format!("answered, but {}", failed.what)),
    };
    drop(conn);
    let shown = net::show(garbage);
    let file = &files::STYLE;
    let next = format!("GET {}", file.url);
    let checked = fetch(target.addr, file, deadline)
        .and_then(|response| check_served(&next, &response, file));
    match (reply, checked) {
        (Ok(reply), Ok(served)) => {
            let happened = format!("{shown}: {reply}; then {served}");
            other_method(&target, deadline, expected, happened)
        }
        (Err(reply), Ok(served)) => Outcome::warn(
            expected,
            format!("{shown}: {reply}; then {served}"),
            HINT_BAD_STATUS,
        ),
        (Ok(reply) | Err(reply), Err(miss)) => Outcome::fail(
            expected,
            format!("{shown}: {reply}; then {}", miss.happened),
            survival_hint(&miss),
        ),
    }
}
