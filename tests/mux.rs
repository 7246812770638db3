//! select-demo, poll-demo and epoll-demo against real peers: many Rust and
//! Python clients at once, a megabyte through a slow reader, a reset,
//! select's FD_SETSIZE, and the edge-triggered partial-read stall.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const DEMOS: [&str; 3] = ["select-demo", "poll-demo", "epoll-demo"];

/// Start a demo on 127.0.0.1, port 0, and read where it listens.
fn server(demo: &str, extra: &[&str]) -> (Demo, SocketAddr) {
    server_with(&[], demo, extra)
}

/// The same with global flags (`--rate 0`) before the command.
fn server_with(global: &[&str], demo: &str, extra: &[&str]) -> (Demo, SocketAddr) {
    let mut args = global.to_vec();
    args.extend_from_slice(&[demo, "--host", "127.0.0.1", "--port", "0"]);
    args.extend_from_slice(extra);
    let mut server = Demo::start(&args);
    let addr = server.listening_addr();
    (server, addr)
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

/// Stop a server with SIGTERM; it must close everything and exit 143.
fn stop(server: Demo) -> Vec<Value> {
    let pid = server.pid();
    let (status, events, stderr) = server.signal(Signal::SIGTERM);
    assert_eq!(status.code(), Some(143), "stderr: {stderr}");
    assert_eq!(events.last().expect("events")["event"], "end");
    assert!(stderr.is_empty(), "no error expected: {stderr}");
    assert_no_children(pid);
    events
}

#[test]
fn many_rust_and_python_clients_each_get_exactly_their_own_echo() {
    for demo in DEMOS {
        // --rate 0: every step narrated, so every client's events are seen.
        let (server, addr) = server_with(&["--rate", "0"], demo, &[]);
        // An idle client that never sends: a server that blocked on it
        // would serve nobody else.
        let idle = connect(addr);

        let rust_clients = 4;
        let barrier = Arc::new(Barrier::new(rust_clients));
        let mut handles = Vec::new();
        for id in 0..rust_clients {
            let barrier = Arc::clone(&barrier);
            handles.push(thread::spawn(move || {
                let mut stream = connect(addr);
                // Everyone is connected before anyone talks, so the
                // messages of all clients interleave in the server.
                barrier.wait();
                for i in 0..40 {
                    let message = format!("rust client {id} message {i}\n");
                    assert_eq!(echo(&mut stream, message.as_bytes()), message.as_bytes());
                }
            }));
        }
        let port = addr.port().to_string();
        let pythons: Vec<_> = (0..2)
            .map(|id| {
                let port = port.clone();
                thread::spawn(move || {
                    python(
                        "mux_client.py",
                        &["127.0.0.1", &port, &format!("py{id}"), "40"],
                    )
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("a Rust client failed");
        }
        for (id, handle) in pythons.into_iter().enumerate() {
            let output = handle.join().expect("a Python client failed");
            assert_eq!(output.trim(), format!("py{id} ok 40"), "{demo}");
        }
        drop(idle);

        let events = stop(server);
        // Seven clients (the idle one, four Rust, two Python) were accepted.
        assert_eq!(infos(&events, "client").len(), 7, "{demo}");
        let wakeups = infos(&events, "wakeups");
        assert_eq!(wakeups.len(), 1, "{demo}: one wakeup count at the end");
        let calls = calls(&events);
        assert!(
            in_order(
                &calls,
                &[
                    "getrlimit",
                    "socket",
                    "bind",
                    "listen",
                    "accept",
                    "fcntl",
                    "recv",
                    "send",
                    "close"
                ]
            ),
            "{demo}: {calls:?}"
        );
    }
}

/// The slow reader: a 1 MB message is written by one thread while the main
/// thread waits before reading. Once the client's receive buffer is full,
/// the server's small send buffer (--sndbuf) fills, and send() comes up short.
fn megabyte_through(addr: SocketAddr) {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    // SO_RCVBUF before connect(), so the window the handshake advertises
    // is small too: 1 MB cannot hide in the client's receive buffer.
    // CLOEXEC, as std would: servers other tests start must not inherit it.
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    setsockopt(&fd, sockopt::RcvBuf, &65536).expect("SO_RCVBUF");
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 expected")
    };
    connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).expect("connect");
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let message: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer = stream.try_clone().expect("clone");
    let sent = message.clone();
    let writing = thread::spawn(move || writer.write_all(&sent).expect("send 1 MB"));
    thread::sleep(Duration::from_millis(300));
    let mut reader = stream;
    let mut received = vec![0u8; message.len()];
    reader.read_exact(&mut received).expect("read 1 MB back");
    writing.join().expect("writer");
    assert!(received == message, "the echo differs from what was sent");
}

/// After a short send on an fd, the server must not recv on that fd until
/// every unsent byte is out: it stops reading from a backed-up client.
fn assert_no_reading_while_backed_up(events: &[Value]) -> usize {
    let mut backed_up: std::collections::HashMap<String, bool> = Default::default();
    let mut last_call: std::collections::HashMap<u64, (String, String)> = Default::default();
    let mut short_writes = 0;
    for event in events {
        let step = event["step"].as_u64().unwrap_or(0);
        match event["event"].as_str() {
            Some("call") => {
                let call = event["call"].as_str().unwrap_or("").to_string();
                let args = event["args"].as_str().unwrap_or("").to_string();
                let fd = args.split(',').next().unwrap_or("").to_string();
                if call == "recv" {
                    assert!(
                        !backed_up.get(&fd).copied().unwrap_or(false),
                        "recv on {fd} while its output is backed up"
                    );
                }
                last_call.insert(step, (call, args));
            }
            Some("return") if event["call"] == "send" => {
                let (_, args) = last_call.get(&step).cloned().unwrap_or_default();
                let fd = args.split(',').next().unwrap_or("").to_string();
                let asked: i64 = args
                    .split(", ")
                    .nth(1)
                    .and_then(|size| size.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(-1);
                let took = event["value"].as_i64().unwrap_or(-1);
                let short = event["errno"] == "EAGAIN" || (took >= 0 && took < asked);
                if short {
                    short_writes += 1;
                }
                backed_up.insert(fd, short);
            }
            _ => {}
        }
    }
    short_writes
}

#[test]
fn a_megabyte_goes_through_each_server_and_short_writes_pause_reading() {
    for demo in DEMOS {
        // --rate 0: every step narrated, so the test can follow each fd.
        let (server, addr) = server_with(
            &["--rate", "0"],
            demo,
            &["--bufsize", "65536", "--sndbuf", "4096"],
        );
        megabyte_through(addr);
        let events = stop(server);
        let short = assert_no_reading_while_backed_up(&events);
        assert!(
            short > 0,
            "{demo}: expected a short write or EAGAIN from send()"
        );
        if demo == "epoll-demo" {
            // The switch to writability and back is an epoll_ctl MOD each way.
            let mods: Vec<&str> = events
                .iter()
                .filter(|e| is_call(e, "epoll_ctl"))
                .filter_map(|e| e["args"].as_str())
                .filter(|args| args.contains("EPOLL_CTL_MOD"))
                .collect();
            assert!(
                mods.iter().any(|args| args.ends_with("EPOLLOUT")),
                "{mods:?}"
            );
            assert!(
                mods.iter().any(|args| args.ends_with("EPOLLIN")),
                "{mods:?}"
            );
        }
        if demo == "poll-demo" {
            let modified = infos(&events, "poll_modify");
            assert!(
                modified.iter().any(|e| e["value"]["events"] == 0x00c),
                "{modified:?}"
            );
        }
    }
}

#[test]
fn a_client_that_resets_is_closed_and_the_others_are_served() {
    for demo in DEMOS {
        let (mut server, addr) = server(demo, &[]);
        let mut before = connect(addr);
        assert_eq!(echo(&mut before, b"first\n"), b"first\n");
        let output = python("reset_client.py", &["127.0.0.1", &addr.port().to_string()]);
        assert_eq!(output.trim(), "reset sent");
        let done = server.wait_for("the reset client closed", |e| {
            e["event"] == "info" && e["key"] == "client_done" && e["value"]["why"] == "reset"
        });
        assert!(done["text"].as_str().unwrap().contains("reset"), "{done}");
        // The connection opened before the reset, and a new one, still work.
        assert_eq!(echo(&mut before, b"still here\n"), b"still here\n");
        let mut after = connect(addr);
        assert_eq!(echo(&mut after, b"after\n"), b"after\n");
        let events = stop(server);
        assert!(
            returns(&events, "recv")
                .iter()
                .any(|e| e["errno"] == "ECONNRESET"),
            "{demo}: the reset shows as ECONNRESET"
        );
    }
}

#[test]
fn quiet_servers_print_only_start_up_and_raise_their_fd_limit() {
    for demo in DEMOS {
        // A low soft limit: the server must raise it to the hard limit.
        let binary = env!("CARGO_BIN_EXE_netlab");
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -Sn 256 && exec {binary} --json --quiet {demo} --host 127.0.0.1 --port 0"
            ))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start sh");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        let port = loop {
            let mut line = String::new();
            let read = std::io::BufRead::read_line(&mut stdout, &mut line).expect("read");
            assert!(read > 0, "{demo} ended early: {lines:?}");
            let event: Value = serde_json::from_str(&line).expect("JSON");
            lines.push(event.clone());
            if event["key"] == "listening" {
                assert_eq!(
                    event["value"]["addr"],
                    format!("127.0.0.1:{}", event["value"]["port"])
                );
                break event["value"]["port"].as_u64().expect("port") as u16;
            }
        };
        let pid = child.id();
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let open_files: Vec<&str> = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .expect("Max open files")
            .split_whitespace()
            .collect();
        assert_eq!(
            open_files[3], open_files[4],
            "{demo}: soft limit raised to hard: {limits}"
        );
        assert_ne!(open_files[3], "256");

        let mut client = connect(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(echo(&mut client, &[b'q'; 64]), [b'q'; 64]);
        drop(client);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGINT)
            .expect("kill");
        let status = wait_with_deadline(&mut child, PATIENCE).expect("exit");
        assert_eq!(status.code(), Some(130), "{demo}");
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).expect("read the rest");
        for line in rest.lines() {
            lines.push(serde_json::from_str(line).expect("JSON"));
        }
        let kinds: Vec<&str> = lines.iter().filter_map(|e| e["event"].as_str()).collect();
        assert_eq!(kinds, ["start", "info", "end"], "{demo}: {lines:?}");
    }
}

#[test]
fn select_refuses_a_client_whose_fd_is_beyond_fd_setsize_and_serves_the_rest() {
    // The test itself needs more than 1024 fds.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)
        .expect("setrlimit");
    assert!(
        hard > 1100,
        "this test needs a hard open-file limit above 1100"
    );

    let (mut server, addr) = server("select-demo", &["--quiet"]);
    // Open connections until the server's fds pass 1023; the exact count
    // depends on the fds it already holds (its listener, its own pipe).
    let mut clients = Vec::new();
    for _ in 0..1030 {
        clients.push(connect(addr));
    }
    let warning = server.wait_for("the FD_SETSIZE warning", |e| e["event"] == "warning");
    let text = warning["text"].as_str().unwrap();
    assert!(text.contains("FD_SETSIZE (1024)"), "{text}");
    assert!(
        text.contains("fd 1024"),
        "the first fd refused is 1024: {text}"
    );

    // A refused client sees its connection closed (EOF)...
    let mut refused = 0;
    for client in clients.iter_mut().rev().take(10) {
        client
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut byte = [0u8; 1];
        match client.read(&mut byte) {
            Ok(0) => refused += 1,
            Ok(_) => panic!("no data was sent, none can come back"),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => refused += 1,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }
    assert!(refused > 0, "the last clients must have been refused");
    // ...while the first and a middle one are still served.
    for index in [0, 500] {
        let client = &mut clients[index];
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        assert_eq!(echo(client, b"still served\n"), b"still served\n");
    }
    drop(clients);
    let events = stop(server);
    // About ten clients were refused, but a flood of refusals must not flood
    // the output: a warning for the first and one at 10 (then 100, 1000...).
    let warnings = events.iter().filter(|e| e["event"] == "warning").count();
    assert!((1..=2).contains(&warnings), "{warnings} warnings");
}

#[test]
fn select_timeout_returns_with_nothing_ready() {
    let (mut server, _addr) = server("select-demo", &["--timeout", "0.2"]);
    let call = server.wait_for_call("select", 1);
    let timed_out = server.wait_for("select returning 0", |e| {
        e["event"] == "return" && e["call"] == "select" && e["value"] == 0
    });
    assert!(timed_out["result"].as_str().unwrap().contains("timeout"));
    // Timed by the server's own clock (each event's `t`), so a slow test
    // reader cannot make the wait look shorter than it was.
    let waited = timed_out["t"].as_f64().unwrap_or(0.0) - call["t"].as_f64().unwrap_or(0.0);
    assert!(waited >= 0.19, "select waited {waited} s, not 0.2 s");
    stop(server);
}

#[test]
fn select_reads_an_urgent_byte_instead_of_spinning_on_xlist() {
    use std::os::fd::AsRawFd;
    let (mut server, addr) = server("select-demo", &[]);
    let mut client = connect(addr);
    nix::sys::socket::send(
        client.as_raw_fd(),
        b"!",
        nix::sys::socket::MsgFlags::MSG_OOB,
    )
    .expect("send an urgent byte");
    let urgent = server.wait_for("the MSG_OOB recv", |e| {
        e["event"] == "return" && e["call"] == "recv" && e["result"] == "1 byte: \"!\""
    });
    assert_eq!(urgent["value"], 1);
    // Left unread, the urgent byte would make select() return at once, for
    // ever: a quiet half second must cost only a few wakeups.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(echo(&mut client, b"normal\n"), b"normal\n");
    drop(client);
    let events = stop(server);
    let wakeups = infos(&events, "wakeups")[0]["value"]["select"]
        .as_u64()
        .unwrap();
    assert!(wakeups < 20, "select spun {wakeups} times");
}

#[test]
fn poll_narrates_its_event_bits() {
    let (mut server, addr) = server("poll-demo", &[]);
    let mut client = connect(addr);
    assert_eq!(echo(&mut client, b"bits\n"), b"bits\n");
    let registered = server.wait_for("the client's registration", |e| {
        e["event"] == "info" && e["key"] == "poll_register" && e["value"]["fd"] != 3
    });
    assert_eq!(registered["value"]["events"], 9);
    assert_eq!(
        registered["value"]["bits"],
        "POLLIN 0x001 | POLLERR 0x008 = 0x009"
    );
    drop(client);
    server.wait_for("unregister", |e| {
        e["event"] == "info" && e["key"] == "poll_unregister"
    });
    let events = stop(server);
    assert!(returns(&events, "poll").iter().any(|e| e["result"]
        .as_str()
        .unwrap_or("")
        .contains("revents POLLIN 0x001")));
}

/// Send 100 bytes to an edge-triggered server that reads 16 at a time.
fn hundred_bytes_to_edge_server(extra: &[&str]) -> (Demo, TcpStream, Vec<u8>) {
    let mut args = vec!["--edge", "--bufsize", "16"];
    args.extend_from_slice(extra);
    let (server, addr) = server("epoll-demo", &args);
    let mut client = connect(addr);
    let message: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
    client.write_all(&message).expect("send");
    client
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 200];
    while received.len() < message.len() {
        match client.read(&mut chunk) {
            Ok(0) => break,
            Ok(count) => received.extend_from_slice(&chunk[..count]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(err) => panic!("read: {err}"),
        }
    }
    (server, client, received)
}

#[test]
fn edge_triggered_partial_read_stalls_and_draining_does_not() {
    // The bug: one recv() of 16 bytes per event; the other 84 wait in the
    // kernel and no event comes for them.
    let (mut server, client, received) = hundred_bytes_to_edge_server(&["--partial-read"]);
    assert_eq!(received.len(), 16, "only the first recv's bytes come back");
    let stalled = server.wait_for("the stall report", |e| {
        e["event"] == "info" && e["key"] == "stalled"
    });
    assert_eq!(stalled["value"]["unread"], 84, "{stalled}");
    drop(client);
    let events = stop(server);
    let queues: Vec<i64> = facts(&events, "receive_queue")
        .iter()
        .filter_map(|e| e["value"].as_i64())
        .collect();
    assert!(
        queues.contains(&84),
        "the kernel's receive queue held 84 bytes: {queues:?}"
    );

    // The fix: read until EAGAIN, then ask the kernel what is left.
    let (mut server, client, received) = hundred_bytes_to_edge_server(&[]);
    assert_eq!(received.len(), 100, "every byte comes back");
    let left = server.wait_for("the receive queue after draining", |e| {
        e["event"] == "kernel" && e["fact"] == "receive_queue"
    });
    assert_eq!(left["value"], 0, "nothing is left behind: {left}");
    drop(client);
    let events = stop(server);
    assert!(infos(&events, "stalled").is_empty());
    assert!(
        returns(&events, "recv")
            .iter()
            .any(|e| e["errno"] == "EAGAIN"),
        "drained until EAGAIN: {}",
        dump(&events)
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let output = netlab()
        .args(["epoll-demo", "--partial-read"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "--partial-read needs --edge");
    let output = netlab()
        .args(["select-demo", "--timeout", "-1"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let output = netlab()
        .args(["poll-demo", "--bufsize", "0"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn the_summarys_open_connections_count_the_closes_of_the_last_wakeup() {
    // Under load the summary's `connections_open` is a level. It must be
    // read after a wakeup's closes are handled: once every client has
    // gone, the last summary says 0.
    for demo in ["select-demo", "poll-demo", "epoll-demo"] {
        let (server, addr) = server_with(&["--rate", "5"], demo, &[]);
        let mut clients: Vec<TcpStream> = (0..40).map(|_| connect(addr)).collect();
        for client in &mut clients {
            assert_eq!(echo(client, b"x"), b"x");
        }
        drop(clients);
        // Give the server time to see every FIN before it is stopped.
        thread::sleep(Duration::from_millis(500));
        let events = stop(server);
        let last = events
            .iter()
            .rev()
            .find(|e| e["event"] == "summary" && !e["counters"]["connections_open"].is_null())
            .unwrap_or_else(|| panic!("{demo}: no summary with connections_open"));
        assert_eq!(
            last["counters"]["connections_open"], 0,
            "{demo}: every client had closed: {last}"
        );
    }
}

#[test]
fn after_a_burst_the_summary_comes_on_time_and_a_late_client_is_narrated() {
    // A burst switches the throttle to summaries. When the traffic stops,
    // the burst's summary must be printed within about a second (epoll-demo
    // wakes up for it), not when the next client comes; and a client that
    // comes after the pause is narrated step by step again (its dozen
    // steps fit under --rate 15; the burst's hundreds do not).
    let (server, addr) = server_with(&["--rate", "15"], "epoll-demo", &[]);
    let mut clients: Vec<TcpStream> = (0..40).map(|_| connect(addr)).collect();
    for client in &mut clients {
        assert_eq!(echo(client, b"x"), b"x");
    }
    drop(clients);
    let burst_over = Instant::now();
    thread::sleep(Duration::from_millis(2500));
    let pause = burst_over.elapsed().as_secs_f64();
    let mut late = connect(addr);
    assert_eq!(echo(&mut late, b"late"), b"late");
    drop(late);
    thread::sleep(Duration::from_millis(200));
    let events = stop(server);
    let last_summary_before_late = events
        .iter()
        .filter(|e| e["event"] == "summary")
        .map(|e| e["t"].as_f64().unwrap_or(f64::MAX))
        .collect::<Vec<_>>();
    let late_accept = events
        .iter()
        .filter(|e| is_call(e, "accept"))
        .map(|e| e["t"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max);
    assert!(late_accept > 0.0, "the late client's accept is narrated");
    // Some summary was printed during the pause, well before the late client.
    assert!(
        last_summary_before_late
            .iter()
            .any(|t| *t < late_accept - pause / 2.0),
        "summaries at {last_summary_before_late:?}, late accept at {late_accept}"
    );
    let late_recv = events
        .iter()
        .any(|e| e["event"] == "return" && e["call"] == "recv" && e["value"] == 4);
    assert!(
        late_recv,
        "the late client's recv is narrated: {}",
        dump(&events)
    );
}
