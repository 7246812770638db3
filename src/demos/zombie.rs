//! # zombie-demo: children that exited and were not waited for
//!
//! When a process exits, the kernel frees its memory and closes its files
//! but keeps a small record (pid, exit status, CPU times) until the parent
//! collects it with wait() or waitpid(). Until then the child is a
//! *zombie*: state `Z` in /proc/PID/stat, `<defunct>` in `ps`. It is
//! already dead, so even SIGKILL does nothing to it; only its parent's
//! wait() (or the parent's own death) removes it.
//!
//! Part one shows one zombie up close. Part two lets N children exit at
//! the same moment and reaps them the way `--reap` says:
//!
//! - `none`: nobody waits; N zombies pile up.
//! - `wait-once`: a SIGCHLD handler that calls waitpid() once per signal.
//!   Signals do not queue: N exits while the signal is blocked leave it
//!   pending once, the handler runs once, and N-1 zombies stay.
//! - `loop`: the handler calls waitpid(-1, WNOHANG) until nothing is left.
//! - `ignore`: SIGCHLD set to SIG_IGN, and the kernel reaps the children
//!   itself (there is then no exit status to collect).
//!
//! Whatever the flags, the demo reaps everything before it exits (Ctrl-C
//! included) and says so.
//!
//! System calls: fork, _exit, kill, waitpid, sigaction(SIGCHLD),
//! sigprocmask, pipe2, close, nanosleep.
//!
//! Try it:
//!
//! ```text
//! netlab zombie-demo --children 5 --reap wait-once
//! netlab zombie-demo --children 5 --reap loop
//! netlab zombie-demo --children 5 --hold 30     # then: ps -el | grep Z
//! ```
//!
//! Lesson: `netlab lesson processes`.

use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::Result;
use nix::fcntl::OFlag;
use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, Pid};
use serde_json::json;

use super::children::{self, Forked, SigchldReap};
use crate::cli::parse_seconds;
use crate::kernel;
use crate::narrate::{Fact, Narrator};
use crate::stop;
use crate::sys;

/// How the parent reaps the children of part two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reap {
    /// Nobody waits: every child stays a zombie until the end.
    None,
    /// A SIGCHLD handler that reaps one child per signal (the bug).
    WaitOnce,
    /// A SIGCHLD handler that loops on waitpid(-1, WNOHANG) (the fix).
    Loop,
    /// SIGCHLD set to SIG_IGN: the kernel reaps the children itself.
    Ignore,
}

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// How many children exit together in part two.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub children: u32,

    /// How part two reaps its children.
    #[arg(long, value_enum, default_value_t = Reap::None)]
    pub reap: Reap,

    /// Keep the zombies this many seconds, so you can see them with
    /// `ps -el | grep Z` in another terminal.
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = parse_seconds)]
    pub hold: f64,
}

/// SIGCHLD's bit in a pending-signals mask: signal N is bit N - 1.
const SIGCHLD_BIT: u64 = 1 << (libc::SIGCHLD - 1);

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "zombie-demo",
        "processes",
        "Zombies: children that exited and were not waited for, and the ways to reap them.",
    );
    let outcome = one_zombie(nar).and_then(|()| {
        if stop::requested().is_none() {
            many_children(nar, args)
        } else {
            Ok(())
        }
    });

    // Whatever happened above: default SIGCHLD, nothing blocked, and every
    // child reaped.
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    let _ = sigchld.thread_unblock();
    if args.reap != Reap::None {
        children::set_sigchld(nar, SigHandler::SigDfl)?;
    }
    children::reap_all(nar, stop::requested().is_some());
    outcome
}

/// Part one: one child exits, and we look at it before and after waitpid().
fn one_zombie(nar: &Narrator) -> Result<()> {
    let child = match children::fork(nar, "a child that exits at once")? {
        Forked::Child => children::exit_child(7),
        Forked::Parent { child } => child,
    };
    nar.note("The child calls _exit(7) straight away, and the parent does not wait for it yet.");

    // Read /proc until the child has really exited (a few ms at most).
    children::watch(child, Duration::from_secs(2), |stat| stat.state == 'Z');
    if children::process_state(nar, child, "the child").is_some_and(|stat| stat.state == 'Z') {
        nar.note("Z: the child has exited, but the kernel keeps its pid and exit status until the parent collects them. ps shows it as <defunct>.");
    }

    // A zombie cannot be killed: it is already dead.
    let step = nar.call("kill", format!("{child}, SIGKILL"));
    step.check(signal::kill(child, Signal::SIGKILL), |_| "0".into())?;
    let _ = sys::nanosleep(Duration::from_millis(20));
    if children::process_state(nar, child, "the child, after SIGKILL")
        .is_some_and(|stat| stat.state == 'Z')
    {
        nar.note("kill() succeeded and changed nothing: a zombie runs no code, so no signal can affect it. Only its parent's wait() removes it.");
    }

    // waitpid() collects the status, and the zombie disappears.
    if let Some(status) = children::wait_for(nar, child, "the zombie's exit status") {
        nar.info(
            "child_status",
            children::status_value(&status),
            children::describe_status(&status),
        );
    }
    if children::process_state(nar, child, "the child, after waitpid()").is_none() {
        nar.note("waitpid() handed us the exit status, and the kernel freed the last of the child: its /proc entry is gone.");
    }
    Ok(())
}

/// Part two: N children exit at the same moment; reap them as --reap says.
fn many_children(nar: &Narrator, args: &Args) -> Result<()> {
    let me = getpid();
    let count = args.children as usize;
    match args.reap {
        Reap::None => nar.note("--reap none: no SIGCHLD handler and no waitpid(); every child that exits stays a zombie."),
        Reap::WaitOnce => {
            children::install_sigchld(nar, SigchldReap::Once)?;
            nar.note("--reap wait-once: the handler calls waitpid() once per SIGCHLD, as if every exit sent its own signal.");
        }
        Reap::Loop => {
            children::install_sigchld(nar, SigchldReap::Loop)?;
            nar.note("--reap loop: the handler calls waitpid(-1, WNOHANG) until it reports no more ended children, so one signal can reap many.");
        }
        Reap::Ignore => {
            children::set_sigchld(nar, SigHandler::SigIgn)?;
            nar.note("--reap ignore: with SIGCHLD set to SIG_IGN, the kernel reaps each child itself as it exits; no zombie is ever made.");
        }
    }

    // Hold SIGCHLD while the children exit, like a parent busy elsewhere.
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    let step = nar.call("sigprocmask", "SIG_BLOCK, {SIGCHLD}");
    step.check(sigchld.thread_block(), |_| "0".into())?;
    nar.note("SIGCHLD is blocked: while the children exit, their signals wait as pending instead of running the handler.");

    // A starting gun: every child waits to read the pipe; closing our
    // write end gives them all end-of-file at once.
    let step = nar.call("pipe2", "O_CLOEXEC");
    let (gun_read, gun_write) = step.check(nix::unistd::pipe2(OFlag::O_CLOEXEC), |(r, w)| {
        format!(
            "read end fd {}, write end fd {}",
            r.as_raw_fd(),
            w.as_raw_fd()
        )
    })?;
    let mut kids: Vec<Pid> = Vec::new();
    for _ in 0..count {
        if stop::requested().is_some() {
            return Ok(());
        }
        match children::fork(nar, "a child that waits for the starting signal")? {
            Forked::Child => {
                drop(gun_write);
                let mut byte = [0u8; 1];
                // Returns 0 (end of file) when the parent closes its end.
                let _ = nix::unistd::read(&gun_read, &mut byte);
                children::exit_child(0)
            }
            Forked::Parent { child } => kids.push(child),
        }
    }
    let step = nar.call("close", format!("fd {}", gun_write.as_raw_fd()));
    step.check(nix::unistd::close(gun_write), |_| "0".into())?;
    nar.note("Closing the pipe's write end gives every child end-of-file at once: they all exit together.");

    // Wait (by reading /proc) until every child has exited.
    for child in &kids {
        children::watch(*child, Duration::from_secs(2), |stat| stat.state == 'Z');
    }
    pending_sigchld(nar, me, count);
    children::children_state(nar, me);

    // Unblock: the one pending SIGCHLD is delivered now, and the handler
    // runs once before sigprocmask() returns.
    let calls_before = children::handler_calls();
    let step = nar.call("sigprocmask", "SIG_UNBLOCK, {SIGCHLD}");
    step.check(sigchld.thread_unblock(), |_| "0".into())?;
    let handler_runs = children::handler_calls() - calls_before;
    children::narrate_reaped(nar);
    let zombies = children::children_state(nar, me)
        .map(|list| list.iter().filter(|child| child.state == 'Z').count());
    nar.info(
        "zombies_left",
        json!({
            "reap": reap_name(args.reap), "children": count,
            "handler_runs": handler_runs, "zombies": zombies,
        }),
        format!(
            "{count} children exited; the handler ran {handler_runs} time(s); zombies left: {}",
            zombies.map_or("unknown".to_string(), |z| z.to_string())
        ),
    );
    match (args.reap, zombies) {
        (Reap::WaitOnce, Some(z)) if z > 0 => nar.note("The leak: many exits, one pending signal, one handler call, one child reaped. The others stay zombies. Reap in a loop."),
        (Reap::Loop, Some(0)) => nar.note("One signal, one handler call, and the loop reaped every child that had ended: nothing leaks."),
        (Reap::Ignore, Some(0)) => {
            nar.note("No zombies: with SIGCHLD ignored, the kernel reaped the children as they exited.");
            let step = nar.call("waitpid", "-1, 0");
            match waitpid(Pid::from_raw(-1), None) {
                Ok(status) => step.ok(children::describe_status(&status)),
                Err(errno) => step.fail(errno),
            }
            nar.note("ECHILD: there is nobody left to wait for, and the exit statuses are lost. That is the price of SIG_IGN.");
        }
        (Reap::None, Some(z)) if z > 0 => nar.note("Nobody waits, so every child stays a zombie: a pid and an exit status kept for a parent that never asks."),
        _ => {}
    }

    if args.hold > 0.0 {
        if zombies == Some(0) {
            // Nothing to show in ps: holding would only make the class wait.
            nar.note("--hold: there is no zombie to look at, because this way of reaping left none. Run it with --reap none or --reap wait-once to see zombies in ps.");
        } else {
            hold(nar, me, args.hold);
        }
    }
    nar.note("Now the demo reaps whatever is left, as every program must before it exits.");
    Ok(())
}

/// Read our pending signals from /proc/PID/status: SIGCHLD is one bit,
/// however many children exited.
fn pending_sigchld(nar: &Narrator, me: Pid, exited: usize) {
    let subject = format!("pid {me}");
    match kernel::process::pending_signals(me.as_raw()) {
        Ok(mask) => {
            let pending = mask & SIGCHLD_BIT != 0;
            nar.kernel(Fact::new(
                &subject,
                "pending_signals",
                json!({ "mask": format!("{mask:016x}"), "sigchld": pending }),
                "/proc/PID/status",
                if pending {
                    format!(
                        "{exited} children exited, and SIGCHLD is pending once (mask {mask:016x})"
                    )
                } else {
                    format!("SIGCHLD is not pending (mask {mask:016x})")
                },
            ));
        }
        Err(err) => nar.kernel(Fact::unavailable(
            subject,
            "pending_signals",
            "/proc/PID/status",
            err,
        )),
    }
}

/// --hold: keep the zombies for a while, and say how to look at them.
fn hold(nar: &Narrator, me: Pid, seconds: f64) {
    nar.startup(
        "hold",
        json!({ "seconds": seconds, "command": "ps -el | grep Z", "parent": me.as_raw() }),
        format!("holding for {seconds} s: in another terminal, run   ps -el | grep Z   (their parent is pid {me})"),
    );
    let step = nar.blocking(
        "nanosleep",
        format!("{seconds} s"),
        "--hold: keeping the zombies for you to look at",
    );
    match sys::nanosleep(Duration::from_secs_f64(seconds)) {
        Ok(()) => step.ok("0"),
        // EINTR: Ctrl-C; the caller goes on to reap everything.
        Err(errno) => step.fail(errno),
    }
}

/// The flag's spelling: "wait-once".
fn reap_name(reap: Reap) -> String {
    use clap::ValueEnum;
    reap.to_possible_value()
        .map(|value| value.get_name().to_string())
        .unwrap_or_default()
}
