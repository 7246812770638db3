//! `netlab check tcp-client` and `netlab check framing`, run for real
//! against the reference solutions in tests/exercises/ and their broken
//! variants: the good ones pass every probe, each broken one fails the
//! probe made for its bug, with that probe's hint, and no process is left.

mod common;

use std::collections::HashMap;

use serde_json::Value;

use common::{dump, Demo};

/// One probe's result: its status and hint.
struct Probe {
    status: String,
    hint: String,
}

/// A finished check: exit code, probes by name, every event.
struct Checked {
    code: Option<i32>,
    probes: HashMap<String, Probe>,
    events: Vec<Value>,
}

impl Checked {
    fn probe(&self, name: &str) -> &Probe {
        self.probes
            .get(name)
            .unwrap_or_else(|| panic!("no probe {name}; events:\n{}", dump(&self.events)))
    }

    /// `name` has `status`, and (for a failure) a hint containing `hint`.
    fn assert_probe(&self, name: &str, status: &str, hint: &str) {
        let probe = self.probe(name);
        assert_eq!(
            probe.status,
            status,
            "probe {name}; events:\n{}",
            dump(&self.events)
        );
        assert!(
            probe.hint.contains(hint),
            "probe {name}: hint {:?} lacks {hint:?}",
            probe.hint
        );
    }

    fn assert_pass(&self, names: &[&str]) {
        for name in names {
            self.assert_probe(name, "pass", "");
        }
    }
}

/// Run `netlab --json check EXERCISE -- python3 tests/exercises/SCRIPT ARGS`
/// to its end, and check that the program it started is gone afterwards.
fn check(exercise: &str, script: &str, args: &[&str]) -> Checked {
    let path = format!("{}/tests/exercises/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut argv = vec!["check", exercise, "--", "python3", path.as_str()];
    argv.extend_from_slice(args);
    let demo = Demo::start(&argv);
    let netlab_pid = demo.pid();
    let (status, events, stderr) = demo.finish();
    let program_pid = events
        .iter()
        .find(|e| e["event"] == "info" && e["key"] == "program")
        .and_then(|e| e["value"]["pid"].as_i64())
        .unwrap_or_else(|| {
            panic!(
                "no program event; stderr {stderr}; events:\n{}",
                dump(&events)
            )
        });
    // Stopped and reaped: no /proc entry (a zombie would still have one).
    assert!(
        !std::path::Path::new(&format!("/proc/{program_pid}")).exists(),
        "the program {program_pid} is still there"
    );
    common::assert_no_children(netlab_pid);
    let probes = events
        .iter()
        .filter(|e| e["event"] == "probe")
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_default().to_string();
            (
                text("probe"),
                Probe {
                    status: text("status"),
                    hint: text("hint"),
                },
            )
        })
        .collect();
    Checked {
        code: status.code(),
        probes,
        events,
    }
}

const CLIENT_PROBES: &[&str] = &["connect", "request", "reply", "close", "exit"];

fn client(script: &str) -> Checked {
    check(
        "tcp-client",
        &format!("tcp_client/{script}"),
        &["{host}", "{port}"],
    )
}

#[test]
fn tcp_client_good_passes_every_probe() {
    let run = client("good.py");
    assert_eq!(run.code, Some(0), "events:\n{}", dump(&run.events));
    run.assert_pass(CLIENT_PROBES);
    // Its reading of the reply is what the kernel showed, not a guess.
    let reply = run
        .events
        .iter()
        .find(|e| e["probe"] == "reply")
        .expect("reply");
    assert!(
        reply["happened"]
            .as_str()
            .unwrap_or_default()
            .contains("read the whole reply"),
        "{reply}"
    );
}

#[test]
fn tcp_client_closing_without_reading_fails_reply() {
    let run = client("broken_no_read.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe("reply", "fail", "wait for the reply before you close");
    run.assert_pass(&["connect", "request", "close", "exit"]);
    // The evidence: netlab's socket got the RST its reply caused.
    let reply = run
        .events
        .iter()
        .find(|e| e["probe"] == "reply")
        .expect("reply");
    assert!(reply["facts"].to_string().contains("so_error"), "{reply}");
}

#[test]
fn tcp_client_single_recv_fails_reply() {
    let run = client("broken_one_recv.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe(
        "reply",
        "fail",
        "Keep calling recv() until the reply's newline",
    );
    run.assert_pass(&["connect", "request", "close", "exit"]);
}

#[test]
fn tcp_client_so_linger_zero_fails_close() {
    let run = client("broken_reset.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe("close", "fail", "remove the SO_LINGER option");
    run.assert_pass(&["connect", "request", "reply", "exit"]);
}

#[test]
fn tcp_client_that_never_closes_fails_close() {
    let run = client("broken_never_closes.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe("close", "fail", "Close the socket once the reply is read");
    run.assert_pass(&["connect", "request", "reply"]);
    // It never exits either: that probe is not run, not failed twice.
    run.assert_probe("exit", "skip", "");
    // The kernel shows its end left open after netlab's FIN.
    let close = run
        .events
        .iter()
        .find(|e| e["probe"] == "close")
        .expect("close");
    assert!(close["facts"].to_string().contains("CLOSE_WAIT"), "{close}");
}

#[test]
fn tcp_client_line_without_newline_fails_request() {
    let run = client("broken_no_newline.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe("request", "fail", "End the line with a newline");
    run.assert_probe("reply", "skip", "");
    run.assert_pass(&["connect", "close", "exit"]);
}

const FRAMING_PROBES: &[&str] = &[
    "one-message",
    "merged",
    "split-message",
    "empty",
    "large",
    "pipelined",
    "close-wait",
    "split-header",
    "oversized",
];

fn framing(script: &str) -> Checked {
    check("framing", &format!("framing/{script}"), &["{port}"])
}

#[test]
fn framing_good_passes_every_probe() {
    let run = framing("good.py");
    assert_eq!(run.code, Some(0), "events:\n{}", dump(&run.events));
    run.assert_pass(FRAMING_PROBES);
}

#[test]
fn framing_plain_echo_fails_one_message() {
    let run = framing("broken_echo.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe("one-message", "fail", "bytes reversed (message[::-1])");
    for name in &FRAMING_PROBES[1..] {
        run.assert_probe(name, "skip", "");
    }
}

#[test]
fn framing_one_recv_per_message_fails_merged() {
    let run = framing("broken_one_recv.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe("merged", "fail", "several messages glued together");
    run.assert_probe("split-message", "fail", "only part of a message");
    run.assert_probe("large", "fail", "A 1 MiB message");
    run.assert_probe("pipelined", "fail", "Keep the bytes that follow");
    // A message that comes alone and whole is all this server handles.
    run.assert_pass(&["one-message", "empty", "close-wait"]);
}

#[test]
fn framing_single_recv_for_the_length_fails_split_header() {
    let run = framing("broken_short_header.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe(
        "split-header",
        "fail",
        "recv(4) may return fewer than 4 bytes",
    );
    run.assert_pass(&FRAMING_PROBES[..7]);
    // struct.unpack() raised and the server died: the last probe is not run.
    run.assert_probe("oversized", "skip", "");
}

#[test]
fn framing_unchecked_length_fails_oversized() {
    let run = framing("broken_no_length_check.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe("oversized", "fail", "refuse anything above 1 MiB");
    run.assert_pass(&FRAMING_PROBES[..8]);
}

#[test]
fn framing_empty_message_taken_for_eof_fails_empty() {
    let run = framing("broken_empty_is_eof.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe("empty", "fail", "A length of 0 is a valid, empty message");
    let others: Vec<&str> = FRAMING_PROBES
        .iter()
        .copied()
        .filter(|p| *p != "empty")
        .collect();
    run.assert_pass(&others);
}

#[test]
fn framing_server_that_never_closes_fails_close_wait() {
    let run = framing("broken_no_close.py");
    assert_eq!(run.code, Some(1));
    run.assert_probe("close-wait", "fail", "close() the connection's socket too");
    // Refusing a length without closing leaves that connection open too.
    run.assert_probe("oversized", "fail", "close that connection");
    run.assert_pass(&FRAMING_PROBES[..6]);
    run.assert_pass(&["split-header"]);
    let close_wait = run
        .events
        .iter()
        .find(|e| e["probe"] == "close-wait")
        .expect("close-wait");
    assert!(
        close_wait["facts"].to_string().contains("CLOSE_WAIT"),
        "{close_wait}"
    );
}
