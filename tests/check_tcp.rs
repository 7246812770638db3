//! `netlab check tcp-echo` and `netlab check tcp-concurrent` against the
//! Python reference answers and their deliberately broken variants in
//! tests/exercises/. Each good answer passes every probe; each broken one
//! fails exactly the probe meant to catch its bug, with the right hint,
//! while the other probes pass. After each run, nothing the program
//! started may be left: its pid is gone and no process is in its group.

mod common;

use serde_json::Value;

use common::check::{self, exercise, Run, CONCURRENT_PROBES, ECHO_PROBES};
use common::{dump, infos};

/// Run `netlab --json check EXERCISE -- python3 tests/exercises/SCRIPT {port}`
/// to its end (see `common::check::run` for what is checked after it).
fn check(exercise_name: &str, script: &str) -> Run {
    check::run(
        exercise_name,
        &[],
        &["python3", &exercise(script), "{port}"],
    )
}

#[test]
fn echo_good_passes_every_probe() {
    let run = check("tcp-echo", "tcp_echo/good.py");
    run.assert_all_pass(&ECHO_PROBES);
    // The kernel evidence behind the two last probes was read.
    let waiting = run.facts("close-wait", "close_wait");
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["value"], 0);
    let fds = run.facts("fd-growth", "open_fds");
    assert_eq!(fds.len(), 2, "before and after");
    assert_eq!(fds[0]["value"]["fds"], fds[1]["value"]["fds"]);
}

#[test]
fn echo_without_close_is_caught_in_close_wait() {
    let run = check("tcp-echo", "tcp_echo/broken_no_close.py");
    run.assert_caught(&ECHO_PROBES, "close-wait", "close()");
    let states = run.facts("close-wait", "tcp_state");
    assert_eq!(states[0]["value"], "CLOSE_WAIT", "{}", dump(&run.events));
}

#[test]
fn echo_leaking_descriptors_is_caught_in_fd_growth() {
    let run = check("tcp-echo", "tcp_echo/broken_leak_fds.py");
    run.assert_caught(&ECHO_PROBES, "fd-growth", "shutdown() alone");
    let fds = run.facts("fd-growth", "open_fds");
    let before = fds[0]["value"]["fds"].as_u64().unwrap_or(0);
    let after = fds[1]["value"]["fds"].as_u64().unwrap_or(0);
    assert!(after >= before + 50, "one per client: {before} -> {after}");
}

#[test]
fn echo_dying_on_reset_is_caught_in_reset() {
    let run = check("tcp-echo", "tcp_echo/broken_dies_on_reset.py");
    run.assert_caught_rest_skipped(&ECHO_PROBES, "reset", "ConnectionResetError");
    run.assert_happened("reset", "exited with status 1");
    // The report shows the traceback that ended it.
    let output = run
        .events
        .iter()
        .find(|e| e["event"] == "output")
        .map(|e| e["lines"].to_string())
        .unwrap_or_default();
    assert!(output.contains("Connection"), "{output}");
}

#[test]
fn echo_answering_one_recv_is_caught_in_large() {
    let run = check("tcp-echo", "tcp_echo/broken_one_recv.py");
    run.assert_caught(&ECHO_PROBES, "large", "sendall()");
}

#[test]
fn no_echo_at_all_skips_the_probes_that_need_one() {
    // A server that hangs up on every client at once.
    let hang_up = "import socket, sys\n\
                   listener = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n\
                   while True:\n    listener.accept()[0].close()\n";
    let run = check::run("tcp-concurrent", &[], &["python3", "-c", hang_up, "{port}"]);
    run.assert_caught_rest_skipped(&CONCURRENT_PROBES, "echo", "only after that");
    for name in &CONCURRENT_PROBES[1..] {
        let why = run.happened(name);
        assert!(why.contains("echo probe failed"), "{name}: {why}");
    }
}

#[test]
fn concurrent_fork_passes_every_probe() {
    let run = check("tcp-concurrent", "tcp_concurrent/good_fork.py");
    run.assert_all_pass(&CONCURRENT_PROBES);
    // It did fork: a child for each of the three clients (and perhaps,
    // on a busy machine, some of twenty-at-once's still on their way out).
    let census = run.facts("child-listener", "children");
    let children = census[0]["value"]["pids"].as_array().map_or(0, Vec::len);
    assert!(children >= 3, "{}", dump(&run.events));
}

#[test]
fn concurrent_select_passes_every_probe() {
    let run = check("tcp-concurrent", "tcp_concurrent/good_select.py");
    run.assert_all_pass(&CONCURRENT_PROBES);
}

#[test]
fn concurrent_threads_pass_every_probe() {
    let run = check("tcp-concurrent", "tcp_concurrent/good_threads.py");
    run.assert_all_pass(&CONCURRENT_PROBES);
    let happened = run.happened("child-listener");
    assert!(happened.contains("no child processes"), "{happened}");
}

#[test]
fn concurrent_iterative_is_caught_in_twenty_at_once() {
    let run = check("tcp-concurrent", "tcp_concurrent/broken_iterative.py");
    run.assert_caught(&CONCURRENT_PROBES, "twenty-at-once", "select/poll/epoll");
    // The kernel says why: the 20 wait in the accept queue.
    run.assert_happened("twenty-at-once", "never accept()ed");
}

#[test]
fn concurrent_without_reaping_is_caught_in_reaped() {
    let run = check("tcp-concurrent", "tcp_concurrent/broken_no_reap.py");
    run.assert_caught(&CONCURRENT_PROBES, "reaped", "os.waitpid(-1, os.WNOHANG)");
    let census = run.facts("reaped", "children");
    let zombies = census[0]["value"]["zombies"].as_u64().unwrap_or(0);
    assert!(zombies >= 50, "a zombie per client, got {zombies}");
}

#[test]
fn concurrent_parent_keeping_the_connection_is_caught_in_close_wait() {
    let run = check(
        "tcp-concurrent",
        "tcp_concurrent/broken_parent_keeps_conn.py",
    );
    run.assert_caught(
        &CONCURRENT_PROBES,
        "close-wait",
        "parent must close its copy",
    );
}

#[test]
fn concurrent_children_holding_the_listener_are_caught() {
    let run = check(
        "tcp-concurrent",
        "tcp_concurrent/broken_listener_inherited.py",
    );
    run.assert_caught(
        &CONCURRENT_PROBES,
        "child-listener",
        "close the listening socket right after fork()",
    );
    assert_eq!(run.facts("child-listener", "listener_fd").len(), 3);
}

#[test]
fn echo_ignoring_what_send_returns_is_caught_in_large() {
    // Non-blocking send() with its count ignored: only a client that
    // reads slowly (netlab's small window, a pause) makes bytes go missing.
    let run = check("tcp-echo", "tcp_echo/broken_send_ignored.py");
    run.assert_caught(&ECHO_PROBES, "large", "send() may write only part");
}

#[test]
fn concurrent_prefork_passes_every_probe() {
    // Workers that share the listener and accept() themselves are the
    // design, not an inherited listener; they stay, and are not leftovers.
    let run = check("tcp-concurrent", "tcp_concurrent/good_prefork.py");
    run.assert_all_pass(&CONCURRENT_PROBES);
    let happened = run.happened("child-listener");
    assert!(happened.contains("pre-forked workers"), "{happened}");
    run.assert_happened("reaped", "8 pre-forked worker(s)");
    // Stopped with the server, and not called leftovers.
    let stopped = infos(&run.events, "stopped");
    assert_eq!(
        stopped[0]["value"]["workers"].as_array().map(Vec::len),
        Some(8)
    );
    assert!(
        !run.events.iter().any(|e| e["event"] == "warning"),
        "{}",
        dump(&run.events)
    );
}

#[test]
fn concurrent_reaping_only_before_accept_is_caught_in_reaped() {
    let run = check("tcp-concurrent", "tcp_concurrent/broken_reap_on_accept.py");
    run.assert_caught(
        &CONCURRENT_PROBES,
        "reaped",
        "only when the next client arrives",
    );
}

#[test]
fn echo_accepted_but_unanswered_is_told_from_never_accepted() {
    // Accepted, then silent: /proc/net/tcp shows the server's end with a
    // socket inode, so the hint is about sending, not accept().
    let run = check("tcp-echo", "tcp_echo/broken_no_send.py");
    run.assert_caught_rest_skipped(&ECHO_PROBES, "echo", "sendall()");
    run.assert_happened("echo", "accept()ed the connection but sent nothing back");
    assert_eq!(run.facts("echo", "accepted")[0]["value"], true);
}

#[test]
fn echo_never_accepting_is_told_from_not_answering() {
    // A server that listens but never calls accept(): the client's
    // connection waits in the accept queue (inode 0 in /proc/net/tcp).
    let no_accept = "import socket, sys, time\n\
                     listener = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n\
                     while True:\n    time.sleep(1)\n";
    let run = check::run("tcp-echo", &[], &["python3", "-c", no_accept, "{port}"]);
    run.assert_caught_rest_skipped(&ECHO_PROBES, "echo", "never called accept()");
    assert_eq!(run.facts("echo", "accepted")[0]["value"], false);
}

#[test]
fn list_names_every_probe() {
    let output = common::netlab()
        .args(["--json", "check", "--list"])
        .output()
        .expect("run netlab check --list");
    let text = String::from_utf8_lossy(&output.stdout);
    let probes_of = |name: &str| -> Vec<String> {
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|e| e["value"]["name"] == name)
            .and_then(|e| e["value"]["probes"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(probes_of("tcp-echo"), ECHO_PROBES);
    assert_eq!(probes_of("tcp-concurrent"), CONCURRENT_PROBES);
}

#[test]
fn echo_correct_but_slow_gets_a_warning_not_a_lost_bytes_hint() {
    // At most 32 KB/s: the echo is still coming when large's time (5 s at
    // --patience 0.5) runs out. That is slowness, not lost bytes.
    let run = check::run(
        "tcp-echo",
        &["--patience", "0.5"],
        &["python3", &exercise("tcp_echo/good_slow.py"), "{port}"],
    );
    run.assert_statuses(&ECHO_PROBES, &[("large", "warn")]);
    run.assert_probe("large", "warn", "--patience 3");
    let happened = run.happened("large");
    assert!(
        happened.contains("slow: after") && happened.contains("the rest was not checked"),
        "{happened}"
    );
    assert!(!run.hint("large").contains("keep calling recv()"));
}

#[test]
fn echo_catching_only_connection_reset_is_told_about_broken_pipe() {
    let run = check("tcp-echo", "tcp_echo/broken_catches_reset_only.py");
    run.assert_caught_rest_skipped(&ECHO_PROBES, "reset", "BrokenPipeError");
    assert!(
        run.hint("reset").contains("catch OSError"),
        "{}",
        run.hint("reset")
    );
}

#[test]
fn echo_catching_resets_only_around_recv_is_caught_in_reset() {
    // The first client resets while the server waits in recv() (caught
    // there); the second while it is stuck in sendall() (not caught).
    let run = check("tcp-echo", "tcp_echo/broken_reset_recv_only.py");
    run.assert_caught_rest_skipped(&ECHO_PROBES, "reset", "not only around recv()");
    run.assert_happened("reset", "while your program was sending");
    // The kernel showed the server's echo waiting in its send queue.
    let queues = run.facts("reset", "queues");
    assert!(
        queues[0]["value"]["send_queue"].as_u64().unwrap_or(0) > 0,
        "{}",
        queues[0]
    );
}

#[test]
fn echo_killed_by_sigpipe_is_told_about_sigpipe() {
    let run = check("tcp-echo", "tcp_echo/broken_sigpipe.py");
    run.assert_caught_rest_skipped(&ECHO_PROBES, "reset", "signal(SIGPIPE, SIG_IGN)");
    let happened = run.happened("reset");
    assert!(happened.contains("killed by SIGPIPE"), "{happened}");
}

#[test]
fn echo_serving_one_client_is_told_to_loop_back_to_accept() {
    // It exits with status 0 after the echo probe's client, printing
    // nothing: the cause is the missing loop, not the bytes binary sends.
    let run = check("tcp-echo", "tcp_echo/broken_serves_one.py");
    run.assert_caught_rest_skipped(&ECHO_PROBES, "binary", "goes back to accept()");
    let happened = run.happened("binary");
    assert!(happened.contains("ended by itself"), "{happened}");
    assert!(!happened.contains("not text"), "{happened}");
}

#[test]
fn echo_spinning_on_a_closed_client_is_told_never_accepted_in_every_probe() {
    // No b"" check: the server loops on the first client for ever, and
    // every later connection waits in the accept queue (inode 0). Every
    // probe waits out its time: --patience 0.2 keeps that short.
    let run = check::run(
        "tcp-echo",
        &["--patience", "0.2"],
        &[
            "python3",
            &exercise("tcp_echo/broken_no_empty_check.py"),
            "{port}",
        ],
    );
    let failing: Vec<(&str, &str)> = ECHO_PROBES[1..].iter().map(|p| (*p, "fail")).collect();
    run.assert_statuses(&ECHO_PROBES, &failing);
    for name in &ECHO_PROBES[1..] {
        run.assert_probe(name, "fail", "never called accept()");
        assert_eq!(
            run.facts(name, "accepted")
                .first()
                .map(|f| f["value"].clone()),
            Some(Value::Bool(false)),
            "{name}: {}",
            run.probe(name)
        );
    }
}

#[test]
fn echo_children_that_never_exit_are_named_in_fd_growth() {
    let run = check("tcp-echo", "tcp_echo/broken_children_stay.py");
    run.assert_caught(&ECHO_PROBES, "fd-growth", "os._exit(0)");
    run.assert_happened("fd-growth", "did not exit");
    let fds = run.facts("fd-growth", "open_fds");
    let before = fds[0]["value"]["processes"].as_u64().unwrap_or(0);
    let after = fds[1]["value"]["processes"].as_u64().unwrap_or(0);
    assert!(
        after >= before + 45,
        "a process per client: {before} -> {after}"
    );
}

#[test]
fn echo_of_whole_lines_only_is_named_in_binary_and_large() {
    let run = check("tcp-echo", "tcp_echo/broken_whole_lines.py");
    run.assert_statuses(&ECHO_PROBES, &[("binary", "fail"), ("large", "fail")]);
    run.assert_probe("binary", "fail", "only whole lines");
    run.assert_probe("large", "fail", "only whole lines");
    let happened = run.happened("binary");
    assert!(
        happened.contains("10 bytes after the last newline"),
        "{happened}"
    );
}

#[test]
fn echo_adding_a_newline_is_caught_in_binary() {
    // The 512 bytes come back whole, then one more: netlab reads on.
    let run = check("tcp-echo", "tcp_echo/broken_adds_newline.py");
    run.assert_statuses(&ECHO_PROBES, &[("binary", "fail"), ("large", "fail")]);
    run.assert_probe("binary", "fail", "do not decode(), strip() or add");
    run.assert_happened("binary", "1 more byte(s)");
}
