//! Human output: events rendered as numbered, aligned, coloured lines.
//!
//! ```text
//!   5  accept(fd 3)  waiting for a client to finish the handshake ...
//!                    -> fd 4, peer 127.0.0.1:51234
//!      kernel: fd 4 is ESTABLISHED (tcp_info)
//!      A new socket for this one client; fd 3 keeps listening.
//! ```
//!
//! A quick call and its result share one line; a blocking call's line is
//! printed before it blocks and the result goes underneath, aligned with the
//! text that said what it waits for. Colour comes from `colored`, whose global
//! switch `main` sets from `--color`, NO_COLOR and whether stdout is a terminal.

use colored::Colorize;

use super::event::{Event, Kind};
use super::text::wrap;

/// Width of the step-number column, and the indent of everything under a step.
const NUMBER_WIDTH: usize = 3;
const INDENT: usize = NUMBER_WIDTH + 2;
/// A result is never pushed further right than this.
const MAX_RETURN_COLUMN: usize = 40;

/// What the renderer remembers between events.
#[derive(Debug, Default)]
pub struct HumanState {
    /// A quick call's line is still open, waiting for its result.
    line_open: bool,
    /// Where a blocking call's result should start.
    return_column: usize,
    /// Wrap notes at this width (None: do not wrap, e.g. into a file).
    pub wrap_width: Option<usize>,
    /// Set by the narrator when another thread has printed since this
    /// thread's last line: a blocking call's result then repeats its step
    /// number and call name, so it cannot be read as the result of the
    /// line just above it.
    pub interrupted: bool,
}

impl HumanState {
    pub fn new(wrap_width: Option<usize>) -> HumanState {
        HumanState {
            wrap_width,
            ..HumanState::default()
        }
    }

    /// Is a quick call's line still waiting for its result?
    pub fn line_open(&self) -> bool {
        self.line_open
    }
}

/// Render one event as text to append to the output (with its newlines).
pub fn render(event: &Event, state: &mut HumanState) -> String {
    let mut out = String::new();
    // Anything but the result of the open call starts on a fresh line.
    let is_result = matches!(event.kind, Kind::Return { .. });
    if state.line_open && !is_result {
        out.push('\n');
        state.line_open = false;
    }
    let indent = " ".repeat(INDENT);
    match &event.kind {
        Kind::Start {
            demo,
            lesson,
            about,
        } => {
            out.push_str(&format!(
                "{}  {}\n",
                format!("netlab {demo}").bold(),
                format!("lesson: netlab lesson {lesson} · pid {}", event.pid).dimmed(),
            ));
            push_hanging(&mut out, "", 0, about, state.wrap_width, str::to_string);
            out.push('\n');
        }
        Kind::Call {
            call,
            args,
            blocking,
            wait,
        } => {
            let number = event.step.map(|n| n.to_string()).unwrap_or_default();
            let call_text = format!("{call}({args})");
            out.push_str(&format!(
                "{:>width$}  {}({args})",
                number.dimmed(),
                call.bold(),
                width = NUMBER_WIDTH
            ));
            if *blocking {
                let wait = wait.as_deref().unwrap_or("waiting");
                out.push_str(&format!("  {}\n", format!("{wait} ...").yellow()));
                let column = INDENT + call_text.chars().count() + 2;
                state.return_column = if column <= MAX_RETURN_COLUMN {
                    column
                } else {
                    INDENT + 2
                };
            } else {
                state.line_open = true;
            }
        }
        Kind::Return {
            call,
            ok,
            result,
            errno,
            error,
            ..
        } => {
            let text = if *ok {
                format!("{} {}", "->".green(), result)
            } else {
                let name = errno.as_deref().unwrap_or("error");
                let why = error.as_deref().unwrap_or("");
                format!(
                    "{} {} {}",
                    "->".red(),
                    name.red().bold(),
                    format!("({why})").red()
                )
            };
            if state.line_open {
                out.push_str(&format!("  {text}\n"));
                state.line_open = false;
            } else if state.interrupted {
                // Other lines came between the call and its result: name
                // the step again.
                let number = event.step.map(|n| n.to_string()).unwrap_or_default();
                out.push_str(&format!(
                    "{:>width$}  {}  {text}\n",
                    number.dimmed(),
                    format!("{call}()").bold(),
                    width = NUMBER_WIDTH
                ));
            } else {
                out.push_str(&format!(
                    "{}{text}\n",
                    " ".repeat(state.return_column.max(INDENT))
                ));
            }
        }
        Kind::Kernel {
            source,
            available,
            text,
            ..
        } => {
            let label = if *available {
                "kernel:".cyan().bold()
            } else {
                "kernel:".yellow().bold()
            };
            // Wrap the sentence under itself; the source stays on the last line.
            let hanging = " ".repeat(INDENT + "kernel: ".len());
            let full = format!("{text} ({source})");
            let lines = match state.wrap_width {
                Some(width) if width > hanging.len() + 20 => wrap(&full, width - hanging.len()),
                _ => vec![full],
            };
            let source_suffix = format!("({source})");
            let last = lines.len().saturating_sub(1);
            for (index, line) in lines.iter().enumerate() {
                let line = match line.strip_suffix(&source_suffix) {
                    Some(before) if index == last => format!("{before}{}", source_suffix.dimmed()),
                    _ => line.clone(),
                };
                let lead = if index == 0 {
                    format!("{indent}{label} ")
                } else {
                    hanging.clone()
                };
                out.push_str(&format!("{lead}{line}\n"));
            }
        }
        Kind::Note { text } => {
            push_wrapped(&mut out, &indent, text, state.wrap_width, |line| {
                line.italic().to_string()
            });
        }
        Kind::Info { text, .. } => {
            let lead = " ".repeat(NUMBER_WIDTH) + "* ";
            push_hanging(
                &mut out,
                &lead,
                lead.len(),
                text,
                state.wrap_width,
                |line| line.bold().to_string(),
            );
        }
        Kind::Warning { text, hint } => {
            let lead = format!("{indent}{} ", "warning:".yellow().bold());
            let width = indent.len() + "warning: ".len();
            push_hanging(
                &mut out,
                &lead,
                width,
                text,
                state.wrap_width,
                str::to_string,
            );
            if let Some(hint) = hint {
                let lead = format!("{indent}{} ", "hint:".cyan());
                let width = indent.len() + "hint: ".len();
                push_hanging(
                    &mut out,
                    &lead,
                    width,
                    hint,
                    state.wrap_width,
                    str::to_string,
                );
            }
        }
        Kind::Summary {
            seconds,
            hidden_steps,
            calls,
            errors,
            counters,
        } => {
            let mut line = format!("{seconds:.1} s; steps not shown one by one: {hidden_steps}");
            for (label, map) in [("calls", calls), ("errors", errors), ("counts", counters)] {
                if let Some(object) = map.as_object().filter(|object| !object.is_empty()) {
                    let parts: Vec<String> = object
                        .iter()
                        .map(|(key, value)| format!("{key} {value}"))
                        .collect();
                    line.push_str(&format!("; {label}: {}", parts.join(", ")));
                }
            }
            out.push_str(&format!("{indent}{} {line}\n", "summary:".magenta().bold()));
        }
        Kind::Error { message, hint } => {
            out.push_str(&format!("{} {message}\n", "error:".red().bold()));
            if let Some(hint) = hint {
                out.push_str(&format!("{} {hint}\n", "hint:".cyan()));
            }
        }
        Kind::Probe {
            probe,
            checks,
            status,
            expected,
            happened,
            hint,
            facts,
            ..
        } => render_probe(
            &mut out, state, probe, checks, status, expected, happened, hint, facts,
        ),
        Kind::Output {
            program_pid,
            lines,
            earlier_lines,
        } => {
            let head = if *earlier_lines > 0 {
                format!(
                    "your program's output (pid {program_pid}), its last {} lines:",
                    lines.len()
                )
            } else if lines.is_empty() {
                format!("your program (pid {program_pid}) printed nothing")
            } else {
                format!("your program's output (pid {program_pid}):")
            };
            out.push_str(&format!(
                "\n{} {}\n",
                " ".repeat(NUMBER_WIDTH) + "*",
                head.bold()
            ));
            for line in lines {
                out.push_str(&format!("{indent}{} {line}\n", "|".dimmed()));
            }
        }
        Kind::Verdict {
            exercise,
            lesson,
            passed,
            warned,
            failed,
            skipped,
            ok,
            ..
        } => {
            let total = passed + warned + failed + skipped;
            let mut line = format!("{exercise}: {} of {total} probes passed", passed + warned);
            if *warned > 0 {
                line.push_str(&format!(" ({warned} with a warning)"));
            }
            if *failed > 0 {
                line.push_str(&format!(", {failed} failed"));
            }
            if *skipped > 0 {
                line.push_str(&format!(", {skipped} not run"));
            }
            let lead = " ".repeat(NUMBER_WIDTH) + "* ";
            out.push('\n');
            push_hanging(
                &mut out,
                &lead,
                lead.len(),
                &line,
                state.wrap_width,
                |line| match *ok {
                    true => line.green().bold().to_string(),
                    false => line.red().bold().to_string(),
                },
            );
            out.push_str(&format!(
                "{} read: netlab lesson {lesson}\n",
                " ".repeat(NUMBER_WIDTH) + "*"
            ));
        }
        Kind::End { reason, .. } => {
            out.push_str(&format!(
                "{} {}\n",
                " ".repeat(NUMBER_WIDTH) + "*",
                format!("end: {reason}").dimmed()
            ));
        }
    }
    out
}

/// A probe's lines: the status and name with what it checks, then what
/// happened, what was expected (for a failure or warning), the kernel
/// facts, and the hint.
#[allow(clippy::too_many_arguments)]
fn render_probe(
    out: &mut String,
    state: &HumanState,
    probe: &str,
    checks: &str,
    status: &str,
    expected: &str,
    happened: &str,
    hint: &Option<String>,
    facts: &[serde_json::Value],
) {
    let tag = match status {
        "pass" => "PASS".green().bold(),
        "warn" => "WARN".yellow().bold(),
        "fail" => "FAIL".red().bold(),
        _ => "SKIP".dimmed().bold(),
    };
    // Names padded to the longest any exercise has, so that the lines of
    // one report line up.
    let name = format!("{probe:<14}");
    // What the probe checks wraps under itself, after the name.
    let lead = NUMBER_WIDTH - 2 + 1 + 4 + 2 + name.chars().count() + 2;
    let lines = match state.wrap_width {
        Some(width) if width > lead + 20 => wrap(checks, width - lead),
        _ => vec![checks.to_string()],
    };
    for (index, line) in lines.iter().enumerate() {
        if index == 0 {
            out.push_str(&format!(
                "{} {tag}  {}  {line}\n",
                " ".repeat(NUMBER_WIDTH - 2),
                name.bold()
            ));
        } else {
            out.push_str(&format!("{}{line}\n", " ".repeat(lead)));
        }
    }
    let indent = " ".repeat(INDENT + 2);
    let labelled = |out: &mut String, label: &str, text: &str| {
        let hanging = " ".repeat(INDENT + 2 + label.len() + 1);
        let lines = match state.wrap_width {
            Some(width) if width > hanging.len() + 20 => wrap(text, width - hanging.len()),
            _ => vec![text.to_string()],
        };
        for (index, line) in lines.iter().enumerate() {
            if index == 0 {
                out.push_str(&format!("{indent}{} {line}\n", label.dimmed()));
            } else {
                out.push_str(&format!("{hanging}{line}\n"));
            }
        }
    };
    let failed = matches!(status, "fail" | "warn");
    if failed && !expected.is_empty() {
        labelled(out, "expected:", expected);
    }
    if !happened.is_empty() {
        labelled(out, if failed { "happened:" } else { "got:" }, happened);
    }
    for fact in facts {
        let text = fact["text"].as_str().unwrap_or("");
        let source = fact["source"].as_str().unwrap_or("");
        labelled(out, "kernel:", &format!("{text} ({source})"));
    }
    if let Some(hint) = hint {
        labelled(out, "hint:", hint);
    }
}

/// `text` after `lead` (which takes `lead_width` columns on screen), its
/// further lines indented under the text's first.
fn push_hanging(
    out: &mut String,
    lead: &str,
    lead_width: usize,
    text: &str,
    width: Option<usize>,
    style: impl Fn(&str) -> String,
) {
    let lines = match width {
        Some(width) if width > lead_width + 20 => wrap(text, width - lead_width),
        _ => vec![text.to_string()],
    };
    for (index, line) in lines.iter().enumerate() {
        match index {
            0 => out.push_str(&format!("{lead}{}\n", style(line))),
            _ => out.push_str(&format!("{}{}\n", " ".repeat(lead_width), style(line))),
        }
    }
}

fn push_wrapped(
    out: &mut String,
    indent: &str,
    text: &str,
    width: Option<usize>,
    style: impl Fn(&str) -> String,
) {
    push_hanging(out, indent, indent.chars().count(), text, width, style);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::narrate::event::SCHEMA_VERSION;
    use serde_json::Value;

    fn event(step: Option<u32>, kind: Kind) -> Event {
        Event {
            v: SCHEMA_VERSION,
            t: 0.0,
            pid: 7,
            step,
            kind,
        }
    }

    fn call(step: u32, name: &str, args: &str, wait: Option<&str>) -> Event {
        event(
            Some(step),
            Kind::Call {
                call: name.into(),
                args: args.into(),
                blocking: wait.is_some(),
                wait: wait.map(str::to_string),
            },
        )
    }

    fn ok(step: u32, name: &str, result: &str) -> Event {
        event(
            Some(step),
            Kind::Return {
                call: name.into(),
                ok: true,
                result: result.into(),
                value: None,
                errno: None,
                error: None,
            },
        )
    }

    fn render_all(events: &[Event]) -> String {
        crate::narrate::with_colours(false, || {
            let mut state = HumanState::new(Some(80));
            events
                .iter()
                .map(|event| render(event, &mut state))
                .collect()
        })
    }

    #[test]
    fn a_quick_call_and_its_result_share_a_line() {
        let text = render_all(&[
            call(1, "socket", "AF_INET, SOCK_STREAM, 0", None),
            ok(1, "socket", "fd 3"),
        ]);
        assert_eq!(text, "  1  socket(AF_INET, SOCK_STREAM, 0)  -> fd 3\n");
    }

    #[test]
    fn a_blocking_call_prints_first_and_its_result_aligns_underneath() {
        let text = render_all(&[
            call(
                5,
                "accept",
                "fd 3",
                Some("waiting for a client to finish the handshake"),
            ),
            ok(5, "accept", "fd 4, peer 127.0.0.1:51234"),
            event(
                Some(5),
                Kind::Kernel {
                    subject: "fd 4".into(),
                    fact: "tcp_state".into(),
                    value: Value::from("ESTABLISHED"),
                    source: "tcp_info".into(),
                    available: true,
                    text: "fd 4 is ESTABLISHED".into(),
                },
            ),
            event(
                Some(5),
                Kind::Note {
                    text: "A new socket for this one client.".into(),
                },
            ),
        ]);
        let expected = "  5  accept(fd 3)  waiting for a client to finish the handshake ...\n\
                        \x20                  -> fd 4, peer 127.0.0.1:51234\n\
                        \x20    kernel: fd 4 is ESTABLISHED (tcp_info)\n\
                        \x20    A new socket for this one client.\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_result_after_other_lines_names_its_step_again() {
        let (call_line, result) = crate::narrate::with_colours(false, || {
            let mut state = HumanState::new(None);
            let call_line = render(&call(12, "recv", "fd 4", Some("waiting")), &mut state);
            // Another thread printed in between.
            state.interrupted = true;
            let result = render(&ok(12, "recv", "0: end of stream"), &mut state);
            (call_line, result)
        });
        assert_eq!(call_line, " 12  recv(fd 4)  waiting ...\n");
        assert_eq!(result, " 12  recv()  -> 0: end of stream\n");
    }

    #[test]
    fn failures_show_the_errno_name_and_its_meaning() {
        let failed = event(
            Some(2),
            Kind::Return {
                call: "connect".into(),
                ok: false,
                result: String::new(),
                value: None,
                errno: Some("ECONNREFUSED".into()),
                error: Some("Connection refused".into()),
            },
        );
        let text = render_all(&[call(2, "connect", "fd 3, 127.0.0.1:9", None), failed]);
        assert_eq!(
            text,
            "  2  connect(fd 3, 127.0.0.1:9)  -> ECONNREFUSED (Connection refused)\n"
        );
    }

    #[test]
    fn an_open_line_is_closed_before_anything_else() {
        let text = render_all(&[
            call(3, "bind", "fd 3, 0.0.0.0:8888", None),
            event(
                None,
                Kind::Warning {
                    text: "odd".into(),
                    hint: None,
                },
            ),
        ]);
        assert_eq!(text, "  3  bind(fd 3, 0.0.0.0:8888)\n     warning: odd\n");
    }

    #[test]
    fn long_kernel_lines_wrap_under_their_text() {
        let fact = Kind::Kernel {
            subject: "x".into(),
            fact: "connection_state".into(),
            value: Value::Null,
            source: "/proc/net/tcp".into(),
            available: true,
            text: "this server's end 127.0.0.1:8888 -> 127.0.0.1:36914 is gone: the kernel keeps nothing of it".into(),
        };
        let text = render_all(&[event(Some(1), fact)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 1, "{text}");
        assert!(lines[0].starts_with("     kernel: this server's end"));
        assert!(
            lines[1].starts_with("             "),
            "continuation is indented under the text: {text}"
        );
        assert!(text.trim_end().ends_with("(/proc/net/tcp)"));
        assert!(lines.iter().all(|line| line.chars().count() <= 80));
    }

    #[test]
    fn long_notes_wrap_under_the_step() {
        let note = "word ".repeat(30);
        let text = render_all(&[event(
            Some(1),
            Kind::Note {
                text: note.trim().into(),
            },
        )]);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "too long: {line:?}");
            assert!(line.starts_with("     word"));
        }
        assert!(text.lines().count() > 1);
    }
}
