//! # http-server: HTTP/1.1 by hand, on the sockets of the earlier demos
//!
//! HTTP is text over a TCP connection. A client sends a *request*: a request
//! line (`GET /index.html HTTP/1.1`), header lines (`Host: ...`), a blank
//! line, and maybe a body. The server answers with a *response*: a status
//! line (`HTTP/1.1 200 OK`), header lines (`Content-Length: 1024`), a blank
//! line and the body. With keep-alive (the default in HTTP/1.1) the same
//! connection then carries the next request.
//!
//! The work is split in two, so each half can be read on its own:
//!
//! | where          | what it does |
//! |----------------|--------------|
//! | `exchange/`    | bytes in, response out: parsing (with httparse), limits, routing, files, error pages, keep-alive rules. No sockets. |
//! | `conn.rs`      | one connection: recv() into its buffer, hand the bytes to `exchange::handle`, send the head and stream the body (writev, pread, sendfile), pipelining, closing politely. |
//! | `epoll.rs`     | `--model epoll` (default): one thread, non-blocking sockets, level-triggered epoll, per-connection deadlines. |
//! | `iterative.rs` | `--model iterative`: one client at a time with blocking calls; the others wait in the accept queue. |
//! | `thread.rs`    | `--model thread`: one thread per connection, blocking calls. |
//! | `show.rs`      | the narration of each request and response. |
//!
//! System calls: getrlimit/setrlimit, socket, setsockopt (SO_REUSEADDR,
//! TCP_NODELAY, SO_RCVTIMEO, SO_SNDTIMEO), bind, listen, accept, fcntl,
//! epoll_create1/epoll_ctl/epoll_wait, recv, send (MSG_MORE), writev, pread,
//! sendfile, shutdown, ioctl(FIONREAD), getsockopt(TCP_INFO), close (and
//! openat2/fstat in `exchange/`).
//!
//! Try it:
//!
//! ```text
//! netlab http-server --port 8000            # then open http://127.0.0.1:8000/
//! curl -v http://127.0.0.1:8000/hello       # the page shows curl's own request
//! netlab http-server --port 8000 --root . --model iterative
//! ```
//!
//! Lesson: `netlab lesson http`.

pub mod conn;
pub mod epoll;
pub mod exchange;
pub mod iterative;
pub mod show;
pub mod thread;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde_json::json;

use super::mux::{self, ServerArgs};
use crate::error::Failure;
use crate::narrate::Narrator;
use exchange::{Limits, Site};

/// How the server serves its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// One thread, non-blocking sockets and epoll: the fast one.
    Epoll,
    /// One client at a time, blocking calls: the course's first version.
    Iterative,
    /// One thread per connection, blocking calls.
    Thread,
}

/// The flags of http-server.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The local address to bind: 0.0.0.0 accepts clients on every interface,
    /// 127.0.0.1 only from this machine, :: or ::1 for IPv6.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,

    /// The port to listen on; 0 lets the kernel pick a free one.
    #[arg(long, short, default_value_t = 8000)]
    pub port: u16,

    /// Serve the files under this directory. Without it, every GET returns
    /// a page that shows the request the browser just sent.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// How connections are served: epoll (one thread, non-blocking), iterative
    /// (one client at a time) or thread (one thread per connection).
    #[arg(long, value_enum, default_value_t = Model::Epoll)]
    pub model: Model,

    /// listen()'s backlog: how many finished handshakes may wait for accept().
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(i32).range(0..=65535))]
    pub backlog: i32,

    /// Longest request line in bytes; a longer one gets 414 URI Too Long.
    #[arg(long, value_name = "BYTES", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(16..=1_048_576))]
    pub max_line: u32,

    /// Longest request head (request line and headers) in bytes; a longer one
    /// gets 431 Request Header Fields Too Large.
    #[arg(long, value_name = "BYTES", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    pub max_head: u32,

    /// Most header fields in one request; more gets 431.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_headers: u32,

    /// Largest request body (Content-Length) accepted; larger gets 413.
    #[arg(long, value_name = "BYTES", default_value_t = 1_048_576, value_parser = clap::value_parser!(u32).range(0..=67_108_864))]
    pub max_body: u32,

    /// A request head must arrive complete within this many seconds of its
    /// first byte, or the client gets 408 and the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub header_timeout: f64,

    /// A keep-alive connection with no request in flight is closed after
    /// this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_seconds)]
    pub idle_timeout: f64,

    /// A client that takes none of the response for this many seconds (it
    /// stopped reading) is disconnected.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_seconds)]
    pub send_timeout: f64,
}

/// A timeout in seconds: positive, at most a day, fractions allowed.
fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if (0.01..=86_400.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err("a timeout is between 0.01 and 86400 seconds".into())
    }
}

/// Everything a connection needs to know, whichever model serves it.
#[derive(Debug)]
pub struct Config {
    pub site: Site,
    pub limits: Limits,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
}

impl Config {
    /// The most bytes one connection may hold unanswered: a full head and a
    /// full body. `exchange::handle` answers 431 or 413 before that.
    pub fn max_input(&self) -> usize {
        self.limits.max_head + self.limits.max_body
    }

    /// The shortest of the three timeouts.
    pub fn shortest_timeout(&self) -> Duration {
        self.header_timeout
            .min(self.idle_timeout)
            .min(self.send_timeout)
    }
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "http-server",
        "http",
        "An HTTP/1.1 server on raw sockets: requests parsed with httparse, responses written by hand, files streamed with sendfile.",
    );
    let config = configure(nar, args)?;
    mux::raise_fd_limit(nar)?;
    let server_args = listener_args(args);
    let listen_fd = mux::open_listener(nar, &server_args)?;
    nar.fd_table();
    let result = match args.model {
        Model::Epoll => epoll::serve(nar, &config, listen_fd.as_fd(), &server_args),
        Model::Iterative | Model::Thread => {
            make_blocking(nar, &listen_fd)?;
            if args.model == Model::Iterative {
                iterative::serve(nar, &config, listen_fd.as_fd())
            } else {
                thread::serve(nar, &config, listen_fd.as_fd())
            }
        }
    };
    mux::close_listener(nar, listen_fd)?;
    result
}

/// Check the root directory and turn the flags into limits and timeouts.
fn configure(nar: &Narrator, args: &Args) -> Result<Config> {
    let site = Site::new(args.root.as_deref()).map_err(|err| {
        let dir = args.root.as_deref().unwrap_or(std::path::Path::new("."));
        Failure::new(
            format!("cannot serve {}: {err}", dir.display()),
            Some("--root must name an existing directory"),
        )
    })?;
    match &site.root {
        Some(root) => nar.info(
            "root",
            json!(root.display().to_string()),
            format!("serving the files under {}", root.display()),
        ),
        None => nar.info(
            "root",
            json!(null),
            "no --root: every GET gets the built-in page that shows its own request",
        ),
    }
    let limits = Limits {
        max_line: args.max_line as usize,
        max_head: args.max_head as usize,
        max_headers: args.max_headers as usize,
        max_body: args.max_body as usize,
    };
    nar.info(
        "limits",
        json!({
            "max_line": limits.max_line,
            "max_head": limits.max_head,
            "max_headers": limits.max_headers,
            "max_body": limits.max_body,
            "header_timeout": args.header_timeout,
            "idle_timeout": args.idle_timeout,
            "send_timeout": args.send_timeout,
        }),
        format!(
            "limits: request line {} bytes, head {} bytes, {} headers, body {} bytes; timeouts: head {} s, idle {} s, send {} s",
            limits.max_line, limits.max_head, limits.max_headers, limits.max_body,
            args.header_timeout, args.idle_timeout, args.send_timeout
        ),
    );
    Ok(Config {
        site,
        limits,
        header_timeout: Duration::from_secs_f64(args.header_timeout),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        send_timeout: Duration::from_secs_f64(args.send_timeout),
    })
}

/// The listener set-up and accept() are the multiplexing servers'
/// (`mux::open_listener`, `mux::accept_client`), which read these flags.
fn listener_args(args: &Args) -> ServerArgs {
    ServerArgs {
        host: args.host.clone(),
        port: args.port,
        backlog: args.backlog,
        // Not read by the listener: each connection has its own buffer.
        bufsize: 16384,
        sndbuf: None,
    }
}

/// The blocking models wait in accept(): clear the O_NONBLOCK that the
/// shared listener set-up gave the socket.
fn make_blocking(nar: &Narrator, listen_fd: &OwnedFd) -> Result<()> {
    let fd = listen_fd.as_raw_fd();
    let step = nar.call("fcntl", format!("fd {fd}, F_SETFL, O_RDWR"));
    step.check(fcntl(listen_fd, FcntlArg::F_SETFL(OFlag::empty())), |_| {
        "0".into()
    })?;
    nar.note("The listening socket is blocking again: this model sleeps in accept() until a client arrives, and Ctrl-C interrupts it with EINTR.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_positive_seconds_with_fractions() {
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert_eq!(parse_seconds("30"), Ok(30.0));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("nan").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("1e9").is_err());
        assert!(parse_seconds("ten").is_err());
    }
}
