//! Stopping the program: SIGTERM to its process group, SIGKILL after a
//! grace period, and whatever it forked found, reported, killed and reaped.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::json;

use super::{describe, holds_socket, lock, process_table, Program};
use crate::kernel::process::{state_name, ProcStat};
use crate::narrate::Narrator;

/// How long the program has to end after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(1500);

impl Program {
    /// Stop the program: SIGTERM to its process group (and to the server,
    /// should it have left the group), SIGKILL after a grace period, then
    /// every process it forked is killed by pid and reaped. Reports what
    /// it did. Safe to call twice.
    pub fn stop(&self, nar: &Narrator) {
        let netlab = std::process::id() as i32;
        let server = self.server_pid();
        self.stopping.store(true, Ordering::Relaxed);
        // The server and the processes between it and the program (a
        // wrapper such as `sh -c`) are the program itself, not leftovers;
        // nor are zombies re-parented to netlab, which netlab reaps.
        let everything = self.descendants();
        let mut chain = vec![server];
        while let Some(parent) = everything
            .iter()
            .find(|stat| Some(&stat.pid) == chain.last())
            .map(|stat| stat.ppid)
        {
            chain.push(parent);
        }
        // A live process that holds the listening socket can accept()
        // clients on it: a worker of a pre-forking server, part of the
        // server too.
        let inodes = self.listener_inodes();
        let (workers, others): (Vec<ProcStat>, Vec<ProcStat>) = everything
            .iter()
            .filter(|stat| !chain.contains(&stat.pid))
            .filter(|stat| !(stat.state == 'Z' && stat.ppid == netlab))
            .cloned()
            .partition(|stat| {
                stat.state != 'Z'
                    && inodes
                        .iter()
                        .any(|&inode| holds_socket(stat.pid, inode).is_some())
            });
        // What the server forked and left is the student's to fix (a child
        // that did not exit, a zombie not reaped). The rest (a wrapper's
        // `tee`, its `sleep` before the server started, anything before
        // the server was found) is only named.
        let found = !inodes.is_empty();
        let under_server = subtree(&everything, server);
        let (left_behind, also): (Vec<ProcStat>, Vec<ProcStat>) = others
            .into_iter()
            .partition(|stat| found && under_server.contains(&stat.pid));
        let server_was_alive = self.server_alive();

        let running = self.poll_status().is_none() || self.server_alive();
        let mut how = match self.poll_status() {
            Some(status) if !self.server_alive() => {
                format!("it had already ended ({})", describe_end(status))
            }
            _ => String::new(),
        };
        if running {
            let started = Instant::now();
            // The group id is the program's pid (process_group(0)).
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGTERM);
            if server != self.pid && server_was_alive {
                signal(server, Signal::SIGTERM);
            }
            let ended = || self.poll_status().is_some() && !self.server_alive();
            while !ended() && started.elapsed() < TERM_GRACE {
                std::thread::sleep(Duration::from_millis(10));
            }
            how = if ended() {
                let after = started.elapsed().as_secs_f64();
                match self.poll_status() {
                    Some(status) if server == self.pid || !server_was_alive => format!(
                        "sent SIGTERM to its process group; it ended after {after:.2} s ({})",
                        describe_end(status)
                    ),
                    _ => format!(
                        "sent SIGTERM to its process group and to the server (pid {server}); the server ended after {after:.2} s"
                    ),
                }
            } else {
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                signal(server, Signal::SIGKILL);
                if let Ok(status) = lock(&self.child).wait() {
                    *lock(&self.status) = Some(status);
                }
                format!(
                    "it did not end within {:.1} s of SIGTERM, so netlab sent SIGKILL",
                    TERM_GRACE.as_secs_f64()
                )
            };
        }
        // Whatever it forked: the group got the signals, but a process can
        // leave the group (setsid), so each one is also killed by pid. They
        // are all ours: started by the program netlab started. Orphans
        // re-parented to netlab (the subreaper) are reaped here; a round
        // catches any that were re-parented while the last one ran.
        let mut reaped = 0;
        for _round in 0..3 {
            let remaining = self.descendants();
            if remaining.is_empty() {
                break;
            }
            for stat in remaining.iter().filter(|stat| stat.state != 'Z') {
                signal(stat.pid, Signal::SIGKILL);
            }
            reaped += self.reap_orphans(Duration::from_millis(700));
        }
        // Everything that could write to the output pipe has ended: give
        // the reading thread a moment to take in the last lines (the ones
        // that say why a program ended early).
        self.wait_for_output(Duration::from_millis(500));
        // Nothing of the program runs any more: the guard can go.
        if let Some(watchdog) = &self.watchdog {
            watchdog.finish();
        }
        self.report_handoffs(nar, None);
        let with_workers = match workers.len() {
            0 => String::new(),
            n => format!(" and its {n} worker process(es), which held the listening socket"),
        };
        let also_text = match also.len() {
            0 => String::new(),
            _ => format!("; also stopped: {}", listed(&also)),
        };
        nar.startup(
            "stopped",
            json!({ "pid": self.pid, "server_pid": server, "status": self.exit_description(),
                    "workers": workers.iter().map(|stat| stat.pid).collect::<Vec<_>>(),
                    "also": also.iter().map(|stat| stat.pid).collect::<Vec<_>>() }),
            format!(
                "stopped your program (pid {}){with_workers}: {how}{also_text}",
                self.pid
            ),
        );
        if !left_behind.is_empty() {
            let reaped = match reaped {
                0 => String::new(),
                _ => " and reaped them".to_string(),
            };
            nar.warning(
                format!(
                    "the server had {} process(es) under it when it was stopped: {}; netlab killed what still ran{reaped}",
                    left_behind.len(),
                    listed(&left_behind),
                ),
                Some("A child that has served its client should exit, and its parent should reap it (waitpid)."),
            );
        }
    }

    /// Reap the program's processes that were re-parented to netlab (the
    /// subreaper), waiting up to `limit` for the ones just killed. Not the
    /// program itself (std's `Child` reaps it) nor the guard. Returns how
    /// many were reaped.
    fn reap_orphans(&self, limit: Duration) -> usize {
        let netlab = std::process::id() as i32;
        let started = Instant::now();
        let mut reaped = 0;
        loop {
            let orphans: Vec<i32> = process_table()
                .remove(&netlab)
                .unwrap_or_default()
                .into_iter()
                .map(|stat| stat.pid)
                .filter(|&pid| pid != self.pid && Some(pid) != self.watchdog_pid())
                .collect();
            if orphans.is_empty() {
                return reaped;
            }
            for pid in orphans {
                match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => {}
                    Ok(_) => reaped += 1,
                }
            }
            if started.elapsed() >= limit {
                return reaped;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The pids of `root` and of every process below it in `table`.
fn subtree(table: &[ProcStat], root: i32) -> Vec<i32> {
    let mut found = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for stat in table {
            if found.contains(&stat.ppid) && !found.contains(&stat.pid) {
                found.push(stat.pid);
                grew = true;
            }
        }
    }
    found
}

/// "812 python3 (zombie), 813 tee (sleeping)", the first 8 and a count.
fn listed(procs: &[ProcStat]) -> String {
    let mut list: Vec<String> = procs
        .iter()
        .take(8)
        .map(|stat| format!("{} {} ({})", stat.pid, stat.comm, state_name(stat.state)))
        .collect();
    if procs.len() > 8 {
        list.push(format!("and {} more", procs.len() - 8));
    }
    list.join(", ")
}

/// `describe`, for the end netlab itself caused: SIGTERM is how netlab
/// stops a server, so it is named as such rather than as a fault.
fn describe_end(status: ExitStatus) -> String {
    match status.signal() {
        Some(libc::SIGTERM) => "on SIGTERM, as a server should".to_string(),
        _ => describe(status),
    }
}

/// Send `sig` to one process of the program. Never to netlab itself, nor
/// to init or to "every process" (pid 1, 0, -1): a pid read from /proc
/// that is one of those is a mistake, not a target.
fn signal(pid: i32, sig: Signal) {
    if pid > 1 && pid != std::process::id() as i32 {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}
