//! One HTTP exchange as a probe sees it: send a request, read the response
//! that comes back, and say precisely what arrived when it is not one.
//!
//! The responses come from a student's program, so anything can arrive:
//! nothing, garbage, a head without the blank line, no Content-Length, a
//! body shorter or longer than announced. Every read is bounded by the
//! probe's deadline and by a size limit, and every way a response can be
//! wrong has a name (`Broken`), so each probe can pick the hint that fits.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use crate::check::net::{self, End};

/// A response head larger than this without its blank line is not one.
const MAX_HEAD: usize = 16 * 1024;

/// The served files are small; a larger Content-Length is a wrong one, and
/// a body read until close stops here.
const MAX_BODY: usize = 1 << 20;

/// A connection to the program and the bytes received on it that no
/// response has used yet (a response can arrive in several reads, and a
/// read can hold more than one response).
pub struct Conn {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// A response whose head parsed.
pub struct Response {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub status: u16,
    pub reason: String,
    /// Header names and values as sent, made printable (see `printable`).
    pub headers: Vec<(String, String)>,
    /// The body, as many bytes as Content-Length said (or until close).
    pub body: Vec<u8>,
    /// Content-Length as sent, when there was one.
    pub content_length: Option<usize>,
    /// No Content-Length, and `Transfer-Encoding: chunked`: the body came
    /// in chunks (valid HTTP/1.1; `body` holds it decoded).
    pub chunked: bool,
    /// Some line of the head ended with a bare \n instead of \r\n.
    pub bare_lf: bool,
}

/// What was wrong with what came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// connect() failed.
    NoConnect,
    /// The request could not be sent.
    NoSend,
    /// The connection ended (or the time ran out) before a whole head.
    NoResponse,
    /// The bytes are not an HTTP response head.
    NotHttp,
    /// A status line and headers, then no blank line: the body (or the
    /// connection's end) came right after the last header.
    NoBlankLine,
    /// Content-Length is not a number, or absurdly large.
    BadLength,
    /// Fewer body bytes than Content-Length before the connection ended.
    ShortBody,
    /// No Content-Length and the connection stayed open: the body's end
    /// cannot be found.
    Unframed,
    /// Transfer-Encoding: chunked, and the chunks did not end properly.
    BadChunks,
}

/// A failed exchange: which way it failed, a sentence with the measured
/// values, and every byte that did arrive (a probe still looks in them,
/// for a secret that must never be sent, say).
pub struct Failed {
    pub broken: Broken,
    pub what: String,
    pub got: Vec<u8>,
    /// How the connection ended, when that is what stopped the read.
    pub end: Option<End>,
}

impl Failed {
    fn new(broken: Broken, what: impl Into<String>, got: &[u8]) -> Failed {
        Failed {
            broken,
            what: what.into(),
            got: got.to_vec(),
            end: None,
        }
    }
}

/// A request for `target`, as the probes send it: HTTP/1.1, a Host header,
/// and `Connection: close` unless the connection is meant to stay open.
pub fn request(method: &str, target: &str, addr: SocketAddr, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{connection}\r\n").into_bytes()
}

impl Conn {
    pub fn open(addr: SocketAddr, deadline: Instant) -> Result<Conn, Failed> {
        match net::connect(addr, deadline) {
            Ok(stream) => Ok(Conn {
                stream,
                buffer: Vec::new(),
            }),
            Err(err) => Err(Failed::new(
                Broken::NoConnect,
                net::connect_failure(addr, &err),
                b"",
            )),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Send bytes, all of them, before the deadline.
    pub fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), Failed> {
        match net::write_all(&mut self.stream, bytes, deadline) {
            (_, None) => Ok(()),
            (sent, Some(err)) => Err(Failed::new(
                Broken::NoSend,
                format!(
                    "sending the request stopped after {sent} of {} bytes: {err}",
                    bytes.len()
                ),
                &self.buffer,
            )),
        }
    }

    /// Wait until `until` for bytes from the program. Ok(true): bytes
    /// arrived (they wait in the buffer); Ok(false): nothing came; Err: the
    /// connection ended (FIN or RST).
    pub fn listen(&mut self, until: Instant) -> Result<bool, End> {
        match self.fill(until) {
            Ok(_) => Ok(true),
            Err(End::TimedOut) => Ok(false),
            Err(end) => Err(end),
        }
    }

    /// One read into the buffer; how many bytes came, or how it ended.
    fn fill(&mut self, deadline: Instant) -> Result<usize, End> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if net::passed(deadline) {
                return Err(End::TimedOut);
            }
            if let Err(err) = self.stream.set_read_timeout(Some(net::left(deadline))) {
                return Err(End::Error(err.to_string()));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(End::Eof),
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(match err.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => End::TimedOut,
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                            End::Reset
                        }
                        _ => End::Error(err.to_string()),
                    })
                }
            }
        }
    }

    /// Read one response. `with_body` is false for the answer to HEAD,
    /// whose Content-Length describes the body GET would get, not bytes
    /// that follow.
    pub fn read_response(
        &mut self,
        deadline: Instant,
        with_body: bool,
    ) -> Result<Response, Failed> {
        // The head: read until httparse finds the blank line.
        let (head_len, mut response) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buffer) {
                Ok(httparse::Status::Complete(len)) => {
                    let response = Response {
                        version: parsed.version.unwrap_or(1),
                        status: parsed.code.unwrap_or(0),
                        reason: printable(parsed.reason.unwrap_or("").as_bytes()),
                        headers: parsed
                            .headers
                            .iter()
                            .map(|h| (printable(h.name.as_bytes()), printable(h.value)))
                            .collect(),
                        body: Vec::new(),
                        content_length: None,
                        chunked: false,
                        bare_lf: has_bare_lf(&self.buffer[..len]),
                    };
                    break (len, response);
                }
                Ok(httparse::Status::Partial) if self.buffer.len() > MAX_HEAD => {
                    return Err(self.failed(
                        Broken::NotHttp,
                        format!(
                            "{} bytes arrived without the blank line that ends a response head",
                            self.buffer.len()
                        ),
                    ))
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) if lacks_blank_line(&self.buffer, false) => {
                    return Err(self.failed(
                        Broken::NoBlankLine,
                        format!(
                            "the headers are not followed by a blank line: the body starts right after the last header: {}",
                            net::show(&self.buffer)
                        ),
                    ))
                }
                Err(err) => {
                    return Err(self.failed(
                        Broken::NotHttp,
                        format!(
                            "this is not an HTTP response ({err}): {}",
                            net::show(&self.buffer)
                        ),
                    ))
                }
            }
            if let Err(end) = self.fill(deadline) {
                let what = if self.buffer.is_empty() {
                    format!("no response: {}", end.describe())
                } else {
                    format!(
                        "{} bytes, and no blank line to end the head, before {}: {}",
                        self.buffer.len(),
                        end.describe(),
                        net::show(&self.buffer)
                    )
                };
                let broken = if lacks_blank_line(&self.buffer, true) {
                    Broken::NoBlankLine
                } else {
                    Broken::NoResponse
                };
                let mut failed = self.failed(broken, what);
                failed.end = Some(end);
                return Err(failed);
            }
        };

        // The body: exactly Content-Length bytes, or until the close.
        let length = match response.header("content-length") {
            None => None,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if n <= MAX_BODY => Some(n),
                _ => {
                    return Err(self.failed(
                        Broken::BadLength,
                        format!("the response says Content-Length: {text:?}, which is not the size of any file served"),
                    ))
                }
            },
        };
        response.content_length = length;
        // Content-Length wins over chunked when a response has both.
        response.chunked = length.is_none()
            && response.header("transfer-encoding").is_some_and(|value| {
                value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            });
        if !with_body {
            self.buffer.drain(..head_len);
            return Ok(response);
        }
        match length {
            Some(length) => {
                while self.buffer.len() < head_len + length {
                    if let Err(end) = self.fill(deadline) {
                        let arrived = self.buffer.len() - head_len;
                        return Err(self.failed(
                            Broken::ShortBody,
                            format!(
                                "{} {}: Content-Length says {length} bytes, but only {arrived} arrived; then {}",
                                response.status,
                                response.reason,
                                end.describe()
                            ),
                        ));
                    }
                }
                response.body = self.buffer[head_len..head_len + length].to_vec();
                self.buffer.drain(..head_len + length);
            }
            None if response.chunked => {
                response.body = self.read_chunks(head_len, &response, deadline)?;
            }
            None => loop {
                match self.fill(deadline) {
                    Ok(_) if self.buffer.len() - head_len > MAX_BODY => {
                        return Err(self.failed(
                            Broken::Unframed,
                            format!("{} {} without Content-Length, and more than {MAX_BODY} bytes of body", response.status, response.reason),
                        ))
                    }
                    Ok(_) => {}
                    Err(End::Eof) => {
                        response.body = self.buffer.split_off(head_len);
                        self.buffer.clear();
                        break;
                    }
                    Err(end) => {
                        return Err(self.failed(
                            Broken::Unframed,
                            format!(
                                "{} {} without Content-Length; {} body bytes arrived, then {} (a client cannot tell where such a body ends until the connection closes)",
                                response.status,
                                response.reason,
                                self.buffer.len() - head_len,
                                end.describe()
                            ),
                        ))
                    }
                }
            },
        }
        Ok(response)
    }

    /// The body of a chunked response, decoded, whose head ends at
    /// `head_len`: chunks of "SIZE in hex\r\n", the bytes, "\r\n", until
    /// one of size 0 and the (empty or not) trailer ended by a blank line.
    /// The buffer keeps what follows.
    fn read_chunks(
        &mut self,
        head_len: usize,
        response: &Response,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failed> {
        let mut body = Vec::new();
        let mut at = head_len;
        let cut = |conn: &Conn, body: &[u8], why: String| {
            let after = if body.is_empty() {
                String::new()
            } else {
                format!("after {} bytes in whole chunks, ", body.len())
            };
            conn.failed(
                Broken::BadChunks,
                format!(
                    "{} {} with Transfer-Encoding: chunked and no Content-Length; {after}{why}",
                    response.status, response.reason,
                ),
            )
        };
        loop {
            let line = match self.line_at(at, deadline) {
                Ok(line) => line,
                Err(end) => {
                    // Bytes came, but no \r\n to end a chunk-size line:
                    // quote them (a raw file sent as if it were chunks).
                    let rest = &self.buffer[at.min(self.buffer.len())..];
                    let why = if rest.is_empty() {
                        end.describe().to_string()
                    } else {
                        let first = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
                        format!(
                            "{} bytes came where a chunk-size line (a hex number and \\r\\n) belongs, beginning {}, with no \\r\\n among them; then {}",
                            rest.len(),
                            net::show(&first[..first.len().min(40)]),
                            end.describe()
                        )
                    };
                    return Err(cut(self, &body, why));
                }
            };
            let text = String::from_utf8_lossy(&self.buffer[at..line]).into_owned();
            let digits = text.split(';').next().unwrap_or("").trim().to_string();
            let Ok(size) = usize::from_str_radix(&digits, 16) else {
                return Err(cut(
                    self,
                    &body,
                    format!(
                        "the chunk-size line is {}, not a hex number",
                        net::show(text.as_bytes())
                    ),
                ));
            };
            at = line + 2;
            if size == 0 {
                // The trailer: header lines, then an empty one.
                loop {
                    let end = match self.line_at(at, deadline) {
                        Ok(end) => end,
                        Err(end) => return Err(cut(self, &body, end.describe().to_string())),
                    };
                    let empty = end == at;
                    at = end + 2;
                    if empty {
                        self.buffer.drain(..at);
                        return Ok(body);
                    }
                }
            }
            if body.len() + size > MAX_BODY {
                return Err(cut(
                    self,
                    &body,
                    format!("a chunk of {size} bytes, more than any file here"),
                ));
            }
            while self.buffer.len() < at + size + 2 {
                if let Err(end) = self.fill(deadline) {
                    let came = self.buffer.len() - at;
                    return Err(cut(
                        self,
                        &body,
                        format!(
                            "the chunk-size line {} means 0x{digits} = {size} bytes, but only {came} bytes followed it; then {}",
                            net::show(text.as_bytes()),
                            end.describe()
                        ),
                    ));
                }
            }
            body.extend_from_slice(&self.buffer[at..at + size]);
            if &self.buffer[at + size..at + size + 2] != b"\r\n" {
                return Err(cut(
                    self,
                    &body,
                    "a chunk was not followed by \\r\\n".to_string(),
                ));
            }
            at += size + 2;
        }
    }

    /// Where the line that starts at `at` ends (the index of its \r\n),
    /// reading more when it is not all there yet.
    fn line_at(&mut self, at: usize, deadline: Instant) -> Result<usize, End> {
        loop {
            if let Some(found) = self.buffer[at.min(self.buffer.len())..]
                .windows(2)
                .position(|pair| pair == b"\r\n")
            {
                return Ok(at + found);
            }
            if self.buffer.len() > at + MAX_HEAD {
                return Err(End::Error("a line too long".to_string()));
            }
            self.fill(deadline)?;
        }
    }

    /// Everything that arrives after the responses read so far, until the
    /// program closes the connection or `until` passes (bytes already in
    /// the buffer included).
    pub fn rest(&mut self, until: Instant) -> (Vec<u8>, End) {
        let end = loop {
            if self.buffer.len() > MAX_BODY {
                break End::Complete;
            }
            if let Err(end) = self.fill(until) {
                break end;
            }
        };
        (std::mem::take(&mut self.buffer), end)
    }

    fn failed(&self, broken: Broken, what: String) -> Failed {
        Failed::new(broken, what, &self.buffer)
    }
}

impl Response {
    /// A header's value; names are case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The media type of Content-Type without its parameters
    /// ("text/html; charset=utf-8" gives "text/html").
    pub fn media_type(&self) -> Option<&str> {
        self.header("content-type")
            .map(|value| value.split(';').next().unwrap_or("").trim())
    }

    /// The status line and the headers the probes look at, for the report:
    /// `HTTP/1.1 200 OK, Content-Length: 48, Content-Type: text/css`.
    pub fn summary(&self) -> String {
        let mut text = format!("HTTP/1.{} {} {}", self.version, self.status, self.reason);
        for name in [
            "Content-Length",
            "Transfer-Encoding",
            "Content-Type",
            "Connection",
        ] {
            if let Some(value) = self.header(name) {
                text.push_str(&format!(", {name}: {value}"));
            }
        }
        text
    }
}

/// One request on a new connection, and its response. The connection is
/// returned too, for a probe that looks at what follows.
pub fn exchange(
    addr: SocketAddr,
    request: &[u8],
    with_body: bool,
    deadline: Instant,
) -> (Result<Response, Failed>, Option<Conn>) {
    let mut conn = match Conn::open(addr, deadline) {
        Ok(conn) => conn,
        Err(failed) => return (Err(failed), None),
    };
    let sent = conn.send(request, deadline);
    // Even when sending failed, the program may have answered (and closed)
    // before it read the whole request: what it said is the better report.
    let result = match (sent, conn.read_response(deadline, with_body)) {
        (_, Ok(response)) => Ok(response),
        (Err(not_sent), Err(failed)) if failed.got.is_empty() => Err(not_sent),
        (_, Err(failed)) => Err(failed),
    };
    (result, Some(conn))
}

/// Does a head that did not parse lack only its blank line? Yes when it
/// starts with a status line, then holds one or more header lines and,
/// before any empty line, a line that is no header (the body's first line);
/// or, when `ended` (the connection closed), only header lines.
fn lacks_blank_line(bytes: &[u8], ended: bool) -> bool {
    if !bytes.starts_with(b"HTTP/") {
        return false;
    }
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let mut headers = 0;
    // After the status line; the piece after the last \n is not a line yet.
    for (at, line) in lines.iter().enumerate().skip(1) {
        let last = at + 1 == lines.len();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // An empty line is the blank line; the empty piece after a final
            // \n is nothing yet.
            return last && ended && headers > 0;
        }
        let is_header = line.iter().position(|&b| b == b':').is_some_and(|colon| {
            colon > 0
                && line[..colon]
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        });
        if !is_header {
            return headers > 0;
        }
        headers += 1;
    }
    ended && headers > 0
}

/// Does a head end one of its lines with \n alone, without \r?
fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(at, &b)| b == b'\n' && (at == 0 || head[at - 1] != b'\r'))
}

/// Text from the network, made safe for a terminal: invalid UTF-8 becomes
/// U+FFFD, control characters (ESC and the C1 controls among them, which
/// could steer the terminal) are escaped, and a long value is cut.
fn printable(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    let mut text = String::new();
    for (count, ch) in String::from_utf8_lossy(bytes).chars().enumerate() {
        if count == MAX_CHARS {
            text.push('\u{2026}');
            break;
        }
        if ch.is_control() {
            text.extend(ch.escape_default());
        } else {
            text.push(ch);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_without_its_blank_line_is_told_apart_from_garbage() {
        // The body's first line right after the last header.
        let body_next = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nbody { color: red; }\n";
        assert!(lacks_blank_line(body_next, false));
        // The connection closed after the headers (HEAD).
        let closed = b"HTTP/1.1 200 OK\r\nContent-Length: 67\r\nContent-Type: text/css\r\n";
        assert!(lacks_blank_line(closed, true));
        assert!(!lacks_blank_line(closed, false));
        // A blank line is there; garbage; a status line alone.
        assert!(!lacks_blank_line(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nx", true));
        assert!(!lacks_blank_line(b"\xff\xfe garbage", true));
        assert!(!lacks_blank_line(b"HTTP/1.1 200 OK\r\n<html>\n", true));
    }

    #[test]
    fn bare_line_feeds_are_found() {
        assert!(!has_bare_lf(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"));
        assert!(has_bare_lf(b"HTTP/1.1 200 OK\nA: b\n\n"));
        assert!(has_bare_lf(b"HTTP/1.1 200 OK\r\nA: b\r\n\n"));
    }

    /// The failure `exchange` reports for a response that a local server
    /// sends whole and then closes.
    fn failure_for(response: &'static [u8]) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request);
            conn.write_all(response).unwrap();
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(3);
        let (result, _conn) = exchange(addr, &request("GET", "/", addr, true), true, deadline);
        server.join().unwrap();
        match result {
            Err(failed) => failed.what,
            Ok(_) => panic!("a malformed chunked body was accepted"),
        }
    }

    #[test]
    fn malformed_chunks_are_quoted() {
        // The raw file, no chunk framing: its first line is quoted.
        let raw = failure_for(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n<!DOCTYPE html>\n<p>hi</p>\n",
        );
        assert!(
            raw.contains("26 bytes came where a chunk-size line")
                && raw.contains("\"<!DOCTYPE html>\""),
            "{raw}"
        );
        // The size in decimal: 0x12 = 18 announced, 12 sent.
        let decimal = failure_for(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n12\r\nhello world!\r\n0\r\n\r\n",
        );
        assert!(
            decimal.contains(
                "the chunk-size line \"12\" means 0x12 = 18 bytes, but only 19 bytes followed it"
            ),
            "{decimal}"
        );
        // A line that is no number at all.
        let word =
            failure_for(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nhello\r\nx\r\n");
        assert!(
            word.contains("the chunk-size line is \"hello\", not a hex number"),
            "{word}"
        );
    }
}
