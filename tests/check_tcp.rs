//! `netlab check tcp-echo` and `netlab check tcp-concurrent` against the
//! Python reference answers and their deliberately broken variants in
//! tests/exercises/. Each good answer passes every probe; each broken one
//! fails exactly the probe meant to catch its bug, with the right hint,
//! while the other probes pass. After each run, nothing the program
//! started may be left: its pid is gone and no process is in its group.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{dump, Demo};

/// One finished `netlab --json check` run.
struct Run {
    exit_code: Option<i32>,
    events: Vec<Value>,
}

impl Run {
    /// The `probe` event of `name`.
    fn probe(&self, name: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["event"] == "probe" && e["probe"] == name)
            .unwrap_or_else(|| panic!("no probe {name}; events:\n{}", dump(&self.events)))
    }

    fn status(&self, name: &str) -> &str {
        self.probe(name)["status"].as_str().unwrap_or("")
    }

    /// Every probe's name and status, in order.
    fn statuses(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|e| e["event"] == "probe")
            .map(|e| {
                (
                    e["probe"].as_str().unwrap_or("").to_string(),
                    e["status"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The facts a probe reported with this key.
    fn facts(&self, probe: &str, fact: &str) -> Vec<Value> {
        self.probe(probe)["facts"]
            .as_array()
            .map(|facts| {
                facts
                    .iter()
                    .filter(|f| f["fact"] == fact)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

const ECHO_PROBES: [&str; 7] = [
    "echo",
    "binary",
    "large",
    "disconnect",
    "reset",
    "close-wait",
    "fd-growth",
];
const CONCURRENT_PROBES: [&str; 10] = [
    "echo",
    "binary",
    "large",
    "disconnect",
    "reset",
    "close-wait",
    "fd-growth",
    "twenty-at-once",
    "child-listener",
    "reaped",
];

/// Run `netlab --json check EXERCISE -- python3 tests/exercises/SCRIPT {port}`
/// to its end, then check that the program and everything it forked are gone.
fn check(exercise: &str, script: &str) -> Run {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/exercises")
        .join(script);
    let path = path.to_str().expect("a UTF-8 path");
    check_command(exercise, &["python3", path, "{port}"])
}

/// Run `netlab --json check EXERCISE -- COMMAND...` (see `check`).
fn check_command(exercise: &str, command: &[&str]) -> Run {
    let mut args = vec!["check", exercise, "--"];
    args.extend_from_slice(command);
    let demo = Demo::start(&args);
    let (status, events, stderr) = demo.finish();
    let program = events
        .iter()
        .find(|e| e["event"] == "info" && e["key"] == "program")
        .and_then(|e| e["value"]["pid"].as_i64())
        .unwrap_or_else(|| panic!("no program event; stderr: {stderr}\n{}", dump(&events)))
        as i32;
    assert!(
        !Path::new(&format!("/proc/{program}")).exists(),
        "the program (pid {program}) is still there after netlab ended"
    );
    let group = processes_in_group(program);
    assert!(
        group.is_empty(),
        "processes of the program's group {program} are left: {group:?}"
    );
    Run {
        exit_code: status.code(),
        events,
    }
}

/// Every process whose process group is `pgid` (field 5 of /proc/PID/stat).
fn processes_in_group(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the last ')': state, ppid, pgrp, ...
            let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            rest.split_whitespace().nth(2) == Some(&pgid.to_string())
        })
        .collect()
}

/// Every probe of `names` passed and the check exited 0.
fn assert_all_pass(run: &Run, names: &[&str]) {
    let statuses = run.statuses();
    let expected: Vec<(String, String)> = names
        .iter()
        .map(|name| (name.to_string(), "pass".to_string()))
        .collect();
    assert_eq!(statuses, expected, "events:\n{}", dump(&run.events));
    assert_eq!(run.exit_code, Some(0), "events:\n{}", dump(&run.events));
}

/// `failing` failed with a hint containing `hint_part`; every probe before
/// it passed; every probe after it passed (or, when the bug kills the
/// program, was skipped); the check exited 1.
fn assert_caught(run: &Run, names: &[&str], failing: &str, hint_part: &str, kills: bool) {
    let events = dump(&run.events);
    assert_eq!(run.exit_code, Some(1), "events:\n{events}");
    let probe = run.probe(failing);
    assert_eq!(probe["status"], "fail", "events:\n{events}");
    let hint = probe["hint"].as_str().unwrap_or("");
    assert!(
        hint.contains(hint_part),
        "{failing}'s hint lacks {hint_part:?}: {hint}"
    );
    let at = names
        .iter()
        .position(|n| *n == failing)
        .expect("a listed probe");
    for (i, name) in names.iter().enumerate() {
        let want = match i {
            _ if i < at => "pass",
            _ if i == at => "fail",
            _ if kills => "skip",
            _ => "pass",
        };
        assert_eq!(run.status(name), want, "probe {name}; events:\n{events}");
    }
}

#[test]
fn echo_good_passes_every_probe() {
    let run = check("tcp-echo", "tcp_echo/good.py");
    assert_all_pass(&run, &ECHO_PROBES);
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
    assert_caught(&run, &ECHO_PROBES, "close-wait", "close()", false);
    let states = run.facts("close-wait", "tcp_state");
    assert_eq!(states[0]["value"], "CLOSE_WAIT", "{}", dump(&run.events));
}

#[test]
fn echo_leaking_descriptors_is_caught_in_fd_growth() {
    let run = check("tcp-echo", "tcp_echo/broken_leak_fds.py");
    assert_caught(&run, &ECHO_PROBES, "fd-growth", "shutdown() alone", false);
    let fds = run.facts("fd-growth", "open_fds");
    let before = fds[0]["value"]["fds"].as_u64().unwrap_or(0);
    let after = fds[1]["value"]["fds"].as_u64().unwrap_or(0);
    assert!(after >= before + 50, "one per client: {before} -> {after}");
}

#[test]
fn echo_dying_on_reset_is_caught_in_reset() {
    let run = check("tcp-echo", "tcp_echo/broken_dies_on_reset.py");
    assert_caught(&run, &ECHO_PROBES, "reset", "ConnectionResetError", true);
    let happened = run.probe("reset")["happened"].as_str().unwrap_or("");
    assert!(happened.contains("exited with status 1"), "{happened}");
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
    assert_caught(&run, &ECHO_PROBES, "large", "sendall()", false);
}

#[test]
fn no_echo_at_all_skips_the_probes_that_need_one() {
    // A server that hangs up on every client at once.
    let hang_up = "import socket, sys\n\
                   listener = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n\
                   while True:\n    listener.accept()[0].close()\n";
    let run = check_command("tcp-concurrent", &["python3", "-c", hang_up, "{port}"]);
    assert_eq!(run.exit_code, Some(1));
    assert_eq!(run.status("echo"), "fail");
    let hint = run.probe("echo")["hint"].as_str().unwrap_or("");
    assert!(hint.contains("only after that"), "{hint}");
    for name in &CONCURRENT_PROBES[1..] {
        assert_eq!(run.status(name), "skip", "{name}");
        let why = run.probe(name)["happened"].as_str().unwrap_or("");
        assert!(why.contains("echo probe failed"), "{name}: {why}");
    }
}

#[test]
fn concurrent_fork_passes_every_probe() {
    let run = check("tcp-concurrent", "tcp_concurrent/good_fork.py");
    assert_all_pass(&run, &CONCURRENT_PROBES);
    // It did fork: a child for each of the three clients (and perhaps,
    // on a busy machine, some of twenty-at-once's still on their way out).
    let census = run.facts("child-listener", "children");
    let children = census[0]["value"]["pids"].as_array().map_or(0, Vec::len);
    assert!(children >= 3, "{}", dump(&run.events));
}

#[test]
fn concurrent_select_passes_every_probe() {
    let run = check("tcp-concurrent", "tcp_concurrent/good_select.py");
    assert_all_pass(&run, &CONCURRENT_PROBES);
}

#[test]
fn concurrent_threads_pass_every_probe() {
    let run = check("tcp-concurrent", "tcp_concurrent/good_threads.py");
    assert_all_pass(&run, &CONCURRENT_PROBES);
    let happened = run.probe("child-listener")["happened"]
        .as_str()
        .unwrap_or("");
    assert!(happened.contains("no child processes"), "{happened}");
}

#[test]
fn concurrent_iterative_is_caught_in_twenty_at_once() {
    let run = check("tcp-concurrent", "tcp_concurrent/broken_iterative.py");
    assert_caught(
        &run,
        &CONCURRENT_PROBES,
        "twenty-at-once",
        "select/poll/epoll",
        false,
    );
}

#[test]
fn concurrent_without_reaping_is_caught_in_reaped() {
    let run = check("tcp-concurrent", "tcp_concurrent/broken_no_reap.py");
    assert_caught(
        &run,
        &CONCURRENT_PROBES,
        "reaped",
        "os.waitpid(-1, os.WNOHANG)",
        false,
    );
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
    assert_caught(
        &run,
        &CONCURRENT_PROBES,
        "close-wait",
        "parent must close its copy",
        false,
    );
}

#[test]
fn concurrent_children_holding_the_listener_are_caught() {
    let run = check(
        "tcp-concurrent",
        "tcp_concurrent/broken_listener_inherited.py",
    );
    assert_caught(
        &run,
        &CONCURRENT_PROBES,
        "child-listener",
        "close the listening socket right after fork()",
        false,
    );
    assert_eq!(run.facts("child-listener", "listener_fd").len(), 3);
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
