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
//! The same path serves a closed output: when `netlab tcp-server | head -3`
//! has printed its three lines, `head` exits and our stdout becomes a broken
//! pipe. The narrator notices (a write fails with EPIPE, or a watcher thread
//! sees the pipe's reader vanish) and calls `request(OutputClosed)`, which
//! interrupts the main thread's blocking call with a signal until it has
//! finished.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Why the program is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT: Ctrl-C in the terminal.
    Interrupt,
    /// SIGTERM or SIGHUP: asked to stop by another process or a closed terminal.
    Terminate,
    /// Standard output was closed by its reader.
    OutputClosed,
}

impl StopReason {
    fn code(self) -> u8 {
        match self {
            StopReason::Interrupt => 1,
            StopReason::Terminate => 2,
            StopReason::OutputClosed => 3,
        }
    }

    fn from_code(code: u8) -> Option<StopReason> {
        match code {
            1 => Some(StopReason::Interrupt),
            2 => Some(StopReason::Terminate),
            3 => Some(StopReason::OutputClosed),
            _ => None,
        }
    }

    /// The exit status a shell expects: 128 + the signal number, or 0 when
    /// our reader simply went away (like `yes | head`).
    pub fn exit_code(self) -> i32 {
        match self {
            StopReason::Interrupt => 128 + Signal::SIGINT as i32,
            StopReason::Terminate => 128 + Signal::SIGTERM as i32,
            StopReason::OutputClosed => 0,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Interrupt => "interrupted (SIGINT)",
            StopReason::Terminate => "terminated (SIGTERM)",
            StopReason::OutputClosed => "output closed",
        }
    }
}

/// 0 while running; otherwise the code of the first stop reason.
static REASON: AtomicU8 = AtomicU8::new(0);

/// The thread that runs the demo, which the nudges are aimed at.
static MAIN_THREAD: OnceLock<libc::pthread_t> = OnceLock::new();

/// Runs in signal context: it may only touch atomics. The first reason wins.
extern "C" fn on_signal(signo: libc::c_int) {
    let code = if signo == libc::SIGINT {
        StopReason::Interrupt.code()
    } else {
        StopReason::Terminate.code()
    };
    let _ = REASON.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
}

/// Install the handlers for SIGINT, SIGTERM and SIGHUP. Call it once, from
/// the main thread, before the demo starts.
pub fn install() -> nix::Result<()> {
    // SAFETY: pthread_self has no preconditions.
    let _ = MAIN_THREAD.set(unsafe { libc::pthread_self() });
    // No SA_RESTART: blocking calls return EINTR, so the demo can react.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only performs an atomic compare-exchange, which
        // is async-signal-safe.
        unsafe { signal::sigaction(signal, &action) }?;
    }
    Ok(())
}

/// Has anything asked us to stop? Check it whenever a call returns EINTR
/// and at the top of every loop.
pub fn requested() -> Option<StopReason> {
    StopReason::from_code(REASON.load(Ordering::SeqCst))
}

/// Ask the program to stop (from any thread). The main thread is interrupted
/// with SIGTERM every 100 ms until it exits, so a blocking call cannot miss
/// the request even if it started a moment after the first signal.
pub fn request(reason: StopReason) {
    let first = REASON
        .compare_exchange(0, reason.code(), Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if first {
        let _ = std::thread::Builder::new()
            .name("netlab-stop".into())
            .spawn(nudge_main_thread);
    }
}

fn nudge_main_thread() {
    block_stop_signals_in_this_thread();
    let Some(main) = MAIN_THREAD.get().copied() else {
        return;
    };
    loop {
        // SAFETY: `main` is the pthread_t of the main thread, which lives as
        // long as the process; the handler for SIGTERM is installed, so the
        // signal only interrupts its current system call.
        unsafe { libc::pthread_kill(main, libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Helper threads call this first, so that Ctrl-C is delivered to the main
/// thread (the one blocked in the demo's system call), not to them.
pub fn block_stop_signals_in_this_thread() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
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
        for reason in [
            StopReason::Interrupt,
            StopReason::Terminate,
            StopReason::OutputClosed,
        ] {
            assert_eq!(StopReason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(StopReason::from_code(0), None);
    }
}
