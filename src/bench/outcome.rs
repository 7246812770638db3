//! What one run measured, and the two CPU clocks it reads: the server's
//! (/proc/PID/stat) and our own (getrusage).

use std::collections::BTreeMap;

use super::histogram::Histogram;
use super::server::ServerProcess;

/// The server's CPU time and memory over the timed run, or why not.
#[derive(Debug, Clone)]
pub enum ServerUsage {
    Measured {
        pids: Vec<i32>,
        cpu_seconds: f64,
        rss_kib: Option<u64>,
    },
    Unavailable(String),
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Outcome {
    pub round_trips: u64,
    pub seconds: f64,
    pub latency: Histogram,
    /// Failures by kind: "mismatch", "ECONNRESET", "closed by server", ...
    pub errors: BTreeMap<String, u64>,
    /// Active connections that were opened.
    pub active_open: usize,
    /// Active connections still open at the end that never completed a
    /// round trip (an iterative server leaves them waiting).
    pub stalled: usize,
    /// Idle connections that were opened, and how many of them were lost
    /// (closed, reset or silent in the idle check).
    pub idle_open: usize,
    pub idle_lost: usize,
    /// This process's own CPU time during the timed run.
    pub client_cpu_seconds: f64,
    pub server: ServerUsage,
    /// A stop (Ctrl-C) cut the run short.
    pub interrupted: bool,
}

impl Outcome {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.idle_lost as u64
    }

    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.round_trips as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Server CPU time per round trip, in microseconds.
    pub fn server_cpu_us(&self) -> Option<f64> {
        match &self.server {
            ServerUsage::Measured { cpu_seconds, .. } if self.round_trips > 0 => {
                Some(cpu_seconds * 1e6 / self.round_trips as f64)
            }
            _ => None,
        }
    }

    pub fn client_cpu_us(&self) -> Option<f64> {
        (self.round_trips > 0).then(|| self.client_cpu_seconds * 1e6 / self.round_trips as f64)
    }

    pub fn server_rss_kib(&self) -> Option<u64> {
        match &self.server {
            ServerUsage::Measured { rss_kib, .. } => *rss_kib,
            ServerUsage::Unavailable(_) => None,
        }
    }
}

/// The server's CPU time over the run (the difference of two readings of
/// /proc/PID/stat) and its memory now, while every connection is open.
pub fn measure_server(
    server: Option<&ServerProcess>,
    before: Option<std::io::Result<u64>>,
) -> ServerUsage {
    let Some(server) = server else {
        return ServerUsage::Unavailable("the server's process was not found".into());
    };
    let ticks = match (before, server.cpu_ticks()) {
        (Some(Ok(before)), Ok(after)) => after.saturating_sub(before),
        (_, Err(err)) | (Some(Err(err)), _) => {
            return ServerUsage::Unavailable(format!("/proc/PID/stat could not be read: {err}"))
        }
        (None, _) => return ServerUsage::Unavailable("no first reading".into()),
    };
    ServerUsage::Measured {
        pids: server.pids.clone(),
        cpu_seconds: ticks as f64 / crate::kernel::clock_ticks_per_second() as f64,
        rss_kib: server.rss_kib().ok(),
    }
}

/// getrusage(RUSAGE_SELF): this process's user + system CPU time.
pub fn own_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |usage| {
        let (user, system) = (usage.user_time(), usage.system_time());
        let seconds = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        seconds(user) + seconds(system)
    })
}
