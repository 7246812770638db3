//! io-demo: each scene's system calls, and the kernel facts it reports.

mod common;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Run `netlab --json io-demo ARGS...` to the end; it must succeed.
fn run(args: &[&str]) -> Vec<Value> {
    let mut full = vec!["io-demo"];
    full.extend_from_slice(args);
    let demo = Demo::start(&full);
    let pid = demo.pid();
    let (status, events, stderr) = demo.finish();
    assert!(
        status.success(),
        "exit {status}; stderr: {stderr}\n{}",
        dump(&events)
    );
    assert_no_children(pid);
    events
}

fn f64_of(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// The thread states the watcher read from /proc while the main thread waited.
fn watched_states(events: &[Value]) -> Vec<String> {
    facts(events, "thread_state")
        .iter()
        .map(|e| e["value"]["state"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn blocking_recv_sleeps_in_the_kernel_and_costs_no_cpu() {
    let events = run(&["--mode", "blocking", "--delay", "0.7"]);
    assert!(
        in_order(
            &calls(&events),
            &["socket", "bind", "listen", "connect", "accept", "recv", "close"]
        ),
        "{:?}",
        calls(&events)
    );
    // The watcher saw the blocked thread asleep, read from /proc.
    let states = watched_states(&events);
    assert!(
        !states.is_empty() && states.iter().all(|s| s == "S"),
        "{states:?}"
    );
    let recv = returns(&events, "recv");
    assert_eq!(recv[0]["value"], 20, "{}", recv[0]);
    // Waiting cost (almost) no CPU: getrusage of the waiting thread.
    let cpu = &facts(&events, "cpu_time")[0]["value"];
    assert!(f64_of(&cpu["wall_ms"]) >= 650.0, "{cpu}");
    assert!(
        f64_of(&cpu["user_ms"]) + f64_of(&cpu["system_ms"]) < 50.0,
        "{cpu}"
    );
}

#[test]
fn nonblocking_recv_gives_eagain_and_a_spinning_loop_burns_cpu_unlike_poll() {
    let events = run(&["--mode", "nonblocking", "--delay", "0.7"]);
    let calls = calls(&events);
    assert!(
        in_order(&calls, &["fcntl", "fcntl", "recv", "recv", "poll", "recv"]),
        "{calls:?}"
    );
    let recv = returns(&events, "recv");
    assert_eq!(recv[0]["errno"], "EAGAIN", "the first recv returns at once");
    assert_eq!(recv[1]["value"], 20, "the loop ends with the data");
    let spin = &infos(&events, "spin")[0]["value"];
    assert!(spin["eagain"].as_u64().unwrap() > 1000, "{spin}");

    let cpu = facts(&events, "cpu_time");
    assert_eq!(cpu.len(), 2, "one reading for the loop, one for poll");
    let (looping, polling) = (&cpu[0]["value"], &cpu[1]["value"]);
    assert_eq!(looping["what"], "the spinning loop");
    assert!(f64_of(&looping["cpu_percent"]) > 20.0, "{looping}");
    assert!(
        f64_of(&polling["user_ms"]) + f64_of(&polling["system_ms"]) < 50.0,
        "{polling}"
    );
    // While spinning the thread is running (R); in poll() it sleeps (S).
    let states = watched_states(&events);
    assert!(states.first().is_some_and(|s| s == "R"), "{states:?}");
    assert!(states.last().is_some_and(|s| s == "S"), "{states:?}");
}

#[test]
fn a_receive_timeout_gives_up_on_time_then_data_within_it_arrives() {
    let events = run(&["--mode", "timeout", "--timeout", "0.3"]);
    let stored = &facts(&events, "rcvtimeo")[0]["value"]["ms"];
    assert!((f64_of(stored) - 300.0).abs() < 20.0, "{stored}");
    let recv = returns(&events, "recv");
    assert_eq!(recv[0]["errno"], "EAGAIN");
    let timed_out = &infos(&events, "timed_out")[0]["value"];
    let elapsed = f64_of(&timed_out["elapsed_ms"]);
    assert!((290.0..800.0).contains(&elapsed), "{timed_out}");
    // The peer sends 1.5 timeouts in: the second recv gets it in time.
    assert_eq!(recv[1]["value"], 20);
    let received = &infos(&events, "received")[0]["value"];
    assert!(f64_of(&received["elapsed_ms"]) < 300.0, "{received}");
}

#[test]
fn a_nonblocking_connect_is_in_progress_then_so_error_tells_success_or_refusal() {
    let events = run(&["--mode", "connect"]);
    let connects = returns(&events, "connect");
    assert_eq!(connects.len(), 2);
    for connect in &connects {
        assert_eq!(connect["errno"], "EINPROGRESS", "{connect}");
    }
    let verdicts = facts(&events, "so_error");
    assert_eq!(verdicts[0]["value"]["code"], 0, "the listening port");
    assert_eq!(
        verdicts[1]["value"]["errno"], "ECONNREFUSED",
        "the closed port"
    );
    let results = infos(&events, "connect_result");
    assert_eq!(results[0]["value"]["connected"], true);
    assert_eq!(results[1]["value"]["connected"], false);
    let polls = returns(&events, "poll");
    assert!(
        polls[1]["result"].as_str().unwrap().contains("POLLERR"),
        "{}",
        polls[1]
    );
}

#[test]
fn a_nonblocking_send_is_short_then_eagain_and_every_byte_arrives_in_the_end() {
    let events = run(&["--mode", "short-write"]);
    let sends = returns(&events, "send");
    let first = sends[0]["value"].as_i64().unwrap();
    assert!(
        first > 0 && first < 8 << 20,
        "a partial count: {}",
        sends[0]
    );
    // More short writes may follow while room opens up; then EAGAIN.
    let eagain = sends.iter().position(|s| s["errno"] == "EAGAIN");
    assert!(eagain.is_some_and(|at| at >= 1), "{}", dump(&events));
    let queued = &facts(&events, "send_queue")[0]["value"]["bytes"];
    assert!(queued.as_u64().unwrap() > 0, "{queued}");
    let tcp = &facts(&events, "tcp_queues")[0]["value"];
    assert!(tcp["tx_queue"].as_u64().unwrap() > 0, "{tcp}");
    let received = &infos(&events, "peer_received")[0]["value"];
    assert_eq!(received["bytes"], 8 << 20);
}

#[test]
fn so_sndbuf_is_doubled_by_the_kernel() {
    let events = run(&[
        "--mode",
        "short-write",
        "--sndbuf",
        "8192",
        "--bytes",
        "1000000",
    ]);
    assert_eq!(facts(&events, "sndbuf")[0]["value"]["bytes"], 16384);
    let first = returns(&events, "send")[0]["value"].as_i64().unwrap();
    assert!(first < 1_000_000, "a small buffer takes less: {first}");
    assert_eq!(
        infos(&events, "peer_received")[0]["value"]["bytes"],
        1_000_000
    );
}

#[test]
fn ctrl_c_interrupts_a_blocked_recv_and_the_demo_ends_cleanly() {
    let mut demo = Demo::start(&["io-demo", "--mode", "blocking", "--delay", "30"]);
    demo.wait_for_call("recv", 1);
    let pid = demo.pid();
    let started = std::time::Instant::now();
    let (status, events, _) = demo.signal(Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "{}", dump(&events));
    assert!(
        started.elapsed().as_secs() < 5,
        "the peer's 30 s pause must not delay the exit"
    );
    assert_eq!(returns(&events, "recv")[0]["errno"], "EINTR");
    assert_no_children(pid);
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["io-demo", "--timeout", "0"][..],
        &["io-demo", "--mode", "sideways"],
        &["io-demo", "--bytes", "0"],
        &["io-demo", "--delay", "-1"],
    ] {
        let output = netlab().args(args).output().expect("run netlab");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_flag_given_to_a_scene_that_does_not_use_it_is_a_usage_error() {
    for (args, flag) in [
        (
            &["io-demo", "--mode", "connect", "--bytes", "1000"][..],
            "--bytes",
        ),
        (
            &["io-demo", "--mode", "timeout", "--sndbuf", "8192"],
            "--sndbuf",
        ),
        (&["io-demo", "--mode", "timeout", "--delay", "1"], "--delay"),
        (
            &["io-demo", "--mode", "short-write", "--delay", "1"],
            "--delay",
        ),
        (
            &["io-demo", "--mode", "nonblocking", "--timeout", "1"],
            "--timeout",
        ),
        // The default scene is blocking, which sends no big buffer.
        (&["io-demo", "--bytes", "1000"], "--bytes"),
    ] {
        let output = netlab().args(args).output().expect("run netlab");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("error: {flag} is only used by --mode")),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("Usage: netlab io-demo"), "{stderr}");
        // Refused before anything ran: no narration at all.
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn ctrl_c_during_the_nonblocking_spin_shows_the_real_eagain() {
    // The peer sends only after 100 s, so the loop is still spinning on
    // EAGAIN when SIGINT arrives: the last call returned EAGAIN, not EINTR.
    let mut demo = Demo::start(&["io-demo", "--mode", "nonblocking", "--delay", "100"]);
    demo.wait_for_call("recv", 2);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (status, events, _) = demo.signal(Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "{}", dump(&events));
    let recvs = returns(&events, "recv");
    assert_eq!(recvs.len(), 2, "{}", dump(&events));
    assert_eq!(recvs[1]["errno"], "EAGAIN", "{}", dump(&events));
    let spin = &infos(&events, "spin")[0]["value"];
    assert_eq!(spin["stopped"], true);
    assert!(spin["eagain"].as_u64().unwrap() > 0, "{spin}");
}
