//! A guard for the one case netlab cannot handle itself: netlab killed
//! with SIGKILL (or crashing) while the student's program runs.
//!
//! PR_SET_PDEATHSIG could kill the process netlab started when netlab
//! dies, but it is not inherited across fork(): a server behind `sh -c`,
//! pre-forked workers and a daemon would live on and keep the port (it is
//! only the fallback, when no guard starts). So `check` starts a second
//! copy of netlab (this module's `serve`, chosen by an environment
//! variable, not a subcommand) in a process group of its own. netlab
//! writes to it, through a pipe, the program's process group and each
//! process of the program it sees, with its start time. At a normal end
//! netlab writes `done` and reaps the guard. If the pipe reaches end of
//! file without `done`, netlab has died: the guard reads /proc and kills
//! the process group, every process it was told of that still has the
//! same start time (a pid can be reused), and every process below those
//! (a child forked since netlab last looked, even one that left the
//! group), then exits; init reaps it.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use nix::sys::signal::{kill, killpg, signal, SigHandler, Signal};
use nix::unistd::Pid;

use crate::kernel::process::{read_stat, ProcStat};

/// The environment variable that makes netlab run as the guard.
pub const ENV: &str = "NETLAB_INTERNAL_WATCHDOG";

/// netlab's end of the guard.
pub struct Watchdog {
    child: Mutex<Option<(Child, ChildStdin)>>,
    /// The processes already reported, by pid.
    told: Mutex<HashSet<i32>>,
    pid: i32,
}

impl Watchdog {
    /// Start the guard (before the program: `group` then names it). None
    /// if it cannot be started: the check then runs without it.
    pub fn start() -> Option<Watchdog> {
        let mut child = Command::new("/proc/self/exe")
            .env(ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: Ctrl-C in the terminal is for netlab, which
            // then stops the program and tells the guard it is done.
            .process_group(0)
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let pid = child.id() as i32;
        Some(Watchdog {
            child: Mutex::new(Some((child, stdin))),
            told: Mutex::new(HashSet::new()),
            pid,
        })
    }

    /// The program's process group (its pid: it runs in a group of its own).
    pub fn group(&self, pgid: i32) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, stdin)) = child.as_mut() {
            let _ = writeln!(stdin, "group {pgid}");
        }
    }

    /// The guard's pid (a child of netlab that is not the program's).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Tell the guard of the program's processes it has not heard of.
    pub fn watch(&self, procs: &[ProcStat]) {
        let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let Some((_, stdin)) = child.as_mut() else {
            return;
        };
        for stat in procs.iter().filter(|stat| stat.state != 'Z') {
            if told.insert(stat.pid) {
                let _ = writeln!(stdin, "pid {} {}", stat.pid, stat.start_ticks);
            }
        }
    }

    /// The check is over and the program stopped: tell the guard, and
    /// reap it. Safe to call twice.
    pub fn finish(&self) {
        let taken = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((mut child, mut stdin)) = taken {
            let _ = writeln!(stdin, "done");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The guard itself: read what netlab tells until the pipe closes, then
/// kill what is left unless netlab said `done`. Returns the exit code.
pub fn serve() -> u8 {
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let mut group = None;
    let mut procs: Vec<(i32, u64)> = Vec::new();
    let mut done = false;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["group", pgid] => group = pgid.parse::<i32>().ok(),
            ["pid", pid, start] => {
                if let (Ok(pid), Ok(start)) = (pid.parse(), start.parse()) {
                    procs.push((pid, start));
                }
            }
            ["done"] => done = true,
            _ => {}
        }
    }
    if done {
        return 0;
    }
    // netlab is gone: stop the program as it would have (SIGKILL, as
    // there is nobody left to wait for a SIGTERM's grace). First the whole
    // tree below what is known, read from /proc while the parents still
    // live: a child forked since netlab last looked, even one that left
    // the group, is below one of them.
    let table = process_table();
    let mut targets: Vec<i32> = procs
        .iter()
        .filter(|&&(pid, start)| {
            table
                .iter()
                .any(|stat| stat.pid == pid && stat.start_ticks == start)
        })
        .map(|&(pid, _)| pid)
        .collect();
    if let Some(pgid) = group {
        targets.extend(
            table
                .iter()
                .filter(|stat| stat.pgrp == pgid)
                .map(|stat| stat.pid),
        );
    }
    let mut at = 0;
    while at < targets.len() {
        let parent = targets[at];
        for stat in table.iter().filter(|stat| stat.ppid == parent) {
            if !targets.contains(&stat.pid) {
                targets.push(stat.pid);
            }
        }
        at += 1;
    }
    if let Some(pgid) = group.filter(|&pgid| pgid > 1) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    let me = std::process::id() as i32;
    for pid in targets.into_iter().filter(|&pid| pid > 1 && pid != me) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    0
}

/// Every process on the machine, read from /proc now.
fn process_table() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| read_stat(pid).ok())
        .collect()
}
