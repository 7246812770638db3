//! `netlab bench echo`: load one echo server and report what it did.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::limits;
use super::load::{self, Load};
use super::outcome::ServerUsage;
use super::{report, server};
use crate::error::Failure;
use crate::narrate::Narrator;

/// The flags of `netlab bench echo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The echo server to load, as HOST:PORT (127.0.0.1:8888, [::1]:8888,
    /// localhost:8888). Only loopback addresses, unless --allow-remote.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: String,

    /// Active connections: each sends a message, waits for the whole echo,
    /// checks it, and sends the next.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub conns: u32,

    /// Idle connections, opened first and then left alone. A select() or
    /// poll() server pays for each of them on every call; epoll does not.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub idle: u32,

    /// How many seconds to measure.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_run_seconds)]
    pub secs: f64,

    /// Bytes per message (printable letters ending in a newline).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub size: u32,

    /// Allow an address that is not on this machine's loopback. Only load
    /// machines you are responsible for.
    #[arg(long)]
    pub allow_remote: bool,
}

/// A run length: more than 0 seconds, at most a day.
pub fn parse_run_seconds(text: &str) -> Result<f64, String> {
    match crate::cli::parse_seconds(text) {
        Ok(secs) if secs > 0.0 => Ok(secs),
        _ => Err(format!(
            "`{text}` is not a number of seconds above 0 (at most 86400)"
        )),
    }
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "bench echo",
        "io-multiplexing",
        "A load generator: many connections echo messages through one server; every byte is checked.",
    );
    let addr = super::parse_target(&args.addr, args.allow_remote)?;
    let load = Load {
        addr,
        active: args.conns as usize,
        idle: args.idle as usize,
        duration: Duration::from_secs_f64(args.secs),
        size: args.size as usize,
    };
    limits::check_memory(load.active, load.size)?;
    limits::raise_fd_limit(nar, (load.active + load.idle) as u64)?;

    // Find the server's process before we open thousands of sockets.
    let found = if super::is_loopback(addr.ip()) {
        server::find(addr)
    } else {
        Err("The server runs on another machine, out of reach of our /proc.")
    };
    match &found {
        Ok(process) => {
            let names = process.names();
            let described: Vec<String> = process
                .pids
                .iter()
                .zip(&names)
                .map(|(pid, name)| format!("pid {pid} ({name})"))
                .collect();
            nar.info(
                "server_process",
                json!({ "pids": process.pids, "names": names }),
                format!("the server is {}, found through /proc by its listening port", described.join(", ")),
            );
        }
        Err(why) => nar.warning(
            format!("the server's process was not found, so its CPU and memory will not be reported: {why}"),
            None,
        ),
    }
    nar.info(
        "load",
        json!({
            "addr": addr.to_string(), "conns": load.active, "idle": load.idle,
            "secs": args.secs, "size": load.size,
        }),
        format!(
            "loading {addr}: {} active and {} idle connections, {}-byte messages, for {} s",
            load.active, load.idle, load.size, args.secs
        ),
    );

    let mut outcome = load::run(nar, &load, found.as_ref().ok())?;
    if let Err(why) = found {
        outcome.server = ServerUsage::Unavailable(why.to_string());
    }
    report::announce(nar, &outcome);
    if outcome.interrupted {
        return Ok(());
    }
    if outcome.active_open == 0 {
        return Err(Failure::with_hint(
            format!("no connection to {addr} could be opened: {}", report::describe_errors(&outcome)),
            "is the server running, on this port? A server prints the port it listens on when it starts",
        )
        .into());
    }
    if outcome.stalled > 0 {
        nar.warning(
            format!("{} of {} active connections never got an echo back", outcome.stalled, outcome.active_open),
            Some("a server that serves one client at a time (tcp-server) leaves the others waiting: that is the problem select, poll and epoll solve"),
        );
    }
    let errors = outcome.error_count();
    if errors > 0 {
        return Err(Failure::new(
            format!("the load found errors: {}", report::describe_errors(&outcome)),
            Some("an echo must return exactly the bytes that were sent, on the same connection; \"echo mismatch\" means it did not"),
        )
        .into());
    }
    Ok(())
}
