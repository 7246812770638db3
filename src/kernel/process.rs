//! A process's life as the kernel sees it: `/proc/PID/stat`.
//!
//! `/proc/PID/stat` is one line of space-separated fields that the kernel
//! writes fresh on every read (`do_task_stat()` in fs/proc/array.c; the
//! field list is in `man 5 proc`). netlab reads it to show that a
//! `fork()`ed child really exists, that a server blocked in `accept()` is
//! sleeping (`S`), and that a child which exited but was not yet
//! `wait()`ed for is a zombie (`Z`).
//!
//! Two kernel facts shape this file:
//!
//! * Field 2, the command name (`comm`), is printed inside parentheses
//!   exactly as the program set it, and it may contain spaces and
//!   parentheses itself: `1234 (my (odd) prog) S 1 ...`. The only safe way
//!   to split the line is at the *last* `)`.
//! * `/proc/PID/stat` describes the process as a whole, but the state letter
//!   is the state of its *main thread*. Each thread has its own file,
//!   `/proc/PID/task/TID/stat` ([`read_task_stat`]).

use std::io;

/// The fields of `/proc/PID/stat` that netlab narrates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id (field 1), or thread id for a `/proc/PID/task/TID/stat`.
    pub pid: i32,
    /// Command name (field 2), without the parentheses; at most 15 bytes,
    /// usually the program's file name.
    pub comm: String,
    /// State letter (field 3); see [`state_name`].
    pub state: char,
    /// Parent's process id (field 4). 0 for the first process and for
    /// kernel threads' parent `kthreadd`.
    pub ppid: i32,
    /// Process group id (field 5): the job a shell puts the process in.
    pub pgrp: i32,
    /// Session id (field 6): usually the login shell's session.
    pub session: i32,
    /// Number of threads in the process (field 20).
    pub num_threads: i64,
    /// CPU time spent running the program's own code, in clock ticks
    /// (field 14); divide by [`clock_ticks_per_second`] for seconds.
    pub utime_ticks: u64,
    /// CPU time spent in the kernel on the program's behalf (system calls),
    /// in clock ticks (field 15).
    pub stime_ticks: u64,
    /// Resident set size (field 24): memory pages actually in RAM. Multiply
    /// by the page size (usually 4096) for bytes.
    pub rss_pages: i64,
    /// When the process started, in clock ticks after boot (field 22): with
    /// the pid, it names one process (pids are reused, start times not).
    pub start_ticks: u64,
    /// The exit status in waitpid()'s form (field 52, Linux 3.5 and
    /// later): how a zombie ended, readable before its parent reaps it.
    /// 0 for a running process; None on a kernel without the field.
    pub exit_code: Option<i32>,
}

/// Parses the text of a `/proc/PID/stat` (or `/proc/PID/task/TID/stat`) file.
///
/// The command name is in parentheses and may itself contain spaces and
/// `)`, as in `(my (odd) prog)`, so the line is split at the **last** `)`.
/// Returns `None` if the text is not a well-formed stat line.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse::<i32>().ok()?;
    let comm = text[open + 1..close].to_string();

    // The fields after the command name, numbered as in `man 5 proc`:
    // field 3 (state) is rest[0], so field N is rest[N - 3].
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();

    let mut state_chars = field(3)?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        utime_ticks: field(14)?.parse().ok()?,
        stime_ticks: field(15)?.parse().ok()?,
        num_threads: field(20)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
        exit_code: field(52).and_then(|code| code.parse().ok()),
    })
}

/// Reads `/proc/PID/stat`.
///
/// A process that does not exist (or that exited and was reaped by
/// `wait()`) gives `io::ErrorKind::NotFound`; a file that does not parse
/// gives `io::ErrorKind::InvalidData`.
pub fn read_stat(pid: i32) -> io::Result<ProcStat> {
    read_stat_file(&format!("/proc/{pid}/stat"))
}

/// Reads `/proc/PID/task/TID/stat`: the same fields for one thread. Its
/// `pid` field is the thread id, and `state` is that thread's own state.
pub fn read_task_stat(pid: i32, tid: i32) -> io::Result<ProcStat> {
    read_stat_file(&format!("/proc/{pid}/task/{tid}/stat"))
}

fn read_stat_file(path: &str) -> io::Result<ProcStat> {
    // The command name is whatever bytes the program chose, not necessarily
    // UTF-8, so read bytes and convert leniently.
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: not a valid stat line: {:?}", text.trim_end()),
        )
    })
}

/// Explains a state letter from `/proc/PID/stat` (see `man 5 proc`).
///
/// The common ones: `R` running (or ready to run), `S` sleeping until
/// something happens (a blocked `accept()`, `read()` or `sleep`), `Z`
/// zombie (exited; its parent has not called `wait()` yet). Returns
/// `"unknown"` for a letter it does not know.
pub fn state_name(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "uninterruptible sleep (usually IO)",
        'Z' => "zombie",
        'T' => "stopped (by a signal)",
        't' => "stopped by a debugger",
        'X' | 'x' => "dead",
        'I' => "idle kernel thread",
        'P' => "parked",
        // 'W' meant "paging" before Linux 2.6 and "waking" in 2.6.33 to 3.13.
        'W' => "paging",
        'K' => "wakekill",
        _ => "unknown",
    }
}

/// Lists the processes whose parent is `pid`, sorted by process id.
///
/// There is no kernel file that lists a process's children in every
/// configuration, so this scans every `/proc/[0-9]*` entry and keeps those
/// whose `ppid` is `pid`. Processes come and go during the scan; one that
/// vanishes between listing and reading is skipped silently, which is the
/// normal, expected race.
pub fn children_of(pid: i32) -> io::Result<Vec<ProcStat>> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(child_pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue; // not a process directory ("net", "self", "sys", ...)
        };
        match read_stat(child_pid) {
            Ok(stat) if stat.ppid == pid => children.push(stat),
            Ok(_) => {}
            Err(e) if vanished(&e) => {}
            Err(e) => return Err(e),
        }
    }
    children.sort_by_key(|stat| stat.pid);
    Ok(children)
}

/// True for the errors a process that exits during a read produces.
fn vanished(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH)
}

/// The signals waiting to be delivered to process `pid`: the `ShdPnd`
/// (sent to the whole process) and `SigPnd` (sent to its main thread)
/// lines of `/proc/PID/status`, ORed together. Bit `n - 1` is signal `n`,
/// so SIGCHLD (17) is bit 16. A standard signal is one bit: however many
/// times it is sent while it is blocked, it is pending once.
pub fn pending_signals(pid: i32) -> io::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)?;
    parse_pending(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: no readable ShdPnd and SigPnd lines"),
        )
    })
}

/// The `ShdPnd | SigPnd` mask from the text of a `/proc/PID/status` file.
pub fn parse_pending(status: &str) -> Option<u64> {
    let mask = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    };
    Some(mask("ShdPnd:")? | mask("SigPnd:")?)
}

/// Is this process a *child subreaper* (`prctl(PR_GET_CHILD_SUBREAPER)`)?
/// An orphan is adopted by its nearest ancestor that is one, or by init
/// (pid 1 of the pid namespace) when none is. No /proc file shows the flag,
/// so it can only be read for the calling process.
pub fn is_child_subreaper() -> io::Result<bool> {
    let mut flag: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer,
    // which points at `flag`, alive for the whole call.
    let result =
        unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut flag as *mut libc::c_int) };
    if result == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(flag != 0)
}

/// How many clock ticks make one second: the unit of `utime_ticks` and
/// `stime_ticks` (`sysconf(_SC_CLK_TCK)`, which is `USER_HZ`, 100 on
/// practically every Linux). Falls back to 100 if sysconf fails.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes an integer and returns an integer; it touches no
    // memory of ours and is safe to call from any thread.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const SLEEPER: &str = "4519 (sleep) S 4517 4517 2465 0 -1 4194304 99 0 1 0 7 3 0 0 20 0 1 0 587008 3133440 361 18446744073709551615 94095729659904 94095729679785 140733740829344 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94095729695792 94095729697408 94095959941120 140733740833505 140733740833525 140733740833525 140733740834795 0\n";
    const ODD_NAME: &str = "77 (my (odd) prog) R 1 77 77 34816 77 4194560 1 2 3 4 15 16 0 0 20 0 3 0 25 42852352 3036 18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    const ZOMBIE: &str = "4600 (sleep) Z 4517 4600 2465 0 -1 4227084 99 0 0 0 0 0 0 0 20 0 1 0 587100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 9\n";

    #[test]
    fn parses_fixtures() {
        let s = parse_stat(SLEEPER).expect("valid line");
        assert_eq!(s.pid, 4519);
        assert_eq!(s.comm, "sleep");
        assert_eq!(s.state, 'S');
        assert_eq!((s.ppid, s.pgrp, s.session), (4517, 4517, 2465));
        assert_eq!((s.utime_ticks, s.stime_ticks), (7, 3));
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.rss_pages, 361);

        let odd = parse_stat(ODD_NAME).expect("valid line");
        assert_eq!(odd.comm, "my (odd) prog");
        assert_eq!(odd.state, 'R');
        assert_eq!(odd.ppid, 1);
        assert_eq!((odd.utime_ticks, odd.stime_ticks), (15, 16));
        assert_eq!(odd.num_threads, 3);

        let z = parse_stat(ZOMBIE).expect("valid line");
        assert_eq!(z.state, 'Z');
        assert_eq!(state_name(z.state), "zombie");
        assert_eq!(z.rss_pages, 0);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "garbage",
            "12 (x",
            "12 x) S 1",
            ") 12 (x S 1 1 1",
            "12 (x) S 1 2",
            "12 (x) SS 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1",
            "abc (x) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1",
            "12 (x) S one 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pending_signals_are_read_from_status() {
        let status = "Name:\tx\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000010000\nSigBlk:\t0000000000010000\n";
        assert_eq!(parse_pending(status), Some(1 << 16));
        assert_eq!(parse_pending("Name:\tx\nSigPnd:\tzz\nShdPnd:\t0\n"), None);
        assert_eq!(parse_pending(""), None);
        let own = pending_signals(std::process::id() as i32).expect("own status");
        assert_eq!(own & (1 << 16), 0, "no SIGCHLD pending here");
        assert!(!is_child_subreaper().expect("prctl"));
    }

    #[test]
    fn state_names() {
        assert_eq!(state_name('R'), "running");
        assert_eq!(state_name('S'), "sleeping");
        assert_eq!(state_name('D'), "uninterruptible sleep (usually IO)");
        assert_eq!(state_name('t'), "stopped by a debugger");
        assert_eq!(state_name('?'), "unknown");
    }

    #[test]
    fn reads_own_process_and_thread() {
        let pid = std::process::id() as i32;
        let me = read_stat(pid).expect("read own stat");
        assert_eq!(me.pid, pid);
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw());
        assert!(me.num_threads >= 1);
        assert!(me.rss_pages > 0);

        // /proc/PID/stat shows the *main* thread's state, and the test
        // harness's main thread is probably asleep waiting for this test.
        // This thread's own file shows it running, since it is running
        // while it reads.
        let tid = nix::unistd::gettid().as_raw();
        let thread = read_task_stat(pid, tid).expect("read own task stat");
        assert_eq!(thread.pid, tid);
        assert_eq!(thread.state, 'R');
        assert_eq!(thread.ppid, me.ppid);

        assert!(clock_ticks_per_second() > 0);
        let missing = read_stat(-1).expect_err("no process -1");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    /// Kills and reaps the child if a test fails half-way, so no test ever
    /// leaves a process behind.
    struct Reaper(Child);

    impl Drop for Reaper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Polls `/proc/PID/stat` until `want` holds, for at most one second.
    fn poll_stat(pid: i32, want: impl Fn(&ProcStat) -> bool) -> Option<ProcStat> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Ok(stat) = read_stat(pid) {
                if want(&stat) {
                    return Some(stat);
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn child_sleeps_then_becomes_a_zombie_then_disappears() {
        let child = Command::new("sleep")
            .arg("5")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let mut child = Reaper(child);
        let pid = child.0.id() as i32;
        let me = std::process::id() as i32;

        // Once exec() has replaced our copy with `sleep`, it sleeps.
        let sleeping = poll_stat(pid, |s| s.comm == "sleep" && s.state == 'S')
            .expect("child should be sleeping");
        assert_eq!(sleeping.ppid, me);
        let kids = children_of(me).expect("scan /proc");
        assert!(kids.iter().any(|k| k.pid == pid), "{kids:?}");

        // Killed but not yet waited for: a zombie.
        child.0.kill().expect("kill");
        let zombie = poll_stat(pid, |s| s.state == 'Z').expect("child should be a zombie");
        assert_eq!(zombie.ppid, me);

        // wait() reaps it, and /proc/PID disappears.
        child.0.wait().expect("wait");
        let gone = read_stat(pid).expect_err("reaped child has no /proc entry");
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }
}
