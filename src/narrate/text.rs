//! Showing bytes from the network as text a class can read.
//!
//! Whatever a peer sends is shown, never trusted: valid UTF-8 is printed as
//! text, control characters and invalid bytes as escapes (`\n`, `\xff`), and
//! long data is cut with a count of what was left out. The terminal never
//! receives a raw escape sequence from the network.

use std::fmt::Write;

/// `bytes` as a quoted, escaped string of at most about `max_chars`
/// characters: `"hello\n"`, `"\xff\xfe"`, `"aaaa…" (+996 bytes)`.
pub fn show_bytes(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max_chars) + 8);
    out.push('"');
    let mut shown_chars = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        if shown_chars >= max_chars {
            break;
        }
        // Take the longest valid UTF-8 prefix, then one invalid byte.
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(text) => (text, None),
            Err(err) => {
                let (good, bad) = rest.split_at(err.valid_up_to());
                // from_utf8 just told us this prefix is valid UTF-8.
                let text = std::str::from_utf8(good).unwrap_or_default();
                (text, bad.first().copied())
            }
        };
        let mut consumed = 0;
        for ch in valid.chars() {
            if shown_chars >= max_chars {
                break;
            }
            push_char(&mut out, ch);
            shown_chars += 1;
            consumed += ch.len_utf8();
        }
        if consumed < valid.len() {
            rest = &rest[consumed..];
            break;
        }
        rest = &rest[consumed..];
        if let Some(byte) = invalid {
            if shown_chars >= max_chars {
                break;
            }
            let _ = write!(out, "\\x{byte:02x}");
            shown_chars += 1;
            rest = &rest[1..];
        }
    }
    out.push('"');
    if !rest.is_empty() {
        let _ = write!(out, "… (+{} bytes)", rest.len());
    }
    out
}

fn push_char(out: &mut String, ch: char) {
    match ch {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        // Other control characters (ESC among them) could steer the
        // terminal: show their code instead, as a byte (`\x00`, `\x1b`)
        // like the invalid bytes above, or as a code point for the few
        // control characters beyond ASCII.
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// "1 byte", "2 bytes".
pub fn bytes(count: usize) -> String {
    if count == 1 {
        "1 byte".to_string()
    } else {
        format!("{count} bytes")
    }
}

/// Wrap `text` into lines of at most `width` columns (words longer than the
/// width stand alone on their line).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_width = 0;
    for word in text.split_whitespace() {
        let word_width = word.chars().count();
        if line_width > 0 && line_width + 1 + word_width > width {
            lines.push(std::mem::take(&mut line));
            line_width = 0;
        }
        if line_width > 0 {
            line.push(' ');
            line_width += 1;
        }
        line.push_str(word);
        line_width += word_width;
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_quoted_and_control_characters_escaped() {
        assert_eq!(show_bytes(b"hello\n", 64), r#""hello\n""#);
        assert_eq!(show_bytes(b"a\tb\r\n", 64), r#""a\tb\r\n""#);
        assert_eq!(show_bytes(b"say \"hi\"", 64), r#""say \"hi\"""#);
        assert_eq!(show_bytes(b"\x1b[31m", 64), r#""\x1b[31m""#);
        assert_eq!(show_bytes(b"\0\0\0\x01", 64), r#""\x00\x00\x00\x01""#);
        assert_eq!(show_bytes("\u{85}".as_bytes(), 64), r#""\u{85}""#);
        assert_eq!(show_bytes(b"", 64), r#""""#);
    }

    #[test]
    fn invalid_utf8_is_shown_byte_by_byte() {
        assert_eq!(show_bytes(b"\xff\xfeok", 64), r#""\xff\xfeok""#);
        assert_eq!(show_bytes("héllo".as_bytes(), 64), r#""héllo""#);
        // A multi-byte character cut in half by the network.
        assert_eq!(show_bytes(&"é".as_bytes()[..1], 64), r#""\xc3""#);
    }

    #[test]
    fn long_data_is_cut_with_a_count() {
        let data = vec![b'a'; 1000];
        assert_eq!(show_bytes(&data, 4), r#""aaaa"… (+996 bytes)"#);
        let mixed = [b'\xff'; 10];
        assert_eq!(show_bytes(&mixed, 2), r#""\xff\xff"… (+8 bytes)"#);
    }

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(bytes(1), "1 byte");
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1024), "1024 bytes");
    }

    #[test]
    fn wrapping_respects_the_width() {
        let lines = wrap("the quick brown fox jumps over the lazy dog", 10);
        assert_eq!(
            lines,
            ["the quick", "brown fox", "jumps over", "the lazy", "dog"]
        );
        assert!(wrap("", 10).is_empty());
        assert_eq!(
            wrap("supercalifragilistic word", 5),
            ["supercalifragilistic", "word"]
        );
    }
}
