//! Reading a request head with httparse, and enforcing the limits.
//!
//! httparse does the tokenizing (it is small, fast, fuzzed upstream and
//! borrows from the input instead of copying). It answers one of three
//! things about the bytes received so far:
//!
//! - `Partial`: the blank line that ends the head has not arrived yet;
//! - `Complete(n)`: the head is the first `n` bytes, the body starts at `n`,
//!   and the method, target, version and headers are filled in;
//! - an error: the bytes cannot be an HTTP/1.x request.
//!
//! Everything around it is written here in the open: the limits a server
//! needs so that one client cannot make it buffer without end, the
//! Content-Length of the body, and what the client asked about keep-alive.

use super::response::Status;
use super::{Head, Limits};

/// What the bytes received so far amount to.
pub enum Parsed<'a> {
    /// Not a whole request yet (head or body), and no limit exceeded.
    NeedMore,
    /// A whole request: head and body are in the input.
    Complete(Request<'a>),
    /// Not acceptable: answer with this status and close the connection,
    /// since the server can no longer tell where the next request starts.
    Refused(Refused<'a>),
}

/// A complete request.
pub struct Request<'a> {
    pub head: Head<'a>,
    /// What the client asked for: HTTP/1.1 keeps the connection unless it
    /// sends `Connection: close`; HTTP/1.0 closes unless it sends
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
}

/// A request refused before routing.
pub struct Refused<'a> {
    pub status: Status,
    pub why: &'static str,
    /// The head, if it could be parsed (for the narration).
    pub head: Option<Head<'a>>,
    /// httparse's error, named and explained, when httparse refused it.
    pub parse_error: Option<&'static str>,
}

/// Header slots on the stack: enough for any browser, so the common case
/// needs no allocation for httparse's output.
const STACK_HEADERS: usize = 64;

/// Parse the first request in `input`.
pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Parsed<'a> {
    // 414 first: look at the request line alone. (httparse skips empty
    // lines before it, as RFC 9112 asks servers to, so we do the same.)
    let line_start = input
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(input.len());
    let line = &input[line_start..];
    let line_len = match line.iter().position(|&b| b == b'\n') {
        Some(end) if end > 0 && line[end - 1] == b'\r' => end - 1,
        Some(end) => end,
        // Not ended yet: what we have must still fit (a CR may follow).
        None => line.len().saturating_sub(1),
    };
    if line_len > limits.max_line {
        return refuse(
            Status::URI_TOO_LONG,
            "The request line is longer than the server's limit (--max-line).",
        );
    }

    let mut stack_slots = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap_slots = Vec::new();
    let slots: &mut [httparse::Header<'a>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack_slots[..limits.max_headers]
    } else {
        heap_slots.resize(limits.max_headers, httparse::EMPTY_HEADER);
        &mut heap_slots
    };
    let mut request = httparse::Request::new(slots);
    let head_len = match request.parse(input) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) if input.len() > limits.max_head => {
            return refuse(Status::HEADERS_TOO_LARGE, HEAD_TOO_LARGE);
        }
        Ok(httparse::Status::Partial) => return Parsed::NeedMore,
        Err(error) => {
            let (status, why) = match error {
                httparse::Error::TooManyHeaders => (
                    Status::HEADERS_TOO_LARGE,
                    "The request has more header fields than the server's limit (--max-headers).",
                ),
                // 505 only when the line is well formed and names another
                // version (HTTP/1.2, HTTP/2.0); anything else is malformed.
                httparse::Error::Version if names_a_version(line) => (
                    Status::VERSION_NOT_SUPPORTED,
                    "The request asks for an HTTP version other than 1.0 or 1.1.",
                ),
                _ => (Status::BAD_REQUEST, parse_error_why(error)),
            };
            return Parsed::Refused(Refused {
                status,
                why,
                head: None,
                parse_error: Some(httparse_error(error)),
            });
        }
    };
    if head_len > limits.max_head {
        return refuse(Status::HEADERS_TOO_LARGE, HEAD_TOO_LARGE);
    }

    // httparse fills in method, path and version whenever it says Complete.
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return refuse(Status::BAD_REQUEST, "The request line is incomplete.");
    };
    let mut head = Head {
        method,
        target,
        version,
        headers: Vec::with_capacity(request.headers.len()),
        head_len,
        body_len: 0,
    };

    // The headers that decide how the connection goes on.
    let mut content_length: Option<usize> = None;
    let mut bad_length = false;
    let mut chunked = false;
    let mut hosts = 0;
    let mut says_close = false;
    let mut says_keep_alive = false;
    for header in request.headers.iter() {
        head.headers.push((header.name, header.value));
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            match (parse_length(header.value), content_length) {
                (None, _) => bad_length = true,
                // Two different lengths: which one ends the body? A proxy
                // and a server that disagree is how request smuggling works.
                (Some(len), Some(first)) if len != first => bad_length = true,
                (Some(len), _) => content_length = Some(len),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                says_close |= token.eq_ignore_ascii_case(b"close");
                says_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }

    // Where does the body end? That is also where the next request starts.
    if chunked {
        // A Transfer-Encoding body (chunked) ends at a zero-size chunk. This
        // server does not decode chunked bodies (GET and HEAD never need a
        // body), so it cannot find the next request: 501 and close.
        return refused(
            Status::NOT_IMPLEMENTED,
            "The request has a Transfer-Encoding body, which this server does not read.",
            head,
        );
    }
    if bad_length {
        return refused(
            Status::BAD_REQUEST,
            "The Content-Length header is not one decimal number.",
            head,
        );
    }
    head.body_len = match content_length {
        // Checked before the method: a body over the limit is 413 whatever
        // the method, since the server will not even read past it.
        Some(len) if len > limits.max_body => {
            return refused(
                Status::CONTENT_TOO_LARGE,
                "The request body is larger than the server's limit (--max-body).",
                head,
            );
        }
        Some(len) => len,
        None => 0,
    };
    // RFC 9112, section 3.2: an HTTP/1.1 request without exactly one Host
    // header gets 400. (HTTP/1.0 predates Host.)
    if version == 1 && hosts != 1 {
        return refused(
            Status::BAD_REQUEST,
            "An HTTP/1.1 request must carry exactly one Host header.",
            head,
        );
    }
    if input.len() - head_len < head.body_len {
        return Parsed::NeedMore; // the body is still arriving
    }
    let keep_alive = !says_close && (version == 1 || says_keep_alive);
    Parsed::Complete(Request { head, keep_alive })
}

/// The methods this server answers; any other gets 405 Method Not Allowed.
pub fn is_served(method: &str) -> bool {
    method == "GET" || method == "HEAD"
}

const HEAD_TOO_LARGE: &str =
    "The request head is larger than the server's limit (--max-head), or never ends.";

fn refuse<'a>(status: Status, why: &'static str) -> Parsed<'a> {
    Parsed::Refused(Refused {
        status,
        why,
        head: None,
        parse_error: None,
    })
}

fn refused<'a>(status: Status, why: &'static str, head: Head<'a>) -> Parsed<'a> {
    Parsed::Refused(Refused {
        status,
        why,
        head: Some(head),
        parse_error: None,
    })
}

/// A Content-Length value: digits only (no sign, no spaces inside).
/// A number too big for usize is reported as usize::MAX (over any limit).
fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0usize, |n, &digit| {
        n.saturating_mul(10)
            .saturating_add(usize::from(digit - b'0'))
    }))
}

/// Is the request line well formed (exactly three parts, one space
/// between them) with a third part shaped like an HTTP version (`HTTP/`
/// and a digit)? Then 505 is the right answer for a version httparse does
/// not take; otherwise the line is malformed and gets 400. (`GET /a b
/// HTTP/1.1` has four parts: a space in the target must be sent as %20.)
fn names_a_version(line: &[u8]) -> bool {
    let end = line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    let mut parts = line[..end].split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && !target.is_empty()
        && version.len() > 5
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
}

/// The `why` of a 400 for a head httparse could not read.
fn parse_error_why(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::Token | httparse::Error::Version => {
            "The request line is malformed: it must be a method, one space, a target of printable characters (a space is sent as %20), one space, and a version such as HTTP/1.1."
        }
        httparse::Error::HeaderName => "A header name contains a character that is not allowed.",
        httparse::Error::HeaderValue => "A header value contains a control character.",
        httparse::Error::NewLine => "A CR in the request head is not followed by LF.",
        _ => "The request head is malformed.",
    }
}

/// httparse's error by its name (the variant of `httparse::Error`) and
/// what it means, for the narration: what the parser itself reported.
fn httparse_error(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::Token => {
            "httparse: Token (a character not allowed in the method or the target, or not exactly one space between them)"
        }
        httparse::Error::Version => {
            "httparse: Version (the request line does not end with HTTP/1.0 or HTTP/1.1 right after one space)"
        }
        httparse::Error::HeaderName => {
            "httparse: HeaderName (a character not allowed in a header name, such as a space or a colon missing)"
        }
        httparse::Error::HeaderValue => {
            "httparse: HeaderValue (a control character in a header value)"
        }
        httparse::Error::NewLine => {
            "httparse: NewLine (a CR not followed by LF, where a line should end)"
        }
        httparse::Error::TooManyHeaders => {
            "httparse: TooManyHeaders (more header fields than the slots the server gave it, --max-headers)"
        }
        httparse::Error::Status => "httparse: Status (an invalid status code)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_line: 100,
        max_head: 300,
        max_headers: 5,
        max_body: 50,
    };

    fn status(input: &[u8]) -> Option<u16> {
        match parse(input, &LIMITS) {
            Parsed::NeedMore => None,
            Parsed::Complete(_) => Some(200),
            Parsed::Refused(refused) => Some(refused.status.code),
        }
    }

    #[test]
    fn a_complete_request_reports_head_and_body_lengths() {
        let input = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
        let Parsed::Complete(request) = parse(input, &LIMITS) else {
            panic!("a whole request");
        };
        assert_eq!(request.head.method, "POST");
        assert_eq!(request.head.target, "/form");
        assert_eq!(request.head.version, 1);
        assert_eq!(request.head.headers.len(), 2);
        assert_eq!(request.head.head_len, input.len() - 6);
        assert_eq!(request.head.body_len, 3);
        assert!(request.keep_alive);
    }

    #[test]
    fn every_prefix_of_a_request_needs_more() {
        let input =
            b"\r\nGET /a%20b?x=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi";
        for split in 0..input.len() {
            assert_eq!(status(&input[..split]), None, "split at {split}");
        }
        assert_eq!(status(input), Some(200));
    }

    #[test]
    fn limits_give_414_431_413() {
        let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
        assert_eq!(status(long_line.as_bytes()), Some(414));
        // Not even ended yet, and already too long.
        assert_eq!(status(&long_line.as_bytes()[..103]), Some(414));
        let exactly = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(86));
        assert_eq!(status(exactly.as_bytes()), Some(200));

        let big_head = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "b".repeat(300)
        );
        assert_eq!(status(big_head.as_bytes()), Some(431));
        assert_eq!(status(&big_head.as_bytes()[..301]), Some(431));
        assert_eq!(status(&[b'\n'; 301]), Some(431));

        let many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
        assert_eq!(status(many.as_bytes()), Some(431));

        let big_body = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 51\r\n\r\n";
        assert_eq!(status(big_body), Some(413));
        let huge = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(status(huge), Some(413));
        let post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 51\r\n\r\n";
        assert_eq!(status(post), Some(413));
    }

    #[test]
    fn more_header_slots_than_the_stack_holds() {
        let limits = Limits {
            max_headers: 100,
            max_head: 10_000,
            ..LIMITS
        };
        let mut input = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..80 {
            input.push_str(&format!("X-{i}: {i}\r\n"));
        }
        input.push_str("\r\n");
        assert!(matches!(
            parse(input.as_bytes(), &limits),
            Parsed::Complete(_)
        ));
    }

    #[test]
    fn malformed_requests_get_400_and_other_versions_505() {
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n"),
            Some(400)
        );
        assert_eq!(status(b"GET  / HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET / FTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status(b"\x00\x01\x02\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), Some(505));
        assert_eq!(status(b"GET / HTTP/1.2\r\n\r\n"), Some(505));
        assert_eq!(status(b"GET / HTTP/3"), Some(505));
        // HTTP/1.1 needs exactly one Host; HTTP/1.0 does not.
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Some(400)
        );
        assert_eq!(status(b"GET / HTTP/1.0\r\n\r\n"), Some(200));
    }

    #[test]
    fn body_length_rules() {
        let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(status(te), Some(501));
        let both = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(status(both), Some(501));
        let twice =
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(status(twice), Some(400));
        let same =
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(status(same), Some(200));
        for bad in ["-1", "+1", "1 1", "0x10", ""] {
            let input = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(status(input.as_bytes()), Some(400), "{bad:?}");
        }
    }

    #[test]
    fn keep_alive_wishes() {
        let wish = |input: &[u8]| match parse(input, &LIMITS) {
            Parsed::Complete(request) => request.keep_alive,
            _ => panic!("a whole request"),
        };
        assert!(wish(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!wish(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n"
        ));
        assert!(!wish(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, close\r\n\r\n"
        ));
        assert!(!wish(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(wish(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!wish(
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
    }
}
