//! `--model thread`: one thread per connection, blocking calls.
//!
//! The course's second version: the main thread only accepts, and each
//! connection gets a thread of its own (named `conn-N`) that runs the same
//! blocking loop as the iterative server (`iterative::serve_connection`).
//! A slow client now holds only its own thread. The cost is a thread (and
//! its stack) per connection: fine for dozens, heavy for thousands, which
//! is why the default model is epoll.
//!
//! The threads are scoped: each is detached from the main loop (nobody
//! waits for it while the server runs), counted, and the scope joins every
//! one before the server returns. On Ctrl-C the main thread shuts every
//! live connection down, which wakes its thread from recv() or send(); it
//! marks the connection first, so that the thread narrates the end as the
//! server's doing, not as the client's FIN or reset.
//!
//! Try it: `netlab http-server --model thread --port 8000`.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use nix::sys::socket::{shutdown, Shutdown};
use serde_json::json;

use super::conn::{Conn, BLOCKING_CHUNK};
use super::iterative::{accept_blocking, serve_connection};
use super::listener::Acceptor;
use super::Config;
use crate::kernel;
use crate::narrate::{Fact, Narrator};
use crate::stop;
use crate::sys;

pub fn serve(nar: &Narrator, config: &Config, acceptor: &mut Acceptor<'_>) -> Result<()> {
    nar.note("One thread per connection: the main thread only accepts; each client's thread blocks in its own recv() and send(), so a slow client holds up only itself.");
    // The connections being served, so that a stop can shut them down,
    // each with the flag that tells its thread the shutdown was ours.
    let live: Mutex<Vec<(RawFd, Arc<AtomicBool>)>> = Mutex::new(Vec::new());
    let lock = || live.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let finished = AtomicU64::new(0);

    std::thread::scope(|scope| {
        let mut started: u64 = 0;
        let mut outcome: Result<()> = Ok(());
        while stop::requested().is_none() {
            let (conn_fd, peer) = match accept_blocking(nar, acceptor) {
                Ok(Some(accepted)) => accepted,
                Ok(None) => continue,
                Err(err) => {
                    outcome = Err(err);
                    break;
                }
            };
            started += 1;
            let raw = conn_fd.as_raw_fd();
            let stopping = Arc::new(AtomicBool::new(false));
            lock().push((raw, Arc::clone(&stopping)));
            let (lock, finished) = (&lock, &finished);
            let name = format!("conn-{started}");
            let spawned =
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn_scoped(scope, move || {
                        // Ctrl-C goes to the main thread, which wakes us.
                        stop::block_stop_signals_in_this_thread();
                        nar.in_thread(&name);
                        let mut scratch = vec![0u8; BLOCKING_CHUNK];
                        let mut conn = Conn::new(conn_fd, peer);
                        conn.stopping = Some(stopping);
                        let (conn, ending) =
                            serve_connection(nar, config, conn, &mut scratch, None);
                        // Leave the list before the fd is closed, so the main
                        // thread never shuts down a number reused by another file.
                        lock().retain(|(fd, _)| *fd != raw);
                        conn.close(nar, ending);
                        finished.fetch_add(1, Ordering::SeqCst);
                    });
            match spawned {
                Ok(_) => {
                    let running = started - finished.load(Ordering::Relaxed);
                    nar.gauge("threads_running", running);
                    if nar.showing() {
                        threads_fact(nar);
                        nar.info(
                            "thread_for_connection",
                            json!({ "peer": peer.to_string(), "fd": raw, "thread": started, "running": running }),
                            format!("thread conn-{started} serves {peer}; {running} connection thread(s) running"),
                        );
                    }
                }
                Err(err) => {
                    // The closure (and the socket in it) was dropped.
                    lock().retain(|(fd, _)| *fd != raw);
                    finished.fetch_add(1, Ordering::SeqCst);
                    nar.warning(
                        format!(
                            "could not start a thread for {peer}: {err}; its connection is closed"
                        ),
                        None,
                    );
                }
            }
        }
        // Stopping: wake every thread blocked in recv() or send(), and wait
        // until each has closed its connection and ended.
        let mut shut = false;
        while finished.load(Ordering::SeqCst) < started {
            if !shut {
                shut = true;
                nar.note("Stopping: shutdown() on every live connection wakes its thread from recv(), so it can close and end; then the threads are joined.");
                for (fd, stopping) in lock().iter() {
                    // First the mark, then the shutdown that wakes the thread.
                    stopping.store(true, Ordering::SeqCst);
                    // Its line is printed before the call (as for a call
                    // that waits): the woken thread reports at once, and its
                    // lines must come after their cause.
                    let step = nar.blocking(
                        "shutdown",
                        format!("fd {fd}, SHUT_RDWR"),
                        "which wakes this connection's thread",
                    );
                    match shutdown(*fd, Shutdown::Both) {
                        Ok(()) => step.ok("0"),
                        Err(errno) => step.fail(errno),
                    }
                }
            }
            let _ = sys::nanosleep(Duration::from_millis(20));
        }
        nar.info(
            "threads",
            json!({ "started": started, "finished": finished.load(Ordering::Relaxed) }),
            format!(
                "{started} connection thread(s) started, {} finished and joined",
                finished.load(Ordering::Relaxed)
            ),
        );
        outcome
    })
}

/// How many threads the process has now, read from /proc/PID/stat: the
/// evidence that each connection really is a thread of its own.
fn threads_fact(nar: &Narrator) {
    let pid = std::process::id() as i32;
    let subject = format!("pid {pid}");
    match kernel::read_stat(pid) {
        Ok(stat) => nar.kernel(Fact::new(
            &subject,
            "threads",
            json!(stat.num_threads),
            "/proc/PID/stat",
            format!(
                "{subject} has {} threads: main, netlab's stop helper, and one per open connection",
                stat.num_threads
            ),
        )),
        Err(err) => nar.kernel(Fact::unavailable(subject, "threads", "/proc/PID/stat", err)),
    }
}
