//! Shared helpers for the `netlab check` tests (tests/check*.rs): run
//! `netlab --json check EXERCISE -- COMMAND` to its end, make sure nothing
//! the student's program started is left behind, and read the verdict of
//! each probe.
//!
//! A test then reads as one line of "this program gets this verdict":
//!
//! ```ignore
//! let run = check::run("tcp-echo", &[], &["python3", &exercise("tcp_echo/good.py"), "{port}"]);
//! run.assert_all_pass(&ECHO_PROBES);
//! ```

use std::path::Path;

use serde_json::Value;

use super::{dump, infos, Demo};

/// tcp-echo's probes, in the order they run.
pub const ECHO_PROBES: [&str; 7] = [
    "echo",
    "binary",
    "large",
    "disconnect",
    "reset",
    "close-wait",
    "fd-growth",
];

/// tcp-concurrent's probes: tcp-echo's, then its own three.
pub const CONCURRENT_PROBES: [&str; 10] = [
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

/// The path of a reference answer (or a broken variant) in
/// tests/exercises/, such as `exercise("tcp_echo/good.py")`.
pub fn exercise(path: &str) -> String {
    format!("{}/tests/exercises/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Start `netlab --json check EXERCISE [FLAGS] -- COMMAND...` and return it
/// running, for tests that stop it themselves (Ctrl-C, SIGKILL).
pub fn start(exercise: &str, flags: &[&str], command: &[&str]) -> Demo {
    let mut args = vec!["check", exercise];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(command);
    Demo::start(&args)
}

/// Run `netlab --json check EXERCISE [FLAGS] -- COMMAND...` to its end.
///
/// Then, whatever the verdict, netlab must have cleaned up and reported
/// sanely:
/// - the program is gone from /proc (stopped and reaped, not a zombie),
///   nothing is left in its process group, and no child is left under
///   netlab (see `assert_nothing_left`);
/// - netlab did not panic;
/// - no probe is reported twice, and none ended in netlab's own failure
///   ("netlab's probe ..." in what happened), whatever the program did.
pub fn run(exercise: &str, flags: &[&str], command: &[&str]) -> Run {
    let demo = start(exercise, flags, command);
    let netlab_pid = demo.pid();
    let (status, events, stderr) = demo.finish();
    assert!(
        !stderr.contains("panicked"),
        "netlab panicked: {stderr}\n{}",
        dump(&events)
    );
    let program = program_pid_or(&events, &stderr);
    assert_nothing_left(netlab_pid, program);
    let run = Run {
        exit_code: status.code(),
        events,
        stderr,
    };
    let names = run.probe_names();
    for (i, name) in names.iter().enumerate() {
        assert!(
            !names[..i].contains(name),
            "probe {name} is reported twice:\n{}",
            dump(&run.events)
        );
    }
    for event in run.probe_events() {
        let happened = event["happened"].as_str().unwrap_or("");
        assert!(!happened.contains("netlab's probe"), "{event}");
    }
    run
}

/// The student's program's pid, from netlab's `program` event.
pub fn program_pid(events: &[Value]) -> i32 {
    program_pid_or(events, "")
}

fn program_pid_or(events: &[Value], stderr: &str) -> i32 {
    infos(events, "program")
        .first()
        .and_then(|e| e["value"]["pid"].as_i64())
        .unwrap_or_else(|| panic!("no program event; stderr: {stderr}\n{}", dump(events)))
        as i32
}

/// Everything netlab started is gone once netlab has exited:
/// - the program's pid has no /proc entry (a zombie would still have one);
/// - no process is left in the program's process group (what it forked:
///   netlab makes the program a group leader, so its pgid is its pid);
/// - no process is left whose parent is netlab.
pub fn assert_nothing_left(netlab_pid: i32, program_pid: i32) {
    assert_gone(program_pid, "the program");
    let group = processes_in_group(program_pid);
    assert!(
        group.is_empty(),
        "processes of the program's group {program_pid} are left: {group:?}"
    );
    super::assert_no_children(netlab_pid);
}

/// Every process whose process group is `pgid` (field 5 of /proc/PID/stat).
pub fn processes_in_group(pgid: i32) -> Vec<String> {
    let entries = std::fs::read_dir("/proc").expect("read /proc");
    entries
        .flatten()
        .filter_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // After the ')' that ends the command name: state, ppid, pgrp, ...
            let (_, rest) = stat.rsplit_once(')')?;
            let pgrp = rest.split_whitespace().nth(2)?.parse::<i32>().ok()?;
            (pgrp == pgid).then_some(stat)
        })
        .collect()
}

/// The process's state letter (`R`, `S`, `Z`...), or None when /proc has
/// no such process.
pub fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// netlab reaps what it starts: once it has exited, the process is gone
/// from /proc altogether (not even a zombie).
pub fn assert_gone(pid: i32, what: &str) {
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "{what} (pid {pid}) is still in /proc: {:?}",
        state_of(pid)
    );
}

/// The program's output lines, as netlab reported them.
pub fn output_lines(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "output")
        .flat_map(|e| e["lines"].as_array().cloned().unwrap_or_default())
        .filter_map(|line| line.as_str().map(str::to_string))
        .collect()
}

/// One finished `netlab --json check` run (see `run`).
pub struct Run {
    /// netlab's exit code: 0 when every probe passed or warned, 1 when one
    /// failed or was skipped.
    pub exit_code: Option<i32>,
    /// Every JSON event netlab printed, in order.
    pub events: Vec<Value>,
    /// netlab's standard error.
    pub stderr: String,
}

impl Run {
    /// Every `probe` event, in the order the probes ran.
    pub fn probe_events(&self) -> impl Iterator<Item = &Value> {
        self.events.iter().filter(|e| e["event"] == "probe")
    }

    /// The names of the probes that were reported, in order.
    pub fn probe_names(&self) -> Vec<String> {
        self.probe_events()
            .map(|e| e["probe"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// The `probe` event of `name`; the test fails when there is none.
    pub fn probe(&self, name: &str) -> &Value {
        self.probe_events()
            .find(|e| e["probe"] == name)
            .unwrap_or_else(|| panic!("no probe {name}; events:\n{}", dump(&self.events)))
    }

    /// A probe's status: `pass`, `warn`, `fail` or `skip`.
    pub fn status(&self, name: &str) -> &str {
        self.probe(name)["status"].as_str().unwrap_or("")
    }

    /// A probe's hint ("" when it has none).
    pub fn hint(&self, name: &str) -> &str {
        self.probe(name)["hint"].as_str().unwrap_or("")
    }

    /// What a probe saw happen ("" when it says nothing).
    pub fn happened(&self, name: &str) -> &str {
        self.probe(name)["happened"].as_str().unwrap_or("")
    }

    /// What a probe saw happen must contain `part`.
    pub fn assert_happened(&self, name: &str, part: &str) {
        let happened = self.happened(name);
        assert!(
            happened.contains(part),
            "probe {name}: {happened:?} lacks {part:?}"
        );
    }

    /// The kernel facts a probe reported with this key.
    pub fn facts(&self, probe: &str, fact: &str) -> Vec<&Value> {
        self.probe(probe)["facts"]
            .as_array()
            .map(|facts| facts.iter().filter(|f| f["fact"] == fact).collect())
            .unwrap_or_default()
    }

    /// Every probe as `name=status`, for failure messages.
    pub fn summary(&self) -> String {
        self.probe_events()
            .map(|e| format!("{}={}", e["probe"], e["status"]))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `name` has `status`, and a hint that contains `hint_part`.
    pub fn assert_probe(&self, name: &str, status: &str, hint_part: &str) {
        assert_eq!(
            self.status(name),
            status,
            "probe {name}: {}\nevents:\n{}",
            self.probe(name),
            dump(&self.events)
        );
        let hint = self.hint(name);
        assert!(
            hint.contains(hint_part),
            "probe {name}: hint {hint:?} lacks {hint_part:?}"
        );
    }

    /// Each probe of `names` passed (other probes may have any status).
    pub fn assert_pass(&self, names: &[&str]) {
        for name in names {
            self.assert_probe(name, "pass", "");
        }
    }

    /// Exactly the probes of `probes` were reported, in that order; each
    /// passed except those named in `others`, which have the status given
    /// there. The exit code and the verdict agree: 1 when a probe failed
    /// or was skipped, else 0, and the verdict lists the failed probes.
    pub fn assert_statuses(&self, probes: &[&str], others: &[(&str, &str)]) {
        let events = dump(&self.events);
        assert_eq!(self.probe_names(), probes, "events:\n{events}");
        let want = |name: &str| {
            others
                .iter()
                .find(|(other, _)| *other == name)
                .map_or("pass", |(_, status)| *status)
        };
        for name in probes {
            assert_eq!(
                self.status(name),
                want(name),
                "probe {name}: {}\nall: {}",
                self.probe(name),
                self.summary()
            );
        }
        let failed: Vec<&str> = probes
            .iter()
            .copied()
            .filter(|name| want(name) == "fail")
            .collect();
        let verdict = self
            .events
            .iter()
            .find(|e| e["event"] == "verdict")
            .unwrap_or_else(|| panic!("no verdict; events:\n{events}"));
        assert_eq!(verdict["failed_probes"], serde_json::json!(failed));
        let not_ok = probes
            .iter()
            .any(|name| matches!(want(name), "fail" | "skip"));
        let code = if not_ok { 1 } else { 0 };
        assert_eq!(self.exit_code, Some(code), "events:\n{events}");
    }

    /// A good answer: every probe of `probes` passed (and no other was
    /// reported), and the check exited 0.
    pub fn assert_all_pass(&self, probes: &[&str]) {
        self.assert_statuses(probes, &[]);
    }

    /// A broken answer whose bug does not kill it: `failing` failed with a
    /// hint containing `hint_part`, every other probe passed, exit code 1.
    pub fn assert_caught(&self, probes: &[&str], failing: &str, hint_part: &str) {
        self.assert_statuses(probes, &[(failing, "fail")]);
        self.assert_probe(failing, "fail", hint_part);
    }

    /// A broken answer whose bug stops the probing: `failing` failed with
    /// a hint containing `hint_part`, the probes before it passed, the ones
    /// after it were skipped (the bug ended the program, or left nothing
    /// the later probes could check), exit code 1.
    pub fn assert_caught_rest_skipped(&self, probes: &[&str], failing: &str, hint_part: &str) {
        let at = probes
            .iter()
            .position(|name| *name == failing)
            .expect("a listed probe");
        let mut others = vec![(failing, "fail")];
        others.extend(probes[at + 1..].iter().map(|name| (*name, "skip")));
        self.assert_statuses(probes, &others);
        self.assert_probe(failing, "fail", hint_part);
    }
}
