//! Stopping cleanly: Ctrl-C, SIGTERM, and an output nobody reads any more.
//!
//! A demo that is blocked in `accept()` or `recv()` must still end in order:
//! close its sockets, reap its children, say what it did. So netlab does not
//! let SIGINT kill it. `install()` sets a handler that only records *why* we
//! should stop, and installs it **without SA_RESTART**: a blocking system call
//! that the signal interrupts returns `EINTR` instead of being restarted.
//! Each demo handles `EINTR` by asking `requested()` and, if a stop is
//! pending, leaving its loop and cleaning up. That is the classic pattern in
//! C servers, and the reason `EINTR` appears in every demo.
//!
//! The pattern has a famous hole: a signal that arrives just *before* the
//! demo enters `recv()` interrupts nothing, and `recv()` then blocks for
//! ever. netlab closes it with the *self-pipe trick*: the handler also
//! writes one byte to a pipe (write is async-signal-safe), and a small helper
//! thread that waits on that pipe then interrupts the main thread every
//! 100 ms until the demo has finished.
//!
//! The same helper serves a closed output: when `netlab tcp-server | head -3`
//! has printed its three lines, `head` exits and our stdout becomes a broken
//! pipe. The helper sees it (poll reports POLLERR on a pipe whose reader has
//! gone), and a failed write says the same; either way the demo is asked to
//! stop, and ends quietly.
//!
//! A forked child inherits the handlers and the pipe's write end, but not
//! the helper thread (threads do not survive fork). A demo that forks must
//! give the child its own way to stop, so that a signal sent to the child
//! alone does not wake the parent's helper.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::stat::{fstat, SFlag};

/// Why the program is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT: Ctrl-C in the terminal.
    Interrupt,
    /// SIGTERM: asked to stop by another process.
    Terminate,
    /// SIGHUP: the terminal was closed (or its session ended).
    Hangup,
    /// Standard output was closed by its reader.
    OutputClosed,
    /// `q` (or Ctrl-C, which raw mode turns into a key) at a `--step` pause.
    Quit,
}

impl StopReason {
    fn code(self) -> u8 {
        match self {
            StopReason::Interrupt => 1,
            StopReason::Terminate => 2,
            StopReason::OutputClosed => 3,
            StopReason::Quit => 4,
            StopReason::Hangup => 5,
        }
    }

    fn from_code(code: u8) -> Option<StopReason> {
        match code {
            1 => Some(StopReason::Interrupt),
            2 => Some(StopReason::Terminate),
            3 => Some(StopReason::OutputClosed),
            4 => Some(StopReason::Quit),
            5 => Some(StopReason::Hangup),
            _ => None,
        }
    }

    /// The exit status a shell expects: 128 + the signal number, or 0 when
    /// our reader simply went away (like `yes | head`). `q` counts as the
    /// Ctrl-C it stands for.
    pub fn exit_code(self) -> i32 {
        match self {
            StopReason::Interrupt | StopReason::Quit => 128 + Signal::SIGINT as i32,
            StopReason::Terminate => 128 + Signal::SIGTERM as i32,
            StopReason::Hangup => 128 + Signal::SIGHUP as i32,
            StopReason::OutputClosed => 0,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Interrupt => "interrupted (SIGINT)",
            StopReason::Terminate => "terminated (SIGTERM)",
            StopReason::Hangup => "hung up (SIGHUP: the terminal was closed)",
            StopReason::OutputClosed => "output closed",
            StopReason::Quit => "quit at a --step pause",
        }
    }
}

/// 0 while running; otherwise the code of the first stop reason.
static REASON: AtomicU8 = AtomicU8::new(0);

/// The thread that runs the demo, which the nudges are aimed at.
static MAIN_THREAD: OnceLock<libc::pthread_t> = OnceLock::new();

/// The write end of the self-pipe, or -1 before `install()`.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The read end of the self-pipe, only to label it in fd tables.
static SELF_PIPE: AtomicI32 = AtomicI32::new(-1);

/// Record the first reason and wake the helper thread. Safe to call from a
/// signal handler: it only uses an atomic and write(2).
fn record(code: u8) {
    let _ = REASON.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    let wake_fd = WAKE_FD.load(Ordering::SeqCst);
    if wake_fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is one valid
        // byte. The pipe is non-blocking, so a full pipe cannot hang us.
        unsafe { libc::write(wake_fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Runs in signal context: only atomics and write(2). The first reason wins.
extern "C" fn on_signal(signo: libc::c_int) {
    let code = match signo {
        libc::SIGINT => StopReason::Interrupt.code(),
        libc::SIGHUP => StopReason::Hangup.code(),
        _ => StopReason::Terminate.code(),
    };
    record(code);
}

/// Install the handlers for SIGINT, SIGTERM and SIGHUP and start the helper
/// thread. Call it once, from the main thread, before the demo starts.
pub fn install() -> nix::Result<()> {
    // SAFETY: pthread_self has no preconditions.
    let _ = MAIN_THREAD.set(unsafe { libc::pthread_self() });

    // The self-pipe: the handler writes, the helper thread reads. Both ends
    // are moved up to fd 100 or above, so that the demo's first socket is
    // fd 3, as it would be in a C or Python program of the lesson.
    let (wake_read, wake_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let wake_read = move_fd_up(wake_read)?;
    let wake_write = move_fd_up(wake_write)?;
    SELF_PIPE.store(wake_read.as_raw_fd(), Ordering::SeqCst);
    WAKE_FD.store(wake_write.as_raw_fd(), Ordering::SeqCst);
    // The write end lives as long as the process.
    std::mem::forget(wake_write);
    let watch_stdout = stdout_is_pipe_or_socket();
    std::thread::Builder::new()
        .name("netlab-stop".into())
        .spawn(move || helper_thread(wake_read, watch_stdout))
        .map_err(|_| Errno::EAGAIN)?;

    // No SA_RESTART: blocking calls return EINTR, so the demo can react.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only touches atomics and calls write(2), both
        // async-signal-safe.
        unsafe { signal::sigaction(signal, &action) }?;
    }
    Ok(())
}

/// fcntl(F_DUPFD_CLOEXEC, 100): a copy of `fd` at the lowest free number
/// from 100 up; the original low number is closed. Under an open-file
/// limit of 100 or less (`ulimit -n 64`) there is no fd 100: the kernel
/// says EINVAL (or EMFILE when 100 and up are all taken), and the pipe
/// keeps its low number, which only shifts the demo's own fd numbers.
fn move_fd_up(fd: OwnedFd) -> nix::Result<OwnedFd> {
    match nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100)) {
        // SAFETY: fcntl returned a new descriptor that nothing else owns.
        Ok(high) => Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(high) }),
        Err(Errno::EINVAL | Errno::EMFILE) => Ok(fd),
        Err(errno) => Err(errno),
    }
}

/// The read end of netlab's own self-pipe (-1 before `install()`), so the
/// fd table narration can say what that pipe is.
pub fn self_pipe_fds() -> [i32; 2] {
    [
        SELF_PIPE.load(Ordering::SeqCst),
        WAKE_FD.load(Ordering::SeqCst),
    ]
}

/// Has anything asked us to stop? Check it whenever a call returns EINTR
/// and at the top of every loop.
pub fn requested() -> Option<StopReason> {
    StopReason::from_code(REASON.load(Ordering::SeqCst))
}

/// Ask the program to stop, from any thread (a closed output, `q` in step
/// mode). The helper thread then interrupts the main thread until it exits.
pub fn request(reason: StopReason) {
    record(reason.code());
}

/// Only a pipe or a socket can lose its reader; a file or a terminal cannot.
fn stdout_is_pipe_or_socket() -> bool {
    let Ok(stat) = fstat(std::io::stdout().as_fd()) else {
        return false;
    };
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
}

/// Wait until a stop is recorded (a byte in the self-pipe) or stdout's
/// reader goes away, then interrupt the main thread every 100 ms: whatever
/// blocking call it is in, or enters next, returns EINTR.
fn helper_thread(wake_read: OwnedFd, watch_stdout: bool) {
    block_stop_signals_in_this_thread();
    let stdout = std::io::stdout();
    loop {
        let mut fds = vec![PollFd::new(wake_read.as_fd(), PollFlags::POLLIN)];
        if watch_stdout {
            // No events asked for: POLLERR and POLLHUP are always reported.
            fds.push(PollFd::new(stdout.as_fd(), PollFlags::empty()));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
        let stdout_gone = fds.get(1).and_then(PollFd::revents).is_some_and(|revents| {
            revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL)
        });
        if stdout_gone {
            record(StopReason::OutputClosed.code());
        }
        if requested().is_some() {
            break;
        }
    }
    let Some(main) = MAIN_THREAD.get().copied() else {
        return;
    };
    loop {
        // SAFETY: `main` is the pthread_t of the main thread, which lives as
        // long as the process; our SIGTERM handler is installed, so the
        // signal only interrupts its current system call.
        unsafe { libc::pthread_kill(main, libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Helper threads call this first, so that Ctrl-C is delivered to the main
/// thread (the one blocked in the demo's system call), not to them. SIGCHLD
/// too: a demo that forks handles (or blocks) it in the main thread, and a
/// process-wide signal goes to any thread that does not block it.
pub fn block_stop_signals_in_this_thread() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set.add(Signal::SIGCHLD);
    let _ = set.thread_block();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(StopReason::Interrupt.exit_code(), 130);
        assert_eq!(StopReason::Terminate.exit_code(), 143);
        assert_eq!(StopReason::OutputClosed.exit_code(), 0);
        assert_eq!(StopReason::Quit.exit_code(), 130);
        assert_eq!(StopReason::Hangup.exit_code(), 129);
        for reason in [
            StopReason::Interrupt,
            StopReason::Terminate,
            StopReason::Hangup,
            StopReason::OutputClosed,
            StopReason::Quit,
        ] {
            assert_eq!(StopReason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(StopReason::from_code(0), None);
    }
}
