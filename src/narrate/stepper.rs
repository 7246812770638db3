//! `--step`: pause before each system call until a key is pressed.
//!
//! The terminal is put in raw mode (so one key press is enough, without
//! Enter) only while we wait, and a guard restores it when the wait ends,
//! even if the program panics. In raw mode Ctrl-C arrives as a key, not as
//! SIGINT, so we treat it like `q`: stop stepping and ask the demo to stop.
//! `wait` reports the quit to the narrator, which ends a demo that declared
//! it may end at any step right there (see `Narrator::may_end_at_any_step`);
//! any other demo stops like on Ctrl-C, at its next stop check.
//! With no terminal on standard input there is nobody to press a key, so
//! stepping is switched off at start rather than waiting forever; and if the
//! terminal goes away while we wait (read returns 0), stepping ends too.
//!
//! Keys are read with plain poll(2) and read(2) on fd 0: crossterm only
//! switches raw mode on and off. (Its event reader keeps descriptors of its
//! own open, which would show up in the demos' fd tables.)

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::terminal;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::stop::{self, StopReason};

pub struct Stepper {
    enabled: AtomicBool,
}

/// Restores the terminal when dropped, also during a panic's unwinding.
struct RawModeGuard;

impl RawModeGuard {
    fn enable() -> Option<RawModeGuard> {
        terminal::enable_raw_mode().ok().map(|()| RawModeGuard)
    }
}

impl Drop for RawModeGuard {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
    }
}

impl Stepper {
    /// A stepper that pauses if `wanted` and standard input is a terminal.
    /// Returns the stepper and whether stepping had to be turned off.
    pub fn new(wanted: bool) -> (Stepper, bool) {
        let possible = std::io::stdin().is_terminal();
        let stepper = Stepper {
            enabled: AtomicBool::new(wanted && possible),
        };
        (stepper, wanted && !possible)
    }

    /// Never pause again. A forked child calls it (through
    /// `Narrator::forked_child`): only one process may read the keys.
    pub fn disable(&self) {
        self.enabled.store(false, Ordering::Relaxed);
    }

    /// Wait for a key before `call` runs. Enter or space: run it. `c`: run
    /// on without pausing again. `q` or Ctrl-C: stop the demo (a stop is
    /// requested) and return true: the call has not run yet.
    /// `call` is only formatted when we really pause.
    pub fn wait(&self, call: impl FnOnce() -> String) -> bool {
        if !self.enabled.load(Ordering::Relaxed) || stop::requested().is_some() {
            return false;
        }
        let call = call();
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "      next: {call}   [Enter] run it  [c] run on  [q] quit "
        );
        let _ = err.flush();
        let outcome = {
            let Some(_raw) = RawModeGuard::enable() else {
                // No terminal after all: never wait.
                self.enabled.store(false, Ordering::Relaxed);
                return false;
            };
            wait_for_key()
        };
        // Erase the prompt line so the narration stays clean (on a
        // terminal; into a file, end the line instead).
        let _ = if err.is_terminal() {
            write!(err, "\r\x1b[2K")
        } else {
            writeln!(err)
        };
        let _ = err.flush();
        match outcome {
            Key::Next => false,
            Key::RunOn => {
                self.enabled.store(false, Ordering::Relaxed);
                false
            }
            Key::Quit => {
                self.enabled.store(false, Ordering::Relaxed);
                // The first reason wins: a SIGTERM during the pause stays one.
                stop::request(StopReason::Quit);
                true
            }
        }
    }
}

enum Key {
    Next,
    RunOn,
    Quit,
}

fn wait_for_key() -> Key {
    let stdin = std::io::stdin();
    // One byte at a time: keys typed ahead stay queued for the next pause.
    let mut keys = [0u8; 1];
    loop {
        // Wait in short slices, so that a stop requested elsewhere (SIGTERM,
        // a closed output) also ends the wait.
        if stop::requested().is_some() {
            return Key::Quit;
        }
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u8)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return Key::RunOn,
        }
        match nix::unistd::read(stdin.as_fd(), &mut keys) {
            // The terminal is gone: nobody will press a key any more.
            Ok(0) => return Key::RunOn,
            Ok(count) => {
                if let Some(key) = decode(&keys[..count]) {
                    return key;
                }
            }
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(_) => return Key::RunOn,
        }
    }
}

/// What a key byte means. The bytes of an escape sequence (an arrow key:
/// ESC [ A) mean nothing here and are skipped one by one.
fn decode(bytes: &[u8]) -> Option<Key> {
    match bytes.first()? {
        b'\r' | b'\n' | b' ' | b'n' => Some(Key::Next),
        b'c' => Some(Key::RunOn),
        // 0x03 is Ctrl-C: in raw mode it is a byte, not SIGINT.
        b'q' | 0x03 => Some(Key::Quit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_to_actions() {
        assert!(matches!(decode(b"\r"), Some(Key::Next)));
        assert!(matches!(decode(b" "), Some(Key::Next)));
        assert!(matches!(decode(b"c"), Some(Key::RunOn)));
        assert!(matches!(decode(b"q"), Some(Key::Quit)));
        assert!(matches!(decode(&[0x03]), Some(Key::Quit)));
        assert!(decode(b"\x1b[A").is_none(), "an arrow key does nothing");
        assert!(decode(b"").is_none());
    }
}
