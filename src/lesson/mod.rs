//! `netlab lesson`: the course text, rendered for the terminal.
//!
//! Each lesson is a Markdown file in `lessons/`. The files are compiled into the
//! binary with `include_str!`, so a `cargo install`ed `netlab` needs no data files.
//!
//! This file knows the lessons: their names, titles and summaries, how to find
//! one, and how to print it. The work of turning Markdown into text is in two
//! smaller modules:
//!
//! - [`render`](mod@render) walks the Markdown and lays out headings, lists,
//!   code blocks, quotes, tables and links, line by line;
//! - [`text`] holds the pieces of styled text the renderer works with, and the
//!   word wrapping that fits them to the terminal's width.

mod render;
mod text;

use std::io::{self, IsTerminal, Write};

use anyhow::anyhow;
use colored::Colorize;
use pulldown_cmark::{Event, HeadingLevel, Tag, TagEnd};

pub use render::render;
use render::{parse, MIN_TEXT_WIDTH};
use text::{paint, paint_spans, visible_width, wrap, Span, Style};

/// One lesson embedded in the binary.
pub struct Lesson {
    /// The name used on the command line: `netlab lesson tcp`.
    pub slug: &'static str,
    /// The lesson text, Markdown.
    pub markdown: &'static str,
}

/// Every lesson, in course order. New lessons are added here.
pub static LESSONS: &[Lesson] = &[
    Lesson {
        slug: "osi-and-sockets",
        markdown: include_str!("../../lessons/osi-and-sockets.md"),
    },
    Lesson {
        slug: "tcp",
        markdown: include_str!("../../lessons/tcp.md"),
    },
    Lesson {
        slug: "udp",
        markdown: include_str!("../../lessons/udp.md"),
    },
    Lesson {
        slug: "broadcast",
        markdown: include_str!("../../lessons/broadcast.md"),
    },
    Lesson {
        slug: "sticky-packets",
        markdown: include_str!("../../lessons/sticky-packets.md"),
    },
    Lesson {
        slug: "io-models",
        markdown: include_str!("../../lessons/io-models.md"),
    },
    Lesson {
        slug: "io-multiplexing",
        markdown: include_str!("../../lessons/io-multiplexing.md"),
    },
    Lesson {
        slug: "http",
        markdown: include_str!("../../lessons/http.md"),
    },
    Lesson {
        slug: "unix-sockets",
        markdown: include_str!("../../lessons/unix-sockets.md"),
    },
    Lesson {
        slug: "processes",
        markdown: include_str!("../../lessons/processes.md"),
    },
    Lesson {
        slug: "chatroom",
        markdown: include_str!("../../lessons/chatroom.md"),
    },
];

/// Terminal widths we lay text out for (see [`run`]).
const MIN_WIDTH: usize = 60;
const MAX_WIDTH: usize = 100;
const WIDTH_WHEN_NOT_A_TERMINAL: usize = 80;

impl Lesson {
    /// The text of the first level-1 heading, without inline Markdown marks
    /// ("The `socket()` call" → "The socket() call"). A lesson without one is
    /// called by its slug.
    pub fn title(&self) -> String {
        let mut in_title = false;
        let mut text = String::new();
        for event in parse(self.markdown) {
            match event {
                Event::Start(Tag::Heading {
                    level: HeadingLevel::H1,
                    ..
                }) => in_title = true,
                Event::Text(t) | Event::Code(t) if in_title => text.push_str(&t),
                Event::End(TagEnd::Heading(HeadingLevel::H1)) => return text,
                _ => {}
            }
        }
        self.slug.to_string()
    }

    /// The first paragraph after the title, as plain text, cut at the end of
    /// its first sentence.
    pub fn summary(&self) -> String {
        let events: Vec<Event> = parse(self.markdown).collect();
        // Skip past the title, if there is one, then take the events of the
        // first paragraph: a paragraph before the title does not count.
        let title_end = events
            .iter()
            .position(|event| matches!(event, Event::End(TagEnd::Heading(HeadingLevel::H1))));
        let paragraph = events
            .iter()
            .skip(title_end.map_or(0, |end| end + 1))
            .skip_while(|event| !matches!(event, Event::Start(Tag::Paragraph)))
            .take_while(|event| !matches!(event, Event::End(TagEnd::Paragraph)));
        let mut text = String::new();
        for event in paragraph {
            match event {
                Event::Text(t) | Event::Code(t) => text.push_str(t),
                Event::SoftBreak | Event::HardBreak => text.push(' '),
                _ => {}
            }
        }
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        first_sentence(&text).to_string()
    }
}

/// Finds a lesson by its slug, or by the start of its slug when only one lesson
/// starts that way (`osi` finds `osi-and-sockets`).
pub fn find(slug: &str) -> Option<&'static Lesson> {
    let wanted = slug.trim().to_ascii_lowercase();
    if let Some(lesson) = LESSONS.iter().find(|lesson| lesson.slug == wanted) {
        return Some(lesson);
    }
    if wanted.is_empty() {
        return None;
    }
    let mut candidates = LESSONS.iter().filter(|l| l.slug.starts_with(&wanted));
    match (candidates.next(), candidates.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// Prints a lesson, or the list of lessons when `topic` is `None`.
pub fn run(topic: Option<&str>) -> anyhow::Result<()> {
    let width = terminal_width();
    let text = match topic {
        None => render_list(width),
        Some(topic) => match find(topic) {
            Some(lesson) => render(lesson.markdown, width),
            None => return Err(unknown_topic(topic)),
        },
    };
    print_to_stdout(&text)
}

/// The error for `netlab lesson NAME` when NAME is not (the start of) one slug.
fn unknown_topic(topic: &str) -> anyhow::Error {
    let slugs: Vec<&str> = LESSONS.iter().map(|lesson| lesson.slug).collect();
    let wanted = topic.trim().to_ascii_lowercase();
    let matching = slugs.iter().filter(|s| s.starts_with(&wanted)).count();
    let problem = if !wanted.is_empty() && matching > 1 {
        format!("{topic:?} is the start of more than one lesson")
    } else {
        format!("there is no lesson called {topic:?}")
    };
    anyhow!("{problem}; the lessons are: {}", slugs.join(", "))
}

/// The terminal's width, kept between `MIN_WIDTH` and `MAX_WIDTH` (long lines
/// are tiring to read); `WIDTH_WHEN_NOT_A_TERMINAL` for a pipe or a file.
fn terminal_width() -> usize {
    if !io::stdout().is_terminal() {
        return WIDTH_WHEN_NOT_A_TERMINAL;
    }
    match crossterm::terminal::size() {
        // 0 columns: a terminal that does not know its width.
        Ok((0, _)) | Err(_) => WIDTH_WHEN_NOT_A_TERMINAL,
        Ok((columns, _rows)) => usize::from(columns).clamp(MIN_WIDTH, MAX_WIDTH),
    }
}

/// Writes `text` to stdout. A reader that goes away early is not an error.
fn print_to_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        // `netlab lesson tcp | head -3`: `head` exits after three lines and the
        // kernel answers our next write with EPIPE. Rust ignores the SIGPIPE
        // signal that would otherwise kill us, so it shows up here as an error
        // of kind BrokenPipe. The reader has all it wanted: stop quietly.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(anyhow::Error::new(error).context("cannot write to standard output")),
    }
}

/// The text `netlab lesson` prints: the lessons in order, each with its slug,
/// title and summary, and how to open one.
pub fn render_list(width: usize) -> String {
    let number_width = LESSONS.len().to_string().len();
    let slug_width = LESSONS
        .iter()
        .map(|lesson| visible_width(lesson.slug))
        .max()
        .unwrap_or(0);
    // "  1. osi-and-sockets  Title": titles and summaries start in one column.
    let indent = 2 + number_width + 2 + slug_width + 2;
    let text_width = width.saturating_sub(indent).max(MIN_TEXT_WIDTH);
    let bold = Style {
        bold: true,
        ..Style::default()
    };

    let mut lines = vec![paint("Lessons, in course order:", bold), String::new()];
    for (index, lesson) in LESSONS.iter().enumerate() {
        let title = wrap(&[Span::new(&lesson.title(), bold)], text_width);
        let summary = wrap(
            &[Span::new(&lesson.summary(), Style::default())],
            text_width,
        );
        for (line_number, line) in title.iter().chain(&summary).enumerate() {
            let left = if line_number == 0 {
                let padding = slug_width.saturating_sub(visible_width(lesson.slug));
                format!(
                    "  {:>number_width$}. {}{}  ",
                    index + 1,
                    lesson.slug.cyan(),
                    " ".repeat(padding)
                )
            } else {
                " ".repeat(indent)
            };
            lines.push(
                format!("{left}{}", paint_spans(line))
                    .trim_end()
                    .to_string(),
            );
        }
        lines.push(String::new());
    }
    let example = find("tcp").or(LESSONS.first()).map_or("tcp", |l| l.slug);
    let command = format!("netlab lesson {example}");
    lines.push(format!("Open one with: {}", command.bold()));
    lines.join("\n") + "\n"
}

/// The first sentence of `text`: up to a '.', '!' or '?' that is followed by a
/// space and a capital letter (or ends the text). "e.g. TCP" does not end one.
fn first_sentence(text: &str) -> &str {
    const ABBREVIATIONS: [&str; 5] = ["e.g.", "i.e.", "etc.", "vs.", "cf."];
    for (position, c) in text.char_indices() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let end = position + c.len_utf8();
        let rest = text.get(end..).unwrap_or_default();
        let next_starts_sentence = match rest.strip_prefix(' ') {
            Some(after) => after.starts_with(|c: char| c.is_uppercase()),
            None => rest.is_empty(),
        };
        let word = text.get(..end).unwrap_or_default();
        let word = word.rsplit(' ').next().unwrap_or_default();
        let is_abbreviation = ABBREVIATIONS.contains(&word.to_lowercase().as_str());
        if next_starts_sentence && !is_abbreviation {
            return text.get(..end).unwrap_or(text);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use text::tests::with_colours;

    /// Renders with colours off, so the output is plain text.
    fn plain(markdown: &str, width: usize) -> String {
        with_colours(false, || render(markdown, width))
    }

    /// Removes colour escape codes: `ESC [ ... m`.
    fn strip_escapes(text: &str) -> String {
        let mut plain = String::new();
        let mut in_escape = false;
        for c in text.chars() {
            match c {
                '\u{1b}' => in_escape = true,
                'm' if in_escape => in_escape = false,
                _ if in_escape => {}
                _ => plain.push(c),
            }
        }
        plain
    }

    /// "# Title", "### Title": one to six '#', a space, then words. (A table
    /// whose first column is headed "#" starts with "# │", which is fine.)
    fn looks_like_heading_mark(line: &str) -> bool {
        let text = line.trim_start().trim_start_matches('#');
        let marks = line.trim_start().len() - text.len();
        let mut rest = text.chars();
        (1..=6).contains(&marks)
            && rest.next() == Some(' ')
            && rest.next().is_some_and(char::is_alphanumeric)
    }

    #[test]
    fn every_lesson_renders_without_markdown_marks() {
        for lesson in LESSONS {
            let out = plain(lesson.markdown, 80);
            assert!(!out.trim().is_empty(), "{} renders to nothing", lesson.slug);
            assert!(!out.contains("```"), "{}: ``` in output", lesson.slug);
            assert!(!out.contains("**"), "{}: ** in output", lesson.slug);
            assert!(!out.contains("|---"), "{}: |--- in output", lesson.slug);
            for line in out.lines() {
                let heading_mark = looks_like_heading_mark(line);
                assert!(!heading_mark, "{}: heading mark in {line:?}", lesson.slug);
            }
        }
    }

    #[test]
    fn every_lesson_has_a_title_and_a_summary() {
        for lesson in LESSONS {
            assert!(!lesson.title().is_empty(), "{}", lesson.slug);
            assert!(!lesson.title().starts_with('#'), "{}", lesson.slug);
            assert!(!lesson.summary().is_empty(), "{}", lesson.slug);
        }
    }

    #[test]
    fn title_and_summary() {
        let lesson = Lesson {
            slug: "demo",
            markdown: "```sh\n# not the title\n```\n\n# Sockets #\n\n\
                       A *socket* is a file descriptor, e.g. the one `socket()` returns. \
                       It is the second sentence.\n\nAnother paragraph.\n",
        };
        assert_eq!(lesson.title(), "Sockets");
        assert_eq!(
            lesson.summary(),
            "A socket is a file descriptor, e.g. the one socket() returns."
        );
        let untitled = Lesson {
            slug: "untitled",
            markdown: "Just text! More text.",
        };
        assert_eq!(untitled.title(), "untitled");
        assert_eq!(untitled.summary(), "Just text!");
    }

    #[test]
    fn find_accepts_a_slug_or_a_unique_prefix() {
        for lesson in LESSONS {
            assert!(find(lesson.slug).is_some_and(|found| found.slug == lesson.slug));
        }
        assert_eq!(find("osi").map(|l| l.slug), Some("osi-and-sockets"));
        assert_eq!(find("TCP").map(|l| l.slug), Some("tcp"));
        assert!(find("").is_none());
        assert!(find("no-such-lesson").is_none());
        let message = unknown_topic("udpp").to_string();
        assert!(message.contains("\"udpp\""), "{message}");
        for lesson in LESSONS {
            assert!(message.contains(lesson.slug), "{message}");
        }
    }

    #[test]
    fn colours_do_not_change_the_layout() {
        for lesson in LESSONS {
            let coloured = with_colours(true, || render(lesson.markdown, 70));
            assert!(coloured.contains('\u{1b}'), "{}: no colour", lesson.slug);
            assert_eq!(strip_escapes(&coloured), plain(lesson.markdown, 70));
        }
        let coloured = with_colours(true, || render_list(70));
        let uncoloured = with_colours(false, || render_list(70));
        assert_eq!(strip_escapes(&coloured), uncoloured);
    }

    #[test]
    fn the_list_names_every_lesson_and_how_to_open_one() {
        let out = with_colours(false, || render_list(60));
        for lesson in LESSONS {
            let line = out
                .lines()
                .find(|line| line.contains(lesson.slug))
                .unwrap_or_default();
            assert!(line.contains(&lesson.title()), "{out}");
        }
        assert!(out.lines().all(|line| visible_width(line) <= 60), "{out}");
        assert!(out.lines().all(|line| line == line.trim_end()), "{out}");
        let last = out.lines().last().unwrap_or_default();
        assert!(last.contains("netlab lesson tcp"), "{out}");
    }
}
