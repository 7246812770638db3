//! Shared test helpers: start the netlab binary with `--json`, read its
//! events as they come, and always stop it by its pid.
#![allow(dead_code)]

pub mod check;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn netlab() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netlab"));
    cmd.env_remove("NO_COLOR").env_remove("NETLAB_COLOR");
    cmd
}

/// A running demo whose stdout is parsed as JSON events.
pub struct Demo {
    child: Option<Child>,
    pub stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    /// Every event received so far, in order.
    pub seen: Vec<Value>,
    stderr: Option<JoinHandle<String>>,
}

impl Demo {
    /// Start `netlab --json ARGS...` with stdin piped.
    pub fn start(args: &[&str]) -> Demo {
        let mut cmd = netlab();
        cmd.arg("--json").args(args);
        Demo::spawn(cmd)
    }

    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|child| child.id() as i32)
            .unwrap_or(-1)
    }

    /// Wait for the first new event that matches, keeping every event seen.
    pub fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if matches(&event) {
                        return event;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "timed out waiting for {what}; events so far:\n{}",
                    dump(&self.seen)
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("netlab ended before {what}; events:\n{}", dump(&self.seen))
                }
            }
        }
    }

    /// The address the server announced with its `listening` event.
    pub fn listening_addr(&mut self) -> SocketAddr {
        let event = self.wait_for("the listening event", |e| {
            e["event"] == "info" && e["key"] == "listening"
        });
        event["value"]["addr"]
            .as_str()
            .expect("addr")
            .parse()
            .expect("a socket address")
    }

    /// Wait until the demo blocks in `call` for the `nth` time (1-based).
    pub fn wait_for_call(&mut self, call: &str, nth: usize) -> Value {
        let already = self.seen.iter().filter(|e| is_call(e, call)).count();
        let mut last = Value::Null;
        for _ in already..nth {
            last = self.wait_for(&format!("call {call}"), |e| is_call(e, call));
        }
        last
    }

    pub fn send_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(text.as_bytes())
            .expect("write to netlab's stdin");
        stdin.flush().expect("flush");
    }

    /// Wait for the process to exit by itself; returns its status, every
    /// event and its stderr.
    pub fn finish(mut self) -> (ExitStatus, Vec<Value>, String) {
        drop(self.stdin.take());
        let mut child = self.child.take().expect("child");
        let status = wait_with_deadline(&mut child, PATIENCE).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("netlab did not exit; events:\n{}", dump(&self.seen));
        });
        while let Ok(event) = self.events.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(event);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (status, std::mem::take(&mut self.seen), stderr)
    }

    /// Send a signal by pid, then wait for the exit.
    pub fn signal(self, signal: nix::sys::signal::Signal) -> (ExitStatus, Vec<Value>, String) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("signal netlab");
        self.finish()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // A failed test must not leave the server running: stop it by pid.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

pub fn is_call(event: &Value, call: &str) -> bool {
    event["event"] == "call" && event["call"] == call
}

/// The names of the calls made, in order.
pub fn calls(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "call")
        .filter_map(|e| e["call"].as_str().map(str::to_string))
        .collect()
}

/// Is `wanted` a subsequence of `calls` (in order, gaps allowed)?
pub fn in_order(calls: &[String], wanted: &[&str]) -> bool {
    let mut rest = calls.iter();
    wanted.iter().all(|name| rest.any(|call| call == name))
}

/// The `return` events of a call.
pub fn returns<'a>(events: &'a [Value], call: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "return" && e["call"] == call)
        .collect()
}

/// The kernel facts with this key.
pub fn facts<'a>(events: &'a [Value], fact: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "kernel" && e["fact"] == fact)
        .collect()
}

/// Every `info` event with this key.
pub fn infos<'a>(events: &'a [Value], key: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "info" && e["key"] == key)
        .collect()
}

pub fn dump(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Start `netlab tcp-server` on 127.0.0.1, port 0, and read where it listens.
pub fn tcp_server(extra: &[&str]) -> (Demo, SocketAddr) {
    let mut args = vec!["tcp-server", "--host", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    let mut demo = Demo::start(&args);
    let addr = demo.listening_addr();
    (demo, addr)
}

/// A port on 127.0.0.1 where nothing listens, reserved while the value
/// lives: the socket is bound but never listens, so a connection to it is
/// refused, and no other test's port-0 server can be given the same port.
pub struct ClosedPort {
    _socket: std::os::fd::OwnedFd,
    pub port: u16,
}

pub fn closed_port() -> ClosedPort {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    let socket = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    bind(socket.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
    let addr: SockaddrIn = getsockname(socket.as_raw_fd()).expect("getsockname");
    ClosedPort {
        _socket: socket,
        port: addr.port(),
    }
}

/// The state of a connection as an independent reader of /proc/net/tcp sees
/// it (the test does not trust netlab's own parser for this).
pub fn proc_tcp_state(local: SocketAddr, remote: SocketAddr) -> Option<String> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => String::new(),
    };
    let (want_local, want_remote) = (hex(local), hex(remote));
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&want_local.as_str())
            && fields.get(2) == Some(&want_remote.as_str()))
        .then(|| {
            match fields.get(3).copied() {
                Some("01") => "ESTABLISHED",
                Some("04") => "FIN_WAIT1",
                Some("05") => "FIN_WAIT2",
                Some("06") => "TIME_WAIT",
                Some("08") => "CLOSE_WAIT",
                Some("09") => "LAST_ACK",
                Some("0A") => "LISTEN",
                _ => "OTHER",
            }
            .to_string()
        })
    })
}

/// Run a Python stdlib script from tests/py with arguments; returns stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("python3 must be installed");
    assert!(
        output.status.success(),
        "{script} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// No process whose parent is `pid` is left (zombie or alive).
pub fn assert_no_children(pid: i32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(pid) {
            panic!(
                "process {} is still a child of {pid}: {stat}",
                entry.file_name().to_string_lossy()
            );
        }
    }
}

impl Demo {
    /// Run a command that prints netlab's JSON events, with stdin, stdout
    /// and stderr piped: `netlab --json ...` itself (see `Demo::start`), or
    /// behind a wrapper such as `ip netns exec NS`. A wrapper must exec
    /// netlab (as `ip netns exec` does), so that the pid is netlab's.
    pub fn spawn(mut cmd: Command) -> Demo {
        cmd.stdin(Stdio::piped()).stderr(Stdio::piped());
        Demo::spawn_keeping_stdio(cmd)
    }

    /// `spawn`, with the standard input and error that `cmd` already has
    /// (a pseudo-terminal, say); only standard output is always a pipe.
    pub fn spawn_keeping_stdio(mut cmd: Command) -> Demo {
        let mut child = cmd
            .env_remove("NO_COLOR")
            .env_remove("NETLAB_COLOR")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the command");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take();
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("not a JSON event ({err}): {line}"));
                if sender.send(event).is_err() {
                    break;
                }
            }
        });
        let stderr = stderr.map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })
        });
        let stdin = child.stdin.take();
        Demo {
            child: Some(child),
            stdin,
            events,
            seen: Vec::new(),
            stderr,
        }
    }
}
