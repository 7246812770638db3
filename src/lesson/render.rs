//! The Markdown-to-terminal renderer: Markdown in, lines of text out.
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
//! The inline text is kept as styled [`Span`]s and wrapped and painted by the
//! `text` module, which measures widths before any colour is added.

use std::mem;

use colored::Colorize;
use pulldown_cmark::{
    Alignment, BlockQuoteKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd,
};

use super::text::{
    one_line_width, paint, paint_spans, spans_width, visible_width, wrap, Span, Style,
};
use super::LESSONS;

/// Text is not squeezed narrower than this, however deeply it is nested.
pub(super) const MIN_TEXT_WIDTH: usize = 20;
/// Code blocks are indented by this much.
const CODE_INDENT: &str = "    ";
/// Bullets for the first, second and third level of nested lists (then again).
const BULLETS: [&str; 3] = ["•", "◦", "▪"];
/// Table columns are shrunk (and their text wrapped) down to this width at most.
const MIN_COLUMN_WIDTH: usize = 8;
/// Columns of a table are separated by " │ ".
const COLUMN_GAP: usize = 3;

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
pub(super) fn parse(markdown: &str) -> Parser<'_> {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM;
    Parser::new_ext(markdown, options)
}

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

/// The walk over the event stream: what has been written, and where we are.
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
    /// Links and images whose text is being collected; an image may sit
    /// inside a link.
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
            Tag::Link { dest_url, .. } => self.start_link(&dest_url, |style| style.link = true),
            // An image can't be shown: show its description and where it is.
            Tag::Image { dest_url, .. } => self.start_link(&dest_url, |style| style.italic = true),
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

    /// Starts collecting the text of a link or image, shown in its own style.
    fn start_link(&mut self, url: &str, style: impl FnOnce(&mut Style)) {
        self.links.push(PendingLink {
            url: url.to_string(),
            text_start: self.inline.len(),
        });
        self.push_style(style);
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
        match widths.iter_mut().max() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lesson::text::tests::with_colours;

    /// Renders with colours off, so the output is plain text.
    fn plain(markdown: &str, width: usize) -> String {
        with_colours(false, || render(markdown, width))
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
}
