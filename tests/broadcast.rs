//! broadcast against real peers: the self-contained demo, a Python sender
//! and listener, `nc -u -b`, and three network namespaces on one bridge.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, ExitStatus, Stdio};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Run `netlab --json ARGS` to the end: status, events, stderr.
fn run(args: &[&str]) -> (ExitStatus, Vec<Value>, String) {
    Demo::start(args).finish()
}

fn warnings(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["event"] == "warning").collect()
}

fn error_message(events: &[Value]) -> String {
    events
        .iter()
        .find(|e| e["event"] == "error")
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn every_listener_of_the_self_contained_demo_receives_the_one_datagram() {
    let (status, events, stderr) = run(&["broadcast", "--port", "0", "--listeners", "3"]);
    assert!(status.success(), "exit {status}; stderr: {stderr}");

    // Three sockets on one port, as the kernel's /proc/net/udp lists them.
    let port = infos(&events, "listeners")[0]["value"]["port"]
        .as_u64()
        .unwrap();
    assert_ne!(port, 0);
    let shared = facts(&events, "udp_sockets_on_port");
    assert_eq!(shared[0]["value"]["sockets"], 3, "{shared:?}");

    // One sendto() ...
    let sent = returns(&events, "sendto");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["value"], 15);
    let target = events
        .iter()
        .find(|e| is_call(e, "sendto"))
        .and_then(|e| e["args"].as_str())
        .unwrap();
    assert!(
        target.ends_with(&format!("127.255.255.255:{port}")),
        "{target}"
    );

    // ... and three recvfrom() calls, on three different sockets, each
    // returning the same datagram from the same sender.
    let heard = infos(&events, "datagram");
    assert_eq!(heard.len(), 3, "{}", dump(&events));
    let mut fds: Vec<i64> = heard
        .iter()
        .map(|e| e["value"]["fd"].as_i64().unwrap())
        .collect();
    fds.sort();
    fds.dedup();
    assert_eq!(fds.len(), 3, "three different sockets: {fds:?}");
    let sender = heard[0]["value"]["from"].as_str().unwrap();
    for event in &heard {
        assert_eq!(event["value"]["from"], sender);
        assert_eq!(event["value"]["text"], "\"hello, everyone\"");
    }
    let verdict = &infos(&events, "all_received")[0]["value"];
    assert_eq!(verdict["received"], 3);
    assert_eq!(verdict["listeners"], 3);
    assert_eq!(
        facts(&events, "so_broadcast")[0]["value"],
        true,
        "the sender's SO_BROADCAST, read back"
    );
    assert_eq!(events.last().unwrap()["event"], "end");
}

#[test]
fn without_so_broadcast_the_kernel_refuses_with_eacces() {
    // The send is refused before anything leaves, so the port does not matter.
    let (status, events, stderr) =
        run(&["broadcast", "send", "--no-broadcast-flag", "--port", "9"]);
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    let sent = returns(&events, "sendto");
    assert_eq!(sent[0]["errno"], "EACCES", "{}", dump(&events));
    assert_eq!(facts(&events, "so_broadcast")[0]["value"], false);
    assert!(stderr.contains("EACCES"), "{stderr}");
    assert!(stderr.contains("SO_BROADCAST"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn send_reaches_a_python_listener() {
    let mut listener = Command::new("python3")
        .arg(format!(
            "{}/tests/py/broadcast_listen.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
    let port = lines.next().unwrap().unwrap();

    let (status, events, stderr) = run(&[
        "broadcast",
        "send",
        "--port",
        &port,
        "--message",
        "to python",
    ]);
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    let got = lines.next().unwrap().unwrap();
    let _ = wait_with_deadline(&mut listener, PATIENCE);
    let sent_from = infos(&events, "sent")[0]["value"]["from"]
        .as_str()
        .unwrap()
        .to_string();
    let sender_port = sent_from.rsplit(':').next().unwrap();
    assert_eq!(
        got,
        format!("{} 127.0.0.1:{sender_port}", hex(b"to python")),
        "what Python received"
    );
    let target = &infos(&events, "target")[0]["value"];
    assert_eq!(target["addr"], format!("127.255.255.255:{port}"));
    assert_eq!(target["is_broadcast"], true);
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn listen_shows_python_and_nc_broadcasts_and_escapes_invalid_utf8() {
    let mut demo = Demo::start(&["broadcast", "listen", "--port", "0", "--count", "3"]);
    let port = demo.listening_addr().port().to_string();

    let sender = python("broadcast_send.py", &[&port, "68690aff"]);
    demo.wait_for("the Python datagram", |e| e["key"] == "datagram");
    // nc -u -b: OpenBSD netcat sets SO_BROADCAST with -b.
    let nc = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'from nc' | nc -u -b -w 1 127.255.255.255 {port}"
        ))
        .output()
        .expect("nc");
    assert!(nc.status.success(), "{nc:?}");
    demo.wait_for("the nc datagram", |e| {
        e["key"] == "datagram" && e["value"]["bytes"] == 7
    });
    python("broadcast_send.py", &[&port, ""]);
    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "exit {status}; stderr: {stderr}");

    let heard = infos(&events, "datagram");
    assert_eq!(heard.len(), 3);
    // Invalid UTF-8 (0xff) is shown escaped, never sent raw to the terminal.
    assert_eq!(heard[0]["value"]["text"], r#""hi\n\xff""#);
    assert_eq!(
        heard[0]["value"]["from"],
        sender.trim().replace("0.0.0.0", "127.0.0.1")
    );
    assert_eq!(heard[1]["value"]["text"], "\"from nc\"");
    // A 0-byte datagram is a datagram.
    assert_eq!(heard[2]["value"]["bytes"], 0);
    assert!(returns(&events, "recvfrom").iter().any(|e| e["value"] == 0));
}

#[test]
fn listen_stops_on_ctrl_c() {
    let mut demo = Demo::start(&["broadcast", "listen", "--port", "0"]);
    demo.listening_addr();
    demo.wait_for_call("recvfrom", 1);
    let (status, events, _) = demo.signal(Signal::SIGINT);
    assert_eq!(status.code(), Some(130));
    assert!(calls(&events).contains(&"close".to_string()));
}

#[test]
fn a_non_broadcast_to_address_is_sent_with_a_warning() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(PATIENCE)).unwrap();
    let port = receiver.local_addr().unwrap().port().to_string();
    let (status, events, stderr) = run(&[
        "broadcast",
        "send",
        "--to",
        "127.0.0.1",
        "--port",
        &port,
        "--message",
        "one host",
    ]);
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    let warned = warnings(&events);
    assert_eq!(warned.len(), 1, "{}", dump(&events));
    assert!(warned[0]["text"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1 is not a broadcast address"));
    assert_eq!(
        facts(&events, "broadcast_addresses")[0]["value"]["is_broadcast"],
        false
    );
    let mut buf = [0u8; 64];
    let (count, _) = receiver.recv_from(&mut buf).expect("the unicast datagram");
    assert_eq!(&buf[..count], b"one host");
}

#[test]
fn an_unknown_interface_is_a_clear_error() {
    let (status, events, stderr) = run(&["broadcast", "send", "--iface", "nosuch0"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        error_message(&events).contains("no network interface named `nosuch0`"),
        "{stderr}"
    );
    // The hint names the interfaces that do exist.
    assert!(stderr.contains("lo"), "{stderr}");
    assert!(!calls(&events).contains(&"sendto".to_string()));

    let (status, events, _) = run(&["broadcast", "send", "--iface", "lo"]);
    assert_eq!(status.code(), Some(1));
    assert!(error_message(&events).contains("`lo` has no IPv4 broadcast address"));
}

#[test]
fn a_port_in_use_without_so_reuseaddr_is_a_clear_error() {
    // std's UdpSocket does not set SO_REUSEADDR, so nobody may share its port.
    let holder = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    for args in [
        vec!["broadcast", "listen", "--port", &port],
        vec!["broadcast", "--port", &port],
    ] {
        let (status, events, stderr) = run(&args);
        assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(returns(&events, "bind")[0]["errno"], "EADDRINUSE");
        let message = error_message(&events);
        assert!(message.contains("is in use"), "{message}");
        assert!(message.contains("SO_REUSEADDR"), "{message}");
    }
}

#[test]
fn bad_command_lines_are_usage_errors() {
    for args in [
        vec!["broadcast", "send", "--to", "::1"],
        vec!["broadcast", "send", "--to", "not-an-address"],
        vec!["broadcast", "send", "--to", "127.0.0.1", "--iface", "lo"],
        vec!["broadcast", "send", "--count", "0"],
        vec!["broadcast", "--listeners", "0"],
        vec!["broadcast", "--timeout", "0"],
    ] {
        let output = netlab().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    }
}

/// Three network namespaces that exist while the value lives. Their names
/// carry this test's pid, so a crashed run can never collide with a new
/// one; Drop deletes them even when an assertion fails.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn create(names: Vec<String>) -> Namespaces {
        let mut made = Namespaces { names: Vec::new() };
        for name in names {
            ip(&["netns", "add", &name]);
            made.names.push(name);
        }
        made
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes the interfaces inside it, the bridge
        // and both ends of every veth pair with it.
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn in_namespace(namespace: &str, args: &[&str]) -> Demo {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        namespace,
        env!("CARGO_BIN_EXE_netlab"),
        "--json",
    ])
    .args(args);
    Demo::spawn(cmd)
}

/// Two listeners and a sender, each in its own network namespace, joined by
/// a bridge. The bridge lives in the sender's namespace, so nothing is added
/// to this machine's own network; 10.77.0.0/24 exists only in there.
#[test]
fn a_broadcast_reaches_two_other_hosts_on_a_bridge() {
    let pid = std::process::id();
    let hosts = Namespaces::create(
        ["a", "b", "c"]
            .iter()
            .map(|host| format!("netlab-test-{pid}-{host}"))
            .collect(),
    );
    let (a, b, c) = (&hosts.names[0], &hosts.names[1], &hosts.names[2]);
    ip(&["-n", c, "link", "add", "br0", "type", "bridge"]);
    ip(&[
        "-n",
        c,
        "addr",
        "add",
        "10.77.0.1/24",
        "brd",
        "+",
        "dev",
        "br0",
    ]);
    ip(&["-n", c, "link", "set", "br0", "up"]);
    for (host, port, address) in [(a, "port-a", "10.77.0.2/24"), (b, "port-b", "10.77.0.3/24")] {
        // A veth pair is a virtual cable: one end on the bridge, the other
        // is the listener host's eth0.
        ip(&[
            "-n", c, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host,
        ]);
        ip(&["-n", c, "link", "set", port, "master", "br0", "up"]);
        ip(&[
            "-n", host, "addr", "add", address, "brd", "+", "dev", "eth0",
        ]);
        ip(&["-n", host, "link", "set", "eth0", "up"]);
    }

    let listen = ["broadcast", "listen", "--port", "9999", "--count", "1"];
    let mut listener_a = in_namespace(a, &listen);
    let mut listener_b = in_namespace(b, &listen);
    listener_a.wait_for_call("recvfrom", 1);
    listener_b.wait_for_call("recvfrom", 1);

    let sender = in_namespace(
        c,
        &["broadcast", "send", "--iface", "br0", "--port", "9999"],
    );
    let (status, sent, stderr) = sender.finish();
    assert!(status.success(), "sender: {stderr}\n{}", dump(&sent));
    let iface = &infos(&sent, "iface")[0]["value"];
    assert_eq!(iface["broadcast"], "10.77.0.255");
    assert_eq!(iface["address"], "10.77.0.1");
    assert_eq!(infos(&sent, "target")[0]["value"]["is_broadcast"], true);

    for (name, listener) in [("a", listener_a), ("b", listener_b)] {
        let (status, events, stderr) = listener.finish();
        assert!(status.success(), "listener {name}: {stderr}");
        let heard = infos(&events, "datagram");
        assert_eq!(heard.len(), 1, "listener {name}: {}", dump(&events));
        assert!(
            heard[0]["value"]["from"]
                .as_str()
                .unwrap()
                .starts_with("10.77.0.1:"),
            "listener {name}: {}",
            heard[0]
        );
        assert_eq!(heard[0]["value"]["text"], "\"hello, everyone\"");
    }
    drop(hosts);
    // The namespaces are gone.
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&format!("netlab-test-{pid}-")),
        "namespaces left behind"
    );
}

#[test]
fn a_datagram_from_another_sender_is_reported_and_not_counted() {
    // Another program broadcasts to the same port while the demo runs,
    // as a second `netlab broadcast` would: its datagrams reach every
    // listener too, and must not pass for the demo's own.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other.set_broadcast(true).unwrap();
    let other_addr = other.local_addr().unwrap().to_string();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = other.send_to(b"OTHER", ("127.255.255.255", port));
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let demo = Demo::start(&["broadcast", "--port", &port.to_string(), "-m", "OURS"]);
    // Let some of the other sender's datagrams queue before ours.
    let (status, events, stderr) = demo.finish();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    assert!(
        status.success(),
        "exit {status}; stderr: {stderr}\n{}",
        dump(&events)
    );
    let others = infos(&events, "other_sender");
    assert!(
        !others.is_empty(),
        "the flood reached no listener:\n{}",
        dump(&events)
    );
    for event in &others {
        assert_eq!(event["value"]["from"], other_addr.as_str());
        assert_eq!(event["value"]["text"], "\"OTHER\"");
    }
    for event in infos(&events, "datagram") {
        assert_eq!(event["value"]["text"], "\"OURS\"", "{event}");
    }
    let verdict = &infos(&events, "all_received")[0]["value"];
    assert_eq!(verdict["received"], 3);
    assert_eq!(verdict["other_senders"].as_u64(), Some(others.len() as u64));
    // Every recvfrom() result comes after the sendto() line is complete.
    let sendto = events
        .iter()
        .position(|e| e["event"] == "return" && e["call"] == "sendto")
        .unwrap();
    let first = events
        .iter()
        .position(|e| e["event"] == "return" && e["call"] == "recvfrom")
        .unwrap();
    assert!(first > sendto);
}
