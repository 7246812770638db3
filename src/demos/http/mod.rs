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
//! | `listener.rs`  | the listening socket, accept(), and running out of descriptors. |
//! | `show.rs`      | the narration of each request and response. |
//!
//! System calls: open (the root directory, a spare fd), getrlimit/setrlimit,
//! socket, setsockopt (SO_REUSEADDR, TCP_NODELAY, SO_RCVTIMEO, SO_SNDTIMEO),
//! bind, listen, accept, fcntl, epoll_create1/epoll_ctl/epoll_wait, recv,
//! send (MSG_MORE), writev, pread, sendfile, shutdown, ioctl(FIONREAD),
//! getsockopt(TCP_INFO), close (and openat2/fstat in `exchange/`, narrated
//! by `conn.rs`).
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
pub mod listener;
pub mod show;
pub mod thread;

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::mux;
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
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    // `q` at a --step pause may end the run at once, before the call it
    // paused on: the server holds only descriptors (sockets, files, the
    // root directory, epoll) and threads that use nothing else. It makes no
    // child process and no file, so when the process exits the kernel
    // closes everything and nothing is left behind.
    nar.may_end_at_any_step();
    nar.start(
        "http-server",
        "http",
        "An HTTP/1.1 server on raw sockets: requests parsed with httparse, responses written by hand, files streamed with sendfile.",
    );
    let mut config = configure(nar, args)?;
    mux::raise_fd_limit(nar)?;
    let blocking = args.model != Model::Epoll;
    let listen_fd = listener::open_listener(nar, &args.host, args.port, args.backlog, blocking)?;
    let mut acceptor = listener::Acceptor::new(nar, listen_fd.as_fd());
    nar.fd_table();
    let result = match args.model {
        Model::Epoll => epoll::serve(nar, &config, &mut acceptor),
        Model::Iterative => iterative::serve(nar, &config, &mut acceptor),
        Model::Thread => thread::serve(nar, &config, &mut acceptor),
    };
    drop(acceptor);
    listener::close_listener(nar, listen_fd)?;
    close_root(nar, &mut config);
    result
}

/// Check the root directory and turn the flags into limits and timeouts.
fn configure(nar: &Narrator, args: &Args) -> Result<Config> {
    // The root directory is opened once (in Site::new). Its step comes
    // first, so that --step pauses before the open really happens; the
    // arguments are the ones Site::new uses.
    let step = args.root.as_ref().map(|dir| {
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        nar.call(
            "open",
            format!("{canonical:?}, O_RDONLY|O_DIRECTORY|O_CLOEXEC"),
        )
    });
    let opened = Site::new(args.root.as_deref());
    match (step, &opened) {
        (Some(step), Ok(site)) => {
            let fd = site.root_fd().unwrap_or(-1);
            step.ok_value(i64::from(fd), format!("fd {fd}"));
            nar.note("The root directory is opened once, at start-up. Every file a request names is opened relative to this fd with openat2(RESOLVE_BENEATH), so the kernel itself refuses any path that would leave it.");
        }
        // The only error without an errno is "not a directory" (ENOTDIR).
        (Some(step), Err(err)) => step.fail(
            err.raw_os_error()
                .map_or(nix::errno::Errno::ENOTDIR, nix::errno::Errno::from_raw),
        ),
        (None, _) => {}
    }
    let mut site = opened.map_err(|err| {
        let dir = args.root.as_deref().unwrap_or(std::path::Path::new("."));
        Failure::new(
            format!("cannot serve {}: {err}", dir.display()),
            Some("--root must name an existing directory"),
        )
    })?;
    // Record the file system calls of each request for the narration:
    // with --quiet nothing is shown, and nothing is recorded.
    site.trace = !nar.is_quiet();
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
            "limits: request line {} bytes, head {} bytes, header fields {}, body {} bytes; timeouts: head {} s, idle {} s, send {} s",
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

/// At the end: close the root directory's fd, opened at start-up.
fn close_root(nar: &Narrator, config: &mut Config) {
    if let Some(dir) = config.site.root_dir.take() {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
        let step = nar.call("close", format!("fd {fd} (the root directory)"));
        step.check(nix::unistd::close(dir), |_| "0".into()).ok();
    }
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
