//! # tcp-server: the iterative TCP server
//!
//! The first server of every networking course: one listening socket, and
//! one client served at a time from accept() to close(). It shows the whole
//! life of a TCP connection as the kernel sees it, and its one big flaw: while
//! it talks to one client, the next one waits in the accept queue. That flaw
//! is what select, poll, epoll and fork will fix. `--model fork` and
//! `--model thread` (in `tcp_models.rs`) are the fork and thread fixes.
//!
//! System calls, in order: sigaction(SIGPIPE), socket, setsockopt
//! (SO_REUSEADDR), bind, getsockname, listen, then for each client: accept,
//! recv and send in a loop until recv returns 0 (or, with `--close-after N`,
//! until N messages are answered: then the server closes first), close.
//!
//! Try it:
//!
//! ```text
//! netlab tcp-server --port 8888        # this terminal
//! nc 127.0.0.1 8888                    # another terminal: type lines
//! nc 127.0.0.1 8888                    # a third: watch it wait in the queue
//! ```
//!
//! Lesson: `netlab lesson tcp`.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    bind, listen, recv, send, setsockopt, socket, sockopt, Backlog, MsgFlags, SockFlag, SockType,
};
use serde_json::json;

use super::{accept, sigpipe, tcp_models};
use crate::cli::{parse_seconds, SigpipeChoice};
use crate::error::Failure;
use crate::kernel::{self, TcpState};
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::Narrator;
use crate::stop;
use crate::sys;

/// How much of each message the narration shows.
const SHOW_CHARS: usize = 60;

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The local address to bind: 0.0.0.0 accepts clients on every interface,
    /// 127.0.0.1 only from this machine, :: or ::1 for IPv6.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,

    /// The port to listen on; 0 lets the kernel pick a free one.
    #[arg(long, short, default_value_t = 8888)]
    pub port: u16,

    /// listen()'s backlog: how many finished handshakes may wait for accept().
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i32).range(0..=65535))]
    pub backlog: i32,

    /// How many bytes each recv() asks for.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub bufsize: u32,

    /// Answer every message with this text (and a newline) instead of echoing it.
    #[arg(long, value_name = "TEXT")]
    pub reply: Option<String>,

    /// Do not set SO_REUSEADDR: if this server closed a connection first (it
    /// was stopped while a client was connected), restarting it on the same
    /// port fails with "Address already in use" while TIME_WAIT lasts.
    #[arg(long)]
    pub no_reuseaddr: bool,

    /// Sleep this many seconds before each accept(), to watch the accept queue fill.
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = parse_seconds)]
    pub accept_delay: f64,

    /// Exit after serving this many clients.
    #[arg(long, value_name = "N")]
    pub max_clients: Option<u64>,

    /// Close each connection first, after answering N messages (one reply
    /// per recv() that returned data), as an HTTP/1.0 or daytime server
    /// does: the client then reads end-of-file. Works in every model.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub close_after: Option<u64>,

    /// How to serve clients: one at a time (iterative), one child process
    /// per client (fork), or one thread per client (thread).
    #[arg(long, value_enum, default_value_t = Model::Iterative)]
    pub model: Model,

    /// With --model fork: the parent keeps its copy of each connection, so
    /// the client never sees end-of-file after the child has closed its copy.
    #[arg(long)]
    pub no_close_in_parent: bool,

    /// With --model fork: no SIGCHLD handler, so finished children pile up
    /// as zombies (they are still reaped when the server exits).
    #[arg(long)]
    pub no_reap: bool,
}

/// How the server serves its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// One client at a time, from accept() to close().
    Iterative,
    /// One child process per client (fork after accept).
    Fork,
    /// One thread per client, in one shared address space.
    Thread,
}

impl Args {
    /// --no-close-in-parent and --no-reap are mistakes of a forking server:
    /// without --model fork there is no parent and no child to make them, so
    /// giving them is a mistake on the command line. `cli::check` turns this
    /// into a usage error (exit 2).
    pub fn check(&self) -> Result<(), String> {
        for (flag, given) in [
            ("--no-close-in-parent", self.no_close_in_parent),
            ("--no-reap", self.no_reap),
        ] {
            if given && self.model != Model::Fork {
                return Err(format!(
                    "{flag} shows a mistake of a forking server and needs --model fork"
                ));
            }
        }
        Ok(())
    }
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "tcp-server",
        "tcp",
        match args.model {
            Model::Iterative => "An iterative TCP echo server: it serves one client at a time, from accept() to close().",
            Model::Fork => "A forking TCP echo server: one child process per client, so clients are served at the same time.",
            Model::Thread => "A threaded TCP echo server: one thread per client, all in one process.",
        },
    );
    // One client at a time holds nothing but descriptors: `q` in --step may
    // end the run at once. Threads and children must be ended in order.
    if args.model == Model::Iterative {
        nar.may_end_at_any_step();
    }
    let wanted = sys::resolve(&args.host, args.port)?;

    // A server must not die because one client vanished: ignore SIGPIPE,
    // so a write to a closed connection fails with EPIPE instead.
    sigpipe::set(nar, SigpipeChoice::Ignore)?;
    let listen_fd = open_listener(nar, args, wanted)?;

    match args.model {
        Model::Iterative => serve_one_at_a_time(nar, args, &listen_fd)?,
        Model::Fork => tcp_models::serve_with_fork(nar, args, &listen_fd)?,
        Model::Thread => tcp_models::serve_with_threads(nar, args, &listen_fd)?,
    }

    // The listening socket goes last: once it is closed, new clients get
    // "connection refused" from the kernel.
    let step = nar.call("close", format!("fd {}", listen_fd.as_raw_fd()));
    step.check(nix::unistd::close(listen_fd), |_| "0".into())?;
    nar.note("The listening socket is closed: from now on the kernel refuses new connections to this port.");
    Ok(())
}

/// The iterative model: accept one client, serve it to the end, repeat.
fn serve_one_at_a_time(nar: &Narrator, args: &Args, listen_fd: &OwnedFd) -> Result<()> {
    let mut served: u64 = 0;
    while stop::requested().is_none() && args.max_clients.is_none_or(|max| served < max) {
        if args.accept_delay > 0.0 && !delay_before_accept(nar, listen_fd, args.accept_delay) {
            break;
        }
        let Some((conn_fd, peer)) = accept_client(nar, listen_fd)? else {
            continue;
        };
        served += 1;
        serve_client(nar, args, Some(listen_fd), conn_fd, peer)?;
    }
    Ok(())
}

/// socket, setsockopt, bind, getsockname, listen: the listening socket.
fn open_listener(nar: &Narrator, args: &Args, wanted: SocketAddr) -> Result<OwnedFd> {
    // 1. socket(): a new TCP endpoint. It is only a number in our fd table
    //    until bind() gives it an address.
    let step = nar.call(
        "socket",
        format!("{}, SOCK_STREAM, 0", sys::family_name(&wanted)),
    );
    let listen_fd = step.check(
        socket(
            sys::family_of(&wanted),
            SockType::Stream,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let fd = listen_fd.as_raw_fd();
    nar.fd_table();
    nar.note("A socket is a file descriptor: the kernel hands out the lowest free number, and 0, 1 and 2 are already stdin, stdout and stderr.");

    // 2. SO_REUSEADDR: without it, restarting the server right after a
    //    client left fails while that old connection sits in TIME_WAIT.
    if args.no_reuseaddr {
        nar.note("--no-reuseaddr: SO_REUSEADDR stays off, so bind() fails with EADDRINUSE while any old connection on this port is in TIME_WAIT.");
    } else {
        let step = nar.call(
            "setsockopt",
            format!("fd {fd}, SOL_SOCKET, SO_REUSEADDR, 1"),
        );
        step.check(setsockopt(&listen_fd, sockopt::ReuseAddr, &true), |_| {
            "0".into()
        })?;
        nar.note("SO_REUSEADDR lets bind() take the port even while old connections on it wait in TIME_WAIT, so a restarted server does not have to wait a minute.");
    }

    // 3. bind(): claim the address and port.
    let step = nar.call("bind", format!("fd {fd}, {wanted}"));
    if let Err(errno) = bind(fd, &sys::to_kernel(wanted)) {
        step.fail(errno);
        return Err(bind_failure(errno, wanted, args.no_reuseaddr).into());
    }
    step.ok("0");

    // 4. getsockname(): which address did we really get? With --port 0 the
    //    kernel chose the port, and only this call can tell us.
    let step = nar.call("getsockname", format!("fd {fd}"));
    let bound = step.check(sys::local_addr(fd), |addr| addr.to_string())?;
    if args.port == 0 {
        nar.note(
            "Port 0 asks the kernel for any free port; getsockname() tells us which one it chose.",
        );
    }

    // 5. listen(): from now on the kernel answers SYNs for us and queues
    //    finished handshakes until we accept() them.
    let step = nar.call("listen", format!("fd {fd}, backlog {}", args.backlog));
    let backlog = Backlog::new(args.backlog).context("the backlog is out of range")?;
    step.check(listen(&listen_fd, backlog), |_| "0".into())?;
    if let Some(queue) = nar.listen_queue(listen_fd.as_fd()) {
        if i64::from(queue.backlog) < i64::from(args.backlog) {
            nar.note("The kernel lowered the backlog: Linux caps it at net.core.somaxconn.");
        }
    }
    nar.note("The kernel now completes handshakes on its own and queues the new connections; accept() takes them off the queue one at a time.");

    announce(nar, bound);
    Ok(listen_fd)
}

/// Explain a failed bind() with what the kernel says about the port.
fn bind_failure(errno: Errno, wanted: SocketAddr, no_reuseaddr: bool) -> Failure {
    let port = wanted.port();
    match errno {
        Errno::EADDRINUSE => {
            let entries = kernel::proc_net::read_tcp_table().unwrap_or_default();
            let on_port = kernel::proc_net::entries_on_local_port(&entries, port);
            let listening = on_port.iter().any(|entry| entry.state == TcpState::Listen);
            let time_wait = on_port
                .iter()
                .filter(|entry| entry.state == TcpState::TimeWait)
                .count();
            if listening {
                Failure::with_hint(
                    format!("cannot bind {wanted}: another socket is already listening on port {port} (Address already in use)"),
                    format!("stop the other server, or choose another port (--port 0 lets the kernel pick one); `ss -ltnp 'sport = :{port}'` shows who holds it"),
                )
            } else if time_wait > 0 && no_reuseaddr {
                Failure::with_hint(
                    format!("cannot bind {wanted}: {time_wait} old connection(s) on port {port} are still in TIME_WAIT (Address already in use)"),
                    "this is what SO_REUSEADDR is for: run again without --no-reuseaddr, or wait up to 60 s for TIME_WAIT to end",
                )
            } else {
                Failure::with_hint(
                    format!("cannot bind {wanted}: port {port} is in use (Address already in use)"),
                    "choose another port, or --port 0 to let the kernel pick a free one",
                )
            }
        }
        other => Failure::of_bind(other, wanted, 8888),
    }
}

/// The start-up lines: where to connect. Shown even with --quiet.
fn announce(nar: &Narrator, bound: SocketAddr) {
    let target = sys::connectable(bound);
    nar.startup(
        "listening",
        json!({ "addr": bound.to_string(), "port": bound.port() }),
        format!(
            "listening on {bound}; try: nc {} {}",
            target.ip(),
            target.port()
        ),
    );
    let others: Vec<String> = sys::other_local_endpoints(bound)
        .iter()
        .map(SocketAddr::to_string)
        .collect();
    if !others.is_empty() {
        nar.startup(
            "reachable_at",
            json!(others),
            format!("other machines can connect to: {}", others.join(", ")),
        );
    }
}

/// --accept-delay: sleep without accepting, so the class can watch new
/// connections pile up in the accept queue. Returns false if a stop came.
pub(super) fn delay_before_accept(nar: &Narrator, listen_fd: &OwnedFd, seconds: f64) -> bool {
    let step = nar.blocking(
        "nanosleep",
        format!("{seconds} s"),
        "--accept-delay: not calling accept(), so new clients wait in the queue",
    );
    match sys::nanosleep(Duration::from_secs_f64(seconds)) {
        Ok(()) => step.ok("0"),
        Err(errno) => {
            step.fail(errno);
            if stop::requested().is_some() {
                return false;
            }
        }
    }
    nar.listen_queue(listen_fd.as_fd());
    true
}

/// accept(): take the next finished handshake off the queue. Returns None
/// when the call was interrupted or failed in a way worth retrying.
pub(super) fn accept_client(
    nar: &Narrator,
    listen_fd: &OwnedFd,
) -> Result<Option<(OwnedFd, SocketAddr)>> {
    let step = nar.blocking(
        "accept",
        format!("fd {}", listen_fd.as_raw_fd()),
        "waiting for a client to finish the handshake",
    );
    let (conn_fd, peer) = match sys::accept_with_peer(listen_fd.as_fd()) {
        Ok(accepted) => accepted,
        // A signal arrived (Ctrl-C, or a closed output): the loop checks why.
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            return Ok(None);
        }
        // The client gave up between its handshake and our accept(), or
        // we are out of descriptors or memory for a moment: not fatal.
        Err(errno) if accept::is_transient(errno) => {
            step.fail(errno);
            accept::carry_on(nar, errno);
            return Ok(None);
        }
        Err(errno) => {
            step.fail(errno);
            return Err(errno).context("accept() failed");
        }
    };
    step.ok_value(
        i64::from(conn_fd.as_raw_fd()),
        format!("fd {}, peer {peer}", conn_fd.as_raw_fd()),
    );
    if nar.tcp_state(conn_fd.as_fd()) == Some(TcpState::CloseWait) {
        nar.note("Already CLOSE_WAIT: the client sent its data and its FIN before we accepted. The kernel took both on our behalf; they wait in this socket.");
    }
    nar.note("accept() returned a new socket just for this client; the listening socket stays open for the next one.");
    nar.fd_table();
    nar.info(
        "client",
        json!({ "peer": peer.to_string(), "fd": conn_fd.as_raw_fd() }),
        format!("client {peer} connected"),
    );
    Ok(Some((conn_fd, peer)))
}

/// How a client's visit ended.
enum Ending {
    /// recv() returned 0: the client sent FIN.
    PeerClosed,
    /// --close-after: we answered enough messages and close first.
    ServerClosed,
    /// The client reset the connection, or a send hit a closed one.
    Broken,
    /// We were asked to stop in the middle of the conversation.
    Stopped,
}

/// recv and send until the client is done, then close its socket.
/// `listen_fd` is given when this process also holds the listening socket
/// and serves one client at a time, to point out clients left waiting.
pub(super) fn serve_client(
    nar: &Narrator,
    args: &Args,
    listen_fd: Option<&OwnedFd>,
    conn_fd: OwnedFd,
    peer: SocketAddr,
) -> Result<()> {
    let fd = conn_fd.as_raw_fd();
    // Our end's address, to find the connection in /proc/net/tcp after close.
    let local = sys::local_addr(fd).ok();
    let mut buf = vec![0u8; args.bufsize as usize];
    let mut queued_before = 0;
    // How many messages we have answered, for --close-after.
    let mut replies: u64 = 0;

    let ending = loop {
        let step = nar.blocking(
            "recv",
            format!("fd {fd}, {}, 0", bytes(buf.len())),
            format!("waiting for data from {peer}"),
        );
        match recv(fd, &mut buf, MsgFlags::empty()) {
            Ok(0) => {
                step.ok_value(0, "0: end of stream");
                // Usually the client's FIN, but not always: when a threaded
                // server stops, the main thread's shutdown() ends the stream
                // too. The state tells which end sent the first FIN.
                let state = nar.tcp_state(conn_fd.as_fd());
                if matches!(state, Some(TcpState::FinWait1 | TcpState::FinWait2)) {
                    nar.note("recv() returned 0 because our own shutdown() ended the stream: the server is stopping and sent its FIN first. The client has not closed its end.");
                    break Ending::Stopped;
                }
                nar.note("recv() returned 0: the client sent FIN and will send nothing more.");
                if state == Some(TcpState::CloseWait) {
                    nar.note("CLOSE_WAIT: the kernel now waits for us to close our end. A server that forgets close() leaves connections in this state for ever.");
                }
                break Ending::PeerClosed;
            }
            Ok(received) => {
                let data = &buf[..received];
                step.ok_value(
                    received as i64,
                    format!("{}: {}", bytes(received), show_bytes(data, SHOW_CHARS)),
                );
                nar.count("bytes_in", received as u64);
                let reply = match &args.reply {
                    Some(text) => format!("{text}\n").into_bytes(),
                    None => data.to_vec(),
                };
                match send_all(nar, fd, &reply) {
                    Ok(()) => {}
                    Err(Errno::EINTR) => break Ending::Stopped,
                    Err(_) => break Ending::Broken,
                }
                if let Some(listen_fd) = listen_fd {
                    queued_before = point_out_waiting_clients(nar, listen_fd, queued_before);
                }
                replies += 1;
                if args.close_after.is_some_and(|limit| replies >= limit) {
                    nar.info(
                        "closing_first",
                        json!({ "peer": peer.to_string(), "replies": replies }),
                        format!(
                            "--close-after: {replies} message(s) answered; the server closes first"
                        ),
                    );
                    nar.note("The server closes the connection first, as an HTTP/1.0 server does after its reply: close() should send FIN, and the client then reads end-of-file.");
                    break Ending::ServerClosed;
                }
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if stop::requested().is_some() {
                    break Ending::Stopped;
                }
            }
            Err(Errno::ECONNRESET) => {
                step.fail(Errno::ECONNRESET);
                nar.note("ECONNRESET: the client reset the connection (it sent RST, e.g. it closed with unread data or was killed). There is nothing more to read or write.");
                break Ending::Broken;
            }
            Err(errno) => {
                step.fail(errno);
                nar.warning(
                    format!(
                        "recv() failed with {}; closing this client",
                        crate::narrate::errno_name(errno)
                    ),
                    None,
                );
                break Ending::Broken;
            }
        }
    };

    // Closing first with unread data is rude: the kernel then sends RST,
    // not FIN, and the client may lose replies it has not read yet.
    if matches!(ending, Ending::ServerClosed)
        && kernel::io::receive_queue(conn_fd.as_fd()).is_ok_and(|waiting| waiting > 0)
    {
        super::mux::narrate_receive_queue(nar, fd);
        nar.note("The client has sent more than we read. If this close() is the last one, the kernel answers unread data with RST instead of FIN, and the client may lose the replies it has not read yet.");
    }

    // close(): our end sends FIN (unless the connection is already dead).
    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(conn_fd), |_| "0".into())?;
    nar.info(
        "client_done",
        json!({ "peer": peer.to_string() }),
        format!("client {peer} done"),
    );
    if let (Some(local), Ending::PeerClosed) = (local, &ending) {
        nar.connection_state(local, peer, "this server's end");
        if sys::is_on_this_machine(peer.ip()) {
            let theirs = nar.connection_state(peer, local, "the client's end");
            if theirs == Some(TcpState::TimeWait) {
                nar.note("The client closed first, so its end is the one in TIME_WAIT; ours sent FIN, got the last ACK, and is gone.");
            }
        } else {
            nar.note("The client runs on another machine, so the state of its end is kept by that machine's kernel, out of our sight.");
        }
    }
    if let (Some(local), Ending::ServerClosed) = (local, &ending) {
        show_server_closed(nar, local, peer);
    }
    if let (Some(local), Ending::Stopped) = (local, &ending) {
        show_stopped(nar, local, peer);
    }
    Ok(())
}

/// We were stopped mid-conversation and closed first: say what the kernel
/// reports for each end, not what it will be once the client closes.
fn show_stopped(nar: &Narrator, local: SocketAddr, peer: SocketAddr) {
    let ours = nar.connection_state(local, peer, "this server's end");
    if sys::is_on_this_machine(peer.ip()) {
        nar.connection_state(peer, local, "the client's end");
    }
    match ours {
        Some(TcpState::TimeWait) => nar.note("We closed first and the client has closed too, so our end is the one in TIME_WAIT."),
        Some(TcpState::FinWait1 | TcpState::FinWait2) => nar.note("We closed first, but the client has not sent its FIN yet: our end waits in FIN_WAIT2. It goes to TIME_WAIT if the client's FIN arrives, and the kernel drops it after net.ipv4.tcp_fin_timeout seconds if it does not."),
        _ => {}
    }
}

/// --close-after: we called close() first. Whether FIN really left is
/// read from the kernel: only the last descriptor's close() sends it.
fn show_server_closed(nar: &Narrator, local: SocketAddr, peer: SocketAddr) {
    let ours = nar.connection_state(local, peer, "this server's end");
    let theirs = if sys::is_on_this_machine(peer.ip()) {
        nar.connection_state(peer, local, "the client's end")
    } else {
        None
    };
    match ours {
        Some(TcpState::Established) => nar.note("Still ESTABLISHED after close(): another descriptor for this socket is still open (after fork, the parent's copy), so the kernel sent no FIN and the client gets no end-of-file."),
        Some(TcpState::FinWait2) => nar.note("FIN_WAIT2: our FIN went out and the client's kernel acknowledged it. The client's next recv() returns 0 (end-of-file); this end now waits for the client's FIN."),
        Some(TcpState::TimeWait) => nar.note("TIME_WAIT: the client read end-of-file and closed too. The end that closes first is the one that waits in TIME_WAIT."),
        _ => {}
    }
    if theirs == Some(TcpState::CloseWait) {
        nar.note("The client's end is CLOSE_WAIT: our FIN has arrived there, so the client reads end-of-file once it has read our replies.");
    }
}

/// send() until every byte is out. send() may take fewer bytes than it was
/// given (a short write), and then we must call it again with the rest.
fn send_all(nar: &Narrator, fd: i32, data: &[u8]) -> Result<(), Errno> {
    let mut sent = 0;
    while sent < data.len() {
        let rest = &data[sent..];
        let step = nar.call("send", format!("fd {fd}, {}, 0", bytes(rest.len())));
        match send(fd, rest, MsgFlags::empty()) {
            Ok(count) => {
                step.ok_value(count as i64, bytes(count));
                nar.count("bytes_out", count as u64);
                if count < rest.len() {
                    nar.note("A short write: the kernel took only part of the data, so we call send() again with the rest.");
                }
                sent += count;
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if stop::requested().is_some() {
                    return Err(Errno::EINTR);
                }
            }
            Err(errno) => {
                step.fail(errno);
                if errno == Errno::EPIPE {
                    nar.note("EPIPE: the client's end is gone, so nothing we send can arrive. Because SIGPIPE is ignored, this is an error we handle, not a crash.");
                } else if errno == Errno::ECONNRESET {
                    nar.note("ECONNRESET: the client reset the connection while we were sending.");
                }
                return Err(errno);
            }
        }
    }
    Ok(())
}

/// While we talk to one client, others may finish their handshake and
/// wait. Say so when that number changes: this is the lesson that leads to
/// select, poll, epoll and fork. Returns the number now waiting.
fn point_out_waiting_clients(nar: &Narrator, listen_fd: &OwnedFd, before: u32) -> u32 {
    let Ok(Some(queue)) = kernel::listen_queue(listen_fd.as_fd()) else {
        return before;
    };
    if queue.waiting != before && queue.waiting > 0 {
        nar.listen_queue(listen_fd.as_fd());
        nar.note("Another client has connected and waits in the accept queue: its handshake is done, but this server serves one client at a time and will not accept() it until the current client leaves.");
    }
    queue.waiting
}
