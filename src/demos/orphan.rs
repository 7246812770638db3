//! # orphan-demo: a parent exits first, and its child is adopted
//!
//! Three generations: netlab (the grandparent) forks a parent, and the
//! parent forks a child. Then the parent exits while its child still runs.
//! The child is now an *orphan*, and the kernel gives it a new parent at
//! once: the nearest ancestor that marked itself a *child subreaper*
//! (prctl(PR_SET_CHILD_SUBREAPER)), or else init, pid 1 of the pid
//! namespace. The demo reads the child's parent from /proc before and after.
//!
//! By default netlab marks itself a subreaper, so it adopts its grandchild
//! and reaps it with waitpid(). With `--no-subreaper` the orphan goes to
//! init, or to whichever subreaper sits above netlab (a service manager, a
//! container's init, a test harness): the demo reads which, watches that
//! process reap the orphan, and shows that our own waitpid() on it now
//! fails with ECHILD.
//!
//! System calls: prctl(PR_SET_CHILD_SUBREAPER), pipe2, fork, getppid,
//! write, read, close, waitpid.
//!
//! Try it:
//!
//! ```text
//! netlab orphan-demo
//! netlab orphan-demo --no-subreaper
//! ```
//!
//! Lesson: `netlab lesson processes`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{getpid, getppid, Pid};
use serde_json::json;

use super::children::{self, Forked};
use crate::kernel;
use crate::narrate::{Fact, Narrator};
use crate::stop;
use crate::sys;

/// How long the orphan waits to be adopted before it gives up; far more
/// than the kernel needs (it re-parents during the parent's exit).
const ADOPTION_LIMIT: Duration = Duration::from_secs(5);

/// How long the orphan lingers after its adoption, so that the
/// grandparent can read its new parent from /proc.
const LINGER: Duration = Duration::from_millis(300);

/// How long we watch another process reap the orphan before we say it has
/// not (yet).
const REAP_WATCH: Duration = Duration::from_secs(10);

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Do not mark netlab as a child subreaper: the orphan is then adopted
    /// by init (pid 1) or by the nearest subreaper above netlab.
    #[arg(long)]
    pub no_subreaper: bool,
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "orphan-demo",
        "processes",
        "Orphans: a parent exits before its child, and the child gets a new parent.",
    );
    let me = getpid();
    let step = nar.call("getpid", "");
    step.ok_value(
        i64::from(me.as_raw()),
        format!("{me} (netlab, the grandparent)"),
    );

    // 1. Subreaper or not: this decides who adopts the orphan.
    if args.no_subreaper {
        nar.note("--no-subreaper: netlab stays an ordinary process, so an orphan below it goes to the nearest subreaper above it, or to init.");
    } else {
        let step = nar.call("prctl", "PR_SET_CHILD_SUBREAPER, 1");
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches
        // no memory of ours.
        let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
        step.check(Errno::result(result), |_| "0".into())?;
        nar.note("netlab is now a child subreaper: any orphan among its descendants is handed to netlab instead of init.");
    }
    match kernel::process::is_child_subreaper() {
        Ok(flag) => nar.kernel(Fact::new(
            format!("pid {me}"),
            "subreaper",
            json!(flag),
            "prctl(PR_GET_CHILD_SUBREAPER)",
            if flag {
                format!("pid {me} is a child subreaper")
            } else {
                format!("pid {me} is not a child subreaper")
            },
        )),
        Err(err) => nar.kernel(Fact::unavailable(
            format!("pid {me}"),
            "subreaper",
            "prctl(PR_GET_CHILD_SUBREAPER)",
            err,
        )),
    }

    let mut family = Family {
        parent: None,
        orphan: None,
    };
    let outcome = three_generations(nar, args, me, &mut family);
    if stop::requested().is_some() {
        family.stop_all(nar);
    }
    children::reap_all(nar, stop::requested().is_some());
    outcome
}

/// The pids we started, so that a stop can end them by pid.
struct Family {
    parent: Option<Pid>,
    orphan: Option<Pid>,
}

impl Family {
    /// Ctrl-C or SIGTERM: end the processes we started that still run.
    /// The orphan may not be our child any more, so we check /proc that
    /// the pid is still a netlab process before we signal it.
    fn stop_all(&self, nar: &Narrator) {
        for pid in [self.orphan, self.parent].into_iter().flatten() {
            let alive = kernel::read_stat(pid.as_raw())
                .is_ok_and(|stat| stat.state != 'Z' && stat.comm == "netlab");
            if alive {
                let step = nar.call("kill", format!("{pid}, SIGTERM"));
                match signal::kill(pid, Signal::SIGTERM) {
                    Ok(()) => step.ok("0"),
                    Err(errno) => step.fail(errno),
                }
            }
        }
    }
}

fn three_generations(nar: &Narrator, args: &Args, me: Pid, family: &mut Family) -> Result<()> {
    // Two pipes: the parent tells us its child's pid on `report`; we tell
    // the parent when to exit by closing our end of `go`.
    let step = nar.call("pipe2", "O_CLOEXEC");
    let (report_read, report_write) =
        step.check(nix::unistd::pipe2(OFlag::O_CLOEXEC), pipe_text)?;
    let step = nar.call("pipe2", "O_CLOEXEC");
    let (go_read, go_write) = step.check(nix::unistd::pipe2(OFlag::O_CLOEXEC), pipe_text)?;

    let parent = match children::fork(nar, "creating the parent-to-be")? {
        Forked::Child => {
            drop(report_read);
            drop(go_write);
            parent_life(nar, report_write, go_read)
        }
        Forked::Parent { child } => child,
    };
    family.parent = Some(parent);
    drop(report_write);
    drop(go_read);

    // 2. The parent forks the child and reports its pid.
    let Some(orphan) = read_pid(nar, &report_read)? else {
        return Ok(());
    };
    family.orphan = Some(orphan);
    nar.info(
        "family",
        json!({ "grandparent": me.as_raw(), "parent": parent.as_raw(), "child": orphan.as_raw() }),
        format!("three generations: netlab {me}, its child {parent}, and the grandchild {orphan}"),
    );
    children::process_state(nar, parent, "the parent");
    children::process_state(nar, orphan, "the child, not yet an orphan");

    // 3. Tell the parent to exit, and reap it.
    let step = nar.call("close", format!("fd {}", go_write.as_raw_fd()));
    step.check(nix::unistd::close(go_write), |_| "0".into())?;
    nar.note("The parent reads end-of-file and exits, while its own child is still running.");
    if children::wait_for(nar, parent, "the parent to exit").is_none() {
        return Ok(());
    }

    // 4. The kernel re-parented the child while the parent exited.
    let stat = children::watch(orphan, Duration::from_secs(2), |stat| {
        stat.ppid != parent.as_raw()
    });
    children::process_state(nar, orphan, "the orphan");
    let Some(stat) = stat else {
        nar.warning(
            format!("pid {orphan} ended before its new parent could be read"),
            None,
        );
        return Ok(());
    };
    let adopter = Pid::from_raw(stat.ppid);
    let adopter_name = kernel::read_stat(adopter.as_raw())
        .map(|stat| stat.comm)
        .unwrap_or_else(|_| "unknown".into());
    nar.info(
        "adopted",
        json!({
            "orphan": orphan.as_raw(), "old_parent": parent.as_raw(),
            "new_parent": adopter.as_raw(), "new_parent_comm": adopter_name,
            "by_us": adopter == me, "subreaper": !args.no_subreaper,
        }),
        format!("pid {orphan} was adopted by pid {adopter} ({adopter_name})"),
    );
    if adopter == me {
        nar.note("We are a subreaper, so the kernel made netlab the orphan's new parent. It is our child now, and ours to reap.");
        if let Some(status) = children::wait_for(nar, orphan, "the adopted orphan to exit") {
            nar.info(
                "child_status",
                children::status_value(&status),
                children::describe_status(&status),
            );
        }
        children::process_state(nar, orphan, "the orphan, after our waitpid()");
        return Ok(());
    }

    if adopter.as_raw() == 1 {
        nar.note("No subreaper above us: init, pid 1, adopted the orphan. It will also reap it.");
    } else {
        nar.note("A subreaper above netlab adopted the orphan: the nearest ancestor that asked for orphans gets them, before init does.");
    }
    // Not our child any more: waitpid() refuses.
    let step = nar.call("waitpid", format!("{orphan}, WNOHANG"));
    match waitpid(orphan, Some(WaitPidFlag::WNOHANG)) {
        Ok(status) => step.ok(children::describe_status(&status)),
        Err(errno) => step.fail(errno),
    }
    nar.note("ECHILD: only a process's parent can wait for it, and we are only its grandparent. Its new parent reaps it when it exits.");

    // Watch the adopter reap it: the /proc entry goes away.
    let started = std::time::Instant::now();
    let last = children::watch(orphan, REAP_WATCH, |_| false);
    match last {
        None => {
            children::process_state(nar, orphan, "the orphan");
            nar.info(
                "orphan_reaped",
                json!({ "orphan": orphan.as_raw(), "by": adopter.as_raw(), "after_ms": started.elapsed().as_millis() as u64 }),
                format!(
                    "pid {orphan} exited and was reaped by pid {adopter} ({adopter_name}) within {} ms",
                    started.elapsed().as_millis()
                ),
            );
        }
        Some(_) => {
            children::process_state(nar, orphan, "the orphan");
            nar.warning(
                format!("pid {orphan} is still there after {} s: its new parent, pid {adopter}, has not reaped it yet", REAP_WATCH.as_secs()),
                Some("only its parent can reap it; netlab cannot"),
            );
        }
    }
    Ok(())
}

/// The parent-to-be: fork the child, wait until the child has read its
/// parent once, report its pid, wait for the word, exit. Never returns.
fn parent_life(nar: &Narrator, report: OwnedFd, go: OwnedFd) -> ! {
    let me = getpid();
    // The child closes its end of `ready` once it has called getppid(), so
    // that it surely reads its parent before the parent is gone.
    let step = nar.call("pipe2", "O_CLOEXEC");
    let Ok((ready_read, ready_write)) = step.check(nix::unistd::pipe2(OFlag::O_CLOEXEC), pipe_text)
    else {
        children::exit_child(1)
    };
    let child = match children::fork(nar, "creating the child") {
        Ok(Forked::Child) => {
            drop(report);
            drop(go);
            drop(ready_read);
            child_life(nar, me, ready_write)
        }
        Ok(Forked::Parent { child }) => child,
        Err(_) => children::exit_child(1),
    };
    drop(ready_write);
    let mut byte = [0u8; 1];
    let step = nar.blocking(
        "read",
        format!("fd {}, 1 byte", ready_read.as_raw_fd()),
        "waiting for the child to have read its parent",
    );
    match nix::unistd::read(&ready_read, &mut byte) {
        Ok(count) => step.ok_value(count as i64, "end of file: the child is ready"),
        Err(errno) => step.fail(errno),
    }
    drop(ready_read);
    let step = nar.call("write", format!("fd {}, 4 bytes", report.as_raw_fd()));
    match nix::unistd::write(&report, &child.as_raw().to_ne_bytes()) {
        Ok(count) => step.ok_value(count as i64, format!("{count} bytes: the child's pid")),
        Err(errno) => {
            step.fail(errno);
            children::exit_child(1);
        }
    }
    drop(report);
    let mut byte = [0u8; 1];
    let step = nar.blocking(
        "read",
        format!("fd {}, 1 byte", go.as_raw_fd()),
        "waiting for netlab's word to exit",
    );
    match nix::unistd::read(&go, &mut byte) {
        Ok(count) => step.ok_value(count as i64, "end of file: time to go"),
        Err(errno) => step.fail(errno),
    }
    nar.info(
        "parent_exit",
        json!({ "pid": me.as_raw(), "child": child.as_raw() }),
        format!("the parent (pid {me}) exits without waiting for its child {child}"),
    );
    children::exit_child(0)
}

/// The child: read its parent, wait until it changes, read it again.
/// Never returns.
fn child_life(nar: &Narrator, parent: Pid, ready: OwnedFd) -> ! {
    let step = nar.call("getppid", "");
    let first = getppid();
    step.ok_value(
        i64::from(first.as_raw()),
        format!("{first} (the child's parent)"),
    );
    // Tell the parent we have read it: closing our only write end gives
    // its read() end-of-file.
    drop(ready);
    nar.note("The child now calls getppid() every 5 ms, without narrating each call, until the answer changes.");
    let deadline = std::time::Instant::now() + ADOPTION_LIMIT;
    while getppid() == parent && std::time::Instant::now() < deadline {
        let _ = sys::nanosleep(Duration::from_millis(5));
    }
    let step = nar.call("getppid", "");
    let now = getppid();
    step.ok_value(
        i64::from(now.as_raw()),
        format!("{now} (the orphan's new parent)"),
    );
    children::process_state(nar, getpid(), "the orphan itself");
    let _ = sys::nanosleep(LINGER);
    children::exit_child(0)
}

/// read() the 4 bytes of a pid from the pipe; None on a stop or an early
/// end of file.
fn read_pid(nar: &Narrator, fd: &OwnedFd) -> Result<Option<Pid>> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        let step = nar.blocking(
            "read",
            format!("fd {}, {} bytes", fd.as_raw_fd(), buf.len() - got),
            "waiting for the parent to report its child's pid",
        );
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => {
                step.ok_value(0, "0: end of file");
                return Ok(None);
            }
            Ok(count) => {
                step.ok_value(count as i64, format!("{count} bytes"));
                got += count;
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if stop::requested().is_some() {
                    return Ok(None);
                }
            }
            Err(errno) => {
                step.fail(errno);
                return Err(errno).context("reading the pipe");
            }
        }
    }
    Ok(Some(Pid::from_raw(i32::from_ne_bytes(buf))))
}

fn pipe_text((read_end, write_end): &(OwnedFd, OwnedFd)) -> String {
    format!(
        "read end fd {}, write end fd {}",
        read_end.as_raw_fd(),
        write_end.as_raw_fd()
    )
}
