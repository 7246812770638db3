//! `netlab bench mux`: select, poll and epoll under the same load.
//!
//! Each server is started as a child process of this same binary
//! (`netlab --quiet --json select-demo --host 127.0.0.1 --port 0`), read
//! until it announces its port, loaded, then stopped with SIGTERM and
//! reaped, also when the run is interrupted. A fresh server for every
//! point keeps the measurements independent.
//!
//! What the chart shows is the chapter's lesson: select() and poll() hand
//! the kernel the whole list of descriptors on every call, so each idle
//! connection costs them something on every round trip of every active
//! one; epoll keeps the list in the kernel and returns only the ready ones.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::echo::parse_run_seconds;
use super::limits;
use super::load::{self, Load};
use super::outcome::Outcome;
use super::report;
use super::server::ServerProcess;
use super::svg;
use crate::error::Failure;
use crate::narrate::Narrator;
use crate::stop;

/// select() can only watch descriptors below FD_SETSIZE.
pub const FD_SETSIZE: usize = 1024;
/// Descriptors a server holds besides its connections (stdio, the
/// listening socket, the stop pipe...), kept free below FD_SETSIZE.
const SERVER_OWN_FDS: usize = 16;
/// How long a server may take to print its port.
const START_PATIENCE: Duration = Duration::from_secs(10);

/// The servers, in the order they are run.
pub const SERVERS: [&str; 3] = ["select-demo", "poll-demo", "epoll-demo"];

/// The flags of `netlab bench mux`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The numbers of idle connections to measure at, comma-separated.
    #[arg(long, value_name = "COUNTS", value_delimiter = ',', default_value = "0,100,1000,5000", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub idle: Vec<u32>,

    /// Seconds of load for each server at each number of idle connections.
    #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = parse_run_seconds)]
    pub secs: f64,

    /// Active connections, the same for every run.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub conns: u32,

    /// Bytes per message.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub size: u32,

    /// Also write the results as CSV to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Also write the chart as an SVG image to this file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// One server at one number of idle connections.
#[derive(Debug)]
pub struct Point {
    pub server: &'static str,
    pub idle: u32,
    pub result: PointResult,
}

#[derive(Debug)]
pub enum PointResult {
    Measured(Box<Outcome>),
    /// select() cannot watch that many descriptors.
    NotPossible,
    /// The server did not start, or the run failed; why.
    Failed(String),
    /// Ctrl-C came first.
    Skipped,
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "bench mux",
        "io-multiplexing",
        "select-demo, poll-demo and epoll-demo under the same load, with more and more idle connections.",
    );
    let mut idle_counts = args.idle.clone();
    idle_counts.sort_unstable();
    idle_counts.dedup();
    let most_idle = idle_counts.last().copied().unwrap_or(0) as u64;
    limits::check_memory(args.conns as usize, args.size as usize)?;
    limits::raise_fd_limit(nar, u64::from(args.conns) + most_idle)?;
    let exe = std::env::current_exe().context("cannot find this program's own path")?;

    let mut points = Vec::new();
    for server in SERVERS {
        // A server that does not start is not tried again at every count.
        let mut did_not_start: Option<String> = None;
        for &idle in &idle_counts {
            let result = if stop::requested().is_some() {
                PointResult::Skipped
            } else if let Some(why) = &did_not_start {
                PointResult::Failed(why.clone())
            } else if server == "select-demo" && !select_can_hold(args.conns, idle) {
                nar.info(
                    "not_possible",
                    json!({ "server": server, "idle": idle }),
                    format!("{server} with {idle} idle connections: not possible, its descriptors would pass FD_SETSIZE ({FD_SETSIZE})"),
                );
                PointResult::NotPossible
            } else {
                match measure(nar, &exe, server, idle, args) {
                    Ok(result) => result,
                    Err(why) => {
                        nar.warning(format!("{server} did not start: {why}"), None);
                        did_not_start = Some(why.clone());
                        PointResult::Failed(why)
                    }
                }
            };
            points.push(Point {
                server,
                idle,
                result,
            });
        }
    }

    report::mux_table(nar, &points);
    report::mux_chart(nar, &points);
    if let Some(path) = &args.csv {
        std::fs::write(path, report::mux_csv(&points))
            .with_context(|| format!("cannot write {}", path.display()))?;
        nar.startup(
            "csv",
            json!(path.display().to_string()),
            format!("results written to {}", path.display()),
        );
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, svg::mux_svg(&points, args.conns))
            .with_context(|| format!("cannot write {}", path.display()))?;
        nar.startup(
            "svg",
            json!(path.display().to_string()),
            format!("chart written to {}", path.display()),
        );
    }

    let mut failed: Vec<String> = points
        .iter()
        .filter_map(|point| match &point.result {
            PointResult::Failed(why) => Some(format!("{}: {why}", point.server)),
            PointResult::Measured(outcome) if outcome.error_count() > 0 => Some(format!(
                "{} at {} idle: errors {}",
                point.server,
                point.idle,
                report::describe_errors(outcome)
            )),
            _ => None,
        })
        .collect();
    failed.dedup();
    if !failed.is_empty() && stop::requested().is_none() {
        return Err(Failure::new(format!("some runs failed: {}", failed.join("; ")), None).into());
    }
    Ok(())
}

/// Can select-demo watch every connection of this run? Its connection
/// descriptors must all stay below FD_SETSIZE.
pub fn select_can_hold(conns: u32, idle: u32) -> bool {
    conns as usize + idle as usize + SERVER_OWN_FDS <= FD_SETSIZE
}

/// Start one server, load it, stop it. Err: the server did not start.
fn measure(
    nar: &Narrator,
    exe: &std::path::Path,
    server: &'static str,
    idle: u32,
    args: &Args,
) -> Result<PointResult, String> {
    nar.info(
        "run",
        json!({ "server": server, "idle": idle, "conns": args.conns, "secs": args.secs }),
        format!(
            "{server}: {} active and {idle} idle connections for {} s",
            args.conns, args.secs
        ),
    );
    let mut child = ServerChild::start(exe, server)?;
    let addr = child.wait_for_port()?;
    nar.info(
        "server_started",
        json!({ "server": server, "pid": child.pid(), "addr": addr.to_string() }),
        format!(
            "{server} started as pid {}, listening on {addr}",
            child.pid()
        ),
    );
    let load = Load {
        addr,
        active: args.conns as usize,
        idle: idle as usize,
        duration: Duration::from_secs_f64(args.secs),
        size: args.size as usize,
    };
    let process = ServerProcess {
        pids: vec![child.pid()],
    };
    let outcome = load::run(nar, &load, Some(&process));
    let warnings = child.stop();
    if warnings > 0 {
        nar.warning(
            format!("{server} printed {warnings} warnings during the run"),
            None,
        );
    }
    Ok(match outcome {
        Ok(outcome) if outcome.interrupted => PointResult::Skipped,
        Ok(outcome) => PointResult::Measured(Box::new(outcome)),
        Err(err) => PointResult::Failed(format!("{err:#}")),
    })
}

/// A server running as our child, with threads that read its output.
struct ServerChild {
    name: &'static str,
    child: Option<Child>,
    /// Its JSON events, one per line.
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl ServerChild {
    fn start(exe: &std::path::Path, name: &'static str) -> Result<ServerChild, String> {
        let mut child = Command::new(exe)
            .args([
                "--quiet",
                "--json",
                name,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start {name}: {err}"))?;
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })
        });
        Ok(ServerChild {
            name,
            child: Some(child),
            lines,
            stderr,
        })
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(-1, |child| child.id() as i32)
    }

    /// Read events until the `listening` one, which says the port.
    fn wait_for_port(&mut self) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if stop::requested().is_some() {
                return Err("interrupted".into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not say where it listens within {} s",
                    self.name,
                    START_PATIENCE.as_secs()
                ));
            }
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let Ok(event) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if event["event"] == "info" && event["key"] == "listening" {
                        if let Some(addr) =
                            event["value"]["addr"].as_str().and_then(|a| a.parse().ok())
                        {
                            return Ok(addr);
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.reap();
                    let stderr = self
                        .stderr
                        .take()
                        .and_then(|h| h.join().ok())
                        .unwrap_or_default();
                    let said = stderr
                        .lines()
                        .next()
                        .unwrap_or("no message")
                        .trim()
                        .to_string();
                    return Err(format!("{} exited before listening: {said}", self.name));
                }
            }
        }
    }

    /// SIGTERM, then wait for the exit (SIGKILL after 5 s). Returns how
    /// many warnings the server printed.
    fn stop(&mut self) -> usize {
        self.reap();
        self.lines
            .try_iter()
            .filter(|line| {
                serde_json::from_str::<Value>(line).is_ok_and(|event| event["event"] == "warning")
            })
            .count()
    }

    /// Stop the child by its pid and wait for it, so no zombie is left.
    fn reap(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        if let Ok(None) = child.try_wait() {
            let _ = kill(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for ServerChild {
    /// Whatever happened (an error, a panic), the child is stopped and reaped.
    fn drop(&mut self) {
        self.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_stops_at_fd_setsize() {
        assert!(select_can_hold(50, 0));
        assert!(select_can_hold(50, 900));
        assert!(!select_can_hold(50, 1000));
        assert!(!select_can_hold(50, 5000));
    }
}
