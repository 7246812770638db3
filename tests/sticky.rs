//! sticky-demo: what each recv() returned, with and without framing.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use serde_json::Value;

fn run(args: &[&str]) -> Vec<Value> {
    let mut full = vec!["sticky-demo"];
    full.extend_from_slice(args);
    let demo = Demo::start(&full);
    let pid = demo.pid();
    let (status, events, stderr) = demo.finish();
    assert!(
        status.success(),
        "exit {status}; stderr: {stderr}\n{}",
        dump(&events)
    );
    assert_no_children(pid);
    events
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// How many bytes the sender sent in all (its `sent` info lines).
fn sent_total(events: &[Value]) -> u64 {
    infos(events, "sent")
        .iter()
        .map(|e| e["value"]["bytes"].as_u64().unwrap())
        .sum()
}

#[test]
fn without_framing_messages_merge_and_one_is_cut() {
    let events = run(&["--messages", "5"]);
    let reads = infos(&events, "read");
    // The receiver started reading with four and a half messages queued.
    let queued = &facts(&events, "receive_queue")[0]["value"]["bytes"];
    assert_eq!(
        queued.as_u64().unwrap() as usize,
        8 + 15 + 15 + 19 + 2,
        "{queued}"
    );
    let first = &reads[0]["value"];
    assert_eq!(
        first["messages"],
        serde_json::json!([1, 2, 3, 4, 5]),
        "{first}"
    );
    assert_eq!(first["cut"], serde_json::json!([5]));
    assert_eq!(
        first["data"],
        "#1 hello#2 how are you?#3 fine, thanks#4 see you tomorrow#5"
    );
    let second = &reads[1]["value"];
    assert_eq!(second["data"], " ok");
    assert_eq!(second["messages"], serde_json::json!([5]));
    // Five sends (six send() calls), two reads; the stream is intact.
    let summary = &infos(&events, "reads")[0]["value"];
    assert_eq!(summary["reads"], 2);
    assert_eq!(summary["merged_reads"], 1);
    assert_eq!(infos(&events, "sent").len(), 6);
    let messages = &infos(&events, "messages")[0]["value"];
    assert_eq!(messages["same"], false);
    assert_eq!(
        strings(&messages["received"]).concat(),
        strings(&messages["sent"]).concat()
    );
}

#[test]
fn small_reads_cut_messages_everywhere() {
    let events = run(&["--messages", "3", "--bufsize", "8"]);
    let reads = infos(&events, "read");
    assert!(reads
        .iter()
        .all(|r| r["value"]["bytes"].as_u64().unwrap() <= 8));
    let total: u64 = reads
        .iter()
        .map(|r| r["value"]["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(total, sent_total(&events));
    assert!(reads
        .iter()
        .any(|r| r["value"]["messages"].as_array().unwrap().len() > 1));
    assert!(returns(&events, "recv")
        .iter()
        .all(|r| r["value"].as_i64().unwrap() <= 8));
}

#[test]
fn a_delimiter_restores_exactly_the_sent_messages() {
    let events = run(&["--fix", "delimiter", "--messages", "6"]);
    let messages = &infos(&events, "messages")[0]["value"];
    assert_eq!(messages["same"], true, "{messages}");
    assert_eq!(strings(&messages["received"]).len(), 6);
    // The reads themselves were still merged and cut.
    assert!(
        infos(&events, "read")[0]["value"]["messages"]
            .as_array()
            .unwrap()
            .len()
            > 1
    );
}

#[test]
fn a_delimiter_inside_a_payload_splits_that_message() {
    let events = run(&[
        "--fix",
        "delimiter",
        "--messages",
        "3",
        "--delimiter-in-payload",
    ]);
    let messages = &infos(&events, "messages")[0]["value"];
    assert_eq!(messages["same"], false);
    assert_eq!(
        strings(&messages["received"]),
        ["#1 hello", "#2 two", "lines", "#3 fine, thanks"]
    );
}

#[test]
fn a_length_prefix_restores_the_messages_even_when_the_prefix_arrives_split() {
    let events = run(&["--fix", "length", "--messages", "4"]);
    let messages = &infos(&events, "messages")[0]["value"];
    assert_eq!(messages["same"], true, "{messages}");
    assert_eq!(strings(&messages["received"]).len(), 4);
    // The 4-byte prefix of the last message came as 2 + 2 bytes.
    let recv = returns(&events, "recv");
    let short = recv
        .iter()
        .position(|r| r["value"] == 2)
        .expect("a 2-byte read");
    assert_eq!(recv[short + 1]["value"], 2, "the rest of the prefix");
    let lengths: Vec<u64> = infos(&events, "length")
        .iter()
        .map(|e| e["value"]["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(lengths, [8, 15, 15, 19]);
}

#[test]
fn pacing_spaces_the_sends_and_each_read_holds_one_message() {
    let events = run(&["--fix", "pace", "--messages", "3", "--pace", "0.25"]);
    let times: Vec<f64> = infos(&events, "sent")
        .iter()
        .map(|e| e["t"].as_f64().unwrap())
        .collect();
    assert_eq!(times.len(), 3, "no message is cut when pacing");
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= 0.24, "{times:?}");
    }
    assert!(infos(&events, "reads")[0]["value"]["cut_messages"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_python_client_speaks_the_length_prefixed_framing() {
    let mut demo = Demo::start(&["sticky-demo", "--fix", "length", "--port", "0"]);
    let addr = demo.listening_addr();
    python(
        "length_prefixed_client.py",
        &[
            "127.0.0.1",
            &addr.port().to_string(),
            "first",
            "",
            "ünïcode ✓",
            "last one",
        ],
    );
    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "{stderr}");
    let received = &infos(&events, "messages")[0]["value"]["received"];
    assert_eq!(strings(received), ["first", "", "ünïcode ✓", "last one"]);
    let recv = returns(&events, "recv");
    assert!(recv.iter().any(|r| r["value"] == 2), "the split prefix");
}

#[test]
fn a_huge_length_prefix_or_a_cut_message_is_reported_not_trusted() {
    for (bytes, warning) in [
        (
            &b"\xff\xff\xff\xffabc"[..],
            "more than this receiver accepts",
        ),
        (&b"\x00\x00\x00\x10only part"[..], "ended inside a message"),
        (&b"\x00\x00"[..], "ended inside a length prefix"),
    ] {
        let mut demo = Demo::start(&["sticky-demo", "--fix", "length", "--port", "0"]);
        let addr = demo.listening_addr();
        let mut client = TcpStream::connect(addr).expect("connect");
        client.write_all(bytes).expect("send");
        drop(client);
        let (status, events, stderr) = demo.finish();
        assert!(status.success(), "{stderr}");
        let warnings: Vec<&Value> = events.iter().filter(|e| e["event"] == "warning").collect();
        assert!(
            warnings
                .iter()
                .any(|w| w["text"].as_str().unwrap().contains(warning)),
            "{warning}: {}",
            dump(&events)
        );
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["sticky-demo", "--messages", "0"][..],
        &["sticky-demo", "--fix", "glue"],
        &["sticky-demo", "--bufsize", "0"],
    ] {
        let output = netlab().args(args).output().expect("run netlab");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn the_suggested_client_for_a_length_prefix_really_works() {
    // Typed text (nc) would become a huge length prefix: the hint must be
    // a command that writes binary prefixes, and running it must work.
    let mut demo = Demo::start(&["sticky-demo", "--fix", "length", "--port", "0"]);
    let listening = demo.wait_for("the listening line", |e| {
        e["event"] == "info" && e["key"] == "listening"
    });
    let client = listening["value"]["try"]
        .as_str()
        .expect("a command")
        .to_string();
    assert!(client.starts_with("python3 -c "), "{client}");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(&client)
        .output()
        .expect("run the suggested client");
    assert!(output.status.success(), "{output:?}");
    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "{stderr}");
    let received = &infos(&events, "messages")[0]["value"]["received"];
    assert_eq!(strings(received), ["hello", "world"]);
}

#[test]
fn delimiter_in_payload_without_the_delimiter_fix_is_a_usage_error() {
    for args in [
        &["sticky-demo", "--delimiter-in-payload"][..],
        &["sticky-demo", "--fix", "length", "--delimiter-in-payload"],
    ] {
        let output = netlab().args(args).output().expect("run netlab");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--delimiter-in-payload is only used by --fix delimiter"),
            "{stderr}"
        );
        assert!(stderr.contains("Usage: netlab sticky-demo"), "{stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    // With the fix it belongs to, the flag is accepted.
    let output = netlab()
        .args([
            "--json",
            "sticky-demo",
            "--fix",
            "delimiter",
            "--delimiter-in-payload",
        ])
        .output()
        .expect("run netlab");
    assert!(output.status.success(), "{output:?}");
}
