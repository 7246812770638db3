//! Forking, watching and reaping child processes: what fork-demo,
//! zombie-demo, orphan-demo, `tcp-server --model fork` and unix-demo's
//! `--role both|pair` share.
//!
//! Every demo that forks follows three rules, and this file is where they
//! are kept:
//!
//! 1. **Nothing half-written crosses a fork.** fork() copies the whole
//!    memory, unwritten output buffers included, so both processes would
//!    print them. The narrator writes and flushes every event at once, and
//!    stdout is flushed again right before the call.
//! 2. **The child has its own way to stop.** It inherits netlab's signal
//!    handlers and the write end of the stop self-pipe, but not the helper
//!    thread (see `stop.rs`): a SIGTERM handled in the child would wake the
//!    *parent's* helper. So the child puts SIGINT, SIGTERM and SIGHUP back
//!    to their default action: Ctrl-C (which the terminal sends to the
//!    whole foreground process group) or a SIGTERM sent to its pid ends the
//!    child at once, and the parent reaps it. The three signals are blocked
//!    around fork() so that none lands in the gap before the reset.
//! 3. **The parent reaps every child before it exits**, after Ctrl-C too
//!    ([`reap_all`]), and after an early return ([`ForkedChild`]).
//!
//! The SIGCHLD handlers live here as well. A handler may only make
//! async-signal-safe calls, so it reaps with waitpid() and writes what it
//! reaped into a small table of atomics; the demo narrates the table
//! afterwards, outside the handler ([`take_reaped`]).

use std::io::Write;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde_json::{json, Value};

use crate::kernel::{self, ProcStat};
use crate::narrate::{Fact, Narrator};
use crate::stop;
use crate::sys;

/// Which process we are after fork() returned.
pub enum Forked {
    /// The original process; `child` is the new process's pid.
    Parent { child: Pid },
    /// The new process.
    Child,
}

/// fork(), narrated. Both processes print the result of the same step:
/// the parent sees the child's pid, the child sees 0.
pub fn fork(nar: &Narrator, why: &str) -> Result<Forked> {
    // Rule 1: nothing may wait in a userspace buffer while memory is copied.
    let _ = std::io::stdout().flush();

    // Rule 2: hold the stop signals until the child has reset them.
    let mut stop_signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stop_signals.add(signal);
    }
    let old_mask = stop_signals
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .context("blocking the stop signals around fork()")?;

    // A blocking step, so that its line is written before the call and the
    // two results, one from each process, each get a line of their own.
    let step = nar.blocking("fork", "", why);
    // SAFETY: the only other thread is netlab's stop helper, which holds no
    // lock the child needs (it waits in poll()); the narrator's lock is free
    // because this thread is between events. The child only makes system
    // calls and narrates, then leaves with _exit().
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            for signal in [
                Signal::SIGINT,
                Signal::SIGTERM,
                Signal::SIGHUP,
                Signal::SIGCHLD,
            ] {
                // SAFETY: SIG_DFL installs no code of ours.
                let _ = unsafe { signal::sigaction(signal, &default) };
            }
            let _ = old_mask.thread_set_mask();
            nar.forked_child();
            step.ok_value(
                0,
                format!("0: printed by the new child (pid {})", std::process::id()),
            );
            Ok(Forked::Child)
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = old_mask.thread_set_mask();
            step.ok_value(
                i64::from(child.as_raw()),
                format!(
                    "{child}: the new child's pid, printed by the parent (pid {})",
                    std::process::id()
                ),
            );
            Ok(Forked::Parent { child })
        }
        Err(errno) => {
            let _ = old_mask.thread_set_mask();
            step.fail(errno);
            Err(errno).context("fork() failed")
        }
    }
}

/// End a forked child: flush stdout, then _exit(). Plain exit() would also
/// run the atexit handlers and flush the stdio buffers the child inherited
/// from its parent, which belong to the parent.
pub fn exit_child(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: _exit ends the process at once; it has no preconditions.
    unsafe { libc::_exit(code) }
}

/// "pid 42 exited with status 3", "pid 42 was killed by SIGKILL": what
/// waitpid's status means, the way WIFEXITED/WEXITSTATUS and
/// WIFSIGNALED/WTERMSIG decode it.
pub fn describe_status(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(pid, _)
        | WaitStatus::Signaled(pid, _, _)
        | WaitStatus::Stopped(pid, _)
        | WaitStatus::Continued(pid) => format!("pid {pid} {}", describe_end(status)),
        WaitStatus::StillAlive => "no child has ended yet".to_string(),
        other => format!("{other:?}"),
    }
}

/// The same without the pid: "exited with status 3", "was killed by
/// SIGKILL", for a line that has already named the child.
pub fn describe_end(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, true) => format!("was killed by {signal} (core dumped)"),
        WaitStatus::Signaled(_, signal, false) => format!("was killed by {signal}"),
        WaitStatus::Stopped(_, signal) => format!("was stopped by {signal}"),
        WaitStatus::Continued(_) => "was continued".to_string(),
        WaitStatus::StillAlive => "has not ended yet".to_string(),
        other => format!("{other:?}"),
    }
}

/// The status as data: `{"pid", "exit_code", "signal"}`.
pub fn status_value(status: &WaitStatus) -> Value {
    match status {
        WaitStatus::Exited(pid, code) => {
            json!({ "pid": pid.as_raw(), "exit_code": code, "signal": null })
        }
        WaitStatus::Signaled(pid, signal, _) => {
            json!({ "pid": pid.as_raw(), "exit_code": null, "signal": signal.as_str() })
        }
        other => {
            json!({ "pid": other.pid().map(Pid::as_raw), "exit_code": null, "signal": null })
        }
    }
}

/// Narrate one process as /proc/PID/stat shows it now: `kernel: pid 4321
/// (the child) is S (sleeping), parent 4320`. A reaped process has no
/// /proc entry any more, and the line says so.
pub fn process_state(nar: &Narrator, pid: Pid, who: &str) -> Option<ProcStat> {
    let subject = format!("pid {pid}");
    match kernel::read_stat(pid.as_raw()) {
        Ok(stat) => {
            nar.kernel(Fact::new(
                &subject,
                "process",
                json!({
                    "pid": stat.pid, "ppid": stat.ppid, "state": stat.state.to_string(),
                    "state_name": kernel::state_name(stat.state), "comm": stat.comm, "who": who,
                }),
                "/proc/PID/stat",
                format!(
                    "{subject} ({who}) is {} ({}), parent {}",
                    stat.state,
                    kernel::state_name(stat.state),
                    stat.ppid
                ),
            ));
            Some(stat)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            nar.kernel(Fact::new(
                &subject,
                "process",
                json!({ "pid": pid.as_raw(), "ppid": null, "state": null, "state_name": null, "comm": null, "who": who }),
                "/proc/PID/stat",
                format!("{subject} ({who}) is gone: /proc/{pid} no longer exists"),
            ));
            None
        }
        Err(err) => {
            nar.kernel(Fact::unavailable(subject, "process", "/proc/PID/stat", err));
            None
        }
    }
}

/// Narrate the children of `parent`, read by scanning /proc, and return
/// them: `kernel: pid 4320 has 3 children: 4321 Z, 4322 Z, 4323 S (2 zombies)`.
pub fn children_state(nar: &Narrator, parent: Pid) -> Option<Vec<ProcStat>> {
    let subject = format!("pid {parent}");
    let children = match kernel::children_of(parent.as_raw()) {
        Ok(children) => children,
        Err(err) => {
            nar.kernel(Fact::unavailable(subject, "children", "/proc/*/stat", err));
            return None;
        }
    };
    let zombies = children.iter().filter(|child| child.state == 'Z').count();
    let listed: Vec<String> = children
        .iter()
        .map(|child| format!("{} {}", child.pid, child.state))
        .collect();
    let text = match children.len() {
        0 => format!("{subject} has no children"),
        count => format!(
            "{subject} has {count} {}: {} ({zombies} {})",
            if count == 1 { "child" } else { "children" },
            listed.join(", "),
            if zombies == 1 { "zombie" } else { "zombies" }
        ),
    };
    nar.kernel(Fact::new(
        subject,
        "children",
        json!({
            "parent": parent.as_raw(),
            "pids": children.iter().map(|child| child.pid).collect::<Vec<_>>(),
            "states": children.iter().map(|child| child.state.to_string()).collect::<Vec<_>>(),
            "zombies": zombies,
        }),
        "/proc/*/stat",
        text,
    ));
    Some(children)
}

/// Read /proc/PID/stat until `want` holds or `limit` passes; the last
/// reading is returned either way (None once the process is gone). Used to
/// wait, without guessing, for a child to have exited or been adopted.
pub fn watch(pid: Pid, limit: Duration, want: impl Fn(&ProcStat) -> bool) -> Option<ProcStat> {
    let deadline = Instant::now() + limit;
    loop {
        let stat = kernel::read_stat(pid.as_raw()).ok();
        let done = stat.as_ref().is_none_or(&want);
        if done || Instant::now() >= deadline || stop::requested().is_some() {
            return stat;
        }
        let _ = sys::nanosleep(Duration::from_millis(5));
    }
}

/// waitpid(pid, 0), narrated; EINTR is retried while no stop is pending.
/// Returns None if the wait was given up (a stop, or ECHILD).
pub fn wait_for(nar: &Narrator, pid: Pid, who: &str) -> Option<WaitStatus> {
    wait_narrated(nar, pid, who, || false)
}

/// waitpid(pid, 0), narrated, with EINTR retried. When a stop is pending,
/// `on_stop` decides: false gives the wait up, true waits on (after it has
/// asked the child to end). None after a wait given up or a waitpid()
/// error (ECHILD: not our child).
fn wait_narrated(
    nar: &Narrator,
    pid: Pid,
    who: &str,
    mut on_stop: impl FnMut() -> bool,
) -> Option<WaitStatus> {
    loop {
        let step = nar.blocking("waitpid", format!("{pid}, 0"), format!("waiting for {who}"));
        match waitpid(pid, None) {
            Ok(status) => {
                step.ok_value(i64::from(pid.as_raw()), describe_status(&status));
                return Some(status);
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if stop::requested().is_some() && !on_stop() {
                    return None;
                }
            }
            Err(errno) => {
                step.fail(errno);
                return None;
            }
        }
    }
}

/// One forked child that the parent waits for by its pid, for a demo that
/// may return early (an error) before it gets to the wait: dropping a
/// `ForkedChild` that was not waited for sends it SIGTERM by its pid and
/// reaps it, quietly, so no run leaves a child behind.
pub struct ForkedChild {
    pid: Pid,
    /// Set once waitpid() has collected the child (or said it is not ours).
    reaped: bool,
}

impl ForkedChild {
    /// Take charge of the child whose pid fork() returned to the parent.
    pub fn new(pid: Pid) -> ForkedChild {
        ForkedChild { pid, reaped: false }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The child was reaped by other means (a SIGCHLD handler's waitpid):
    /// there is nothing left to wait for or to stop on drop.
    pub fn reaped_elsewhere(mut self) {
        self.reaped = true;
    }

    /// waitpid(pid, 0), narrated. After Ctrl-C or SIGTERM, before or during
    /// the wait, the child may still be waiting for us, so it is asked to
    /// end (SIGTERM to its pid, narrated, once) and the wait goes on until
    /// it has.
    pub fn wait(&mut self, nar: &Narrator, who: &str) -> Option<WaitStatus> {
        let pid = self.pid;
        let mut asked = false;
        let mut ask_to_end = || {
            if !asked {
                asked = true;
                let step = nar.call("kill", format!("{pid}, SIGTERM"));
                match signal::kill(pid, Signal::SIGTERM) {
                    Ok(()) => step.ok("0"),
                    Err(errno) => step.fail(errno),
                }
            }
            true
        };
        if stop::requested().is_some() {
            ask_to_end();
        }
        let status = wait_narrated(nar, pid, who, ask_to_end);
        self.reaped = true;
        status
    }
}

impl Drop for ForkedChild {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = signal::kill(self.pid, Signal::SIGTERM);
            while let Err(Errno::EINTR) = waitpid(self.pid, None) {}
        }
    }
}

/// The last step of every forking demo: make sure no child is left.
///
/// Reaps every child that has ended with waitpid(-1, WNOHANG) until the
/// kernel answers ECHILD (no children at all). When `terminate` is set, or
/// a stop was requested, the children still running (read from /proc) are
/// sent SIGTERM by pid, and SIGKILL if they are still there two seconds
/// later. Otherwise they are left to finish their work. Ends with the
/// /proc reading that proves nothing is left.
pub fn reap_all(nar: &Narrator, terminate: bool) {
    let me = nix::unistd::getpid();
    let started = Instant::now();
    let mut signalled: Vec<i32> = Vec::new();
    let mut escalated = false;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => {
                let step = nar.call("waitpid", "-1, WNOHANG");
                step.ok_value(
                    status.pid().map_or(0, |pid| i64::from(pid.as_raw())),
                    describe_status(&status),
                );
                continue;
            }
            Err(Errno::EINTR) => continue,
            // ECHILD: no child is left, running or zombie.
            Err(_) => break,
        }
        if terminate || stop::requested().is_some() {
            let running: Vec<i32> = kernel::children_of(me.as_raw())
                .unwrap_or_default()
                .iter()
                .filter(|child| child.state != 'Z')
                .map(|child| child.pid)
                .collect();
            let escalate = !escalated && started.elapsed() > Duration::from_secs(2);
            for pid in running {
                let signal = if escalate {
                    Signal::SIGKILL
                } else if signalled.contains(&pid) {
                    continue;
                } else {
                    Signal::SIGTERM
                };
                let step = nar.call("kill", format!("{pid}, {signal}"));
                match signal::kill(Pid::from_raw(pid), signal) {
                    Ok(()) => step.ok("0"),
                    Err(errno) => step.fail(errno),
                }
                signalled.push(pid);
            }
            escalated |= escalate;
        }
        let _ = sys::nanosleep(Duration::from_millis(10));
    }
    let left = children_state(nar, me);
    if left.is_some_and(|children| children.is_empty()) {
        nar.note("Every child this process started has been reaped: no zombie is left behind.");
    }
}

/// How a SIGCHLD handler reaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigchldReap {
    /// One waitpid(-1, WNOHANG) per signal: the classic bug.
    Once,
    /// waitpid(-1, WNOHANG) until it finds no more zombies: the fix.
    Loop,
}

/// How many entries the handler's table keeps before the oldest unread
/// ones are overwritten (the count stays right).
const TABLE: usize = 64;
static REAPED_TOTAL: AtomicUsize = AtomicUsize::new(0);
static REAPED_READ: AtomicUsize = AtomicUsize::new(0);
static HANDLER_CALLS: AtomicUsize = AtomicUsize::new(0);
static REAPED_PID: [AtomicI32; TABLE] = [const { AtomicI32::new(0) }; TABLE];
static REAPED_STATUS: [AtomicI32; TABLE] = [const { AtomicI32::new(0) }; TABLE];

/// One waitpid(-1, WNOHANG), recorded in the table. Async-signal-safe:
/// only waitpid and atomics.
fn reap_one() -> bool {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid is async-signal-safe; `status` is a valid int.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return false;
    }
    let slot = REAPED_TOTAL.fetch_add(1, Ordering::SeqCst) % TABLE;
    REAPED_STATUS[slot].store(status, Ordering::SeqCst);
    REAPED_PID[slot].store(pid, Ordering::SeqCst);
    true
}

/// Run `body` with errno saved: a handler must not change the errno that
/// the interrupted code is about to read.
fn keeping_errno(body: impl FnOnce()) {
    // SAFETY: __errno_location returns this thread's errno; always valid.
    let saved = unsafe { *libc::__errno_location() };
    body();
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

extern "C" fn on_sigchld_once(_: libc::c_int) {
    keeping_errno(|| {
        HANDLER_CALLS.fetch_add(1, Ordering::SeqCst);
        reap_one();
    });
}

extern "C" fn on_sigchld_loop(_: libc::c_int) {
    keeping_errno(|| {
        HANDLER_CALLS.fetch_add(1, Ordering::SeqCst);
        while reap_one() {}
    });
}

/// sigaction(SIGCHLD) with one of the two reaping handlers, narrated.
/// Installed without SA_RESTART, so a blocking accept() or read() returns
/// EINTR when a child ends; SA_NOCLDSTOP, so stopped children do not count.
pub fn install_sigchld(nar: &Narrator, reap: SigchldReap) -> Result<()> {
    let (handler, args): (extern "C" fn(libc::c_int), &str) = match reap {
        SigchldReap::Once => (
            on_sigchld_once,
            "SIGCHLD, handler: one waitpid(-1, WNOHANG), SA_NOCLDSTOP",
        ),
        SigchldReap::Loop => (
            on_sigchld_loop,
            "SIGCHLD, handler: waitpid(-1, WNOHANG) until none is left, SA_NOCLDSTOP",
        ),
    };
    let action = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    let step = nar.call("sigaction", args);
    // SAFETY: the handlers only call waitpid and touch atomics, both
    // async-signal-safe.
    step.check(
        unsafe { signal::sigaction(Signal::SIGCHLD, &action) },
        |_| "0".into(),
    )?;
    Ok(())
}

/// sigaction(SIGCHLD, SIG_IGN) or SIG_DFL, narrated.
pub fn set_sigchld(nar: &Narrator, handler: SigHandler) -> Result<()> {
    let name = match handler {
        SigHandler::SigIgn => "SIG_IGN",
        _ => "SIG_DFL",
    };
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    let step = nar.call("sigaction", format!("SIGCHLD, {name}"));
    // SAFETY: SIG_IGN and SIG_DFL install no code of ours.
    step.check(
        unsafe { signal::sigaction(Signal::SIGCHLD, &action) },
        |_| "0".into(),
    )?;
    Ok(())
}

/// How many times a SIGCHLD handler has run so far.
pub fn handler_calls() -> usize {
    HANDLER_CALLS.load(Ordering::SeqCst)
}

/// The children the handler reaped since the last call, oldest first.
pub fn take_reaped() -> Vec<WaitStatus> {
    let total = REAPED_TOTAL.load(Ordering::SeqCst);
    let mut read = REAPED_READ.load(Ordering::SeqCst);
    if total.saturating_sub(read) > TABLE {
        read = total - TABLE;
    }
    let mut reaped = Vec::new();
    while read < total {
        let slot = read % TABLE;
        let pid = REAPED_PID[slot].swap(0, Ordering::SeqCst);
        if pid == 0 {
            break; // the handler is still writing this entry
        }
        let status = REAPED_STATUS[slot].load(Ordering::SeqCst);
        if let Ok(status) = WaitStatus::from_raw(Pid::from_raw(pid), status) {
            reaped.push(status);
        }
        read += 1;
    }
    REAPED_READ.store(read, Ordering::SeqCst);
    reaped
}

/// Narrate what the SIGCHLD handler reaped since we last looked.
pub fn narrate_reaped(nar: &Narrator) -> usize {
    let reaped = take_reaped();
    for status in &reaped {
        nar.info(
            "reaped",
            status_value(status),
            format!(
                "the SIGCHLD handler reaped a child: {}",
                describe_status(status)
            ),
        );
    }
    reaped.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_decoded() {
        let pid = Pid::from_raw(42);
        assert_eq!(
            describe_status(&WaitStatus::Exited(pid, 3)),
            "pid 42 exited with status 3"
        );
        assert_eq!(
            describe_status(&WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            "pid 42 was killed by SIGKILL"
        );
        assert_eq!(
            status_value(&WaitStatus::Signaled(pid, Signal::SIGTERM, false))["signal"],
            "SIGTERM"
        );
        assert_eq!(status_value(&WaitStatus::Exited(pid, 0))["exit_code"], 0);
        assert_eq!(
            describe_end(&WaitStatus::Exited(pid, 0)),
            "exited with status 0"
        );
    }
}
