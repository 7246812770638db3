//! # sticky-demo: TCP is a byte stream, so messages stick together
//!
//! A sender sends N short messages, one send() each, and the receiver shows
//! what each recv() really returned: several messages merged into one read,
//! one message cut across two reads. TCP keeps the bytes and their order but
//! not the boundaries between sends ("sticky packets"). Then the fixes,
//! one per `--fix`:
//!
//! - `delimiter`: end each message with `\n` and split on it; and what goes
//!   wrong when a message itself contains the delimiter
//!   (`--delimiter-in-payload`).
//! - `length`: put the length first, as 4 bytes in network byte order, and
//!   read exactly that many bytes in a loop; even the 4-byte prefix can
//!   arrive in two pieces.
//! - `pace`: sleep between sends. The reads look right, but only because of
//!   timing: it hides the problem, it does not solve it.
//!
//! The sender is a thread of this program on the other end of a loopback
//! connection. It sends all but the second half of the last message, tells
//! the receiver, waits a moment, then sends the rest: so the merged read and
//! the cut message happen on every run. With `--port`, the demo is only the
//! receiver and reads from whatever client connects.
//!
//! System calls: socket, setsockopt (SO_REUSEADDR), bind, listen, connect,
//! accept, send, ioctl(SIOCINQ), recv, shutdown(SHUT_WR), close.
//!
//! Try it:
//!
//! ```text
//! netlab sticky-demo                          # merged and cut messages
//! netlab sticky-demo --bufsize 8              # small reads cut everything
//! netlab sticky-demo --fix delimiter --delimiter-in-payload
//! netlab sticky-demo --fix length
//! netlab sticky-demo --fix pace
//! ```
//!
//! Lesson: `netlab lesson sticky-packets`.

mod frames;
mod receive;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, listen, send, setsockopt, shutdown, socket, sockopt, AddressFamily, Backlog,
    MsgFlags, Shutdown, SockFlag, SockType,
};
use serde_json::json;

use crate::cli::parse_seconds;
use crate::error::Failure;
use crate::kernel;
use crate::narrate::text::bytes;
use crate::narrate::{errno_name, Fact, Narrator};
use crate::stop;
use crate::sys;
use frames::{Framing, Stream};

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// How the messages are framed: none shows the problem, the others are fixes.
    #[arg(long, value_enum, default_value_t = Fix::None)]
    pub fix: Fix,

    /// How many messages the sender sends.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub messages: u32,

    /// How many bytes each recv() asks for; a small number cuts messages into pieces.
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub bufsize: u32,

    /// With --fix delimiter: put a newline inside the second message, to see the delimiter fix break.
    #[arg(long)]
    pub delimiter_in_payload: bool,

    /// With --fix pace: how long the sender sleeps after each message.
    #[arg(long, value_name = "SECS", default_value_t = 0.2, value_parser = parse_seconds)]
    pub pace: f64,

    /// Be only the receiver: listen on this port (0: the kernel picks) and read
    /// what the first client sends, framed as --fix says.
    #[arg(long, short)]
    pub port: Option<u16>,

    /// With --port: the local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// How messages are marked in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fix {
    /// No framing: the receiver cannot tell where one message ends.
    None,
    /// Each message ends with a newline.
    Delimiter,
    /// Each message starts with its length: 4 bytes, network byte order.
    Length,
    /// The sender sleeps between messages (hides the problem, does not fix it).
    Pace,
}

/// A command that sends messages framed as `fix` says to `target`. Typed
/// lines (nc) carry no framing and end with a newline, which suits every
/// fix but the length prefix: that one needs 4 binary bytes, so a python3
/// one-liner packs them with struct.pack("!I", ...).
fn client_command(fix: Fix, target: SocketAddr) -> String {
    match fix {
        Fix::Length => format!(
            "python3 -c 'import socket, struct; s = socket.create_connection((\"{}\", {})); [s.sendall(struct.pack(\"!I\", len(m)) + m) for m in (b\"hello\", b\"world\")]'",
            target.ip(),
            target.port()
        ),
        Fix::None | Fix::Delimiter | Fix::Pace => format!("nc {} {}", target.ip(), target.port()),
    }
}

/// How long the sender waits before the second half of the last message,
/// so that the receiver reads the first half on its own.
const SPLIT_PAUSE: Duration = Duration::from_millis(300);

impl Args {
    /// A flag that only one fix uses, given without that fix, is a mistake
    /// on the command line, not something to ignore in silence.
    /// `cli::check` turns this into a usage error (exit 2).
    pub fn check(&self) -> Result<(), String> {
        if self.delimiter_in_payload && self.fix != Fix::Delimiter {
            return Err("--delimiter-in-payload is only used by --fix delimiter".to_string());
        }
        Ok(())
    }
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "sticky-demo",
        "sticky-packets",
        "TCP is a byte stream: the receiver gets the bytes in order, but not the boundaries between the sender's messages.",
    );
    let framing = Framing::from(args.fix);
    if let Some(port) = args.port {
        return receive_from_a_client(nar, args, framing, port);
    }

    let messages = frames::messages(args.messages as usize, args.delimiter_in_payload);
    let stream = Stream::new(&messages, framing);
    let (ours, theirs) = connected_pair(nar)?;
    explain_framing(nar, args.fix);

    let fd = ours.as_raw_fd();
    let received = std::thread::scope(|scope| -> Result<Option<Vec<Vec<u8>>>> {
        let (ready, batch_sent) = mpsc::channel::<usize>();
        let (cancel, cancelled) = mpsc::channel::<()>();
        let stream_ref = &stream;
        let pace = (args.fix == Fix::Pace).then(|| Duration::from_secs_f64(args.pace));
        scope.spawn(move || {
            stop::block_stop_signals_in_this_thread();
            sender(nar, theirs.as_fd(), stream_ref, pace, &ready, &cancelled);
            // Closing our end sends FIN: the receiver's recv() then returns 0.
            drop(theirs);
        });
        if args.fix != Fix::Pace && !wait_for_batch(nar, ours.as_fd(), &batch_sent) {
            return Ok(None);
        }
        let mut reader = receive::Reader::new(nar, fd, args.bufsize as usize, Some(&stream));
        let result = receive::receive(&mut reader, framing);
        drop(cancel);
        if framing != Framing::LengthPrefixed {
            reader.summary(messages.len());
        }
        result
    })?;

    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(ours), |_| "0".into())?;
    if let Some(received) = received {
        compare(nar, args, &messages, &received);
    }
    Ok(())
}

/// Two connected TCP sockets on loopback: ours (the receiver) and the
/// sender's. The calls are narrated; the tcp lesson explains them.
fn connected_pair(nar: &Narrator) -> Result<(OwnedFd, OwnedFd)> {
    nar.note("Setting the scene: a TCP connection on loopback. This program receives on one end; a sender thread writes to the other.");
    let listener = tcp_socket(nar)?;
    let fd = listener.as_raw_fd();
    let wanted = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let step = nar.call("bind", format!("fd {fd}, {wanted}"));
    step.check(bind(fd, &sys::to_kernel(wanted)), |_| "0".into())?;
    let step = nar.call("getsockname", format!("fd {fd}"));
    let addr = step.check(sys::local_addr(fd), |addr| addr.to_string())?;
    let step = nar.call("listen", format!("fd {fd}, backlog 1"));
    step.check(listen(&listener, Backlog::new(1)?), |_| "0".into())?;
    let theirs = tcp_socket(nar)?;
    let step = nar.call("connect", format!("fd {}, {addr}", theirs.as_raw_fd()));
    step.check(connect(theirs.as_raw_fd(), &sys::to_kernel(addr)), |_| {
        "0".into()
    })?;
    let step = nar.call("accept", format!("fd {fd}"));
    let (ours, _) = step.check(sys::accept_with_peer(listener.as_fd()), |(conn, peer)| {
        format!("fd {}, peer {peer}", conn.as_raw_fd())
    })?;
    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(listener), |_| "0".into())?;
    Ok((ours, theirs))
}

fn tcp_socket(nar: &Narrator) -> Result<OwnedFd> {
    let step = nar.call("socket", "AF_INET, SOCK_STREAM, 0");
    Ok(step.check(
        socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?)
}

fn explain_framing(nar: &Narrator, fix: Fix) {
    match fix {
        Fix::None => nar.note("--fix none: each message is sent as it is, with one send() per message. Nothing in the stream says where a message ends."),
        Fix::Delimiter => nar.note("--fix delimiter: each message ends with a newline. The receiver collects bytes and cuts them at every newline."),
        Fix::Length => nar.note("--fix length: each message starts with its length as 4 bytes in network byte order (big-endian). The receiver reads exactly 4 bytes, then exactly that many."),
        Fix::Pace => nar.note("--fix pace: no framing, but the sender sleeps after each message, hoping the receiver reads each one before the next arrives."),
    }
}

/// The sender thread. It sends every frame with one send() each, except
/// that the last frame is cut in two: everything up to the cut goes first,
/// then the sender tells the receiver how many bytes that was, waits
/// SPLIT_PAUSE, and sends the rest. With `pace`, it sleeps after each frame
/// instead and never cuts.
fn sender(
    nar: &Narrator,
    fd: BorrowedFd<'_>,
    stream: &Stream,
    pace: Option<Duration>,
    ready: &Sender<usize>,
    cancelled: &Receiver<()>,
) {
    let pause = |duration: Duration| {
        matches!(
            cancelled.recv_timeout(duration),
            Err(RecvTimeoutError::Timeout)
        )
    };
    let mut offset = 0;
    for (index, frame) in stream.frames().enumerate() {
        let last = index + 1 == stream.len();
        let parts: Vec<&[u8]> = match (pace, last) {
            (None, true) => {
                let (first, second) = frame.split_at(stream.cut_in_last_frame());
                vec![first, second]
            }
            _ => vec![frame],
        };
        for (part_index, part) in parts.iter().enumerate() {
            if part_index == 1 {
                // Everything before this point is in the receiver's queue.
                let _ = ready.send(stream.bytes_before_cut());
                if !pause(SPLIT_PAUSE) {
                    return;
                }
            }
            let (drawing, _, _) = stream.draw(offset..offset + part.len());
            offset += part.len();
            if !send_part(nar, fd, index + 1, part, &drawing) {
                return;
            }
        }
        if let Some(pace) = pace {
            if !pause(pace) {
                return;
            }
        }
    }
    let _ = shutdown(fd.as_raw_fd(), Shutdown::Write);
}

/// One send() by the sender thread, announced as an `info` line first (so
/// that it comes before the receiver's read of the same bytes).
fn send_part(
    nar: &Narrator,
    fd: BorrowedFd<'_>,
    message: usize,
    part: &[u8],
    drawing: &str,
) -> bool {
    nar.info(
        "sent",
        json!({ "message": message, "bytes": part.len() }),
        format!("sender: send() {}: {drawing}", bytes(part.len())),
    );
    let mut sent = 0;
    while sent < part.len() {
        match send(fd.as_raw_fd(), &part[sent..], MsgFlags::empty()) {
            Ok(count) => sent += count,
            Err(Errno::EINTR) => {}
            Err(errno) => {
                nar.warning(
                    format!("sender: send() failed with {}", errno_name(errno)),
                    None,
                );
                return false;
            }
        }
    }
    true
}

/// Wait until the sender has sent everything before the cut, and until the
/// kernel holds all of it in our receive queue (read with SIOCINQ). Returns
/// false if the sender went away first or a stop was requested.
fn wait_for_batch(nar: &Narrator, ours: BorrowedFd<'_>, batch_sent: &Receiver<usize>) -> bool {
    let expected = loop {
        match batch_sent.recv_timeout(Duration::from_millis(100)) {
            Ok(count) => break count,
            Err(RecvTimeoutError::Timeout) if stop::requested().is_none() => {}
            Err(_) => return false,
        }
    };
    let started = Instant::now();
    let subject = format!("fd {}", ours.as_raw_fd());
    loop {
        match kernel::io::receive_queue(ours) {
            Ok(queued)
                if queued as usize >= expected || started.elapsed() > Duration::from_secs(2) =>
            {
                nar.kernel(Fact::new(
                    &subject,
                    "receive_queue",
                    json!({ "bytes": queued }),
                    "ioctl(SIOCINQ)",
                    format!("{queued} bytes wait in {subject}'s receive queue: several sends, with nothing between them"),
                ));
                break;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            Err(errno) => {
                nar.kernel(Fact::unavailable(
                    subject,
                    "receive_queue",
                    "ioctl(SIOCINQ)",
                    errno_name(errno),
                ));
                break;
            }
        }
    }
    nar.note("The receiver starts reading only now, with many messages already waiting, as a busy program would. The last message's second half is still on its way.");
    true
}

/// Did the receiver get exactly the messages that were sent?
fn compare(nar: &Narrator, args: &Args, sent: &[Vec<u8>], received: &[Vec<u8>]) {
    let show = |list: &[Vec<u8>]| -> Vec<String> {
        list.iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    };
    let same = sent == received;
    nar.info(
        "messages",
        json!({ "sent": show(sent), "received": show(received), "same": same }),
        format!(
            "{} messages sent, {} {}: {}",
            sent.len(),
            received.len(),
            if args.fix == Fix::None {
                "pieces received (without framing, each recv() is all the receiver can go by)"
            } else {
                "messages made out by the receiver"
            },
            if same {
                "exactly the same"
            } else {
                "NOT the same"
            }
        ),
    );
    match (args.fix, same) {
        (Fix::None, _) => nar.note("Without framing the receiver has only bytes: it cannot know that these were separate messages. Every protocol on TCP (HTTP, Redis, SSH) frames its messages."),
        (Fix::Pace, true) => nar.note("Each read held one message, but only because of timing. A busier receiver, a slower network or a larger message would merge or cut them again, and each pause wastes time. Pacing hides the problem; framing solves it."),
        (Fix::Pace, false) => nar.note("Even with pauses the reads did not match the messages: timing alone cannot keep boundaries."),
        (Fix::Delimiter, false) if args.delimiter_in_payload => nar.note("A message contained the delimiter, so the receiver cut it in two. The delimiter fix only works if the payload can never contain it: escape it, or use a length prefix."),
        (Fix::Delimiter | Fix::Length, true) => nar.note("Framing restored the messages exactly, whatever the reads were: the receiver no longer depends on how the bytes were cut."),
        (Fix::Delimiter | Fix::Length, false) => nar.note("The messages did not come through intact; the warnings above say why."),
    }
}

/// --port: listen, accept one client, and read what it sends with the
/// chosen framing. No sender thread, so no message boundaries to draw.
fn receive_from_a_client(nar: &Narrator, args: &Args, framing: Framing, port: u16) -> Result<()> {
    let wanted = sys::resolve(&args.host, port)?;
    let step = nar.call(
        "socket",
        format!("{}, SOCK_STREAM, 0", sys::family_name(&wanted)),
    );
    let listener = step.check(
        socket(
            sys::family_of(&wanted),
            SockType::Stream,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?;
    let fd = listener.as_raw_fd();
    let step = nar.call(
        "setsockopt",
        format!("fd {fd}, SOL_SOCKET, SO_REUSEADDR, 1"),
    );
    step.check(setsockopt(&listener, sockopt::ReuseAddr, &true), |_| {
        "0".into()
    })?;
    let step = nar.call("bind", format!("fd {fd}, {wanted}"));
    if let Err(errno) = step.check(bind(fd, &sys::to_kernel(wanted)), |_| "0".into()) {
        let hint = match errno {
            Errno::EADDRINUSE => "another program uses this port: choose another, or --port 0 to let the kernel pick a free one",
            Errno::EACCES => "ports below 1024 need root: choose a port of 1024 or above",
            Errno::EADDRNOTAVAIL => "that address is not one of this machine's: use 127.0.0.1 or 0.0.0.0",
            _ => "check --host and --port",
        };
        return Err(Failure::new(
            format!(
                "cannot bind {wanted}: {} ({})",
                errno_name(errno),
                errno.desc()
            ),
            Some(hint),
        )
        .into());
    }
    let step = nar.call("getsockname", format!("fd {fd}"));
    let bound = step.check(sys::local_addr(fd), |addr| addr.to_string())?;
    let step = nar.call("listen", format!("fd {fd}, backlog 1"));
    step.check(listen(&listener, Backlog::new(1)?), |_| "0".into())?;
    let target = sys::connectable(bound);
    let client = client_command(args.fix, target);
    nar.startup(
        "listening",
        json!({ "addr": bound.to_string(), "port": bound.port(), "try": client }),
        format!("listening on {bound}; send messages framed as --fix says, e.g. with: {client}"),
    );
    if args.fix == Fix::Length {
        nar.note("nc cannot be the sender here: the first 4 bytes of typed text become the length, so \"hello\" starts with \"hell\", a prefix of 1,751,477,356 bytes. A length prefix is binary, so a program must write it; the python3 line above does.");
    }

    let step = nar.blocking(
        "accept",
        format!("fd {fd}"),
        "waiting for a sender to connect",
    );
    let (conn, peer) = match sys::accept_with_peer(listener.as_fd()) {
        Ok(accepted) => accepted,
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            return Ok(());
        }
        Err(errno) => {
            step.fail(errno);
            return Err(errno).context("accept() failed");
        }
    };
    step.ok_value(
        i64::from(conn.as_raw_fd()),
        format!("fd {}, peer {peer}", conn.as_raw_fd()),
    );
    let mut reader = receive::Reader::new(nar, conn.as_raw_fd(), args.bufsize as usize, None);
    let received = receive::receive(&mut reader, framing)?;
    if let Some(received) = received {
        nar.info(
            "messages",
            json!({ "received": received.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect::<Vec<_>>() }),
            format!("{} messages received from {peer}", received.len()),
        );
    }
    for owned in [conn, listener] {
        let step = nar.call("close", format!("fd {}", owned.as_raw_fd()));
        step.check(nix::unistd::close(owned), |_| "0".into())?;
    }
    Ok(())
}
