//! The receiving side: one narrated recv() at a time, and the three ways
//! of turning the bytes back into messages.

use std::collections::BTreeSet;
use std::os::fd::RawFd;

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use serde_json::json;

use super::frames::{Framing, Stream};
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{errno_name, Narrator};
use crate::stop;

/// The largest message the framed receivers accept. A length prefix is
/// whatever the sender wrote; believing 4 GB would let one bad client make
/// us allocate it.
const MAX_MESSAGE: usize = 1 << 20;

/// What one recv() gave.
enum Read {
    Data(Vec<u8>),
    /// recv() returned 0: the sender closed its end.
    Eof,
    /// A stop was requested, or the connection broke (already narrated).
    Over,
}

/// One receiving socket, and what its reads looked like.
pub struct Reader<'a> {
    nar: &'a Narrator,
    fd: RawFd,
    bufsize: usize,
    /// The sender's stream, when it is our own thread: used to draw the
    /// intended boundaries on each read.
    stream: Option<&'a Stream>,
    /// Bytes received so far: where the next read starts in the stream.
    offset: usize,
    reads: usize,
    merged_reads: usize,
    cut_messages: BTreeSet<usize>,
}

impl<'a> Reader<'a> {
    pub fn new(
        nar: &'a Narrator,
        fd: RawFd,
        bufsize: usize,
        stream: Option<&'a Stream>,
    ) -> Reader<'a> {
        Reader {
            nar,
            fd,
            bufsize,
            stream,
            offset: 0,
            reads: 0,
            merged_reads: 0,
            cut_messages: BTreeSet::new(),
        }
    }

    /// One recv() for at most `want` bytes (and at most --bufsize).
    fn recv_some(&mut self, want: usize, waiting_for: &str) -> Read {
        let mut buf = vec![0u8; want.min(self.bufsize).max(1)];
        loop {
            let step = self.nar.blocking(
                "recv",
                format!("fd {}, {}, 0", self.fd, bytes(buf.len())),
                waiting_for,
            );
            match recv(self.fd, &mut buf, MsgFlags::empty()) {
                Ok(0) => {
                    step.ok_value(0, "0: end of stream");
                    return Read::Eof;
                }
                Ok(count) => {
                    step.ok_value(count as i64, bytes(count));
                    buf.truncate(count);
                    self.show_read(&buf);
                    return Read::Data(buf);
                }
                Err(Errno::EINTR) => {
                    step.fail(Errno::EINTR);
                    if stop::requested().is_some() {
                        return Read::Over;
                    }
                }
                Err(errno) => {
                    step.fail(errno);
                    self.nar.warning(
                        format!(
                            "recv() failed with {}; the connection is over",
                            errno_name(errno)
                        ),
                        None,
                    );
                    return Read::Over;
                }
            }
        }
    }

    /// The `read` line: what this recv() returned, drawn against the
    /// sender's message boundaries when we know them.
    fn show_read(&mut self, data: &[u8]) {
        self.reads += 1;
        let range = self.offset..self.offset + data.len();
        self.offset = range.end;
        let (drawing, touched, cut) = match self.stream {
            Some(stream) => stream.draw(range),
            None => (show_bytes(data, 80), Vec::new(), Vec::new()),
        };
        if touched.len() > 1 {
            self.merged_reads += 1;
        }
        self.cut_messages.extend(cut.iter().copied());
        self.nar.info(
            "read",
            json!({
                "read": self.reads,
                "bytes": data.len(),
                "data": String::from_utf8_lossy(data),
                "messages": touched,
                "cut": cut,
            }),
            format!("read {}: {drawing}", self.reads),
        );
    }

    /// How the sends were regrouped by the reads (only when we drew them).
    pub fn summary(&self, messages: usize) {
        if self.stream.is_none() {
            return;
        }
        self.nar.info(
            "reads",
            json!({
                "messages": messages,
                "reads": self.reads,
                "merged_reads": self.merged_reads,
                "cut_messages": self.cut_messages.iter().collect::<Vec<_>>(),
            }),
            format!(
                "{messages} messages arrived in {} reads; {} read(s) held more than one message; {} message(s) were cut between reads",
                self.reads,
                self.merged_reads,
                self.cut_messages.len()
            ),
        );
    }

    /// Read exactly `count` bytes, calling recv() as often as it takes.
    /// None if the stream ended (or broke) first; `got` says how far we came.
    fn read_exact(&mut self, count: usize, what: &str) -> (Option<Vec<u8>>, usize) {
        let mut data = Vec::with_capacity(count);
        while data.len() < count {
            match self.recv_some(count - data.len(), what) {
                Read::Data(chunk) => {
                    data.extend_from_slice(&chunk);
                    if data.len() < count {
                        self.nar.note("recv() returned fewer bytes than we need; a stream gives what has arrived, so we call it again for the rest.");
                    }
                }
                Read::Eof | Read::Over => return (None, data.len()),
            }
        }
        (Some(data), count)
    }
}

/// Receive until the sender closes, framed as `framing` says. Returns the
/// messages the receiver made out, or None if a stop cut the run short.
pub fn receive(reader: &mut Reader<'_>, framing: Framing) -> Result<Option<Vec<Vec<u8>>>> {
    match framing {
        Framing::Raw => Ok(receive_raw(reader)),
        Framing::Lines => Ok(receive_lines(reader)),
        Framing::LengthPrefixed => Ok(receive_length_prefixed(reader)),
    }
}

/// No framing: all a receiver can do is take each read as a message.
fn receive_raw(reader: &mut Reader<'_>) -> Option<Vec<Vec<u8>>> {
    let mut reads = Vec::new();
    loop {
        match reader.recv_some(usize::MAX, "waiting for data from the sender") {
            Read::Data(data) => reads.push(data),
            Read::Eof => return Some(reads),
            Read::Over => return None,
        }
    }
}

/// Delimiter: collect bytes, and cut a message at each newline.
fn receive_lines(reader: &mut Reader<'_>) -> Option<Vec<Vec<u8>>> {
    let nar = reader.nar;
    let mut pending: Vec<u8> = Vec::new();
    let mut messages = Vec::new();
    loop {
        match reader.recv_some(usize::MAX, "waiting for data from the sender") {
            Read::Data(data) => pending.extend_from_slice(&data),
            Read::Eof => break,
            Read::Over => return None,
        }
        while let Some(newline) = pending.iter().position(|&byte| byte == b'\n') {
            let message: Vec<u8> = pending.drain(..=newline).take(newline).collect();
            messages.push(message);
            announce(nar, messages.len(), &messages[messages.len() - 1]);
        }
        if !pending.is_empty() {
            nar.info(
                "pending",
                json!({ "bytes": pending.len() }),
                format!(
                    "{} kept for later: a message without its newline yet",
                    bytes(pending.len())
                ),
            );
        }
        if pending.len() > MAX_MESSAGE {
            nar.warning(
                format!(
                    "{} without a newline: giving up on this sender",
                    bytes(pending.len())
                ),
                Some("a delimiter protocol needs a limit on the message length"),
            );
            return Some(messages);
        }
    }
    if !pending.is_empty() {
        nar.warning(
            format!(
                "the stream ended in the middle of a message: {} without a newline",
                bytes(pending.len())
            ),
            None,
        );
    }
    Some(messages)
}

/// Length prefix: read exactly 4 bytes, then exactly that many.
fn receive_length_prefixed(reader: &mut Reader<'_>) -> Option<Vec<Vec<u8>>> {
    let nar = reader.nar;
    let mut messages = Vec::new();
    loop {
        let (prefix, got) = reader.read_exact(4, "waiting for the 4 bytes of a length prefix");
        let Some(prefix) = prefix else {
            if got > 0 {
                nar.warning(
                    format!("the stream ended inside a length prefix ({got} of 4 bytes)"),
                    None,
                );
            }
            return (stop::requested().is_none()).then_some(messages);
        };
        let length = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        nar.info(
            "length",
            json!({ "prefix": prefix, "bytes": length }),
            format!(
                "length prefix {:02x} {:02x} {:02x} {:02x}: the next message is {}",
                prefix[0],
                prefix[1],
                prefix[2],
                prefix[3],
                bytes(length)
            ),
        );
        if length > MAX_MESSAGE {
            nar.warning(
                format!("a length prefix of {} is more than this receiver accepts ({}); closing", bytes(length), bytes(MAX_MESSAGE)),
                Some("the sender is not speaking this framing, or is hostile: never allocate what a prefix asks for unchecked"),
            );
            return Some(messages);
        }
        let (payload, got) = reader.read_exact(length, "waiting for the rest of the message");
        let Some(payload) = payload else {
            nar.warning(
                format!(
                    "the stream ended inside a message: {got} of {} arrived",
                    bytes(length)
                ),
                None,
            );
            return (stop::requested().is_none()).then_some(messages);
        };
        messages.push(payload);
        announce(nar, messages.len(), &messages[messages.len() - 1]);
    }
}

/// A message the receiver has made out.
fn announce(nar: &Narrator, number: usize, message: &[u8]) {
    nar.info(
        "message",
        json!({ "number": number, "text": String::from_utf8_lossy(message) }),
        format!("message {number}: {}", show_bytes(message, 80)),
    );
}
