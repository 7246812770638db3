//! # io-demo: blocking, non-blocking, timeouts, and what each costs
//!
//! Five small scenes on loopback, one per `--mode`. In each, this program
//! owns one end of a TCP connection and a peer thread of the same process
//! owns the other, so the demo controls exactly when data arrives:
//!
//! - `blocking`: recv() on an empty socket puts the thread to sleep in the
//!   kernel. A watcher thread reads `/proc/self/task/TID/stat` meanwhile and
//!   sees `S` (sleeping), and getrusage shows no CPU spent waiting.
//! - `nonblocking`: after fcntl(O_NONBLOCK), recv() returns EAGAIN at once.
//!   A naive loop around it spins, and the demo counts the calls and the CPU
//!   they burn; then poll() waits for the same event asleep.
//! - `timeout`: SO_RCVTIMEO (Python's `settimeout`): recv() gives up with
//!   EAGAIN after the timeout, measured against the clock.
//! - `connect`: a non-blocking connect() returns EINPROGRESS; poll() says when
//!   the socket is writable and SO_ERROR says whether the handshake worked,
//!   once to a listening port and once to a closed one.
//! - `short-write`: a non-blocking send() of a large buffer to a peer that does
//!   not read takes only part of it, then fails with EAGAIN; SO_SNDBUF and
//!   the bytes queued in the kernel show where the data went.
//!
//! System calls: socket, bind, listen, connect, accept, fcntl(F_GETFL,
//! F_SETFL), recv, send, setsockopt/getsockopt (SO_RCVTIMEO, SO_SNDBUF,
//! SO_ERROR), poll, ioctl(SIOCINQ, SIOCOUTQ), getrusage(RUSAGE_THREAD),
//! close.
//!
//! Try it:
//!
//! ```text
//! netlab io-demo --mode blocking --delay 2
//! netlab io-demo --mode nonblocking
//! netlab io-demo --mode timeout --timeout 0.5
//! netlab io-demo --mode connect
//! netlab io-demo --mode short-write
//! ```
//!
//! Lesson: `netlab lesson io-models`.

mod blocking;
mod connect;
mod nonblocking;
mod short_write;
mod timeout;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    bind, connect, listen, send, socket, AddressFamily, Backlog, MsgFlags, SockFlag, SockType,
};
use serde_json::json;

use crate::cli::parse_seconds;
use crate::kernel;
use crate::narrate::text::bytes;
use crate::narrate::{Fact, Narrator};
use crate::sys;

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Which scene to run.
    #[arg(long, value_enum, default_value_t = Mode::Blocking)]
    pub mode: Mode,

    // The flags below each belong to some scenes only. They are Options, so
    // that `check()` can tell a flag given to a scene that ignores it (a
    // usage error) from one left out (the scene's default applies).
    /// How long the peer waits before it sends, default 1 s (blocking and
    /// nonblocking scenes only).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub delay: Option<f64>,

    /// The receive timeout set with SO_RCVTIMEO, more than 0, default 1 s
    /// (timeout scene only).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<f64>,

    /// How many bytes to hand to one send(), default 8 MiB (short-write
    /// scene only).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=268_435_456))]
    pub bytes: Option<u32>,

    /// Set SO_SNDBUF to this first; Linux doubles it (short-write scene only).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(i32).range(1..=67_108_864))]
    pub sndbuf: Option<i32>,
}

impl Args {
    /// A flag given to a scene that does not use it is a mistake on the
    /// command line, not something to ignore in silence: name the flag and
    /// the scenes that use it. `cli::check` turns this into a usage error.
    pub fn check(&self) -> Result<(), String> {
        use Mode::*;
        let flags: [(&str, bool, &[Mode], &str); 4] = [
            (
                "--delay",
                self.delay.is_some(),
                &[Blocking, Nonblocking],
                "--mode blocking and --mode nonblocking",
            ),
            (
                "--timeout",
                self.timeout.is_some(),
                &[Timeout],
                "--mode timeout",
            ),
            (
                "--bytes",
                self.bytes.is_some(),
                &[ShortWrite],
                "--mode short-write",
            ),
            (
                "--sndbuf",
                self.sndbuf.is_some(),
                &[ShortWrite],
                "--mode short-write",
            ),
        ];
        for (flag, given, used_by, scenes) in flags {
            if given && !used_by.contains(&self.mode) {
                let mode = clap::ValueEnum::to_possible_value(&self.mode)
                    .map(|value| value.get_name().to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "{flag} is only used by {scenes}, not by --mode {mode}"
                ));
            }
        }
        Ok(())
    }

    /// How long the peer waits before it sends.
    fn delay(&self) -> Duration {
        Duration::from_secs_f64(self.delay.unwrap_or(1.0))
    }

    /// The receive timeout for SO_RCVTIMEO.
    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.unwrap_or(1.0))
    }

    /// How many bytes the short-write scene hands to one send().
    fn bytes(&self) -> usize {
        self.bytes.unwrap_or(8 << 20) as usize
    }
}

/// The five scenes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// recv() sleeps in the kernel until data arrives.
    Blocking,
    /// recv() returns EAGAIN at once; a loop around it burns CPU.
    Nonblocking,
    /// SO_RCVTIMEO: recv() gives up after a timeout.
    Timeout,
    /// A non-blocking connect(): EINPROGRESS, then poll and SO_ERROR.
    Connect,
    /// A non-blocking send() takes part of a large buffer, then EAGAIN.
    ShortWrite,
}

/// A timeout must be positive: SO_RCVTIMEO of 0 means "wait for ever".
fn parse_timeout(text: &str) -> Result<f64, String> {
    match parse_seconds(text) {
        Ok(secs) if secs >= 0.001 => Ok(secs),
        Ok(_) => {
            Err("the timeout must be at least 0.001 s (0 would mean no timeout at all)".into())
        }
        Err(err) => Err(err),
    }
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    match args.mode {
        Mode::Blocking => blocking::run(nar, args),
        Mode::Nonblocking => nonblocking::run(nar, args),
        Mode::Timeout => timeout::run(nar, args),
        Mode::Connect => connect::run(nar),
        Mode::ShortWrite => short_write::run(nar, args),
    }
}

/// What the peer thread sends when its moment comes.
const MESSAGE: &[u8] = b"hello from the peer\n";

/// Our end of a TCP connection on loopback, and the peer's end.
struct Pair {
    ours: OwnedFd,
    theirs: OwnedFd,
}

/// Set the scene: a listener on 127.0.0.1 (port chosen by the kernel), a
/// second socket connected to it, the accepted connection, and the
/// listener closed again. Every call is narrated; the tcp lesson explains them.
fn connected_pair(nar: &Narrator) -> Result<Pair> {
    nar.note("Setting the scene: a TCP connection on loopback. This program reads from one end; a peer thread owns the other end and decides when to send.");
    let listener = new_tcp_socket(nar, SockFlag::empty())?;
    let fd = listener.as_raw_fd();
    let wanted = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let step = nar.call("bind", format!("fd {fd}, {wanted}"));
    step.check(bind(fd, &sys::to_kernel(wanted)), |_| "0".into())?;
    let step = nar.call("getsockname", format!("fd {fd}"));
    let addr = step.check(sys::local_addr(fd), |addr| addr.to_string())?;
    let step = nar.call("listen", format!("fd {fd}, backlog 1"));
    step.check(listen(&listener, Backlog::new(1)?), |_| "0".into())?;

    let theirs = new_tcp_socket(nar, SockFlag::empty())?;
    let step = nar.call("connect", format!("fd {}, {addr}", theirs.as_raw_fd()));
    step.check(connect(theirs.as_raw_fd(), &sys::to_kernel(addr)), |_| {
        "0".into()
    })?;
    let step = nar.call("accept", format!("fd {fd}"));
    let (ours, peer) = step.check(sys::accept_with_peer(listener.as_fd()), |(conn, peer)| {
        format!("fd {}, peer {peer}", conn.as_raw_fd())
    })?;
    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(listener), |_| "0".into())?;
    nar.info(
        "pair",
        json!({ "ours": ours.as_raw_fd(), "theirs": theirs.as_raw_fd(), "peer": peer.to_string() }),
        format!(
            "fd {} is our end; fd {} is the peer's end ({peer})",
            ours.as_raw_fd(),
            theirs.as_raw_fd()
        ),
    );
    Ok(Pair { ours, theirs })
}

/// socket(AF_INET, SOCK_STREAM | flags), narrated.
fn new_tcp_socket(nar: &Narrator, flags: SockFlag) -> Result<OwnedFd> {
    let shown = if flags.contains(SockFlag::SOCK_NONBLOCK) {
        "AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0"
    } else {
        "AF_INET, SOCK_STREAM, 0"
    };
    let step = nar.call("socket", shown);
    Ok(step.check(
        socket(AddressFamily::Inet, SockType::Stream, flags, None),
        |fd| format!("fd {}", fd.as_raw_fd()),
    )?)
}

/// fcntl(F_GETFL), then fcntl(F_SETFL, flags | O_NONBLOCK): what Python's
/// `sock.setblocking(False)` does.
fn set_nonblocking(nar: &Narrator, fd: BorrowedFd<'_>) -> Result<()> {
    let raw = fd.as_raw_fd();
    let step = nar.call("fcntl", format!("fd {raw}, F_GETFL"));
    let flags = step.check(fcntl(fd, FcntlArg::F_GETFL), |flags| {
        let nonblocking = OFlag::from_bits_truncate(*flags).contains(OFlag::O_NONBLOCK);
        format!(
            "{flags:#o} ({})",
            if nonblocking {
                "O_NONBLOCK is set"
            } else {
                "O_NONBLOCK is not set"
            }
        )
    })?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    let step = nar.call("fcntl", format!("fd {raw}, F_SETFL, O_RDWR | O_NONBLOCK"));
    step.check(fcntl(fd, FcntlArg::F_SETFL(flags)), |_| "0".into())?;
    nar.note("O_NONBLOCK is set: from now on a call that would have to wait fails at once with EAGAIN instead. Python's sock.setblocking(False) makes exactly these two fcntl() calls.");
    Ok(())
}

/// Wait `duration` unless the scene is over first (its sender dropped).
/// Returns true if the whole pause passed. The peer thread uses this
/// instead of sleep, so a Ctrl-C never waits for a long `--delay`.
fn pause(cues: &Receiver<()>, duration: Duration) -> bool {
    matches!(cues.recv_timeout(duration), Err(RecvTimeoutError::Timeout))
}

/// The peer thread's part in the receiving scenes: wait for the main
/// thread's cue (given right before it starts to wait, so that `--step`
/// pauses do not eat the delay), wait `delay`, then send MESSAGE. When the
/// main thread drops its sender, the peer gives up at once.
fn peer_sends_after(nar: &Narrator, theirs: BorrowedFd<'_>, delay: Duration, cues: &Receiver<()>) {
    crate::stop::block_stop_signals_in_this_thread();
    if cues.recv().is_err() || !pause(cues, delay) {
        return;
    }
    // Said before the send, so that it shows up before the other end wakes.
    nar.info(
        "peer_sends",
        json!({ "bytes": MESSAGE.len(), "after_ms": delay.as_millis() as u64 }),
        format!(
            "peer thread: sends {} after {:.2} s",
            bytes(MESSAGE.len()),
            delay.as_secs_f64()
        ),
    );
    match send(theirs.as_raw_fd(), MESSAGE, MsgFlags::empty()) {
        Ok(_) => {}
        Err(errno) => nar.warning(
            format!(
                "peer thread: send() failed with {}",
                crate::narrate::errno_name(errno)
            ),
            None,
        ),
    }
}

/// CPU time used by this thread, narrated as a `kernel:` line, between
/// `before` (from `kernel::io::thread_cpu_time`) and now.
fn report_cpu(nar: &Narrator, before: Option<(Duration, Duration)>, started: Instant, what: &str) {
    let wall = started.elapsed();
    let subject = format!("thread {}", nix::unistd::gettid());
    match (before, kernel::io::thread_cpu_time()) {
        (Some((user0, sys0)), Ok((user1, sys1))) => {
            let user = user1.saturating_sub(user0);
            let system = sys1.saturating_sub(sys0);
            let busy = (user + system).as_secs_f64();
            let percent = if wall.is_zero() {
                0.0
            } else {
                100.0 * busy / wall.as_secs_f64()
            };
            nar.kernel(Fact::new(
                subject,
                "cpu_time",
                json!({
                    "what": what,
                    "wall_ms": ms(wall),
                    "user_ms": ms(user),
                    "system_ms": ms(system),
                    "cpu_percent": (percent * 10.0).round() / 10.0,
                }),
                "getrusage(RUSAGE_THREAD)",
                format!(
                    "{what}: {:.3} s of CPU (user {:.3} s, system {:.3} s) in {:.3} s of wall time, {percent:.0}% of one core",
                    busy,
                    user.as_secs_f64(),
                    system.as_secs_f64(),
                    wall.as_secs_f64()
                ),
            ));
        }
        (_, Err(errno)) => nar.kernel(Fact::unavailable(
            subject,
            "cpu_time",
            "getrusage(RUSAGE_THREAD)",
            crate::narrate::errno_name(errno),
        )),
        (None, Ok(_)) => nar.kernel(Fact::unavailable(
            subject,
            "cpu_time",
            "getrusage(RUSAGE_THREAD)",
            "the first reading failed",
        )),
    }
}

/// Milliseconds with a tenth of precision, for JSON values.
fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The watcher thread: while thread `tid` of this process waits (or spins),
/// read its state from `/proc/self/task/TID/stat` and its wait channel from
/// `.../wchan`, and narrate what the kernel says, at most `reports` times.
/// It starts on the first message from `control` (sent when the wait
/// begins) and stops when the main thread drops the sender.
fn watch_thread(nar: &Narrator, tid: i32, control: &Receiver<()>, reports: usize) {
    crate::stop::block_stop_signals_in_this_thread();
    let pid = std::process::id() as i32;
    if control.recv().is_err() {
        return;
    }
    let started = Instant::now();
    // Give the main thread time to enter its call, then look now and then.
    let mut interval = Duration::from_millis(200);
    for _ in 0..reports {
        if !pause(control, interval) {
            return;
        }
        interval = Duration::from_millis(300);
        let subject = format!("thread {tid}");
        let stat = match kernel::read_task_stat(pid, tid) {
            Ok(stat) => stat,
            Err(err) => {
                nar.kernel(Fact::unavailable(
                    subject,
                    "thread_state",
                    "/proc/self/task/TID/stat",
                    err,
                ));
                return;
            }
        };
        let wchan = kernel::io::task_wchan(pid, tid).ok().flatten();
        let waits_in = match &wchan {
            Some(function) => format!(", waiting in the kernel function {function}"),
            None => String::new(),
        };
        let after = started.elapsed();
        nar.kernel(Fact::new(
            &subject,
            "thread_state",
            json!({
                "tid": tid,
                "state": stat.state.to_string(),
                "name": kernel::state_name(stat.state),
                "wchan": wchan,
                "cpu_ticks": stat.utime_ticks + stat.stime_ticks,
                "after_ms": ms(after),
            }),
            "/proc/self/task/TID/stat",
            format!(
                "after {:.1} s the main {subject} is {} ({}){waits_in}; CPU used so far: {} clock ticks",
                after.as_secs_f64(),
                stat.state,
                kernel::state_name(stat.state),
                stat.utime_ticks + stat.stime_ticks
            ),
        ));
    }
}

/// Poll bits as C names them: "POLLOUT | POLLERR | POLLHUP".
fn poll_flags(flags: nix::poll::PollFlags) -> String {
    let shown = format!("{flags:?}");
    shown
        .trim_start_matches("PollFlags(")
        .trim_end_matches(')')
        .to_string()
}
