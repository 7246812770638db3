//! udp-server and udp-client against real peers: Rust std sockets, Python
//! stdlib scripts, OpenBSD nc, and each other. Everything on 127.0.0.1,
//! every server on port 0.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};

use common::*;
use nix::sys::signal::Signal;
use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use serde_json::Value;

/// Start `netlab udp-server` on 127.0.0.1, port 0, and read where it listens.
fn udp_server(extra: &[&str]) -> (Demo, SocketAddr) {
    let mut args = vec!["udp-server", "--host", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    let mut demo = Demo::start(&args);
    let addr = demo.listening_addr();
    (demo, addr)
}

/// A std UDP socket on 127.0.0.1 that gives up after PATIENCE.
fn peer() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a test socket");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    socket
}

fn echo(socket: &UdpSocket, to: SocketAddr, message: &[u8]) -> (Vec<u8>, SocketAddr) {
    socket.send_to(message, to).expect("send_to");
    let mut buf = [0u8; 65536];
    let (length, from) = socket.recv_from(&mut buf).expect("the echo");
    (buf[..length].to_vec(), from)
}

/// A counter of /proc/net/snmp, read by the test itself.
fn snmp(protocol: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/net/snmp").expect("/proc/net/snmp");
    let prefix = format!("{protocol}:");
    let mut rows = text
        .lines()
        .filter(|line| line.split_whitespace().next() == Some(prefix.as_str()));
    let names: Vec<&str> = rows.next().expect("names").split_whitespace().collect();
    let values: Vec<&str> = rows.next().expect("values").split_whitespace().collect();
    let index = names.iter().position(|n| *n == name).expect("counter");
    values[index].parse().expect("a number")
}

/// A UDP port on 127.0.0.1 that nothing is bound to (bound, read, freed).
fn closed_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().unwrap().port()
}

/// Run `netlab --json udp-client ARGS` to its end.
fn udp_client(args: &[&str]) -> (std::process::ExitStatus, Vec<Value>, String) {
    let mut all = vec!["udp-client"];
    all.extend_from_slice(args);
    Demo::start(&all).finish()
}

/// Start tests/py/udp_echo_server.py and read the port it bound.
fn python_udp_server(args: &[&str]) -> (Child, u16) {
    let path = format!("{}/tests/py/udp_echo_server.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(path)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the port line");
    let port = line.trim().parse().expect("a port number");
    (child, port)
}

fn reap(mut child: Child) {
    match wait_with_deadline(&mut child, PATIENCE) {
        Some(status) => assert!(status.success(), "python peer: {status}"),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the python peer did not finish");
        }
    }
}

#[test]
fn server_echoes_a_python_client_without_listen_or_accept() {
    let (demo, addr) = udp_server(&["--max-datagrams", "3"]);
    let output = python(
        "udp_echo_client.py",
        &["127.0.0.1", &addr.port().to_string(), "hello", "", "again"],
    );
    let lines: Vec<&str> = output.lines().collect();
    let server = format!("127.0.0.1:{}", addr.port());
    assert_eq!(
        lines,
        [
            format!("b'hello' {server}"),
            format!("b'' {server}"),
            format!("b'again' {server}")
        ]
    );

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
                "getsockname",
                "recvmsg",
                "sendto",
                "recvmsg",
                "sendto",
                "close"
            ]
        ),
        "calls: {calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c == "listen" || c == "accept"),
        "{calls:?}"
    );
    let received = returns(&events, "recvmsg");
    assert_eq!(received.len(), 3);
    assert_eq!(received[0]["value"], 5);
    let result = received[0]["result"].as_str().unwrap();
    assert!(
        result.contains(r#""hello""#) && result.contains("from 127.0.0.1:"),
        "{result}"
    );
    // The empty datagram is a datagram, not an end of stream.
    assert_eq!(received[1]["value"], 0);
    assert!(received[1]["result"]
        .as_str()
        .unwrap()
        .contains("empty datagram"));
    assert_eq!(returns(&events, "sendto")[1]["value"], 0);
    // One sender, announced once; the tally at the end.
    assert_eq!(infos(&events, "sender").len(), 1);
    let tally = &infos(&events, "datagrams")[0]["value"];
    assert_eq!(tally["received"], 3);
    assert_eq!(tally["empty"], 1);
    assert_eq!(tally["dropped"], 0);
    assert_eq!(events.last().unwrap()["event"], "end");
}

#[test]
fn server_echoes_nc_u() {
    let (demo, addr) = udp_server(&["--max-datagrams", "1"]);
    // -w1: nc gives up one second after its input ends, long after the echo.
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'hi from nc\\n' | nc -u -w1 127.0.0.1 {}",
            addr.port()
        ))
        .output()
        .expect("nc (Debian's netcat-openbsd) must be installed");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi from nc\n");
    let (status, events, _) = demo.finish();
    assert!(status.success());
    assert_eq!(returns(&events, "recvmsg")[0]["value"], 11);
}

#[test]
fn a_long_datagram_is_cut_and_the_kernel_reports_its_real_length() {
    let (demo, addr) = udp_server(&["--bufsize", "8", "--max-datagrams", "1"]);
    let socket = peer();
    let message = [b'u'; 100];
    let (reply, _) = echo(&socket, addr, &message);
    assert_eq!(
        reply,
        &message[..8],
        "only what fit in the buffer comes back"
    );

    let (status, events, _) = demo.finish();
    assert!(status.success());
    let received = returns(&events, "recvmsg");
    assert_eq!(
        received[0]["value"], 100,
        "recvmsg(MSG_TRUNC) returns the real length"
    );
    assert!(received[0]["result"]
        .as_str()
        .unwrap()
        .contains("MSG_TRUNC"));
    let cut = facts(&events, "datagram_truncated");
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0]["value"]["length"], 100);
    assert_eq!(cut[0]["value"]["kept"], 8);
    assert_eq!(cut[0]["value"]["lost"], 92);
    assert_eq!(infos(&events, "datagrams")[0]["value"]["truncated"], 1);
}

#[test]
fn invalid_utf8_is_echoed_exactly_and_shown_escaped() {
    let (demo, addr) = udp_server(&["--max-datagrams", "1"]);
    let socket = peer();
    let message = b"\xff\xfeok\x1b[31m";
    let (reply, _) = echo(&socket, addr, message);
    assert_eq!(reply, message);
    let (status, events, _) = demo.finish();
    assert!(status.success());
    let result = returns(&events, "recvmsg")[0]["result"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(result.contains(r#""\xff\xfeok\x1b[31m""#), "{result}");
}

#[test]
fn a_small_rcvbuf_and_a_flood_make_the_kernel_drop_and_count() {
    const FLOOD: u64 = 300;
    let udp_errors_before = snmp("Udp", "RcvbufErrors");
    let (server, addr) = udp_server(&["--rcvbuf", "4096", "--slow", "2"]);
    let (status, client_events, stderr) = udp_client(&[
        "--port",
        &addr.port().to_string(),
        "--count",
        &FLOOD.to_string(),
        "--size",
        "200",
        "--timeout",
        "0.5",
    ]);
    assert!(status.success(), "client: {status} {stderr}");
    let (_, events, _) = server.signal(Signal::SIGINT);

    // SO_RCVBUF: Linux doubles what we set; compare with our own socket.
    let rcvbuf = &facts(&events, "rcvbuf")[1]["value"];
    assert_eq!(rcvbuf["asked"], 4096);
    let own = UdpSocket::bind("127.0.0.1:0").unwrap();
    setsockopt(&own.as_fd(), sockopt::RcvBuf, &4096).unwrap();
    let granted = getsockopt(&own.as_fd(), sockopt::RcvBuf).unwrap();
    assert_eq!(rcvbuf["granted"], granted as u64);
    assert_eq!(granted, 8192);

    // The server saw some datagrams and the kernel dropped the rest.
    let tally = &infos(&events, "datagrams")[0]["value"];
    let received = tally["received"].as_u64().unwrap();
    let dropped = tally["dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{tally}");
    assert_eq!(received + dropped, FLOOD, "{tally}");
    let drops = facts(&events, "socket_drops");
    assert!(!drops.is_empty());
    assert_eq!(drops.last().unwrap()["value"]["drops"], dropped);
    // An independent reader of /proc/net/snmp saw at least those drops.
    let grown = snmp("Udp", "RcvbufErrors") - udp_errors_before;
    assert!(grown >= dropped, "RcvbufErrors +{grown}, dropped {dropped}");

    // The client: what it sent, what came back.
    let flood = &infos(&client_events, "flood")[0]["value"];
    assert_eq!(flood["sent"], FLOOD);
    let replies = flood["replies"].as_u64().unwrap();
    assert!(replies <= received, "{flood}");
    assert_eq!(flood["lost"], FLOOD - replies);
    assert!(client_events.iter().any(|e| e["event"] == "summary"));
}

#[test]
fn a_flood_is_summarised_not_narrated_datagram_by_datagram() {
    let (server, addr) = udp_server(&["--max-datagrams", "200"]);
    let socket = peer();
    for number in 0..200u32 {
        socket
            .send_to(&number.to_be_bytes(), addr)
            .expect("send_to");
        // Read the echoes as we go, so neither side's buffer overflows.
        let mut buf = [0u8; 16];
        socket.recv_from(&mut buf).expect("echo");
    }
    let (status, events, _) = server.finish();
    assert!(status.success());
    let summaries: Vec<&Value> = events.iter().filter(|e| e["event"] == "summary").collect();
    assert!(!summaries.is_empty());
    let hidden: u64 = summaries
        .iter()
        .map(|e| e["calls"]["recvmsg"].as_u64().unwrap_or(0))
        .sum();
    let shown = events.iter().filter(|e| is_call(e, "recvmsg")).count() as u64;
    assert_eq!(shown + hidden, 200, "every recvmsg is shown or counted");
    assert!(shown <= 60, "{shown} recvmsg calls narrated one by one");
    assert_eq!(infos(&events, "datagrams")[0]["value"]["received"], 200);
    assert_eq!(
        infos(&events, "sender").len(),
        1,
        "one sender, announced once"
    );
}

#[test]
fn quiet_prints_only_the_start_up_lines() {
    let (demo, addr) = udp_server(&["--quiet", "--max-datagrams", "2"]);
    let socket = peer();
    echo(&socket, addr, b"one");
    echo(&socket, addr, b"two");
    let (status, events, _) = demo.finish();
    assert!(status.success());
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        kinds.iter().all(|k| ["start", "info", "end"].contains(k)),
        "{kinds:?}"
    );
    assert_eq!(infos(&events, "listening").len(), 1);
    assert!(infos(&events, "datagrams").is_empty());
}

#[test]
fn connected_udp_hears_econnrefused_where_unconnected_hears_nothing() {
    let port = closed_udp_port().to_string();
    let (status, events, stderr) = udp_client(&[
        "--port",
        &port,
        "--message",
        "anyone?",
        "--timeout",
        "0.3",
        "--connect",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ECONNREFUSED"), "{stderr}");
    let made = calls(&events);
    assert!(
        in_order(
            &made,
            &[
                "socket",
                "setsockopt",
                "connect",
                "getsockname",
                "send",
                "recv",
                "close"
            ]
        ),
        "{made:?}"
    );
    let refused = returns(&events, "recv");
    assert_eq!(refused[0]["errno"], "ECONNREFUSED");
    let listed = &facts(&events, "udp_socket")[0]["value"];
    assert_eq!(listed["connected"], true);

    let (status, events, stderr) =
        udp_client(&["--port", &port, "--message", "anyone?", "--timeout", "0.3"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no reply"), "{stderr}");
    let made = calls(&events);
    assert!(
        in_order(
            &made,
            &[
                "socket",
                "setsockopt",
                "sendto",
                "getsockname",
                "recvfrom",
                "close"
            ]
        ),
        "{made:?}"
    );
    assert!(!made.iter().any(|c| c == "connect"));
    let silent = returns(&events, "recvfrom");
    assert_eq!(silent[0]["errno"], "EAGAIN", "the timeout, not an error");
    let waited = silent[0]["t"].as_f64().unwrap()
        - events.iter().find(|e| is_call(e, "recvfrom")).unwrap()["t"]
            .as_f64()
            .unwrap();
    assert!(waited >= 0.25, "waited only {waited} s");
    assert_eq!(infos(&events, "no_reply").len(), 1);
    // Yet the kernel did answer: the counters moved.
    let growth = &facts(&events, "unreachable_growth")[0]["value"];
    assert!(growth["NoPorts"].as_u64().unwrap() >= 1, "{growth}");
    assert!(growth["InDestUnreachs"].as_u64().unwrap() >= 1, "{growth}");
}

#[test]
fn client_talks_to_a_python_server_and_sends_an_empty_datagram() {
    let (python, port) = python_udp_server(&["2"]);
    let (status, events, stderr) = udp_client(&[
        "--port",
        &port.to_string(),
        "--message",
        "hello",
        "--message",
        "",
    ]);
    reap(python);
    assert!(status.success(), "{stderr}");
    let replies: Vec<u64> = infos(&events, "reply")
        .iter()
        .map(|e| e["value"]["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(replies, [5, 0]);
    let sent = returns(&events, "sendto");
    assert_eq!(sent[1]["value"], 0, "an empty datagram was sent");
    assert_eq!(
        infos(&events, "bound").len(),
        1,
        "bound once, by the first sendto"
    );
}

#[test]
fn client_reads_lines_from_stdin() {
    let (python, port) = python_udp_server(&["2"]);
    let mut demo = Demo::start(&["udp-client", "--port", &port.to_string()]);
    demo.send_stdin("one\ntwo\n");
    demo.wait_for("the second reply", |e| {
        e["event"] == "info" && e["key"] == "reply" && e["value"]["bytes"] == 4
    });
    let (status, events, stderr) = demo.finish();
    reap(python);
    assert!(status.success(), "{stderr}");
    let results: Vec<&str> = returns(&events, "recvfrom")
        .iter()
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert!(
        results[0].contains(r#""one\n""#) && results[1].contains(r#""two\n""#),
        "{results:?}"
    );
}

#[test]
fn only_a_connected_client_is_spared_the_stranger() {
    let (python, port) = python_udp_server(&["1", "stranger"]);
    let (status, events, stderr) = udp_client(&["--port", &port.to_string(), "--message", "hi"]);
    reap(python);
    assert!(status.success(), "{stderr}");
    let stranger = infos(&events, "stranger");
    assert_eq!(stranger.len(), 1, "the unconnected client saw the stranger");
    assert_ne!(stranger[0]["value"]["from"], format!("127.0.0.1:{port}"));
    assert_eq!(infos(&events, "reply").len(), 1, "and then the real reply");

    let (python, port) = python_udp_server(&["1", "stranger"]);
    let (status, events, stderr) =
        udp_client(&["--port", &port.to_string(), "--message", "hi", "--connect"]);
    reap(python);
    assert!(status.success(), "{stderr}");
    assert!(
        infos(&events, "stranger").is_empty(),
        "the kernel filtered it"
    );
    assert_eq!(infos(&events, "reply").len(), 1);
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let demo = Demo::start(&["udp-server", "--host", "127.0.0.1", "--port", &port]);
    let (status, events, stderr) = demo.finish();
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("Address already in use"), "{stderr}");
    assert!(stderr.contains("1 UDP socket(s) already bound"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_eq!(returns(&events, "bind")[0]["errno"], "EADDRINUSE");
}

#[test]
fn a_datagram_too_big_for_udp_is_refused_and_the_client_goes_on() {
    let (python, port) = python_udp_server(&["1"]);
    let huge = "x".repeat(70_000);
    let (status, events, stderr) = udp_client(&[
        "--port",
        &port.to_string(),
        "--message",
        &huge,
        "--message",
        "small",
    ]);
    reap(python);
    assert!(status.success(), "{stderr}");
    let sent = returns(&events, "sendto");
    assert_eq!(sent[0]["errno"], "EMSGSIZE");
    assert_eq!(sent[1]["value"], 5);
    assert_eq!(infos(&events, "reply").len(), 1);
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["udp-client", "--timeout", "0"][..],
        &["udp-client", "--size", "10"],
        &["udp-client", "--count", "3", "--message", "x"],
        &["udp-client", "--count", "3", "--size", "70000"],
        &["udp-server", "--bufsize", "0"],
        &["udp-server", "--slow", "soon"],
    ] {
        let output = netlab().args(args).output().expect("run netlab");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_fixed_reply_replaces_the_echo() {
    let (demo, addr) = udp_server(&["--reply", "OK", "--max-datagrams", "1"]);
    let (reply, _) = echo(&peer(), addr, b"anything");
    assert_eq!(reply, b"OK\n");
    let (status, _, _) = demo.finish();
    assert!(status.success());
}

#[test]
fn a_quiet_client_prints_only_its_start_and_end() {
    let (python, port) = python_udp_server(&["1"]);
    let (status, events, stderr) =
        udp_client(&["--quiet", "--port", &port.to_string(), "--message", "hi"]);
    reap(python);
    assert!(status.success(), "{stderr}");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["start", "end"]);
}

#[test]
fn a_client_that_could_send_nothing_fails_with_the_kernels_reason() {
    // Port 0 is no destination: sendto() fails with EINVAL. The one
    // message never left, so the run is an error, not a success.
    let (status, events, stderr) = udp_client(&["--port", "0", "--message", "x"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(returns(&events, "sendto")[0]["errno"], "EINVAL");
    assert!(stderr.contains("no datagram could be sent"), "{stderr}");
    assert!(stderr.contains("port 0 is not a destination"), "{stderr}");
}

#[test]
fn an_ipv6_server_reads_the_ipv6_counters() {
    // IPv6 datagrams are counted in /proc/net/snmp6 (Udp6InDatagrams), not
    // in /proc/net/snmp's Udp line: the server must read the right file.
    let mut demo = Demo::start(&[
        "udp-server",
        "--host",
        "::1",
        "--port",
        "0",
        "--max-datagrams",
        "1",
    ]);
    let addr = demo.listening_addr();
    let socket = UdpSocket::bind("[::1]:0").expect("bind ::1");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let (reply, _) = echo(&socket, addr, b"over ipv6");
    assert_eq!(reply, b"over ipv6");
    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "{stderr}");
    let first = facts(&events, "udp_counters");
    assert_eq!(first[0]["source"], "/proc/net/snmp6", "{}", dump(&events));
    let grown = facts(&events, "udp_counters_growth");
    let last = grown.last().expect("a growth fact");
    assert_eq!(last["source"], "/proc/net/snmp6");
    assert!(
        last["value"]["InDatagrams"].as_u64().unwrap_or(0) >= 1,
        "the datagram this test sent must show: {}",
        dump(&events)
    );
}
