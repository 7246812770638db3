//! The request-handling core of `netlab http-server`: bytes in, response out.
//!
//! The connection layer (../mod.rs and the models) owns the sockets: it
//! reads what a client sent, calls [`handle`] with all the bytes it holds,
//! writes the response it gets back, drops `consumed` bytes and calls again
//! for the next, pipelined, request. Everything between the bytes and the
//! response is here, in the order a request goes through it:
//!
//! - `request.rs`: httparse reads the head; the limits (414, 431, 413) and
//!   the headers that decide where the request ends and whether the
//!   connection stays open;
//! - this file: routing by method (GET and HEAD; 405 for the rest) and by
//!   site (the built-in page, or files under `--root`);
//! - `files.rs`: turning a target into a file safely (traversal checks,
//!   `openat2` with RESOLVE_BENEATH), Content-Type, directory listings;
//! - `page.rs`: the built-in page that shows a client its own request;
//! - `response.rs`: the status line, the headers and the date format.
//!
//! No sockets, no narrator, no crate-internal imports (only std, httparse
//! and libc), so that `fuzz/` can include this folder with `#[path]` and
//! drive it directly; and no input may make it panic.

mod files;
mod page;
mod request;
mod response;

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use response::{Connection, Reply, Status};

/// Size limits on what a client may send (each one an http-server option).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line in bytes; longer gets 414 URI Too Long.
    pub max_line: usize,
    /// Longest request head (request line + headers) in bytes; longer gets
    /// 431 Request Header Fields Too Large.
    pub max_head: usize,
    /// Most header fields; more gets 431.
    pub max_headers: usize,
    /// Largest request body accepted (Content-Length); larger gets 413.
    pub max_body: usize,
}

impl Default for Limits {
    /// Generous for browsers and curl, small enough that a client cannot
    /// make the server buffer much: 8 KiB request line, 16 KiB head (nginx
    /// and Apache use similar sizes), 100 headers, 1 MiB body.
    fn default() -> Limits {
        Limits {
            max_line: 8 * 1024,
            max_head: 16 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
        }
    }
}

/// What the server serves: the built-in page (no root) or a directory.
#[derive(Debug)]
pub struct Site {
    /// The canonical root directory, or None for the built-in page.
    pub root: Option<PathBuf>,
    /// The root directory, held open for the server's lifetime: every file
    /// is opened relative to this fd, so the kernel can keep it beneath.
    pub root_dir: Option<File>,
    /// True when the kernel has openat2 (Linux 5.6+); false means the
    /// fallback that refuses every symlink (see files.rs).
    pub beneath: bool,
    /// Record the file system calls made for each request in
    /// [`Exchange::trace`], for the narration. False by default: tracing
    /// allocates (strings for the arguments), the untraced path does not.
    pub trace: bool,
}

impl Site {
    /// Check and canonicalize the root directory (an error names the reason).
    pub fn new(root: Option<&Path>) -> io::Result<Site> {
        let Some(dir) = root else {
            return Ok(Site {
                root: None,
                root_dir: None,
                beneath: false,
                trace: false,
            });
        };
        // Canonical once, at start, for messages; requests never resolve
        // this path again, they go through the fd below.
        let root = dir.canonicalize()?;
        // A directory can be opened read-only like a file; the fd is what
        // openat2 resolves request paths relative to. O_DIRECTORY makes the
        // kernel refuse anything else (ENOTDIR). std adds O_CLOEXEC itself.
        let root_dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&root)
            .map_err(|error| match error.raw_os_error() {
                Some(libc::ENOTDIR) => {
                    io::Error::new(io::ErrorKind::InvalidInput, "the root is not a directory")
                }
                _ => error,
            })?;
        let beneath = files::has_openat2(&root_dir);
        Ok(Site {
            root: Some(root),
            root_dir: Some(root_dir),
            beneath,
            trace: false,
        })
    }

    /// The root directory's fd (the `dirfd` of every openat2), if any.
    // Read by the connection layer (the narration); until it does, the
    // compiler would call this unused.
    #[allow(dead_code)]
    pub fn root_fd(&self) -> Option<i32> {
        self.root_dir.as_ref().map(|dir| dir.as_raw_fd())
    }

    /// How [`Site::new`] opened the root, as the arguments of the open
    /// call, for the narration: `"/srv/site", O_RDONLY|O_DIRECTORY|O_CLOEXEC`.
    // Read by the connection layer (the narration); until it does, the
    // compiler would call this unused.
    #[allow(dead_code)]
    pub fn root_open_args(&self) -> Option<String> {
        let root = self.root.as_ref()?;
        Some(format!(
            "{}, O_RDONLY|O_DIRECTORY|O_CLOEXEC",
            files::quoted(root.as_os_str().as_encoded_bytes())
        ))
    }
}

/// One system call the core made while answering a request (only recorded
/// when [`Site::trace`] is true), so that the narration hides none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traced {
    /// The call: "openat2", "openat", "fstat", "getdents64"...
    pub call: &'static str,
    /// Its arguments as text, e.g. `root fd 3, "docs/a b.html", O_RDONLY|...`.
    pub args: String,
    /// What it returned: `Ok("fd 7")`, `Ok("regular file, 1024 bytes")`, or
    /// the errno.
    pub result: Result<String, i32>,
}

/// The result of looking at the bytes received so far on one connection.
// NeedMore is small and Reply large: clippy suggests a Box, which would be
// one more allocation per request for nothing (the value is moved out at once).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The request head (or its body) is not complete yet, and no limit is
    /// exceeded: read more, then call [`handle`] again with all of it.
    NeedMore,
    /// One request answered (or refused).
    Reply(Exchange<'a>),
}

/// One request and its response.
#[derive(Debug)]
pub struct Exchange<'a> {
    /// How many bytes of the input this request used (head + body). The
    /// caller drops them; what follows is the next, pipelined, request.
    /// Always > 0.
    pub consumed: usize,
    /// The parsed head, for the narration; None when it could not be parsed.
    pub request: Option<Head<'a>>,
    /// What to send back.
    pub response: Response,
    /// The file system calls made for this request, in order (empty unless
    /// [`Site::trace`] is set). Closing a file sent back in [`Body::File`]
    /// is the caller's, since it owns the `File`.
    // Read by the connection layer (the narration); until it does, the
    // compiler would call this unused.
    #[allow(dead_code)]
    pub trace: Vec<Traced>,
    /// httparse's error, named and explained, when the head did not parse:
    /// e.g. "httparse: Token (a character not allowed in a method or header
    /// name)". None otherwise.
    // Read by the connection layer (the narration); until it does, the
    // compiler would call this unused.
    #[allow(dead_code)]
    pub parse_error: Option<&'static str>,
}

/// httparse's view of a request head, borrowed from the input.
#[derive(Debug)]
pub struct Head<'a> {
    /// `GET`, `HEAD`, `POST`... (case matters: `get` is another method).
    pub method: &'a str,
    /// The request target as sent, e.g. `/docs/a%20b.html?x=1`.
    pub target: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Every header as (name, value), in the order sent. Values are bytes:
    /// HTTP allows non-ASCII there, and it need not be UTF-8.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// Where the body starts: the length of the head including the blank line.
    pub head_len: usize,
    /// Content-Length of the body (0 when absent).
    pub body_len: usize,
}

/// A response: the head already serialized, and the body to stream.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: &'static str,
    /// Status line, headers and the blank line, ready to send.
    pub head: Vec<u8>,
    pub body: Body,
    /// False when the connection must be closed after this response.
    pub keep_alive: bool,
    /// Why this status, as a whole sentence for the narration (e.g. for a
    /// 403: "The path would leave the root directory."), if there is one.
    pub why: Option<&'static str>,
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// No body (HEAD, 304...).
    Empty,
    /// A body built in memory (the built-in page, error pages, listings).
    Bytes(Vec<u8>),
    /// A file to stream, `len` bytes from offset 0, never read whole into memory.
    File { file: File, len: u64 },
}

/// Look at the bytes received so far and answer the first request in them.
///
/// `input` is everything unread on the connection; `peer` is the client
/// (shown on the built-in page); `now` goes into the Date header.
pub fn handle<'a>(
    site: &Site,
    limits: &Limits,
    input: &'a [u8],
    peer: SocketAddr,
    now: SystemTime,
) -> Outcome<'a> {
    let request = match request::parse(input, limits) {
        request::Parsed::NeedMore => return Outcome::NeedMore,
        request::Parsed::Complete(request) => request,
        request::Parsed::Refused(refused) => {
            // The server cannot tell where the next request would start:
            // answer, then close, and count everything received as used.
            let head_only = refused
                .head
                .as_ref()
                .is_some_and(|head| head.method == "HEAD");
            let response =
                response::with_page(refused.status, refused.why, head_only, Connection::Close)
                    .finish(now);
            return Outcome::Reply(Exchange {
                consumed: input.len(),
                request: refused.head,
                response,
                trace: Vec::new(),
                parse_error: refused.parse_error,
            });
        }
    };
    let head = request.head;
    let consumed = head.head_len + head.body_len;
    let connection = match (request.keep_alive, head.version) {
        (false, _) => Connection::Close,
        (true, 1) => Connection::KeepAliveByDefault,
        (true, _) => Connection::KeepAliveAsked,
    };
    let head_only = head.method == "HEAD";
    if !request::is_served(head.method) {
        // Any other method: the body (if any) has been received and is
        // skipped, so the connection can go on. (A body over --max-body was
        // refused with 413 and a close before we got here.)
        let mut reply = response::with_page(
            Status::METHOD_NOT_ALLOWED,
            "This server only answers GET and HEAD.",
            false,
            connection,
        );
        reply.extra = Some(("Allow", Cow::Borrowed(ALLOW)));
        return Outcome::Reply(Exchange {
            consumed,
            response: reply.finish(now),
            request: Some(head),
            trace: Vec::new(),
            parse_error: None,
        });
    }
    let raw = &input[..consumed];
    // Vec::new() does not allocate: without tracing, nothing is pushed.
    let mut trace = Vec::new();
    let mut tracer = files::Tracer(site.trace.then_some(&mut trace));
    let response = route(site, &head, raw, peer, head_only, connection, &mut tracer).finish(now);
    Outcome::Reply(Exchange {
        consumed,
        request: Some(head),
        response,
        trace,
        parse_error: None,
    })
}

/// 408 Request Timeout, for the connection layer to send when a client
/// took longer than the server waits: same headers and page as every other
/// response, and the connection closes. `head_complete` says which part was
/// late: the head, or the body its Content-Length announced.
// Read by the connection layer (the narration); until it does, the
// compiler would call this unused.
#[allow(dead_code)]
pub fn timeout_response(now: SystemTime, head_complete: bool) -> Response {
    let why = if head_complete {
        "The request head arrived, but the body its Content-Length announced did not arrive complete within --header-timeout."
    } else {
        "The request head did not arrive complete within --header-timeout."
    };
    response::with_page(Status::REQUEST_TIMEOUT, why, false, Connection::Close).finish(now)
}

/// The `Allow` header of a 405: what this server does answer.
const ALLOW: &[u8] = b"GET, HEAD";

/// Decide what a GET or HEAD gets.
fn route(
    site: &Site,
    head: &Head<'_>,
    raw: &[u8],
    peer: SocketAddr,
    head_only: bool,
    connection: Connection,
    trace: &mut files::Tracer,
) -> Reply {
    let refuse = |refusal: files::Refusal| {
        // A 400 or 414 means the client is confused: close. A 403 or 404
        // is an ordinary answer on a connection that can go on.
        let connection = match refusal.status.code {
            400 | 414 => Connection::Close,
            _ => connection,
        };
        response::with_page(refusal.status, refusal.why, head_only, connection)
    };
    // Every target is decoded and checked first, whatever is served.
    let path = match files::Path::parse(head.target) {
        Ok(path) => path,
        Err(refusal) => return refuse(refusal),
    };
    let ok = |content_type, body, why| Reply {
        status: Status::OK,
        content_type,
        body,
        head_only,
        connection,
        extra: None,
        why,
    };
    let Some(root_dir) = &site.root_dir else {
        // No --root: the built-in page, whatever the path, and an icon.
        if path.decoded() == b"/favicon.ico" {
            return ok("image/x-icon", Body::Bytes(page::FAVICON.to_vec()), None);
        }
        return ok(
            response::HTML,
            Body::Bytes(page::page(head, raw, peer)),
            Some("The built-in page shows the client its own request."),
        );
    };
    match files::open(root_dir, site.beneath, &path, trace) {
        Ok(files::Found::File {
            file,
            len,
            content_type,
        }) => ok(content_type, Body::File { file, len }, None),
        Ok(files::Found::Listing(page)) => ok(
            response::HTML,
            Body::Bytes(page),
            Some("The directory has no index.html, so the server lists it."),
        ),
        Ok(files::Found::AddSlash) => {
            let mut reply = response::with_page(
                Status::MOVED_PERMANENTLY,
                "A directory's address ends with /, so that the links in its page resolve inside it.",
                head_only,
                connection,
            );
            reply.extra = Some(("Location", Cow::Owned(files::with_slash(&path))));
            reply
        }
        Err(refusal) => refuse(refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::{Duration, UNIX_EPOCH};

    /// A root directory under the temp dir (the pid in its name, so
    /// parallel runs do not collide), removed when dropped.
    struct Fixture {
        dir: PathBuf,
    }

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let dir = std::env::temp_dir()
                .join(format!("netlab-http-core-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("root/sub")).unwrap();
            std::fs::create_dir_all(dir.join("root/empty")).unwrap();
            std::fs::write(dir.join("root/hello.txt"), b"hello\n").unwrap();
            std::fs::write(dir.join("root/a b.html"), b"<p>space</p>").unwrap();
            std::fs::write(dir.join("root/sub/index.html"), b"<p>index</p>").unwrap();
            std::fs::write(dir.join("root/empty/z.txt"), b"z").unwrap();
            std::fs::write(dir.join("root/empty/<odd> & name.txt"), b"").unwrap();
            let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
            std::fs::write(dir.join("root/data.bin"), binary).unwrap();
            std::fs::write(dir.join("secret.txt"), b"TOP SECRET").unwrap();
            std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("root/escape")).unwrap();
            std::os::unix::fs::symlink("../secret.txt", dir.join("root/escape-relative")).unwrap();
            std::os::unix::fs::symlink("hello.txt", dir.join("root/inside")).unwrap();
            std::os::unix::fs::symlink("loop", dir.join("root/loop")).unwrap();
            Fixture { dir }
        }

        fn site(&self) -> Site {
            Site::new(Some(&self.dir.join("root"))).unwrap()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const LIMITS: Limits = Limits {
        max_line: 200,
        max_head: 1000,
        max_headers: 10,
        max_body: 100,
    };

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    fn exchange<'a>(site: &Site, input: &'a [u8]) -> Exchange<'a> {
        match handle(site, &LIMITS, input, peer(), now()) {
            Outcome::Reply(exchange) => exchange,
            Outcome::NeedMore => panic!("a whole request: {:?}", String::from_utf8_lossy(input)),
        }
    }

    fn get(site: &Site, target: &str) -> Response {
        let input = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        exchange(site, input.as_bytes()).response
    }

    fn head_text(response: &Response) -> String {
        String::from_utf8(response.head.clone()).unwrap()
    }

    fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
        let head = std::str::from_utf8(&response.head).ok()?;
        head.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(": ")?;
            key.eq_ignore_ascii_case(name).then_some(value)
        })
    }

    /// The body, whatever its kind, read whole (fine for test files).
    fn body(response: Response) -> Vec<u8> {
        match response.body {
            Body::Empty => Vec::new(),
            Body::Bytes(bytes) => bytes,
            Body::File { mut file, len } => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).unwrap();
                assert_eq!(bytes.len() as u64, len);
                bytes
            }
        }
    }

    fn builtin() -> Site {
        Site::new(None).unwrap()
    }

    #[test]
    fn builtin_page_shows_the_request_and_keeps_the_connection() {
        let input =
            b"GET /x?y=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 <test>\r\n\r\n";
        let exchange = exchange(&builtin(), input);
        assert_eq!(exchange.consumed, input.len());
        let request = exchange.request.as_ref().unwrap();
        assert_eq!((request.method, request.target), ("GET", "/x?y=1"));
        let response = exchange.response;
        assert_eq!((response.status, response.reason), (200, "OK"));
        assert!(response.keep_alive);
        assert!(head_text(&response).starts_with("HTTP/1.1 200 OK\r\n"));
        assert_eq!(
            header(&response, "Date"),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(header(&response, "Server"), Some(response::SERVER));
        assert_eq!(header(&response, "Connection"), None);
        assert_eq!(header(&response, "Content-Type"), Some(response::HTML));
        let length: usize = header(&response, "Content-Length")
            .unwrap()
            .parse()
            .unwrap();
        let page = String::from_utf8(body(response)).unwrap();
        assert_eq!(page.len(), length);
        assert!(page.contains("Mozilla/5.0 &lt;test&gt;"));
        assert!(page.contains("127.0.0.1"));
    }

    #[test]
    fn favicon_is_an_icon() {
        let response = get(&builtin(), "/favicon.ico?v=2");
        assert_eq!(response.status, 200);
        assert_eq!(header(&response, "Content-Type"), Some("image/x-icon"));
        assert_eq!(body(response), page::FAVICON);
    }

    #[test]
    fn head_gets_the_get_headers_and_no_body() {
        let fixture = Fixture::new("head");
        for site in [builtin(), fixture.site()] {
            for target in ["/hello.txt", "/nothing", "/sub", "/empty/"] {
                let get = get(&site, target);
                let input = format!("HEAD {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
                let head = exchange(&site, input.as_bytes()).response;
                assert_eq!(head.status, get.status, "{target}");
                assert_eq!(head.keep_alive, get.keep_alive);
                assert!(matches!(head.body, Body::Empty));
                let length = header(&head, "Content-Length").map(str::to_owned);
                let get_length = header(&get, "Content-Length").map(str::to_owned);
                if site.root.is_some() {
                    // The built-in page differs (it shows the method), files do not.
                    assert_eq!(head_text(&head), head_text(&get), "{target}");
                }
                assert_eq!(length.is_some(), get_length.is_some());
                assert!(length.unwrap().parse::<u64>().unwrap() > 0);
            }
        }
    }

    #[test]
    fn pipelined_requests_are_answered_one_at_a_time() {
        let site = builtin();
        let first = b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
        let second = b"HEAD /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        let input = [&first[..], &second[..]].concat();
        let one = exchange(&site, &input);
        assert_eq!(one.consumed, first.len());
        assert_eq!(one.request.unwrap().target, "/one");
        assert!(one.response.keep_alive);
        let two = exchange(&site, &input[one.consumed..]);
        assert_eq!(two.consumed, second.len());
        assert_eq!(two.request.unwrap().target, "/two");
        assert!(!two.response.keep_alive);
        assert_eq!(header(&two.response, "Connection"), Some("close"));
    }

    #[test]
    fn every_split_point_needs_more() {
        let site = builtin();
        let input = b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody";
        for split in 0..input.len() {
            assert!(
                matches!(
                    handle(&site, &LIMITS, &input[..split], peer(), now()),
                    Outcome::NeedMore
                ),
                "split at {split}"
            );
        }
        let whole = exchange(&site, input);
        assert_eq!(whole.consumed, input.len());
        assert_eq!(whole.response.status, 405);
    }

    #[test]
    fn other_methods_get_405_with_allow_and_the_body_skipped() {
        let site = builtin();
        let input =
            b"DELETE / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n";
        let deleted = exchange(&site, input);
        assert_eq!(deleted.consumed, input.len() - 16);
        let response = deleted.response;
        assert_eq!(
            (response.status, response.reason),
            (405, "Method Not Allowed")
        );
        assert_eq!(header(&response, "Allow"), Some("GET, HEAD"));
        assert!(response.keep_alive);
        assert!(response.why.is_some());
        // A body over the limit is refused first: 413, and close.
        let big = format!(
            "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n{}",
            "x".repeat(101)
        );
        let closed = exchange(&site, big.as_bytes()).response;
        assert_eq!(closed.status, 413);
        assert_eq!(header(&closed, "Connection"), Some("close"));
        // Methods are case-sensitive: "get" is not GET.
        let lower = b"get / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(exchange_status(&site, lower), (405, true));
    }

    fn exchange_status(site: &Site, input: &[u8]) -> (u16, bool) {
        let response = exchange(site, input).response;
        (response.status, response.keep_alive)
    }

    #[test]
    fn errors_that_lose_the_request_boundary_close() {
        let site = builtin();
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(300));
        let many_headers = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X: y\r\n".repeat(20));
        let cases: [(&[u8], u16); 7] = [
            (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
            (long_target.as_bytes(), 414),
            (many_headers.as_bytes(), 431),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
                413,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
            ),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ];
        for (input, status) in cases {
            let exchange = exchange(&site, input);
            let response = exchange.response;
            assert_eq!(
                response.status,
                status,
                "{}",
                String::from_utf8_lossy(input)
            );
            assert!(!response.keep_alive);
            assert_eq!(header(&response, "Connection"), Some("close"));
            assert!(response.why.is_some());
            let length: usize = header(&response, "Content-Length")
                .unwrap()
                .parse()
                .unwrap();
            let page = body(response);
            assert_eq!(page.len(), length);
            assert!(page.starts_with(b"<!DOCTYPE html>"));
        }
    }

    #[test]
    fn a_space_in_the_target_is_400_and_another_version_505() {
        let site = builtin();
        let spaced = exchange(&site, b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(spaced.response.status, 400);
        assert!(spaced.response.why.unwrap().contains("%20"));
        for version in ["HTTP/1.2", "HTTP/2.0"] {
            let input = format!("GET / {version}\r\nHost: a\r\n\r\n");
            assert_eq!(exchange(&site, input.as_bytes()).response.status, 505);
        }
        // A line with the wrong number of spaces is malformed, whatever its end.
        assert_eq!(exchange_status(&site, b"GET  / HTTP/1.2\r\n\r\n").0, 400);
        assert_eq!(exchange_status(&site, b"GET /  HTTP/1.2\r\n\r\n").0, 400);
    }

    #[test]
    fn httparse_errors_are_named_for_the_narration() {
        let site = builtin();
        let cases: [(&[u8], &str); 4] = [
            (
                b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
                "httparse: Version (",
            ),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", "httparse: Version ("),
            (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "httparse: Token ("),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
                "httparse: HeaderName (",
            ),
        ];
        for (input, name) in cases {
            let parse_error = exchange(&site, input).parse_error;
            assert!(
                parse_error.is_some_and(|error| error.starts_with(name)),
                "{}: {parse_error:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Parsed fine (even if refused afterwards): no httparse error.
        assert_eq!(
            exchange(&site, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").parse_error,
            None
        );
        let big = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n";
        assert_eq!(exchange(&site, big).parse_error, None);
    }

    #[test]
    fn absolute_form_is_served_by_its_path() {
        let fixture = Fixture::new("absolute");
        let response = get(&fixture.site(), "http://example.com:8000/hello.txt?x=1");
        assert_eq!(response.status, 200);
        assert_eq!(body(response), b"hello\n");
        let page = get(&builtin(), "http://example.com/where");
        assert_eq!(page.status, 200);
    }

    #[test]
    fn path_max_applies_to_the_decoded_path_and_only_with_a_root() {
        let limits = Limits::default();
        let request = |site: &Site, target: &str| {
            let input = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            match handle(site, &limits, input.as_bytes(), peer(), now()) {
                Outcome::Reply(exchange) => exchange.response.status,
                Outcome::NeedMore => panic!("a whole request"),
            }
        };
        // Without a root no file is opened: up to --max-line gets the page.
        let longest = format!("/{}", "a".repeat(limits.max_line - "GET / HTTP/1.1".len()));
        assert_eq!(request(&builtin(), &longest), 200);
        assert_eq!(request(&builtin(), &format!("{longest}a")), 414);
        // With a root: a decoded path of PATH_MAX bytes is looked for (404:
        // short names, so the kernel only finds the first one missing)...
        let fixture = Fixture::new("pathmax");
        let site = fixture.site();
        let path = |len: usize| {
            let mut path = "/abc".repeat(len / 4);
            path.push_str(&"d".repeat(len % 4));
            assert_eq!(path.len(), len);
            path
        };
        assert_eq!(request(&site, &path(files::PATH_MAX)), 404);
        // ...one byte more is 414 before any system call,
        assert_eq!(request(&site, &path(files::PATH_MAX + 1)), 414);
        // ...and what counts is the decoded length: %61%2F is two bytes, "a/".
        let encoded = format!("/{}", "%61%2F".repeat(1000));
        assert!(encoded.len() > files::PATH_MAX);
        assert_eq!(request(&site, &encoded), 404);
    }

    #[test]
    fn hidden_files_are_neither_served_nor_listed() {
        let fixture = Fixture::new("hidden");
        std::fs::write(fixture.dir.join("root/.env"), b"PASSWORD=x").unwrap();
        std::fs::create_dir(fixture.dir.join("root/.git")).unwrap();
        std::fs::write(fixture.dir.join("root/.git/config"), b"[core]").unwrap();
        std::fs::write(fixture.dir.join("root/empty/.hidden"), b"").unwrap();
        let site = fixture.site();
        for target in [
            "/.env",
            "/.git/config",
            "/.git/",
            "/%2egit/config",
            "/empty/.hidden",
        ] {
            let response = get(&site, target);
            assert_eq!(response.status, 403, "{target}");
            assert!(response.why.unwrap().contains("hidden"));
        }
        let root = String::from_utf8(body(get(&site, "/"))).unwrap();
        assert!(!root.contains(".env") && !root.contains(".git"), "{root}");
        let empty = String::from_utf8(body(get(&site, "/empty/"))).unwrap();
        assert!(!empty.contains(".hidden"), "{empty}");
        // The built-in page has no files: any path shows the page.
        assert_eq!(get(&builtin(), "/.env").status, 200);
    }

    #[test]
    fn the_listing_leaves_out_symlinks_that_leave_the_root() {
        let fixture = Fixture::new("listlinks");
        std::os::unix::fs::symlink("../hello.txt", fixture.dir.join("root/sub/up")).unwrap();
        std::os::unix::fs::symlink("/etc", fixture.dir.join("root/sub/etcdir")).unwrap();
        std::fs::remove_file(fixture.dir.join("root/sub/index.html")).unwrap();
        let mut site = fixture.site();
        let root = String::from_utf8(body(get(&site, "/"))).unwrap();
        assert!(root.contains("href=\"inside\""), "{root}");
        for gone in ["escape", "loop"] {
            assert!(!root.contains(&format!("href=\"{gone}")), "{gone}: {root}");
        }
        // Inside the root but outside its own directory: still listed.
        let sub = String::from_utf8(body(get(&site, "/sub/"))).unwrap();
        assert!(sub.contains("href=\"up\""), "{sub}");
        assert!(!sub.contains("etcdir"), "{sub}");
        assert!(sub.contains("href=\"../\""), "{sub}");
        // Without openat2 no symlink is followed, so none is listed.
        site.beneath = false;
        let root = String::from_utf8(body(get(&site, "/"))).unwrap();
        assert!(!root.contains("href=\"inside\"") && root.contains("href=\"hello.txt\""));
    }

    /// The calls of one traced exchange, as (call, result) pairs.
    fn calls(site: &Site, target: &str) -> Vec<Traced> {
        let input = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        exchange(site, input.as_bytes()).trace
    }

    #[test]
    fn file_system_calls_are_traced_when_asked() {
        let fixture = Fixture::new("trace");
        let mut site = fixture.site();
        // Not asked: nothing recorded.
        assert!(calls(&site, "/hello.txt").is_empty());
        site.trace = true;
        let root_fd = site.root_fd().unwrap();

        let file = calls(&site, "/hello.txt");
        let names: Vec<_> = file.iter().map(|traced| traced.call).collect();
        assert_eq!(names, ["openat2", "fstat"]);
        assert_eq!(
            file[0].args,
            format!("root fd {root_fd}, \"hello.txt\", O_RDONLY|O_CLOEXEC|O_NONBLOCK|O_NOCTTY, RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS")
        );
        let fd = file[0].result.clone().unwrap();
        assert!(fd.starts_with("fd "), "{fd}");
        assert_eq!(file[1].args, fd);
        assert_eq!(file[1].result, Ok("a regular file, 6 bytes".to_string()));

        assert_eq!(calls(&site, "/missing")[0].result, Err(libc::ENOENT));
        assert_eq!(calls(&site, "/escape")[0].result, Err(libc::EXDEV));
        // Refused before any call: nothing to trace.
        assert!(calls(&site, "/../secret.txt").is_empty());

        // A listing: the directory, its missing index.html, its entries, the
        // symlinks checked, and every fd the core opened closed again.
        let listing = calls(&site, "/");
        let names: Vec<_> = listing.iter().map(|traced| traced.call).collect();
        assert_eq!(&names[..4], ["openat2", "fstat", "openat2", "getdents64"]);
        assert_eq!(listing[2].result, Err(libc::ENOENT));
        assert!(listing[2].args.contains("\"index.html\""));
        assert_eq!(listing.last().unwrap().call, "close");
        let opened = listing
            .iter()
            .filter(|t| t.call.starts_with("open") && t.result.is_ok());
        let closed = listing.iter().filter(|t| t.call == "close");
        assert_eq!(opened.count(), closed.count());
        assert!(listing
            .iter()
            .any(|t| t.args.contains("\"escape\"") && t.result == Err(libc::EXDEV)));

        // The fallback walks the path with openat, one name at a time.
        site.beneath = false;
        let walk = calls(&site, "/sub/index.html");
        let names: Vec<_> = walk.iter().map(|traced| traced.call).collect();
        assert_eq!(names, ["openat", "openat", "close", "fstat"]);
        assert!(
            walk[0].args.contains("\"sub\"") && walk[0].args.ends_with("|O_NOFOLLOW|O_DIRECTORY")
        );
    }

    #[test]
    fn an_error_for_head_has_no_body() {
        let site = builtin();
        let input = b"HEAD /%zz HTTP/1.1\r\nHost: a\r\n\r\n";
        let response = exchange(&site, input).response;
        assert_eq!(response.status, 400);
        assert!(header(&response, "Content-Length").unwrap() != "0");
        assert!(matches!(response.body, Body::Empty));
    }

    #[test]
    fn http_1_0_closes_unless_asked_to_keep_alive() {
        let site = builtin();
        let plain = exchange(&site, b"GET / HTTP/1.0\r\n\r\n").response;
        assert!(!plain.keep_alive);
        assert_eq!(header(&plain, "Connection"), Some("close"));
        let asked = exchange(&site, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").response;
        assert!(asked.keep_alive);
        assert_eq!(header(&asked, "Connection"), Some("keep-alive"));
        // The server answers HTTP/1.1 either way, as RFC 9110 asks.
        assert!(head_text(&asked).starts_with("HTTP/1.1 200 OK\r\n"));
    }

    #[test]
    fn files_have_type_length_and_exact_bytes() {
        let fixture = Fixture::new("files");
        let site = fixture.site();
        let hello = get(&site, "/hello.txt");
        assert_eq!(hello.status, 200);
        assert_eq!(
            header(&hello, "Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(header(&hello, "Content-Length"), Some("6"));
        assert_eq!(body(hello), b"hello\n");

        let data = get(&site, "/data.bin");
        assert_eq!(
            header(&data, "Content-Type"),
            Some("application/octet-stream")
        );
        assert!(matches!(data.body, Body::File { len: 70_000, .. }));
        assert_eq!(
            body(data),
            std::fs::read(fixture.dir.join("root/data.bin")).unwrap()
        );

        // Percent-decoding, and the query string ignored.
        let spaced = get(&site, "/a%20b.html?download=1");
        assert_eq!(spaced.status, 200);
        assert_eq!(header(&spaced, "Content-Type"), Some(response::HTML));
        assert_eq!(body(spaced), b"<p>space</p>");
        assert_eq!(get(&site, "/a%2Fb.html").status, 404);
        assert_eq!(get(&site, "/missing.txt").status, 404);
        assert_eq!(get(&site, "/hello.txt/").status, 404);
    }

    #[test]
    fn a_file_name_that_is_not_utf8_is_reachable_by_percent_escape() {
        let fixture = Fixture::new("latin1");
        let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9.txt");
        std::fs::write(fixture.dir.join("root").join(name), b"latin-1").unwrap();
        let response = get(&fixture.site(), "/caf%E9.txt");
        assert_eq!(response.status, 200);
        assert_eq!(body(response), b"latin-1");
        // The same byte raw in the target is not UTF-8: 400.
        let raw = exchange(
            &fixture.site(),
            b"GET /caf\xe9.txt HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(raw.response.status, 400);
        assert!(raw.request.is_none());
    }

    #[test]
    fn directories_redirect_then_serve_index_or_a_listing() {
        let fixture = Fixture::new("dirs");
        let site = fixture.site();
        let moved = get(&site, "/sub?x=1");
        assert_eq!(moved.status, 301);
        assert_eq!(header(&moved, "Location"), Some("/sub/?x=1"));
        assert!(moved.keep_alive);
        let index = get(&site, "/sub/");
        assert_eq!(header(&index, "Content-Type"), Some(response::HTML));
        assert_eq!(body(index), b"<p>index</p>");

        let listing = get(&site, "/empty/");
        assert_eq!(listing.status, 200);
        let page = String::from_utf8(body(listing)).unwrap();
        assert!(page.contains("<a href=\"z.txt\">z.txt</a>"));
        assert!(
            page.contains("<a href=\"%3Codd%3E%20%26%20name.txt\">&lt;odd&gt; &amp; name.txt</a>")
        );
        assert!(page.contains("href=\"../\""));
        let root = String::from_utf8(body(get(&site, "/"))).unwrap();
        assert!(root.contains("<a href=\"sub/\">sub/</a>"));
        assert!(root.contains("<a href=\"inside\">"));
        assert!(!root.contains("escape"));
        assert!(root.contains("<a href=\"a%20b.html\">"));
        assert!(!root.contains("href=\"../\""));
    }

    #[test]
    fn traversal_attempts_are_refused() {
        let fixture = Fixture::new("traversal");
        for site in [fixture.site(), builtin()] {
            for target in [
                "/../etc/passwd",
                "/%2e%2e/",
                "/%2E%2E/secret.txt",
                "/..%2f",
                "/..%2fsecret.txt",
                "/sub/../../secret.txt",
                "//etc/passwd",
                "/%2fetc/passwd",
                "/\\..\\secret.txt",
                "/%5c..%5csecret.txt",
                "/..",
            ] {
                let response = get(&site, target);
                assert_eq!(response.status, 403, "{target}");
                assert!(response.why.is_some());
                assert!(!body(response).windows(10).any(|w| w == b"TOP SECRET"));
            }
            for target in ["/a%00.txt", "/%zz", "/%4", "etc/passwd", "*"] {
                assert_eq!(get(&site, target).status, 400, "{target}");
            }
        }
    }

    #[test]
    fn symlinks_may_not_leave_the_root() {
        let fixture = Fixture::new("symlinks");
        let mut site = fixture.site();
        // With openat2 (this kernel has it), the kernel refuses with EXDEV.
        assert!(site.beneath, "openat2 is expected on Linux >= 5.6");
        for target in ["/escape", "/escape-relative"] {
            let response = get(&site, target);
            assert_eq!(response.status, 403, "{target}");
            assert!(response.why.unwrap().contains("RESOLVE_BENEATH"));
        }
        assert_eq!(body(get(&site, "/inside")), b"hello\n");
        assert_eq!(get(&site, "/loop").status, 403);
        // The fallback (no openat2) follows no symlink at all.
        site.beneath = false;
        for target in ["/escape", "/escape-relative", "/inside", "/loop"] {
            assert_eq!(get(&site, target).status, 403, "{target}");
        }
        assert_eq!(body(get(&site, "/sub/index.html")), b"<p>index</p>");
        assert_eq!(body(get(&site, "/sub/")), b"<p>index</p>");
        assert_eq!(get(&site, "/nothing/here").status, 404);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let fixture = Fixture::new("fifo");
        let path = std::ffi::CString::new(
            fixture
                .dir
                .join("root/pipe")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
        assert_eq!(get(&fixture.site(), "/pipe").status, 403);
    }

    #[test]
    fn the_408_is_built_like_every_other_response() {
        for head_complete in [false, true] {
            let response = timeout_response(now(), head_complete);
            assert_eq!((response.status, response.reason), (408, "Request Timeout"));
            assert!(!response.keep_alive);
            assert_eq!(
                header(&response, "Date"),
                Some("Sun, 06 Nov 1994 08:49:37 GMT")
            );
            assert_eq!(header(&response, "Server"), Some(response::SERVER));
            assert_eq!(header(&response, "Connection"), Some("close"));
            let why = response.why.unwrap();
            assert_eq!(why.contains("body"), head_complete, "{why}");
            let length: usize = header(&response, "Content-Length")
                .unwrap()
                .parse()
                .unwrap();
            let page = body(response);
            assert_eq!(page.len(), length);
            assert!(page.starts_with(b"<!DOCTYPE html>"));
        }
    }

    #[test]
    fn the_root_is_opened_once_and_described_for_the_narration() {
        let fixture = Fixture::new("rootfd");
        let site = fixture.site();
        assert!(site.root_fd().unwrap() >= 0);
        let args = site.root_open_args().unwrap();
        assert!(args.starts_with('"'), "{args}");
        assert!(
            args.ends_with("\", O_RDONLY|O_DIRECTORY|O_CLOEXEC"),
            "{args}"
        );
        assert!(!site.trace);
        assert_eq!(builtin().root_fd(), None);
        assert_eq!(builtin().root_open_args(), None);
    }

    #[test]
    fn site_new_refuses_a_missing_root_or_a_file() {
        let fixture = Fixture::new("site");
        assert!(Site::new(Some(&fixture.dir.join("nope"))).is_err());
        assert!(Site::new(Some(&fixture.dir.join("secret.txt"))).is_err());
        let site = fixture.site();
        assert_eq!(
            site.root.as_deref(),
            Some(fixture.dir.join("root").canonicalize().unwrap().as_path())
        );
    }

    #[test]
    fn consumed_is_never_zero_and_never_past_the_input() {
        let site = builtin();
        let inputs: [&[u8]; 6] = [
            b"\x00",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"\r\n\r\nGET / HTTP/1.0\r\n\r\nrest",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab",
            b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\nmore",
            b"\xff\xfe",
        ];
        for input in inputs {
            let exchange = exchange(&site, input);
            assert!(exchange.consumed > 0 && exchange.consumed <= input.len());
        }
        assert!(matches!(
            handle(&site, &LIMITS, b"", peer(), now()),
            Outcome::NeedMore
        ));
    }

    /// A small deterministic fuzzer: mutations of real requests must never
    /// panic, and every reply must be a well-formed response.
    #[test]
    fn mutated_requests_never_panic_and_always_frame_correctly() {
        let fixture = Fixture::new("mutations");
        let sites = [builtin(), fixture.site()];
        let seeds: [&[u8]; 5] = [
            b"GET /hello.txt HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8\r\n\r\n",
            b"HEAD /sub HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /%2e%2e/a%20b.html?q=%zz HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"GET /empty/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        const INTERESTING: &[u8] = b"%/.\\\r\n :0123456789?#\x00\xff\xe9HTTP/1.2";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move |below: usize| {
            // xorshift64: fast, deterministic, good enough to pick mutations.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below.max(1) as u64) as usize
        };
        for round in 0..3000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..1 + random(4) {
                let at = random(input.len() + 1);
                match random(4) {
                    0 if at < input.len() => input[at] = INTERESTING[random(INTERESTING.len())],
                    1 => input.insert(at, INTERESTING[random(INTERESTING.len())]),
                    2 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.truncate(at.max(1)),
                }
            }
            for site in &sites {
                let Outcome::Reply(exchange) = handle(site, &LIMITS, &input, peer(), now()) else {
                    continue;
                };
                assert!(exchange.consumed > 0 && exchange.consumed <= input.len());
                let response = exchange.response;
                assert!(response.head.starts_with(b"HTTP/1.1 "));
                assert!(response.head.ends_with(b"\r\n\r\n"));
                let length: u64 = header(&response, "Content-Length")
                    .unwrap()
                    .parse()
                    .unwrap();
                match &response.body {
                    Body::Bytes(bytes) => assert_eq!(bytes.len() as u64, length),
                    Body::File { len, .. } => assert_eq!(*len, length),
                    Body::Empty => {}
                }
                if response.status >= 400 {
                    assert!(response.why.is_some());
                }
            }
        }
    }
}
