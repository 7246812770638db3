//! # netlab check: run a student's own program and test it
//!
//! `netlab check tcp-echo -- python3 echo.py {port}` starts the student's
//! program, waits until the kernel shows it listening, runs one exercise's
//! probes against it on loopback, stops it, and prints a report: each probe
//! passed, failed or warned, what was expected and what happened, a hint
//! for each failure, and the lesson to read. Some mistakes no output can
//! show (a socket left in CLOSE_WAIT, a zombie child, descriptors that grow
//! with each client, a listening socket inherited by children); the probes
//! read them from the kernel (`/proc/net/tcp`, `/proc/PID/stat`,
//! `/proc/PID/fd`), as every netlab demo does.
//!
//! How a check runs (`session.rs`, `program/`):
//!
//! 1. The checker picks a free port (or `--port`) and replaces `{port}`,
//!    `{host}` (127.0.0.1) and `{root}` (http-static's directory) in the
//!    command.
//! 2. The program starts in its own process group, with stdin from
//!    /dev/null and its output captured (the report shows the end of it).
//!    netlab becomes a child subreaper, so anything the program forks and
//!    leaves behind is re-parented to netlab and can be reaped.
//! 3. The checker polls `/proc/net/tcp` (or `/proc/net/udp`) until the port
//!    is bound, and names the process and descriptor that hold it.
//! 4. Each probe runs in its own thread with its own deadline: a probe that
//!    hangs is reported as timed out, and the run goes on.
//! 5. The program is stopped: SIGTERM to its process group, SIGKILL after a
//!    grace period, and every process it forked is reported, killed and
//!    reaped. Ctrl-C during a check does the same.
//!
//! The probes use Rust's `std::net` sockets with timeouts, not narrated
//! nix calls: here the system calls being taught are the student's, and
//! the checker's own are only a means of testing them.
//!
//! Try it:
//!
//! ```text
//! netlab check --list
//! netlab check tcp-echo -- python3 echo_server.py {port}
//! netlab check tcp-client -- python3 client.py {host} {port}
//! ```
//!
//! Lessons: each exercise names its own (`netlab check --list`).

mod chatroom;
mod framing;
mod http_static;
mod net;
mod program;
mod session;
mod tcp_client;
mod tcp_concurrent;
mod tcp_echo;
mod udp_echo;
pub mod watchdog;

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use serde_json::json;

use crate::cli::parse_seconds;
use crate::narrate::Narrator;

pub use session::Exercise;

/// The exercises, in the order `--list` shows them.
pub const EXERCISES: &[&Exercise] = &[
    &tcp_echo::EXERCISE,
    &tcp_concurrent::EXERCISE,
    &tcp_client::EXERCISE,
    &udp_echo::EXERCISE,
    &framing::EXERCISE,
    &http_static::EXERCISE,
    &chatroom::EXERCISE,
];

/// The exercise names, as the command line takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExerciseName {
    /// A TCP echo server.
    TcpEcho,
    /// A TCP echo server that serves many clients at once.
    TcpConcurrent,
    /// A TCP client (netlab is the server).
    TcpClient,
    /// A UDP echo server.
    UdpEcho,
    /// A TCP server for length-prefixed messages.
    Framing,
    /// An HTTP server for static files.
    HttpStatic,
    /// The chatroom's UDP server.
    ChatroomServer,
}

impl ExerciseName {
    pub fn exercise(self) -> &'static Exercise {
        let name = self
            .to_possible_value()
            .map(|value| value.get_name().to_string())
            .unwrap_or_default();
        EXERCISES
            .iter()
            .copied()
            .find(|exercise| exercise.name == name)
            .unwrap_or(&tcp_echo::EXERCISE)
    }
}

/// Check your own server or client: netlab starts it, probes it on
/// loopback, reads the kernel's view of it, and reports.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The exercise to check (`netlab check --list` describes them).
    #[arg(value_enum, required_unless_present = "list")]
    pub exercise: Option<ExerciseName>,

    /// List the exercises with a line each, then exit.
    #[arg(long)]
    pub list: bool,

    /// The port to give the program as {port}. 0 (the default) picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// How long the program may take to start listening, in seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds, value_name = "SECONDS")]
    pub startup_timeout: f64,

    /// Slow machine? Multiply every probe's time limit by this factor.
    #[arg(long, default_value = "1", value_parser = parse_seconds, value_name = "FACTOR")]
    pub patience: f64,

    /// The command that starts your program, after `--`. `{port}`, `{host}`
    /// and `{root}` in it are replaced.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl Args {
    /// What clap cannot say: a command is needed unless --list; http-static
    /// needs `{root}` in it; `--patience` has a floor. A usage error (exit 2).
    pub fn check(&self) -> Result<(), String> {
        if self.list {
            return Ok(());
        }
        let Some(name) = self.exercise else {
            return Ok(());
        };
        let exercise = name.exercise();
        if self.command.is_empty() {
            return Err(format!(
                "give the command that starts your program after `--`, e.g. netlab check {} -- {}",
                exercise.name, exercise.example
            ));
        }
        if exercise.prepare.is_some() && !self.command.iter().any(|arg| arg.contains("{root}")) {
            return Err(format!(
                "{} needs {{root}} in the command: the directory your server serves, which netlab creates and fills (e.g. netlab check {} -- {})",
                exercise.name, exercise.name, exercise.example
            ));
        }
        if self.patience < 0.1 {
            return Err("--patience must be at least 0.1 (1 is the normal time limit)".into());
        }
        Ok(())
    }

    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.startup_timeout)
    }
}

/// `netlab check --list`: every exercise, its one-line description, the
/// lesson that explains it and an example command.
pub fn list(nar: &Narrator) -> Result<()> {
    if nar.is_json() {
        for exercise in EXERCISES {
            nar.startup(
                "exercise",
                json!({
                    "name": exercise.name,
                    "summary": exercise.summary,
                    "lesson": exercise.lesson,
                    "example": exercise.example,
                    "probes": exercise.probes.iter().map(|p| json!({"name": p.name, "checks": p.checks})).collect::<Vec<_>>(),
                }),
                exercise.summary,
            );
        }
        return Ok(());
    }
    let mut out = String::from("Exercises for `netlab check EXERCISE -- COMMAND`:\n\n");
    for exercise in EXERCISES {
        let probes: Vec<&str> = exercise.probes.iter().map(|p| p.name).collect();
        out.push_str(&format!(
            "  {:<16} {}\n  {:<16} probes: {}\n  {:<16} lesson: netlab lesson {}\n  {:<16} e.g. netlab check {} -- {}\n\n",
            exercise.name,
            exercise.summary,
            "",
            probes.join(", "),
            "",
            exercise.lesson,
            "",
            exercise.name,
            exercise.example
        ));
    }
    out.push_str("In the command, {port} becomes the port netlab chose, {host} becomes 127.0.0.1,\nand {root} (http-static) the directory of files to serve.\n");
    // `netlab check --list | head` must not panic on the closed pipe.
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

/// `netlab check EXERCISE -- COMMAND`.
pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    if args.list {
        return list(nar);
    }
    let Some(name) = args.exercise else {
        return list(nar);
    };
    session::run(nar, name.exercise(), args)
}
