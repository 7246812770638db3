//! The chatroom's wire protocol: what a datagram may say, and how a program
//! tells a good one from a bad one. No system calls here, so every rule can
//! be tested on its own (see the tests at the end).
//!
//! One message per datagram, UTF-8 text, at most [`MAX_DATAGRAM`] bytes, no
//! newline at the end. Client to server:
//!
//! | Datagram        | Meaning                                           |
//! |-----------------|---------------------------------------------------|
//! | `L name`        | log in as `name`                                  |
//! | `C name text`   | say `text` to everyone else                       |
//! | `Q name`        | leave                                             |
//! | `W name`        | who is here? (the `/who` extension)               |
//!
//! Server to client: `OK`, `ERR reason`, `EXIT`, `JOIN name`, `LEAVE name`,
//! `MSG name text`, `USERS name name ...`, `DOWN`. The module header of
//! `chatroom/mod.rs` and `netlab lesson chatroom` say when each is sent.

use std::fmt;

/// The largest datagram either side sends or accepts, in bytes, in both
/// directions. A receiver asks recvmsg() for the real length (MSG_TRUNC),
/// so a longer datagram is seen as too long, never read as a cut one.
pub const MAX_DATAGRAM: usize = 1024;

/// The server forwards `C name text` as `MSG name text`, 2 bytes longer
/// (`MSG` against `C`). So a `C` may have at most this many bytes: then
/// its `MSG` fits in MAX_DATAGRAM. A longer `C` is refused (`line too
/// long`), since its `MSG` could not reach anyone whole.
pub const MAX_CHAT_REQUEST: usize = MAX_DATAGRAM - ("MSG".len() - "C".len());

/// How many bytes of text `name` may say in one line: what is left of
/// MAX_DATAGRAM once `MSG name ` is written.
pub fn max_text_bytes(name: &str) -> usize {
    MAX_DATAGRAM.saturating_sub("MSG ".len() + name.len() + 1)
}

/// The longest name, in characters (not bytes).
pub const MAX_NAME_CHARS: usize = 16;

/// The name the server's console speaks under. Nobody may log in with it,
/// in any mix of upper and lower case.
pub const ADMIN: &str = "admin";

/// One request from a client, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Login { name: &'a str },
    Chat { name: &'a str, text: &'a str },
    Quit { name: &'a str },
    Who { name: &'a str },
}

impl Request<'_> {
    /// The name the datagram claims to come from.
    pub fn name(&self) -> &str {
        match self {
            Request::Login { name }
            | Request::Chat { name, .. }
            | Request::Quit { name }
            | Request::Who { name } => name,
        }
    }

    /// The request's letter, as on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Login { .. } => "L",
            Request::Chat { .. } => "C",
            Request::Quit { .. } => "Q",
            Request::Who { .. } => "W",
        }
    }
}

/// Why a datagram or a request is refused. Each has the reason text the
/// server puts after `ERR ` in its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A datagram of 0 bytes.
    Empty,
    /// More than MAX_DATAGRAM bytes.
    Oversized,
    /// A `C` whose forwarded `MSG` would be longer than MAX_DATAGRAM.
    LineTooLong,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// Not one of the four requests, or a `C` without text, or a control
    /// character in the text.
    Malformed,
    /// `L` with a name that breaks the name rules.
    NameInvalid,
    /// `L` with the reserved name.
    NameReserved,
    /// `L` with a name someone else (another address) has.
    NameTaken,
    /// `L` from an address that is already logged in under another name.
    AlreadyLoggedIn,
    /// `C` or `W` naming nobody who is logged in.
    UnknownName,
    /// `C`, `Q` or `W` naming a user whose registered address is not the
    /// sender's: someone is pretending to be that user.
    Spoofed,
}

impl Refusal {
    /// The reason after `ERR ` (and the `reason` key in JSON events).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Empty => "empty datagram",
            Refusal::Oversized => "datagram too long",
            Refusal::LineTooLong => "line too long",
            Refusal::InvalidUtf8 => "not UTF-8",
            Refusal::Malformed => "malformed request",
            Refusal::NameInvalid => "name invalid",
            Refusal::NameReserved => "name reserved",
            Refusal::NameTaken => "name taken",
            Refusal::AlreadyLoggedIn => "already logged in",
            Refusal::UnknownName => "unknown name",
            Refusal::Spoofed => "not your name",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Parse one datagram as a request. `datagram` is what recvmsg() put in
/// the buffer; a longer one (MSG_TRUNC told the server) is refused before.
/// Only the shape is checked here; whether the name is free, known and the
/// sender's is the server's question.
pub fn parse_request(datagram: &[u8]) -> Result<Request<'_>, Refusal> {
    if datagram.is_empty() {
        return Err(Refusal::Empty);
    }
    if datagram.len() > MAX_DATAGRAM {
        return Err(Refusal::Oversized);
    }
    let text = std::str::from_utf8(datagram).map_err(|_| Refusal::InvalidUtf8)?;
    let (kind, rest) = text.split_once(' ').ok_or(Refusal::Malformed)?;
    match kind {
        "C" => {
            let (name, said) = rest.split_once(' ').ok_or(Refusal::Malformed)?;
            if said.is_empty() || said.chars().any(char::is_control) {
                return Err(Refusal::Malformed);
            }
            let name = checked_name(name).ok_or(Refusal::UnknownName)?;
            if datagram.len() > MAX_CHAT_REQUEST {
                return Err(Refusal::LineTooLong);
            }
            Ok(Request::Chat { name, text: said })
        }
        "L" => match check_name(rest) {
            Ok(name) => Ok(Request::Login { name }),
            Err(refusal) => Err(refusal),
        },
        "Q" => Ok(Request::Quit {
            name: checked_name(rest).ok_or(Refusal::UnknownName)?,
        }),
        "W" => Ok(Request::Who {
            name: checked_name(rest).ok_or(Refusal::UnknownName)?,
        }),
        _ => Err(Refusal::Malformed),
    }
}

/// The name rules: 1 to MAX_NAME_CHARS characters, each a letter or a
/// digit (of any script) or `_` or `-`; not `admin` in any case.
pub fn check_name(name: &str) -> Result<&str, Refusal> {
    let chars = name.chars().count();
    let allowed = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    if chars == 0 || chars > MAX_NAME_CHARS || !name.chars().all(allowed) {
        return Err(Refusal::NameInvalid);
    }
    if name.eq_ignore_ascii_case(ADMIN) {
        return Err(Refusal::NameReserved);
    }
    Ok(name)
}

/// A name in a `C`, `Q` or `W`: the reserved name is allowed here (the
/// console speaks as `admin`), anything else must follow the rules.
fn checked_name(name: &str) -> Option<&str> {
    (name == ADMIN || check_name(name).is_ok()).then_some(name)
}

/// One datagram from the server, parsed by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    Ok,
    Err(&'a str),
    Exit,
    Join(&'a str),
    Leave(&'a str),
    Msg { name: &'a str, text: &'a str },
    Users(Vec<&'a str>),
    Down,
}

/// Parse what the server sent; None for anything that is not a reply.
pub fn parse_reply(datagram: &[u8]) -> Option<Reply<'_>> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (kind, rest) = text.split_once(' ').unwrap_or((text, ""));
    match (kind, rest) {
        ("OK", "") => Some(Reply::Ok),
        ("EXIT", "") => Some(Reply::Exit),
        ("DOWN", "") => Some(Reply::Down),
        ("ERR", reason) if !reason.is_empty() => Some(Reply::Err(reason)),
        ("JOIN", name) if !name.is_empty() => Some(Reply::Join(name)),
        ("LEAVE", name) if !name.is_empty() => Some(Reply::Leave(name)),
        ("USERS", names) => Some(Reply::Users(
            names.split(' ').filter(|n| !n.is_empty()).collect(),
        )),
        ("MSG", rest) => {
            let (name, said) = rest.split_once(' ')?;
            Some(Reply::Msg { name, text: said })
        }
        _ => None,
    }
}

/// `C name text` for a line typed by the user, with the text cut to
/// `max_text_bytes(name)`, so that the `MSG name text` the server forwards
/// fits in MAX_DATAGRAM bytes. The cut falls on a character boundary, never
/// inside a multi-byte UTF-8 character. Returns the datagram and how many
/// bytes of the text were left out.
pub fn chat_datagram(name: &str, text: &str) -> (String, usize) {
    let head = format!("C {name} ");
    let kept = cut_at_char_boundary(text, max_text_bytes(name));
    (head + kept, text.len() - kept.len())
}

/// The longest start of `text` that has at most `max_bytes` bytes and ends
/// on a character boundary. (Slicing a &str inside a character panics in
/// Rust; in C or Python bytes, it silently makes invalid UTF-8.)
pub fn cut_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A line typed by the user as what it asks for: `/who`, `/quit`, nothing
/// (an empty line), or text to say. Trailing `\r\n` is removed, and control
/// characters (which the server refuses) become spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    Who,
    Quit,
    Nothing,
    /// Text to say, and whether it was changed on the way (invalid UTF-8
    /// became U+FFFD, a control character a space).
    Say(String, bool),
}

pub fn parse_typed(line: &[u8]) -> Typed {
    let text = String::from_utf8_lossy(line);
    let mut changed = matches!(text, std::borrow::Cow::Owned(_));
    let text = text.trim_end_matches(['\n', '\r']);
    match text.trim() {
        "/who" => Typed::Who,
        "/quit" => Typed::Quit,
        "" => Typed::Nothing,
        _ => {
            let said = text
                .chars()
                .map(|c| {
                    if c.is_control() {
                        changed = true;
                        ' '
                    } else {
                        c
                    }
                })
                .collect();
            Typed::Say(said, changed)
        }
    }
}

/// Text from the network made safe for a terminal: control characters
/// (an escape sequence could clear the screen or retitle the window) are
/// shown as U+FFFD.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(parse_request(b"L ana"), Ok(Request::Login { name: "ana" }));
        assert_eq!(
            parse_request("C ana hi there, 你好".as_bytes()),
            Ok(Request::Chat {
                name: "ana",
                text: "hi there, 你好"
            })
        );
        assert_eq!(parse_request(b"Q ana"), Ok(Request::Quit { name: "ana" }));
        assert_eq!(parse_request(b"W ana"), Ok(Request::Who { name: "ana" }));
        assert_eq!(
            parse_request(b"C admin hello"),
            Ok(Request::Chat {
                name: "admin",
                text: "hello"
            })
        );
    }

    #[test]
    fn bad_datagrams_are_refused_with_a_reason() {
        assert_eq!(parse_request(b""), Err(Refusal::Empty));
        assert_eq!(
            parse_request(&[b'C'; MAX_DATAGRAM + 1]),
            Err(Refusal::Oversized)
        );
        assert_eq!(parse_request(b"C ana \xff\xfe"), Err(Refusal::InvalidUtf8));
        for bad in [
            &b"L"[..],
            b"X ana",
            b"C ana",
            b"C ana ",
            b"C ana a\x1b[2Jb",
            b"hello",
            b"l ana",
        ] {
            assert_eq!(parse_request(bad), Err(Refusal::Malformed), "{bad:?}");
        }
        assert_eq!(parse_request(b"L "), Err(Refusal::NameInvalid));
        assert_eq!(parse_request(b"L a b"), Err(Refusal::NameInvalid));
        assert_eq!(parse_request(b"L Admin"), Err(Refusal::NameReserved));
        assert_eq!(parse_request(b"Q no body"), Err(Refusal::UnknownName));
        // The longest C is 2 bytes short of the datagram limit, so that
        // its MSG fits; one byte more is refused as too long.
        let longest = "x".repeat(max_text_bytes("ana"));
        let request = format!("C ana {longest}");
        assert_eq!(request.len(), MAX_CHAT_REQUEST);
        assert!(parse_request(request.as_bytes()).is_ok());
        assert_eq!(format!("MSG ana {longest}").len(), MAX_DATAGRAM);
        assert_eq!(
            parse_request(format!("{request}x").as_bytes()),
            Err(Refusal::LineTooLong)
        );
    }

    #[test]
    fn names_follow_the_rules() {
        assert_eq!(check_name("ana"), Ok("ana"));
        assert_eq!(check_name("小明"), Ok("小明"));
        assert_eq!(check_name("bo_2-x"), Ok("bo_2-x"));
        assert_eq!(check_name(&"é".repeat(16)), Ok("é".repeat(16).as_str()));
        assert_eq!(check_name(&"é".repeat(17)), Err(Refusal::NameInvalid));
        assert_eq!(check_name(""), Err(Refusal::NameInvalid));
        assert_eq!(check_name("a:b"), Err(Refusal::NameInvalid));
        assert_eq!(check_name("ADMIN"), Err(Refusal::NameReserved));
    }

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply(b"OK"), Some(Reply::Ok));
        assert_eq!(parse_reply(b"EXIT"), Some(Reply::Exit));
        assert_eq!(parse_reply(b"DOWN"), Some(Reply::Down));
        assert_eq!(
            parse_reply(b"ERR name taken"),
            Some(Reply::Err("name taken"))
        );
        assert_eq!(parse_reply(b"JOIN bo"), Some(Reply::Join("bo")));
        assert_eq!(parse_reply(b"LEAVE bo"), Some(Reply::Leave("bo")));
        assert_eq!(
            parse_reply(b"MSG bo hello you"),
            Some(Reply::Msg {
                name: "bo",
                text: "hello you"
            })
        );
        assert_eq!(
            parse_reply(b"USERS ana bo"),
            Some(Reply::Users(vec!["ana", "bo"]))
        );
        assert_eq!(parse_reply(b"OK then"), None);
        assert_eq!(parse_reply(b"\xff"), None);
        assert_eq!(parse_reply(b"MSG bo"), None);
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        // 3-byte characters: `MSG ana ` leaves 1016 bytes of text, 338
        // whole characters (1014 bytes); the 339th would straddle the limit.
        let text = "你".repeat(400);
        let (datagram, left_out) = chat_datagram("ana", &text);
        assert_eq!(datagram.len(), "C ana ".len() + 338 * 3);
        assert!(datagram.len() + 2 <= MAX_DATAGRAM);
        assert_eq!(left_out, 62 * 3);
        assert!(parse_request(datagram.as_bytes()).is_ok());
        assert_eq!(cut_at_char_boundary("aé", 2), "a");
        assert_eq!(cut_at_char_boundary("aé", 3), "aé");
        assert_eq!(chat_datagram("ana", "hi"), ("C ana hi".to_string(), 0));
    }

    #[test]
    fn typed_lines_become_commands() {
        assert_eq!(parse_typed(b"/who\n"), Typed::Who);
        assert_eq!(parse_typed(b" /quit \r\n"), Typed::Quit);
        assert_eq!(parse_typed(b"\n"), Typed::Nothing);
        assert_eq!(parse_typed(b"hi\tyou\n"), Typed::Say("hi you".into(), true));
        assert_eq!(parse_typed(b"hi\n"), Typed::Say("hi".into(), false));
        assert_eq!(
            parse_typed(b"a\xffb\n"),
            Typed::Say("a\u{FFFD}b".into(), true)
        );
        assert_eq!(printable("a\x1b[2Jb"), "a\u{FFFD}[2Jb");
    }
}
