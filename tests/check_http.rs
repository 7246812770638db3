//! `netlab check http-static` against real servers: the Python reference
//! passes every probe, each broken variant fails exactly the probe made
//! for its bug (with that bug's hint) and passes the others, netlab's own
//! http-server passes, Python's http.server passes with a keep-alive
//! warning, and a server that answers garbage cannot hang or crash the
//! checker. After each run, the program netlab started must be gone.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{infos, Demo};
use serde_json::Value;

const EXERCISES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/exercises/http_static");

const PROBES: [&str; 8] = [
    "get-file",
    "binary",
    "not-found",
    "head",
    "small-pieces",
    "keep-alive",
    "traversal",
    "bad-request",
];

/// One finished check: exit code, each probe's event by name, all events.
struct Checked {
    code: Option<i32>,
    probes: BTreeMap<String, Value>,
    events: Vec<Value>,
}

impl Checked {
    fn status(&self, probe: &str) -> &str {
        self.probes[probe]["status"].as_str().unwrap_or("missing")
    }

    fn statuses(&self) -> String {
        self.probes
            .iter()
            .map(|(name, e)| format!("{name}={}", e["status"]))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every probe passes, except those named in `other` (with their status).
    fn assert_statuses(&self, other: &[(&str, &str)]) {
        for probe in PROBES {
            let want = other
                .iter()
                .find(|(name, _)| *name == probe)
                .map(|(_, status)| *status)
                .unwrap_or("pass");
            assert_eq!(
                self.status(probe),
                want,
                "probe {probe}: {}\nall: {}",
                self.probes[probe],
                self.statuses()
            );
        }
    }

    fn hint(&self, probe: &str) -> &str {
        self.probes[probe]["hint"].as_str().unwrap_or("")
    }

    fn happened(&self, probe: &str) -> &str {
        self.probes[probe]["happened"].as_str().unwrap_or("")
    }
}

/// `netlab --json check http-static [extra] -- COMMAND`, run to its end;
/// then checks that the program it started is gone (not running, not a
/// zombie) and that no process is left under netlab.
fn check(extra: &[&str], command: &[&str]) -> Checked {
    let mut args = vec!["check", "http-static"];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    let demo = Demo::start(&args);
    let netlab_pid = demo.pid();
    let (status, events, stderr) = demo.finish();
    assert!(
        !stderr.contains("panicked"),
        "netlab panicked: {stderr}\n{}",
        common::dump(&events)
    );
    let program = infos(&events, "program")
        .first()
        .and_then(|e| e["value"]["pid"].as_i64())
        .expect("a program event with the pid") as i32;
    assert!(
        !std::path::Path::new(&format!("/proc/{program}")).exists(),
        "the program (pid {program}) is still there after the check"
    );
    common::assert_no_children(netlab_pid);
    let probes: BTreeMap<String, Value> = events
        .iter()
        .filter(|e| e["event"] == "probe")
        .filter_map(|e| Some((e["probe"].as_str()?.to_string(), e.clone())))
        .collect();
    assert_eq!(
        probes.len(),
        PROBES.len(),
        "every probe is reported once: {}",
        common::dump(&events)
    );
    // No probe may end in netlab's own failure, whatever the program did.
    for event in probes.values() {
        let happened = event["happened"].as_str().unwrap_or("");
        assert!(!happened.contains("netlab's probe"), "{event}");
    }
    Checked {
        code: status.code(),
        probes,
        events,
    }
}

/// Check one of the Python solutions in tests/exercises/http_static.
fn check_python(script: &str) -> Checked {
    let path = format!("{EXERCISES}/{script}");
    check(&[], &["python3", &path, "{port}", "{root}"])
}

/// A broken variant: exit 1, `probe` fails with a hint that contains
/// `hint`, every other probe passes.
fn assert_caught(script: &str, probe: &str, hint: &str) -> Checked {
    let checked = check_python(script);
    assert_eq!(checked.code, Some(1), "{script}: {}", checked.statuses());
    checked.assert_statuses(&[(probe, "fail")]);
    assert!(
        checked.hint(probe).contains(hint),
        "{script}: the hint of {probe} should mention {hint:?}: {}",
        checked.probes[probe]
    );
    let verdict = checked
        .events
        .iter()
        .find(|e| e["event"] == "verdict")
        .expect("a verdict");
    assert_eq!(verdict["failed_probes"], serde_json::json!([probe]));
    checked
}

#[test]
fn the_reference_solution_passes_every_probe() {
    let checked = check_python("good.py");
    assert_eq!(checked.code, Some(0), "{}", checked.statuses());
    checked.assert_statuses(&[]);
    // The kept-alive connection is still open on the server's side: read
    // from /proc/net/tcp during the probe.
    let fact = &checked.probes["keep-alive"]["facts"][0];
    assert_eq!(fact["fact"], "tcp_state", "{fact}");
    assert_eq!(fact["value"], "ESTABLISHED", "{fact}");
    // Every file, with its Content-Type, is named in the report.
    let got = checked.happened("get-file");
    for name in [
        "/index.html",
        "/notes.txt",
        "/style.css",
        "/sub/page.html",
        "/two%20words.txt",
    ] {
        assert!(got.contains(name), "{got}");
    }
    assert!(checked.happened("traversal").contains("403 Forbidden"));
}

#[test]
fn traversal_is_caught_with_the_secret_shown() {
    let checked = assert_caught("broken_traversal.py", "traversal", "os.path.commonpath");
    assert!(
        checked.happened("traversal").contains("NETLAB-SECRET-"),
        "{}",
        checked.happened("traversal")
    );
}

#[test]
fn one_recv_per_request_is_caught_by_the_small_pieces() {
    let checked = assert_caught(
        "broken_one_recv.py",
        "small-pieces",
        "One recv() is not one request",
    );
    let happened = checked.happened("small-pieces");
    // Usually after the first piece ("GE"); on a loaded machine the answer
    // may come a piece or two later.
    assert!(happened.contains(" of 7 pieces"), "{happened}");
    assert!(happened.contains("400"), "{happened}");
}

#[test]
fn content_length_in_characters_is_caught() {
    let checked = assert_caught("broken_content_length.py", "get-file", "count the bytes");
    let happened = checked.happened("get-file");
    assert!(
        happened.contains("Content-Length: 275, but the file has 279 bytes"),
        "{happened}"
    );
}

#[test]
fn a_body_after_head_is_caught() {
    let checked = assert_caught("broken_head_body.py", "head", "no body bytes");
    assert!(checked
        .happened("head")
        .contains("the file's 67 bytes followed"));
}

#[test]
fn a_missing_404_is_caught() {
    let checked = assert_caught("broken_no_404.py", "not-found", "404 Not Found");
    assert!(checked.happened("not-found").contains("no response"));
}

#[test]
fn netlab_http_server_passes() {
    let netlab = env!("CARGO_BIN_EXE_netlab");
    let checked = check(
        &[],
        &[
            netlab,
            "http-server",
            "--port",
            "{port}",
            "--root",
            "{root}",
            "--quiet",
        ],
    );
    assert_eq!(checked.code, Some(0), "{}", checked.statuses());
    checked.assert_statuses(&[]);
}

/// Python's own http.server answers HTTP/1.0 and closes after each
/// response: a warning, not a failure. To bytes that are not HTTP it
/// answers like an HTTP/0.9 server (a page without a status line): also a
/// warning.
#[test]
fn python_http_server_warns_about_keep_alive() {
    let checked = check(
        &[],
        &[
            "python3",
            "-m",
            "http.server",
            "{port}",
            "--bind",
            "127.0.0.1",
            "--directory",
            "{root}",
        ],
    );
    assert_eq!(checked.code, Some(0), "{}", checked.statuses());
    checked.assert_statuses(&[("keep-alive", "warn"), ("bad-request", "warn")]);
    assert!(checked
        .hint("keep-alive")
        .contains("HTTP/1.1 keeps a connection open"));
    assert!(checked.happened("keep-alive").contains("HTTP/1.0"));
    let fact = &checked.probes["keep-alive"]["facts"][0];
    assert_eq!(fact["fact"], "tcp_state", "{fact}");
}

/// A server that answers every connection with garbage and then keeps it
/// open: every probe fails within its (shortened) limit, none hangs, and
/// netlab reports instead of panicking.
#[test]
fn garbage_answers_fail_every_probe_without_hanging() {
    let server = r#"
import socket, sys, threading
def serve(conn):
    try:
        conn.recv(4096)
        conn.sendall(b"\xff\xfe\x00garbage without any line end")
        conn.recv(4096)  # and keep the connection open
    except OSError:
        pass
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;
    let started = Instant::now();
    let checked = check(
        &["--patience", "0.25"],
        &["python3", "-c", server, "{port}", "{root}"],
    );
    assert!(started.elapsed() < Duration::from_secs(12));
    assert_eq!(checked.code, Some(1), "{}", checked.statuses());
    for probe in [
        "get-file",
        "binary",
        "not-found",
        "head",
        "small-pieces",
        "keep-alive",
    ] {
        assert_eq!(checked.status(probe), "fail", "{}", checked.probes[probe]);
    }
    assert!(
        checked.hint("get-file").contains("status line"),
        "{}",
        checked.probes["get-file"]
    );
    assert!(checked.happened("get-file").contains("garbage"));
}
