//! `netlab bench`: the load generator against real servers (Python, C,
//! netlab's own), a server that corrupts echoes, the loopback rule, and
//! `bench mux` with its child servers reaped.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A server from outside netlab (Python or C) that prints
/// "listening on HOST:PORT" first; stopped by its pid when dropped.
struct Peer {
    child: Child,
    port: u16,
}

impl Peer {
    fn start(mut command: Command) -> Peer {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Peer { child, port }
    }

    fn python(extra: &[&str]) -> Peer {
        let mut command = Command::new("python3");
        command
            .arg(format!(
                "{}/tests/py/echo_server.py",
                env!("CARGO_MANIFEST_DIR")
            ))
            .args(extra);
        Peer::start(command)
    }

    /// bench/c/epoll_echo.c, compiled for this test run.
    fn c_server() -> Peer {
        let binary = format!("{}/epoll_echo", env!("CARGO_TARGET_TMPDIR"));
        let source = format!("{}/bench/c/epoll_echo.c", env!("CARGO_MANIFEST_DIR"));
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o", &binary, &source])
            .status()
            .expect("cc must be installed");
        assert!(status.success(), "the C server does not compile");
        let mut command = Command::new(binary);
        command.args(["127.0.0.1", "0"]);
        Peer::start(command)
    }

    fn pid(&self) -> i64 {
        i64::from(self.child.id())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The machine has two cores: two load generators at once would measure
/// each other, and a starved server misses a short run. Every test that
/// runs a load takes this lock first.
fn one_load_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOAD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOAD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Run `netlab --json ARGS` to the end: exit code and events.
fn run(args: &[&str]) -> (i32, Vec<Value>, String) {
    let (status, events, stderr) = Demo::start(args).finish();
    (status.code().unwrap_or(-1), events, stderr)
}

/// The value of the `info` event with this key.
fn info<'a>(events: &'a [Value], key: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "info" && e["key"] == key)
        .map(|e| &e["value"])
        .unwrap_or_else(|| panic!("no {key} event in:\n{}", dump(events)))
}

fn bench_echo(port: u16, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["bench", "echo", "--addr", &addr];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn a_python_server_with_hundreds_of_connections_and_no_error() {
    let _load = one_load_at_a_time();
    let server = Peer::python(&[]);
    let (code, events, stderr) = bench_echo(
        server.port,
        &["--conns", "100", "--idle", "200", "--secs", "0.5"],
    );
    assert_eq!(code, 0, "{stderr}\n{}", dump(&events));
    let trips = info(&events, "round_trips");
    assert!(trips["round_trips"].as_u64().unwrap_or(0) > 100, "{trips}");
    assert_eq!(trips["active"], 100);
    assert_eq!(trips["stalled"], 0);
    let errors = info(&events, "errors");
    assert_eq!(errors["total"], 0, "{errors}");
    assert_eq!(errors["idle"], 200);
    assert_eq!(errors["idle_lost"], 0);
    assert_eq!(info(&events, "idle_check")["checked"], 200);
    // The server's process was found through /proc by its listening port.
    let usage = info(&events, "server_usage");
    assert_eq!(usage["pids"], serde_json::json!([server.pid()]), "{usage}");
    assert!(usage["rss_kib"].as_u64().unwrap_or(0) > 0, "{usage}");
    let found = info(&events, "server_process");
    let name = found["names"][0].as_str().unwrap_or("");
    assert!(name.starts_with("python"), "{found}");
    assert!(usage["cpu_us_per_round_trip"].as_f64().is_some(), "{usage}");
    let latency = info(&events, "latency");
    assert!(latency["p50_us"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(latency["p99_us"].as_f64() >= latency["p50_us"].as_f64());
}

#[test]
fn hundreds_of_connections_through_epoll_demo_without_an_error() {
    let _load = one_load_at_a_time();
    let mut server = Demo::start(&[
        "--quiet",
        "epoll-demo",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]);
    let addr = server.listening_addr();
    let (code, events, stderr) = bench_echo(
        addr.port(),
        &["--conns", "100", "--idle", "300", "--secs", "0.5"],
    );
    assert_eq!(code, 0, "{stderr}\n{}", dump(&events));
    assert_eq!(info(&events, "errors")["total"], 0);
    assert_eq!(info(&events, "errors")["idle_lost"], 0);
    assert_eq!(info(&events, "round_trips")["stalled"], 0);
    let usage = info(&events, "server_usage");
    assert_eq!(usage["pids"], serde_json::json!([server.pid()]), "{usage}");
    let (status, _, _) = server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(status.code(), Some(143));
}

#[test]
fn the_c_yardstick_echoes_every_byte_also_in_big_messages() {
    let _load = one_load_at_a_time();
    let server = Peer::c_server();
    let (code, events, stderr) = bench_echo(
        server.port,
        &["--conns", "300", "--idle", "100", "--secs", "0.5"],
    );
    assert_eq!(code, 0, "{stderr}\n{}", dump(&events));
    assert_eq!(info(&events, "errors")["total"], 0);
    assert_eq!(info(&events, "round_trips")["stalled"], 0);
    // 300 kB messages through a 4 kB buffer: partial writes on both sides.
    let (code, events, stderr) = bench_echo(
        server.port,
        &["--conns", "4", "--size", "300000", "--secs", "0.5"],
    );
    assert_eq!(code, 0, "{stderr}\n{}", dump(&events));
    assert!(
        info(&events, "round_trips")["round_trips"]
            .as_u64()
            .unwrap_or(0)
            >= 4
    );
}

#[test]
fn a_server_that_corrupts_echoes_is_caught() {
    let _load = one_load_at_a_time();
    let server = Peer::python(&["--corrupt"]);
    let (code, events, stderr) = bench_echo(server.port, &["--conns", "5", "--secs", "0.5"]);
    assert_eq!(code, 1, "{}", dump(&events));
    let errors = info(&events, "errors");
    assert!(
        errors["kinds"]["echo mismatch"].as_u64().unwrap_or(0) >= 1,
        "{errors}"
    );
    assert!(stderr.contains("echo mismatch"), "{stderr}");
    let last = events.last().expect("events");
    assert_eq!(last["event"], "end");
    assert_eq!(last["exit_code"], 1);
}

#[test]
fn an_iterative_server_leaves_the_other_connections_waiting() {
    let _load = one_load_at_a_time();
    let (demo, addr) = tcp_server(&[]);
    let port = addr.port().to_string();
    let target = format!("127.0.0.1:{port}");
    let (code, events, stderr) = run(&[
        "bench", "echo", "--addr", &target, "--conns", "3", "--secs", "0.5",
    ]);
    drop(demo);
    assert_eq!(code, 0, "{stderr}\n{}", dump(&events));
    let trips = info(&events, "round_trips");
    assert_eq!(trips["stalled"], 2, "{trips}");
    assert!(events.iter().any(|e| e["event"] == "warning"
        && e["text"]
            .as_str()
            .unwrap_or("")
            .contains("never got an echo")));
}

#[test]
fn nothing_listening_is_a_clear_error() {
    let _load = one_load_at_a_time();
    let closed = closed_port();
    let (code, events, stderr) = bench_echo(closed.port, &["--conns", "2", "--secs", "1"]);
    assert_eq!(code, 1, "{}", dump(&events));
    assert!(
        stderr.contains("no connection to") && stderr.contains("ECONNREFUSED"),
        "{stderr}"
    );
}

#[test]
fn only_loopback_targets_unless_allowed() {
    // Refused before any socket is made: no address is resolved or contacted.
    for addr in [
        "10.0.0.1:8888",
        "192.168.1.1:80",
        "[2001:db8::1]:80",
        "example.com:80",
    ] {
        let (code, events, stderr) = run(&["bench", "echo", "--addr", addr, "--secs", "1"]);
        assert_eq!(code, 1, "{addr}: {}", dump(&events));
        assert!(
            stderr.contains("not a loopback address"),
            "{addr}: {stderr}"
        );
        assert!(stderr.contains("--allow-remote"), "{stderr}");
        assert!(
            !events.iter().any(|e| e["event"] == "call"),
            "{addr}: no system call may be made: {}",
            dump(&events)
        );
    }
    for bad in ["127.0.0.1", "127.0.0.1:notaport", ":8888"] {
        let (code, _, stderr) = run(&["bench", "echo", "--addr", bad]);
        assert_eq!(code, 1, "{bad}");
        assert!(stderr.contains("HOST:PORT"), "{bad}: {stderr}");
    }
    let (code, _, _) = run(&["bench", "echo", "--addr", "127.0.0.1:1", "--secs", "0"]);
    assert_eq!(code, 2, "--secs 0 is a usage error");
}

#[test]
fn ctrl_c_ends_a_run_with_its_results_so_far() {
    let _load = one_load_at_a_time();
    let server = Peer::python(&[]);
    let addr = format!("127.0.0.1:{}", server.port);
    let mut demo = Demo::start(&[
        "bench", "echo", "--addr", &addr, "--conns", "10", "--secs", "30",
    ]);
    demo.wait_for("the load to start", |e| {
        e["event"] == "info" && e["key"] == "load"
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, events, _) = demo.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "{}", dump(&events));
    assert!(
        info(&events, "round_trips")["round_trips"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
}

/// Become a subreaper: an orphan our children leave behind is then
/// re-parented to this test process instead of init, and can be found.
fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(result, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
}

/// The pids of the servers `bench mux` started, from its events.
fn started_servers(events: &[Value]) -> Vec<i32> {
    events
        .iter()
        .filter(|e| e["event"] == "info" && e["key"] == "server_started")
        .filter_map(|e| e["value"]["pid"].as_i64())
        .map(|pid| pid as i32)
        .collect()
}

fn assert_gone(pids: &[i32]) {
    for pid in pids {
        // A zombie would still have a /proc entry (it would be re-parented
        // to us, the subreaper, and nobody here waits for it).
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_err(),
            "server pid {pid} is still there: {:?}",
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
        );
    }
}

#[test]
fn bench_mux_compares_the_three_servers_and_reaps_them() {
    let _load = one_load_at_a_time();
    become_subreaper();
    let dir = env!("CARGO_TARGET_TMPDIR");
    let csv = format!("{dir}/mux.csv");
    let svg = format!("{dir}/mux.svg");
    // 5 active + 1010 idle connections would take select-demo's
    // descriptors up to FD_SETSIZE: that point is shown, not run. This run
    // takes a few seconds; it is not given the 10 s limit of one wait.
    let output = netlab()
        .args([
            "--json", "bench", "mux", "--idle", "0,1010", "--secs", "0.5", "--conns", "5",
        ])
        .args(["--csv", &csv, "--svg", &svg])
        .output()
        .expect("run netlab bench mux");
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON event"))
        .collect();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{}", dump(&events));
    let pids = started_servers(&events);
    assert_eq!(pids.len(), 5, "3 servers x 2 counts, less select at 1010");
    assert_gone(&pids);
    let rows: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "info" && e["key"] == "mux_row")
        .map(|e| &e["value"])
        .collect();
    assert_eq!(rows.len(), 6);
    for row in &rows {
        if row["server"] == "select-demo" && row["idle"] == 1010 {
            assert_eq!(row["status"], "not_possible");
        } else {
            assert_eq!(row["status"], "ok", "{row}");
            assert_eq!(row["errors"], 0, "{row}");
            assert!(
                row["server_cpu_us_per_round_trip"].as_f64().is_some(),
                "{row}"
            );
        }
    }
    let text = std::fs::read_to_string(&csv).expect("the CSV file");
    assert_eq!(text.lines().count(), 7, "{text}");
    assert!(text.contains("select-demo,1010,not_possible"));
    let image = std::fs::read_to_string(&svg).expect("the SVG file");
    // A point per measured run; a line where a server has two or more
    // (select-demo has one here); every server in the legend.
    assert_eq!(image.matches("<circle").count(), 5, "{image}");
    assert_eq!(image.matches("<polyline").count(), 2, "{image}");
    for server in ["select-demo", "poll-demo", "epoll-demo"] {
        assert!(image.contains(&format!(">{server}</text>")), "{server}");
    }
    let checked = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])",
            &svg,
        ])
        .status()
        .expect("python3");
    assert!(checked.success(), "the SVG is not well-formed XML");
}

#[test]
fn bench_mux_reaps_its_server_when_interrupted() {
    let _load = one_load_at_a_time();
    become_subreaper();
    let mut demo = Demo::start(&[
        "bench", "mux", "--idle", "0", "--secs", "30", "--conns", "2",
    ]);
    let started = demo.wait_for("a server", |e| {
        e["event"] == "info" && e["key"] == "server_started"
    });
    let pid = started["value"]["pid"].as_i64().expect("pid") as i32;
    std::thread::sleep(Duration::from_millis(300));
    let (status, events, _) = demo.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "{}", dump(&events));
    assert_eq!(
        started_servers(&events),
        vec![pid],
        "no server is started after Ctrl-C"
    );
    assert_gone(&[pid]);
}
