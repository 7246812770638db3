//! `--step`: pause before each system call until a key is pressed.
//!
//! The terminal is put in raw mode (so one key press is enough, without
//! Enter) only while we wait, and a guard restores it when the wait ends,
//! even if the program panics. In raw mode Ctrl-C arrives as a key, not as
//! SIGINT, so we treat it like `q`: stop stepping and ask the demo to stop.
//! With no terminal on standard input there is nobody to press a key, so
//! stepping is switched off at start rather than waiting forever.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal;

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

    /// Wait for a key before `call` runs. Enter or space: run it. `c`: run
    /// on without pausing again. `q` or Ctrl-C: stop the demo.
    /// `call` is only formatted when we really pause.
    pub fn wait(&self, call: impl FnOnce() -> String) {
        if !self.enabled.load(Ordering::Relaxed) || stop::requested().is_some() {
            return;
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
                return;
            };
            wait_for_key()
        };
        // Erase the prompt line so the narration stays clean.
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
        match outcome {
            Key::Next => {}
            Key::RunOn => self.enabled.store(false, Ordering::Relaxed),
            Key::Quit => {
                self.enabled.store(false, Ordering::Relaxed);
                stop::request(StopReason::Interrupt);
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
    loop {
        // Poll in short slices so a stop requested elsewhere (SIGTERM, a
        // closed output) also ends the wait.
        if stop::requested().is_some() {
            return Key::Quit;
        }
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return Key::Next,
        }
        let Ok(Event::Key(key)) = event::read() else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return Key::Quit
            }
            KeyCode::Char('q') | KeyCode::Esc => return Key::Quit,
            KeyCode::Char('c') => return Key::RunOn,
            KeyCode::Enter | KeyCode::Char(' ') | KeyCode::Char('n') => return Key::Next,
            _ => {}
        }
    }
}
