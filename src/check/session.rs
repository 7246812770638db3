//! One check from start to end: prepare, start the program, wait for it to
//! listen, run the exercise's probes (each in its own thread, with its own
//! deadline), stop the program, and report.
//!
//! An exercise is a `fn(&mut Session)` that calls `session.probe(...)` once
//! per probe, in order. A probe is a closure that gets the `Target` (where
//! the program listens, its pid, ...) and a deadline, and returns an
//! `Outcome`: pass, warn or fail, what was expected, what happened, the
//! kernel facts read on the way, and for a failure one hint.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::program::{self, Program};
use super::Args;
use crate::error::{AlreadyReported, Failure};
use crate::narrate::{Fact, Narrator, ProbeReport, ProgramOutput, Verdict};
use crate::stop;

/// Who plays which part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The program is a TCP server; the probes are its clients.
    TcpServer,
    /// The program is a UDP server; the probes send it datagrams.
    UdpServer,
    /// The program is a TCP client; netlab listens and the program connects.
    TcpClient,
}

/// A probe's name and the one line that says what it checks (for `--list`
/// and the report).
#[derive(Debug, Clone, Copy)]
pub struct ProbeInfo {
    pub name: &'static str,
    pub checks: &'static str,
}

/// One exercise: what it is, how it runs.
pub struct Exercise {
    /// The name on the command line: "tcp-echo".
    pub name: &'static str,
    /// One line for `--list`.
    pub summary: &'static str,
    /// The lesson that teaches it (`netlab lesson LESSON`).
    pub lesson: &'static str,
    pub role: Role,
    /// An example command after `--`, e.g. "python3 echo_server.py {port}".
    pub example: &'static str,
    /// Every probe the exercise runs, in order.
    pub probes: &'static [ProbeInfo],
    /// Fill the directory `{root}` stands for (http-static); None: no `{root}`.
    pub prepare: Option<fn(&Path) -> io::Result<()>>,
    /// Run the probes: one `session.probe(...)` call per entry of `probes`.
    pub run: fn(&mut Session),
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Works, but not as well as it should (a server that closes instead of
    /// keeping the connection alive). Does not fail the check.
    Warn,
    Fail,
    /// Not run (the program had exited, or an earlier probe it needs failed).
    Skip,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    /// What a correct program does here, in a sentence.
    pub expected: String,
    /// What this program did: the values measured.
    pub happened: String,
    /// For a failure or a warning: what to look at in the code. A whole
    /// static sentence, so it can be translated.
    pub hint: Option<&'static str>,
    /// Facts read from the kernel during the probe.
    pub facts: Vec<Fact>,
    /// The hint was written for the program's crash: keep it, whatever
    /// exception ended the program.
    pub about_a_crash: bool,
}

impl Outcome {
    pub fn pass(expected: impl Into<String>, happened: impl Into<String>) -> Outcome {
        Outcome::new(Status::Pass, expected, happened, None)
    }

    pub fn fail(
        expected: impl Into<String>,
        happened: impl Into<String>,
        hint: &'static str,
    ) -> Outcome {
        Outcome::new(Status::Fail, expected, happened, Some(hint))
    }

    pub fn warn(
        expected: impl Into<String>,
        happened: impl Into<String>,
        hint: &'static str,
    ) -> Outcome {
        Outcome::new(Status::Warn, expected, happened, Some(hint))
    }

    fn new(
        status: Status,
        expected: impl Into<String>,
        happened: impl Into<String>,
        hint: Option<&'static str>,
    ) -> Outcome {
        Outcome {
            status,
            expected: expected.into(),
            happened: happened.into(),
            hint,
            facts: Vec::new(),
            about_a_crash: false,
        }
    }

    /// Mark the hint as written for a program that ended during the probe.
    pub fn about_a_crash(mut self) -> Outcome {
        self.about_a_crash = true;
        self
    }

    /// Add a fact read from the kernel (shown under the probe).
    pub fn with_fact(mut self, fact: Fact) -> Outcome {
        self.facts.push(fact);
        self
    }

    /// Add several facts.
    pub fn with_facts(mut self, facts: impl IntoIterator<Item = Fact>) -> Outcome {
        self.facts.extend(facts);
        self
    }
}

/// What a probe needs to reach the program. Cheap to clone: each probe's
/// thread gets its own copy.
#[derive(Clone)]
pub struct Target {
    /// Server roles: the address to connect or send to (a loopback address
    /// where the program's socket is bound). TcpClient: netlab's own
    /// listening address, which the program was told.
    pub addr: SocketAddr,
    /// The student's program.
    pub program: Arc<Program>,
    /// Server roles: the inode of the program's listening (or bound UDP)
    /// socket, which joins /proc/net/tcp lines and /proc/PID/fd links.
    pub socket_inode: Option<u64>,
    /// TcpClient: netlab's listening socket.
    pub listener: Option<Arc<TcpListener>>,
    /// http-static: the directory the program serves (`{root}`), and the
    /// directory above it, where files the server must never serve are.
    pub root: Option<PathBuf>,
    /// `--patience`: every probe time limit is multiplied by it.
    pub patience: f64,
}

impl Target {
    /// The server's process id: the process that holds the listening
    /// socket (for a client exercise, the program). Usually the program
    /// netlab started; behind a wrapper (`sh -c`, `make run`) the process
    /// the wrapper started; for a daemon, the daemon.
    pub fn pid(&self) -> i32 {
        self.program.server_pid()
    }

    /// Is the server (see `pid`) still running (not exited, not a zombie)?
    pub fn alive(&self) -> bool {
        self.program.server_alive()
    }

    /// How the server ended ("your program exited with status 1"), None
    /// while it runs.
    pub fn ended(&self) -> Option<String> {
        self.program.server_end()
    }

    /// Every process under the server, read from /proc now.
    pub fn descendants(&self) -> Vec<crate::kernel::process::ProcStat> {
        self.program.server_descendants()
    }

    /// A time limit scaled by `--patience`.
    pub fn time(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds * self.patience)
    }
}

/// A probe's result as recorded for the verdict.
struct Recorded {
    name: &'static str,
    status: Status,
}

/// A check in progress. The exercise's `run` calls `probe` for each probe.
pub struct Session<'n> {
    nar: &'n Narrator,
    exercise: &'static Exercise,
    target: Target,
    results: Vec<Recorded>,
    /// Set once the program has exited (or a stop was asked for): every
    /// probe after that is skipped with this reason.
    over: Option<String>,
}

/// Extra time a probe's thread gets after its deadline before the probe is
/// reported as hung (its own socket timeouts should end it first).
const GRACE: Duration = Duration::from_secs(2);

impl<'n> Session<'n> {
    /// A copy of the target for a probe's closure.
    pub fn target(&self) -> Target {
        self.target.clone()
    }

    /// Run one probe: `run` gets the target and its deadline (now plus
    /// `seconds` times `--patience`) and returns what it found. It runs in
    /// its own thread, so a probe that hangs past its deadline is reported
    /// as hung and the check goes on. Returns the probe's status, so a
    /// later probe that depends on it can be skipped.
    pub fn probe(
        &mut self,
        name: &'static str,
        seconds: f64,
        run: impl FnOnce(Target, Instant) -> Outcome + Send + 'static,
    ) -> Status {
        debug_assert!(
            self.exercise.probes.iter().any(|p| p.name == name),
            "probe {name} is not listed in {}'s probes",
            self.exercise.name
        );
        if let Some(why) = self.over.clone() {
            self.skip(name, why);
            return Status::Skip;
        }
        let limit = self.target.time(seconds);
        let started = Instant::now();
        let deadline = started + limit;
        let (tx, rx) = mpsc::channel();
        let target = self.target.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("probe {name}"))
            .spawn(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| run(target, deadline)));
                let _ = tx.send(outcome);
            });
        let outcome = match spawned {
            Err(err) => Outcome::fail(
                "the probe runs in a thread of its own",
                format!("netlab could not start a thread: {err}"),
                "netlab itself ran out of resources; close some programs and run the check again.",
            ),
            Ok(_) => self.wait_for_probe(&rx, deadline + GRACE, limit),
        };
        let mut outcome = outcome;
        if outcome.status == Status::Fail {
            // A crash explains the failure better than the probe's hint.
            if let Some((hint, exception)) = crash_cause(&self.target, self.exercise.role) {
                let hint = match exception.as_deref() {
                    Some(line) => exception_hint(line, name),
                    None => Some(hint),
                };
                // None: the probe's own hint names the cause (a parse
                // for IndexError, a decode() in binary).
                if let (Some(hint), false) = (hint, outcome.about_a_crash) {
                    outcome.hint = Some(hint);
                }
                if let Some(line) = exception {
                    let happened = outcome.happened.trim_end();
                    let happened = happened
                        .strip_suffix("(its output below shows why)")
                        .unwrap_or(happened)
                        .trim_end();
                    outcome.happened =
                        format!("{happened} (it raised `{line}`; its output below shows where)");
                }
            }
        }
        let status = outcome.status;
        self.record(name, outcome, started.elapsed());
        self.target.program.report_handoffs(self.nar, Some(name));
        // A server must outlive every probe; a client is expected to exit
        // (its exercise judges how), so its exit ends nothing here.
        if self.over.is_none() && self.exercise.role != Role::TcpClient {
            if let Some(ended) = self.target.ended() {
                self.over = Some(format!("not run: {ended}"));
                // Status 0: it ended by itself, cleanly; the usual cause is
                // a server that serves one client and falls off its end.
                let clean = self
                    .target
                    .program
                    .server_status()
                    .is_some_and(|status| status.success());
                self.nar.warning(
                    format!("{ended} during the probe {name}; its output is below"),
                    clean.then_some("A server ends only when it is stopped: put accept() and the conversation with each client in a loop (while True:), so that it goes back for the next client or datagram."),
                );
            }
        }
        status
    }

    fn wait_for_probe(
        &mut self,
        rx: &mpsc::Receiver<std::thread::Result<Outcome>>,
        give_up: Instant,
        limit: Duration,
    ) -> Outcome {
        loop {
            if stop::requested().is_some() {
                self.over = Some("not run: the check was stopped".into());
                return Outcome::new(
                    Status::Skip,
                    "the probe runs to its end",
                    "stopped by Ctrl-C",
                    None,
                );
            }
            let wait = give_up
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            match rx.recv_timeout(wait) {
                Ok(Ok(outcome)) => return outcome,
                Ok(Err(_panic)) => {
                    return Outcome::fail(
                        "the probe runs to its end",
                        "netlab's probe itself failed (a bug in netlab, not in your program)",
                        "Please report this with the command you ran; the other probes are still valid.",
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Outcome::fail(
                        "the probe runs to its end",
                        "netlab's probe ended without a result (a bug in netlab)",
                        "Please report this with the command you ran; the other probes are still valid.",
                    )
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= give_up => {
                    return Outcome::fail(
                        format!("an answer within {:.1} s", limit.as_secs_f64()),
                        "the probe was still waiting for your program when its time ran out",
                        "Your program stopped answering: look for a call that blocks forever (a recv() that waits for more bytes than the client sends, or a loop that never reads).",
                    )
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Report a probe as not run, and why.
    pub fn skip(&mut self, name: &'static str, why: impl Into<String>) {
        let outcome = Outcome::new(Status::Skip, "", why, None);
        self.record(name, outcome, Duration::ZERO);
    }

    fn record(&mut self, name: &'static str, outcome: Outcome, took: Duration) {
        let checks = self
            .exercise
            .probes
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.checks)
            .unwrap_or("");
        self.nar.probe(ProbeReport {
            exercise: self.exercise.name,
            probe: name,
            checks,
            status: outcome.status.name(),
            expected: outcome.expected,
            happened: outcome.happened,
            hint: outcome.hint,
            seconds: took.as_secs_f64(),
            facts: outcome.facts,
        });
        self.results.push(Recorded {
            name,
            status: outcome.status,
        });
    }
}

/// The whole check (see the module header of `check/mod.rs`).
pub fn run(nar: &Narrator, exercise: &'static Exercise, args: &Args) -> Result<()> {
    let command = args.command.clone();
    // An empty command and a missing {root} were refused as usage errors
    // (`Args::check`).
    nar.start(
        &format!("check {}", exercise.name),
        exercise.lesson,
        exercise.summary,
    );
    program::become_subreaper(nar);

    // The directory for {root}, removed when `workdir` is dropped.
    let workdir = match exercise.prepare {
        Some(prepare) => Some(program::WorkDir::create(prepare)?),
        None => None,
    };
    let root = workdir.as_ref().map(|dir| dir.root().to_path_buf());

    // The port: netlab's own listener for a client exercise, else a free one.
    let listener = match exercise.role {
        Role::TcpClient => Some(Arc::new(program::listen_for_client(args.port)?)),
        _ => None,
    };
    let port = match &listener {
        Some(listener) => listener.local_addr()?.port(),
        None if args.port != 0 => args.port,
        None => program::free_port(exercise.role)?,
    };
    let argv = program::substitute(&command, port, root.as_deref());
    if !command.iter().any(|arg| arg.contains("{port}")) && args.port == 0 {
        nar.warning(
            format!("the command has no {{port}}; netlab chose port {port}, and your program cannot know it"),
            Some("Put {port} where your program takes its port, or run netlab check --port N with the port your program uses."),
        );
    }

    if exercise.role != Role::TcpClient {
        if let Some(holder) = program::taken(exercise.role, port) {
            return Err(Failure::new(
                format!("port {port} is already in use ({holder}), before your program has started"),
                Some("Stop the program that holds it, or leave out --port: netlab then picks a free port and passes it as {port}."),
            )
            .into());
        }
    }
    let program = Arc::new(Program::start(&argv)?);
    nar.startup(
        "program",
        json!({ "pid": program.pid(), "argv": argv, "port": port }),
        format!(
            "started your program as pid {} (its own process group): {}",
            program.pid(),
            shell_words(&argv)
        ),
    );

    let bound = match exercise.role {
        Role::TcpClient => None,
        role => match program::wait_bound(
            nar,
            &program,
            role,
            port,
            // Told its port: {port} in the command, or --port.
            command.iter().any(|arg| arg.contains("{port}")) || args.port != 0,
            args.startup_timeout(),
        ) {
            Ok(bound) => Some(bound),
            Err(failure) => {
                program.stop(nar);
                show_output(nar, &program, true);
                // Ctrl-C while waiting: main reports the stop itself.
                if stop::requested().is_some() {
                    return Ok(());
                }
                return Err(failure.into());
            }
        },
    };
    let addr = match (&bound, &listener) {
        (Some(bound), _) => bound.probe_addr,
        (None, Some(listener)) => listener.local_addr()?,
        (None, None) => unreachable_addr(),
    };

    let mut session = Session {
        nar,
        exercise,
        target: Target {
            addr,
            program: Arc::clone(&program),
            socket_inode: bound.as_ref().map(|b| b.inode),
            listener,
            root,
            patience: args.patience.max(0.1),
        },
        results: Vec::new(),
        over: None,
    };
    // While the probes run, a look at the program's processes twice a
    // second tells the guard (check/watchdog.rs) of every process it
    // forks, even one that leaves the process group at once.
    let probing = Arc::new(AtomicBool::new(true));
    let lookout = {
        let (program, probing) = (Arc::clone(&program), Arc::clone(&probing));
        std::thread::Builder::new()
            .name("process lookout".into())
            .spawn(move || {
                let mut rounds = 0u32;
                while probing.load(Ordering::Relaxed) {
                    if rounds % 10 == 0 {
                        program.descendants();
                    }
                    rounds += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .ok()
    };
    (exercise.run)(&mut session);
    probing.store(false, Ordering::Relaxed);
    if let Some(lookout) = lookout {
        let _ = lookout.join();
    }
    // Whatever the exercise did not get to is reported as not run.
    for info in exercise.probes {
        if !session.results.iter().any(|r| r.name == info.name) {
            let why = session
                .over
                .clone()
                .unwrap_or_else(|| "not run: a probe it depends on failed".into());
            session.skip(info.name, why);
        }
    }

    let exited_early = exercise.role != Role::TcpClient && program.server_end().is_some();
    program.stop(nar);
    let results = std::mem::take(&mut session.results);
    let count = |status| results.iter().filter(|r| r.status == status).count();
    let failed = count(Status::Fail);
    let traceback = program.last_traceback(OUTPUT_SHOWN);
    let worrying = traceback
        .as_ref()
        .is_some_and(|tb| !tb.is_peer_gone() || failed > 0 || exited_early);
    if let Some(tb) = &traceback {
        report_traceback(nar, tb, failed > 0 || exited_early);
    }
    show_output(nar, &program, failed > 0 || exited_early || worrying);
    drop(workdir);
    let verdict = Verdict {
        exercise: exercise.name,
        lesson: exercise.lesson,
        passed: count(Status::Pass),
        warned: count(Status::Warn),
        failed,
        skipped: count(Status::Skip),
        failed_probes: results
            .iter()
            .filter(|r| r.status == Status::Fail)
            .map(|r| r.name)
            .collect(),
    };
    nar.verdict(&verdict);
    if stop::requested().is_some() {
        return Ok(());
    }
    if failed > 0 || verdict.skipped > 0 {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

/// Why a failed probe's program ended, when it crashed: the hint for a
/// fault the kernel killed it for, or for an exception it raised (with the
/// exception's line). The probe's own hint would send the student to the
/// wrong part of the code. A reset peer's exception is left to the probe
/// (its hint is about exactly that).
fn crash_cause(target: &Target, role: Role) -> Option<(&'static str, Option<String>)> {
    use std::os::unix::process::ExitStatusExt;
    if role == Role::TcpClient {
        // A client that crashed closes its socket as it dies: the probe
        // may see that a moment before the process has ended.
        let until = Instant::now() + Duration::from_millis(300);
        while target.program.server_status().is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let Some(status) = target.program.server_status() else {
        // A server a shell started and reaped: its status is gone, but
        // the shell printed how it ended ("Segmentation fault").
        target.ended()?;
        let (lines, _) = target.program.output_tail(OUTPUT_SHOWN);
        let said = |words: &str| lines.iter().any(|line| line.contains(words));
        let signal = match () {
            _ if said("Segmentation fault") => libc::SIGSEGV,
            _ if said("Aborted") => libc::SIGABRT,
            _ if said("Bus error") => libc::SIGBUS,
            _ if said("Floating point exception") => libc::SIGFPE,
            _ => return None,
        };
        return crash_hint(signal).map(|hint| (hint, None));
    };
    if let Some(signal) = status.signal() {
        return crash_hint(signal).map(|hint| (hint, None));
    }
    if status.success() {
        return None;
    }
    let traceback = target.program.last_traceback(OUTPUT_SHOWN)?;
    if traceback.is_peer_gone() {
        return None;
    }
    Some((HINT_EXCEPTION, traceback.exception))
}

/// The hint for a program that died on the exception whose last line is
/// `line` during probe `probe`; None keeps the probe's own hint, which was
/// written for that cause: a parse that fails on a malformed message
/// (ValueError, IndexError, KeyError, struct.error), a decode() of bytes
/// that are not text in `binary` and `malformed`.
fn exception_hint(line: &str, probe: &str) -> Option<&'static str> {
    let class = line.split(':').next().unwrap_or("").trim();
    match class {
        "ValueError" | "IndexError" | "KeyError" | "struct.error" => None,
        "UnicodeDecodeError" | "UnicodeEncodeError" => {
            (!matches!(probe, "binary" | "malformed")).then_some(HINT_DECODE)
        }
        "OSError" if line.contains("[Errno 9]") => Some(HINT_EBADF),
        _ => Some(HINT_EXCEPTION),
    }
}

const HINT_DECODE: &str = "Your program decoded bytes that are not text (UnicodeDecodeError): what recv() returns is bytes, and a client's bytes need not be UTF-8. Work on the bytes, and send them back as they came.";
const HINT_EBADF: &str = "Your program used a socket after closing it (Bad file descriptor): is a close() indented inside the recv() loop, so that the next recv() meets a closed socket? Close a client's socket once, after its loop.";

const HINT_EXCEPTION: &str = "Your program stopped on an uncaught exception (quoted above; its output below shows the traceback): fix the line the traceback ends at, then check again.";

/// The hint for a program the kernel killed with `signal` for a fault.
fn crash_hint(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGSEGV => "Your program crashed with SIGSEGV, a bad memory access (a NULL or freed pointer, a buffer overrun): run it by hand under gdb (gdb --args ...), or build it with -fsanitize=address, to see the line. What it printed with printf() may be lost (a pipe's buffer dies with it): setvbuf(stdout, NULL, _IOLBF, 0) first thing in main() keeps it.",
        libc::SIGBUS => "Your program crashed with SIGBUS, a bad memory access (often a file mapped with mmap() that shrank): run it by hand under gdb to see the line.",
        libc::SIGABRT => "Your program called abort(): a failed assert(), or the C library found its heap damaged (a double free, a buffer overrun). Run it by hand under gdb and type bt after the crash.",
        libc::SIGFPE => "Your program crashed with SIGFPE: an integer division by zero. Run it by hand under gdb to see the line.",
        libc::SIGILL => "Your program crashed with SIGILL, an illegal instruction (often a function that fell off its end without return, or a damaged stack): run it by hand under gdb.",
        _ => return None,
    })
}

/// How many of the program's last output lines the report shows.
const OUTPUT_SHOWN: usize = 30;

/// Point out a Python traceback in the program's output, by the line that
/// names its exception. A reset or a vanished peer (ConnectionResetError,
/// BrokenPipeError) is what netlab's own probes cause: a server that logs
/// it and goes on serving is told so, not blamed.
fn report_traceback(nar: &Narrator, tb: &program::Traceback, something_failed: bool) {
    let ending = match &tb.exception {
        Some(line) => format!(" ending in `{line}`"),
        None => String::new(),
    };
    let where_ = match tb.shown {
        true => "its output is below",
        false => "it came before the last lines of output shown below: run your program by hand to read it whole",
    };
    if tb.is_peer_gone() && !something_failed {
        nar.info(
            "traceback",
            json!({ "exception": tb.exception, "peer_gone": true }),
            format!(
                "your program printed a Python traceback{ending}: a client reset or closed its connection (netlab's probes do that on purpose), and your server went on serving. A server often catches it (except OSError) and logs one line instead."
            ),
        );
        return;
    }
    let hint = match something_failed {
        true => "Read it from the bottom up: the last line names the exception, the lines above it where it was raised.",
        false => "A traceback in a server is a bug even when the probes pass: a child that crashed, a client that was dropped. Read it from the bottom up.",
    };
    nar.warning(
        format!("your program printed a Python traceback{ending} ({where_})"),
        Some(hint),
    );
}

/// Print the end of the program's output (always with --json; in the
/// human report only when something went wrong).
fn show_output(nar: &Narrator, program: &Program, wanted: bool) {
    let (lines, dropped) = program.output_tail(OUTPUT_SHOWN);
    if wanted || nar.is_json() {
        nar.program_output(ProgramOutput {
            pid: program.pid(),
            lines,
            earlier_lines: dropped,
        });
    }
}

fn unreachable_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The command as a shell would need it typed: an argument with a space,
/// a quote or another special character is put in single quotes.
fn shell_words(argv: &[String]) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,{}".contains(c);
    argv.iter()
        .map(|arg| {
            if !arg.is_empty() && arg.chars().all(plain) {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
