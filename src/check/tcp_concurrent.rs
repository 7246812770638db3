//! # tcp-concurrent: check an echo server that serves many clients at once
//!
//! The student's server speaks tcp-echo's protocol (every byte back, until
//! the client closes), but no client may have to wait for another. It
//! runs every tcp-echo probe first ([`tcp_echo::run_probes`]), then three
//! of its own:
//!
//! | probe            | the clients                                         | what is read from the kernel |
//! |------------------|-----------------------------------------------------|------------------------------|
//! | `twenty-at-once` | one stays connected and silent; 20 more arrive at once and each wants its echo | |
//! | `child-listener` | three stay connected, so a forking server has children | each child's `/proc/PID/fd`: does it hold the listening socket? |
//! | `reaped`         | every client has left                                | `/proc/PID/stat` of everything under the program: zombies (`Z`), children still running |
//!
//! An iterative server (one client at a time) fails `twenty-at-once`: it
//! sits in `recv()` on the silent client while the others wait in the
//! accept queue. select/poll/epoll, a thread per client or `fork()` per
//! client all pass. A forking server has two more ways to go wrong, which
//! only the kernel shows: a child that keeps the listening socket it
//! inherited from `fork()`, and children that exit but are never reaped
//! (zombies). A threaded or select server has no children, and those two
//! probes pass and say so. A pre-forking server is correct too: its
//! workers exist before any client connects and accept() themselves, so
//! they must hold the listener. child-listener tells them apart: children
//! still running while no client is connected, whose number does not grow
//! with clients, are workers; reaped then expects exactly them, and no
//! zombie.
//!
//! Try it: `netlab check tcp-concurrent -- python3 concurrent_server.py {port}`.
//! Reference answers: `tests/exercises/tcp_concurrent/good_*.py`.
//! Lessons: `netlab lesson io-multiplexing`, `netlab lesson processes`.

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::net::{self, End};
use super::program::holds_socket;
use super::session::{Exercise, Outcome, ProbeInfo, Role, Session, Target};
use super::tcp_echo::{self, exchange};
use crate::kernel::process::{state_name, ProcStat};
use crate::narrate::Fact;

pub static EXERCISE: Exercise = Exercise {
    name: "tcp-concurrent",
    summary: "tcp-echo for many clients at once: one silent client must not stall the others; no zombies, no inherited listener.",
    lesson: "io-multiplexing",
    role: Role::TcpServer,
    example: "python3 concurrent_server.py {port}",
    probes: PROBES,
    prepare: None,
    run,
};

const TWENTY_AT_ONCE: ProbeInfo = ProbeInfo {
    name: "twenty-at-once",
    checks: "20 clients connecting at once all get their echo while another client stays connected and silent",
};
const CHILD_LISTENER: ProbeInfo = ProbeInfo {
    name: "child-listener",
    checks: "no child forked for a client holds the listening socket (/proc/PID/fd); pre-forked workers, there before any client, may",
};
const REAPED: ProbeInfo = ProbeInfo {
    name: "reaped",
    checks: "once the clients have left, no zombie and no child but pre-forked workers is under the server (/proc/PID/stat)",
};

/// tcp-echo's probes, then this exercise's own.
const PROBES: &[ProbeInfo] = &[
    tcp_echo::ECHO,
    tcp_echo::BINARY,
    tcp_echo::LARGE,
    tcp_echo::DISCONNECT,
    tcp_echo::RESET,
    tcp_echo::CLOSE_WAIT,
    tcp_echo::FD_GROWTH,
    TWENTY_AT_ONCE,
    CHILD_LISTENER,
    REAPED,
];

/// Clients in the `twenty-at-once` probe.
const AT_ONCE: usize = 20;
/// How long each of them may wait for its echo, in seconds. Served
/// concurrently, the slowest takes some 20 ms here (a forking server on
/// 2 cores); the margin is for a loaded machine.
const ANSWER_SECONDS: f64 = 2.5;
/// Processes named one by one in a fact about the program's children.
const SHOWN: usize = 8;

fn run(session: &mut Session) {
    if !tcp_echo::run_probes(session) {
        for probe in [TWENTY_AT_ONCE, CHILD_LISTENER, REAPED] {
            session.skip(probe.name, tcp_echo::NEEDS_ECHO);
        }
        return;
    }
    session.probe(TWENTY_AT_ONCE.name, 5.0, probe_twenty_at_once);
    // The pre-fork workers child-listener finds, for reaped.
    let workers: Workers = Arc::default();
    let found = Arc::clone(&workers);
    session.probe(CHILD_LISTENER.name, 5.0, move |target, deadline| {
        probe_child_listener(target, deadline, &found)
    });
    session.probe(REAPED.name, 5.0, move |target, deadline| {
        probe_reaped(target, deadline, &workers)
    });
}

/// The pids of a pre-forking server's workers: children that already
/// existed while no client was connected, and did not grow in number with
/// clients. Each calls accept() on the listening socket it shares.
type Workers = Arc<Mutex<Vec<i32>>>;

/// One client of many: connect, send its line, wait for the echo.
/// Ok: how long the echo took; Err: what went wrong, in a few words.
fn one_client(target: &Target, n: usize, deadline: Instant) -> Result<Duration, String> {
    let started = Instant::now();
    let line = format!("client {n} of {AT_ONCE}, all at once\n");
    match exchange(target.addr, line.as_bytes(), deadline) {
        Ok(echo) if echo.matches(line.as_bytes()) => Ok(started.elapsed()),
        Ok(echo) => {
            // Waiting in the accept queue, or accepted and left unanswered?
            let kernel = tcp_echo::silence(&echo)
                .map(|(_, sentence, _)| format!(" ({sentence}, /proc/net/tcp)"))
                .unwrap_or_default();
            Err(format!(
                "client {n}: {}{kernel}",
                echo.describe(line.as_bytes())
            ))
        }
        Err(why) => Err(format!("client {n}: {why}")),
    }
}

fn probe_twenty_at_once(target: Target, deadline: Instant) -> Outcome {
    let expected = format!(
        "each of {AT_ONCE} clients arriving at once gets its echo within {ANSWER_SECONDS} s, while one more client stays connected and sends nothing"
    );
    let hint = "Your server waits on one client at a time: serve them concurrently, with select/poll/epoll (the selectors module) in one loop, a thread per client, or fork() per client.";
    // The silent client: connected, never sends. An iterative server
    // accepts it and then blocks in recv() on it.
    let silent = match net::connect(target.addr, deadline) {
        Ok(stream) => stream,
        Err(err) => return Outcome::fail(expected, net::connect_failure(target.addr, &err), hint),
    };
    // Give the server time to accept() it before the crowd arrives.
    std::thread::sleep(target.time(0.2));
    let answer_by = (Instant::now() + target.time(ANSWER_SECONDS)).min(deadline);
    let results: Vec<Result<Duration, String>> = std::thread::scope(|scope| {
        let clients: Vec<_> = (1..=AT_ONCE)
            .map(|n| {
                let target = &target;
                scope.spawn(move || one_client(target, n, answer_by))
            })
            .collect();
        clients
            .into_iter()
            .map(|client| {
                client
                    .join()
                    .unwrap_or_else(|_| Err("netlab's client thread failed".to_string()))
            })
            .collect()
    });
    drop(silent);
    let served: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    let slowest = served.iter().max().copied().unwrap_or_default();
    if served.len() == AT_ONCE {
        return Outcome::pass(
            expected,
            format!(
                "all {AT_ONCE} clients got their echo (the slowest after {} ms) while the silent client stayed connected",
                slowest.as_millis()
            ),
        );
    }
    let first_failure = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .cloned()
        .unwrap_or_default();
    Outcome::fail(
        expected,
        format!(
            "{} of {AT_ONCE} clients got their echo while one client stayed connected and silent; {first_failure}",
            served.len()
        ),
        hint,
    )
}

/// Everything under the server that is still running (not a zombie).
fn live_descendants(target: &Target) -> Vec<ProcStat> {
    target
        .descendants()
        .into_iter()
        .filter(|stat| stat.state != 'Z')
        .collect()
}

/// The processes under the program, as a fact from /proc/PID/stat.
fn children_fact(target: &Target, procs: &[ProcStat], when: &str) -> Fact {
    let zombies = procs.iter().filter(|p| p.state == 'Z').count();
    // The first few by name; a pile of 80 zombies needs no full list.
    let mut list: Vec<String> = procs
        .iter()
        .take(SHOWN)
        .map(|p| format!("{} {} ({})", p.pid, p.comm, state_name(p.state)))
        .collect();
    if procs.len() > SHOWN {
        list.push(format!("and {} more", procs.len() - SHOWN));
    }
    let text = if procs.is_empty() {
        format!(
            "{when}: no process under your program (pid {})",
            target.pid()
        )
    } else {
        format!(
            "{when}: {} process(es) under your program (pid {}), {zombies} of them zombies: {}",
            procs.len(),
            target.pid(),
            list.join(", ")
        )
    };
    Fact::new(
        format!("pid {}", target.pid()),
        "children",
        json!({
            "pids": procs.iter().map(|p| p.pid).collect::<Vec<_>>(),
            "states": procs.iter().map(|p| p.state.to_string()).collect::<Vec<_>>(),
            "zombies": zombies,
        }),
        "/proc/PID/stat",
        text,
    )
}

fn probe_child_listener(target: Target, deadline: Instant, workers: &Mutex<Vec<i32>>) -> Outcome {
    let expected =
        "a child process forked for one client has closed its copy of the listening socket (pre-forked workers, which accept() themselves, keep it)";
    let hint = "In the child, close the listening socket right after fork() (with socketserver.ForkingTCPServer, call self.server.socket.close() in your handler's setup()): the child serves only its own client, and a child that keeps the listener holds the port open even after the server has stopped.";
    let Some(inode) = target.socket_inode else {
        return Outcome::pass(
            expected,
            "the listening socket's inode is unknown, so no child could be checked",
        )
        .with_fact(Fact::unavailable(
            "the listening socket",
            "listener_fd",
            "/proc/PID/fd",
            "its inode was not found at start",
        ));
    };
    // First, with no client connected: wait for the children of earlier
    // clients to leave. Whatever still runs then was not forked for a
    // client: a pre-forking server's workers (or children that never end,
    // which reaped reports).
    let idle_until = (Instant::now() + target.time(1.0)).min(deadline);
    let idle = loop {
        let idle = live_descendants(&target);
        if idle.is_empty() || net::passed(idle_until) {
            break idle;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Three clients, each echoed, kept connected: a forking server now has
    // three children serving them. (An iterative server echoes only the
    // first; that was twenty-at-once's finding, not this probe's.)
    let echo_by = (Instant::now() + target.time(1.0)).min(deadline);
    let mut clients: Vec<TcpStream> = Vec::new();
    let mut echoed = 0;
    for n in 1..=3 {
        let line = format!("client {n} of 3, staying a while\n");
        if let Ok(echo) = exchange(target.addr, line.as_bytes(), echo_by) {
            if echo.matches(line.as_bytes()) {
                echoed += 1;
            }
            let done = echo.end == End::TimedOut;
            clients.push(echo.stream);
            if done {
                break; // not served in time: the others would not be either
            }
        }
    }
    let children = live_descendants(&target);
    let mut holders: Vec<Fact> = Vec::new();
    for child in &children {
        if let Some(fd) = holds_socket(child.pid, inode) {
            holders.push(Fact::new(
                format!("pid {}", child.pid),
                "listener_fd",
                json!(fd),
                "/proc/PID/fd",
                format!(
                    "child pid {} ({}) holds the listening socket (inode {inode}) as fd {fd}",
                    child.pid, child.comm
                ),
            ));
        }
    }
    let census = children_fact(&target, &children, "with 3 clients connected");
    drop(clients);
    let forked = children
        .iter()
        .filter(|child| !idle.iter().any(|was| was.pid == child.pid))
        .count();
    if !idle.is_empty() && forked == 0 {
        // A pre-forking server: its workers share the listener, on purpose.
        if let Ok(mut workers) = workers.lock() {
            *workers = idle.iter().map(|p| p.pid).collect();
        }
        let before = children_fact(&target, &idle, "with no client connected");
        // Each worker may hold the shared listener or, with SO_REUSEPORT,
        // one of its own.
        let inodes = target.program.listener_inodes();
        let listening = idle
            .iter()
            .filter(|p| {
                inodes
                    .iter()
                    .any(|&inode| holds_socket(p.pid, inode).is_some())
            })
            .count();
        let what = match listening {
            0 => "none of them holds a listening socket: helpers, not workers".to_string(),
            n if n == idle.len() => {
                "pre-forked workers, each holding a listening socket to accept() on".to_string()
            }
            n => format!("pre-forked workers, {n} of which hold a listening socket to accept() on"),
        };
        return Outcome::pass(
            expected,
            format!(
                "{echoed} of 3 clients were echoed and stayed connected; the {} process(es) under your server already ran with no client connected and did not grow with clients: {what}",
                idle.len(),
            ),
        )
        .with_facts([before, census]);
    }
    if children.is_empty() {
        return Outcome::pass(
            expected,
            format!("{echoed} of 3 clients were echoed and stayed connected; your program has no child processes (it serves from one process), so no child can hold the listener"),
        )
        .with_fact(census);
    }
    if holders.is_empty() {
        return Outcome::pass(
            expected,
            format!(
                "{echoed} of 3 clients were echoed and stayed connected; none of the {} child process(es) holds the listening socket",
                children.len()
            ),
        )
        .with_fact(census);
    }
    Outcome::fail(
        expected,
        format!(
            "{echoed} of 3 clients were echoed and stayed connected; {} of the {} child process(es) still hold the listening socket",
            holders.len(),
            children.len()
        ),
        hint,
    )
    .with_fact(census)
    .with_facts(holders)
}

/// How many tracebacks (other than a reset peer's) make `reaped` a warning:
/// one may be a single client's bad luck; several are a pattern.
const CRASHES_NOTED: usize = 3;

fn probe_reaped(target: Target, deadline: Instant, workers: &Mutex<Vec<i32>>) -> Outcome {
    let expected = "once every client has left, nothing is left under your program but pre-forked workers: each child forked for a client has exited and been reaped";
    let workers: Vec<i32> = workers.lock().map(|w| w.clone()).unwrap_or_default();
    let is_worker = |p: &ProcStat| p.state != 'Z' && workers.contains(&p.pid);
    // Every client of the earlier probes has closed. Children see EOF,
    // exit, and the parent's SIGCHLD handler reaps them: allow a moment.
    let settle_until = (Instant::now() + target.time(1.0)).min(deadline);
    let procs = loop {
        let procs = target.descendants();
        if procs.iter().all(is_worker) || net::passed(settle_until) {
            break procs;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let census = children_fact(&target, &procs, "after every client left");
    let zombies: Vec<i32> = procs
        .iter()
        .filter(|p| p.state == 'Z')
        .map(|p| p.pid)
        .collect();
    let kept = procs.iter().filter(|p| is_worker(p)).count();
    let running = procs.len() - zombies.len() - kept;
    // Children that were all reaped, but that ended on an exception: a
    // traceback each (a child that forgot os._exit(0) and ran on into
    // the parent's loop, for one).
    let crashes: Vec<_> = target
        .program
        .tracebacks(usize::MAX)
        .into_iter()
        .filter(|tb| !tb.is_peer_gone())
        .collect();
    if zombies.is_empty() && running == 0 && crashes.len() >= CRASHES_NOTED {
        let last = crashes
            .last()
            .and_then(|tb| tb.exception.clone())
            .unwrap_or_default();
        return Outcome::warn(
            expected,
            format!(
                "every child was reaped, but your program printed {} Python tracebacks, the last ending in `{last}`: processes that ended on an exception",
                crashes.len()
            ),
            "A child should end with os._exit(0) once its client has gone: without it, the child returns into the parent's loop (accept() on the listener it closed) and dies on the exception. Read one traceback from the bottom up.",
        )
        .with_fact(census);
    }
    if procs.is_empty() {
        return Outcome::pass(expected, "no process is left under your program").with_fact(census);
    }
    if zombies.is_empty() && running == 0 {
        return Outcome::pass(
            expected,
            format!("only the {kept} pre-forked worker(s) are left under your program, the same as before any client came; no zombie"),
        )
        .with_fact(census);
    }
    if !zombies.is_empty() {
        let hint = if reaped_by_a_client(&target, &zombies, deadline) {
            "Your server reaps only when the next client arrives (waitpid() before accept()), so finished children stay zombies while nobody connects: reap in a SIGCHLD handler, calling os.waitpid(-1, os.WNOHANG) in a loop until it returns (0, 0)."
        } else {
            "Reap every finished child: in a SIGCHLD handler, call os.waitpid(-1, os.WNOHANG) in a loop until it returns (0, 0), because signals merge and one call per signal is not enough."
        };
        return Outcome::fail(
            expected,
            format!(
                "{} zombie(s) under your program: children that exited and were never waited for",
                zombies.len()
            ),
            hint,
        )
        .with_fact(census);
    }
    Outcome::fail(
        expected,
        format!("{running} child process(es) still running after their clients left"),
        "A child must end with os._exit(0) as soon as its client has gone; one that goes back into the parent's loop or waits for something lingers, holding memory and descriptors.",
    )
    .with_fact(census)
}

/// Do the `zombies` go once one more client comes and goes? Then the
/// server reaps only on its way back to accept().
fn reaped_by_a_client(target: &Target, zombies: &[i32], deadline: Instant) -> bool {
    let line = b"one more client, to see who reaps\n";
    if exchange(target.addr, line, deadline).is_err() {
        return false;
    }
    let until = (Instant::now() + target.time(0.5)).min(deadline);
    loop {
        let still = target
            .descendants()
            .into_iter()
            .any(|p| p.state == 'Z' && zombies.contains(&p.pid));
        if !still {
            return true;
        }
        if net::passed(until) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
