//! The messages, how each fix frames them, and drawing a read against the
//! boundaries the sender intended.

use std::ops::Range;

use super::Fix;
use crate::narrate::text::show_bytes;

/// How the bytes of one message are marked in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The message as it is.
    Raw,
    /// The message, then `\n`.
    Lines,
    /// A 4-byte big-endian length, then the message.
    LengthPrefixed,
}

impl From<Fix> for Framing {
    fn from(fix: Fix) -> Framing {
        match fix {
            Fix::None | Fix::Pace => Framing::Raw,
            Fix::Delimiter => Framing::Lines,
            Fix::Length => Framing::LengthPrefixed,
        }
    }
}

/// What the sender says, in turn.
const WORDS: [&str; 6] = [
    "hello",
    "how are you?",
    "fine, thanks",
    "see you tomorrow",
    "ok",
    "bye",
];

/// The N messages: `#1 hello`, `#2 how are you?`, ... With
/// `delimiter_in_payload`, the second message (or the only one) carries a
/// newline inside its text.
pub fn messages(count: usize, delimiter_in_payload: bool) -> Vec<Vec<u8>> {
    (1..=count)
        .map(|number| {
            if delimiter_in_payload && number == count.min(2) {
                format!("#{number} two\nlines").into_bytes()
            } else {
                format!("#{number} {}", WORDS[(number - 1) % WORDS.len()]).into_bytes()
            }
        })
        .collect()
}

/// Which part of a frame a byte belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Prefix,
    Payload,
}

/// The whole byte stream the sender writes, and where each message lies in it.
pub struct Stream {
    bytes: Vec<u8>,
    /// Each message's frame (prefix, payload, delimiter) in `bytes`.
    frames: Vec<Range<usize>>,
    /// (message index, part, range) for every part of every frame.
    parts: Vec<(usize, Part, Range<usize>)>,
    /// Where the last frame is cut in two, counted from its start.
    cut: usize,
}

impl Stream {
    pub fn new(messages: &[Vec<u8>], framing: Framing) -> Stream {
        let mut bytes = Vec::new();
        let mut frames = Vec::new();
        let mut parts = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            let start = bytes.len();
            if framing == Framing::LengthPrefixed {
                // u32 in network byte order: the most significant byte first.
                let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
                bytes.extend_from_slice(&length.to_be_bytes());
                parts.push((index, Part::Prefix, start..bytes.len()));
            }
            let payload_start = bytes.len();
            bytes.extend_from_slice(message);
            if framing == Framing::Lines {
                bytes.push(b'\n');
            }
            parts.push((index, Part::Payload, payload_start..bytes.len()));
            frames.push(start..bytes.len());
        }
        // Cut the last frame inside its length prefix when there is one (so
        // the prefix itself arrives in two pieces), else mid-message.
        let last = frames.last().cloned().unwrap_or(0..0);
        let cut = match framing {
            Framing::LengthPrefixed => 2,
            _ => (last.len() / 2).max(1),
        }
        .min(last.len().saturating_sub(1));
        Stream {
            bytes,
            frames,
            parts,
            cut,
        }
    }

    /// The frames' bytes, in order.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.frames.iter().map(|range| &self.bytes[range.clone()])
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Where the sender cuts the last frame, from the frame's start.
    pub fn cut_in_last_frame(&self) -> usize {
        self.cut
    }

    /// How many bytes the sender has sent when it pauses at the cut.
    pub fn bytes_before_cut(&self) -> usize {
        self.frames.last().map_or(0, |last| last.start + self.cut)
    }

    /// Draw the stream bytes `range` (what one recv() returned) with the
    /// intended boundaries: messages separated by ` | `, a length prefix as
    /// `<00 00 00 08>`, `…` where a message continues in another read.
    /// Returns the drawing, the messages (1-based) the read touched, and
    /// those it held only part of.
    pub fn draw(&self, range: Range<usize>) -> (String, Vec<usize>, Vec<usize>) {
        let mut pieces = Vec::new();
        let mut touched = Vec::new();
        let mut cut = Vec::new();
        for (index, frame) in self.frames.iter().enumerate() {
            let start = frame.start.max(range.start);
            let end = frame.end.min(range.end);
            if start >= end {
                continue;
            }
            touched.push(index + 1);
            if start > frame.start || end < frame.end {
                cut.push(index + 1);
            }
            let mut piece = String::new();
            if start > frame.start {
                piece.push('…');
            }
            for (_, part, bytes) in self.parts.iter().filter(|(i, _, _)| *i == index) {
                let (from, to) = (bytes.start.max(start), bytes.end.min(end));
                if from >= to {
                    continue;
                }
                let shown = &self.bytes[from..to];
                match part {
                    Part::Prefix => {
                        let hex: Vec<String> = shown.iter().map(|b| format!("{b:02x}")).collect();
                        piece.push_str(&format!("<{}>", hex.join(" ")));
                    }
                    Part::Payload => piece.push_str(&show_bytes(shown, 80)),
                }
            }
            if end < frame.end {
                piece.push('…');
            }
            pieces.push(piece);
        }
        (pieces.join(" | "), touched, cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixes_are_big_endian_and_cut_inside() {
        let messages = messages(2, false);
        let stream = Stream::new(&messages, Framing::LengthPrefixed);
        let frames: Vec<&[u8]> = stream.frames().collect();
        assert_eq!(&frames[0][..4], &[0, 0, 0, 8]);
        assert_eq!(&frames[0][4..], b"#1 hello");
        assert_eq!(stream.cut_in_last_frame(), 2);
        assert_eq!(stream.bytes_before_cut(), 12 + 2);
    }

    #[test]
    fn a_read_is_drawn_against_the_intended_boundaries() {
        let stream = Stream::new(&messages(3, false), Framing::Lines);
        // "#1 hello\n" is 9 bytes, "#2 how are you?\n" 16: read 12 bytes.
        let (drawing, touched, cut) = stream.draw(0..12);
        assert_eq!(drawing, r##""#1 hello\n" | "#2 "…"##);
        assert_eq!(touched, [1, 2]);
        assert_eq!(cut, [2]);
        let (drawing, _, _) = stream.draw(12..25);
        assert!(drawing.starts_with('…'), "{drawing}");
    }

    #[test]
    fn the_delimiter_can_hide_in_a_payload() {
        let messages = messages(3, true);
        assert_eq!(messages[1], b"#2 two\nlines");
        assert_eq!(super::messages(1, true)[0], b"#1 two\nlines");
    }
}
