//! The child of `--role both` and `--role pair`: fork it, and reap it.

use std::io::Write;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde_json::json;

use crate::kernel;
use crate::narrate::{Fact, Narrator};
use crate::stop;

/// The forked client. The parent reaps it in `reap`; if the server leaves
/// early, `Drop` stops it by its pid and reaps it anyway.
pub(super) struct Child {
    pub(super) pid: Pid,
    reaped: bool,
}

impl Child {
    /// waitpid(), narrated. After a stop request the child is told to end
    /// first (SIGTERM to its pid), since it may still wait for an echo.
    pub(super) fn reap(&mut self, nar: &Narrator) {
        // The child is about to exit (or has): give it a moment to become
        // a zombie, the state in which it waits for our waitpid().
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        let mut stat = kernel::read_stat(self.pid.as_raw());
        while matches!(&stat, Ok(s) if s.state != 'Z')
            && std::time::Instant::now() < deadline
            && stop::requested().is_none()
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
            stat = kernel::read_stat(self.pid.as_raw());
        }
        if let Ok(stat) = stat {
            nar.kernel(Fact::new(
                format!("pid {}", self.pid),
                "child_state",
                json!({ "pid": self.pid.as_raw(), "state": stat.state.to_string(), "name": kernel::state_name(stat.state) }),
                "/proc/PID/stat",
                format!("the child pid {} is {} ({})", self.pid, stat.state, kernel::state_name(stat.state)),
            ));
            if stat.state == 'Z' {
                nar.note("The child has exited but stays a zombie: the kernel keeps its exit status until the parent collects it with waitpid().");
            }
        }
        if stop::requested().is_some() {
            let step = nar.call("kill", format!("{}, SIGTERM", self.pid));
            match signal::kill(self.pid, Signal::SIGTERM) {
                Ok(()) => step.ok("0"),
                Err(errno) => step.fail(errno),
            }
        }
        loop {
            let step = nar.blocking(
                "waitpid",
                format!("{}, 0", self.pid),
                "waiting for the child to exit",
            );
            match waitpid(self.pid, None) {
                Ok(status) => {
                    step.ok(describe(status));
                    nar.info(
                        "reaped",
                        json!({ "pid": self.pid.as_raw(), "status": describe(status) }),
                        format!("child {} reaped: {}", self.pid, describe(status)),
                    );
                    self.reaped = true;
                    return;
                }
                Err(Errno::EINTR) => step.fail(Errno::EINTR),
                Err(errno) => {
                    step.fail(errno);
                    self.reaped = true;
                    return;
                }
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = signal::kill(self.pid, Signal::SIGTERM);
            while let Err(Errno::EINTR) = waitpid(self.pid, None) {}
        }
    }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("killed by {signal}"),
        other => format!("{other:?}"),
    }
}

/// fork(): the child runs `work`, then ends with _exit(); only the parent
/// returns from here, with the child's pid.
///
/// The child inherits netlab's stop handlers and the write end of its
/// self-pipe, but not the helper thread that reads the pipe (see stop.rs).
/// So it puts SIGINT, SIGTERM and SIGHUP back to their default action:
/// Ctrl-C or a SIGTERM to its pid ends it at once, and the parent reaps
/// it. The signals are blocked around fork() so none lands in between.
pub(super) fn fork_child(
    nar: &Narrator,
    why: &str,
    work: impl FnOnce() -> Result<()>,
) -> Result<Child> {
    let _ = std::io::stdout().flush();
    let mut stop_signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stop_signals.add(signal);
    }
    let old_mask = stop_signals
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .context("blocking the stop signals around fork()")?;
    let step = nar.blocking("fork", "", why);
    // SAFETY: the only other thread is netlab's stop helper, which waits in
    // poll() and holds no lock the child needs; the narrator's lock is free
    // between events. The child makes system calls, narrates and _exit()s.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
                // SAFETY: SIG_DFL installs no code of ours.
                let _ = unsafe { signal::sigaction(signal, &default) };
            }
            let _ = old_mask.thread_set_mask();
            step.ok_value(
                0,
                format!("0: this is the child, pid {}", std::process::id()),
            );
            let code = match work() {
                Ok(()) => 0,
                Err(err) => {
                    nar.warning(format!("child: {err:#}"), None);
                    1
                }
            };
            let _ = std::io::stdout().flush();
            // SAFETY: _exit ends the child at once, without running the
            // parent's atexit handlers or Drop guards it copied.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = old_mask.thread_set_mask();
            step.ok_value(
                i64::from(child.as_raw()),
                format!("{child}: the child's pid"),
            );
            Ok(Child {
                pid: child,
                reaped: false,
            })
        }
        Err(errno) => {
            let _ = old_mask.thread_set_mask();
            step.fail(errno);
            Err(errno).context("fork() failed")
        }
    }
}
