//! SCAFFOLD (issue 7): the contract of the request-handling core.
//!
//! Bytes in, response out: no sockets, no narrator, no crate-internal imports
//! (only std, httparse and libc), so that `fuzz/` can include this folder
//! with `#[path]` and drive it directly. The connection layer (mod.rs and
//! the models) owns the sockets and calls [`handle`] with what it has read.
//!
//! The types below are the agreed shape; their owner may add fields and
//! functions but must not remove or rename these without updating every user.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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

/// What the server serves: the built-in page (no root) or a directory.
#[derive(Debug)]
pub struct Site {
    /// The canonical root directory, or None for the built-in page.
    pub root: Option<PathBuf>,
}

impl Site {
    /// Check and canonicalize the root directory (an error names the reason).
    pub fn new(root: Option<&Path>) -> io::Result<Site> {
        let root = match root {
            Some(dir) => Some(dir.canonicalize()?),
            None => None,
        };
        Ok(Site { root })
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
pub fn handle<'a>(
    _site: &Site,
    _limits: &Limits,
    _input: &'a [u8],
    _peer: SocketAddr,
    _now: SystemTime,
) -> Outcome<'a> {
    unimplemented!("SCAFFOLD")
}
