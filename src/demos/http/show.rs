//! The narration of HTTP: each request as it arrived, each response as it
//! leaves, and the counters of the once-a-second summary.
//!
//! Every function here is called only when the current step is shown
//! (`nar.showing()`), except `count_response`, which only adds to counters
//! (free with `--quiet`). So under load nothing is formatted.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use serde_json::json;

use super::exchange::{Body, Head, Response};
use crate::narrate::text::show_bytes;
use crate::narrate::Narrator;

/// How much of the raw request the narration shows.
const SHOW_RAW: usize = 400;

/// How much of a request target the human lines show.
const SHOW_TARGET: usize = 200;

/// A request as httparse saw it: the request line, what httparse returned,
/// every header, and the raw bytes.
pub fn request(nar: &Narrator, fd: RawFd, peer: SocketAddr, head: &Head<'_>, raw: &[u8]) {
    let version = format!("HTTP/1.{}", head.version);
    // A long target (up to --max-line) is cut in the human lines.
    let target = cut(head.target, SHOW_TARGET);
    nar.info(
        "request",
        json!({
            "fd": fd,
            "peer": peer.to_string(),
            "method": head.method,
            "target": head.target,
            "version": version,
            "headers": head.headers.len(),
            "head_len": head.head_len,
            "body_len": head.body_len,
        }),
        format!(
            "request from {peer} on fd {fd}: {} {target} {version}",
            head.method
        ),
    );
    nar.info(
        "parsed",
        json!({ "head_len": head.head_len, "headers": head.headers.len() }),
        format!(
            "httparse: Complete({}): method {}, path {target}, version 1.{}, headers: {}; the body starts at byte {} and is {} long",
            head.head_len,
            head.method,
            head.version,
            head.headers.len(),
            head.head_len,
            crate::narrate::text::bytes(head.body_len)
        ),
    );
    for (name, value) in &head.headers {
        nar.info(
            "request_header",
            json!({ "name": name, "value": String::from_utf8_lossy(value) }),
            format!("  {name}: {}", header_text(value)),
        );
    }
    let shown = raw.len().min(head.head_len).min(SHOW_RAW);
    nar.info(
        "request_bytes",
        json!({ "len": head.head_len }),
        format!(
            "the head as received, {} bytes: {}",
            head.head_len,
            show_bytes(&raw[..shown], SHOW_RAW)
        ),
    );
}

/// Bytes that could not be parsed as a request (the 400 and its kin), and
/// httparse's error about them when it had one.
pub fn unparsed(
    nar: &Narrator,
    fd: RawFd,
    peer: SocketAddr,
    raw: &[u8],
    parse_error: Option<&'static str>,
) {
    nar.info(
        "request",
        json!({ "fd": fd, "peer": peer.to_string(), "method": null }),
        format!(
            "bytes from {peer} on fd {fd} that are not a request we can serve: {}",
            show_bytes(raw, 80)
        ),
    );
    if let Some(error) = parse_error {
        nar.info(
            "parse_error",
            json!(error),
            format!("{error}; the answer is 400 Bad Request"),
        );
    }
}

/// At most `max` characters of `text`, and how many bytes were left out.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}… (+{} bytes)", &text[..end], text.len() - end),
        None => text.to_string(),
    }
}

/// A response: its status line, each header, and where the body comes from.
pub fn response(nar: &Narrator, fd: RawFd, response: &Response, head_request: bool) {
    let (source, body_len) = match &response.body {
        Body::Empty if head_request => ("none (HEAD: the head a GET would get, no body)", 0),
        Body::Empty => ("none", 0),
        Body::Bytes(bytes) if response.status >= 400 => ("error page", bytes.len() as u64),
        Body::Bytes(bytes) => ("built in memory", bytes.len() as u64),
        Body::File { len, .. } => ("file", *len),
    };
    let status_line = head_lines(&response.head).next().unwrap_or("");
    nar.info(
        "response",
        json!({
            "fd": fd,
            "status": response.status,
            "reason": response.reason,
            "body": source,
            "body_len": body_len,
            "keep_alive": response.keep_alive,
            "why": response.why,
        }),
        format!(
            "response on fd {fd}: {status_line}; body: {source}, {}; {}",
            crate::narrate::text::bytes(body_len as usize),
            if response.keep_alive {
                "the connection stays open for the next request"
            } else {
                "the connection closes after it"
            }
        ),
    );
    if let Some(why) = response.why {
        nar.info("why", json!(why), format!("  why: {why}"));
    }
    for line in head_lines(&response.head).skip(1) {
        nar.info("response_header", json!(line), format!("  {line}"));
    }
}

/// A header value as text: httparse allows only visible bytes, spaces and
/// tabs in it, but not necessarily UTF-8; long values are cut.
fn header_text(value: &[u8]) -> String {
    const SHOW: usize = 120;
    let text = String::from_utf8_lossy(&value[..value.len().min(SHOW)]);
    if value.len() > SHOW {
        format!("{text}… (+{} bytes)", value.len() - SHOW)
    } else {
        text.into_owned()
    }
}

/// The lines of a serialized head, without the blank line that ends it.
fn head_lines(head: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(head)
        .unwrap_or("")
        .split("\r\n")
        .filter(|line| !line.is_empty())
}

/// The summary's counters: one more response, by status class.
pub fn count_response(nar: &Narrator, status: u16) {
    nar.count("requests", 1);
    nar.count(
        match status {
            100..=199 => "status_1xx",
            200..=299 => "status_2xx",
            300..=399 => "status_3xx",
            400..=499 => "status_4xx",
            _ => "status_5xx",
        },
        1,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_splits_into_its_lines() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let lines: Vec<&str> = head_lines(head).collect();
        assert_eq!(lines, ["HTTP/1.1 200 OK", "Content-Length: 5"]);
    }

    #[test]
    fn a_long_target_is_cut() {
        assert_eq!(cut("/short", 10), "/short");
        assert_eq!(cut("/abcdefghij", 4), "/abc… (+7 bytes)");
    }
}
