//! The interactive mode of tcp-client and udp-client: every line typed on
//! standard input, newline included, is handed to the demo to send.
//!
//! Reading fd 0 is a system call too, and it is where an interactive
//! client waits, so each read() is narrated like any other call.

use anyhow::{Context, Result};
use nix::errno::Errno;
use std::os::fd::AsFd;

use crate::narrate::text::bytes;
use crate::narrate::Narrator;
use crate::stop;

/// How much one read() of standard input asks for; a longer line without
/// a newline is handed on in pieces of this size.
const CHUNK: usize = 4096;

/// read() standard input until end of input (Ctrl-D) or a stop, and call
/// `send` with each complete line; what is left at the end of input is
/// sent too. `send` returns false when there is no point going on (the
/// connection broke). `how` is the note that tells the user what to type.
pub fn send_each_line(
    nar: &Narrator,
    how: &'static str,
    send: impl FnMut(&[u8]) -> bool,
) -> Result<()> {
    send_each_line_while(nar, how, || true, send)
}

/// `send_each_line` for a demo that also watches something else (a child
/// process that may end): when a signal interrupts read() (EINTR),
/// `keep_going` is asked, and false ends the reading as end of input would.
pub fn send_each_line_while(
    nar: &Narrator,
    how: &'static str,
    mut keep_going: impl FnMut() -> bool,
    mut send: impl FnMut(&[u8]) -> bool,
) -> Result<()> {
    let stdin = std::io::stdin();
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; CHUNK];
    nar.note(how);
    loop {
        if stop::requested().is_some() {
            return Ok(());
        }
        let step = nar.blocking(
            "read",
            format!("fd 0 (stdin), {}", bytes(chunk.len())),
            "waiting for a line on standard input",
        );
        match nix::unistd::read(stdin.as_fd(), &mut chunk) {
            Ok(0) => {
                step.ok_value(0, "0: end of input");
                if !pending.is_empty() {
                    send(&std::mem::take(&mut pending));
                }
                return Ok(());
            }
            Ok(count) => {
                step.ok_value(count as i64, bytes(count));
                pending.extend_from_slice(&chunk[..count]);
                // Send every complete line, newline included.
                while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if !send(&line) {
                        return Ok(());
                    }
                }
                // A very long line without a newline is sent in pieces.
                if pending.len() >= chunk.len() && !send(&std::mem::take(&mut pending)) {
                    return Ok(());
                }
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if !keep_going() {
                    return Ok(());
                }
            }
            Err(errno) => {
                step.fail(errno);
                return Err(errno).context("reading standard input failed");
            }
        }
    }
}
