//! Styled text: spans, painting, visible width and word wrapping.
//!
//! The renderer builds a paragraph as a list of [`Span`]s, pieces of plain text
//! that each carry a [`Style`]. [`wrap`] breaks that list into lines that fit
//! the terminal, and only then does [`paint`] turn each span into coloured text.
//!
//! The order matters. Widths are always measured on the *plain* text. Colours
//! are escape codes (`ESC [ 1 m` …) that take bytes but no columns, so they are
//! added only at the last moment, once every line break and padding is decided.

use std::mem;

use colored::Colorize;

/// How a piece of text looks. Inline styles nest (`**bold *and italic***`),
/// so each flag is simply on or off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Style {
    pub bold: bool,
    pub italic: bool,
    pub strike: bool,
    /// `inline code`
    pub code: bool,
    /// The text of a link.
    pub link: bool,
    /// The "(https://…)" shown after a link's text.
    pub url: bool,
    /// Part of a heading of this level.
    pub heading: Option<u8>,
}

/// A piece of text in one style. A line of output is a list of spans.
#[derive(Clone, Debug)]
pub(super) struct Span {
    pub text: String,
    pub style: Style,
}

impl Span {
    pub fn new(text: &str, style: Style) -> Self {
        Span {
            text: text.to_string(),
            style,
        }
    }
}

/// Turns a piece of plain text into coloured text (escape codes included, or
/// not, as the `colored` crate's global setting says).
pub(super) fn paint(text: &str, style: Style) -> String {
    let mut painted = text.normal();
    if let Some(level) = style.heading {
        painted = match level {
            1 => painted.bright_cyan(),
            2 => painted.cyan(),
            _ => painted.blue(),
        }
        .bold();
    }
    if style.code {
        painted = painted.yellow();
    }
    if style.link {
        painted = painted.blue().underline();
    }
    if style.url {
        painted = painted.dimmed();
    }
    if style.bold {
        painted = painted.bold();
    }
    if style.italic {
        painted = painted.italic();
    }
    if style.strike {
        painted = painted.strikethrough();
    }
    painted.to_string()
}

/// Paints a line of spans, each in its own style.
pub(super) fn paint_spans(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|span| paint(&span.text, span.style))
        .collect()
}

/// Adds text to a list of spans, growing the last span when the style is the
/// same, so that a line in one style gets one pair of escape codes, not one
/// per word.
fn append(spans: &mut Vec<Span>, text: &str, style: Style) {
    match spans.last_mut() {
        Some(last) if last.style == style => last.text.push_str(text),
        _ => spans.push(Span::new(text, style)),
    }
}

/// Columns a string takes on screen. Give it plain text only: escape codes
/// take no columns, and `paint` adds them after all measuring is done.
pub(super) fn visible_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// Most characters take one column. Combining accents and zero-width marks
/// take none; East Asian characters and most emoji take two. (A short version
/// of Unicode's East Asian Width table, enough for lesson text.)
fn char_width(c: char) -> usize {
    match u32::from(c) {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

pub(super) fn spans_width(spans: &[Span]) -> usize {
    spans.iter().map(|span| visible_width(&span.text)).sum()
}

/// The width of `spans` written on one line, with single spaces between words.
pub(super) fn one_line_width(spans: &[Span]) -> usize {
    let words = split_words(spans);
    let letters: usize = words.iter().map(|word| word.width).sum();
    letters + words.len().saturating_sub(1)
}

/// What the line filler moves around: text between two places where a line
/// may break. "**TCP**'s" is one word made of two spans in different styles.
#[derive(Default)]
struct Word {
    spans: Vec<Span>,
    width: usize,
}

impl Word {
    fn push(&mut self, text: &str, style: Style) {
        self.width += visible_width(text);
        append(&mut self.spans, text, style);
    }

    /// The word cut into pieces of at most `width` columns. Only words wider
    /// than a whole line are cut; any other word is returned whole.
    fn into_pieces(self, width: usize) -> Vec<Word> {
        if self.width <= width {
            return vec![self];
        }
        let mut pieces = Vec::new();
        let mut piece = Word::default();
        for span in &self.spans {
            for c in span.text.chars() {
                let c_width = char_width(c);
                if piece.width + c_width > width && piece.width > 0 {
                    pieces.push(mem::take(&mut piece));
                }
                piece.push(c.encode_utf8(&mut [0; 4]), span.style);
            }
        }
        pieces.push(piece);
        pieces
    }
}

/// Splits text into words at spaces, tabs and line ends. Spaces inside inline
/// code do not split it (`ss -tlnp` stays together), nor do no-break spaces.
fn split_words(spans: &[Span]) -> Vec<Word> {
    let mut words = Vec::new();
    let mut word = Word::default();
    for span in spans {
        if span.style.code {
            word.push(&span.text, span.style);
            continue;
        }
        for (index, part) in span
            .text
            .split(|c: char| c.is_ascii_whitespace())
            .enumerate()
        {
            if index > 0 && word.width > 0 {
                words.push(mem::take(&mut word)); // a space: the word ends
            }
            if !part.is_empty() {
                word.push(part, span.style);
            }
        }
    }
    if word.width > 0 {
        words.push(word);
    }
    words
}

/// Greedy word wrapping: each line takes as many words as fit in `width`
/// columns. The width of a line is counted from its plain text as words are
/// added, so the colours painted on later cannot upset it.
pub(super) fn wrap(spans: &[Span], width: usize) -> Vec<Vec<Span>> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line: Vec<Span> = Vec::new();
    let mut line_width = 0;
    for word in split_words(spans) {
        for piece in word.into_pieces(width) {
            if line_width > 0 && line_width + 1 + piece.width > width {
                lines.push(mem::take(&mut line));
                line_width = 0;
            }
            if line_width > 0 {
                // The space between two words of a link is underlined too.
                let before = line.last().map(|span| span.style);
                let after = piece.spans.first().map(|span| span.style);
                let style = if before == after { before } else { None };
                append(&mut line, " ", style.unwrap_or_default());
                line_width += 1;
            }
            line_width += piece.width;
            for span in &piece.spans {
                append(&mut line, &span.text, span.style);
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Runs `f` with colours on or off, holding the crate's colour lock.
    pub(in crate::lesson) fn with_colours<T>(on: bool, f: impl FnOnce() -> T) -> T {
        crate::narrate::with_colours(on, f)
    }

    fn plain_span(text: &str) -> Span {
        Span::new(text, Style::default())
    }

    /// The text of each wrapped line, without styles.
    fn wrapped(spans: &[Span], width: usize) -> Vec<String> {
        wrap(spans, width)
            .iter()
            .map(|line| line.iter().map(|span| span.text.as_str()).collect())
            .collect()
    }

    #[test]
    fn wrapping_never_exceeds_the_width() {
        let code = Style {
            code: true,
            ..Style::default()
        };
        let bold = Style {
            bold: true,
            ..Style::default()
        };
        let prose = [
            plain_span(
                "A socket is an endpoint for communication. The kernel keeps a \
                 queue of connections that completed the three-way handshake, and \
                 accept() takes the first one off that queue. Each ",
            ),
            Span::new("write()", code),
            plain_span(" copies bytes into the socket's "),
            Span::new("send buffer", bold),
            plain_span("; the kernel decides when they leave as segments."),
        ];
        let all_text: String = prose.iter().map(|span| span.text.as_str()).collect();
        for width in [20, 33, 60, 80, 100] {
            for line in wrap(&prose, width) {
                assert!(spans_width(&line) <= width, "{width}: {line:?}");
            }
            // No word is lost or split.
            let out = wrapped(&prose, width).join("\n");
            let words: Vec<&str> = out.split_whitespace().collect();
            let expected: Vec<&str> = all_text.split_whitespace().collect();
            assert_eq!(words, expected);
        }
    }

    #[test]
    fn only_words_longer_than_the_line_are_split() {
        let text = plain_span("short abcdefghijklmnopqrstuvwxyz end");
        assert_eq!(
            wrapped(&[text], 10),
            ["short", "abcdefghij", "klmnopqrst", "uvwxyz end"]
        );
    }

    #[test]
    fn inline_code_and_no_break_spaces_do_not_split() {
        let code = Style {
            code: true,
            ..Style::default()
        };
        let spans = [
            plain_span("run "),
            Span::new("ss -tlnp", code),
            plain_span(" on\u{a0}port 80"),
        ];
        assert_eq!(wrapped(&spans, 10), ["run", "ss -tlnp", "on\u{a0}port 80"]);
    }

    #[test]
    fn wide_and_zero_width_characters() {
        assert_eq!(visible_width("TCP → IP"), 8);
        assert_eq!(visible_width("e\u{301}"), 1, "a combining accent");
        assert_eq!(visible_width("日本語"), 6);
        let wide = plain_span("日本語日本語");
        assert_eq!(wrapped(&[wide], 5), ["日本", "語日", "本語"]);
    }

    #[test]
    fn a_line_in_one_style_gets_one_pair_of_escape_codes() {
        let bold = Style {
            bold: true,
            ..Style::default()
        };
        let lines = wrap(&[Span::new("three bold words", bold)], 80);
        assert_eq!(lines.len(), 1);
        let painted = with_colours(true, || paint_spans(&lines[0]));
        assert_eq!(painted.matches('\u{1b}').count(), 2, "{painted:?}");
    }
}
