//! # fork-demo: one process becomes two
//!
//! fork() makes a copy of the calling process. The copy (the child) starts
//! life returning from the same fork() call as its parent; the only
//! difference is the value returned: the child's pid in the parent, 0 in
//! the child. From then on the two run side by side with separate memory:
//! a variable the child changes keeps its old value in the parent
//! (copy-on-write). The parent collects each child's exit status with
//! waitpid() and decodes it (an exit code, or the signal that ended it).
//!
//! The demo also shows why a program must flush its output buffers before
//! fork(): a buffered line is memory like any other, so both processes
//! would write it. `--no-flush` skips the flush; the line then arrives
//! twice (three times with two children...) in a pipe the parent reads, and
//! the parent counts the copies.
//!
//! System calls, in order: getpid, getppid, pipe2, write (the flush),
//! fork, then in each child getpid, getppid, write, _exit; in the parent
//! close, read until end of file, waitpid for every child.
//!
//! Try it (twice: the order of the lines from the two processes changes):
//!
//! ```text
//! netlab fork-demo --children 2
//! netlab fork-demo --no-flush
//! netlab fork-demo --children 3 --kill-last
//! ```
//!
//! Lesson: `netlab lesson processes`.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, getppid, Pid};
use serde_json::json;

use super::children::{self, Forked};
use crate::narrate::text::bytes;
use crate::narrate::Narrator;
use crate::stop;

/// The line written into the output buffer before fork().
const BUFFERED_LINE: &str = "written once, before fork()\n";

/// The value of `counter` before fork(); the children change their copies.
const COUNTER_BEFORE: i64 = 100;

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// How many children to fork. Child number K ends with _exit(K), so the
    /// parent can tell the statuses apart.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub children: u32,

    /// Do not flush the buffered line before fork(): every process then
    /// holds a copy of it and writes it, and the parent counts the copies.
    #[arg(long)]
    pub no_flush: bool,

    /// The last child ends by sending itself SIGKILL instead of calling
    /// _exit, so the parent decodes a death by signal.
    #[arg(long)]
    pub kill_last: bool,
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "fork-demo",
        "processes",
        "fork(): one process becomes two, each with its own copy of memory.",
    );

    // 1. Who are we? Every process has an id and a parent.
    let me = narrate_ids(nar, "the parent");
    children::process_state(nar, me, "the parent, running this demo");

    // 2. A variable, set before fork(): the children get a copy of it.
    let mut counter = COUNTER_BEFORE;
    nar.info(
        "counter",
        json!({ "value": counter, "who": "parent", "when": "before fork" }),
        format!("counter = {counter} in pid {me}, before fork()"),
    );

    // 3. A pipe, and a buffered writer in front of it: our stand-in for
    //    stdout. BufWriter keeps what we write in this process's memory
    //    until it is flushed, as C's stdio and Python's print do when the
    //    output is a pipe or a file. The parent will read the pipe and
    //    count the copies of the line.
    let step = nar.call("pipe2", "O_CLOEXEC");
    let (read_end, write_end) = step.check(nix::unistd::pipe2(OFlag::O_CLOEXEC), |(r, w)| {
        format!(
            "read end fd {}, write end fd {}",
            r.as_raw_fd(),
            w.as_raw_fd()
        )
    })?;
    let write_fd = write_end.as_raw_fd();
    let mut buffered = BufWriter::new(File::from(write_end));
    buffered
        .write_all(BUFFERED_LINE.as_bytes())
        .context("writing into the buffer")?;
    nar.info(
        "buffered",
        json!({ "bytes": BUFFERED_LINE.len(), "fd": write_fd }),
        format!(
            "{} put into a userspace buffer for fd {write_fd}; no system call yet",
            bytes(BUFFERED_LINE.len())
        ),
    );
    if args.no_flush {
        nar.note("--no-flush: the line is still in this process's buffer, and fork() is about to copy that memory.");
    } else {
        let step = nar.call(
            "write",
            format!("fd {write_fd}, {}", bytes(BUFFERED_LINE.len())),
        );
        match buffered.flush() {
            Ok(()) => step.ok_value(BUFFERED_LINE.len() as i64, bytes(BUFFERED_LINE.len())),
            Err(err) => {
                step.fail(Errno::from_raw(err.raw_os_error().unwrap_or(0)));
                return Err(err).context("flushing the buffer");
            }
        }
        nar.note("Flushed before fork(): the buffer is empty, so there is nothing in it for the child to copy.");
    }

    // 4. fork(), once per child. Each child runs `child_life` and never
    //    returns from it; the parent goes on forking.
    let mut kids: Vec<Pid> = Vec::new();
    for number in 1..=args.children {
        if stop::requested().is_some() {
            break;
        }
        match children::fork(nar, "copying this process")? {
            Forked::Child => child_life(nar, args, number, me, &mut counter, buffered),
            Forked::Parent { child } => {
                kids.push(child);
                children::process_state(nar, child, "the new child");
            }
        }
    }
    nar.note("From here on the parent and its children run at the same time: the order of their lines is up to the scheduler, and changes from run to run.");

    // 5. The parent's copy of the variable did not change.
    nar.info(
        "counter",
        json!({ "value": counter, "who": "parent", "when": "after fork" }),
        format!("counter = {counter} in pid {me}, the parent: unchanged"),
    );

    // 6. Flush our own copy of the buffer (if --no-flush left the line in
    //    it), close our write end, and read the pipe to its end: read()
    //    returns 0 only once every process has closed its write end.
    drop_writer(nar, buffered, args.no_flush, "the parent")?;
    let copies = read_copies(nar, read_end)?;
    let expected = if args.no_flush { kids.len() + 1 } else { 1 };
    nar.info(
        "buffered_copies",
        json!({ "copies": copies, "processes": kids.len() + 1, "flushed": !args.no_flush }),
        format!("the line written once before fork() arrived {copies} time(s)"),
    );
    if copies == expected && args.no_flush {
        nar.note("Every process wrote the copy of the buffer it inherited: one line in the program, several in the output. Flush before fork().");
    } else if copies == 1 && !args.no_flush {
        nar.note("One copy: it left the buffer before fork(), so no child inherited it.");
    }

    // 7. Reap every child and decode how it ended.
    for child in &kids {
        children::process_state(nar, *child, "a child, before waitpid()");
        let Some(status) = children::wait_for(nar, *child, "this child to end") else {
            break;
        };
        nar.info(
            "child_status",
            children::status_value(&status),
            children::describe_status(&status),
        );
        children::process_state(nar, *child, "the reaped child");
    }
    children::reap_all(nar, stop::requested().is_some());
    Ok(())
}

/// getpid() and getppid(), narrated; returns our pid.
fn narrate_ids(nar: &Narrator, who: &str) -> Pid {
    let step = nar.call("getpid", "");
    let me = getpid();
    step.ok_value(i64::from(me.as_raw()), format!("{me} ({who})"));
    let step = nar.call("getppid", "");
    let parent = getppid();
    step.ok_value(
        i64::from(parent.as_raw()),
        format!("{parent} ({who}'s parent)"),
    );
    me
}

/// What a child does: show who it is, change its copy of the variable,
/// flush its copy of the buffer, and end. Never returns.
fn child_life(
    nar: &Narrator,
    args: &Args,
    number: u32,
    parent: Pid,
    counter: &mut i64,
    buffered: BufWriter<File>,
) -> ! {
    let me = narrate_ids(nar, "a child");
    children::process_state(nar, me, "the child itself");
    children::process_state(nar, parent, "the child's parent");

    *counter += i64::from(number) * 1000;
    nar.info(
        "counter",
        json!({ "value": *counter, "who": "child", "when": "after fork", "child": number }),
        format!("counter = {counter} in pid {me}, child {number}: changed only in its own copy"),
    );

    if drop_writer(nar, buffered, args.no_flush, "this child").is_err() {
        children::exit_child(1);
    }
    if args.kill_last && number == args.children {
        nar.info(
            "child_exit",
            json!({ "child": number, "signal": "SIGKILL" }),
            format!("child {number} (pid {me}) sends itself SIGKILL"),
        );
        let _ = nix::sys::signal::kill(me, Signal::SIGKILL);
    }
    nar.info(
        "child_exit",
        json!({ "child": number, "exit_code": number }),
        format!("child {number} (pid {me}) calls _exit({number})"),
    );
    // _exit, not exit: the atexit handlers and stdio buffers the child
    // copied belong to the parent's program.
    children::exit_child(number as i32)
}

/// Flush whatever is left in this process's copy of the buffer (the line
/// itself with --no-flush, nothing otherwise), then close the write end.
fn drop_writer(nar: &Narrator, buffered: BufWriter<File>, no_flush: bool, who: &str) -> Result<()> {
    let fd = buffered.get_ref().as_raw_fd();
    // Flushed before fork, the buffer is empty and into_inner() writes
    // nothing; with --no-flush it writes this process's copy of the line.
    let step =
        no_flush.then(|| nar.call("write", format!("fd {fd}, {}", bytes(BUFFERED_LINE.len()))));
    match buffered.into_inner() {
        Ok(file) => {
            if let Some(step) = step {
                step.ok_value(BUFFERED_LINE.len() as i64, bytes(BUFFERED_LINE.len()));
            }
            let step = nar.call("close", format!("fd {fd}"));
            step.check(nix::unistd::close(OwnedFd::from(file)), |_| "0".into())?;
            Ok(())
        }
        Err(err) => {
            let errno = Errno::from_raw(err.error().raw_os_error().unwrap_or(libc::EIO));
            if let Some(step) = step {
                step.fail(errno);
            }
            Err(anyhow::anyhow!(
                "{who} could not write its buffer: {}",
                err.error()
            ))
        }
    }
}

/// read() the pipe until end of file and count the copies of the line.
fn read_copies(nar: &Narrator, read_end: OwnedFd) -> Result<usize> {
    let fd = read_end.as_raw_fd();
    let mut pipe = File::from(read_end);
    let mut received = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let step = nar.blocking(
            "read",
            format!("fd {fd}, {}", bytes(buf.len())),
            "until every process has closed its write end",
        );
        match pipe.read(&mut buf) {
            Ok(0) => {
                step.ok_value(0, "0: end of file, every write end is closed");
                break;
            }
            Ok(count) => {
                step.ok_value(count as i64, bytes(count));
                received.extend_from_slice(&buf[..count]);
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {
                step.fail(Errno::EINTR);
                if stop::requested().is_some() {
                    break;
                }
            }
            Err(err) => {
                step.fail(Errno::from_raw(err.raw_os_error().unwrap_or(0)));
                return Err(err).context("reading the pipe");
            }
        }
    }
    let text = String::from_utf8_lossy(&received);
    Ok(text.matches(BUFFERED_LINE).count())
}
