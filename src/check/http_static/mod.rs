//! # Exercise `http-static`: your own file server
//!
//! The student writes an HTTP/1.1 server that serves the files of one
//! directory: `netlab check http-static -- python3 server.py {port} {root}`.
//! netlab fills `{root}` with a few files (`files.rs`): HTML and text with
//! multi-byte UTF-8 characters, CSS, a "PNG" that holds every byte value, a
//! file in a subdirectory and one with a space in its name. In the
//! directory above the root it leaves a secret that must never be served.
//!
//! The probes, in order, each on fresh connections:
//!
//! - `get-file`: GET of five files: 200, the exact bytes, a Content-Length
//!   equal to the file's size in bytes, the Content-Type its extension
//!   calls for (parameters such as `; charset=utf-8` are fine).
//! - `binary`: the PNG comes back byte for byte, as `image/png`.
//! - `not-found`: a missing file gets 404, and the next request is served.
//! - `head`: HEAD gets GET's status and headers, and no body after them.
//! - `small-pieces`: a request written a few bytes at a time, with pauses,
//!   gets one answer, after its last piece: one recv() is not one request.
//! - `keep-alive`: two requests on one connection are both answered. A
//!   server that closes after the first gets a warning, not a failure
//!   (HTTP/1.0 servers do that); the program's end of the connection is
//!   read from /proc/net/tcp (ESTABLISHED, or FIN_WAIT2 when it closed).
//! - `traversal`: `/../secret.txt`, its percent-encoded forms, and the
//!   secret's absolute path never bring back the secret (or any 2xx).
//! - `bad-request`: bytes that are not HTTP get a 4xx or a closed
//!   connection, and the server goes on serving.
//!
//! Requests and responses are bytes on a stream, parsed with httparse
//! (`exchange.rs`); every read is bounded by the probe's deadline.
//!
//! Lesson: `netlab lesson http` (its section "Exercise: your own file
//! server"); reference solution: `tests/exercises/http_static/good.py`.

mod exchange;
mod files;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::net::{self, End};
use super::session::{Exercise, Outcome, ProbeInfo, Role, Session, Target};
use exchange::{exchange, request, Broken, Conn, Failed, Response};
use files::Served;

pub static EXERCISE: Exercise = Exercise {
    name: "http-static",
    summary: "An HTTP/1.1 server for static files: status, Content-Length and Content-Type right, HEAD, no path outside the root.",
    lesson: "http",
    role: Role::TcpServer,
    example: "python3 http_server.py {port} {root}",
    probes: PROBES,
    prepare: Some(files::prepare),
    run,
};

const PROBES: &[ProbeInfo] = &[
    ProbeInfo {
        name: "get-file",
        checks: "GET of five files (HTML, text, CSS, one in a subdirectory, one with %20 in its name): 200, the exact bytes, Content-Length and Content-Type right",
    },
    ProbeInfo {
        name: "binary",
        checks: "GET of a PNG that holds all 256 byte values: every byte back unchanged, as image/png",
    },
    ProbeInfo {
        name: "not-found",
        checks: "a missing file gets 404 Not Found, and the next request is still served",
    },
    ProbeInfo {
        name: "head",
        checks: "HEAD gets the same status and headers as GET, and no body",
    },
    ProbeInfo {
        name: "small-pieces",
        checks: "a request written a few bytes at a time, with pauses, gets one answer after its last byte",
    },
    ProbeInfo {
        name: "keep-alive",
        checks: "two requests on one HTTP/1.1 connection are both answered (closing after the first is a warning)",
    },
    ProbeInfo {
        name: "traversal",
        checks: "../, %2e%2e, ..%2f and an absolute path never reach the secret file beside the root",
    },
    ProbeInfo {
        name: "bad-request",
        checks: "bytes that are not HTTP get 400 (or a closed connection), and the server goes on serving",
    },
];

fn run(session: &mut Session) {
    session.probe("get-file", 4.0, get_file);
    session.probe("binary", 3.0, binary);
    session.probe("not-found", 3.0, not_found);
    session.probe("head", 3.0, head);
    session.probe("small-pieces", 3.0, small_pieces);
    session.probe("keep-alive", 3.0, keep_alive);
    session.probe("traversal", 4.0, traversal);
    session.probe("bad-request", 3.0, bad_request);
}

// The hints: one whole sentence each, for one way of failing.
const HINT_CONNECT: &str = "Your server must keep accepting connections: check that accept() runs in a loop and that no exception ended it (its output is shown below).";
const HINT_SEND: &str = "Your server closed the connection before it had read the request: read until the blank line \\r\\n\\r\\n before answering or closing.";
const HINT_NO_RESPONSE: &str = "Every request needs a response: check that each path through your request handler ends in sendall() of a status line, headers and a blank line, and look at your program's output for an exception.";
const HINT_FORMAT: &str = "Start the response with a status line such as HTTP/1.1 200 OK, end the status line and each header with \\r\\n, and put an empty line (\\r\\n) between the headers and the body.";
const HINT_MAP: &str = "Map the request's path to a file under the root: drop the leading /, join it to the root directory, and open the file in binary mode ('rb').";
const HINT_PERCENT: &str = "Percent-decode the path before you open the file: urllib.parse.unquote() turns %20 back into a space.";
const HINT_LENGTH_MISSING: &str = "Send a Content-Length header with the body's size in bytes: without it a client can only find the end of the body when the connection closes.";
const HINT_LENGTH_BYTES: &str = "Content-Length must count the bytes you send, not characters: read the file in binary mode ('rb') and use len() of those bytes (or os.path.getsize()).";
const HINT_BODY: &str = "Send the file's bytes unchanged: read it in binary mode ('rb') and pass those bytes to sendall(), without decoding or re-encoding them.";
const HINT_TYPE: &str = "Choose Content-Type from the file's extension (.html text/html, .txt text/plain, .css text/css, .png image/png), for example with mimetypes.guess_type().";
const HINT_404: &str = "Check that the file exists (os.path.isfile(), or catch FileNotFoundError from open()) and answer 404 Not Found when it does not.";
const HINT_SURVIVE: &str = "One bad request must end at most its own connection: catch the error where you handle one request, answer it (404 or 400), and let the accept loop go on.";
const HINT_HEAD_STATUS: &str =
    "Answer HEAD like GET, with the same status line and headers, and leave out only the body.";
const HINT_HEAD_LENGTH: &str = "For HEAD, send the Content-Length that GET would send (the file's size in bytes): clients use HEAD to learn a file's size without downloading it.";
const HINT_HEAD_BODY: &str = "For HEAD, send the head only: the same status line and headers as for GET, and no body bytes after the blank line.";
const HINT_PIECES: &str = "One recv() is not one request: append what recv() returns to a buffer and keep reading until it holds the blank line \\r\\n\\r\\n, then parse the request.";
const HINT_EXTRA: &str = "Send exactly Content-Length bytes of body and nothing after them: on a kept-alive connection every extra byte is read as the start of the next response.";
const HINT_KEEP_ALIVE: &str = "HTTP/1.1 keeps a connection open by default: after a response, loop back to recv() the next request on the same socket, and close only when recv() returns b'' or the client sent Connection: close.";
const HINT_KEEP_ALIVE_STUCK: &str = "After one response your server neither read the next request nor closed the connection: loop over requests on the connection, or close it after each response.";
const HINT_TRAVERSAL: &str = "Percent-decode the path, resolve it with os.path.realpath(os.path.join(root, path)), and refuse it (403 or 404) unless os.path.commonpath([root, resolved]) == root.";
const HINT_BAD_STATUS: &str = "A request your server cannot parse deserves 400 Bad Request: check what your code does when the request line does not split into method, target and version.";
const HINT_NETLAB: &str = "This is a problem in netlab's own set-up, not in your program; please report it with the command you ran.";

/// A failed check inside a probe: what happened, and the hint that fits.
struct Miss {
    happened: String,
    hint: &'static str,
    /// Did a response come at all? (No: the connection failed, was closed,
    /// or stayed silent.)
    answered: bool,
}

impl Miss {
    fn new(happened: impl Into<String>, hint: &'static str) -> Miss {
        Miss {
            happened: happened.into(),
            hint,
            answered: true,
        }
    }

    fn outcome(self, expected: &str) -> Outcome {
        Outcome::fail(expected, self.happened, self.hint)
    }
}

/// The hint for an exchange that did not produce a whole response.
fn broken_hint(broken: Broken) -> &'static str {
    match broken {
        Broken::NoConnect => HINT_CONNECT,
        Broken::NoSend => HINT_SEND,
        Broken::NoResponse => HINT_NO_RESPONSE,
        Broken::NotHttp => HINT_FORMAT,
        Broken::BadLength | Broken::ShortBody => HINT_LENGTH_BYTES,
        Broken::Unframed => HINT_LENGTH_MISSING,
    }
}

/// `GET url` → "the response" in the report's words.
fn miss_of(what: &str, failed: Failed) -> Miss {
    Miss {
        answered: !matches!(
            failed.broken,
            Broken::NoConnect | Broken::NoSend | Broken::NoResponse
        ),
        ..Miss::new(
            format!("{what}: {}", failed.what),
            broken_hint(failed.broken),
        )
    }
}

/// The hint when the request after a bad one fails: if no answer came at
/// all, the bad request broke the server; if one came, what is wrong with
/// it is the better hint.
fn survival_hint(miss: &Miss) -> &'static str {
    if miss.answered {
        miss.hint
    } else {
        HINT_SURVIVE
    }
}

/// Does this response carry `file`, whole and correctly labelled?
fn check_file(what: &str, response: &Response, file: &Served) -> Result<(), Miss> {
    let want = file.bytes();
    if response.status != 200 {
        let hint = if response.status == 404 && file.url.contains('%') {
            HINT_PERCENT
        } else {
            HINT_MAP
        };
        return Err(Miss::new(
            format!(
                "{what}: {} (the file is there, {} bytes)",
                response.summary(),
                want.len()
            ),
            hint,
        ));
    }
    let Some(length) = response.content_length else {
        return Err(Miss::new(
            format!(
                "{what}: {} and no Content-Length header",
                response.summary()
            ),
            HINT_LENGTH_MISSING,
        ));
    };
    if length != want.len() {
        return Err(Miss::new(
            format!(
                "{what}: Content-Length: {length}, but the file has {} bytes",
                want.len()
            ),
            HINT_LENGTH_BYTES,
        ));
    }
    if let Some(at) = response.body.iter().zip(&want).position(|(a, b)| a != b) {
        return Err(Miss::new(
            format!(
                "{what}: the body differs from the file from byte {at} on: the file has {}, the response {}",
                net::show(&want[at..(at + 8).min(want.len())]),
                net::show(&response.body[at..(at + 8).min(response.body.len())]),
            ),
            HINT_BODY,
        ));
    }
    match response.media_type() {
        Some(media) if media.eq_ignore_ascii_case(file.media_type) => Ok(()),
        Some(_) => Err(Miss::new(
            format!(
                "{what}: Content-Type: {}, but a {} file is {}",
                response.header("content-type").unwrap_or(""),
                extension(file),
                file.media_type
            ),
            HINT_TYPE,
        )),
        None => Err(Miss::new(
            format!("{what}: {} and no Content-Type header", response.summary()),
            HINT_TYPE,
        )),
    }
}

fn extension(file: &Served) -> &'static str {
    file.path.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("")
}

/// GET `file` on a new connection and check the response.
fn fetch(addr: SocketAddr, file: &Served, deadline: Instant) -> Result<Response, Miss> {
    let what = format!("GET {}", file.url);
    let (result, _conn) = exchange(addr, &request("GET", file.url, addr, true), true, deadline);
    let response = result.map_err(|failed| miss_of(&what, failed))?;
    check_file(&what, &response, file)?;
    Ok(response)
}

/// "/index.html (312 bytes, text/html; charset=utf-8)" for a pass.
fn served(file: &Served, response: &Response) -> String {
    format!(
        "{} ({} bytes, {})",
        file.url,
        response.body.len(),
        response.header("content-type").unwrap_or("")
    )
}

fn get_file(target: Target, deadline: Instant) -> Outcome {
    let expected = "200 OK with the file's exact bytes, Content-Length equal to its size in bytes, and the Content-Type of its extension";
    let mut done = Vec::new();
    for file in [
        &files::INDEX,
        &files::NOTES,
        &files::STYLE,
        &files::SUB_PAGE,
        &files::SPACED,
    ] {
        match fetch(target.addr, file, deadline) {
            Ok(response) => done.push(served(file, &response)),
            Err(miss) => return miss.outcome(expected),
        }
    }
    Outcome::pass(expected, format!("200 OK for {}", done.join(", ")))
}

fn binary(target: Target, deadline: Instant) -> Outcome {
    let expected = "200 OK with all 520 bytes of the PNG unchanged, Content-Length: 520, Content-Type: image/png";
    match fetch(target.addr, &files::LOGO, deadline) {
        Ok(response) => Outcome::pass(
            expected,
            format!(
                "200 OK for {}, byte for byte",
                served(&files::LOGO, &response)
            ),
        ),
        Err(miss) => miss.outcome(expected),
    }
}

fn not_found(target: Target, deadline: Instant) -> Outcome {
    let expected = "404 Not Found for a file that does not exist, then 200 for the next request";
    let missing = "/no-such-file.html";
    let what = format!("GET {missing}");
    let (result, _conn) = exchange(
        target.addr,
        &request("GET", missing, target.addr, true),
        true,
        deadline,
    );
    let answer = match result {
        Ok(response) if response.status == 404 => response.summary(),
        Ok(response) => {
            return Outcome::fail(
                expected,
                format!("{what}: {}", response.summary()),
                HINT_404,
            )
        }
        // A server that fails on the missing file without answering is
        // the bug this probe is for, whichever way the connection ended.
        Err(failed) if failed.broken == Broken::NoResponse => {
            return Outcome::fail(expected, format!("{what}: {}", failed.what), HINT_404)
        }
        Err(failed) => return miss_of(&what, failed).outcome(expected),
    };
    match fetch(target.addr, &files::STYLE, deadline) {
        Ok(response) => Outcome::pass(
            expected,
            format!(
                "{what}: {answer}; then 200 OK for {}",
                served(&files::STYLE, &response)
            ),
        ),
        Err(miss) => Outcome::fail(
            expected,
            format!("{what}: {answer}; but then {}", miss.happened),
            survival_hint(&miss),
        ),
    }
}

fn head(target: Target, deadline: Instant) -> Outcome {
    let file = &files::STYLE;
    let size = file.bytes().len();
    let expected = format!(
        "200 OK with Content-Length: {size} and Content-Type: text/css, as for GET, and no body"
    );
    let what = format!("HEAD {}", file.url);
    let (result, conn) = exchange(
        target.addr,
        &request("HEAD", file.url, target.addr, true),
        false,
        deadline,
    );
    let response = match result {
        Ok(response) => response,
        Err(failed) if failed.broken == Broken::NoResponse => {
            return Outcome::fail(
                &expected,
                format!("{what}: {}", failed.what),
                HINT_HEAD_STATUS,
            )
        }
        Err(failed) => return miss_of(&what, failed).outcome(&expected),
    };
    if response.status != 200 {
        return Outcome::fail(
            &expected,
            format!("{what}: {}", response.summary()),
            HINT_HEAD_STATUS,
        );
    }
    if response.content_length != Some(size) {
        return Outcome::fail(
            &expected,
            format!("{what}: {} (GET sends {size} bytes)", response.summary()),
            HINT_HEAD_LENGTH,
        );
    }
    if !response
        .media_type()
        .is_some_and(|media| media.eq_ignore_ascii_case(file.media_type))
    {
        return Outcome::fail(
            &expected,
            format!("{what}: {}", response.summary()),
            HINT_TYPE,
        );
    }
    // Whatever follows the head is a body that must not be there. We asked
    // for Connection: close, so a correct server closes now; one that keeps
    // the connection open gets half a second to show it sends nothing.
    let Some(mut conn) = conn else {
        return Outcome::fail(&expected, "netlab lost its connection", HINT_NETLAB);
    };
    let (extra, end) =
        conn.rest(Instant::now() + Duration::from_millis(500).min(net::left(deadline)));
    if !extra.is_empty() {
        let which = if extra == file.bytes() {
            format!("the file's {} bytes", extra.len())
        } else {
            format!("{} bytes", extra.len())
        };
        return Outcome::fail(
            &expected,
            format!(
                "{what}: {}, then {which} followed the head: {}",
                response.summary(),
                net::show(&extra)
            ),
            HINT_HEAD_BODY,
        );
    }
    let after = match end {
        End::Eof => "then the connection closed with no body".to_string(),
        End::TimedOut => "then no body bytes within half a second".to_string(),
        other => format!("then {} with no body", other.describe()),
    };
    Outcome::pass(expected, format!("{what}: {}, {after}", response.summary()))
}

fn small_pieces(target: Target, deadline: Instant) -> Outcome {
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
    let mut sent = Vec::new();
    for (index, piece) in pieces.iter().enumerate() {
        if let Err(failed) = conn.send(piece, deadline) {
            return miss_of(&format!("piece {} of {}", index + 1, pieces.len()), failed)
                .outcome(expected);
        }
        sent.extend_from_slice(piece);
        if index + 1 == pieces.len() {
            break;
        }
        // The pause doubles as a look-out: a server that answers (or
        // closes) before the request is complete took a piece for all of it.
        let early = match conn.listen(Instant::now() + pause) {
            Ok(false) => continue,
            Ok(true) => match conn.read_response(deadline, true) {
                Ok(response) => format!("answered {}", response.summary()),
                Err(failed) => format!("answered, but {}", failed.what),
            },
            Err(end) => format!(
                "{} without answering",
                end.describe().replace("the program", "your server")
            ),
        };
        return Outcome::fail(
            expected,
            format!(
                "after {} of {} pieces ({} bytes: {}), {early}",
                index + 1,
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
        Ok(response) => match check_file(&what, &response, file) {
            Ok(()) => Outcome::pass(
                expected,
                format!("{what}: 200 OK for {}", served(file, &response)),
            ),
            Err(miss) => miss.outcome(expected),
        },
        Err(failed) if failed.broken == Broken::NoResponse => {
            Outcome::fail(expected, format!("{what}: {}", failed.what), HINT_PIECES)
        }
        Err(failed) => miss_of(&what, failed).outcome(expected),
    }
}

fn keep_alive(target: Target, deadline: Instant) -> Outcome {
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
    if let Err(miss) = check_file(&what, &response, first) {
        return miss.outcome(expected);
    }
    let answered = response.summary();

    // Does the server close now? A short look before the second request
    // tells a server that closes apart from one that never answers again.
    let closed = match conn
        .listen(Instant::now() + Duration::from_millis(150).min(net::left(deadline)))
    {
        Ok(false) => None,
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
        Err(end) => Some(end),
    };
    let closed = match closed {
        Some(end) => Some(end),
        None => {
            let what2 = format!("then GET {} on the same connection", second.url);
            let result = conn
                .send(&request("GET", second.url, target.addr, false), deadline)
                .and_then(|()| conn.read_response(deadline, true));
            match result {
                Ok(response) => {
                    let (_, fact) = net::server_side_state(conn.stream());
                    return match check_file(&what2, &response, second) {
                        Ok(()) => Outcome::pass(
                            expected,
                            format!("{what}: {answered}; {what2}: {}", response.summary()),
                        )
                        .with_fact(fact),
                        Err(miss) => miss.outcome(expected),
                    };
                }
                Err(failed) if failed.got.is_empty() && failed.broken == Broken::NoSend => {
                    Some(End::Reset)
                }
                Err(failed)
                    if failed.got.is_empty()
                        && matches!(failed.end, Some(End::Eof) | Some(End::Reset)) =>
                {
                    failed.end
                }
                Err(failed) if failed.got.is_empty() && failed.end == Some(End::TimedOut) => {
                    return Outcome::fail(
                        expected,
                        format!("{what}: {answered}; {what2}: no answer, and the connection stayed open"),
                        HINT_KEEP_ALIVE_STUCK,
                    )
                }
                Err(failed) => return miss_of(&what2, failed).outcome(expected),
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
    let how = closed
        .map(|end| end.describe())
        .unwrap_or("the connection ended");
    Outcome::warn(
        expected,
        format!("{what}: {answered}; then {how}{said}, so a second request needs a new connection"),
        HINT_KEEP_ALIVE,
    )
    .with_fact(fact)
}

fn traversal(target: Target, deadline: Instant) -> Outcome {
    let expected = "every request for a path outside the root refused (403, 404 or another 4xx), never the secret file";
    let Some(root) = target.root.clone() else {
        return Outcome::fail(expected, "netlab has no directory for {root}", HINT_NETLAB);
    };
    let (token, secret) = match (files::secret_token(&root), files::secret_path(&root)) {
        (Ok(token), Ok(secret)) => (token, secret),
        (Err(err), _) | (_, Err(err)) => {
            return Outcome::fail(
                expected,
                format!("netlab could not read its own secret file: {err}"),
                HINT_NETLAB,
            )
        }
    };
    let mut attacks: Vec<String> = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2E%2E/%2E%2E/secret.txt",
    ]
    .iter()
    .map(|path| path.to_string())
    .collect();
    // The secret's absolute path after the slash ("//tmp/.../secret.txt"):
    // os.path.join(root, "/tmp/...") throws the root away.
    let absolute = secret.to_string_lossy().into_owned();
    if absolute.starts_with('/')
        && absolute
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"%?#".contains(&b))
    {
        attacks.push(format!("/{absolute}"));
    }
    let mut answers = Vec::new();
    for path in &attacks {
        let what = format!("GET {path}");
        let (result, _conn) = exchange(
            target.addr,
            &request("GET", path, target.addr, true),
            true,
            deadline,
        );
        let (got, answer) = match result {
            Ok(response) => {
                let mut got = response.body.clone();
                for (_, value) in &response.headers {
                    got.extend_from_slice(value.as_bytes());
                }
                let answer = response.summary();
                if (200..300).contains(&response.status) && !contains(&got, &token) {
                    return Outcome::fail(
                        expected,
                        format!("{what}: {answer}, {} bytes: {} (there is no file of that name under the root)", response.body.len(), net::show(&response.body)),
                        HINT_TRAVERSAL,
                    );
                }
                (got, format!("{} {}", response.status, response.reason))
            }
            Err(failed) if failed.broken == Broken::NoConnect => {
                return miss_of(&what, failed).outcome(expected)
            }
            // Silence is not a refusal: the client waits, and so do we.
            Err(failed) if failed.got.is_empty() && failed.end == Some(End::TimedOut) => {
                return miss_of(&what, failed).outcome(expected)
            }
            // A connection closed without an answer refuses the request.
            Err(failed) => (
                failed.got.clone(),
                format!("no valid response ({})", failed.what),
            ),
        };
        if contains(&got, &token) {
            return Outcome::fail(
                expected,
                format!(
                    "{what}: the response holds the secret file {} from outside the root: {}",
                    secret.display(),
                    net::show(&got)
                ),
                HINT_TRAVERSAL,
            );
        }
        answers.push(format!("{what}: {answer}"));
    }
    Outcome::pass(expected, answers.join("; "))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn bad_request(target: Target, deadline: Instant) -> Outcome {
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
        (_, Ok(response)) if (400..500).contains(&response.status) => Ok(response.summary()),
        (_, Ok(response)) => Err(format!("answered {}", response.summary())),
        (_, Err(failed))
            if failed.got.is_empty() && matches!(failed.end, Some(End::Eof) | Some(End::Reset)) =>
        {
            Ok("closed the connection without an answer".to_string())
        }
        (Err(failed), Err(_)) => Ok(format!("stopped reading ({})", failed.what)),
        (_, Err(failed)) => Err(failed.what),
    };
    drop(conn);
    let shown = net::show(garbage);
    match (reply, fetch(target.addr, &files::STYLE, deadline)) {
        (Ok(reply), Ok(response)) => Outcome::pass(
            expected,
            format!(
                "{shown}: {reply}; then 200 OK for {}",
                served(&files::STYLE, &response)
            ),
        ),
        (Err(reply), Ok(response)) => Outcome::warn(
            expected,
            format!(
                "{shown}: {reply}; then 200 OK for {}",
                served(&files::STYLE, &response)
            ),
            HINT_BAD_STATUS,
        ),
        (Ok(reply) | Err(reply), Err(miss)) => Outcome::fail(
            expected,
            format!("{shown}: {reply}; then {}", miss.happened),
            survival_hint(&miss),
        ),
    }
}
