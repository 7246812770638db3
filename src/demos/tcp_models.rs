//! # tcp-server --model fork|thread: serving many clients at once
//!
//! The iterative server (`tcp_server.rs`) serves one client from accept()
//! to close(), and the next client waits in the accept queue. The two
//! classic fixes live here; both reuse the iterative server's listener,
//! accept() and per-client loop.
//!
//! **fork**: after each accept(), fork(). The child serves that one client
//! and exits; the parent goes straight back to accept(). Three things make
//! or break such a server, and each is narrated with the evidence:
//!
//! - *Each process closes the descriptor it does not need.* After fork both
//!   hold the listening socket and the connection. The child closes the
//!   listening socket; the parent closes the connection. A connection is
//!   only really closed (FIN sent) when its last descriptor is closed, so a
//!   parent that keeps its copy (`--no-close-in-parent`) keeps every
//!   connection open after its child has finished with it. The plainest
//!   way to see it is a server that closes first (`--close-after 1`): the
//!   child answers, closes and exits, and yet both ends stay ESTABLISHED
//!   and the client never gets end-of-file.
//! - *Children are reaped.* A SIGCHLD handler loops on waitpid(-1, WNOHANG);
//!   without it (`--no-reap`) every finished child stays a zombie.
//! - *accept() is interrupted.* The handler runs while the parent waits in
//!   accept(), which then fails with EINTR; the parent simply calls it
//!   again.
//!
//! **thread**: after each accept(), start a thread for the client. Threads
//! share the process's memory and file-descriptor table, so there is
//! nothing to close twice and nothing to reap, but also no wall between
//! clients: one thread's crash ends them all.
//!
//! Try it:
//!
//! ```text
//! netlab tcp-server --model fork --port 8888
//! netlab tcp-server --model fork --no-close-in-parent --close-after 1
//! netlab tcp-server --model thread
//! ```
//!
//! Lesson: `netlab lesson tcp` (concurrent servers).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::SigHandler;
use nix::sys::socket::{shutdown, Shutdown};
use nix::sys::wait::WaitStatus;
use nix::unistd::{getpid, Pid};
use serde_json::json;

use super::children::{self, Forked, SigchldReap};
use super::tcp_server::{accept_client, delay_before_accept, serve_client, Args};
use crate::kernel::{self, TcpState};
use crate::narrate::{Fact, Narrator};
use crate::stop;
use crate::sys;

/// One child process per client.
pub fn serve_with_fork(nar: &Narrator, args: &Args, listen_fd: &OwnedFd) -> Result<()> {
    let me = getpid();
    if args.no_reap {
        nar.note("--no-reap: no SIGCHLD handler, and nobody calls waitpid(). Each child that finishes stays a zombie until the server exits.");
    } else {
        children::install_sigchld(nar, SigchldReap::Loop)?;
        nar.note("When a child exits, the kernel sends SIGCHLD; the handler reaps every finished child, so none stays a zombie.");
    }
    // --no-close-in-parent: the parent's copies, kept (the bug) until exit.
    let mut kept: Vec<Kept> = Vec::new();
    // Which child serves which client, to say whose connection ended.
    let mut serving: Vec<(Pid, SocketAddr)> = Vec::new();

    let mut served: u64 = 0;
    while stop::requested().is_none() && args.max_clients.is_none_or(|max| served < max) {
        // A child may have ended while we were busy with the last client:
        // say so now rather than after the next accept().
        let reaped = report_reaped(nar, &serving);
        show_ended(nar, &reaped, &mut kept);
        if args.accept_delay > 0.0 && !delay_before_accept(nar, listen_fd, args.accept_delay) {
            break;
        }
        let accepted = accept_client(nar, listen_fd)?;
        let reaped = report_reaped(nar, &serving);
        if !reaped.is_empty() && accepted.is_none() && stop::requested().is_none() {
            nar.note("That EINTR came from SIGCHLD: accept() was interrupted so the handler could reap, and the server simply calls accept() again.");
        }
        show_ended(nar, &reaped, &mut kept);
        let Some((conn_fd, peer)) = accepted else {
            continue;
        };
        served += 1;
        match children::fork(nar, "one child process for this client")? {
            Forked::Child => {
                // The child never accepts: it closes its copy of the
                // listening socket and serves this one client. (The parent's
                // OwnedFd is never dropped here: the child ends in _exit.)
                let listen_raw = listen_fd.as_raw_fd();
                let step = nar.call("close", format!("fd {listen_raw}"));
                let _ = step.check(nix::unistd::close(listen_raw), |_| "0".into());
                nar.note("The child closes its copy of the listening socket: it serves this one client and never calls accept().");
                nar.fd_table();
                let code = match serve_client(nar, args, None, conn_fd, peer) {
                    Ok(()) => 0,
                    Err(err) => {
                        nar.warning(format!("serving {peer} failed: {err:#}"), None);
                        1
                    }
                };
                children::exit_child(code)
            }
            Forked::Parent { child } => {
                serving.push((child, peer));
                nar.info(
                    "child_for_client",
                    json!({ "pid": child.as_raw(), "peer": peer.to_string() }),
                    format!("child {child} serves {peer}; the parent goes back to accept()"),
                );
                let fd = conn_fd.as_raw_fd();
                if args.no_close_in_parent {
                    nar.note("--no-close-in-parent: the parent keeps its copy of the connection. When the child closes its copy, the socket stays open, so no FIN is sent and the client never sees end-of-file.");
                    let local = sys::local_addr(fd).ok();
                    kept.push(Kept {
                        conn_fd,
                        local,
                        peer,
                        child,
                        child_ended: false,
                    });
                } else {
                    let step = nar.call("close", format!("fd {fd}"));
                    step.check(nix::unistd::close(conn_fd), |_| "0".into())?;
                    nar.note("The parent closes its copy of the connection. The child's copy is now the only one, so when the child closes it, the client gets FIN.");
                }
                nar.fd_table();
                if args.no_reap {
                    children::children_state(nar, me);
                }
            }
        }
    }

    // Stop reaping in the handler; reap_all() does the rest in the open.
    if !args.no_reap {
        children::set_sigchld(nar, SigHandler::SigDfl)?;
        let reaped = report_reaped(nar, &serving);
        show_ended(nar, &reaped, &mut kept);
    }
    if args.no_reap {
        if let Ok(list) = kernel::children_of(me.as_raw()) {
            let zombies = list.iter().filter(|child| child.state == 'Z').count();
            nar.info(
                "zombies",
                json!({ "zombies": zombies }),
                format!("--no-reap: {zombies} zombie(s) piled up; reaping them now, before exit"),
            );
        }
    }
    // With --no-reap the children were never reported: ask /proc which of
    // them have ended (a zombie holds no descriptors any more).
    if let Ok(list) = kernel::children_of(me.as_raw()) {
        for copy in kept.iter_mut() {
            let running = list
                .iter()
                .any(|child| child.pid == copy.child.as_raw() && child.state != 'Z');
            copy.child_ended = !running;
        }
    }
    for copy in kept {
        show_kept(nar, &copy);
        let step = nar.call("close", format!("fd {}", copy.conn_fd.as_raw_fd()));
        step.check(nix::unistd::close(copy.conn_fd), |_| "0".into())?;
        if copy.child_ended {
            nar.note("The parent's copy was the last one: only now is the connection closed and FIN sent to the client.");
        }
    }
    // With --max-clients the children finish their clients first; after
    // Ctrl-C or SIGTERM they are asked to stop.
    children::reap_all(nar, stop::requested().is_some());
    Ok(())
}

/// Narrate what the SIGCHLD handler reaped, naming each child's client.
/// Returns the pids reaped.
fn report_reaped(nar: &Narrator, serving: &[(Pid, SocketAddr)]) -> Vec<Pid> {
    let reaped = children::take_reaped();
    for status in &reaped {
        let peer = status
            .pid()
            .and_then(|pid| serving.iter().find(|(child, _)| *child == pid))
            .map(|(_, peer)| peer.to_string());
        let mut value = children::status_value(status);
        value["peer"] = json!(peer);
        nar.info(
            "reaped",
            value,
            format!(
                "the SIGCHLD handler reaped the child of {}: {}",
                peer.as_deref().unwrap_or("an unknown client"),
                children::describe_status(status)
            ),
        );
    }
    reaped.iter().filter_map(WaitStatus::pid).collect()
}

/// --no-close-in-parent: a connection whose descriptor the parent kept.
struct Kept {
    /// The parent's copy of the connection (the child had the other one).
    conn_fd: OwnedFd,
    /// Our end's address, to find the connection in /proc/net/tcp.
    local: Option<SocketAddr>,
    peer: SocketAddr,
    /// The child that served this client.
    child: Pid,
    /// Has that child ended (reaped, or a zombie with --no-reap)? Then the
    /// parent's copy is the only descriptor left.
    child_ended: bool,
}

/// For each connection the parent kept whose child has just been reaped,
/// read from the kernel what became of it.
fn show_ended(nar: &Narrator, reaped: &[Pid], kept: &mut [Kept]) {
    for copy in kept.iter_mut() {
        if reaped.contains(&copy.child) {
            copy.child_ended = true;
            show_kept(nar, copy);
        }
    }
}

/// A connection the parent kept: its state, read from the kernel.
fn show_kept(nar: &Narrator, copy: &Kept) {
    // Nobody would see it (--quiet, or the throttle): do not read it.
    let Some(local) = copy.local.filter(|_| nar.showing()) else {
        return;
    };
    let peer = copy.peer;
    let ours = nar.connection_state(local, peer, "the server's end");
    if sys::is_on_this_machine(peer.ip()) {
        nar.connection_state(peer, local, "the client's end");
    }
    if !copy.child_ended {
        return;
    }
    match ours {
        Some(TcpState::Established) => {
            nar.note("Still ESTABLISHED, although the child closed its copy and has exited: the parent's copy keeps the socket open, so no FIN was sent. The client will never get end-of-file while the parent holds this fd.");
        }
        Some(TcpState::CloseWait) => {
            nar.note("The child has closed its copy, but the parent's copy keeps this end open: no FIN goes out until the parent closes it too.");
        }
        _ => {}
    }
}

/// One thread per client.
pub fn serve_with_threads(nar: &Narrator, args: &Args, listen_fd: &OwnedFd) -> Result<()> {
    let pid = std::process::id() as i32;
    // The connections being served, so that a stop can shut them down and
    // the threads blocked in recv() wake up.
    let live: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());
    let lock = || live.lock().unwrap_or_else(|poisoned| poisoned.into_inner());

    std::thread::scope(|scope| {
        let mut served: u64 = 0;
        let mut outcome: Result<()> = Ok(());
        while stop::requested().is_none() && args.max_clients.is_none_or(|max| served < max) {
            if args.accept_delay > 0.0 && !delay_before_accept(nar, listen_fd, args.accept_delay) {
                break;
            }
            let (conn_fd, peer) = match accept_client(nar, listen_fd) {
                Ok(Some(accepted)) => accepted,
                Ok(None) => continue,
                Err(err) => {
                    outcome = Err(err);
                    break;
                }
            };
            served += 1;
            let raw = conn_fd.as_raw_fd();
            lock().push(raw);
            let lock = &lock;
            let name = format!("client-{served}");
            let spawned =
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn_scoped(scope, move || {
                        // Signals for the demo go to the main thread.
                        stop::block_stop_signals_in_this_thread();
                        // Each of this thread's lines starts with [client-N].
                        nar.in_thread(&name);
                        let step = nar.call("gettid", "");
                        let tid = nix::unistd::gettid();
                        step.ok_value(
                            i64::from(tid.as_raw()),
                            format!("{tid}: this client's thread, in process {pid}"),
                        );
                        if let Err(err) = serve_client(nar, args, None, conn_fd, peer) {
                            nar.warning(format!("serving {peer} failed: {err:#}"), None);
                        }
                        lock().retain(|fd| *fd != raw);
                    });
            match spawned {
                Ok(_) => {
                    nar.info(
                        "thread_for_client",
                        json!({ "peer": peer.to_string(), "fd": raw }),
                        format!(
                            "a new thread serves {peer}; the main thread goes back to accept()"
                        ),
                    );
                    threads_fact(nar, pid);
                    nar.note("The thread shares everything with the main thread: memory, the pid and the fd table. Nothing needs closing twice and nothing needs reaping.");
                }
                Err(err) => {
                    lock().retain(|fd| *fd != raw);
                    nar.warning(
                        format!(
                            "could not start a thread for {peer}: {err}; its connection is closed"
                        ),
                        None,
                    );
                }
            }
        }
        // Wait for the threads; on a stop, shut their connections down so
        // that their blocking recv() returns 0 and they end.
        let mut shut = false;
        while !lock().is_empty() {
            if !shut && (stop::requested().is_some() || outcome.is_err()) {
                shut = true;
                nar.note("Stopping: shutdown() on every client's socket wakes the threads blocked in recv(), so they can close and end.");
                for fd in lock().iter() {
                    let step = nar.call("shutdown", format!("fd {fd}, SHUT_RDWR"));
                    match shutdown(*fd, Shutdown::Both) {
                        Ok(()) => step.ok("0"),
                        Err(errno) => step.fail(errno),
                    }
                }
            }
            let _ = sys::nanosleep(Duration::from_millis(20));
        }
        outcome
    })
}

/// How many threads the process has now, from /proc/PID/stat.
fn threads_fact(nar: &Narrator, pid: i32) {
    let subject = format!("pid {pid}");
    match kernel::read_stat(pid) {
        Ok(stat) => nar.kernel(Fact::new(
            &subject,
            "threads",
            json!(stat.num_threads),
            "/proc/PID/stat",
            format!(
                "{subject} has {} threads: main, netlab's stop helper, and one per client",
                stat.num_threads
            ),
        )),
        Err(err) => nar.kernel(Fact::unavailable(subject, "threads", "/proc/PID/stat", err)),
    }
}
