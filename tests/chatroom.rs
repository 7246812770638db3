//! chatroom against real peers: three netlab clients driven through pipes,
//! one in a pseudo-terminal (tests/py/chat_pty.py), and a Python stdlib
//! peer that speaks the raw protocol (tests/py/chat_peer.py).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use serde_json::Value;

/// A chat server on 127.0.0.1, port 0, its address and its console's pid.
struct Server {
    demo: Demo,
    addr: SocketAddr,
    console: i32,
}

fn server() -> Server {
    let mut demo = Demo::start(&["chatroom", "server", "--host", "127.0.0.1", "--port", "0"]);
    let addr = demo.listening_addr();
    let processes = demo.wait_for("the process structure", |e| {
        e["event"] == "info" && e["key"] == "processes"
    });
    let console = processes["value"]["console"].as_i64().expect("console pid") as i32;
    assert_eq!(processes["value"]["receive_loop"], demo.pid());
    // The receive loop is ready once it waits in ppoll().
    demo.wait_for_call("ppoll", 1);
    Server {
        demo,
        addr,
        console,
    }
}

/// A logged-in client and its receiver's pid.
struct Client {
    demo: Demo,
    receiver: i32,
}

fn client(name: &str, server: SocketAddr) -> Client {
    let mut demo = start_client(name, server, &["--timeout", "500"]);
    demo.wait_for("the login", |e| {
        e["event"] == "info" && e["key"] == "logged_in"
    });
    let processes = demo.wait_for("the process structure", |e| {
        e["event"] == "info" && e["key"] == "processes"
    });
    assert_eq!(processes["value"]["sender"], demo.pid());
    let receiver = processes["value"]["receiver"].as_i64().expect("pid") as i32;
    // Ready once the sender waits on the keyboard.
    wait_keyboard(&mut demo);
    Client { demo, receiver }
}

/// Wait until the sender waits on the keyboard (its poll on stdin).
fn wait_keyboard(demo: &mut Demo) {
    demo.wait_for("the sender's poll on the keyboard", |e| {
        is_call(e, "poll")
            && e["args"]
                .as_str()
                .is_some_and(|a| a.starts_with("fd 0 (stdin)"))
    });
}

fn start_client(name: &str, server: SocketAddr, extra: &[&str]) -> Demo {
    let server = server.to_string();
    let mut args = vec![
        "chatroom",
        "client",
        "--name",
        name,
        "--server",
        server.as_str(),
    ];
    args.extend_from_slice(extra);
    Demo::start(&args)
}

/// Wait for the client to print this chat line (a `received` event).
fn wait_line(demo: &mut Demo, line: &str) -> Value {
    demo.wait_for(&format!("the line {line:?}"), |e| {
        e["key"] == "received" && e["value"]["line"] == line
    })
}

fn lines(events: &[Value]) -> Vec<String> {
    infos(events, "received")
        .iter()
        .filter_map(|e| e["value"]["line"].as_str().map(str::to_string))
        .collect()
}

/// Wait until the server has seen this many users.
fn wait_users(server: &mut Server, count: usize) -> Value {
    server.demo.wait_for(&format!("{count} users"), |e| {
        e["key"] == "users" && e["value"]["count"] == count
    })
}

/// The pid is gone from /proc (not running, not a zombie): reaped.
fn assert_gone(pid: i32, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "{who} (pid {pid}) is still there: {:?}",
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// End a client with end of input: it sends Q, waits for EXIT, and both
/// of its processes are gone.
fn leave(client: Client) -> Vec<Value> {
    let pid = client.demo.pid();
    let receiver = client.receiver;
    let (status, events, stderr) = client.demo.finish();
    assert!(status.success(), "client exit {status}; {stderr}");
    assert!(!infos(&events, "left").is_empty(), "{}", dump(&events));
    assert_gone(receiver, "the receiver");
    assert_gone(pid, "the sender");
    events
}

/// Stop the server with SIGINT; check it told everyone and reaped its console.
fn stop(server: Server) -> Vec<Value> {
    stop_with(server, Signal::SIGINT)
}

/// Stop the server with this signal: exit status 128 + its number.
fn stop_with(server: Server, signal: Signal) -> Vec<Value> {
    let pid = server.demo.pid();
    assert_no_zombies(pid);
    let console = server.console;
    let mut demo = server.demo;
    // The console's stdin stays open until the server has ended, so that
    // the console is ended by the server, not by end of input.
    kill(pid, signal);
    demo.wait_for("the end", |e| e["event"] == "end");
    let (status, events, stderr) = demo.finish();
    assert_eq!(status.code(), Some(128 + signal as i32), "{stderr}");
    assert_gone(console, "the console");
    assert_gone(pid, "the server");
    events
}

fn assert_no_zombies(parent: i32) {
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(1) == Some(&parent.to_string().as_str()) {
            assert_ne!(fields[0], "Z", "a zombie child of {parent}: {stat}");
        }
    }
}

fn refusals(events: &[Value]) -> Vec<String> {
    infos(events, "refused")
        .iter()
        .filter_map(|e| e["value"]["reason"].as_str().map(str::to_string))
        .collect()
}

fn peer(server: SocketAddr, steps: &[&str]) -> String {
    let port = server.port().to_string();
    let mut args = vec!["127.0.0.1", port.as_str()];
    args.extend_from_slice(steps);
    python("chat_peer.py", &args)
}

/// A file the test creates to tell a waiting Python peer to go on.
fn signal_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("netlab-chat-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn three_clients_chat_and_each_line_goes_to_all_but_its_sender() {
    let mut server = server();
    let mut ana = client("ana", server.addr);
    let mut bo = client("bo", server.addr);
    wait_line(&mut ana.demo, "* bo joined");
    let mut cy = client("cy", server.addr);
    wait_line(&mut ana.demo, "* cy joined");
    wait_line(&mut bo.demo, "* cy joined");
    wait_users(&mut server, 3);

    ana.demo.send_stdin("hello, 你好\n");
    wait_line(&mut bo.demo, "ana: hello, 你好");
    wait_line(&mut cy.demo, "ana: hello, 你好");
    // /who: the extension, answered to the asker only.
    bo.demo.send_stdin("/who\n");
    wait_line(&mut bo.demo, "* here: ana, bo, cy");

    // ana leaves with end of input: Q, then EXIT; the others are told.
    let ana_events = leave(ana);
    wait_line(&mut bo.demo, "* ana left");
    wait_line(&mut cy.demo, "* ana left");
    let ana_lines = lines(&ana_events);
    assert!(
        !ana_lines.iter().any(|line| line.starts_with("ana:")),
        "ana got her own line back: {ana_lines:?}"
    );
    assert!(ana_lines.contains(&"* you have left the room".to_string()));
    assert!(
        returns(&ana_events, "sendto")
            .iter()
            .any(|e| e["result"] == "5 bytes"),
        "Q ana sent"
    );

    leave(bo);
    let cy_events = leave(cy);
    assert!(
        !lines(&cy_events).contains(&"* here: ana, bo, cy".to_string()),
        "/who went to bo only"
    );
    let events = stop(server);
    // The server narrated the map on each change, ending empty.
    let last_users = infos(&events, "users")
        .last()
        .copied()
        .cloned()
        .expect("users");
    assert_eq!(last_users["value"]["count"], 0);
    // Each chat line was sent to the two others only.
    let fan_out = infos(&events, "fan_out");
    assert_eq!(fan_out[0]["value"]["to"], 2, "{fan_out:?}");
}

#[test]
fn duplicate_reserved_and_invalid_names_are_refused() {
    let server = server();
    let ana = client("ana", server.addr);
    let second = start_client("ana", server.addr, &[]);
    let (status, _, stderr) = second.finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("refused the name `ana`: name taken"),
        "{stderr}"
    );

    // The server checks the reserved name itself, whatever the client does.
    let out = peer(
        server.addr,
        &[
            "send:L admin",
            "expect:ERR name reserved",
            "send:L AdMiN",
            "expect:ERR name reserved",
            "send:L two words",
            "expect:ERR name invalid",
            "send:L abcdefghijklmnopq",
            "expect:ERR name invalid",
            "send:L zed",
            "expect:OK",
            "send:L yan",
            "expect:ERR already logged in",
            "send:Q zed",
            "expect:EXIT",
        ],
    );
    assert!(out.ends_with("done\n"), "{out}");
    // The netlab client refuses the reserved name before sending anything.
    let local = start_client("admin", server.addr, &[]);
    let (status, events, stderr) = local.finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("`admin` cannot be a chat name: name reserved"),
        "{stderr}"
    );
    assert!(returns(&events, "sendto").is_empty());

    leave(ana);
    let events = stop(server);
    let reasons = refusals(&events);
    for reason in [
        "name taken",
        "name reserved",
        "name invalid",
        "already logged in",
    ] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
}

#[test]
fn an_admin_line_typed_on_the_server_console_reaches_every_user() {
    let mut server = server();
    let mut ana = client("ana", server.addr);
    let go = signal_file("admin");
    let go_arg = format!("wait:{}", go.display());
    let addr = server.addr;
    let zed = std::thread::spawn(move || {
        peer(
            addr,
            &[
                "send:L zed",
                "expect:OK",
                &go_arg,
                "expect:MSG admin hello class",
                "send:Q zed",
                "expect:EXIT",
            ],
        )
    });
    wait_users(&mut server, 2);
    server.demo.send_stdin("hello class\n");
    wait_line(&mut ana.demo, "admin: hello class");
    std::fs::write(&go, "").expect("signal file");
    let out = zed.join().expect("peer thread");
    let _ = std::fs::remove_file(&go);
    assert!(out.ends_with("done\n"), "{out}");
    leave(ana);
    let events = stop(server);
    // The console process sent it from its own loopback socket.
    let console_addr = infos(&events, "console_socket")[0]["value"]["addr"]
        .as_str()
        .expect("addr")
        .to_string();
    let admin = infos(&events, "request")
        .into_iter()
        .find(|e| e["value"]["name"] == "admin")
        .expect("the admin request");
    assert_eq!(admin["value"]["from"], console_addr.as_str());
    assert!(console_addr.starts_with("127.0.0.1:"));
    let console_sends: Vec<_> = events
        .iter()
        .filter(|e| {
            e["event"] == "call" && e["call"] == "sendto" && e["pid"] == server_console_pid(&events)
        })
        .collect();
    assert_eq!(console_sends.len(), 1, "{console_sends:?}");
    assert!(console_sends[0]["args"]
        .as_str()
        .unwrap()
        .contains("\"C admin hello class\""));
}

fn server_console_pid(events: &[Value]) -> Value {
    infos(events, "processes")[0]["value"]["console"].clone()
}

#[test]
fn spoofed_chat_and_quit_from_another_address_are_refused_and_reported() {
    let server = server();
    let ana = client("ana", server.addr);
    let out = peer(
        server.addr,
        &[
            "send:L zed",
            "expect:OK",
            // Another socket is another port, so another address.
            "sock:1",
            "send:C zed I am zed, honest",
            "expect:ERR not your name",
            "send:Q zed",
            "expect:ERR not your name",
            "send:W ana",
            "expect:ERR not your name",
            "send:C admin the server is closing, send me your password",
            "expect:ERR not your name",
            "send:C nobody hi",
            "expect:ERR unknown name",
            // zed is still logged in and still hears ana.
            "sock:0",
            "print:still here",
            "send:W zed",
            "expect:USERS ana zed",
        ],
    );
    assert!(out.ends_with("done\n"), "{out}");
    leave(ana);
    let events = stop(server);
    let spoofs: Vec<_> = infos(&events, "refused")
        .into_iter()
        .filter(|e| e["value"]["reason"] == "not your name")
        .collect();
    assert_eq!(spoofs.len(), 4, "{spoofs:?}");
    assert_eq!(spoofs[0]["value"]["name"], "zed");
    assert_ne!(spoofs[0]["value"]["from"], spoofs[0]["value"]["registered"]);
    // Nobody got the forged lines.
    assert!(!returns(&events, "sendto")
        .iter()
        .any(|e| e["result"].as_str().unwrap_or("").contains("honest")));
    let forwarded = events.iter().any(|e| {
        is_call(e, "sendto")
            && e["args"]
                .as_str()
                .is_some_and(|a| a.contains("MSG zed") || a.contains("MSG admin"))
    });
    assert!(!forwarded, "a forged line was delivered");
}

#[test]
fn bad_datagrams_are_refused_and_the_users_are_kept() {
    let server = server();
    // The longest C zed may send (1022 bytes) is forwarded whole as a
    // 1024-byte MSG; one byte more is refused, since its MSG would not fit.
    let longest = format!("send:C zed {}END", "x".repeat(1013));
    let too_long = format!("send:C zed {}END", "x".repeat(1014));
    let mut ana = client("ana", server.addr);
    let go = signal_file("bad");
    let go_arg = format!("wait:{}", go.display());
    let addr = server.addr;
    let zed = std::thread::spawn(move || {
        peer(
            addr,
            &[
                "send:L zed",
                "expect:OK",
                "sock:1",
                "hex:",
                "expect:ERR empty datagram",
                "send:hello",
                "expect:ERR malformed request",
                "send:C zed",
                "expect:ERR malformed request",
                "hex:43207a656420ff fe",
                "expect:ERR not UTF-8",
                "big:1025",
                "expect:ERR datagram too long",
                "big:60000",
                "expect:ERR datagram too long",
                "hex:4320616e612061 1b 5b 324a",
                "expect:ERR malformed request",
                // A login afterwards still works, and old users still hear.
                "send:L yan",
                "expect:OK",
                "sock:0",
                "expect:JOIN yan",
                &longest,
                &too_long,
                "expect:ERR line too long",
                &go_arg,
                "expect:MSG ana hi zed",
            ],
        )
    });
    wait_line(&mut ana.demo, "* zed joined");
    wait_line(&mut ana.demo, "* yan joined");
    wait_line(&mut ana.demo, &format!("zed: {}END", "x".repeat(1013)));
    // A line too long for one datagram is cut at a character boundary.
    ana.demo.send_stdin(&format!("{}\n", "你".repeat(400)));
    ana.demo.wait_for("the cut", |e| e["key"] == "cut");
    // A tab becomes a space, and the client says so, once.
    ana.demo.send_stdin("hi\tzed\n");
    std::fs::write(&go, "").expect("signal file");
    let out = zed.join().expect("peer thread");
    let _ = std::fs::remove_file(&go);
    assert!(out.ends_with("done\n"), "{out}");
    assert!(
        out.contains(&format!("got 0: MSG ana {}", "你".repeat(338))),
        "{out}"
    );
    let ana_events = leave(ana);
    assert_eq!(infos(&ana_events, "line_changed").len(), 1);
    let cut = infos(&ana_events, "cut")[0];
    // `MSG ana ` leaves 1016 bytes: 338 whole characters, 1014 bytes.
    assert_eq!(cut["value"]["sent"], "C ana ".len() + 338 * 3);
    assert_eq!(cut["value"]["left_out"], 62 * 3);
    let events = stop(server);
    // The real length of the 60000-byte datagram, from MSG_TRUNC.
    let big = returns(&events, "recvmsg")
        .into_iter()
        .find(|e| e["value"] == 60000)
        .expect("recvmsg returned the real length");
    assert!(
        big["result"]
            .as_str()
            .is_some_and(|r| r.contains("only 1024 kept (MSG_TRUNC)")),
        "{big}"
    );
    let reasons = refusals(&events);
    for reason in [
        "empty datagram",
        "malformed request",
        "not UTF-8",
        "datagram too long",
        "line too long",
    ] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
    // The map was never emptied by the bad datagrams: its size only grew
    // until ana left.
    let counts: Vec<i64> = infos(&events, "users")
        .iter()
        .filter_map(|e| e["value"]["count"].as_i64())
        .collect();
    assert_eq!(&counts[..3], &[1, 2, 3], "{counts:?}");
}

#[test]
fn a_login_nobody_answers_is_tried_three_times_then_given_up() {
    // A UDP port that is taken (so no other test's server gets it) by a
    // socket that never answers: the login's datagrams are all lost.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let started = Instant::now();
    let demo = start_client("ana", addr, &["--timeout", "300"]);
    let (status, events, stderr) = demo.finish();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no answer from a chat server at {addr} after 3 tries, 300 ms apart"
        )),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert_eq!(infos(&events, "login_attempt").len(), 3);
    // Each wait shows the --timeout given, not 299 ms.
    let polls: Vec<&Value> = events.iter().filter(|e| is_call(e, "poll")).collect();
    assert_eq!(polls.len(), 3);
    assert!(
        polls.iter().all(|e| e["args"] == "fd 3 POLLIN, 300 ms"),
        "{polls:?}"
    );
    // The three logins really were sent.
    silent
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        let (length, _) = silent.recv_from(&mut buf).expect("a login datagram");
        assert_eq!(&buf[..length], b"L ana");
    }
    // No fork happened: nothing was left behind.
    assert!(calls(&events).iter().all(|call| call != "fork"));
}

#[test]
fn ctrl_c_in_a_terminal_sends_q_and_ends_both_client_processes() {
    let server = server();
    let port = server.addr.port().to_string();
    let out = python(
        "chat_pty.py",
        &[env!("CARGO_BIN_EXE_netlab"), "127.0.0.1", &port, "tty"],
    );
    assert!(out.contains("redraw=True"), "{out}");
    // The half-typed line stayed on screen and was sent whole.
    assert!(out.contains("kept=True"), "{out}");
    assert!(out.contains("said='MSG tty half typed line'"), "{out}");
    // No prompt after leaving; the end line on its own row.
    assert!(out.contains("clean_end=True"), "{out}");
    assert!(out.contains("left='LEAVE tty'"), "{out}");
    assert!(out.contains("exit=130"), "{out}");
    assert!(out.contains("receiver_gone=True"), "{out}");
    let events = stop(server);
    let quit = infos(&events, "request")
        .into_iter()
        .find(|e| e["value"]["kind"] == "Q" && e["value"]["name"] == "tty");
    assert!(quit.is_some(), "{}", dump(&events));
}

#[test]
fn end_of_input_on_the_server_console_ends_only_the_console() {
    let mut server = server();
    drop(server.demo.stdin.take());
    server
        .demo
        .wait_for("the console's end", |e| e["key"] == "console_closed");
    server
        .demo
        .wait_for("the console reaped", |e| e["key"] == "console_reaped");
    assert_gone(server.console, "the console");
    assert_no_zombies(server.demo.pid());
    // The kernel's word on it, read from /proc after the reap.
    let gone = server.demo.wait_for("the console's /proc line", |e| {
        e["event"] == "kernel"
            && e["fact"] == "process"
            && e["value"]["who"] == "the console process"
    });
    assert_eq!(gone["value"]["pid"], server.console);
    assert!(gone["value"]["state"].is_null(), "{gone}");
    // The server still serves.
    let out = peer(
        server.addr,
        &["send:L zed", "expect:OK", "send:Q zed", "expect:EXIT"],
    );
    assert!(out.ends_with("done\n"), "{out}");
    let events = stop_with(server, Signal::SIGTERM);
    let reaped = infos(&events, "console_reaped");
    assert_eq!(reaped[0]["value"]["exit_code"], 0);
    // Already reaped: no kill and no waitpid for it at the end.
    assert!(returns(&events, "kill").is_empty());
}

/// The server's standard input and error on a pseudo-terminal, for
/// `--step`: the test reads the `next: CALL` prompts and presses Enter.
struct Terminal {
    master: OwnedFd,
    screen: String,
    /// How many prompts have been read so far.
    prompts: usize,
}

impl Terminal {
    /// Wait for the next `--step` prompt; returns the call it names.
    fn next_pause(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut prompts = self.screen.split("next: ").skip(1);
            if let Some(prompt) = prompts.nth(self.prompts) {
                if let Some((call, _)) = prompt.split_once("   [Enter]") {
                    self.prompts += 1;
                    return call.to_string();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no --step prompt; screen: {}", self.screen);
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            if poll(&mut fds, PollTimeout::from(millis)).unwrap_or(0) > 0 {
                let mut chunk = [0u8; 4096];
                let count = nix::unistd::read(&self.master, &mut chunk).unwrap_or(0);
                self.screen
                    .push_str(&String::from_utf8_lossy(&chunk[..count]));
            }
        }
    }

    /// Press Enter: run the call the step is paused on.
    fn enter(&self) {
        nix::unistd::write(&self.master, b"\r").expect("write to the terminal");
    }
}

/// A process's state letter from /proc/PID/stat; None once it is gone.
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Is `signal` set in this field of /proc/PID/status (a hex mask such as
/// `SigBlk` or `ShdPnd`)?
fn signal_in(pid: i32, field: &str, signal: Signal) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).expect("a hex mask"))
        .expect("the field");
    mask & (1 << (signal as i32 - 1)) != 0
}

/// The race that ppoll() closes, made certain with `--step`: the receive
/// loop is held at its pause just before it waits, after it has looked for
/// a reaped console, and the console ends right then. Only after that does
/// the wait begin. A loop that waited in a plain recvmsg() here would have
/// let the handler run during the pause, and would then sleep until the
/// next datagram, never telling of the console. With SIGCHLD blocked, the
/// signal waits, pending, and ppoll() lets it in and returns EINTR at once.
#[test]
fn a_console_that_ends_just_before_the_loop_waits_is_still_reported() {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut cmd = netlab();
    cmd.args([
        "--json",
        "--step",
        "chatroom",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ])
    .stdin(Stdio::from(pty.slave.try_clone().expect("dup")))
    .stderr(Stdio::from(pty.slave));
    let mut demo = Demo::spawn_keeping_stdio(cmd);
    let mut terminal = Terminal {
        master: pty.master,
        screen: String::new(),
        prompts: 0,
    };
    // Step up to and through fork().
    loop {
        let call = terminal.next_pause();
        terminal.enter();
        if call.starts_with("fork") {
            break;
        }
    }
    let processes = demo.wait_for("the process structure", |e| {
        e["event"] == "info" && e["key"] == "processes"
    });
    let console = processes["value"]["console"].as_i64().expect("console pid") as i32;
    let server = demo.pid();
    // The console reads the same terminal: stop it, so that every key
    // from now on goes to the receive loop's --step pauses.
    kill(console, Signal::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while state_of(console) != Some('T') {
        assert!(Instant::now() < deadline, "the console did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Step until the loop is paused just before its wait.
    let waits_in = loop {
        let call = terminal.next_pause();
        if call.starts_with("ppoll(") || call.starts_with("recvmsg(") {
            break call;
        }
        terminal.enter();
    };
    // The console ends now, while the loop is between its look and its wait.
    kill(console, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(state_of(console), Some('Z') | None) {
        assert!(Instant::now() < deadline, "the console did not end");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Time for a handler that could run now to run.
    std::thread::sleep(Duration::from_millis(100));
    let zombie = state_of(console) == Some('Z');
    let blocked = signal_in(server, "SigBlk", Signal::SIGCHLD);
    let pending = signal_in(server, "ShdPnd", Signal::SIGCHLD);
    // Run the wait: the console's end must be told at once, not at the next
    // datagram (none is sent).
    terminal.enter();
    let reaped = demo.wait_for("the console reaped", |e| e["key"] == "console_reaped");
    assert_eq!(reaped["value"]["pid"], console);
    assert_eq!(reaped["value"]["signal"], "SIGKILL");
    assert!(
        waits_in.starts_with("ppoll("),
        "the loop waits in {waits_in}"
    );
    // The kernel's view during the pause: SIGCHLD blocked in the loop's
    // thread and pending for the process, the console an unreaped zombie.
    assert!(
        blocked && pending && zombie,
        "blocked {blocked}, pending {pending}, zombie {zombie}"
    );
    let interrupted = returns(&demo.seen, "ppoll")
        .into_iter()
        .any(|e| e["errno"] == "EINTR");
    assert!(interrupted, "{}", dump(&demo.seen));
    kill(server, Signal::SIGTERM);
    demo.wait_for("the end", |e| e["event"] == "end");
    let (status, _, _) = demo.finish();
    assert_eq!(status.code(), Some(143));
    assert_gone(console, "the console");
    assert_gone(server, "the server");
    drop(terminal);
}

#[test]
fn sigint_on_the_server_tells_every_user_and_reaps_the_console() {
    let server = server();
    let console = server.console;
    let mut ana = client("ana", server.addr);
    let events = stop(server);
    assert_eq!(infos(&events, "going_down")[0]["value"]["users"], 1);
    // The console is stopped with SIGTERM and reaped by its pid.
    assert!(returns(&events, "kill").len() == 1, "{}", dump(&events));
    let reaped = format!("pid {console} was killed by SIGTERM");
    assert!(
        returns(&events, "waitpid")
            .iter()
            .any(|e| e["result"] == reaped.as_str()),
        "{}",
        dump(&events)
    );
    let children = facts(&events, "children");
    assert_eq!(
        children.last().expect("children")["value"]["pids"],
        serde_json::json!([])
    );
    // The client hears DOWN, and both of its processes end.
    wait_line(&mut ana.demo, "* the server is shutting down");
    let receiver = ana.receiver;
    let pid = ana.demo.pid();
    let (status, events, stderr) = ana.demo.finish();
    assert!(status.success(), "{status} {stderr}");
    assert_eq!(infos(&events, "server_down").len(), 1);
    assert!(returns(&events, "sendto").len() == 1, "no Q after DOWN");
    assert_gone(receiver, "the receiver");
    assert_gone(pid, "the client");
}

#[test]
fn a_flood_of_bad_datagrams_is_summarised_and_survived() {
    let server = server();
    let out = peer(
        server.addr,
        &[
            "send:L zed",
            "expect:OK",
            "sock:1",
            "flood:2000",
            // The flood fills the server's receive buffer, and the kernel
            // drops what does not fit: the login may need to be repeated.
            "sock:2",
            "ask:L yan|OK",
            "sock:0",
            "expect:JOIN yan",
        ],
    );
    // yan's login worked and zed still hears: the users were kept.
    assert!(out.ends_with("done\n"), "{out}");
    let events = stop(server);
    // The narration did not print 2000 refusals: the throttle counted most
    // of them in once-a-second summaries instead.
    let shown = infos(&events, "refused").len() as u64;
    let counted: u64 = events
        .iter()
        .filter(|e| e["event"] == "summary")
        .filter_map(|e| e["counters"]["refused"].as_u64())
        .sum();
    assert!(counted > 0, "no summary counted refusals");
    assert!(shown < 200, "{shown} refusals narrated one by one");
    assert!(shown + counted >= 100, "shown {shown}, counted {counted}");
}

#[test]
fn logins_and_quits_during_a_flood_are_narrated_and_the_summary_comes_on_time() {
    let mut server = server();
    let out = peer(
        server.addr,
        &[
            "send:L fl",
            "expect:OK",
            "flood:2000",
            "sock:1",
            "ask:L rcv|OK",
            "ask:Q rcv|EXIT",
            "sock:0",
            "ask:Q fl|EXIT",
        ],
    );
    assert!(out.ends_with("done\n"), "{out}");
    // Both quits and the emptied users table are narrated, throttle or not.
    let empty = server.demo.wait_for("the users table, empty", |e| {
        e["key"] == "users" && e["value"]["count"] == 0
    });
    assert_eq!(empty["value"]["users"], serde_json::json!({}));
    // Nothing more is sent; the summary of the flood still comes, within
    // about a second of quiet (ppoll's timeout), not at the next datagram.
    let quiet_since = Instant::now();
    server
        .demo
        .wait_for("the flood's summary", |e| e["event"] == "summary");
    assert!(quiet_since.elapsed() < Duration::from_secs(4));
    let loop_pid = server.demo.pid();
    let events = stop(server);
    for name in ["fl", "rcv"] {
        assert!(
            infos(&events, "request")
                .iter()
                .any(|e| e["value"]["kind"] == "Q" && e["value"]["name"] == name),
            "the quit of {name} was not narrated"
        );
    }
    // A reply is never shown without the request that caused it: the
    // call before each shown sendto is a recvmsg (or another sendto of
    // the same request's fan-out), never a poll or nothing.
    let of_loop: Vec<Value> = events
        .iter()
        .filter(|e| e["pid"] == loop_pid)
        .cloned()
        .collect();
    let shown = calls(&of_loop);
    for (i, call) in shown.iter().enumerate() {
        if call == "sendto" {
            let before = shown[..i].iter().rev().find(|c| *c != "sendto");
            assert!(
                matches!(before.map(String::as_str), Some("recvmsg") | None),
                "sendto after {before:?}"
            );
        }
    }
}

#[test]
fn when_one_client_process_dies_the_other_ends_too() {
    let server = server();
    // The receiver killed: the sender hears SIGCHLD, leaves properly
    // (Q, and it waits for EXIT itself), and exits.
    let mut ana = client("ana", server.addr);
    kill(ana.receiver, Signal::SIGKILL);
    let ended = ana
        .demo
        .wait_for("the receiver's end", |e| e["key"] == "receiver_ended");
    assert_eq!(ended["value"]["signal"], "SIGKILL");
    let pid = ana.demo.pid();
    let (status, events, stderr) = ana.demo.finish();
    // Said, and not a success: the user did not choose to leave.
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was killed by SIGKILL; the sender left the room"),
        "{stderr}"
    );
    assert_eq!(infos(&events, "left").len(), 1, "{}", dump(&events));
    assert_gone(pid, "the sender");

    // The sender killed (SIGKILL: no handler runs, nothing is cleaned up):
    // the kernel sends the receiver SIGTERM (PR_SET_PDEATHSIG).
    let bo = client("bo", server.addr);
    kill(bo.demo.pid(), Signal::SIGKILL);
    assert_not_running(bo.receiver, "bo's receiver");
    drop(bo);
    stop(server);
}

fn kill(pid: i32, signal: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("kill");
}

/// The process has ended: gone from /proc, or a zombie waiting for the
/// process that adopted it (which is not ours to reap).
fn assert_not_running(pid: i32, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
        if state.is_none() || state == Some("Z") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} (pid {pid}) still runs: {stat}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How a stand-in server misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Fake {
    /// No answer to `C` or `W`, as a server that was killed.
    Silent,
    /// `ERR unknown name` to `C` and `W`, as a restarted server.
    Forgets,
    /// No answer to `Q` either (and the fake never ends by itself).
    NoExit,
    /// A 3000-byte datagram in answer to `W`.
    Oversized,
}

/// A stand-in for a chat server, on a Rust UDP socket: it answers `L` with
/// OK and `Q` with EXIT (then ends), and `C` and `W` as `fake` says.
/// Returns its address and, at the end, every datagram it received.
fn fake_server(fake: Fake) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let handle = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let big = format!("USERS {}", "x".repeat(2994));
        while let Ok((length, from)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..length]).into_owned();
            let reply = match (text.split(' ').next(), fake) {
                (Some("L"), _) => Some("OK"),
                (Some("Q"), Fake::NoExit) => None,
                (Some("Q"), _) => Some("EXIT"),
                (Some("C" | "W"), Fake::Forgets) => Some("ERR unknown name"),
                (Some("W"), Fake::Oversized) => Some(big.as_str()),
                _ => None,
            };
            if let Some(reply) = reply {
                let _ = sock.send_to(reply.as_bytes(), from);
            }
            let quit = text.starts_with("Q ") && fake != Fake::NoExit;
            got.push(text);
            if quit {
                break;
            }
        }
        got
    });
    (addr, handle)
}

#[test]
fn who_waits_with_a_timeout_when_the_server_is_gone() {
    let (addr, fake) = fake_server(Fake::Silent);
    let mut ana = start_client("ana", addr, &["--timeout", "200", "--tries", "2"]);
    wait_keyboard(&mut ana);
    ana.send_stdin("/who\n");
    let warning = ana.wait_for("the /who warning", |e| e["event"] == "warning");
    assert!(
        warning["text"]
            .as_str()
            .is_some_and(|t| t.contains("no answer to /who") && t.contains("after 2 tries")),
        "{warning}"
    );
    // The client goes on: /quit still leaves properly.
    ana.send_stdin("/quit\n");
    let (status, _, _) = ana.finish();
    assert_eq!(status.code(), Some(0));
    let got = fake.join().expect("fake server");
    assert_eq!(got, ["L ana", "W ana", "W ana", "Q ana"]);
}

#[test]
fn a_client_the_server_no_longer_knows_ends_with_a_clear_message() {
    let (addr, fake) = fake_server(Fake::Forgets);
    let mut ana = start_client("ana", addr, &["--timeout", "300"]);
    wait_keyboard(&mut ana);
    ana.send_stdin("hello\n");
    ana.wait_for("the receiver's end", |e| e["key"] == "receiver_ended");
    let (status, events, stderr) = ana.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no longer knows you as `ana`"), "{stderr}");
    assert!(
        lines(&events)
            .iter()
            .any(|l| l.contains("! refused: unknown name")),
        "{events:?}"
    );
    // No Q is sent to a server that does not know us.
    assert!(returns(&events, "sendto").len() == 2, "{events:?}");
    drop(fake);
}

#[test]
fn port_0_is_refused_as_a_destination() {
    let (status, _, stderr) = Demo::start(&[
        "chatroom",
        "client",
        "--name",
        "ana",
        "--server",
        "127.0.0.1:0",
    ])
    .finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("`127.0.0.1:0`: port 0 cannot be a destination"),
        "{stderr}"
    );
}

#[test]
fn a_datagram_longer_than_the_protocol_allows_is_reported_by_its_real_length() {
    let (addr, fake) = fake_server(Fake::Oversized);
    let mut ana = start_client("ana", addr, &["--timeout", "200", "--tries", "1"]);
    wait_keyboard(&mut ana);
    ana.send_stdin("/who\n");
    let warning = ana.wait_for("the oversized warning", |e| {
        e["event"] == "warning"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("a datagram of 3000 bytes"))
    });
    assert!(warning["text"]
        .as_str()
        .is_some_and(|t| t.contains("MSG_TRUNC")));
    ana.send_stdin("/quit\n");
    let (status, events, _) = ana.finish();
    assert_eq!(status.code(), Some(0));
    // recvmsg() returned the real length, 3000, not the 1024 it kept.
    assert!(returns(&events, "recvmsg")
        .iter()
        .any(|e| e["value"] == 3000));
    fake.join().expect("fake server");
}

#[test]
fn a_quit_that_never_gets_exit_ends_with_status_1() {
    let (addr, _fake) = fake_server(Fake::NoExit);
    let mut ana = start_client("ana", addr, &["--timeout", "100", "--tries", "2"]);
    wait_keyboard(&mut ana);
    ana.send_stdin("/quit\n");
    let (status, events, stderr) = ana.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no EXIT from"), "{stderr}");
    // The receiver was still ended and reaped.
    assert_eq!(infos(&events, "receiver_ended").len(), 1);
}

#[test]
fn a_wildcard_address_is_refused_as_a_destination() {
    for server in ["0.0.0.0:8888", "[::]:8888"] {
        let (status, _, stderr) =
            Demo::start(&["chatroom", "client", "--name", "ana", "--server", server]).finish();
        assert_eq!(status.code(), Some(1), "{server}");
        assert!(
            stderr.contains("a wildcard address cannot be a destination")
                && stderr.contains("use 127.0.0.1:PORT"),
            "{stderr}"
        );
    }
}

/// Run `command` in a pseudo-terminal (script(1)), type `keys` once it has
/// reached its first pause, and return everything it printed.
fn in_terminal(command: &str, keys: &str) -> String {
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) must be installed");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        for key in keys.chars() {
            write!(stdin, "{key}").unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            // Killing script hangs up everything in its terminal.
            let _ = child.kill();
            let _ = child.wait();
            panic!("the stepped run did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn q_at_a_step_pause_before_login_sends_nothing() {
    let bin = env!("CARGO_BIN_EXE_netlab");
    // Nobody listens: nothing may be sent anyway. Enter runs socket(), q at
    // the pause before the L.
    let screen = in_terminal(
        &format!("'{bin}' --step --color never chatroom client --name st6 --server 127.0.0.1:9; echo \"exit=$?\""),
        "\nq",
    );
    assert!(screen.contains("next: sendto(fd 3, \"L st6\""), "{screen}");
    assert!(screen.contains("sendto() is not made"), "{screen}");
    assert!(!screen.contains("-> 5 bytes"), "{screen}");
    assert!(!screen.contains("poll("), "{screen}");
    assert!(screen.contains("exit=130"), "{screen}");
}

#[test]
fn q_at_a_step_pause_after_login_leaves_with_q() {
    let bin = env!("CARGO_BIN_EXE_netlab");
    let mut server = server();
    // socket, sendto L, poll: then q at the pause before recvmsg (the OK is
    // waiting): the client takes the OK, and leaves with Q without forking.
    let screen = in_terminal(
        &format!(
            "'{bin}' --step --color never chatroom client --name st6 --server {}; echo \"exit=$?\"",
            server.addr
        ),
        "\n\n\nq",
    );
    assert!(screen.contains("\"Q st6\""), "{screen}");
    assert!(!screen.contains("fork("), "{screen}");
    // Logged in, then left: the room is empty again.
    wait_users(&mut server, 0);
    let events = stop(server);
    assert!(
        events
            .iter()
            .any(|e| e["key"] == "request" && e["value"]["kind"] == "Q"),
        "the server saw the Q: {events:?}"
    );
}
