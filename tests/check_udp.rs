//! `netlab check udp-echo` and `netlab check chatroom-server` against the
//! Python reference answers in tests/exercises/ and their broken variants,
//! and against `netlab chatroom server` itself.
//!
//! A good answer passes every probe. A broken one fails exactly the probe
//! its bug belongs to, with that probe's hint; the probes before it pass,
//! and the ones after it pass too, or are skipped when the bug killed the
//! program. After each run, nothing the program started is left.

mod common;

use common::check::{self, exercise, Run};

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

/// `netlab --json check EXERCISE -- COMMAND...`, run to its end (see
/// `common::check::run` for what is run after it).
fn check(exercise_name: &str, command: &[&str]) -> Run {
    check::run(exercise_name, &[], command)
}

/// `check` with `python3 tests/exercises/SCRIPT {port}`.
fn check_python(exercise_name: &str, script: &str) -> Run {
    check(exercise_name, &["python3", &exercise(script), "{port}"])
}

#[test]
fn udp_echo_good_passes_every_probe() {
    let run = check_python("udp-echo", "udp_echo/good.py");
    run.assert_all_pass(UDP_PROBES);
    let large = run.happened("large");
    assert!(large.contains("all 60,000 bytes"), "{large}");
    // The kernel's view of the socket after the burst, read in this run.
    let facts = run.probe("still-serving")["facts"].clone();
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
    let run = check("udp-echo", &["python3", "-c", code, "{port}"]);
    run.assert_all_pass(UDP_PROBES);
    let happened = run.happened("large");
    assert!(
        happened.contains("first 4096 of 60,000 bytes")
            && happened.contains("discarded the other 55904"),
        "{happened}"
    );
}

#[test]
fn udp_echo_refusing_or_dropping_a_cut_datagram_passes() {
    // A server that sees MSG_TRUNC (recvmsg) and answers "ERR too big",
    // and one that drops the datagram: both survive, both pass, and the
    // report says which they did.
    let code = "import socket, sys\n\
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                s.bind(('127.0.0.1', int(sys.argv[1])))\n\
                while True:\n\
                \x20   data, _, flags, addr = s.recvmsg(4096)\n\
                \x20   if flags & socket.MSG_TRUNC:\n\
                \x20       if sys.argv[2] == 'refuse': s.sendto(b'ERR too big', addr)\n\
                \x20       continue\n\
                \x20   s.sendto(data, addr)\n";
    let run = check("udp-echo", &["python3", "-c", code, "{port}", "refuse"]);
    run.assert_all_pass(UDP_PROBES);
    let happened = run.happened("large");
    assert!(
        happened.contains("with \"ERR too big\" instead of an echo (a refusal)"),
        "{happened}"
    );
    let run = check("udp-echo", &["python3", "-c", code, "{port}", "drop"]);
    run.assert_all_pass(UDP_PROBES);
    let happened = run.happened("large");
    assert!(
        happened.contains("dropped it and went on serving"),
        "{happened}"
    );
}

#[test]
fn udp_echo_replying_to_everyone_fails_each_sender() {
    let run = check_python("udp-echo", "udp_echo/broken_replies_to_all.py");
    run.assert_caught(
        UDP_PROBES,
        "each-sender",
        "do not keep the first client's address",
    );
    let happened = run.happened("each-sender");
    assert!(
        happened.contains("the reply meant for client B"),
        "{happened}"
    );
}

/// The probes after each-sender, which must point back to it.
const AFTER_EACH_SENDER: &[&str] = &["binary", "empty", "large", "burst", "still-serving"];

#[test]
fn udp_echo_replying_to_the_first_client_fails_each_sender_and_the_rest_point_there() {
    let run = check_python("udp-echo", "udp_echo/broken_first_client.py");
    let mut failing = vec![("each-sender", "fail")];
    failing.extend(AFTER_EACH_SENDER.iter().map(|name| (*name, "fail")));
    run.assert_statuses(UDP_PROBES, &failing);
    run.assert_probe(
        "each-sender",
        "fail",
        "do not keep the first client's address",
    );
    for name in AFTER_EACH_SENDER {
        run.assert_probe(name, "fail", "do not keep the first client's address");
        let happened = run.happened(name);
        assert!(happened.contains("see each-sender"), "{name}: {happened}");
    }
    // Read from the kernel: the socket is not connected.
    let remote = run.facts("each-sender", "remote");
    assert_eq!(remote[0]["value"], "0.0.0.0:0", "{remote:?}");
}

#[test]
fn udp_echo_connected_socket_fails_each_sender_with_the_kernel_fact() {
    let run = check_python("udp-echo", "udp_echo/broken_connected.py");
    let mut failing = vec![("each-sender", "fail")];
    failing.extend(AFTER_EACH_SENDER.iter().map(|name| (*name, "fail")));
    run.assert_statuses(UDP_PROBES, &failing);
    run.assert_probe(
        "each-sender",
        "fail",
        "Do not connect() your server's socket",
    );
    let remote = run.facts("each-sender", "remote");
    let text = remote[0]["text"].as_str().unwrap_or("");
    assert!(text.contains("is connect()ed to 127.0.0.1:"), "{remote:?}");
    for name in AFTER_EACH_SENDER {
        run.assert_probe(name, "fail", "Do not connect() your server's socket");
        let happened = run.happened(name);
        assert!(happened.contains("see each-sender"), "{name}: {happened}");
    }
}

#[test]
fn udp_echo_added_newline_is_a_changed_reply_not_a_misdirected_one() {
    // Every reply reaches the right client, one byte longer: each-sender
    // names the change (not a reply to another client), and the later
    // probes wait their full time and say what came back.
    let run = check_python("udp-echo", "udp_echo/broken_adds_newline.py");
    let mut failing = vec![("echo", "fail"), ("each-sender", "fail")];
    failing.extend(AFTER_EACH_SENDER.iter().map(|name| (*name, "fail")));
    run.assert_statuses(UDP_PROBES, &failing);
    for name in UDP_PROBES {
        run.assert_probe(name, "fail", "Send back exactly the bytes");
        let happened = run.happened(name);
        assert!(!happened.contains("see each-sender"), "{name}: {happened}");
    }
    let happened = run.happened("each-sender");
    assert!(
        happened.contains("client A's reply to \"turn 1 from client A\" came back changed"),
        "{happened}"
    );
    assert!(!happened.contains("none of the clients sent"), "{happened}");
    for name in ["empty", "large"] {
        let happened = run.happened(name);
        assert!(happened.contains("came back changed"), "{name}: {happened}");
    }
}

#[test]
fn udp_echo_late_replies_are_late_and_the_later_probes_wait() {
    // The first five replies come 1.2 s late, each to its own client:
    // each-sender calls them late (not "a second time", not sent
    // elsewhere), and binary and empty, answered promptly, pass.
    let run = check_python("udp-echo", "udp_echo/broken_slow_replies.py");
    run.assert_caught(
        UDP_PROBES,
        "each-sender",
        "Your replies reach the right clients, but late",
    );
    let happened = run.happened("each-sender");
    assert!(
        happened.contains("client A's reply to \"turn 1 from client A\" came only after netlab had stopped waiting"),
        "{happened}"
    );
    assert!(!happened.contains("a second time"), "{happened}");
    assert!(!happened.contains("got no reply"), "{happened}");
}

#[test]
fn udp_echo_tiny_receive_buffer_passes_large() {
    // SO_RCVBUF 1024 and a pause before each recvfrom(): a follow-up sent
    // right behind the 60,000-byte datagram would be dropped by the
    // kernel; netlab sends it after the reply, and large passes.
    let run = check_python("udp-echo", "udp_echo/good_tiny_buffer.py");
    run.assert_pass(&[
        "echo",
        "each-sender",
        "binary",
        "empty",
        "large",
        "still-serving",
    ]);
    let happened = run.happened("large");
    assert!(
        happened.contains("the first 2048 of 60,000 bytes"),
        "{happened}"
    );
}

#[test]
fn udp_echo_replying_twice_gets_the_one_reply_hint() {
    // Each reply goes to the right client, twice: a second copy is not a
    // reply to another client, and the later probes do not point back.
    let code = "import socket, sys\n\
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                s.bind(('127.0.0.1', int(sys.argv[1])))\n\
                while True:\n\
                \x20   data, addr = s.recvfrom(65535)\n\
                \x20   s.sendto(data, addr)\n\
                \x20   s.sendto(data, addr)\n";
    let run = check("udp-echo", &["python3", "-c", code, "{port}"]);
    run.assert_caught(
        UDP_PROBES,
        "each-sender",
        "one sendto() for each recvfrom()",
    );
    run.assert_happened("each-sender", "a second time");
}

#[test]
fn udp_echo_decoding_fails_binary() {
    let run = check_python("udp-echo", "udp_echo/broken_decode.py");
    run.assert_caught_rest_skipped(UDP_PROBES, "binary", "do not decode() the datagram");
}

#[test]
fn udp_echo_stopping_on_empty_fails_empty() {
    let run = check_python("udp-echo", "udp_echo/broken_dies_on_empty.py");
    run.assert_caught_rest_skipped(UDP_PROBES, "empty", "does not mean the client left");
    run.assert_happened("empty", "exited with status 0");
}

#[test]
fn udp_echo_raising_on_truncation_fails_large() {
    let run = check_python("udp-echo", "udp_echo/broken_small_buffer_crash.py");
    run.assert_caught_rest_skipped(UDP_PROBES, "large", "never raise or exit on MSG_TRUNC");
}

#[test]
fn chatroom_good_passes_every_probe() {
    let run = check_python("chatroom-server", "chatroom/good.py");
    run.assert_all_pass(CHAT_PROBES);
    let facts = run.probe("malformed")["facts"].clone();
    assert_eq!(facts[0]["fact"], "udp_socket", "{facts}");
    assert_eq!(facts[0]["available"], true, "{facts}");
}

#[test]
fn netlab_chatroom_server_passes_its_own_check() {
    // The server forks a console that reads stdin (/dev/null here: it
    // ends at once, and the server goes on); both must be gone after.
    let netlab = env!("CARGO_BIN_EXE_netlab");
    let run = check(
        "chatroom-server",
        &[netlab, "chatroom", "server", "--port", "{port}"],
    );
    run.assert_all_pass(CHAT_PROBES);
}

#[test]
fn chatroom_without_duplicate_check_fails_duplicate() {
    let run = check_python("chatroom-server", "chatroom/broken_no_dup_check.py");
    run.assert_caught(CHAT_PROBES, "duplicate", "answer ERR name taken");
}

#[test]
fn chatroom_echoing_to_the_sender_fails_fan_out() {
    let run = check_python("chatroom-server", "chatroom/broken_echo_to_sender.py");
    run.assert_caught(CHAT_PROBES, "fan-out", "Skip the sender");
}

#[test]
fn chatroom_silent_quit_fails_quit() {
    let run = check_python("chatroom-server", "chatroom/broken_no_exit.py");
    run.assert_caught(CHAT_PROBES, "quit", "with EXIT to its sender");
}

#[test]
fn chatroom_dying_on_garbage_fails_malformed() {
    let run = check_python("chatroom-server", "chatroom/broken_dies_on_garbage.py");
    run.assert_caught_rest_skipped(
        CHAT_PROBES,
        "malformed",
        "check how many parts split() gave",
    );
    let happened = run.happened("malformed");
    assert!(
        happened.contains("after it received a word that is no request"),
        "{happened}"
    );
}

#[test]
fn chatroom_who_in_login_order_warns_who() {
    // abe logs in last: a list kept in login order puts it after mo.
    let run = check_python("chatroom-server", "chatroom/broken_unsorted_who.py");
    run.assert_statuses(CHAT_PROBES, &[("who", "warn")]);
    run.assert_probe("who", "warn", "join(sorted(users))");
    let happened = run.happened("who");
    assert!(happened.contains("mo comes before abe"), "{happened}");
    assert!(happened.contains("the order of login"), "{happened}");
}

#[test]
fn chatroom_join_to_the_newcomer_itself_warns_fan_out() {
    let run = check_python("chatroom-server", "chatroom/broken_join_self.py");
    run.assert_statuses(CHAT_PROBES, &[("fan-out", "warn")]);
    run.assert_probe(
        "fan-out",
        "warn",
        "Send JOIN name only to the users who were there",
    );
    let happened = run.happened("fan-out");
    assert!(happened.contains("cy got \"JOIN cy\""), "{happened}");
}

#[test]
fn chatroom_squeezing_spaces_fails_fan_out() {
    let run = check_python("chatroom-server", "chatroom/broken_squeezed_spaces.py");
    run.assert_caught(CHAT_PROBES, "fan-out", "split only the first two spaces");
    let happened = run.happened("fan-out");
    assert!(happened.contains("came out as one"), "{happened}");
}

#[test]
fn chatroom_who_with_a_trailing_space_warns_about_the_space() {
    // Sorted names, one space too many: no word of order or login.
    let run = check_python("chatroom-server", "chatroom/broken_who_trailing_space.py");
    run.assert_statuses(CHAT_PROBES, &[("who", "warn")]);
    run.assert_probe("who", "warn", "nothing after the last one");
    let happened = run.happened("who");
    assert!(
        happened.contains("ends with a space") && !happened.contains("not sorted"),
        "{happened}"
    );
}

#[test]
fn chatroom_stripping_the_text_fails_fan_out() {
    let run = check_python("chatroom-server", "chatroom/broken_strips_text.py");
    run.assert_caught(CHAT_PROBES, "fan-out", "do not strip() it");
    run.assert_happened("fan-out", "the space at the end of cy's text was cut off");
}
