//! tcp-server --model fork|thread against real peers, checked in /proc.

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to netlab");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

fn echo(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).expect("send");
    let mut reply = vec![0u8; message.len()];
    stream.read_exact(&mut reply).expect("read the echo");
    assert_eq!(reply, message);
}

/// (pid, state) of every child of `parent`, read by the test from /proc.
fn children_of(parent: i32) -> Vec<(i32, char)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = text.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let state = fields.first().and_then(|s| s.chars().next());
        if fields.get(1).and_then(|p| p.parse().ok()) == Some(parent) {
            found.push((pid, state.unwrap_or('?')));
        }
    }
    found
}

/// Poll /proc until `want` holds for the children of `parent`.
fn wait_children(parent: i32, what: &str, want: impl Fn(&[(i32, char)]) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = children_of(parent);
        if want(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: children now {now:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every pid other than the server's that printed an event.
fn child_pids(events: &[Value], server: i32) -> BTreeSet<i64> {
    events
        .iter()
        .filter_map(|e| e["pid"].as_i64())
        .filter(|pid| *pid != i64::from(server))
        .collect()
}

fn assert_gone(pids: &BTreeSet<i64>) {
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} is still in /proc"
        );
    }
}

#[test]
fn fork_serves_five_concurrent_python_clients_and_reaps_every_child() {
    let (demo, addr) = tcp_server(&["--model", "fork", "--max-clients", "5"]);
    let server = demo.pid();
    // Five connections held open at once, each echoed while all are open.
    let out = python(
        "concurrent_clients.py",
        &["127.0.0.1", &addr.port().to_string(), "5"],
    );
    assert_eq!(out.trim(), "5 echoed");
    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "exit {status}; stderr: {stderr}");

    let kids = child_pids(&events, server);
    assert_eq!(kids.len(), 5, "one child per client: {kids:?}");
    // The parent closed every connection fd, each child the listening fd.
    let closes = returns(&events, "close");
    // 5 connection fds in the parent, 5 listening fds and 5 connection fds
    // in the children, and the listening socket at the end.
    assert_eq!(closes.len(), 5 + 5 + 5 + 1, "{closes:?}");
    for kid in &kids {
        assert!(
            closes.iter().any(|e| e["pid"] == *kid),
            "child {kid} closed the listening socket"
        );
        // The child's fd table (from its own /proc/PID/fd) has no LISTEN socket.
        let table = facts(&events, "open_fds")
            .into_iter()
            .find(|e| e["pid"] == *kid)
            .expect("child's fd table");
        let states: Vec<&Value> = table["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|fd| &fd["tcp_state"])
            .collect();
        assert!(!states.contains(&&Value::from("LISTEN")), "{table}");
        assert!(states.contains(&&Value::from("ESTABLISHED")), "{table}");
    }
    // Every child was reaped, by the handler or at the end: nothing is left.
    let last = facts(&events, "children").pop().expect("children fact");
    assert_eq!(last["value"]["pids"], serde_json::json!([]));
    assert_gone(&kids);
}

#[test]
fn fork_children_are_alive_while_serving_and_the_handler_reaps_them() {
    let (mut demo, addr) = tcp_server(&["--model", "fork"]);
    let server = demo.pid();
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    for (number, client) in clients.iter_mut().enumerate() {
        echo(client, format!("hello {number}\n").as_bytes());
    }
    wait_children(server, "three children serving", |kids| {
        kids.len() == 3 && kids.iter().all(|(_, state)| *state != 'Z')
    });
    drop(clients);
    // The SIGCHLD handler interrupts accept() and reaps each child.
    for _ in 0..3 {
        demo.wait_for("a reaped child", |e| {
            e["event"] == "info" && e["key"] == "reaped"
        });
    }
    wait_children(server, "no child left", |kids| kids.is_empty());
    let (status, events, _) = demo.signal(Signal::SIGTERM);
    assert_eq!(status.code(), Some(143));
    let eintr = returns(&events, "accept")
        .into_iter()
        .any(|e| e["errno"] == "EINTR" && e["pid"] == server);
    assert!(eintr, "accept() was interrupted by SIGCHLD");
}

#[test]
fn sigterm_ends_the_children_still_serving_and_reaps_them() {
    let (mut demo, addr) = tcp_server(&["--model", "fork"]);
    let server = demo.pid();
    let mut client = connect(addr);
    echo(&mut client, b"still here\n");
    demo.wait_for("the child's fd table", |e| {
        e["event"] == "kernel" && e["fact"] == "open_fds" && e["pid"] != server
    });
    wait_children(server, "one child serving", |kids| {
        kids.len() == 1 && kids[0].1 != 'Z'
    });
    let (status, events, _) = demo.signal(Signal::SIGTERM);
    assert_eq!(status.code(), Some(143));
    // The child had its own default SIGTERM action: the parent's kill()
    // ended it, and waitpid() decoded that.
    let killed = returns(&events, "waitpid").into_iter().any(|e| {
        e["result"]
            .as_str()
            .unwrap_or("")
            .contains("killed by SIGTERM")
    });
    assert!(
        killed,
        "{}",
        dump(
            &returns(&events, "waitpid")
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        )
    );
    assert_gone(&child_pids(&events, server));
    // The client sees the connection end.
    let mut buf = [0u8; 8];
    assert_eq!(client.read(&mut buf).expect("read"), 0);
}

#[test]
fn without_close_in_parent_the_client_never_sees_end_of_file() {
    let (mut demo, addr) = tcp_server(&["--model", "fork", "--no-close-in-parent"]);
    let server = demo.pid();
    let mut client = connect(addr);
    echo(&mut client, b"ping\n");
    client.shutdown(Shutdown::Write).expect("half-close");
    // The child reads EOF, closes its copy and exits; the parent reaps it.
    demo.wait_for("the child reaped", |e| {
        e["event"] == "info" && e["key"] == "reaped"
    });
    wait_children(server, "no child left", |kids| kids.is_empty());

    // But no FIN comes: the parent's copy keeps the connection open.
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected no end-of-file, got {other:?}"),
    }
    let local = client.local_addr().expect("local");
    assert_eq!(proc_tcp_state(addr, local).as_deref(), Some("CLOSE_WAIT"));
    assert_eq!(proc_tcp_state(local, addr).as_deref(), Some("FIN_WAIT2"));

    // Once the parent exits and closes its copy, the client gets EOF.
    let (status, events, _) = demo.signal(Signal::SIGTERM);
    assert_eq!(status.code(), Some(143));
    client.set_read_timeout(Some(PATIENCE)).expect("timeout");
    assert_eq!(
        client.read(&mut buf).expect("read"),
        0,
        "end-of-file at last"
    );
    let kept = facts(&events, "connection_state")
        .into_iter()
        .any(|e| e["value"]["whose"] == "the server's end" && e["value"]["state"] == "CLOSE_WAIT");
    assert!(kept, "the server narrated its kept connection");
}

#[test]
fn without_reaping_zombies_pile_up_and_are_reaped_at_exit() {
    let (demo, addr) = tcp_server(&["--model", "fork", "--no-reap"]);
    let server = demo.pid();
    for number in 0..3 {
        let mut client = connect(addr);
        echo(&mut client, format!("client {number}\n").as_bytes());
    }
    wait_children(server, "three zombies", |kids| {
        kids.len() == 3 && kids.iter().all(|(_, state)| *state == 'Z')
    });
    let (status, events, _) = demo.signal(Signal::SIGTERM);
    assert_eq!(status.code(), Some(143));
    let zombies = events
        .iter()
        .find(|e| e["event"] == "info" && e["key"] == "zombies")
        .expect("zombies counted");
    assert_eq!(zombies["value"]["zombies"], 3);
    let last = facts(&events, "children").pop().expect("children fact");
    assert_eq!(last["value"]["pids"], serde_json::json!([]));
    assert_gone(&child_pids(&events, server));
}

#[test]
fn threads_serve_clients_at_once_in_one_process() {
    let (demo, addr) = tcp_server(&["--model", "thread", "--max-clients", "4"]);
    let server = demo.pid();
    let mut clients: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    for (number, client) in clients.iter_mut().enumerate() {
        echo(client, format!("thread {number}\n").as_bytes());
    }
    // One process, 4 client threads + main + the stop helper; no children.
    let status = std::fs::read_to_string(format!("/proc/{server}/status")).expect("status");
    let threads: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads line");
    assert_eq!(threads, 6);
    assert!(children_of(server).is_empty());
    drop(clients);
    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    assert_eq!(returns(&events, "gettid").len(), 4);
    assert!(
        child_pids(&events, server).is_empty(),
        "threads share the pid"
    );
}

#[test]
fn model_flags_need_the_fork_model() {
    // A usage error (exit 2, before any socket), in every model but fork.
    for (flag, model) in [
        ("--no-reap", "iterative"),
        ("--no-close-in-parent", "iterative"),
        ("--no-reap", "thread"),
    ] {
        let output = netlab()
            .args(["tcp-server", "--port", "0", "--model", model, flag])
            .output()
            .expect("run netlab");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {model}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("--model fork"),
            "{stderr}"
        );
        assert!(stderr.contains("Usage: netlab tcp-server"), "{stderr}");
        assert!(output.stdout.is_empty(), "no demo ran");
    }
}

/// Read /proc/net/tcp (the test's own reader) until the connection
/// `local -> remote` is in `want`, and return the state seen last.
fn wait_state(local: SocketAddr, remote: SocketAddr, want: &str) -> Option<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = proc_tcp_state(local, remote);
        if state.as_deref() == Some(want) || Instant::now() >= deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn closing_first_without_close_in_parent_leaves_both_ends_established() {
    let (mut demo, addr) = tcp_server(&[
        "--model",
        "fork",
        "--no-close-in-parent",
        "--close-after",
        "1",
    ]);
    let server = demo.pid();
    let mut client = connect(addr);
    // Let the parent get back into accept() before the child answers and
    // exits, so that the child's SIGCHLD interrupts it there.
    demo.wait_for_call("accept", 2);
    std::thread::sleep(Duration::from_millis(100));
    echo(&mut client, b"ping\n");

    // The child answers, closes its copy and exits; the handler reaps it.
    demo.wait_for("the child reaped", |e| {
        e["event"] == "info" && e["key"] == "reaped"
    });
    wait_children(server, "no child left", |kids| kids.is_empty());
    assert_no_children(server);
    // After the reaping, the parent reads the connection from the kernel.
    let ours = demo.wait_for("the kept connection's state", |e| {
        e["event"] == "kernel"
            && e["fact"] == "connection_state"
            && e["pid"] == server
            && e["value"]["whose"] == "the server's end"
    });
    assert_eq!(ours["value"]["state"], "ESTABLISHED", "{ours}");
    demo.wait_for("the note that no end-of-file comes", |e| {
        e["event"] == "note"
            && e["text"]
                .as_str()
                .is_some_and(|text| text.contains("never get end-of-file"))
    });

    // The client waits for end-of-file in vain: no FIN was sent, and the
    // kernel (read here by the test itself) has both ends ESTABLISHED.
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected no end-of-file, got {other:?}"),
    }
    let local = client.local_addr().expect("local");
    assert_eq!(proc_tcp_state(addr, local).as_deref(), Some("ESTABLISHED"));
    assert_eq!(proc_tcp_state(local, addr).as_deref(), Some("ESTABLISHED"));

    // Only when the parent exits and closes its copy does FIN go out.
    let (status, events, _) = demo.signal(Signal::SIGTERM);
    assert_eq!(status.code(), Some(143));
    client.set_read_timeout(Some(PATIENCE)).expect("timeout");
    assert_eq!(
        client.read(&mut buf).expect("read"),
        0,
        "end-of-file at last"
    );
    // The child saw it too, right after its own close().
    let kids = child_pids(&events, server);
    let in_child = facts(&events, "connection_state").into_iter().any(|e| {
        kids.contains(&e["pid"].as_i64().unwrap_or(0))
            && e["value"]["whose"] == "this server's end"
            && e["value"]["state"] == "ESTABLISHED"
    });
    assert!(in_child, "the child read ESTABLISHED after its close()");
    assert_gone(&kids);
}

#[test]
fn closing_first_in_a_forked_child_gives_the_client_end_of_file() {
    let (demo, addr) = tcp_server(&[
        "--model",
        "fork",
        "--close-after",
        "1",
        "--max-clients",
        "1",
    ]);
    let server = demo.pid();
    let mut client = connect(addr);
    echo(&mut client, b"ping\n");
    // The parent closed its copy, so the child's close() sent FIN.
    let mut buf = [0u8; 16];
    assert_eq!(client.read(&mut buf).expect("read"), 0, "end-of-file");
    let local = client.local_addr().expect("local");
    // FIN_WAIT1 lasts until the client's (delayed) ACK of our FIN.
    assert_eq!(
        wait_state(addr, local, "FIN_WAIT2").as_deref(),
        Some("FIN_WAIT2")
    );
    assert_eq!(proc_tcp_state(local, addr).as_deref(), Some("CLOSE_WAIT"));
    drop(client);

    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    let kids = child_pids(&events, server);
    assert_eq!(kids.len(), 1, "{kids:?}");
    let closing = events
        .iter()
        .find(|e| e["event"] == "info" && e["key"] == "closing_first")
        .expect("closing_first");
    assert_eq!(closing["value"]["replies"], 1);
    // The child read its end from the kernel after close(): FIN sent.
    // FIN_WAIT1 until the client's ACK of that FIN arrives (under load the
    // child can read its state first), FIN_WAIT2 after.
    let ours = facts(&events, "connection_state")
        .into_iter()
        .find(|e| e["value"]["whose"] == "this server's end")
        .expect("the server's end after close()");
    assert!(kids.contains(&ours["pid"].as_i64().unwrap_or(0)), "{ours}");
    let state = ours["value"]["state"].as_str().unwrap_or("gone");
    assert!(
        matches!(state, "FIN_WAIT1" | "FIN_WAIT2" | "TIME_WAIT"),
        "{ours}"
    );
    assert_gone(&kids);
}

#[test]
fn close_after_closes_first_in_the_iterative_and_thread_models() {
    for model in ["iterative", "thread"] {
        let (demo, addr) =
            tcp_server(&["--model", model, "--close-after", "2", "--max-clients", "1"]);
        let mut client = connect(addr);
        echo(&mut client, b"one\n");
        echo(&mut client, b"two\n");
        let mut buf = [0u8; 16];
        assert_eq!(
            client.read(&mut buf).expect("read"),
            0,
            "{model}: end-of-file"
        );
        drop(client);
        let (status, events, stderr) = demo.finish();
        assert!(status.success(), "{model}: exit {status}; stderr: {stderr}");
        assert_eq!(returns(&events, "send").len(), 2, "{model}");
        let state = facts(&events, "connection_state")
            .into_iter()
            .find(|e| e["value"]["whose"] == "this server's end")
            .map(|e| e["value"]["state"].clone());
        assert!(
            matches!(
                state.as_ref().and_then(Value::as_str),
                Some("FIN_WAIT2" | "TIME_WAIT")
            ),
            "{model}: {state:?}"
        );
    }
}

#[test]
fn close_after_needs_at_least_one_message() {
    let output = netlab()
        .args(["tcp-server", "--port", "0", "--close-after", "0"])
        .output()
        .expect("run netlab");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn closing_first_with_unread_data_resets_the_connection() {
    // recv() takes 4 bytes of the 12 sent; the server answers once and
    // closes with 8 bytes still unread.
    let (mut demo, addr) =
        tcp_server(&["--close-after", "1", "--bufsize", "4", "--max-clients", "1"]);
    let mut client = connect(addr);
    client.write_all(b"hello world\n").expect("send");
    demo.wait_for("the client done", |e| {
        e["event"] == "info" && e["key"] == "client_done"
    });
    let mut buf = [0u8; 64];
    let ending = loop {
        match client.read(&mut buf) {
            Ok(0) => panic!("an orderly end-of-file instead of a reset"),
            Ok(_) => continue,
            Err(err) => break err.kind(),
        }
    };
    assert_eq!(ending, ErrorKind::ConnectionReset);
    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    let unread = facts(&events, "receive_queue");
    assert_eq!(unread.len(), 1, "{}", dump(&events));
    assert_eq!(unread[0]["value"], 8);
}

/// One narrated line of human output: which thread printed it (the
/// `[client-N] ` prefix; "main" without one) and the rest of the line.
fn split_thread(line: &str) -> (String, &str) {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((label, body)) = rest.split_once("] ") {
            return (label.to_string(), body);
        }
    }
    ("main".to_string(), line)
}

/// A step line's number and the text after it ("  12  recv(fd 4, ...)").
fn step_line(body: &str) -> Option<(u32, &str)> {
    let trimmed = body.trim_start();
    let digits = trimmed.len()
        - trimmed
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    let number = trimmed[..digits].parse().ok()?;
    let rest = trimmed[digits..].strip_prefix("  ")?;
    Some((number, rest))
}

/// A result that only one call can give: recv's bytes or end of stream,
/// accept's new fd and peer.
fn result_fits(call: &str, result: &str) -> bool {
    let from_recv = result.starts_with("0: end of stream") || result.contains(" bytes: ");
    let from_accept = result.contains(", peer ");
    (call == "recv" || !from_recv) && (call == "accept" || !from_accept)
}

#[test]
fn threads_label_their_lines_and_each_result_stays_with_its_call() {
    let mut server = netlab()
        .args(["--color", "never", "tcp-server", "--host", "127.0.0.1"])
        .args(["--port", "0", "--model", "thread"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start netlab");
    let stdout = server.stdout.take().expect("stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut screen = Vec::new();
    let addr: SocketAddr = loop {
        let line = lines.recv_timeout(PATIENCE).expect("the listening line");
        let found = line
            .split_once("listening on ")
            .and_then(|(_, rest)| rest.split(';').next())
            .and_then(|addr| addr.parse().ok());
        screen.push(line);
        if let Some(addr) = found {
            break addr;
        }
    };
    // Two clients talk in turns, so their threads print at the same time.
    let mut first = connect(addr);
    let mut second = connect(addr);
    for round in 0..3 {
        echo(&mut first, format!("one {round}\n").as_bytes());
        echo(&mut second, format!("two {round}\n").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(300));
    // Stop the server while both clients are still connected.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        Signal::SIGINT,
    )
    .expect("signal netlab");
    let status = wait_with_deadline(&mut server, PATIENCE).unwrap_or_else(|| {
        let _ = server.kill();
        let _ = server.wait();
        panic!("netlab did not stop");
    });
    assert_eq!(status.code(), Some(130));
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        screen.push(line);
    }
    let text = screen.join("\n");

    // Each client's thread labels its lines; the main thread does not.
    for label in ["client-1", "client-2"] {
        assert!(
            text.contains(&format!("[{label}] ")) && text.contains("gettid()  -> "),
            "{text}"
        );
    }
    assert!(
        screen
            .iter()
            .any(|l| l.starts_with("  ") && l.contains("accept(fd 3)")),
        "{text}"
    );

    // The blocking call each thread is waiting in: (step, call).
    let mut waiting: std::collections::HashMap<String, (u32, String)> = Default::default();
    let mut previous: Option<String> = None;
    for line in &screen {
        let (thread, body) = split_thread(line);
        if let Some(result) = body.trim_start().strip_prefix("-> ") {
            // A result under its call: the line just above is that call.
            let (_, call) = waiting
                .remove(&thread)
                .unwrap_or_else(|| panic!("a result with no call waiting: {line}\n{text}"));
            assert_eq!(
                previous.as_deref(),
                Some(thread.as_str()),
                "a result must sit right under its own call: {line}\n{text}"
            );
            assert!(result_fits(&call, result), "{call} -> {result}\n{text}");
        } else if let Some((number, rest)) = step_line(body) {
            let call = rest.split('(').next().unwrap_or("").to_string();
            if let Some((_, result)) = rest.split_once(")  -> ") {
                // A result printed after other threads' lines repeats its
                // step number and call: it must be the one this thread
                // waits in. (Otherwise it is a quick call, gettid().)
                if waiting.get(&thread) == Some(&(number, call.clone())) {
                    waiting.remove(&thread);
                }
                assert!(result_fits(&call, result), "{line}\n{text}");
            } else if rest.ends_with(" ...") {
                waiting.insert(thread.clone(), (number, call));
            }
        }
        previous = Some(thread);
    }

    assert!(
        waiting.is_empty(),
        "calls left without a result: {waiting:?}\n{text}"
    );

    // The stop, told as it happened: our shutdown() ended each recv().
    let own_shutdown = screen
        .iter()
        .filter(|l| l.contains("because our own shutdown() ended the stream"))
        .count();
    assert_eq!(own_shutdown, 2, "{text}");
    assert!(!text.contains("the client sent FIN"), "{text}");
    assert!(!text.contains("The client closed first"), "{text}");
    assert!(
        screen
            .iter()
            .any(|l| l.contains("shutdown(fd 4, SHUT_RDWR)  -> 0")),
        "{text}"
    );
}
