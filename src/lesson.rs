//! `netlab lesson`: the course text, rendered for the terminal.
//!
//! Each lesson is a Markdown file in `lessons/`. The files are compiled into the
//! binary with `include_str!`, so a `cargo install`ed `netlab` needs no data files.
//!
//! Rendering happens in two steps.
//!
//! 1. [`pulldown_cmark`] parses the Markdown. It does not build a tree: it hands
//!    out a flat stream of *events*. A block or an inline style is a `Start(tag)`
//!    event, the events of its contents, and a matching `End(tag)` event. Text
//!    arrives as `Text` events; inline code arrives as one `Code` event. This list
//!
//!    ```text
//!    - one *two*
//!    ```
//!
//!    arrives as
//!
//!    ```text
//!    Start(List(None))          None: a bullet list; Some(1): numbered from 1
//!      Start(Item)
//!        Text("one ")
//!        Start(Emphasis)
//!          Text("two")
//!        End(Emphasis)
//!      End(Item)
//!    End(List(false))
//!    ```
//!
//! 2. [`Renderer`] walks that stream with a little state: a stack of the
//!    containers we are inside (block quotes, lists, list items), the inline text
//!    of the current paragraph, and the stack of inline styles. When a paragraph
//!    ends it wraps the text to the terminal width and writes the lines, each
//!    behind the prefix its containers ask for (`│ ` for a quote, `• ` or
//!    spaces for a list item).
//!
//! Widths are always measured on the *plain* text. Colours are escape codes
//! (`ESC [ 1 m` …) that take bytes but no columns, so they are added only at the
//! last moment, by [`paint`], once every line break and padding is decided.

use std::io::{self, IsTerminal, Write};
use std::mem;

use anyhow::anyhow;
use colored::Colorize;
use pulldown_cmark::{
    Alignment, BlockQuoteKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd,
};

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
        markdown: include_str!("../lessons/osi-and-sockets.md"),
    },
    Lesson {
        slug: "tcp",
        markdown: include_str!("../lessons/tcp.md"),
    },
];

/// Terminal widths we lay text out for (see [`run`]).
const MIN_WIDTH: usize = 60;
const MAX_WIDTH: usize = 100;
const WIDTH_WHEN_NOT_A_TERMINAL: usize = 80;

/// Text is not squeezed narrower than this, however deeply it is nested.
const MIN_TEXT_WIDTH: usize = 20;
/// Code blocks are indented by this much.
const CODE_INDENT: &str = "    ";
/// Bullets for the first, second and third level of nested lists (then again).
const BULLETS: [&str; 3] = ["•", "◦", "▪"];
/// Table columns are shrunk (and their text wrapped) down to this width at most.
const MIN_COLUMN_WIDTH: usize = 8;
/// Columns of a table are separated by " │ ".
const COLUMN_GAP: usize = 3;

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
        let has_title = parse(self.markdown).any(|event| {
            matches!(
                event,
                Event::Start(Tag::Heading {
                    level: HeadingLevel::H1,
                    ..
                })
            )
        });
        let mut after_title = !has_title;
        let mut in_paragraph = false;
        let mut text = String::new();
        for event in parse(self.markdown) {
            match event {
                Event::End(TagEnd::Heading(HeadingLevel::H1)) => after_title = true,
                Event::Start(Tag::Paragraph) if after_title => in_paragraph = true,
                Event::Text(t) | Event::Code(t) if in_paragraph => text.push_str(&t),
                Event::SoftBreak | Event::HardBreak if in_paragraph => text.push(' '),
                Event::End(TagEnd::Paragraph) if in_paragraph => break,
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
        Ok((columns, _rows)) => usize::from(columns).clamp(MIN_WIDTH, MAX_WIDTH),
        Err(_) => WIDTH_WHEN_NOT_A_TERMINAL,
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

/// Renders Markdown as text for a terminal `width` columns wide.
pub fn render(markdown: &str, width: usize) -> String {
    let mut renderer = Renderer::new(width);
    for event in parse(markdown) {
        renderer.event(event);
    }
    renderer.finish()
}

/// The parser with the GitHub extensions lessons may use: tables,
/// ~~strikethrough~~, `- [x]` task lists and `> [!NOTE]` quotes.
fn parse(markdown: &str) -> Parser<'_> {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM;
    Parser::new_ext(markdown, options)
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

// ---------------------------------------------------------------------------
// The renderer: Markdown events in, lines of text out.
// ---------------------------------------------------------------------------

/// A block that puts a prefix in front of every line inside it.
enum Container {
    /// `> quoted text`: lines start with "│ ".
    Quote,
    /// A list. `next_number` is the number of the next item in a numbered
    /// list, `None` for a bullet list.
    List { next_number: Option<u64> },
    /// A list item. Its first line starts with the marker ("•", "3."), the
    /// following lines with as many spaces, so the text lines up. An item is
    /// `loose` when its text comes in paragraphs, which happens when the
    /// Markdown has empty lines between the items; then so does the output.
    Item {
        marker: String,
        marker_shown: bool,
        loose: bool,
    },
}

/// A table, collected cell by cell and drawn when it ends: the width of a
/// column is only known after its last row.
struct Table {
    alignments: Vec<Alignment>,
    /// The first row is the header.
    rows: Vec<Vec<Vec<Span>>>,
}

/// A link or image whose text is being collected.
struct PendingLink {
    url: String,
    /// Where its text starts in `Renderer::inline`.
    text_start: usize,
}

struct Renderer {
    width: usize,
    /// The finished lines, without their '\n'.
    lines: Vec<String>,
    /// The containers we are inside, outermost first.
    containers: Vec<Container>,
    /// Inline text of the paragraph (heading, list item, table cell) in progress.
    inline: Vec<Span>,
    /// Styles of the enclosing `*emphasis*`, `**strong**`, links, …; the last one applies.
    styles: Vec<Style>,
    links: Vec<PendingLink>,
    /// The text of the code block we are in, if any.
    code: Option<String>,
    table: Option<Table>,
    /// A block has ended; the next one is separated from it by an empty line.
    blank_pending: bool,
}

impl Renderer {
    fn new(width: usize) -> Self {
        Renderer {
            width,
            lines: Vec::new(),
            containers: Vec::new(),
            inline: Vec::new(),
            styles: Vec::new(),
            links: Vec::new(),
            code: None,
            table: None,
            blank_pending: false,
        }
    }

    fn finish(mut self) -> String {
        self.flush_inline();
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => match &mut self.code {
                Some(code) => code.push_str(&text),
                None => self.push_text(&text),
            },
            Event::Code(code) => {
                let style = Style {
                    code: true,
                    ..self.style()
                };
                self.inline.push(Span::new(&code, style));
            }
            // A soft break is a line end inside a paragraph: a space, really.
            Event::SoftBreak => self.push_text(" "),
            // A hard break (two spaces or '\' at the end of a line) starts a new
            // line in the same paragraph. A table cell has no room for one.
            Event::HardBreak if self.table.is_some() => self.push_text(" "),
            Event::HardBreak => self.flush_inline(),
            Event::Rule => {
                self.start_block();
                let rule = "─".repeat(self.text_width());
                self.emit(&rule.dimmed().to_string());
                self.blank_pending = true;
            }
            Event::TaskListMarker(done) => self.push_text(if done { "☑ " } else { "☐ " }),
            // Raw HTML, often `<!-- a note for the authors -->`, means nothing in
            // a terminal.
            Event::Html(_) | Event::InlineHtml(_) => {}
            // Only emitted for options `parse` does not turn on; keep the text.
            Event::InlineMath(text) | Event::DisplayMath(text) | Event::FootnoteReference(text) => {
                self.push_text(&text)
            }
        }
    }

    fn start(&mut self, tag: Tag) {
        match tag {
            Tag::Paragraph => {
                self.start_block();
                if let Some(Container::Item { loose, .. }) = self.containers.last_mut() {
                    *loose = true;
                }
            }
            Tag::Heading { .. } => self.start_block(),
            Tag::BlockQuote(kind) => {
                self.start_block();
                self.containers.push(Container::Quote);
                if let Some(kind) = kind {
                    self.emit(&quote_label(kind));
                }
            }
            Tag::CodeBlock(_) => {
                self.start_block();
                self.code = Some(String::new());
            }
            Tag::List(first_number) => {
                self.start_block();
                self.containers.push(Container::List {
                    next_number: first_number,
                });
            }
            Tag::Item => {
                self.start_block();
                let marker = self.next_marker();
                self.containers.push(Container::Item {
                    marker,
                    marker_shown: false,
                    loose: false,
                });
            }
            Tag::Table(alignments) => {
                self.start_block();
                self.table = Some(Table {
                    alignments,
                    rows: Vec::new(),
                });
            }
            // The header holds its cells directly; body rows are `TableRow`s.
            Tag::TableHead | Tag::TableRow => {
                if let Some(table) = &mut self.table {
                    table.rows.push(Vec::new());
                }
            }
            Tag::Emphasis => self.push_style(|style| style.italic = true),
            Tag::Strong => self.push_style(|style| style.bold = true),
            Tag::Strikethrough => self.push_style(|style| style.strike = true),
            Tag::Link { dest_url, .. } => {
                self.links.push(PendingLink {
                    url: dest_url.to_string(),
                    text_start: self.inline.len(),
                });
                self.push_style(|style| style.link = true);
            }
            // An image can't be shown: show its description and where it is.
            Tag::Image { dest_url, .. } => {
                self.links.push(PendingLink {
                    url: dest_url.to_string(),
                    text_start: self.inline.len(),
                });
                self.push_style(|style| style.italic = true);
            }
            // Cells are handled at their end. The other tags are HTML blocks
            // (dropped, see `event`) or belong to options we do not turn on;
            // their text is shown as ordinary text.
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                self.flush_inline();
                self.blank_pending = true;
            }
            TagEnd::Heading(level) => {
                self.flush_heading(level);
                self.blank_pending = true;
            }
            TagEnd::BlockQuote(_) => {
                self.flush_inline();
                self.containers.pop();
                self.blank_pending = true;
            }
            TagEnd::CodeBlock => {
                if let Some(code) = self.code.take() {
                    self.emit_code(&code);
                }
                self.blank_pending = true;
            }
            TagEnd::List(_) => {
                self.flush_inline();
                self.containers.pop();
                // A nested list ends inside an item of its parent list; only
                // the end of the outermost list is the end of a block.
                let still_in_list = self
                    .containers
                    .iter()
                    .any(|c| matches!(c, Container::List { .. }));
                if !still_in_list {
                    self.blank_pending = true;
                }
            }
            TagEnd::Item => {
                // In a "tight" list (no empty lines between items) the item text
                // is not wrapped in a paragraph, so it is still waiting here.
                self.flush_inline();
                if let Some(Container::Item {
                    marker_shown: false,
                    ..
                }) = self.containers.last()
                {
                    self.emit(""); // an empty item: show its marker anyway
                }
                if let Some(Container::Item { loose: true, .. }) = self.containers.pop() {
                    self.blank_pending = true;
                }
            }
            TagEnd::Table => {
                if let Some(table) = self.table.take() {
                    self.emit_table(table);
                }
                self.blank_pending = true;
            }
            TagEnd::TableCell => {
                let cell = mem::take(&mut self.inline);
                if let Some(row) = self.table.as_mut().and_then(|t| t.rows.last_mut()) {
                    row.push(cell);
                }
            }
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => {
                self.styles.pop();
            }
            TagEnd::Link | TagEnd::Image => {
                self.styles.pop();
                self.finish_link();
            }
            _ => {}
        }
    }

    // --- inline text ------------------------------------------------------

    /// The style for text at this point: the innermost one.
    fn style(&self) -> Style {
        self.styles.last().copied().unwrap_or_default()
    }

    /// Enters an inline style: the current one, changed by `change`.
    fn push_style(&mut self, change: impl FnOnce(&mut Style)) {
        let mut style = self.style();
        change(&mut style);
        self.styles.push(style);
    }

    fn push_text(&mut self, text: &str) {
        let style = self.style();
        self.inline.push(Span::new(text, style));
    }

    /// Shows a link as "text (url)", or just "url" when the text is the URL
    /// (`<https://example.com>` is written that way).
    fn finish_link(&mut self) {
        let Some(link) = self.links.pop() else {
            return;
        };
        let spans = self.inline.get(link.text_start..).unwrap_or_default();
        let text: String = spans.iter().map(|span| span.text.as_str()).collect();
        let text = text.trim();
        let url = link.url.as_str();
        if url.is_empty() || text == url || Some(text) == url.strip_prefix("mailto:") {
            return;
        }
        let url_style = Style {
            url: true,
            ..Style::default()
        };
        self.inline.push(Span::new(" ", Style::default()));
        self.inline
            .push(Span::new(&format!("({})", describe_url(url)), url_style));
    }

    // --- blocks -------------------------------------------------------------

    /// Called when a block starts: writes out any text still waiting (the text
    /// of a tight list item before its nested list), then the empty line
    /// that separates this block from the previous one.
    fn start_block(&mut self) {
        self.flush_inline();
        if self.blank_pending {
            self.blank_pending = false;
            self.blank_line();
        }
    }

    /// Wraps the waiting inline text and writes it out.
    fn flush_inline(&mut self) {
        let spans = mem::take(&mut self.inline);
        for line in wrap(&spans, self.text_width()) {
            self.emit(&paint_spans(&line));
        }
    }

    fn flush_heading(&mut self, level: HeadingLevel) {
        let level = level as u8;
        let mut spans = mem::take(&mut self.inline);
        for span in &mut spans {
            span.style.heading = Some(level);
        }
        let lines = wrap(&spans, self.text_width());
        for line in &lines {
            self.emit(&paint_spans(line));
        }
        let underline = match level {
            1 => "═",
            2 => "─",
            _ => return,
        };
        let title_width = lines.iter().map(|l| spans_width(l)).max().unwrap_or(0);
        let style = Style {
            heading: Some(level),
            ..Style::default()
        };
        self.emit(&paint(&underline.repeat(title_width), style));
    }

    /// Code is shown exactly as written: not wrapped, only indented.
    fn emit_code(&mut self, code: &str) {
        for line in code.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                self.emit("");
            } else {
                self.emit(&format!("{CODE_INDENT}{}", line.green()));
            }
        }
    }

    fn emit_table(&mut self, table: Table) {
        let columns = table.rows.iter().map(Vec::len).max().unwrap_or(0);
        if columns == 0 {
            return;
        }
        let widths = column_widths(&table.rows, columns, self.text_width());
        let gap = format!(" {} ", "│".dimmed());
        for (row_number, row) in table.rows.iter().enumerate() {
            let is_header = row_number == 0;
            // Each cell is wrapped to its column; the row is as tall as its
            // tallest cell.
            let cells: Vec<Vec<Vec<Span>>> = widths
                .iter()
                .enumerate()
                .map(|(column, &width)| {
                    let mut spans = row.get(column).cloned().unwrap_or_default();
                    for span in &mut spans {
                        span.style.bold |= is_header;
                    }
                    wrap(&spans, width)
                })
                .collect();
            let height = cells.iter().map(Vec::len).max().unwrap_or(0).max(1);
            for line_number in 0..height {
                let mut line = String::new();
                for (column, (cell, &width)) in cells.iter().zip(&widths).enumerate() {
                    if column > 0 {
                        line.push_str(&gap);
                    }
                    let content = cell.get(line_number).map_or(&[][..], Vec::as_slice);
                    let alignment = table.alignments.get(column).copied();
                    line.push_str(&pad(content, width, alignment));
                }
                self.emit(&line);
            }
            if is_header {
                let rules: Vec<String> = widths.iter().map(|&w| "─".repeat(w)).collect();
                self.emit(&rules.join("─┼─").dimmed().to_string());
            }
        }
    }

    /// The marker for a new item of the innermost list.
    fn next_marker(&mut self) -> String {
        let depth = self
            .containers
            .iter()
            .filter(|c| matches!(c, Container::List { .. }))
            .count();
        match self.containers.last_mut() {
            Some(Container::List {
                next_number: Some(number),
            }) => {
                let marker = format!("{number}.");
                *number += 1;
                marker
            }
            _ => BULLETS[depth.saturating_sub(1) % BULLETS.len()].to_string(),
        }
    }

    // --- writing lines ------------------------------------------------------

    /// Columns left for text once the containers' prefixes are written.
    fn text_width(&self) -> usize {
        let prefix: usize = self
            .containers
            .iter()
            .map(|container| match container {
                Container::Quote => 2,
                Container::List { .. } => 0,
                Container::Item { marker, .. } => visible_width(marker) + 1,
            })
            .sum();
        // Deeply nested text keeps at least MIN_TEXT_WIDTH columns (or the
        // whole width, if that is less), even if its lines then stick out.
        self.width
            .saturating_sub(prefix)
            .max(MIN_TEXT_WIDTH.min(self.width))
    }

    /// What the containers put in front of a line: "│ " for each quote, and
    /// for each list item its marker (the first time, if `show_marker`) or
    /// as many spaces.
    fn prefix(&mut self, show_marker: bool) -> String {
        let mut prefix = String::new();
        for container in &mut self.containers {
            match container {
                Container::Quote => prefix.push_str(&format!("{} ", "│".dimmed())),
                Container::List { .. } => {}
                Container::Item {
                    marker,
                    marker_shown,
                    ..
                } => {
                    if show_marker && !*marker_shown {
                        prefix.push_str(&format!("{} ", marker.cyan()));
                        *marker_shown = true;
                    } else {
                        prefix.push_str(&" ".repeat(visible_width(marker) + 1));
                    }
                }
            }
        }
        prefix
    }

    /// Writes one line behind the containers' prefixes.
    fn emit(&mut self, body: &str) {
        let line = self.prefix(true) + body;
        // Prefixes and table padding are plain spaces outside any colour, so
        // trimming removes them even when colours are on.
        self.lines.push(line.trim_end().to_string());
    }

    /// An empty line; inside a block quote it still shows the quote's bar.
    fn blank_line(&mut self) {
        if self.lines.is_empty() {
            return; // nothing to separate from
        }
        let prefix = self.prefix(false);
        self.lines.push(prefix.trim_end().to_string());
    }
}

/// The first line of a GitHub "alert" quote (`> [!TIP]`).
fn quote_label(kind: BlockQuoteKind) -> String {
    let label = match kind {
        BlockQuoteKind::Note => "Note",
        BlockQuoteKind::Tip => "Tip",
        BlockQuoteKind::Important => "Important",
        BlockQuoteKind::Warning => "Warning",
        BlockQuoteKind::Caution => "Caution",
    };
    label.bold().to_string()
}

/// Where a link points, for a reader. A link to another lesson (`tcp.md`)
/// becomes the command that opens it.
fn describe_url(url: &str) -> String {
    let path = url.split('#').next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    match file.strip_suffix(".md") {
        Some(slug) if !url.contains("://") && LESSONS.iter().any(|l| l.slug == slug) => {
            format!("netlab lesson {slug}")
        }
        _ => url.to_string(),
    }
}

/// Widths for the columns of a table: each as wide as its widest cell, then,
/// while the table is wider than `available`, the widest column loses a column.
fn column_widths(rows: &[Vec<Vec<Span>>], columns: usize, available: usize) -> Vec<usize> {
    let mut widths = vec![0; columns];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(one_line_width(cell));
        }
    }
    let gaps = COLUMN_GAP * columns.saturating_sub(1);
    while widths.iter().sum::<usize>() + gaps > available {
        let widest = widths.iter_mut().max();
        match widest {
            Some(width) if *width > MIN_COLUMN_WIDTH => *width -= 1,
            _ => break, // as narrow as it gets; the table sticks out
        }
    }
    widths
}

/// One line of a table cell, padded to `width` as its column's alignment says.
fn pad(content: &[Span], width: usize, alignment: Option<Alignment>) -> String {
    let room = width.saturating_sub(spans_width(content));
    let (left, right) = match alignment {
        Some(Alignment::Right) => (room, 0),
        Some(Alignment::Center) => (room / 2, room - room / 2),
        _ => (0, room),
    };
    format!(
        "{}{}{}",
        " ".repeat(left),
        paint_spans(content),
        " ".repeat(right)
    )
}

// ---------------------------------------------------------------------------
// Styled text and word wrapping.
// ---------------------------------------------------------------------------

/// How a piece of text looks. Inline styles nest (`**bold *and italic***`),
/// so each flag is simply on or off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    italic: bool,
    strike: bool,
    /// `inline code`
    code: bool,
    /// The text of a link.
    link: bool,
    /// The "(https://…)" shown after a link's text.
    url: bool,
    /// Part of a heading of this level.
    heading: Option<u8>,
}

/// A piece of text in one style. A line of output is a list of spans.
#[derive(Clone, Debug)]
struct Span {
    text: String,
    style: Style,
}

impl Span {
    fn new(text: &str, style: Style) -> Self {
        Span {
            text: text.to_string(),
            style,
        }
    }
}

/// Turns a piece of plain text into coloured text (escape codes included, or
/// not, as the `colored` crate's global setting says).
fn paint(text: &str, style: Style) -> String {
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

/// Adds text to a list of spans, growing the last span when the style is the
/// same, so that a line in one style gets one pair of escape codes, not one
/// per word.
fn append(spans: &mut Vec<Span>, text: &str, style: Style) {
    match spans.last_mut() {
        Some(last) if last.style == style => last.text.push_str(text),
        _ => spans.push(Span::new(text, style)),
    }
}

fn paint_spans(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|span| paint(&span.text, span.style))
        .collect()
}

/// Columns a string takes on screen. Give it plain text only: escape codes
/// take no columns, and `paint` adds them after all measuring is done.
fn visible_width(text: &str) -> usize {
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

fn spans_width(spans: &[Span]) -> usize {
    spans.iter().map(|span| visible_width(&span.text)).sum()
}

/// The width of `spans` written on one line, with single spaces between words.
fn one_line_width(spans: &[Span]) -> usize {
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
fn wrap(spans: &[Span], width: usize) -> Vec<Vec<Span>> {
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
mod tests {
    use super::*;

    /// `colored`'s on/off switch is global and tests run in parallel
    /// threads, so every test that renders holds this lock.
    static COLOUR_SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn with_colours<T>(on: bool, f: impl FnOnce() -> T) -> T {
        let _guard = COLOUR_SWITCH
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        colored::control::set_override(on);
        f()
    }

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

    /// The text of some inline Markdown without its marks: "`bind()` *now*" → "bind() now".
    fn plain_text(markdown: &str) -> String {
        let mut text = String::new();
        for event in parse(markdown) {
            match event {
                Event::Text(t) | Event::Code(t) => text.push_str(&t),
                Event::SoftBreak | Event::HardBreak => text.push(' '),
                _ => {}
            }
        }
        text
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn headings_lose_their_marks_and_get_underlined() {
        let out = plain("# Sockets\n\nText.\n\n## Addresses\n\n### Ports\n", 80);
        assert_eq!(
            lines(&out),
            [
                "Sockets",
                "═══════",
                "",
                "Text.",
                "",
                "Addresses",
                "─────────",
                "",
                "Ports"
            ]
        );
    }

    #[test]
    fn nested_lists_are_indented_under_their_parent() {
        let markdown = "\
- one
- two
  - two a
  - two b
    1. deep
- three

1. first
2. second
   - inside
";
        let out = plain(markdown, 80);
        assert_eq!(
            lines(&out),
            [
                "• one",
                "• two",
                "  ◦ two a",
                "  ◦ two b",
                "    1. deep",
                "• three",
                "",
                "1. first",
                "2. second",
                "   ◦ inside",
            ]
        );
    }

    #[test]
    fn loose_lists_keep_empty_lines_and_quotes_nest_in_items() {
        let markdown = "\
1. First.

   - inner a
   - inner b
2. Second.

   > quoted
   >
   > more
";
        let out = plain(markdown, 60);
        assert_eq!(
            lines(&out),
            [
                "1. First.",
                "",
                "   ◦ inner a",
                "   ◦ inner b",
                "",
                "2. Second.",
                "",
                "   │ quoted",
                "   │",
                "   │ more",
            ]
        );
    }

    #[test]
    fn list_items_wrap_under_their_text() {
        let markdown = "- a list item long enough to need a second line here\n";
        let out = plain(markdown, 30);
        assert_eq!(
            lines(&out),
            ["• a list item long enough to", "  need a second line here"]
        );
    }

    #[test]
    fn code_blocks_keep_content_and_indentation() {
        let markdown = "\
Before.

```rust
fn main() {
    let fd = socket(); // a very long line that is not wrapped even though it is longer than the width
}
```

- item

  ```
  $ ss -tlnp
  ```
";
        let out = plain(markdown, 40);
        assert_eq!(
            lines(&out),
            [
                "Before.",
                "",
                "    fn main() {",
                "        let fd = socket(); // a very long line that is not wrapped even though it is longer than the width",
                "    }",
                "",
                "• item",
                "",
                "      $ ss -tlnp",
            ]
        );
    }

    #[test]
    fn table_columns_line_up() {
        let markdown = "\
| Layer | Name | Example |
|-------|:----:|--------:|
| 4 | Transport | TCP, UDP |
| 3 | Network | IP |
";
        let out = plain(markdown, 80);
        assert_eq!(
            lines(&out),
            [
                "Layer │   Name    │  Example",
                "──────┼───────────┼─────────",
                "4     │ Transport │ TCP, UDP",
                "3     │  Network  │       IP",
            ]
        );
    }

    #[test]
    fn wide_tables_wrap_inside_their_columns() {
        let markdown = "\
| Call | What it does |
|------|--------------|
| `socket()` | creates an endpoint for communication and returns a file descriptor that refers to it |
";
        let out = plain(markdown, 40);
        let bar_positions: Vec<Option<usize>> = out
            .lines()
            .map(|l| l.chars().position(|c| c == '│' || c == '┼'))
            .collect();
        assert!(out.lines().count() > 3, "{out}");
        assert!(bar_positions
            .iter()
            .all(|p| *p == bar_positions[0] && p.is_some()));
        assert!(out.lines().all(|l| visible_width(l) <= 40), "{out}");
    }

    #[test]
    fn inline_code_emphasis_and_strong_lose_their_marks() {
        let out = plain(
            "Call `bind()` *before* **listen**, ~~never~~ ***after***.",
            80,
        );
        assert_eq!(out, "Call bind() before listen, never after.\n");
    }

    #[test]
    fn links_show_their_url_unless_it_is_the_text() {
        let out = plain(
            "See [the man page](https://man7.org/linux/man-pages/man2/socket.2.html) \
             or <https://example.com>, and [the TCP lesson](tcp.md).",
            200,
        );
        assert_eq!(
            out,
            "See the man page (https://man7.org/linux/man-pages/man2/socket.2.html) \
             or https://example.com, and the TCP lesson (netlab lesson tcp).\n"
        );
    }

    #[test]
    fn block_quotes_rules_and_breaks() {
        let markdown = "\
> Everything is a file.
>
> Even sockets.

---

> [!TIP]
> Try it.
";
        let out = plain(markdown, 20);
        assert_eq!(
            lines(&out),
            [
                "│ Everything is a",
                "│ file.",
                "│",
                "│ Even sockets.",
                "",
                "────────────────────",
                "",
                "│ Tip",
                "│ Try it.",
            ]
        );
    }

    #[test]
    fn wrapping_never_exceeds_the_width() {
        let prose = "A socket is an endpoint for communication. The kernel keeps a \
                     queue of connections that completed the three-way handshake, and \
                     accept() takes the first one off that queue. Each `write()` copies \
                     bytes into the socket's **send buffer**; the kernel decides when \
                     they leave as segments.";
        for width in [20, 33, 60, 80, 100] {
            let out = plain(prose, width);
            for line in out.lines() {
                assert!(visible_width(line) <= width, "{width}: {line:?}");
            }
            // No word is lost or split.
            let words: Vec<&str> = out.split_whitespace().collect();
            let expected: Vec<String> = plain_text(prose)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            assert_eq!(words, expected);
        }
    }

    #[test]
    fn only_words_longer_than_the_line_are_split() {
        let out = plain("short abcdefghijklmnopqrstuvwxyz end", 10);
        assert_eq!(
            lines(&out),
            ["short", "abcdefghij", "klmnopqrst", "uvwxyz end"]
        );
    }

    #[test]
    fn no_line_has_trailing_spaces() {
        let markdown = "\
# Title

Text with a hard break  
here.

> quoted
>
> more

- item

  paragraph in item

| a | b |
|---|---|
| long cell | x |
| y | |

```
code   
```
";
        let out = plain(markdown, 30);
        for line in out.lines() {
            assert_eq!(line, line.trim_end(), "trailing space in {line:?}");
        }
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
