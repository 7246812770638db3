//! A guard for the one case netlab cannot handle itself: netlab killed
//! with SIGKILL (or crashing) while the student's program runs.
//!
//! PR_SET_PDEATHSIG kills the process netlab started when netlab dies, but
//! it is not inherited across fork(): a server behind `sh -c`, pre-forked
//! workers and a daemon would live on and keep the port. So `check` starts
//! a second copy of netlab (this module's `serve`, chosen by an
//! environment variable, not a subcommand) in a process group of its own.
//! netlab writes to it, through a pipe, the program's process group and
//! each process of the program it sees, with its start time. At a normal
//! end netlab writes `done` and reaps the guard. If the pipe reaches end of
//! file without `done`, netlab has died: the guard kills the process group
//! and every process it was told of that still has the same start time (a
//! pid can be reused), then exits; init reaps it.

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
    /// Start the guard for the program whose process group is `pgid`.
    /// None if it cannot be started: the check then runs without it.
    pub fn start(pgid: i32) -> Option<Watchdog> {
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
        let mut stdin = child.stdin.take()?;
        writeln!(stdin, "group {pgid}").ok()?;
        let pid = child.id() as i32;
        Some(Watchdog {
            child: Mutex::new(Some((child, stdin))),
            told: Mutex::new(HashSet::new()),
            pid,
        })
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
    // there is nobody left to wait for a SIGTERM's grace).
    if let Some(pgid) = group.filter(|&pgid| pgid > 1) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    for (pid, start) in procs {
        let same = read_stat(pid).is_ok_and(|stat| stat.start_ticks == start);
        if pid > 1 && same {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    0
}
