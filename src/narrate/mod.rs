//! The narrator: the one place where netlab prints.
//!
//! A demo tells the narrator what it is about to do and what came back:
//!
//! ```ignore
//! let step = nar.blocking("accept", format!("fd {listen_fd}"), "waiting for a client");
//! match accept(&listen_fd) {
//!     Ok(conn_fd) => step.ok(format!("fd {}", conn_fd.as_raw_fd())),
//!     Err(errno) => step.fail(errno),
//! }
//! nar.note("A new socket for this one client; the listening socket keeps listening.");
//! ```
//!
//! and the narrator decides how that looks: numbered human lines, JSON
//! events (`--json`), nothing but start-up and errors (`--quiet`), a pause
//! before each call (`--step`), or a summary a second under load (the
//! throttle). Output errors never stop a demo with a panic: a closed stdout
//! turns into a stop request, and the demo ends quietly.
//!
//! In a hot loop, `call_with`, `blocking_with` and `Step::ok_with` take
//! closures instead of strings, so nothing is formatted or allocated for a
//! step that is not printed (`--quiet`, or while the throttle only counts);
//! `showing()` says whether kernel evidence read now would be printed.

mod event;
mod evidence;
mod human;
mod report;
mod stepper;
pub mod text;
mod throttle;

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use colored::Colorize;
use nix::errno::Errno;
use serde_json::{json, Value};

pub use event::{Event, Kind, SCHEMA_VERSION};
pub use evidence::Fact;
use human::HumanState;
pub use report::{ProbeReport, ProgramOutput, Verdict};
use stepper::Stepper;
use throttle::{Summary, Throttle};

use crate::cli::{ColorChoice, GlobalArgs};
use crate::stop::{self, StopReason};

/// Everything the narrator needs to know from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub json: bool,
    pub quiet: bool,
    pub step: bool,
    pub color: ColorChoice,
    pub rate: u32,
}

impl From<&GlobalArgs> for Settings {
    fn from(args: &GlobalArgs) -> Settings {
        Settings {
            json: args.json,
            quiet: args.quiet,
            step: args.step,
            color: args.color,
            rate: args.rate,
        }
    }
}

/// Decide whether to colour: `always` and `never` are obeyed; `auto` colours
/// a terminal unless NO_COLOR is set to something (https://no-color.org).
pub fn use_color(choice: ColorChoice, stdout_is_terminal: bool, no_color: Option<&str>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_is_terminal && no_color.is_none_or(str::is_empty),
    }
}

/// Switch `colored` on or off for the whole program, from `--color`,
/// NO_COLOR and whether stdout is a terminal. Every command calls it, the
/// ones without a narrator (lesson) too.
pub fn apply_color(choice: ColorChoice) {
    let color = use_color(
        choice,
        std::io::stdout().is_terminal(),
        std::env::var("NO_COLOR").ok().as_deref(),
    );
    colored::control::set_override(color);
}

pub struct Narrator {
    settings: Settings,
    start: Instant,
    steps: AtomicU32,
    out: Mutex<Output>,
    stepper: Stepper,
    /// Set by `may_end_at_any_step`: `q` at a pause ends the run at once.
    end_at_any_step: AtomicBool,
}

struct Output {
    throttle: Throttle,
    /// Set once a write failed: nothing more is written.
    closed: bool,
    /// Wrap notes at this width (None: do not wrap), for each thread's
    /// `HumanState`.
    wrap_width: Option<usize>,
    /// In a forked child's human output, the start of every line
    /// (`[4321] `), so the class can tell the two processes apart.
    prefix: Option<String>,
    /// How many columns that prefix takes on screen (its colour codes take none).
    prefix_width: usize,
    /// The thread whose text was written last, so that a blocking call's
    /// result that comes after another thread's lines can name its step.
    last_writer: Option<ThreadId>,
}

/// One thread's human output. Each thread has its own, so that in a server
/// with a thread per client a result always lands under its own call, and
/// a half-written line of one thread never receives another's result.
#[derive(Default)]
struct ThreadLines {
    /// This thread's renderer state (created on its first event).
    human: Option<HumanState>,
    /// A quick call's line, held until its result arrives, so that the
    /// line is written whole: another thread, or a forked child, that
    /// prints at the same time cannot land in the middle of it.
    held: String,
    /// In a thread started with `Narrator::in_thread`, the start of every
    /// line (`[client-1] `); the main thread's lines have none.
    prefix: Option<String>,
    /// How many columns that prefix takes on screen.
    prefix_width: usize,
}

thread_local! {
    /// The step this thread is in, and whether it is being shown, so that
    /// kernel lines and notes follow their step (or are hidden with it).
    static CURRENT: Cell<(Option<u32>, bool)> = const { Cell::new((None, true)) };
    /// This thread's human output state (see `ThreadLines`).
    static LINES: RefCell<ThreadLines> = RefCell::new(ThreadLines::default());
}

impl Narrator {
    pub fn new(settings: Settings) -> Narrator {
        let stdout_is_terminal = std::io::stdout().is_terminal();
        apply_color(settings.color);
        let wrap_width = if stdout_is_terminal {
            // A terminal that reports 0 columns (a serial console, `script`
            // without a terminal of its own) has an unknown width: 80.
            crossterm::terminal::size()
                .ok()
                .map(|(cols, _)| match cols {
                    0 => 80,
                    cols => usize::from(cols).clamp(40, 120),
                })
        } else {
            None
        };
        let (stepper, step_impossible) = Stepper::new(settings.step);
        if step_impossible {
            eprintln!("netlab: --step needs a terminal on standard input to read keys; running without pauses.");
        }
        Narrator {
            out: Mutex::new(Output {
                throttle: Throttle::new(settings.rate),
                closed: false,
                wrap_width,
                prefix: None,
                prefix_width: 0,
                last_writer: None,
            }),
            settings,
            start: Instant::now(),
            steps: AtomicU32::new(0),
            stepper,
            end_at_any_step: AtomicBool::new(false),
        }
    }

    /// A demo that holds nothing but file descriptors (no child processes,
    /// no files to remove) calls this first. Then `q` at a `--step` pause
    /// ends the run right there, before the call it paused on: the kernel
    /// closes every descriptor as the process exits, so nothing is left to
    /// clean up. Other demos stop as on Ctrl-C: `q` requests a stop, their
    /// next blocking call returns EINTR, and they clean up and return.
    pub fn may_end_at_any_step(&self) {
        self.end_at_any_step.store(true, Ordering::Relaxed);
    }

    /// The demo now holds something that needs cleaning up (a child to
    /// reap, a peer to say goodbye to): from here `q` at a pause stops as
    /// Ctrl-C does, and the demo cleans up. Undoes `may_end_at_any_step`.
    pub fn must_clean_up_from_here(&self) {
        self.end_at_any_step.store(false, Ordering::Relaxed);
    }

    /// The banner: which demo, which lesson explains it, what it shows.
    /// Shown even with `--quiet`.
    pub fn start(&self, demo: &str, lesson: &str, about: &str) {
        self.emit(
            None,
            Kind::Start {
                demo: demo.into(),
                lesson: lesson.into(),
                about: about.into(),
            },
        );
    }

    /// A system call that returns at once: its line and result share a line.
    pub fn call(&self, call: &'static str, args: impl Into<String>) -> Step<'_> {
        self.begin(call, move || args.into(), None::<String>)
    }

    /// `call` for a hot loop: the arguments are built by `args` only if the
    /// step will be printed (or paused on with `--step`). With `--quiet`, or
    /// while the throttle only counts, nothing is formatted or allocated:
    /// `nar.call_with("recv", || format!("fd {fd}, {} bytes", buf.len()))`.
    pub fn call_with(&self, call: &'static str, args: impl FnOnce() -> String) -> Step<'_> {
        self.begin(call, args, None::<String>)
    }

    /// A system call that may wait. Its line is printed before the call
    /// blocks, saying what it waits for, so the class sees where we are.
    pub fn blocking(
        &self,
        call: &'static str,
        args: impl Into<String>,
        wait: impl Into<String>,
    ) -> Step<'_> {
        self.begin(call, move || args.into(), Some(wait))
    }

    /// `blocking` for a hot loop: like `call_with`, the arguments (and the
    /// `wait` text) become strings only if the step is printed.
    pub fn blocking_with(
        &self,
        call: &'static str,
        args: impl FnOnce() -> String,
        wait: impl Into<String>,
    ) -> Step<'_> {
        self.begin(call, args, Some(wait))
    }

    /// Are events written as JSON lines (`--json`)? A demo that also
    /// prints for its user (the chat client's lines) keeps stdout JSON-only
    /// then.
    pub fn is_json(&self) -> bool {
        self.settings.json
    }

    /// Is the narration off (`--quiet`)? A demo that talks with its user
    /// (the chat client's prompt) can then own the terminal's lines.
    pub fn is_quiet(&self) -> bool {
        self.settings.quiet
    }

    /// Would a `kernel` line or a `note` be printed now, i.e. is the current
    /// step shown? False with `--quiet` and while the throttle only counts.
    /// A demo checks it before reading evidence (TCP_INFO, /proc) that would
    /// otherwise be read and thrown away. One thread-local read: free.
    pub fn showing(&self) -> bool {
        !self.settings.quiet && CURRENT.get().1
    }

    fn begin<W: Into<String>>(
        &self,
        call: &'static str,
        args: impl FnOnce() -> String,
        wait: Option<W>,
    ) -> Step<'_> {
        let number = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        if self.settings.quiet {
            CURRENT.set((Some(number), false));
            return Step::new(self, number, call, false);
        }
        // Built at most once, and only if the stepper or the output needs it.
        let mut args = LazyText::new(args);
        let quit = self.stepper.wait(|| format!("{call}({})", args.get()));
        if quit && self.end_at_any_step.load(Ordering::Relaxed) {
            self.quit_before(call);
        }
        let shown = {
            let mut out = self.lock();
            let verdict = out.throttle.admit(Instant::now());
            if let Some(summary) = verdict.summary {
                self.write_locked(&mut out, None, summary_kind(summary));
            }
            if !verdict.show {
                out.throttle.hide_call(call);
            }
            verdict.show
        };
        CURRENT.set((Some(number), shown));
        if shown {
            let wait = wait.map(Into::into);
            let blocking = wait.is_some();
            self.emit(
                Some(number),
                Kind::Call {
                    call: call.into(),
                    args: args.into_string(),
                    blocking,
                    wait,
                },
            );
        }
        Step::new(self, number, call, shown)
    }

    /// `q` at a pause, in a demo that may end at any step: `call` is never
    /// made. Say so, write the end line, and exit with the stop's code.
    fn quit_before(&self, call: &'static str) -> ! {
        self.info(
            "quit",
            json!({ "before": call }),
            format!("{call}() is not made: the run ends here, and the kernel closes every descriptor this process holds"),
        );
        let reason = stop::requested().unwrap_or(StopReason::Quit);
        let code = reason.exit_code();
        self.end(reason.describe(), code);
        std::process::exit(code)
    }

    /// A fact read from the kernel (see `evidence.rs` for the readers).
    pub fn kernel(&self, fact: Fact) {
        let (step, shown) = CURRENT.get();
        if self.settings.quiet || !shown {
            return;
        }
        self.emit(step, fact.into_kind());
    }

    /// A fact read from the kernel that a summary must not swallow (how
    /// many datagrams were dropped, read once a flood is over): shown even
    /// when the throttle hides the current step; only `--quiet` hides it.
    pub fn kernel_always(&self, fact: Fact) {
        if self.settings.quiet {
            return;
        }
        let (step, _) = CURRENT.get();
        self.emit(step, fact.into_kind());
    }

    /// An explanation for the class: one whole sentence (or a few), written
    /// out in full in the demo's source so it can be read and translated.
    pub fn note(&self, text: &'static str) {
        let (step, shown) = CURRENT.get();
        if self.settings.quiet || !shown {
            return;
        }
        self.emit(step, Kind::Note { text: text.into() });
    }

    /// A milestone (a client connected, a message arrived), with data.
    pub fn info(&self, key: &str, value: Value, text: impl Into<String>) {
        if self.settings.quiet {
            return;
        }
        self.info_always(key, value, text.into());
    }

    /// A start-up line (the address a server really bound): shown even
    /// with `--quiet`, because without it nobody can connect.
    pub fn startup(&self, key: &str, value: Value, text: impl Into<String>) {
        self.info_always(key, value, text.into());
    }

    fn info_always(&self, key: &str, value: Value, text: String) {
        let (step, _) = CURRENT.get();
        self.emit(
            step,
            Kind::Info {
                key: key.into(),
                value,
                text,
            },
        );
    }

    /// Something went wrong, the demo goes on. Always shown.
    pub fn warning(&self, text: impl Into<String>, hint: Option<&str>) {
        let (step, _) = CURRENT.get();
        self.emit(
            step,
            Kind::Warning {
                text: text.into(),
                hint: hint.map(str::to_string),
            },
        );
    }

    /// Call first thing in a forked child. The child never pauses for keys
    /// (the parent owns the terminal's keys); its events carry its own pid,
    /// and in human output each of its lines starts with `[PID] `.
    pub fn forked_child(&self) {
        self.stepper.disable();
        let mut out = self.lock();
        let prefix = format!("[{}] ", std::process::id());
        out.prefix_width = prefix.chars().count();
        out.prefix = Some(prefix.dimmed().to_string());
    }

    /// Call first thing in a thread that narrates (a server's thread for
    /// one client). In human output each of its lines then starts with
    /// `[label] `, so the class can tell the threads apart, as `[PID] `
    /// does for a forked child; the main thread's lines stay unprefixed.
    pub fn in_thread(&self, label: &str) {
        let prefix = format!("[{label}] ");
        LINES.with_borrow_mut(|lines| {
            lines.prefix_width = prefix.chars().count();
            lines.prefix = Some(prefix.dimmed().to_string());
        });
    }

    /// Add to a counter that appears in the summaries under load.
    pub fn count(&self, key: &'static str, amount: u64) {
        if self.settings.quiet || self.settings.rate == 0 {
            return;
        }
        self.lock().throttle.count(key, amount);
    }

    /// Set a level that appears in the summaries under load (connections
    /// open, ...): unlike `count`, the summary shows the last value set.
    pub fn gauge(&self, key: &'static str, value: u64) {
        if self.settings.quiet || self.settings.rate == 0 {
            return;
        }
        self.lock().throttle.gauge(key, value);
    }

    /// The run failed; `main` calls this once. In JSON mode the error is
    /// also an event, so a program reading the events learns why we stopped.
    pub fn error(&self, message: &str, hint: Option<&str>) {
        if self.settings.json {
            self.emit(
                None,
                Kind::Error {
                    message: message.into(),
                    hint: hint.map(str::to_string),
                },
            );
        }
    }

    /// The last line: why the demo ends and with which exit code.
    pub fn end(&self, reason: &str, exit_code: i32) {
        self.flush_summary();
        if stop::requested() == Some(StopReason::OutputClosed) {
            return;
        }
        self.emit(
            None,
            Kind::End {
                reason: reason.into(),
                exit_code,
            },
        );
    }

    /// For a program that has been waiting: print the summary of a busy
    /// window that has ended, now rather than at the next step. Call it
    /// whenever a wait returns (with or without events).
    pub fn tick(&self) {
        if self.settings.quiet {
            return;
        }
        let mut out = self.lock();
        if let Some(summary) = out.throttle.close_window_if_due(Instant::now()) {
            self.write_locked(&mut out, None, summary_kind(summary));
        }
    }

    /// How long a waiting program may sleep before [`Narrator::tick`] has a
    /// summary to print; None when nothing is pending. Use it to shorten
    /// a wait's timeout (epoll_wait, poll, SO_RCVTIMEO).
    pub fn tick_due_in(&self) -> Option<Duration> {
        if self.settings.quiet {
            return None;
        }
        self.lock().throttle.due_in(Instant::now())
    }

    /// Print whatever the throttle still holds.
    pub fn flush_summary(&self) {
        let mut out = self.lock();
        if let Some(summary) = out.throttle.take_pending(Instant::now()) {
            self.write_locked(&mut out, None, summary_kind(summary));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Output> {
        // A panic while printing must not silence every later line.
        self.out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, step: Option<u32>, kind: Kind) {
        let mut out = self.lock();
        self.write_locked(&mut out, step, kind);
    }

    fn write_locked(&self, out: &mut Output, step: Option<u32>, kind: Kind) {
        if out.closed {
            return;
        }
        let event = Event {
            v: SCHEMA_VERSION,
            t: (self.start.elapsed().as_micros() as f64) / 1e6,
            // Read each time: after a fork the child has its own pid.
            pid: std::process::id(),
            step,
            kind,
        };
        let text = if self.settings.json {
            let mut line = event.to_json_line();
            line.push('\n');
            line
        } else {
            let me = std::thread::current().id();
            let interrupted = out.last_writer.is_some_and(|last| last != me);
            let whole = LINES.with_borrow_mut(|lines| {
                let human = lines
                    .human
                    .get_or_insert_with(|| HumanState::new(out.wrap_width));
                human.interrupted = interrupted;
                // A prefixed line ([PID] or [client-1]) has that much less
                // room, or its wrapped notes would run past the screen.
                human.wrap_width = out
                    .wrap_width
                    .map(|width| width.saturating_sub(out.prefix_width + lines.prefix_width));
                let text = human::render(&event, human);
                if human.line_open() {
                    lines.held.push_str(&text);
                    return None;
                }
                let text = std::mem::take(&mut lines.held) + &text;
                let prefix = format!(
                    "{}{}",
                    out.prefix.as_deref().unwrap_or(""),
                    lines.prefix.as_deref().unwrap_or("")
                );
                Some(if prefix.is_empty() {
                    text
                } else {
                    text.split_inclusive('\n')
                        .map(|line| format!("{prefix}{line}"))
                        .collect()
                })
            });
            let Some(text) = whole else {
                return;
            };
            out.last_writer = Some(me);
            text
        };
        let mut stdout = std::io::stdout().lock();
        let written = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush());
        if written.is_err() {
            // Nobody reads our output any more (`| head`): stop quietly.
            out.closed = true;
            stop::request(StopReason::OutputClosed);
        }
    }
}

fn summary_kind(summary: Summary) -> Kind {
    let to_object = |pairs: Vec<(String, u64)>| -> Value {
        Value::Object(
            pairs
                .into_iter()
                .map(|(key, count)| (key, Value::from(count)))
                .collect(),
        )
    };
    Kind::Summary {
        seconds: (summary.seconds * 10.0).round() / 10.0,
        hidden_steps: summary.hidden_steps,
        calls: to_object(
            summary
                .calls
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
        errors: to_object(summary.errors.into_iter().collect()),
        counters: to_object(
            summary
                .counters
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
    }
}

/// One system call in progress. Finish it with `ok`, `ok_value` or `fail`.
#[must_use = "say what the call returned with ok(), ok_value() or fail()"]
pub struct Step<'n> {
    nar: &'n Narrator,
    number: u32,
    call: &'static str,
    shown: bool,
}

impl<'n> Step<'n> {
    fn new(nar: &'n Narrator, number: u32, call: &'static str, shown: bool) -> Step<'n> {
        Step {
            nar,
            number,
            call,
            shown,
        }
    }

    /// The call succeeded; `result` says what it returned ("fd 4").
    pub fn ok(self, result: impl Into<String>) {
        self.finish(true, result.into(), None, None);
    }

    /// The call succeeded and returned this number (a fd, a byte count).
    pub fn ok_value(self, value: i64, result: impl Into<String>) {
        self.finish(true, result.into(), Some(value), None);
    }

    /// `ok_value` for a hot loop: `result` is built only if the step is shown.
    pub fn ok_with(self, value: i64, result: impl FnOnce() -> String) {
        if self.shown && !self.nar.settings.quiet {
            self.finish(true, result(), Some(value), None);
        }
    }

    /// The call failed with `errno`.
    pub fn fail(self, errno: Errno) {
        self.finish(false, String::new(), Some(-1), Some(errno));
    }

    /// The call failed with an error code that is not an errno, such as
    /// getaddrinfo's `EAI_NONAME`: its C name and its meaning.
    pub fn fail_code(self, code: &str, meaning: impl Into<String>) {
        self.finish_named(code.to_string(), meaning.into());
    }

    /// Narrate `result` and hand it back unchanged, for calls whose failure
    /// simply ends the demo: `step.check(bind(..), |_| "0".into())?`.
    pub fn check<T>(
        self,
        result: nix::Result<T>,
        describe: impl FnOnce(&T) -> String,
    ) -> nix::Result<T> {
        match &result {
            Ok(value) => self.ok(describe(value)),
            Err(errno) => self.fail(*errno),
        }
        result
    }

    fn finish_named(self, code: String, meaning: String) {
        if self.nar.settings.quiet {
            return;
        }
        if !self.shown {
            return;
        }
        self.nar.emit(
            Some(self.number),
            Kind::Return {
                call: self.call.into(),
                ok: false,
                result: String::new(),
                value: None,
                errno: Some(code),
                error: Some(meaning),
            },
        );
    }

    fn finish(self, ok: bool, result: String, value: Option<i64>, errno: Option<Errno>) {
        if self.nar.settings.quiet {
            return;
        }
        if !self.shown {
            if let Some(errno) = errno {
                self.nar.lock().throttle.hide_error(errno_name(errno));
            }
            return;
        }
        self.nar.emit(
            Some(self.number),
            Kind::Return {
                call: self.call.into(),
                ok,
                result,
                value,
                errno: errno.map(|e| errno_name(e).to_string()),
                error: errno.map(|e| e.desc().to_string()),
            },
        );
    }
}

/// A string built by a closure on first use, then kept: a step's arguments,
/// which are only needed when the step is printed or paused on.
struct LazyText<F> {
    build: Option<F>,
    text: String,
}

impl<F: FnOnce() -> String> LazyText<F> {
    fn new(build: F) -> LazyText<F> {
        LazyText {
            build: Some(build),
            text: String::new(),
        }
    }

    fn get(&mut self) -> &str {
        if let Some(build) = self.build.take() {
            self.text = build();
        }
        &self.text
    }

    fn into_string(mut self) -> String {
        self.get();
        self.text
    }
}

/// "ECONNREFUSED" for Errno::ECONNREFUSED: the name C programmers and man
/// pages use.
pub fn errno_name(errno: Errno) -> &'static str {
    // nix's Debug output is the constant's name; keep a copy that lives for
    // the whole program so summaries can count by it cheaply.
    static NAMES: Mutex<Vec<(i32, &'static str)>> = Mutex::new(Vec::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, name)) = names.iter().find(|(code, _)| *code == errno as i32) {
        return name;
    }
    let name: &'static str = Box::leak(format!("{errno:?}").into_boxed_str());
    names.push((errno as i32, name));
    name
}

/// `colored`'s on/off switch is global and tests run in parallel threads,
/// so every test that paints or renders, in any module, holds this lock
/// while it sets the switch and renders.
#[cfg(test)]
static COLOUR_SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with colours on or off (tests only; see `COLOUR_SWITCH`).
#[cfg(test)]
pub(crate) fn with_colours<T>(on: bool, f: impl FnOnce() -> T) -> T {
    let _guard = COLOUR_SWITCH
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    colored::control::set_override(on);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_the_flag_the_terminal_and_no_color() {
        assert!(use_color(ColorChoice::Always, false, Some("1")));
        assert!(!use_color(ColorChoice::Never, true, None));
        assert!(use_color(ColorChoice::Auto, true, None));
        assert!(
            use_color(ColorChoice::Auto, true, Some("")),
            "an empty NO_COLOR does not count"
        );
        assert!(!use_color(ColorChoice::Auto, true, Some("1")));
        assert!(!use_color(ColorChoice::Auto, false, None));
    }

    #[test]
    fn errno_names_are_the_c_names() {
        assert_eq!(errno_name(Errno::ECONNREFUSED), "ECONNREFUSED");
        assert_eq!(errno_name(Errno::EPIPE), "EPIPE");
        assert_eq!(errno_name(Errno::EPIPE), "EPIPE");
    }
}
