//! The chat client: log in (asking again when no answer comes), then fork
//! into a sender and a receiver.
//!
//! `run` checks the name and the server address, opens the socket and
//! calls `login`. After `OK`, `fork`: the parent is the **sender**
//! (`send_lines` reads the keyboard, `leave` sends `Q` and waits for
//! `EXIT`), the child is the **receiver** (`receive_lines` in
//! `receiver.rs`: recvfrom, print, redraw the prompt). The parent reaps the
//! child in every case; the child asks the kernel to end it if the parent
//! dies first.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, Signal};
use nix::sys::socket::{socket, SockFlag, SockType};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use serde_json::json;

use super::protocol::{self, parse_reply, Reply, Typed, MAX_DATAGRAM};
use super::receiver::{receive_lines, RECEIVER_GOT_EXIT, RECEIVER_SERVER_DOWN};
use super::{send_datagram, show_process, SHOW_CHARS};
use crate::demos::children::{self, Forked, SigchldReap};
use crate::demos::stdin_lines;
use crate::error::Failure;
use crate::narrate::text::show_bytes;
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
    /// Show a prompt and redraw it around incoming lines: only on a
    /// terminal, and only with --quiet (otherwise the narration's own
    /// `read(fd 0)` line is where the user types).
    prompt: bool,
}

impl Client<'_> {
    fn prompt(&self) -> String {
        format!("{}> ", self.name)
    }

    /// Show the prompt, when there is a person at a terminal to see it.
    fn show_prompt(&self) {
        if self.prompt {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", self.prompt());
            let _ = out.flush();
        }
    }

    /// Print one line for the person: on a terminal, erase the prompt line
    /// (`\r`, then ESC [2K clears it), print, and draw the prompt again, so
    /// an incoming message does not land in the middle of what they type.
    pub(super) fn show_line(&self, line: &str) {
        if !self.display {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = if self.prompt {
            write!(out, "\r\x1b[2K{line}\n{}", self.prompt())
        } else {
            writeln!(out, "{line}")
        };
        let _ = out.flush();
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
    };

    if !login(nar, &client)? {
        return Ok(()); // Ctrl-C while logging in
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

    // SIGCHLD interrupts the sender's read() when the receiver ends, and
    // the handler reaps it.
    children::install_sigchld(nar, SigchldReap::Loop)?;
    let parent = nix::unistd::getpid();
    match children::fork(
        nar,
        "one process sends what you type, one prints what arrives",
    )? {
        Forked::Child => {
            let code = receive_lines(nar, &client, parent);
            children::exit_child(code)
        }
        Forked::Parent { child } => {
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
            };
            let sent = send_lines(nar, &client, &mut receiver);
            leave(nar, &client, &mut receiver);
            children::reap_all(nar, true);
            sent
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
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    sys::resolve(host, port)
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
            Answer::Exit | Answer::Timeout => {
                nar.note("No answer in time. UDP cannot say whether our datagram, the answer, or the server itself is missing, so the client simply asks again.");
            }
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
            "is `netlab chatroom server --port {}` running on that machine? A lost datagram and a missing server look the same over UDP",
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

/// poll() for up to `client.timeout`, then recvfrom(); only the awaited
/// reply, from the server's address, ends the wait. Never blocks for ever:
/// an answer that was lost must not hang the client.
fn wait_for_reply(nar: &Narrator, client: &Client, awaited: Awaited) -> Answer {
    let deadline = Instant::now() + client.timeout;
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Answer::Timeout;
        }
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
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
        let step = nar.call("recvfrom", format!("fd {}, {} bytes", client.fd, buf.len()));
        let (length, from) = match sys::recvfrom(client.fd, &mut buf) {
            Ok(received) => received,
            Err(errno) => {
                step.fail(errno);
                continue;
            }
        };
        step.ok_value(
            length as i64,
            format!(
                "{length} bytes from {from}: {}",
                show_bytes(&buf[..length], SHOW_CHARS)
            ),
        );
        if from != client.server {
            ignore_stranger(nar, from);
            continue;
        }
        match (awaited, parse_reply(&buf[..length])) {
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
/// `/quit`, Ctrl-C, or the receiver's end (the server said DOWN).
fn send_lines(nar: &Narrator, client: &Client, receiver: &mut Receiver) -> Result<()> {
    client.show_prompt();
    let read = stdin_lines::send_each_line_while(
        nar,
        "Type a line and press Enter to say it; /who lists the users; /quit, Ctrl-D or Ctrl-C leaves.",
        || !receiver.check(nar),
        |line| {
            let go_on = match protocol::parse_typed(line) {
                Typed::Quit => false,
                Typed::Nothing => true,
                Typed::Who => {
                    send_datagram(nar, client.fd, &format!("W {}", client.name), client.server);
                    true
                }
                Typed::Say(text) => {
                    let (datagram, left_out) = protocol::chat_datagram(client.name, &text);
                    if left_out > 0 {
                        nar.info(
                            "cut",
                            json!({ "left_out": left_out, "sent": datagram.len() }),
                            format!("the line was cut at a character boundary to fit in {MAX_DATAGRAM} bytes; {left_out} bytes left out"),
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
        },
    );
    read.context("reading the keyboard")
}

/// Leave the room: send `Q` and wait for `EXIT` (the receiver sees it and
/// ends with status 0), asking again after each timeout. If the receiver
/// has already ended, the sender waits for EXIT itself. In every case the
/// receiver is ended and reaped before this returns.
fn leave(nar: &Narrator, client: &Client, receiver: &mut Receiver) {
    receiver.check(nar);
    if let Some(WaitStatus::Exited(_, RECEIVER_SERVER_DOWN)) = receiver.ended {
        nar.info(
            "server_down",
            json!({ "server": client.server.to_string() }),
            "the server said DOWN, so the sender ends too; there is nobody to send Q to",
        );
        return;
    }
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
    } else {
        nar.warning(
            format!(
                "no EXIT from {} after {} tries; leaving anyway",
                client.server, client.tries
            ),
            Some("the server may be gone; it will keep our name until it is restarted"),
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
