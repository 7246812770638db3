//! `netlab check tcp-client` and `netlab check framing`, run for real
//! against the reference solutions in tests/exercises/ and their broken
//! variants: the good ones pass every probe, each broken one fails the
//! probe made for its bug, with that probe's hint, and no process is left.

mod common;

use common::check::{self, exercise, Run};

const CLIENT_PROBES: &[&str] = &["connect", "request", "reply", "close", "exit"];

/// `netlab --json check tcp-client -- python3 tests/exercises/tcp_client/SCRIPT
/// {host} {port}`, run to its end (see `common::check::run`).
fn client(script: &str) -> Run {
    let path = exercise(&format!("tcp_client/{script}"));
    check::run("tcp-client", &[], &["python3", &path, "{host}", "{port}"])
}

#[test]
fn tcp_client_good_passes_every_probe() {
    let run = client("good.py");
    run.assert_all_pass(CLIENT_PROBES);
    // Its reading of the reply is what the kernel showed, not a guess.
    run.assert_happened("reply", "read the whole reply");
}

#[test]
fn tcp_client_closing_without_reading_fails_reply() {
    let run = client("broken_no_read.py");
    run.assert_caught(
        CLIENT_PROBES,
        "reply",
        "wait for the reply before you close",
    );
    // The evidence: netlab's socket got the RST its reply caused.
    let reply = run.probe("reply");
    assert!(reply["facts"].to_string().contains("so_error"), "{reply}");
}

#[test]
fn tcp_client_single_recv_fails_reply() {
    let run = client("broken_one_recv.py");
    run.assert_caught(
        CLIENT_PROBES,
        "reply",
        "Keep calling recv() until the reply's newline",
    );
}

#[test]
fn tcp_client_so_linger_zero_fails_close() {
    let run = client("broken_reset.py");
    run.assert_caught(CLIENT_PROBES, "close", "remove the SO_LINGER option");
}

#[test]
fn tcp_client_that_never_closes_fails_close() {
    // It never exits either: that probe is not run, not failed twice.
    let run = client("broken_never_closes.py");
    run.assert_caught_rest_skipped(
        CLIENT_PROBES,
        "close",
        "Close the socket once the reply is read",
    );
    // The kernel shows its end left open after netlab's FIN.
    let close = run.probe("close");
    assert!(close["facts"].to_string().contains("CLOSE_WAIT"), "{close}");
}

#[test]
fn tcp_client_line_without_newline_fails_request() {
    let run = client("broken_no_newline.py");
    run.assert_statuses(CLIENT_PROBES, &[("request", "fail"), ("reply", "skip")]);
    run.assert_probe("request", "fail", "End the line with a newline");
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

/// `netlab --json check framing -- python3 tests/exercises/framing/SCRIPT
/// {port}`, run to its end (see `common::check::run`).
fn framing(script: &str) -> Run {
    let path = exercise(&format!("framing/{script}"));
    check::run("framing", &[], &["python3", &path, "{port}"])
}

#[test]
fn framing_good_passes_every_probe() {
    let run = framing("good.py");
    run.assert_all_pass(FRAMING_PROBES);
}

#[test]
fn framing_plain_echo_fails_one_message() {
    let run = framing("broken_echo.py");
    run.assert_caught_rest_skipped(
        FRAMING_PROBES,
        "one-message",
        "bytes reversed (message[::-1])",
    );
}

#[test]
fn framing_one_recv_per_message_fails_merged() {
    let run = framing("broken_one_recv.py");
    assert_eq!(run.exit_code, Some(1), "{}", run.summary());
    run.assert_probe("merged", "fail", "several messages glued together");
    run.assert_probe("split-message", "fail", "only part of a message");
    run.assert_probe("large", "fail", "A 1 MiB message");
    run.assert_probe("pipelined", "fail", "Keep the bytes that follow");
    // A message that comes alone and whole is all this server handles.
    run.assert_pass(&["one-message", "empty", "close-wait"]);
}

#[test]
fn framing_single_recv_for_the_length_fails_split_header() {
    // struct.unpack() raised and the server died: the last probe is not run.
    let run = framing("broken_short_header.py");
    run.assert_caught_rest_skipped(
        FRAMING_PROBES,
        "split-header",
        "recv(4) may return fewer than 4 bytes",
    );
}

#[test]
fn framing_unchecked_length_fails_oversized() {
    let run = framing("broken_no_length_check.py");
    run.assert_caught(FRAMING_PROBES, "oversized", "refuse anything above 1 MiB");
}

#[test]
fn framing_empty_message_taken_for_eof_fails_empty() {
    let run = framing("broken_empty_is_eof.py");
    run.assert_caught(
        FRAMING_PROBES,
        "empty",
        "A length of 0 is a valid, empty message",
    );
}

#[test]
fn framing_server_that_never_closes_fails_close_wait() {
    let run = framing("broken_no_close.py");
    // Refusing a length without closing leaves that connection open too.
    run.assert_statuses(
        FRAMING_PROBES,
        &[("close-wait", "fail"), ("oversized", "fail")],
    );
    run.assert_probe("close-wait", "fail", "close() the connection's socket too");
    run.assert_probe("oversized", "fail", "close that connection");
    let close_wait = run.probe("close-wait");
    assert!(
        close_wait["facts"].to_string().contains("CLOSE_WAIT"),
        "{close_wait}"
    );
}

#[test]
fn framing_limit_off_by_one_fails_large_with_its_own_hint() {
    let run = framing("broken_limit_off_by_one.py");
    run.assert_caught(
        FRAMING_PROBES,
        "large",
        "Exactly 1,048,576 bytes is allowed",
    );
}

#[test]
fn framing_little_endian_length_fails_one_message_with_byte_order_hint() {
    let run = framing("broken_byte_order.py");
    run.assert_caught_rest_skipped(FRAMING_PROBES, "one-message", "check the byte order");
}

#[test]
fn framing_byte_after_each_answer_fails_one_message() {
    // It frames its input right; the newline it adds after each answer is
    // read on after the answer, not taken later for a length.
    let run = framing("broken_newline_after.py");
    run.assert_caught_rest_skipped(FRAMING_PROBES, "one-message", "and nothing more");
    let happened = run.happened("one-message");
    assert!(
        happened.contains("1 byte came after it: 0x0a"),
        "{happened}"
    );
}

#[test]
fn framing_a_greeting_is_shown_as_text_and_named() {
    let run = framing("broken_greeting.py");
    run.assert_caught_rest_skipped(FRAMING_PROBES, "one-message", "Send nothing but answers");
    let happened = run.happened("one-message");
    assert!(
        happened.contains("something came before the first answer")
            && happened.contains("\"HELL\" as text"),
        "{happened}"
    );
}

#[test]
fn framing_an_answer_sent_twice_is_named_a_second_copy() {
    let run = framing("broken_answer_twice.py");
    run.assert_caught_rest_skipped(FRAMING_PROBES, "one-message", "Send each answer once");
    let happened = run.happened("one-message");
    assert!(happened.contains("then a second copy of it"), "{happened}");
}

#[test]
fn framing_bytes_between_answers_are_shown_in_hex_not_blamed_on_recv() {
    // One answer alone goes out clean; two or more get a newline between
    // them. The absurd "length" is shown as the bytes it is.
    let run = framing("broken_joined_answers.py");
    run.assert_statuses(FRAMING_PROBES, &[("merged", "fail"), ("pipelined", "fail")]);
    run.assert_probe("merged", "fail", "and nothing more");
    let happened = run.happened("merged");
    assert!(
        happened.contains("0x0a 0x00 0x00 0x00") && happened.contains("bytes were added between"),
        "{happened}"
    );
}
