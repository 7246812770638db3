//! The chat client: log in (asking again when no answer comes), then fork
//! into a sender and a receiver.
//!
//! `run` checks the name and the server address, opens the socket and
//! calls `login`. After `OK`, `fork`: the parent is the **sender**
//! (`send_lines` reads the keyboard, `leave` sends `Q` and waits for
//! `EXIT`), the child is the **receiver** (`receive_lines` in
//! `receiver.rs`: recvmsg, print above the prompt row). The parent reaps the
//! child in every case; the child asks the kernel to end it if the parent
//! dies first.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, Signal};
use nix::sys::socket::{socket, MsgFlags, SockFlag, SockType};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use serde_json::json;

use super::protocol::{self, parse_reply, Reply, Typed, MAX_DATAGRAM};
use super::receiver::{receive_lines, RECEIVER_FORGOTTEN, RECEIVER_GOT_EXIT, RECEIVER_SERVER_DOWN};
use super::{recv_datagram, send_datagram, show_process};
use crate::demos::children::{self, Forked, SigchldReap};
use crate::error::Failure;
use crate::narrate::Narrator;
use crate::stop;
use crate::sys;

/// What the client needs in both processes.
pub(super) struct Client<'a> {
    sock: &'a OwnedFd,
    pub(super) fd: RawFd,
    pub(super) server: SocketAddr,
    name: &'a str,
    /// How long to wait for one answer, and how many times to ask.
    timeout: Duration,
    tries: u32,
    /// Print chat lines for a person (not with --json).
    display: bool,
    /// Show a prompt, with incoming lines printed above it: only on a
    /// terminal, and only with --quiet (otherwise the narration's own
    /// `read(fd 0)` line is where the user types).
    prompt: bool,
    /// Set once leaving has started (in the sender): no more prompts.
    leaving: Cell<bool>,
}

impl Client<'_> {
    pub(super) fn name(&self) -> &str {
        self.name
    }

    fn prompt(&self) -> String {
        format!("{}> ", self.name)
    }

    /// Show the prompt, when there is a person at a terminal to see it.
    fn show_prompt(&self) {
        if self.prompt && !self.leaving.get() {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", self.prompt());
            let _ = out.flush();
        }
    }

    /// Print one line for the person. On a terminal with a prompt, the line
    /// goes *above* the prompt row, which is left as it is: what the person
    /// has half typed stays on the screen (the kernel's terminal driver
    /// holds it, not this process, so nobody here could redraw it). ESC D
    /// and ESC M make room below the prompt (scrolling if it is on the last
    /// row), ESC 7 saves the cursor, ESC [nL inserts blank rows at the
    /// prompt's row (pushing it down), the line is written there, and
    /// ESC 8 then ESC [nB put the cursor back where the person types.
    pub(super) fn show_line(&self, line: &str) {
        if !self.display {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = if self.prompt && !self.leaving.get() {
            // A terminal that does not know its size says 0 columns.
            let columns = match crossterm::terminal::size() {
                Ok((columns, _)) if columns > 0 => columns,
                _ => 80,
            };
            let rows = rows_needed(line, columns);
            write!(
                out,
                "{}{}\x1b7\r\x1b[{rows}L{line}\x1b8\x1b[{rows}B",
                "\x1bD".repeat(rows),
                "\x1bM".repeat(rows)
            )
        } else {
            writeln!(out, "{line}")
        };
        let _ = out.flush();
    }

    /// Leaving has started: erase the prompt row (and anything typed on
    /// it, which will not be sent), and draw no prompt from now on, so the
    /// last lines stand on their own.
    fn stop_prompting(&self) {
        if self.prompt && !self.leaving.replace(true) {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
        }
    }
}

/// How many terminal rows `line` takes at `columns` columns: a CJK or
/// other wide character takes 2 columns.
fn rows_needed(line: &str, columns: u16) -> usize {
    let width: usize = line.chars().map(char_columns).sum();
    let columns = usize::from(columns.max(1));
    width.div_ceil(columns).max(1)
}

/// Columns one character takes on a terminal: 2 for the wide East Asian
/// ranges (CJK, Hangul, full-width forms, most emoji), 1 otherwise.
fn char_columns(c: char) -> usize {
    let wide = matches!(u32::from(c),
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0xA4CF | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F | 0x1F900..=0x1F9FF | 0x20000..=0x3FFFD);
    if wide {
        2
    } else {
        1
    }
}

pub(super) fn run(
    nar: &Narrator,
    name: &str,
    server: &str,
    timeout: u64,
    tries: u32,
) -> Result<()> {
    nar.start(
        "chatroom client",
        "chatroom",
        "The course's UDP chat client: log in with retries, then one process sends what you type and another prints what arrives.",
    );
    // Until the first `L` goes out, the server knows nothing of us: `q` at
    // a --step pause may end the run before the call it shows.
    nar.may_end_at_any_step();
    if let Err(refusal) = protocol::check_name(name) {
        return Err(Failure::new(
            format!("`{name}` cannot be a chat name: {refusal}"),
            Some("a name is 1 to 16 letters, digits, `_` or `-`, and `admin` is reserved for the server's console"),
        )
        .into());
    }
    let server_addr = parse_server(server)?;
    let step = nar.call(
        "socket",
        format!("{}, SOCK_DGRAM, 0", sys::family_name(&server_addr)),
    );
    let sock: OwnedFd = step.check(
        socket(
            sys::family_of(&server_addr),
            SockType::Datagram,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    nar.note("No bind(): the kernel gives this socket a free port with the first sendto(), and that address is how the server will know us.");
    let client = Client {
        sock: &sock,
        fd: sock.as_raw_fd(),
        server: server_addr,
        name,
        timeout: Duration::from_millis(timeout),
        tries,
        display: !nar.is_json(),
        prompt: !nar.is_json() && nar.is_quiet() && std::io::stdout().is_terminal(),
        leaving: Cell::new(false),
    };

    if !login(nar, &client)? {
        // Ctrl-C or q while waiting for the answer: the L went out, and
        // the server may have logged us in, so say Q once (an unknown name
        // only gets an ERR back) and do not wait.
        send_datagram(nar, client.fd, &format!("Q {name}"), server_addr);
        return Ok(());
    }
    if stop::requested().is_some() {
        // q at the pause before the poll that brought OK: leave now,
        // before anything else is made.
        return leave_before_fork(nar, &client);
    }
    let step = nar.call("getsockname", format!("fd {}", client.fd));
    if let Ok(local) = step.check(sys::local_addr(client.fd), |addr| addr.to_string()) {
        nar.info(
            "logged_in",
            json!({ "name": name, "local": local.to_string(), "server": server_addr.to_string() }),
            format!("logged in as {name}; the kernel bound our socket to {local} at the first sendto(), and the server saw that port"),
        );
    }
    if client.display {
        // No prompt is on the screen yet: a plain line.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "* you are in the room as {name}; /who lists the users, /quit or Ctrl-D leaves"
        );
        let _ = out.flush();
    }

    // The receiver tells the sender through this pipe that an answer to
    // `/who` has come: the sender, which sent W, waits on it with a timeout.
    let step = nar.call("pipe", "");
    let (answers_read, answers_write) = step.check(nix::unistd::pipe(), |(read, write)| {
        format!(
            "fd {} (read end), fd {} (write end)",
            read.as_raw_fd(),
            write.as_raw_fd()
        )
    })?;
    nar.note("The receiver writes one byte into this pipe when the answer to /who arrives, so the sender, which sent W, can wait for it with a timeout and ask again.");

    if stop::requested().is_some() {
        return leave_before_fork(nar, &client);
    }
    // SIGCHLD interrupts the sender's read() when the receiver ends, and
    // the handler reaps it.
    children::install_sigchld(nar, SigchldReap::Loop)?;
    let parent = nix::unistd::getpid();
    match children::fork(
        nar,
        "one process sends what you type, one prints what arrives",
    )? {
        Forked::Child => {
            drop(answers_read);
            let code = receive_lines(nar, &client, parent, answers_write.as_raw_fd());
            children::exit_child(code)
        }
        Forked::Parent { child } => {
            drop(answers_write);
            nar.info(
                "processes",
                json!({ "sender": parent.as_raw(), "receiver": child.as_raw() }),
                format!(
                    "pid {parent} reads the keyboard and sends; pid {child} receives and prints"
                ),
            );
            show_process(nar, parent, "the sender");
            show_process(nar, child, "the receiver");
            let mut receiver = Receiver {
                pid: child,
                ended: None,
                pipe_closed: false,
            };
            let sent = send_lines(nar, &client, &mut receiver, &answers_read);
            let left = leave(nar, &client, &mut receiver);
            children::reap_all(nar, true);
            sent.and(left)
        }
    }
}

/// `--server HOST:PORT` as an address; `[::1]:8888` for IPv6. A name is
/// looked up (localhost comes from /etc/hosts); an address is used as is.
fn parse_server(text: &str) -> Result<SocketAddr, Failure> {
    let bad = || {
        Failure::new(
            format!("`{text}` is not HOST:PORT"),
            Some("write the server as 127.0.0.1:8888, localhost:8888 or [::1]:8888"),
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    if port == 0 {
        return Err(Failure::new(
            format!("`{text}`: port 0 cannot be a destination"),
            Some("port 0 only asks the kernel to pick a port when binding; give the port the server printed, e.g. 127.0.0.1:8888"),
        ));
    }
    let addr = sys::resolve(host, port)?;
    if addr.ip().is_unspecified() {
        // The kernel would deliver to this machine, but the answer comes
        // from a real address (127.0.0.1), which is not the one we sent to:
        // the client would ignore its own OK.
        return Err(Failure::new(
            format!("`{text}`: a wildcard address cannot be a destination"),
            Some("0.0.0.0 and :: mean \"every address\" when a server binds; to reach a server on this machine, use 127.0.0.1:PORT or [::1]:PORT"),
        ));
    }
    Ok(addr)
}

/// `L name`, then wait for the answer; ask again after each timeout.
/// Ok(true) after OK, Ok(false) after Ctrl-C, an error for a refused name
/// or a server that never answers.
fn login(nar: &Narrator, client: &Client) -> Result<bool> {
    let datagram = format!("L {}", client.name);
    for attempt in 1..=client.tries {
        nar.info(
            "login_attempt",
            json!({ "attempt": attempt, "tries": client.tries }),
            format!("login, try {attempt} of {}", client.tries),
        );
        send_datagram(nar, client.fd, &datagram, client.server);
        // From here the server may know us: `q` stops as Ctrl-C does, and
        // the client says Q before it ends.
        nar.must_clean_up_from_here();
        match wait_for_reply(nar, client, Awaited::LoginAnswer) {
            Answer::LoggedIn => return Ok(true),
            Answer::Refused(reason) => {
                return Err(Failure::new(
                    format!("the server refused the name `{}`: {reason}", client.name),
                    Some("choose another name with --name"),
                )
                .into())
            }
            Answer::Stopped => return Ok(false),
            // After the last try nobody asks again: the error below says so.
            Answer::Exit | Answer::Timeout if attempt < client.tries => {
                nar.note("No answer in time. This socket is not connected, so the kernel does not hand it the ICMP port unreachable that a closed port on this machine sends back: a lost datagram, a lost answer and a missing server all look like silence, and the client asks again.");
            }
            Answer::Exit | Answer::Timeout => {}
        }
    }
    Err(Failure::with_hint(
        format!(
            "no answer from a chat server at {} after {} tries, {} ms apart",
            client.server,
            client.tries,
            client.timeout.as_millis()
        ),
        format!(
            "is `netlab chatroom server --port {}` running on that machine? To this unconnected UDP socket, a lost datagram and a missing server look the same",
            client.server.port()
        ),
    )
    .into())
}

/// Which answer `wait_for_reply` waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Awaited {
    /// OK or ERR, after `L`. Ctrl-C ends this wait at once.
    LoginAnswer,
    /// EXIT, after `Q`. This wait is the answer to Ctrl-C, so it goes on
    /// until EXIT or the timeout.
    Exit,
}

/// What waiting for one reply ended with.
enum Answer {
    LoggedIn,
    Refused(String),
    Exit,
    Timeout,
    Stopped,
}

/// poll() for up to `client.timeout`, then recvmsg(); only the awaited
/// reply, from the server's address, ends the wait. Never blocks for ever:
/// an answer that was lost must not hang the client.
fn wait_for_reply(nar: &Narrator, client: &Client, awaited: Awaited) -> Answer {
    let deadline = Instant::now() + client.timeout;
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Answer::Timeout;
        }
        // Rounded up: the first wait shows the --timeout given, not 999.
        let millis = u16::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(client.sock.as_fd(), PollFlags::POLLIN)];
        let step = nar.blocking(
            "poll",
            format!("fd {} POLLIN, {millis} ms", client.fd),
            "waiting for the server's answer, with a timeout",
        );
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) => {
                step.ok_value(0, "0: the timeout passed");
                return Answer::Timeout;
            }
            Ok(count) => step.ok_value(i64::from(count), "the socket is readable"),
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if stop::requested().is_some() && awaited == Awaited::LoginAnswer {
                    return Answer::Stopped;
                }
                continue;
            }
            Err(errno) => {
                step.fail(errno);
                return Answer::Timeout;
            }
        }
        let step = nar.call(
            "recvmsg",
            format!("fd {}, {} bytes, MSG_TRUNC", client.fd, buf.len()),
        );
        let datagram = match recv_datagram(client.fd, &mut buf, MsgFlags::empty()) {
            Ok(received) => received,
            Err(errno) => {
                step.fail(errno);
                continue;
            }
        };
        step.ok_value(datagram.real as i64, datagram.describe(&buf));
        if datagram.from != client.server {
            ignore_stranger(nar, datagram.from);
            continue;
        }
        if datagram.oversized() {
            continue;
        }
        match (awaited, parse_reply(&buf[..datagram.kept])) {
            (Awaited::LoginAnswer, Some(Reply::Ok)) => return Answer::LoggedIn,
            (Awaited::LoginAnswer, Some(Reply::Err(reason))) => {
                return Answer::Refused(protocol::printable(reason))
            }
            (Awaited::Exit, Some(Reply::Exit)) => return Answer::Exit,
            _ => {}
        }
    }
}

/// A datagram from anyone but the server is not read as a reply: anyone
/// can send to our port.
pub(super) fn ignore_stranger(nar: &Narrator, from: SocketAddr) {
    nar.info(
        "stranger",
        json!({ "from": from.to_string() }),
        format!("ignored a datagram from {from}, which is not the server"),
    );
}

/// The receiver, as the sender sees it.
struct Receiver {
    pid: Pid,
    /// How it ended, once the SIGCHLD handler has reaped it.
    ended: Option<WaitStatus>,
    /// The pipe from it reached end of file: it has exited (the SIGCHLD
    /// handler may not have reaped it yet).
    pipe_closed: bool,
}

impl Receiver {
    /// Has the SIGCHLD handler reaped it? Narrate it the first time.
    fn check(&mut self, nar: &Narrator) -> bool {
        for status in children::take_reaped() {
            if status.pid() == Some(self.pid) {
                nar.info(
                    "receiver_ended",
                    children::status_value(&status),
                    format!(
                        "the SIGCHLD handler reaped the receiver: {}",
                        children::describe_status(&status)
                    ),
                );
                self.ended = Some(status);
            }
        }
        self.ended.is_some()
    }
}

/// The sender: each typed line becomes a datagram, until end of input,
/// `/quit`, Ctrl-C, or the receiver's end (the server said DOWN, or no
/// longer knows us).
///
/// It waits with poll() on the keyboard *and* the pipe from the receiver,
/// not in read() alone: when the receiver exits, the pipe's write end
/// closes and poll() returns at once. A SIGCHLD alone could come just
/// before read() starts and leave the sender waiting for a key.
fn send_lines(
    nar: &Narrator,
    client: &Client,
    receiver: &mut Receiver,
    answers: &OwnedFd,
) -> Result<()> {
    client.show_prompt();
    nar.note("Type a line and press Enter to say it; /who lists the users; /quit, Ctrl-D or Ctrl-C leaves.");
    let stdin = std::io::stdin();
    let pipe = answers.as_raw_fd();
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut told_changed = false;
    loop {
        if stop::requested().is_some() || receiver.check(nar) {
            return Ok(());
        }
        let mut fds = [
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(answers.as_fd(), PollFlags::POLLIN),
        ];
        let step = nar.blocking(
            "poll",
            format!("fd 0 (stdin) POLLIN, fd {pipe} POLLIN"),
            "waiting for a typed line, or for the receiver to end",
        );
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(count) => step.ok_value(i64::from(count), "ready"),
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                continue;
            }
            Err(errno) => {
                step.fail(errno);
                return Err(errno).context("waiting for the keyboard");
            }
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            let mut stale = [0u8; 64];
            let step = nar.call("read", format!("fd {pipe} (pipe), 64 bytes"));
            match nix::unistd::read(answers.as_fd(), &mut stale) {
                Ok(0) => {
                    step.ok_value(
                        0,
                        "0: the receiver has ended (the pipe's write end is closed)",
                    );
                    receiver.pipe_closed = true;
                    return Ok(());
                }
                // A late answer to a /who that was already given up on.
                Ok(count) => step.ok_value(
                    count as i64,
                    format!("{count} bytes: a late answer to /who"),
                ),
                Err(errno) => step.fail(errno),
            }
        }
        if !ready(&fds[0]) {
            continue;
        }
        let step = nar.call("read", "fd 0 (stdin), 4096 bytes");
        let count = match nix::unistd::read(stdin.as_fd(), &mut chunk) {
            Ok(0) => {
                step.ok_value(0, "0: end of input");
                if !pending.is_empty() {
                    let line = std::mem::take(&mut pending);
                    typed(nar, client, receiver, answers, &line, &mut told_changed);
                }
                return Ok(());
            }
            Ok(count) => {
                step.ok_value(count as i64, format!("{count} bytes"));
                count
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                continue;
            }
            Err(errno) => {
                step.fail(errno);
                return Err(errno).context("reading the keyboard");
            }
        };
        pending.extend_from_slice(&chunk[..count]);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if !typed(nar, client, receiver, answers, &line, &mut told_changed) {
                return Ok(());
            }
        }
        // A very long line without a newline is sent in pieces.
        if pending.len() >= chunk.len() {
            let line = std::mem::take(&mut pending);
            if !typed(nar, client, receiver, answers, &line, &mut told_changed) {
                return Ok(());
            }
        }
    }
}

/// One typed line: `/quit`, `/who`, nothing, or text to say. False when
/// the sender should stop.
fn typed(
    nar: &Narrator,
    client: &Client,
    receiver: &mut Receiver,
    answers: &OwnedFd,
    line: &[u8],
    told_changed: &mut bool,
) -> bool {
    let go_on = match protocol::parse_typed(line) {
        Typed::Quit => false,
        Typed::Nothing => true,
        Typed::Who => ask_who(nar, client, receiver, answers),
        Typed::Say(text, changed) => {
            if changed && !*told_changed {
                *told_changed = true;
                nar.startup(
                    "line_changed",
                    json!({ "name": client.name }),
                    "note: bytes that are not UTF-8 were sent as U+FFFD, and control characters (a tab, a bell) as spaces; the protocol carries UTF-8 text without control characters",
                );
            }
            let (datagram, left_out) = protocol::chat_datagram(client.name, &text);
            if left_out > 0 {
                // Shown under --quiet too: the person must know that the
                // end of the line was not sent.
                nar.startup(
                    "cut",
                    json!({ "left_out": left_out, "sent": datagram.len() }),
                    format!("the line was cut at a character boundary so that the MSG the server forwards fits in {MAX_DATAGRAM} bytes; {left_out} bytes left out"),
                );
            }
            send_datagram(nar, client.fd, &datagram, client.server);
            true
        }
    };
    if go_on {
        client.show_prompt();
    }
    go_on
}

/// `/who`: send `W` and wait for the receiver to say (a byte in the pipe)
/// that `USERS` came; ask again after each timeout, and say so if no
/// answer ever comes. False if the client should stop (Ctrl-C, or the
/// receiver ended).
fn ask_who(nar: &Narrator, client: &Client, receiver: &mut Receiver, answers: &OwnedFd) -> bool {
    let who = format!("W {}", client.name);
    for _ in 0..client.tries {
        send_datagram(nar, client.fd, &who, client.server);
        let deadline = Instant::now() + client.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let millis = u16::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(answers.as_fd(), PollFlags::POLLIN)];
            let step = nar.blocking(
                "poll",
                format!("fd {} (pipe) POLLIN, {millis} ms", answers.as_raw_fd()),
                "waiting for the receiver to get USERS",
            );
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(0) => {
                    step.ok_value(0, "0: the timeout passed");
                    break;
                }
                Ok(count) => {
                    step.ok_value(i64::from(count), "the pipe is readable");
                    // An end of file here: the receiver has ended.
                    let mut byte = [0u8; 64];
                    let step = nar.call("read", format!("fd {}, 64 bytes", answers.as_raw_fd()));
                    let read = nix::unistd::read(answers.as_fd(), &mut byte);
                    return match step.check(read, |count| format!("{count} bytes")) {
                        // 0: the receiver has ended (the write end closed).
                        Ok(0) | Err(_) => {
                            receiver.pipe_closed = true;
                            false
                        }
                        Ok(_) => true,
                    };
                }
                Err(errno) => {
                    step.fail(errno);
                    if stop::requested().is_some() || receiver.check(nar) {
                        return false;
                    }
                }
            }
        }
    }
    nar.warning(
        format!(
            "no answer to /who from {} after {} tries, {} ms apart",
            client.server,
            client.tries,
            client.timeout.as_millis()
        ),
        Some("the server may be gone; /quit leaves, or keep typing if it comes back"),
    );
    true
}

/// Leave the room: send `Q` and wait for `EXIT` (the receiver sees it and
/// ends with status 0), asking again after each timeout. If the receiver
/// has already ended, the sender waits for EXIT itself. In every case the
/// receiver is ended and reaped before this returns. An error when the
/// server no longer knows us or never answered EXIT (exit status 1).
fn leave(nar: &Narrator, client: &Client, receiver: &mut Receiver) -> Result<()> {
    client.stop_prompting();
    if receiver.pipe_closed && !receiver.check(nar) {
        // It has exited; wait for the reap to learn why.
        wait_for_receiver(nar, receiver, Duration::from_secs(2));
    }
    match receiver.ended {
        Some(WaitStatus::Exited(_, RECEIVER_SERVER_DOWN)) => {
            nar.info(
                "server_down",
                json!({ "server": client.server.to_string() }),
                "the server said DOWN, so the sender ends too; there is nobody to send Q to",
            );
            return Ok(());
        }
        Some(WaitStatus::Exited(_, RECEIVER_FORGOTTEN)) => {
            return Err(Failure::with_hint(
                format!(
                    "the server at {} no longer knows you as `{}`: it was restarted, or it dropped you, and refused the last request",
                    client.server, client.name
                ),
                "run the client again to log in; the refused line was not delivered".to_string(),
            )
            .into());
        }
        _ => {}
    }
    // Killed from outside (kill -9 on its pid): still leave the room with
    // Q, then say so and end with status 1.
    let killed_by = match receiver.ended {
        Some(WaitStatus::Signaled(_, signal, _)) => Some(signal),
        _ => None,
    };
    let quit = format!("Q {}", client.name);
    let mut got_exit = false;
    for _ in 0..client.tries {
        send_datagram(nar, client.fd, &quit, client.server);
        got_exit = if receiver.ended.is_none() {
            wait_for_receiver(nar, receiver, client.timeout)
        } else {
            matches!(wait_for_reply(nar, client, Awaited::Exit), Answer::Exit)
        };
        if got_exit {
            break;
        }
    }
    if got_exit {
        nar.info(
            "left",
            json!({ "name": client.name }),
            format!(
                "the server answered EXIT: {} has left the room",
                client.name
            ),
        );
    }
    if receiver.ended.is_none() {
        let step = nar.call("kill", format!("{}, SIGTERM", receiver.pid));
        match signal::kill(receiver.pid, Signal::SIGTERM) {
            Ok(()) => step.ok("0"),
            Err(errno) => step.fail(errno),
        }
        wait_for_receiver(nar, receiver, Duration::from_secs(2));
    }
    if let Some(signal) = killed_by {
        Err(Failure::with_hint(
            format!(
                "the receiver (pid {}) was killed by {}; the sender left the room and ends too",
                receiver.pid,
                signal.as_str()
            ),
            "someone sent the receiver a signal; run the client again to rejoin".to_string(),
        )
        .into())
    } else if got_exit {
        Ok(())
    } else {
        Err(Failure::with_hint(
            format!(
                "no EXIT from {} after {} tries; left without the server's answer",
                client.server, client.tries
            ),
            "the server may be gone; if it is still running, it keeps the name until it is restarted".to_string(),
        )
        .into())
    }
}

/// Leave after `q` or Ctrl-C came between the OK and the fork: there is
/// no receiver yet, so this process sends `Q` and waits for `EXIT` itself.
fn leave_before_fork(nar: &Narrator, client: &Client) -> Result<()> {
    let quit = format!("Q {}", client.name);
    for _ in 0..client.tries {
        send_datagram(nar, client.fd, &quit, client.server);
        if matches!(wait_for_reply(nar, client, Awaited::Exit), Answer::Exit) {
            nar.info(
                "left",
                json!({ "name": client.name }),
                format!(
                    "the server answered EXIT: {} has left the room",
                    client.name
                ),
            );
            return Ok(());
        }
    }
    Err(Failure::with_hint(
        format!(
            "no EXIT from {} after {} tries; left without the server's answer",
            client.server, client.tries
        ),
        "the server may be gone; if it is still running, it keeps the name until it is restarted"
            .to_string(),
    )
    .into())
}

/// Wait up to `limit` for the receiver to end (the SIGCHLD handler reaps
/// it; nanosleep() returns early with EINTR when it does). True if it ended
/// because EXIT arrived.
fn wait_for_receiver(nar: &Narrator, receiver: &mut Receiver, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !receiver.check(nar) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = sys::nanosleep(left.min(Duration::from_millis(20)));
    }
    show_process(nar, receiver.pid, "the receiver");
    matches!(
        receiver.ended,
        Some(WaitStatus::Exited(_, RECEIVER_GOT_EXIT))
    )
}
