//! The program's output: stdout and stderr in one pipe, read by a thread,
//! kept (the last OUTPUT_KEEP bytes) for the report, and searched for a
//! Python traceback.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{lock, Program};

/// How much of the program's output is kept for the report.
const OUTPUT_KEEP: usize = 64 * 1024;

/// The program's output (stdout and stderr share one pipe, so their lines
/// stay in the order they were written), the last OUTPUT_KEEP bytes.
#[derive(Default)]
pub(super) struct OutputLog {
    bytes: Vec<u8>,
    /// Bytes dropped from the front to keep the log small.
    dropped: usize,
    /// The pipe reached end of file: every process that could write to
    /// it has ended, and all they wrote is here.
    complete: bool,
}

/// A Python traceback in the program's output (see `last_traceback`).
pub struct Traceback {
    /// Its last line, "ValueError: invalid literal for int()", when printed.
    pub exception: Option<String>,
    /// Whether that line is among the lines the report shows.
    pub shown: bool,
}

impl Traceback {
    /// The exception's class, "ConnectionResetError", from its line.
    pub fn class(&self) -> Option<&str> {
        let line = self.exception.as_deref()?;
        let name = line.split(':').next().unwrap_or(line).trim();
        Some(name.rsplit('.').next().unwrap_or(name))
    }

    /// A peer that reset or vanished: what netlab's own probes do on
    /// purpose, and what a server may log and survive.
    pub fn is_peer_gone(&self) -> bool {
        matches!(
            self.class(),
            Some("ConnectionResetError" | "BrokenPipeError" | "ConnectionAbortedError")
        )
    }
}

impl Program {
    /// Wait up to `limit` for the reading thread to reach the end of the
    /// output (every writer has ended), so the last lines are in the log.
    pub(super) fn wait_for_output(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while !lock(&self.output).complete && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last `max_lines` lines of the program's output, and how many
    /// earlier lines were left out. Invalid UTF-8 is shown escaped.
    pub fn output_tail(&self, max_lines: usize) -> (Vec<String>, usize) {
        let log = lock(&self.output);
        let text = String::from_utf8_lossy(&log.bytes);
        let mut lines: Vec<String> = text.lines().map(readable_line).collect();
        let mut earlier = 0;
        if lines.len() > max_lines {
            earlier = lines.len() - max_lines;
            lines.drain(..earlier);
        }
        if log.dropped > 0 && earlier == 0 {
            earlier = 1;
        }
        (lines, earlier)
    }

    /// The last Python traceback the program printed, if any: the line
    /// that names its exception, and whether that line is among the last
    /// `tail` lines (the ones the report shows).
    pub fn last_traceback(&self, tail: usize) -> Option<Traceback> {
        self.tracebacks(tail).pop()
    }

    /// Every Python traceback in the program's output (the part kept),
    /// in order; see `last_traceback`.
    pub fn tracebacks(&self, tail: usize) -> Vec<Traceback> {
        let log = lock(&self.output);
        let text = String::from_utf8_lossy(&log.bytes);
        let lines: Vec<&str> = text.lines().collect();
        let starts = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.starts_with("Traceback (most recent call last)"))
            .map(|(i, _)| i);
        starts
            .map(|start| {
                // The frames are indented; the first line after them that
                // names an exception ("ConnectionResetError: ..."). Lines
                // of several processes may be mixed, so it must look like
                // one: a (dotted) name, then a colon or nothing.
                let at = (start + 1..lines.len()).find(|&i| names_exception(lines[i]));
                match at {
                    Some(i) => Traceback {
                        exception: Some(readable_line(lines[i])),
                        shown: lines.len() - i <= tail,
                    },
                    None => Traceback {
                        exception: None,
                        shown: lines.len() - start <= tail,
                    },
                }
            })
            .collect()
    }
}

/// The longest line of the program's output the report shows whole.
const LINE_KEEP: usize = 300;

/// One line of the program's output as the report shows it: as printed,
/// except control characters (shown escaped, tab kept) and a line longer
/// than LINE_KEEP characters (cut, with how much was left out). Invalid
/// UTF-8 has already become U+FFFD.
pub(super) fn readable_line(line: &str) -> String {
    let mut out = String::new();
    for (shown, c) in line.chars().enumerate() {
        if shown == LINE_KEEP {
            let rest = line.chars().count() - shown;
            out.push_str(&format!(" ... ({rest} more characters)"));
            break;
        }
        if c == '\t' {
            out.push(c);
        } else if c.is_control() && (c as u32) < 0x100 {
            // ESC, BEL, CR...: as a C or Python string would write them.
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else if c.is_control() || invisible(c) {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that change how the rest of a line is shown without being
/// seen themselves: bidirectional overrides (U+202E turns the rest of the
/// report's line around), zero-width characters, line and paragraph
/// separators, the byte order mark.
fn invisible(c: char) -> bool {
    matches!(c as u32,
        0x00ad | 0x061c | 0x180e | 0x200b..=0x200f | 0x2028..=0x202e
            | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb)
}

/// Keep reading the program's output until every writer has closed it.
pub(super) fn read_output(pipe: OwnedFd, sink: &Mutex<OutputLog>) {
    let mut file = std::fs::File::from(pipe);
    let mut buf = [0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => {
                lock(sink).complete = true;
                return;
            }
            Ok(n) => {
                let mut log = lock(sink);
                log.bytes.extend_from_slice(&buf[..n]);
                if log.bytes.len() > OUTPUT_KEEP {
                    let cut = log.bytes.len() - OUTPUT_KEEP;
                    log.bytes.drain(..cut);
                    log.dropped += cut;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                lock(sink).complete = true;
                return;
            }
        }
    }
}

/// Does `line` look like a traceback's last line: "ValueError",
/// "socket.timeout: timed out", "OSError: [Errno 9] Bad file descriptor"?
fn names_exception(line: &str) -> bool {
    let name = line.split(':').next().unwrap_or("");
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && name != "Traceback"
}
