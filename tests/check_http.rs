//! `netlab check http-static` against real servers: the Python reference
//! passes every probe, each broken variant fails exactly the probe made
//! for its bug (with that bug's hint) and passes the others, netlab's own
//! http-server passes, Python's http.server passes with a keep-alive
//! warning, and a server that answers garbage cannot hang or crash the
//! checker. After each run, the program netlab started must be gone.

mod common;

use std::time::{Duration, Instant};

use common::check::{self, exercise, Run};

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

/// `netlab --json check http-static [extra] -- COMMAND`, run to its end
/// (see `common::check::run` for what is checked after it); every probe
/// is reported, once, whatever the server did.
fn check(extra: &[&str], command: &[&str]) -> Run {
    let run = check::run("http-static", extra, command);
    assert_eq!(run.probe_names(), PROBES, "{}", run.summary());
    run
}

/// Check one of the Python solutions in tests/exercises/http_static.
fn check_python(script: &str) -> Run {
    let path = exercise(&format!("http_static/{script}"));
    check(&[], &["python3", &path, "{port}", "{root}"])
}

#[test]
fn the_reference_solution_passes_every_probe() {
    let run = check_python("good.py");
    run.assert_all_pass(&PROBES);
    // The kept-alive connection is still open on the server's side: read
    // from /proc/net/tcp during the probe.
    let fact = &run.probe("keep-alive")["facts"][0];
    assert_eq!(fact["fact"], "tcp_state", "{fact}");
    assert_eq!(fact["value"], "ESTABLISHED", "{fact}");
    // Every file, with its Content-Type, is named in the report.
    let got = run.happened("get-file");
    for name in [
        "/index.html",
        "/notes.txt",
        "/style.css",
        "/sub/page.html",
        "/two%20words.txt",
    ] {
        assert!(got.contains(name), "{got}");
    }
    assert!(run.happened("traversal").contains("403 Forbidden"));
}

#[test]
fn traversal_is_caught_with_the_secret_shown() {
    let run = check_python("broken_traversal.py");
    run.assert_caught(&PROBES, "traversal", "os.path.commonpath");
    assert!(
        run.happened("traversal").contains("NETLAB-SECRET-"),
        "{}",
        run.happened("traversal")
    );
}

#[test]
fn one_recv_per_request_is_caught_by_the_small_pieces() {
    let run = check_python("broken_one_recv.py");
    run.assert_caught(&PROBES, "small-pieces", "One recv() is not one request");
    let happened = run.happened("small-pieces");
    // Usually after the first piece ("GE"); on a loaded machine the answer
    // may come a piece or two later.
    assert!(happened.contains(" of 7 pieces"), "{happened}");
    assert!(happened.contains("400"), "{happened}");
}

#[test]
fn content_length_in_characters_is_caught() {
    let run = check_python("broken_content_length.py");
    run.assert_caught(&PROBES, "get-file", "count the bytes");
    run.assert_happened(
        "get-file",
        "Content-Length: 275, but the file has 279 bytes",
    );
}

#[test]
fn a_body_after_head_is_caught() {
    let run = check_python("broken_head_body.py");
    run.assert_caught(&PROBES, "head", "no body bytes");
    assert!(run
        .happened("head")
        .contains("the file's 67 bytes followed"));
}

#[test]
fn a_missing_404_is_caught() {
    let run = check_python("broken_no_404.py");
    run.assert_caught(&PROBES, "not-found", "404 Not Found");
    assert!(run.happened("not-found").contains("no response"));
}

#[test]
fn netlab_http_server_passes() {
    let netlab = env!("CARGO_BIN_EXE_netlab");
    let run = check(
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
    run.assert_all_pass(&PROBES);
}

/// Python's own http.server answers HTTP/1.0 and closes after each
/// response: a warning, not a failure. To bytes that are not HTTP it
/// answers like an HTTP/0.9 server (a page without a status line): also a
/// warning.
#[test]
fn python_http_server_warns_about_keep_alive() {
    let run = check(
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
    run.assert_statuses(&PROBES, &[("keep-alive", "warn"), ("bad-request", "warn")]);
    assert!(run
        .hint("keep-alive")
        .contains("HTTP/1.1 keeps a connection open"));
    assert!(run.happened("keep-alive").contains("HTTP/1.0"));
    let fact = &run.probe("keep-alive")["facts"][0];
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
    let run = check(
        &["--patience", "0.25"],
        &["python3", "-c", server, "{port}", "{root}"],
    );
    assert!(started.elapsed() < Duration::from_secs(12));
    assert_eq!(run.exit_code, Some(1), "{}", run.summary());
    for probe in [
        "get-file",
        "binary",
        "not-found",
        "head",
        "small-pieces",
        "keep-alive",
    ] {
        assert_eq!(run.status(probe), "fail", "{}", run.probe(probe));
    }
    assert!(
        run.hint("get-file").contains("status line"),
        "{}",
        run.probe("get-file")
    );
    assert!(run.happened("get-file").contains("garbage"));
}

/// A wrong Content-Type is get-file's to judge: binary (the PNG's type is
/// judged there only when get-file found the others right) and the probes
/// about status, framing and connections pass, saying "see get-file".
#[test]
fn a_wrong_content_type_fails_get_file_only() {
    let run = check_python("broken_wrong_type.py");
    run.assert_caught(&PROBES, "get-file", "Choose Content-Type");
    run.assert_happened(
        "get-file",
        "application/octet-stream, but for .html it is text/html",
    );
    for probe in ["binary", "small-pieces", "keep-alive"] {
        assert!(
            run.happened(probe).contains("see get-file"),
            "{}",
            run.probe(probe)
        );
    }
}

/// Content-Length one too many, with the body read in binary mode: the
/// hint is about counting the bytes sent, not about characters. HEAD's
/// head is GET's, so head passes; the probes that read a body fail, as a
/// client waiting for the missing byte would.
#[test]
fn a_content_length_one_too_many_gets_the_count_hint() {
    let run = check_python("broken_length_plus_one.py");
    run.assert_statuses(
        &PROBES,
        &[
            ("get-file", "fail"),
            ("binary", "fail"),
            ("not-found", "fail"),
            ("small-pieces", "fail"),
            ("keep-alive", "fail"),
            ("bad-request", "fail"),
        ],
    );
    run.assert_probe("get-file", "fail", "the very bytes object");
    assert!(!run.hint("get-file").contains("characters"));
    let happened = run.happened("get-file");
    assert!(
        happened.contains("Content-Length says 280 bytes, but only 279 arrived"),
        "{happened}"
    );
}

/// index.html for every path: the hint says the path is ignored (the
/// Content-Length matches the body sent). A missing file gets 200 and a
/// path outside the root gets 200: those probes fail on their own
/// subject; head, small-pieces, keep-alive and bad-request pass.
#[test]
fn a_server_that_ignores_the_path_is_named() {
    let run = check_python("broken_index_only.py");
    run.assert_statuses(
        &PROBES,
        &[
            ("get-file", "fail"),
            ("binary", "fail"),
            ("not-found", "fail"),
            ("traversal", "fail"),
        ],
    );
    run.assert_probe("get-file", "fail", "ignores the path");
    run.assert_probe("binary", "fail", "ignores the path");
    run.assert_happened(
        "get-file",
        "the body is /index.html's 279 bytes, not /notes.txt's 156",
    );
}

/// The PNG read in text mode raises UnicodeDecodeError: no response, and
/// the hint points to 'rb'.
#[test]
fn a_binary_file_read_as_text_gets_the_rb_hint() {
    let run = check_python("broken_text_mode.py");
    run.assert_caught(&PROBES, "binary", "binary mode ('rb')");
    assert!(run.happened("binary").contains("no response"));
}

/// No blank line after the headers: every probe that reads a response
/// names it, head included.
#[test]
fn a_missing_blank_line_is_named_by_every_probe() {
    let run = check_python("broken_no_blank_line.py");
    let failing = [
        "get-file",
        "binary",
        "not-found",
        "head",
        "small-pieces",
        "keep-alive",
        "bad-request",
    ];
    let statuses: Vec<(&str, &str)> = failing.iter().map(|name| (*name, "fail")).collect();
    run.assert_statuses(&PROBES, &statuses);
    for probe in failing {
        run.assert_probe(probe, "fail", "End the head with an empty line");
    }
}

/// Lines ended with \n alone: a warning in get-file, every other probe
/// judged as usual (and passed).
#[test]
fn bare_lf_line_ends_are_a_warning() {
    let run = check_python("bare_lf.py");
    run.assert_statuses(&PROBES, &[("get-file", "warn")]);
    run.assert_probe("get-file", "warn", "not with \\n alone");
}

#[test]
fn a_chunked_response_is_named_as_chunked_not_as_unframed() {
    // Valid HTTP/1.1, but not the Content-Length the exercise asks for:
    // the report shows the header and does not claim the body's end
    // cannot be found.
    let run = check_python("broken_chunked.py");
    run.assert_statuses(
        &PROBES,
        &[
            ("get-file", "fail"),
            ("binary", "fail"),
            ("not-found", "fail"),
            ("small-pieces", "fail"),
            ("keep-alive", "fail"),
            ("bad-request", "fail"),
        ],
    );
    for name in ["get-file", "keep-alive"] {
        run.assert_probe(name, "fail", "Chunked transfer encoding is valid HTTP/1.1");
        let happened = run.happened(name);
        assert!(
            happened.contains("Transfer-Encoding: chunked"),
            "{name}: {happened}"
        );
    }
}

#[test]
fn a_missing_content_type_is_said_in_words() {
    let run = check_python("broken_no_type.py");
    run.assert_caught(&PROBES, "get-file", "Choose Content-Type");
    let got = run.happened("binary");
    assert!(got.contains("(520 bytes, no Content-Type)"), "{got}");
}

#[test]
fn a_query_kept_in_the_file_name_is_a_warning() {
    let run = check_python("broken_query_kept.py");
    run.assert_statuses(&PROBES, &[("get-file", "warn")]);
    run.assert_probe("get-file", "warn", "Drop the ?query");
    let happened = run.happened("get-file");
    assert!(
        happened.contains("GET /style.css?v=1: HTTP/1.1 404"),
        "{happened}"
    );
}

#[test]
fn delete_answered_like_get_is_a_warning() {
    let run = check_python("broken_any_method.py");
    run.assert_statuses(&PROBES, &[("bad-request", "warn")]);
    run.assert_probe("bad-request", "warn", "405 Method Not Allowed");
    let happened = run.happened("bad-request");
    assert!(
        happened.contains("DELETE /style.css: HTTP/1.1 200 OK"),
        "{happened}"
    );
}

#[test]
fn a_server_that_dies_on_delete_fails_bad_request() {
    // The DELETE ends the program: a failure (exit 1) naming how it
    // ended, not a warning about the status.
    let run = check_python("broken_dies_on_delete.py");
    run.assert_caught(&PROBES, "bad-request", "must never end your server");
    let happened = run.happened("bad-request");
    assert!(
        happened.contains("DELETE /style.css: no response")
            && happened.contains("your program exited with status 1"),
        "{happened}"
    );
}

#[test]
fn a_server_that_dies_on_a_query_fails_get_file_and_the_rest_are_skipped() {
    let run = check_python("broken_dies_on_query.py");
    let skipped: Vec<(&str, &str)> = PROBES[1..].iter().map(|name| (*name, "skip")).collect();
    let mut statuses = vec![("get-file", "fail")];
    statuses.extend(skipped);
    run.assert_statuses(&PROBES, &statuses);
    run.assert_probe("get-file", "fail", "A request must never end your server");
    let happened = run.happened("get-file");
    assert!(
        happened.contains("GET /style.css?v=1: no response")
            && happened.contains("your program exited with status 1"),
        "{happened}"
    );
}

#[test]
fn delete_hints_follow_the_answer() {
    // 204 and the file removed: "deleted"; 400: the status that says so.
    let run = check_python("broken_deletes_file.py");
    run.assert_statuses(&PROBES, &[("bad-request", "warn")]);
    run.assert_probe(
        "bad-request",
        "warn",
        "a static server must not change its files",
    );
    let happened = run.happened("bad-request");
    assert!(
        happened.contains("204 No Content") && happened.contains("is gone: your server deleted it"),
        "{happened}"
    );
    let run = check_python("broken_delete_400.py");
    run.assert_statuses(&PROBES, &[("bad-request", "warn")]);
    run.assert_probe(
        "bad-request",
        "warn",
        "is the status that says a method is not supported",
    );
}

#[test]
fn a_query_that_changes_the_content_type_is_a_warning() {
    let run = check_python("broken_query_type.py");
    run.assert_statuses(&PROBES, &[("get-file", "warn")]);
    run.assert_probe("get-file", "warn", "before you choose the Content-Type");
    let happened = run.happened("get-file");
    assert!(
        happened.contains("GET /style.css?v=1: Content-Type: application/octet-stream"),
        "{happened}"
    );
}

#[test]
fn content_length_and_chunked_together_are_named() {
    // Both framings: the client reads Content-Length bytes of chunk
    // framing. get-file and binary name both headers, not the file's mode.
    let run = check_python("broken_both_framings.py");
    run.assert_statuses(
        &PROBES,
        &[
            ("get-file", "fail"),
            ("binary", "fail"),
            ("keep-alive", "fail"),
        ],
    );
    for name in ["get-file", "binary"] {
        run.assert_probe(name, "fail", "never both");
        let happened = run.happened(name);
        assert!(
            happened.contains("both Content-Length:")
                && happened.contains("and Transfer-Encoding: chunked"),
            "{name}: {happened}"
        );
    }
}
