//! tcp-client against real servers: netlab's own, and Rust std listeners
//! that misbehave on purpose (close at once, reset).

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::thread;

use common::*;

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[test]
fn talks_to_netlab_tcp_server_and_shows_time_wait_on_the_side_that_closed_first() {
    let (server, addr) = tcp_server(&["--max-clients", "1"]);
    let port = addr.port().to_string();
    let client = Demo::start(&[
        "tcp-client",
        "--port",
        &port,
        "--message",
        "hello",
        "--message",
        "again",
    ]);
    let (status, events, stderr) = client.finish();
    assert!(status.success(), "{stderr}");
    let calls = calls(&events);
    assert!(
        in_order(
            &calls,
            &[
                "socket",
                "connect",
                "getsockname",
                "send",
                "recv",
                "send",
                "recv",
                "close"
            ]
        ),
        "{calls:?}"
    );
    let replies: Vec<&str> = returns(&events, "recv")
        .iter()
        .filter_map(|e| e["result"].as_str())
        .collect();
    assert!(
        replies[0].ends_with(r#""hello""#) && replies[1].ends_with(r#""again""#),
        "{replies:?}"
    );

    // The local port came from the ephemeral range the kernel reports.
    let range = facts(&events, "local_port_range")[0]["value"].clone();
    let (low, high, local_port) = (
        range["low"].as_u64().unwrap(),
        range["high"].as_u64().unwrap(),
        range["port"].as_u64().unwrap(),
    );
    assert!((low..=high).contains(&local_port), "{range}");

    // The client closed first: its end is TIME_WAIT.
    let mine = facts(&events, "connection_state")
        .into_iter()
        .find(|e| e["value"]["whose"] == "this client's end")
        .expect("this client's end");
    assert_eq!(mine["value"]["state"], "TIME_WAIT", "{mine}");
    assert!(server.finish().0.success());
}

#[test]
fn connection_refused_is_named_and_explained() {
    let closed = closed_port();
    let port = closed.port.to_string();
    let client = Demo::start(&["tcp-client", "--port", &port, "--message", "x"]);
    let (status, events, stderr) = client.finish();
    assert_eq!(status.code(), Some(1));
    let connect = returns(&events, "connect");
    assert_eq!(connect[0]["errno"], "ECONNREFUSED");
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(stderr.contains("hint: start a server first"), "{stderr}");
    let error = events
        .iter()
        .find(|e| e["event"] == "error")
        .expect("error event");
    assert!(error["message"].as_str().unwrap().contains("refused"));
}

#[test]
fn half_close_sends_fin_and_still_reads_the_answer() {
    let (server, addr) = tcp_server(&["--max-clients", "1"]);
    let port = addr.port().to_string();
    let client = Demo::start(&[
        "tcp-client",
        "--port",
        &port,
        "--message",
        "one ",
        "--message",
        "two",
        "--half-close",
    ]);
    let (status, events, stderr) = client.finish();
    assert!(status.success(), "{stderr}");
    let calls = calls(&events);
    assert!(
        in_order(&calls, &["send", "send", "shutdown", "recv", "close"]),
        "{calls:?}"
    );
    // The state read right after shutdown(SHUT_WR): our FIN is out, so the
    // socket has left ESTABLISHED. Which state it is depends on how fast the
    // server's FIN arrives: FIN_WAIT1/2, or CLOSE once both FINs crossed (the
    // kernel then keeps a TIME_WAIT record, which netlab reads and shows).
    let shutdown_step = events
        .iter()
        .find(|e| e["event"] == "call" && e["call"] == "shutdown")
        .map(|e| e["step"].clone())
        .expect("a shutdown step");
    let after_shutdown = facts(&events, "tcp_state")
        .into_iter()
        .find(|e| e["step"] == shutdown_step)
        .expect("the state after shutdown");
    let state = after_shutdown["value"].as_str().unwrap();
    assert!(
        ["FIN_WAIT1", "FIN_WAIT2", "CLOSE", "CLOSING"].contains(&state),
        "{after_shutdown}\n{}",
        dump(&events)
    );
    if state == "CLOSE" {
        let record = facts(&events, "connection_state")
            .into_iter()
            .find(|e| e["step"] == shutdown_step)
            .expect("the TIME_WAIT record is shown when TCP_INFO says CLOSE");
        assert_eq!(record["value"]["state"], "TIME_WAIT", "{record}");
    }
    // Our FIN went first, so our end is the one in TIME_WAIT at the end.
    let ours = facts(&events, "connection_state")
        .into_iter()
        .rfind(|e| e["value"]["whose"] == "this client's end")
        .expect("this client's end");
    assert_eq!(ours["value"]["state"], "TIME_WAIT", "{ours}");
    let received: String = returns(&events, "recv")
        .iter()
        .filter(|e| e["value"].as_i64().unwrap_or(0) > 0)
        .filter_map(|e| e["result"].as_str())
        .collect();
    assert!(
        received.contains("one ") && received.contains("two"),
        "{received}"
    );
    assert_eq!(
        returns(&events, "recv").last().unwrap()["value"],
        0,
        "reads until end of stream"
    );
    assert!(server.finish().0.success());
}

/// A server that accepts and closes at once. The client is driven through
/// its stdin, so that it writes only after the server's FIN has arrived.
fn start_client_against_closing_server(sigpipe: &str) -> Demo {
    let (listener, addr) = listener();
    let port = addr.port().to_string();
    let mut client = Demo::start(&["tcp-client", "--port", &port, "--sigpipe", sigpipe]);
    let (conn, _) = listener.accept().expect("accept");
    drop(conn); // FIN
    client.wait_for("connected", |e| {
        e["event"] == "info" && e["key"] == "connected"
    });
    client.send_stdin("first\n");
    client.wait_for("recv returning 0", |e| {
        e["event"] == "return" && e["call"] == "recv" && e["value"] == 0
    });
    client.send_stdin("second\n");
    client
}

#[test]
fn writing_after_the_server_closed_first_succeeds_then_fails_with_epipe() {
    let client = start_client_against_closing_server("ignore");
    let (status, events, stderr) = client.finish();
    let sends = returns(&events, "send");
    assert_eq!(
        sends[0]["ok"], true,
        "the first write is accepted by our kernel"
    );
    assert_eq!(sends[1]["errno"], "EPIPE", "{}", dump(&events));
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("EPIPE"), "{stderr}");
}

#[test]
fn with_the_default_sigpipe_the_second_write_kills_the_client() {
    let client = start_client_against_closing_server("default");
    let (status, events, _) = client.finish();
    assert_eq!(
        status.signal(),
        Some(13),
        "killed by SIGPIPE: {status}; {}",
        dump(&events)
    );
    assert!(
        events.iter().all(|e| e["event"] != "end"),
        "a killed process says nothing more"
    );
}

#[test]
fn a_reset_from_the_server_is_econnreset() {
    let (listener, addr) = listener();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 2];
        conn.read_exact(&mut buf).expect("read");
        // Linger 0: close() sends RST instead of FIN.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        nix::sys::socket::setsockopt(&conn, nix::sys::socket::sockopt::Linger, &linger)
            .expect("SO_LINGER");
        drop(conn);
    });
    let port = addr.port().to_string();
    let client = Demo::start(&["tcp-client", "--port", &port, "--message", "hi"]);
    let (status, events, _) = client.finish();
    server.join().unwrap();
    assert_eq!(
        returns(&events, "recv")[0]["errno"],
        "ECONNRESET",
        "{}",
        dump(&events)
    );
    assert_eq!(status.code(), Some(1));
}

#[test]
fn lines_typed_on_stdin_are_sent_one_by_one() {
    let (server, addr) = tcp_server(&["--max-clients", "1"]);
    let port = addr.port().to_string();
    let mut client = Demo::start(&["tcp-client", "--port", &port]);
    client.send_stdin("line one\nline two\n");
    client.wait_for("the second reply", |e| {
        e["event"] == "return"
            && e["call"] == "recv"
            && e["result"].as_str().is_some_and(|r| r.contains("line two"))
    });
    let (status, events, _) = client.finish(); // closing stdin is Ctrl-D
    assert!(status.success());
    assert_eq!(returns(&events, "send").len(), 2);
    assert!(server.finish().0.success());
}

#[test]
fn an_empty_message_is_skipped_instead_of_waiting_for_a_reply() {
    let (server, addr) = tcp_server(&["--max-clients", "1"]);
    let port = addr.port().to_string();
    let client = Demo::start(&[
        "tcp-client",
        "--port",
        &port,
        "--message",
        "",
        "--message",
        "after",
    ]);
    let (status, events, _) = client.finish();
    assert!(status.success());
    assert_eq!(
        returns(&events, "send").len(),
        1,
        "only the non-empty message is sent"
    );
    assert!(server.finish().0.success());
}

#[test]
fn refused_hints_never_suggest_a_server_that_cannot_be_started() {
    // Port 0 is never a server's port; port 9 (discard) is privileged and
    // nothing listens there on a test machine.
    for (port, wanted) in [("0", "port 0 is no server's port"), ("9", "needs root")] {
        let output = netlab()
            .args([
                "tcp-client",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "-m",
                "x",
            ])
            .output()
            .expect("run netlab");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("connection refused"), "{stderr}");
        assert!(stderr.contains(wanted), "port {port}: {stderr}");
        assert!(
            !stderr.contains("start a server first"),
            "port {port}: no server can be started there: {stderr}"
        );
        assert!(stderr.contains("tcp-server --port 0"), "{stderr}");
    }
}

#[test]
fn half_close_stopped_early_says_what_the_kernel_says_about_our_end() {
    // A server that reads and never closes: after our shutdown(SHUT_WR)
    // our end waits in FIN_WAIT2 for a FIN that does not come.
    let (listener, addr) = listener();
    let (done, client_done) = std::sync::mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink); // returns at our FIN
        let _ = client_done.recv(); // hold the connection open till then
        drop(conn);
    });
    let port = addr.port().to_string();
    let mut client = Demo::start(&["tcp-client", "--port", &port, "-m", "x", "--half-close"]);
    client.wait_for_call("shutdown", 1);
    client.wait_for("recv after shutdown", |e| {
        is_call(e, "recv") && e["blocking"] == true
    });
    let (status, events, stderr) = client.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "{stderr}");
    let ours = facts(&events, "connection_state")
        .into_iter()
        .rfind(|e| e["value"]["whose"] == "this client's end")
        .expect("this client's end");
    let state = ours["value"]["state"]
        .as_str()
        .unwrap_or("gone")
        .to_string();
    assert_ne!(state, "TIME_WAIT", "the server never sent FIN: {ours}");
    let claims_time_wait = events.iter().any(|e| {
        e["event"] == "note"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("our end is the one left in TIME_WAIT"))
    });
    assert!(!claims_time_wait, "{state}: {}", dump(&events));
    drop(done);
    holder.join().expect("the holder thread");
}
