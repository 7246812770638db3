//! `netlab check udp-echo` and `netlab check chatroom-server` against the
//! Python reference answers in tests/exercises/ and their broken variants,
//! and against `netlab chatroom server` itself.
//!
//! A good answer passes every probe. A broken one fails exactly the probe
//! its bug belongs to, with that probe's hint; the probes before it pass,
//! and the ones after it pass too, or are skipped when the bug killed the
//! program. After each run, nothing the program started is left.

mod common;

use std::process::ExitStatus;

use common::Demo;
use serde_json::Value;

const UDP_ECHO: &str = "tests/exercises/udp_echo";
const CHATROOM: &str = "tests/exercises/chatroom";

const UDP_PROBES: &[&str] = &[
    "echo",
    "each-sender",
    "binary",
    "empty",
    "large",
    "burst",
    "still-serving",
];
const CHAT_PROBES: &[&str] = &[
    "login",
    "duplicate",
    "fan-out",
    "quit",
    "malformed",
    "spoofed",
    "who",
];

/// One finished check: its exit status and events.
struct Checked {
    status: ExitStatus,
    events: Vec<Value>,
}

/// `netlab --json check EXERCISE -- COMMAND...`, to its end; then the
/// program and everything in its process group must be gone.
fn check(exercise: &str, command: &[&str]) -> Checked {
    let mut args = vec!["check", exercise, "--"];
    args.extend_from_slice(command);
    let (status, events, stderr) = Demo::start(&args).finish();
    let program = events
        .iter()
        .find(|e| e["event"] == "info" && e["key"] == "program")
        .unwrap_or_else(|| panic!("no program event; stderr: {stderr}"));
    let pid = program["value"]["pid"].as_i64().expect("the program's pid") as i32;
    assert_nothing_left(pid);
    Checked { status, events }
}

fn python(dir: &str, file: &str) -> Vec<String> {
    vec!["python3".into(), format!("{dir}/{file}"), "{port}".into()]
}

fn check_python(exercise: &str, dir: &str, file: &str) -> Checked {
    let command = python(dir, file);
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    check(exercise, &command)
}

impl Checked {
    fn probe(&self, name: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["event"] == "probe" && e["probe"] == name)
            .unwrap_or_else(|| panic!("no probe {name}; events:\n{}", common::dump(&self.events)))
    }

    fn status_of(&self, name: &str) -> &str {
        self.probe(name)["status"].as_str().unwrap_or("")
    }

    /// Every probe passed and the check exited 0.
    fn assert_all_pass(&self, probes: &[&str]) {
        for name in probes {
            assert_eq!(
                self.status_of(name),
                "pass",
                "probe {name}: {}",
                self.probe(name)
            );
        }
        assert!(self.status.success(), "exit status {:?}", self.status);
    }

    /// `failing` failed with a hint containing `hint_part`; every probe
    /// before it passed; every probe after it passed, or was skipped when
    /// `killed` (the bug ends the program); exit status 1.
    fn assert_caught(&self, probes: &[&str], failing: &str, hint_part: &str, killed: bool) {
        let probe = self.probe(failing);
        assert_eq!(probe["status"], "fail", "probe {failing}: {probe}");
        let hint = probe["hint"].as_str().unwrap_or("");
        assert!(hint.contains(hint_part), "hint of {failing}: {hint}");
        let at = probes
            .iter()
            .position(|p| *p == failing)
            .expect("a listed probe");
        for name in &probes[..at] {
            assert_eq!(self.status_of(name), "pass", "{name}: {}", self.probe(name));
        }
        let after = if killed { "skip" } else { "pass" };
        for name in &probes[at + 1..] {
            assert_eq!(self.status_of(name), after, "{name}: {}", self.probe(name));
        }
        assert_eq!(self.status.code(), Some(1));
    }
}

/// The program's pid is gone from /proc (reaped, not a zombie), and no
/// process is left in its process group (what it forked).
fn assert_nothing_left(pid: i32) {
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the program {pid} is still in /proc"
    );
    let entries = std::fs::read_dir("/proc").expect("read /proc");
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the ") " that ends the command name: state, ppid, pgrp.
        let Some((_, rest)) = text.rsplit_once(") ") else {
            continue;
        };
        let pgrp = rest.split(' ').nth(2).and_then(|f| f.parse::<i32>().ok());
        assert_ne!(
            pgrp,
            Some(pid),
            "process {:?} is left in the program's group: {text}",
            entry.file_name()
        );
    }
}

#[test]
fn udp_echo_good_passes_every_probe() {
    let checked = check_python("udp-echo", UDP_ECHO, "good.py");
    checked.assert_all_pass(UDP_PROBES);
    let large = checked.probe("large");
    assert!(
        large["happened"]
            .as_str()
            .unwrap_or("")
            .contains("all 60,000 bytes"),
        "{large}"
    );
    // The kernel's view of the socket after the burst, read in this run.
    let facts = checked.probe("still-serving")["facts"].clone();
    assert_eq!(facts[0]["fact"], "udp_socket", "{facts}");
    assert_eq!(facts[0]["available"], true, "{facts}");
}

#[test]
fn udp_echo_small_buffer_passes_and_the_cut_is_reported() {
    // A correct server with a 4096-byte buffer: the large datagram comes
    // back cut, which passes, and the report says how much was dropped.
    let code = "import socket, sys\n\
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                s.bind(('127.0.0.1', int(sys.argv[1])))\n\
                while True:\n\
                \x20   data, addr = s.recvfrom(4096)\n\
                \x20   s.sendto(data, addr)\n";
    let checked = check("udp-echo", &["python3", "-c", code, "{port}"]);
    checked.assert_all_pass(UDP_PROBES);
    let happened = checked.probe("large")["happened"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        happened.contains("first 4096 of 60,000 bytes")
            && happened.contains("discarded the other 55904"),
        "{happened}"
    );
}

#[test]
fn udp_echo_replying_to_everyone_fails_each_sender() {
    let checked = check_python("udp-echo", UDP_ECHO, "broken_replies_to_all.py");
    checked.assert_caught(
        UDP_PROBES,
        "each-sender",
        "do not keep the first client's address",
        false,
    );
    let happened = checked.probe("each-sender")["happened"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        happened.contains("the reply meant for client B"),
        "{happened}"
    );
}

#[test]
fn udp_echo_decoding_fails_binary() {
    let checked = check_python("udp-echo", UDP_ECHO, "broken_decode.py");
    checked.assert_caught(UDP_PROBES, "binary", "do not decode() the datagram", true);
}

#[test]
fn udp_echo_stopping_on_empty_fails_empty() {
    let checked = check_python("udp-echo", UDP_ECHO, "broken_dies_on_empty.py");
    checked.assert_caught(UDP_PROBES, "empty", "does not mean the client left", true);
    let happened = checked.probe("empty")["happened"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(happened.contains("exited with status 0"), "{happened}");
}

#[test]
fn udp_echo_raising_on_truncation_fails_large() {
    let checked = check_python("udp-echo", UDP_ECHO, "broken_small_buffer_crash.py");
    checked.assert_caught(
        UDP_PROBES,
        "large",
        "never raise or exit on MSG_TRUNC",
        true,
    );
}

#[test]
fn chatroom_good_passes_every_probe() {
    let checked = check_python("chatroom-server", CHATROOM, "good.py");
    checked.assert_all_pass(CHAT_PROBES);
    let facts = checked.probe("malformed")["facts"].clone();
    assert_eq!(facts[0]["fact"], "udp_socket", "{facts}");
    assert_eq!(facts[0]["available"], true, "{facts}");
}

#[test]
fn netlab_chatroom_server_passes_its_own_check() {
    // The server forks a console that reads stdin (/dev/null here: it
    // ends at once, and the server goes on); both must be gone after.
    let netlab = env!("CARGO_BIN_EXE_netlab");
    let checked = check(
        "chatroom-server",
        &[netlab, "chatroom", "server", "--port", "{port}"],
    );
    checked.assert_all_pass(CHAT_PROBES);
}

#[test]
fn chatroom_without_duplicate_check_fails_duplicate() {
    let checked = check_python("chatroom-server", CHATROOM, "broken_no_dup_check.py");
    checked.assert_caught(CHAT_PROBES, "duplicate", "answer ERR name taken", false);
}

#[test]
fn chatroom_echoing_to_the_sender_fails_fan_out() {
    let checked = check_python("chatroom-server", CHATROOM, "broken_echo_to_sender.py");
    checked.assert_caught(CHAT_PROBES, "fan-out", "Skip the sender", false);
}

#[test]
fn chatroom_silent_quit_fails_quit() {
    let checked = check_python("chatroom-server", CHATROOM, "broken_no_exit.py");
    checked.assert_caught(CHAT_PROBES, "quit", "with EXIT to its sender", false);
}

#[test]
fn chatroom_dying_on_garbage_fails_malformed() {
    let checked = check_python("chatroom-server", CHATROOM, "broken_dies_on_garbage.py");
    checked.assert_caught(
        CHAT_PROBES,
        "malformed",
        "check how many parts split() gave",
        true,
    );
    let happened = checked.probe("malformed")["happened"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        happened.contains("after it received a word that is no request"),
        "{happened}"
    );
}
