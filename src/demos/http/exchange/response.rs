//! Writing a response: the status line, the headers, the blank line.
//!
//! A response head is plain text, one line per header, each line ending in
//! CR LF, and an empty line after the last header:
//!
//! ```text
//! HTTP/1.1 200 OK\r\n
//! Date: Sat, 28 Nov 2026 00:40:00 GMT\r\n
//! Server: netlab/0.1.0\r\n
//! Content-Type: text/html; charset=utf-8\r\n
//! Content-Length: 1024\r\n
//! \r\n
//! ```
//!
//! The body follows: exactly Content-Length bytes, so the client knows where
//! this response ends and the next one (on a kept-alive connection) begins.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Body, Response};

/// What every response says in its `Server` header.
pub const SERVER: &str = concat!("netlab/", env!("CARGO_PKG_VERSION"));

/// A status code and its reason phrase, as they appear in the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub code: u16,
    pub reason: &'static str,
}

impl Status {
    pub const OK: Status = Status::new(200, "OK");
    pub const MOVED_PERMANENTLY: Status = Status::new(301, "Moved Permanently");
    pub const BAD_REQUEST: Status = Status::new(400, "Bad Request");
    pub const FORBIDDEN: Status = Status::new(403, "Forbidden");
    pub const NOT_FOUND: Status = Status::new(404, "Not Found");
    pub const METHOD_NOT_ALLOWED: Status = Status::new(405, "Method Not Allowed");
    pub const REQUEST_TIMEOUT: Status = Status::new(408, "Request Timeout");
    pub const CONTENT_TOO_LARGE: Status = Status::new(413, "Content Too Large");
    pub const URI_TOO_LONG: Status = Status::new(414, "URI Too Long");
    pub const HEADERS_TOO_LARGE: Status = Status::new(431, "Request Header Fields Too Large");
    pub const INTERNAL_ERROR: Status = Status::new(500, "Internal Server Error");
    pub const NOT_IMPLEMENTED: Status = Status::new(501, "Not Implemented");
    pub const UNAVAILABLE: Status = Status::new(503, "Service Unavailable");
    pub const VERSION_NOT_SUPPORTED: Status = Status::new(505, "HTTP Version Not Supported");

    const fn new(code: u16, reason: &'static str) -> Status {
        Status { code, reason }
    }
}

/// What the `Connection` header of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// HTTP/1.1 keeps the connection open by default: no header needed.
    KeepAliveByDefault,
    /// An HTTP/1.0 client asked for keep-alive: say yes explicitly, or it
    /// would wait for the server to close before treating the body as done.
    KeepAliveAsked,
    /// `Connection: close`: the server closes after this response.
    Close,
}

impl Connection {
    pub fn keep_alive(self) -> bool {
        self != Connection::Close
    }
}

/// Everything needed to write one response.
pub struct Reply {
    pub status: Status,
    pub content_type: &'static str,
    /// The body; its length goes into Content-Length.
    pub body: Body,
    /// True for HEAD: send the head a GET would get (Content-Length
    /// included), and no body.
    pub head_only: bool,
    pub connection: Connection,
    /// One more header, e.g. `Allow` for 405 or `Location` for 301.
    pub extra: Option<(&'static str, Cow<'static, [u8]>)>,
    pub why: Option<&'static str>,
}

impl Reply {
    /// Serialize the head and pair it with the body.
    pub fn finish(self, now: SystemTime) -> Response {
        let len = match &self.body {
            Body::Empty => 0,
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File { len, .. } => *len,
        };
        let mut head = Vec::with_capacity(192);
        head.extend_from_slice(b"HTTP/1.1 ");
        push_number(&mut head, u64::from(self.status.code));
        head.push(b' ');
        head.extend_from_slice(self.status.reason.as_bytes());
        head.extend_from_slice(b"\r\nDate: ");
        push_http_date(&mut head, now);
        head.extend_from_slice(b"\r\nServer: ");
        head.extend_from_slice(SERVER.as_bytes());
        head.extend_from_slice(b"\r\nContent-Type: ");
        head.extend_from_slice(self.content_type.as_bytes());
        // Content-Length on every response: on a connection that stays
        // open, it is how the client finds where this body ends. (For HEAD
        // it is the length of the body a GET would get.)
        head.extend_from_slice(b"\r\nContent-Length: ");
        push_number(&mut head, len);
        if let Some((name, value)) = self.extra {
            head.extend_from_slice(b"\r\n");
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(&value);
        }
        match self.connection {
            Connection::KeepAliveByDefault => {}
            Connection::KeepAliveAsked => head.extend_from_slice(b"\r\nConnection: keep-alive"),
            Connection::Close => head.extend_from_slice(b"\r\nConnection: close"),
        }
        // The blank line: the head ends here, the body starts right after.
        head.extend_from_slice(b"\r\n\r\n");
        Response {
            status: self.status.code,
            reason: self.status.reason,
            head,
            // A HEAD response has no body, whatever its Content-Length says
            // (a File is simply closed here).
            body: if self.head_only {
                Body::Empty
            } else {
                self.body
            },
            keep_alive: self.connection.keep_alive(),
            why: self.why,
        }
    }
}

/// A response whose body is a small HTML page naming the status and why:
/// every error, and the 301 that adds a slash to a directory's address.
pub fn with_page(
    status: Status,
    why: &'static str,
    head_only: bool,
    connection: Connection,
) -> Reply {
    Reply {
        status,
        content_type: HTML,
        body: Body::Bytes(error_page(status, why)),
        head_only,
        connection,
        extra: None,
        why: Some(why),
    }
}

pub const HTML: &str = "text/html; charset=utf-8";

/// The page sent with every error: valid HTML5, no external resources.
pub fn error_page(status: Status, why: &str) -> Vec<u8> {
    let mut page = Vec::with_capacity(512);
    page.extend_from_slice(
        b"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>",
    );
    push_status(&mut page, status);
    page.extend_from_slice(
        b"</title>\n<style>body{font:1.5rem/1.5 system-ui,sans-serif;margin:2rem;color:#111;background:#fff}</style>\n</head>\n<body>\n<h1>",
    );
    push_status(&mut page, status);
    page.extend_from_slice(b"</h1>\n<p>");
    push_escaped(&mut page, why.as_bytes());
    page.extend_from_slice(b"</p>\n<hr>\n<p>");
    page.extend_from_slice(SERVER.as_bytes());
    page.extend_from_slice(b"</p>\n</body>\n</html>\n");
    page
}

fn push_status(out: &mut Vec<u8>, status: Status) {
    push_number(out, u64::from(status.code));
    out.push(b' ');
    out.extend_from_slice(status.reason.as_bytes());
}

/// Append a number in decimal (no allocation, no formatter).
pub fn push_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Append bytes as HTML text: `<`, `>`, `&`, `"` and `'` become entities,
/// so a header or a file name can never become markup. Invalid UTF-8 is
/// shown as U+FFFD.
pub fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                b'<' => out.extend_from_slice(b"&lt;"),
                b'>' => out.extend_from_slice(b"&gt;"),
                b'&' => out.extend_from_slice(b"&amp;"),
                b'"' => out.extend_from_slice(b"&quot;"),
                b'\'' => out.extend_from_slice(b"&#39;"),
                _ => out.push(b),
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

/// Append `now` as an IMF-fixdate (RFC 9110, section 5.6.7), the one date
/// format HTTP servers must send: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn push_http_date(out: &mut Vec<u8>, now: SystemTime) {
    // A clock set before 1970 is shown as 1970 rather than refused.
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    out.extend_from_slice(WEEKDAYS[(days % 7) as usize]);
    out.extend_from_slice(b", ");
    push_two(out, day);
    out.push(b' ');
    out.extend_from_slice(MONTHS[(month - 1) as usize]);
    out.push(b' ');
    push_number(out, year);
    out.push(b' ');
    push_two(out, in_day / 3600);
    out.push(b':');
    push_two(out, in_day / 60 % 60);
    out.push(b':');
    push_two(out, in_day % 60);
    out.extend_from_slice(b" GMT");
}

fn push_two(out: &mut Vec<u8>, n: u64) {
    out.push(b'0' + (n / 10 % 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) in the proleptic
/// Gregorian calendar: Howard Hinnant's `civil_from_days`, for days >= 0.
///
/// The trick: count years from March 1st, so the leap day is the last day
/// of the "year", and work in 400-year eras (146,097 days each), which
/// repeat exactly.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11], 0 = March
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn date(secs: u64) -> String {
        let mut out = Vec::new();
        push_http_date(&mut out, UNIX_EPOCH + Duration::from_secs(secs));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn http_date_matches_known_dates() {
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // The example in RFC 9110.
        assert_eq!(date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        // A leap day, and the last second of a leap year.
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(date(1_735_689_599), "Tue, 31 Dec 2024 23:59:59 GMT");
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(date(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(date(4_107_456_000), "Sun, 28 Feb 2100 00:00:00 GMT");
    }

    #[test]
    fn date_before_1970_is_the_epoch() {
        let mut out = Vec::new();
        push_http_date(&mut out, UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(out, b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn numbers_and_escaping() {
        let mut out = Vec::new();
        push_number(&mut out, 0);
        out.push(b' ');
        push_number(&mut out, u64::MAX);
        assert_eq!(out, b"0 18446744073709551615");
        let mut html = Vec::new();
        push_escaped(&mut html, b"<a href=\"x\">'&'</a>\xff");
        assert_eq!(
            String::from_utf8(html).unwrap(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{FFFD}"
        );
    }

    #[test]
    fn head_has_status_line_date_server_length_and_blank_line() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let response =
            with_page(Status::NOT_FOUND, "Nothing here.", false, Connection::Close).finish(now);
        let head = String::from_utf8(response.head).unwrap();
        let Body::Bytes(body) = response.body else {
            panic!("an error page is built in memory");
        };
        assert_eq!(
            head,
            format!(
                "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: {SERVER}\r\n\
                 Content-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
        );
        assert!(!response.keep_alive);
        assert_eq!(response.why, Some("Nothing here."));
    }
}
