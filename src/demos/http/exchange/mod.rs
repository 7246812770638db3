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
}

impl Site {
    /// Check and canonicalize the root directory (an error names the reason).
    pub fn new(root: Option<&Path>) -> io::Result<Site> {
        let Some(dir) = root else {
            return Ok(Site {
                root: None,
                root_dir: None,
                beneath: false,
            });
        };
        let root = dir.canonicalize()?;
        let root_dir = File::open(&root)?;
        if !root_dir.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the root is not a directory",
            ));
        }
        let beneath = files::has_openat2(&root_dir);
        Ok(Site {
            root: Some(root),
            root_dir: Some(root_dir),
            beneath,
        })
    }
}

/// The result of looking at the bytes received so far on one connection.
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
}

/// httparse's view of a request head, borrowed from the input.
#[derive(Debug)]
pub struct Head<'a> {
    pub method: &'a str,
    /// The request target as sent, e.g. `/docs/a%20b.html?x=1`.
    pub target: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
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
                response::error(refused.status, refused.why, head_only, Connection::Close)
                    .finish(now);
            return Outcome::Reply(Exchange {
                consumed: input.len(),
                request: refused.head,
                response,
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
    let head_only = match head.method {
        "GET" => false,
        "HEAD" => true,
        // Any other method: the body (if any) has been received and is
        // skipped, so the connection can go on.
        _ => {
            let mut reply = response::error(
                Status::METHOD_NOT_ALLOWED,
                "This server only answers GET and HEAD.",
                false,
                connection,
            );
            reply.extra = Some(("Allow", Cow::Borrowed(b"GET, HEAD")));
            return Outcome::Reply(Exchange {
                consumed,
                response: reply.finish(now),
                request: Some(head),
            });
        }
    };
    let raw = &input[..consumed];
    let response = route(site, &head, raw, peer, head_only, connection).finish(now);
    Outcome::Reply(Exchange {
        consumed,
        request: Some(head),
        response,
    })
}

/// Decide what a GET or HEAD gets.
fn route(
    site: &Site,
    head: &Head<'_>,
    raw: &[u8],
    peer: SocketAddr,
    head_only: bool,
    connection: Connection,
) -> Reply {
    let refuse = |refusal: files::Refusal| {
        // A 400 or 414 means the client is confused: close. A 403 or 404
        // is an ordinary answer on a connection that can go on.
        let connection = match refusal.status.code {
            400 | 414 => Connection::Close,
            _ => connection,
        };
        response::error(refusal.status, refusal.why, head_only, connection)
    };
    // Every target is decoded and checked first, whatever is served.
    let mut path = match files::Path::parse(head.target) {
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
    let (Some(root_dir), Some(_)) = (&site.root_dir, &site.root) else {
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
    match files::open(root_dir, site.beneath, &mut path) {
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
            let mut reply = response::error(
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
