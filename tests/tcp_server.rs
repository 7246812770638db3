//! tcp-server against real peers: Rust std sockets, a Python client, nc.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

fn server(extra: &[&str]) -> (Demo, SocketAddr) {
    tcp_server(extra)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to netlab");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

fn echo(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).expect("send");
    let mut reply = vec![0u8; message.len()];
    stream.read_exact(&mut reply).expect("read the echo");
    reply
}

fn tcp_states(events: &[Value]) -> Vec<String> {
    facts(events, "tcp_state")
        .iter()
        .filter_map(|e| e["value"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn echoes_a_rust_client_and_narrates_the_whole_life_of_the_connection() {
    let (demo, addr) = server(&["--max-clients", "1"]);
    let mut client = connect(addr);
    assert_eq!(echo(&mut client, b"hello\n"), b"hello\n");
    let client_addr = client.local_addr().unwrap();
    drop(client); // the client closes first

    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    let calls = calls(&events);
    assert!(
        in_order(
            &calls,
            &[
                "socket",
                "setsockopt",
                "bind",
                "listen",
                "accept",
                "recv",
                "send",
                "recv",
                "close",
                "close"
            ]
        ),
        "calls: {calls:?}"
    );
    // Kernel facts, read in the run: LISTEN, ESTABLISHED, CLOSE_WAIT.
    let queue = facts(&events, "accept_queue");
    assert_eq!(queue[0]["value"]["backlog"], 5, "{queue:?}");
    assert!(queue[0]["text"].as_str().unwrap().contains("LISTEN"));
    assert_eq!(tcp_states(&events), ["ESTABLISHED", "CLOSE_WAIT"]);

    // The client closed first, so the client's end is in TIME_WAIT...
    let ends = facts(&events, "connection_state");
    let client_end = ends
        .iter()
        .find(|e| e["value"]["whose"] == "the client's end")
        .expect("client's end");
    assert_eq!(client_end["value"]["state"], "TIME_WAIT", "{client_end}");
    // ...and so says the kernel to an independent reader of /proc/net/tcp.
    assert_eq!(
        proc_tcp_state(client_addr, addr).as_deref(),
        Some("TIME_WAIT")
    );
    // The echoed data appears in the narration.
    let received = returns(&events, "recv");
    assert_eq!(received[0]["value"], 6);
    assert!(received[0]["result"]
        .as_str()
        .unwrap()
        .contains(r#""hello\n""#));
    assert_eq!(events.last().unwrap()["event"], "end");
    // Every event carries the schema's common fields (docs/json-events.md).
    for event in &events {
        for field in ["v", "t", "pid", "step", "event"] {
            assert!(event.get(field).is_some(), "{field} missing in {event}");
        }
        assert_eq!(event["v"], 1);
    }
}

#[test]
fn echoes_a_python_client() {
    let (demo, addr) = server(&["--max-clients", "1"]);
    let reply = python(
        "echo_client.py",
        &["127.0.0.1", &addr.port().to_string(), "hi from python"],
    );
    assert_eq!(reply, "hi from python");
    let (status, _, _) = demo.finish();
    assert!(status.success());
}

#[test]
fn echoes_nc() {
    let (demo, addr) = server(&["--max-clients", "1"]);
    // -N: shut down the sending side at end of input, so the server sees FIN.
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'hi from nc\\n' | nc -N 127.0.0.1 {}",
            addr.port()
        ))
        .output()
        .expect("nc (Debian's netcat-openbsd) must be installed");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hi from nc\n",
        "{output:?}"
    );
    let (status, _, _) = demo.finish();
    assert!(status.success());
}

#[test]
fn a_second_client_waits_in_the_accept_queue_until_the_first_leaves() {
    let (mut demo, addr) = server(&["--max-clients", "2"]);
    let mut first = connect(addr);
    demo.wait_for("the first client", |e| {
        e["event"] == "info" && e["key"] == "client"
    });

    // The second handshake completes in the kernel, but nobody accepts it.
    let mut second = connect(addr);
    second.write_all(b"second\n").unwrap();
    assert_eq!(echo(&mut first, b"first\n"), b"first\n");
    let queued = demo.wait_for("the queue report", |e| {
        e["fact"] == "accept_queue" && e["value"]["waiting"] == 1
    });
    assert!(queued["text"]
        .as_str()
        .unwrap()
        .contains("1 connection waits"));

    // While the first client stays, the second gets nothing back.
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = second.read(&mut byte);
    assert!(
        early.is_err(),
        "the second client must not be served yet: {early:?}"
    );

    drop(first);
    second.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reply = [0u8; 7];
    second
        .read_exact(&mut reply)
        .expect("served after the first left");
    assert_eq!(&reply, b"second\n");
    drop(second);

    let (status, events, _) = demo.finish();
    assert!(status.success());
    assert_eq!(returns(&events, "accept").len(), 2);
    let calls = calls(&events);
    let second_accept = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == "accept")
        .nth(1)
        .unwrap()
        .0;
    assert!(
        calls[..second_accept]
            .iter()
            .filter(|c| *c == "close")
            .count()
            >= 1,
        "the first client is closed before the second is accepted"
    );
}

#[test]
fn binary_and_invalid_utf8_are_echoed_exactly_and_shown_escaped() {
    let (demo, addr) = server(&["--max-clients", "1"]);
    let mut client = connect(addr);
    let data = b"\xff\xfe\x00bin\x1b[31m";
    assert_eq!(echo(&mut client, data), data);
    drop(client);
    let (status, events, _) = demo.finish();
    assert!(status.success());
    let shown = returns(&events, "recv")[0]["result"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(shown.contains(r"\xff\xfe\x00bin\x1b[31m"), "{shown}");
}

#[test]
fn a_client_that_resets_is_narrated_and_the_next_client_is_served() {
    let (mut demo, addr) = server(&["--max-clients", "2"]);
    let out = python("reset_client.py", &["127.0.0.1", &addr.port().to_string()]);
    assert_eq!(out.trim(), "reset sent");
    demo.wait_for("ECONNRESET", |e| {
        e["event"] == "return" && e["errno"] == "ECONNRESET"
    });

    let mut next = connect(addr);
    assert_eq!(echo(&mut next, b"still here\n"), b"still here\n");
    drop(next);
    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(returns(&events, "accept").len(), 2);
    assert!(!stderr.contains("panicked"));
}

#[test]
fn a_fixed_reply_replaces_the_echo() {
    let (demo, addr) = server(&["--max-clients", "1", "--reply", "pong"]);
    let mut client = connect(addr);
    client.write_all(b"ping\n").unwrap();
    let mut reply = [0u8; 5];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"pong\n");
    drop(client);
    assert!(demo.finish().0.success());
}

#[test]
fn a_port_in_use_is_a_clear_error_with_a_hint() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let output = netlab()
        .args(["tcp-server", "--host", "127.0.0.1", "--port", &port])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already listening"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn without_reuseaddr_a_restart_fails_while_time_wait_lasts() {
    // Stop the server while a client is connected: the server closes first,
    // so TIME_WAIT lands on the server's own port.
    let (mut demo, addr) = server(&[]);
    let mut client = connect(addr);
    assert_eq!(echo(&mut client, b"x"), b"x");
    demo.wait_for_call("recv", 2);
    let (status, events, _) = demo.signal(Signal::SIGTERM);
    assert_eq!(status.code(), Some(143));
    let end = events
        .iter()
        .find(|e| e["event"] == "end")
        .expect("end event");
    assert_eq!(end["reason"], "terminated (SIGTERM)");
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest); // sees FIN
    client.shutdown(Shutdown::Both).ok();
    drop(client);

    let port = addr.port().to_string();
    let refused = netlab()
        .args([
            "tcp-server",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--no-reuseaddr",
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TIME_WAIT"), "{stderr}");

    // With SO_REUSEADDR (the default) the same port binds at once.
    let (demo, again) = server_on(&port);
    assert_eq!(again.port(), addr.port());
    let (status, _, _) = demo.signal(Signal::SIGINT);
    assert_eq!(status.code(), Some(130));
}

fn server_on(port: &str) -> (Demo, SocketAddr) {
    let mut demo = Demo::start(&["tcp-server", "--host", "127.0.0.1", "--port", port]);
    let addr = demo.listening_addr();
    (demo, addr)
}

#[test]
fn accept_delay_lets_the_queue_fill() {
    let (mut demo, addr) = server(&["--accept-delay", "0.5", "--max-clients", "2"]);
    let clients: Vec<TcpStream> = (0..2).map(|_| connect(addr)).collect();
    let full = demo.wait_for("a queue of 2", |e| {
        e["fact"] == "accept_queue" && e["value"]["waiting"] == 2
    });
    assert_eq!(full["value"]["backlog"], 5);
    drop(clients);
    let (status, events, _) = demo.finish();
    assert!(status.success());
    assert!(calls(&events).contains(&"nanosleep".to_string()));
}

#[test]
fn piping_into_head_ends_quietly() {
    let bin = env!("CARGO_BIN_EXE_netlab");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{bin}' tcp-server --host 127.0.0.1 --port 0 | head -3"
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status =
        wait_with_deadline(&mut child, PATIENCE).expect("netlab | head -3 must end by itself");
    let output = child.wait_with_output().unwrap();
    assert!(status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 3);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "",
        "nothing on stderr"
    );
}

#[test]
fn quiet_prints_only_start_up_lines() {
    let (demo, addr) = server(&["--max-clients", "1", "--quiet"]);
    let mut client = connect(addr);
    assert_eq!(echo(&mut client, b"q"), b"q");
    drop(client);
    let (status, events, _) = demo.finish();
    assert!(status.success());
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds, ["start", "info", "end"], "{}", dump(&events));
}

#[test]
fn human_output_is_numbered_and_honours_color_flags() {
    // A port that is in use makes the run short: it prints the steps up to
    // bind() and exits with the error.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let args = ["tcp-server", "--host", "127.0.0.1", "--port", &port];

    let coloured = netlab()
        .args(args)
        .args(["--color", "always"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&coloured.stdout);
    assert!(
        stdout.contains("\x1b["),
        "--color always colours even into a pipe"
    );

    let plain = netlab().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&plain.stdout);
    assert!(
        !stdout.contains("\x1b["),
        "no colour into a pipe by default"
    );
    assert!(
        stdout.contains("  2  socket(AF_INET, SOCK_STREAM, 0)  -> fd 3\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  4  bind(fd 3, 127.0.0.1:{port})  -> EADDRINUSE (Address already in use)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("lesson: netlab lesson tcp"),
        "the banner names the lesson"
    );

    let no_color = netlab()
        .args(args)
        .args(["--color", "auto"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&no_color.stdout).contains("\x1b["));
    assert_eq!(plain.status.code(), Some(1));
}

#[test]
fn the_throttle_summarises_a_fast_stream_of_steps() {
    let (demo, addr) = server(&["--max-clients", "1", "--rate", "5"]);
    let mut client = connect(addr);
    for _ in 0..40 {
        assert_eq!(echo(&mut client, b"m"), b"m");
    }
    drop(client);
    let (status, events, _) = demo.finish();
    assert!(status.success());
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("a summary event");
    assert!(summary["hidden_steps"].as_u64().unwrap() > 0);
    assert!(summary["calls"]["recv"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        returns(&events, "recv").len() < 41,
        "not every recv is narrated"
    );
}

#[test]
fn a_one_mebibyte_message_comes_back_byte_for_byte() {
    let (demo, addr) = server(&["--max-clients", "1"]);
    let client = connect(addr);
    let data: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    // Write from one thread while reading on another, as the server echoes
    // 1 KiB at a time: one side alone would fill both buffers and stall.
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reader = client;
    let mut echoed = Vec::new();
    reader.read_to_end(&mut echoed).unwrap();
    sender.join().unwrap();
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "the echo differs from what was sent");
    let (status, events, _) = demo.finish();
    assert!(status.success());
    // At the default rate most of the 1,000+ recv calls are summarised.
    assert!(
        events.iter().any(|e| e["event"] == "summary"),
        "a summary under load"
    );
}

#[test]
fn serves_ipv6_on_loopback_and_reads_its_states_from_tcp6() {
    let mut demo = Demo::start(&[
        "tcp-server",
        "--host",
        "::1",
        "--port",
        "0",
        "--max-clients",
        "1",
    ]);
    let addr = demo.listening_addr();
    assert!(addr.is_ipv6(), "{addr}");
    let port = addr.port().to_string();
    let client = Demo::start(&[
        "tcp-client",
        "--host",
        "::1",
        "--port",
        &port,
        "--message",
        "v6",
    ]);
    let (status, client_events, stderr) = client.finish();
    assert!(status.success(), "{stderr}");
    assert!(returns(&client_events, "recv")[0]["result"]
        .as_str()
        .unwrap()
        .ends_with(r#""v6""#));
    let (status, events, _) = demo.finish();
    assert!(status.success());
    let socket_call = events.iter().find(|e| is_call(e, "socket")).unwrap();
    assert_eq!(socket_call["args"], "AF_INET6, SOCK_STREAM, 0");
    let client_end = facts(&events, "connection_state")
        .into_iter()
        .find(|e| e["value"]["whose"] == "the client's end")
        .expect("the client's end, read from /proc/net/tcp6");
    assert_eq!(client_end["value"]["state"], "TIME_WAIT", "{client_end}");
}

#[test]
fn the_fd_table_shows_the_listener_and_the_connection() {
    let (demo, addr) = server(&["--max-clients", "1"]);
    let mut client = connect(addr);
    assert_eq!(echo(&mut client, b"fd"), b"fd");
    drop(client);
    let (status, events, _) = demo.finish();
    assert!(status.success());
    let tables = facts(&events, "open_fds");
    // After accept: fd 3 listens, fd 4 is this client's connection.
    let after_accept = tables.last().expect("an fd table after accept");
    let fds = after_accept["value"].as_array().unwrap();
    let state_of = |fd: i64| {
        fds.iter()
            .find(|e| e["fd"] == fd)
            .map(|e| e["tcp_state"].clone())
    };
    assert_eq!(state_of(3), Some("LISTEN".into()), "{after_accept}");
    assert_eq!(
        state_of(4)
            .and_then(|s| s.as_str().map(str::to_string))
            .map(|s| s == "ESTABLISHED" || s == "CLOSE_WAIT"),
        Some(true),
        "{after_accept}"
    );
}

#[test]
fn a_privileged_port_without_privilege_is_a_clear_error() {
    // As root, drop to `nobody` for this one run (setpriv, util-linux), so
    // the kernel refuses the bind below ip_unprivileged_port_start.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let bin = env!("CARGO_BIN_EXE_netlab");
    let args = ["tcp-server", "--host", "127.0.0.1", "--port", "80"];
    let output = if is_root {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                bin,
            ])
            .args(args)
            .output()
            .expect("setpriv (util-linux)")
    } else {
        netlab().args(args).output().unwrap()
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("ip_unprivileged_port_start"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn an_address_that_is_not_on_this_machine_is_a_clear_error() {
    // 198.51.100.1 is a documentation address (TEST-NET-2): bind() fails
    // before anything is sent.
    let output = netlab()
        .args(["tcp-server", "--host", "198.51.100.1", "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is not an address of this machine"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn a_broken_address_literal_is_refused_without_a_dns_lookup() {
    // strace records every socket the run opens: a lookup of the host as a
    // name would open one (to nscd, systemd-resolved or a DNS server).
    let bin = env!("CARGO_BIN_EXE_netlab");
    for (demo, host) in [("tcp-server", "999.1.1.1"), ("tcp-client", "1:2:3")] {
        let output = Command::new("strace")
            .args(["-f", "-e", "trace=socket,connect", bin, demo])
            .args(["--host", host, "--port", "0"])
            .env("NETLAB_COLOR", "never")
            .output()
            .expect("strace must be installed");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{demo}: {stderr}");
        assert!(
            stderr.contains(&format!("`{host}` is not a valid IP address")),
            "{demo}: {stderr}"
        );
        assert!(
            !stderr.contains("socket(") && !stderr.contains("connect("),
            "{demo} {host}: no socket may be opened, no name looked up: {stderr}"
        );
    }
}
