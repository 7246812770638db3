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
//!   calls for (parameters such as `; charset=utf-8` are fine). A head
//!   whose lines end with a bare \n instead of \r\n is a warning; so is a
//!   sixth GET, `/style.css?v=1`, that does not bring the file (the query
//!   must be dropped).
//! - `binary`: the PNG comes back byte for byte; its `image/png` is judged
//!   here only when get-file found the other types right.
//! - `not-found`: a missing file gets 404, and the next request is served.
//! - `head`: HEAD gets the status and Content-Length that GET gets (read
//!   from this server, head only), and no body after them.
//! - `small-pieces`: a request written a few bytes at a time, with pauses,
//!   gets one answer, after its last piece: one recv() is not one request.
//! - `keep-alive`: two requests on one connection are both answered. A
//!   server that closes after the first gets a warning, not a failure
//!   (HTTP/1.0 servers do that); the program's end of the connection is
//!   read from /proc/net/tcp (ESTABLISHED, or FIN_WAIT2 when it closed).
//! - `traversal`: `/../secret.txt`, its percent-encoded forms, and the
//!   secret's absolute path never bring back the secret (or any 2xx).
//! - `bad-request`: bytes that are not HTTP get a 4xx or a closed
//!   connection, and the server goes on serving. Then `DELETE` must get
//!   405 or 501, as a warning.
//!
//! Each probe judges its own subject. The bytes of a file and its
//! Content-Type are get-file's (and binary's): the later probes judge
//! status codes, framing (Content-Length against the body sent, the blank
//! line after the headers), survival and connection handling, and say
//! "see get-file" when a file's bytes or type are wrong. The hints follow
//! the evidence: a Content-Length equal to the file's number of characters
//! gets the characters-vs-bytes hint, any other wrong count the hint about
//! counting the bytes sent; another file's bytes say the path is ignored.
//!
//! The files: `files.rs` (what the root holds), `exchange.rs` (a request
//! sent, a response read and parsed with httparse, every read bounded by
//! the probe's deadline and a size), `requests.rs` (the probes about what
//! is asked for) and `connection.rs` (the probes about how the bytes
//! arrive). This file holds the exercise, the hints, and the check that a
//! response carries a file.
//!
//! Lesson: `netlab lesson http` (its section "Exercise: your own file
//! server"); reference solution: `tests/exercises/http_static/good.py`.

mod connection;
mod exchange;
mod files;
mod requests;

use std::net::SocketAddr;
use std::time::Instant;

use super::net;
use super::session::{Exercise, Outcome, ProbeInfo, Role, Session, Status, Target};
use exchange::{exchange, request, Broken, Failed, Response};
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
        checks: "GET of five files (HTML, text, CSS, one in a subdirectory, one with %20 in its name): 200, the exact bytes, Content-Length and Content-Type right (lines ended by a bare \\n, or a ?query not ignored: a warning)",
    },
    ProbeInfo {
        name: "binary",
        checks: "GET of a PNG that holds all 256 byte values: every byte back unchanged (and image/png, unless get-file has judged the types)",
    },
    ProbeInfo {
        name: "not-found",
        checks: "a missing file gets 404 Not Found, and the next request is still served",
    },
    ProbeInfo {
        name: "head",
        checks: "HEAD gets the same status and Content-Length as GET, and no body",
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
        checks: "bytes that are not HTTP get 400 (or a closed connection), and the server goes on serving (DELETE not answered 405 or 501: a warning)",
    },
];

fn run(session: &mut Session) {
    // A wrong Content-Type is get-file's to judge: binary judges the PNG's
    // only when get-file found the others right.
    let types_judged = session.probe("get-file", 4.0, requests::get_file) != Status::Pass;
    session.probe("binary", 3.0, move |target, deadline| {
        requests::binary(target, deadline, !types_judged)
    });
    session.probe("not-found", 3.0, requests::not_found);
    session.probe("head", 3.0, requests::head);
    session.probe("small-pieces", 3.0, connection::small_pieces);
    session.probe("keep-alive", 3.0, connection::keep_alive);
    session.probe("traversal", 4.0, requests::traversal);
    session.probe("bad-request", 3.0, connection::bad_request);
}

// The hints: one whole sentence each, for one way of failing.
const HINT_CONNECT: &str = "Your server must keep accepting connections: check that accept() runs in a loop and that no exception ended it (its output is shown below).";
const HINT_SEND: &str = "Your server closed the connection before it had read the request: read until the blank line \\r\\n\\r\\n before answering or closing.";
const HINT_NO_RESPONSE: &str = "Every request needs a response: check that each path through your request handler ends in sendall() of a status line, headers and a blank line, and look at your program's output for an exception.";
const HINT_FORMAT: &str = "Start the response with a status line such as HTTP/1.1 200 OK, end the status line and each header with \\r\\n, and put an empty line (\\r\\n) between the headers and the body.";
const HINT_MAP: &str = "Map the request's path to a file under the root: drop the leading /, join it to the root directory, and open the file in binary mode ('rb').";
const HINT_PERCENT: &str = "Percent-decode the path before you open the file: urllib.parse.unquote() turns %20 back into a space.";
const HINT_CHUNKED: &str = "Chunked transfer encoding is valid HTTP/1.1, but this exercise asks for a Content-Length: send Content-Length with the file's size in bytes and the body as it is, without Transfer-Encoding: chunked.";
const HINT_LENGTH_MISSING: &str = "Send a Content-Length header with the body's size in bytes: without it a client can only find the end of the body when the connection closes.";
const HINT_BLANK_LINE: &str = "End the head with an empty line: after the last header's \\r\\n send one more \\r\\n, so the client can tell where the headers stop and the body begins.";
const HINT_CRLF: &str = "End the status line and every header with \\r\\n, as HTTP requires, not with \\n alone: many clients accept a bare \\n, but not every one does.";
const HINT_LENGTH_COUNT: &str = "Content-Length must equal the number of body bytes you actually send: take len() of the very bytes object you pass to sendall(), and add or leave out nothing.";
const HINT_IGNORES_PATH: &str = "The body is another file's: your server ignores the path, so open the file that the request line's path names under the root, not a fixed one.";
const HINT_BINARY_SILENT: &str = "Your server sent no response for the PNG: open files in binary mode ('rb'), since reading a binary file as text raises UnicodeDecodeError (look for it in your program's output).";
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
const HINT_QUERY: &str = "Drop the ?query before you map the path to a file: what follows ? is for programs, not part of the file name (urllib.parse.urlsplit(target).path gives the path alone).";
const HINT_METHOD: &str = "Answer a method other than GET and HEAD with 405 Method Not Allowed (and an Allow: GET, HEAD header), or 501 Not Implemented: never with the file, as if it were a GET.";
const HINT_QUERY_TYPE: &str = "Drop the ?query before you choose the Content-Type too: take the extension from urllib.parse.urlsplit(target).path, not from the whole target.";
const HINT_QUERY_CRASH: &str = "A request must never end your server: drop the ?query before you map the path to a file (urllib.parse.urlsplit(target).path gives the path alone), and catch errors where you handle one request, so that the accept loop goes on.";
const HINT_ENDED: &str = "Your server had already ended (its output is below): a server must survive every request, so catch the error where you handle one request and let the accept loop go on.";
const HINT_METHOD_CRASH: &str = "Any request, whatever its method, must get an answer and must never end your server: answer a method you do not support with 405 Method Not Allowed (and an Allow: GET, HEAD header) or 501 Not Implemented.";
const HINT_METHOD_CHANGED: &str = "Your server deleted (or claims to have deleted) the file: a static server must not change its files. Answer DELETE, and any method other than GET and HEAD, with 405 Method Not Allowed (and an Allow: GET, HEAD header) or 501 Not Implemented.";
const HINT_METHOD_STATUS: &str = "405 Method Not Allowed (with an Allow: GET, HEAD header) is the status that says a method is not supported, or 501 Not Implemented: other 4xx and 5xx statuses say something else went wrong.";
const HINT_METHOD_CLOSE: &str = "Answer a method you do not support rather than closing the connection without a word: 405 Method Not Allowed (and an Allow: GET, HEAD header) or 501 Not Implemented.";
const HINT_BOTH_FRAMINGS: &str = "Send either Content-Length or Transfer-Encoding: chunked, never both (a client must then ignore Content-Length): for this exercise, send only Content-Length and the file's bytes as they are, without chunk framing.";
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
        Broken::NoBlankLine => HINT_BLANK_LINE,
        Broken::BadLength | Broken::ShortBody => HINT_LENGTH_COUNT,
        Broken::Unframed => HINT_LENGTH_MISSING,
        Broken::BadChunks => HINT_CHUNKED,
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

/// Does this response carry `file`'s bytes: 200, a Content-Length equal
/// to the file's size, and the file's exact bytes? (`get-file` and
/// `binary` ask this; the Content-Type is `check_type`'s.)
fn check_bytes(what: &str, response: &Response, file: &Served) -> Result<(), Miss> {
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
        return Err(no_length(what, response));
    };
    if response.body == want {
        return Ok(());
    }
    // Content-Length and chunked both: the client must ignore the length
    // and the body then holds the chunk framing.
    if let Some(encoding) = response
        .header("transfer-encoding")
        .filter(|value| value.to_ascii_lowercase().contains("chunked"))
    {
        return Err(Miss::new(
            format!(
                "{what}: both Content-Length: {length} and Transfer-Encoding: {encoding}, and the body is not the file's {} bytes (it begins {})",
                want.len(),
                net::show(&response.body[..response.body.len().min(12)])
            ),
            HINT_BOTH_FRAMINGS,
        ));
    }
    // Another file's bytes: the path was not used to pick the file.
    if let Some(other) = files::ALL
        .iter()
        .find(|other| other.url != file.url && other.bytes() == response.body)
    {
        return Err(Miss::new(
            format!(
                "{what}: the body is {}'s {} bytes, not {}'s {}",
                other.url,
                response.body.len(),
                file.url,
                want.len()
            ),
            HINT_IGNORES_PATH,
        ));
    }
    // The file's first Content-Length bytes: the count is too small.
    // Counting characters instead of bytes is one way to get there; the
    // count says whether it is this one.
    if length < want.len() && want.starts_with(&response.body) {
        let (counted, hint) = match file.characters() {
            Some(characters) if characters == length => (
                format!(", which is its number of characters ({characters})"),
                HINT_LENGTH_BYTES,
            ),
            _ => (String::new(), HINT_LENGTH_COUNT),
        };
        return Err(Miss::new(
            format!(
                "{what}: Content-Length: {length}, but the file has {} bytes{counted}",
                want.len()
            ),
            hint,
        ));
    }
    let at = response
        .body
        .iter()
        .zip(&want)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(response.body.len()));
    let sizes = if length == want.len() {
        String::new()
    } else {
        format!(
            " (Content-Length: {length}, the file has {} bytes)",
            want.len()
        )
    };
    Err(Miss::new(
        format!(
            "{what}: the body differs from the file from byte {at} on{sizes}: the file has {}, the response {}",
            net::show(&want[at.min(want.len())..(at + 8).min(want.len())]),
            net::show(&response.body[at.min(response.body.len())..(at + 8).min(response.body.len())]),
        ),
        HINT_BODY,
    ))
}

/// Does the response carry the Content-Type of `file`'s extension?
fn check_type(what: &str, response: &Response, file: &Served) -> Result<(), Miss> {
    match response.media_type() {
        Some(media) if media.eq_ignore_ascii_case(file.media_type) => Ok(()),
        Some(_) => Err(Miss::new(
            format!(
                "{what}: Content-Type: {}, but for .{} it is {}",
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

/// What the probes after `get-file` and `binary` ask of a file's response:
/// 200 and a body framed by Content-Length (the exchange has read exactly
/// that many bytes). The bytes and the Content-Type are those two probes'
/// subject: when they are wrong, the pass text says so, and points there.
fn check_served(what: &str, response: &Response, file: &Served) -> Result<String, Miss> {
    if response.status != 200 {
        return check_bytes(what, response, file).map(|()| String::new());
    }
    if response.content_length.is_none() {
        return Err(no_length(what, response));
    }
    let note = if check_bytes(what, response, file).is_err() {
        " (not the file's bytes: see get-file)"
    } else if check_type(what, response, file).is_err() {
        " (the wrong Content-Type: see get-file)"
    } else {
        ""
    };
    Ok(format!("200 OK for {}{note}", served(file, response)))
}

/// A 200 without Content-Length: chunked (valid, but not what the
/// exercise asks for), or a body that ends only when the connection does.
fn no_length(what: &str, response: &Response) -> Miss {
    if response.chunked {
        return Miss::new(
            format!(
                "{what}: {} and no Content-Length header: the body came in chunks instead",
                response.summary()
            ),
            HINT_CHUNKED,
        );
    }
    Miss::new(
        format!(
            "{what}: {} and no Content-Length header",
            response.summary()
        ),
        HINT_LENGTH_MISSING,
    )
}

fn extension(file: &Served) -> &'static str {
    file.path.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("")
}

/// GET `file` on a new connection: the response, whatever it carries.
fn fetch(addr: SocketAddr, file: &Served, deadline: Instant) -> Result<Response, Miss> {
    let what = format!("GET {}", file.url);
    let (result, _conn) = exchange(addr, &request("GET", file.url, addr, true), true, deadline);
    result.map_err(|failed| miss_of(&what, failed))
}

/// How the server ended, waiting up to half a second (times --patience)
/// for it: a program that raised has closed its sockets a few
/// milliseconds before it is gone. None: it still runs.
fn ended_after(target: &Target) -> Option<String> {
    let until = Instant::now() + target.time(0.5);
    loop {
        if let Some(ended) = target.ended() {
            return Some(ended);
        }
        if net::passed(until) {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// "/index.html (312 bytes, text/html; charset=utf-8)" for a pass;
/// "(312 bytes, no Content-Type)" when the header is missing.
fn served(file: &Served, response: &Response) -> String {
    format!(
        "{} ({} bytes, {})",
        file.url,
        response.body.len(),
        response.header("content-type").unwrap_or("no Content-Type")
    )
}
