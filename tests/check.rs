//! `netlab check`'s runner, whatever the exercise: starting the student's
//! program, waiting for it to listen, stopping it and everything it forked
//! (Ctrl-C and netlab's own death included), and the report's shape.
//! Each exercise's probes are tested in tests/check_*.rs.

mod common;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::check::{self, assert_gone, assert_nothing_left, output_lines, program_pid, state_of};
use common::{dump, infos, netlab, Demo};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Start `netlab --json check EXERCISE [FLAGS] -- python3 tests/py/SCRIPT {port}`.
fn start(exercise: &str, flags: &[&str], script: &str) -> Demo {
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    check::start(exercise, flags, &["python3", &path, "{port}"])
}

/// `start`, run to its end; then nothing the program started may be left
/// (see `common::check::assert_nothing_left`). Returns netlab's exit
/// status, its events and its standard error.
fn run(exercise: &str, flags: &[&str], script: &str) -> (ExitStatus, Vec<Value>, String) {
    let demo = start(exercise, flags, script);
    let netlab_pid = demo.pid();
    let (status, events, stderr) = demo.finish();
    assert_nothing_left(netlab_pid, program_pid(&events));
    (status, events, stderr)
}

#[test]
fn list_names_every_exercise_with_a_lesson_that_exists() {
    let (status, events, _) = Demo::start(&["check", "--list"]).finish();
    assert!(status.success());
    let exercises = infos(&events, "exercise");
    let names: Vec<&str> = exercises
        .iter()
        .filter_map(|e| e["value"]["name"].as_str())
        .collect();
    for wanted in [
        "tcp-echo",
        "tcp-concurrent",
        "tcp-client",
        "udp-echo",
        "framing",
        "http-static",
        "chatroom-server",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    for exercise in &exercises {
        let lesson = exercise["value"]["lesson"].as_str().expect("lesson");
        let read = netlab()
            .args(["lesson", lesson])
            .output()
            .expect("run netlab lesson");
        assert!(read.status.success(), "netlab lesson {lesson} failed");
        let probes = exercise["value"]["probes"].as_array().expect("probes");
        assert!(!probes.is_empty(), "{exercise}");
    }
    let human = netlab().args(["check", "--list"]).output().expect("run");
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("chatroom-server") && text.contains("lesson: netlab lesson udp"));
}

#[test]
fn a_missing_command_gets_an_example() {
    let out = netlab().args(["check", "tcp-echo"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("after `--`"), "{stderr}");
    assert!(
        stderr.contains("netlab check tcp-echo -- python3"),
        "{stderr}"
    );
}

#[test]
fn a_program_that_does_not_exist_is_named() {
    let (status, _, stderr) =
        Demo::start(&["check", "tcp-echo", "--", "/nonexistent/server", "{port}"]).finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("cannot start `/nonexistent/server`: no such program"),
        "{stderr}"
    );
}

#[test]
fn http_static_needs_root_in_the_command() {
    let (status, events, stderr) = start("http-static", &[], "check_silent.py").finish();
    assert_eq!(status.code(), Some(2), "a usage error");
    assert!(stderr.contains("needs {root}"), "{stderr}");
    assert!(infos(&events, "program").is_empty(), "nothing was started");
}

#[test]
fn a_program_that_exits_at_start_up_shows_its_output() {
    let (status, events, stderr) = run("tcp-echo", &[], "check_exits.py");
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("exited with status 3 before netlab saw it listening on port"),
        "{stderr}"
    );
    let lines = output_lines(&events);
    assert!(
        lines.iter().any(|l| l.contains("cannot read config.ini")),
        "stderr is in the output: {lines:?}"
    );
}

#[test]
fn a_program_on_another_port_is_told_which() {
    let started = Instant::now();
    let (status, _, stderr) = run("tcp-echo", &[], "check_wrong_port.py");
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("instead of port"), "{stderr}");
    assert!(stderr.contains("netlab check --port "), "{stderr}");
    // Found as soon as it listens, not at the end of --startup-timeout.
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[test]
fn a_second_port_opened_a_second_before_the_right_one_is_not_the_wrong_port() {
    let (status, events, stderr) = run("tcp-echo", &[], "check_admin_port.py");
    assert!(status.success(), "{stderr}\n{}", dump(&events));
    // A port the kernel chose (bind to port 0) is never taken for a wrong
    // one while the program was told its port: 2.5 s of loading pass.
    let (status, events, stderr) = run("tcp-echo", &[], "check_admin_port_late.py");
    assert!(status.success(), "{stderr}\n{}", dump(&events));
}

#[test]
fn a_program_that_never_listens_is_stopped_after_the_startup_timeout() {
    let (status, events, stderr) = run(
        "udp-echo",
        // Long enough for python3 to start and print on a busy machine.
        &["--startup-timeout", "2"],
        "check_never_listens.py",
    );
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("had not bound a UDP socket to port"),
        "{stderr}"
    );
    assert!(stderr.contains("/proc/net/udp"), "{stderr}");
    assert!(output_lines(&events).iter().any(|l| l == "thinking..."));
}

#[test]
fn a_program_that_ignores_sigterm_and_its_escaped_child_are_killed_and_reaped() {
    let (status, events, _) = run("tcp-echo", &[], "check_stubborn.py");
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}");
    let stopped = infos(&events, "stopped");
    let text = stopped
        .first()
        .map(|e| e["text"].to_string())
        .unwrap_or_default();
    assert!(text.contains("SIGKILL"), "{}", dump(&events));
    let warning = events
        .iter()
        .find(|e| {
            e["event"] == "warning"
                && e["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("when it was stopped"))
        })
        .unwrap_or_else(|| panic!("no leftover warning:\n{}", dump(&events)));
    let lines = output_lines(&events);
    let child: i32 = lines
        .iter()
        .find_map(|l| l.strip_prefix("lingering child "))
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child's pid in the output: {lines:?}"));
    assert!(
        warning["text"]
            .as_str()
            .unwrap_or("")
            .contains(&child.to_string()),
        "{warning}"
    );
    assert_gone(child, "the child that left the process group");
}

#[test]
fn ctrl_c_stops_the_program_and_reports_what_ran() {
    let mut demo = start("tcp-echo", &[], "check_silent.py");
    let netlab_pid = demo.pid();
    demo.wait_for("the listening event", |e| e["key"] == "listening");
    std::thread::sleep(Duration::from_millis(300));
    let (status, events, _) = demo.signal(Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "{}", dump(&events));
    let end = events.last().expect("events");
    assert_eq!(end["event"], "end", "{}", dump(&events));
    assert!(
        events.iter().any(|e| e["event"] == "verdict"),
        "{}",
        dump(&events)
    );
    assert_nothing_left(netlab_pid, program_pid(&events));
}

#[test]
fn if_netlab_is_killed_the_program_dies_too() {
    let mut demo = start("tcp-echo", &[], "check_silent.py");
    let program = demo.wait_for("the program event", |e| e["key"] == "program");
    let pid = program["value"]["pid"].as_i64().expect("pid") as i32;
    demo.wait_for("the listening event", |e| e["key"] == "listening");
    let _ = demo.signal(Signal::SIGKILL);
    // PR_SET_PDEATHSIG: the kernel kills it when netlab dies. Whoever
    // inherits it then reaps it; a zombie is not running either.
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(state_of(pid), Some(state) if state != 'Z') {
        assert!(Instant::now() < deadline, "pid {pid} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn if_netlab_is_killed_a_daemon_and_a_wrapped_server_die_too() {
    // PDEATHSIG reaches only the process netlab started; netlab's guard
    // kills the rest: a daemon that left the process group, and a server
    // behind `sh -c`.
    let good = check::exercise("tcp_echo/good.py");
    let wrapped = format!("python3 {good} \"$0\"; echo finished");
    let daemon = format!("{}/tests/py/check_daemon.py", env!("CARGO_MANIFEST_DIR"));
    for command in [
        vec!["python3", daemon.as_str(), "{port}"],
        vec!["sh", "-c", wrapped.as_str(), "{port}"],
    ] {
        let mut demo = check::start("tcp-echo", &[], &command);
        let server = demo.wait_for("the server event", |e| e["key"] == "server");
        let pid = server["value"]["pid"].as_i64().expect("pid") as i32;
        let _ = demo.signal(Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(state_of(pid), Some(state) if state != 'Z') {
            assert!(
                Instant::now() < deadline,
                "{command:?}: pid {pid} still runs"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn if_netlab_is_killed_children_that_left_the_group_during_the_probes_die_too() {
    // Each child calls setsid(): killing the process group misses it, so
    // the guard must have heard of it while the probes ran.
    let mut demo = start("tcp-echo", &[], "check_setsid_children.py");
    demo.wait_for("the first probe", |e| e["event"] == "probe");
    // The lookout tells the guard twice a second.
    std::thread::sleep(Duration::from_millis(700));
    let script = format!(
        "{}/tests/py/check_setsid_children.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let children = processes_running(&script);
    assert!(!children.is_empty(), "no child was forked yet");
    let _ = demo.signal(Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_running(&script);
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for pid in &left {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
            }
            panic!("still running after netlab was killed: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Running (not zombie) processes whose command line names `script`.
fn processes_running(script: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(script)
            && !matches!(state_of(pid), Some('Z') | None)
        {
            found.push(pid);
        }
    }
    found
}

/// The "server" event: the pid the probes judge, when it is not the
/// program netlab started.
fn server_pid(events: &[Value]) -> Option<i32> {
    infos(events, "server")
        .first()
        .and_then(|e| e["value"]["pid"].as_i64())
        .map(|pid| pid as i32)
}

#[test]
fn a_server_behind_a_shell_wrapper_is_the_one_judged() {
    let server = check::exercise("tcp_concurrent/good_fork.py");
    // `sh -c` without exec: the shell stays as the server's parent.
    let script = format!("python3 {server} \"$0\"; echo finished");
    let run = check::run("tcp-concurrent", &[], &["sh", "-c", &script, "{port}"]);
    assert_eq!(run.exit_code, Some(0), "{}", run.summary());
    let judged = server_pid(&run.events).expect("a server event");
    assert_ne!(judged, program_pid(&run.events));
    assert!(
        !run.events.iter().any(|e| e["event"] == "warning"),
        "the wrapper and its server are not leftovers: {}",
        dump(&run.events)
    );
    assert_gone(judged, "the server");
}

#[test]
fn a_leak_behind_a_wrapper_is_still_caught() {
    let server = check::exercise("tcp_echo/broken_leak_fds.py");
    let script = format!("python3 {server} \"$0\"; true");
    let run = check::run("tcp-echo", &[], &["sh", "-c", &script, "{port}"]);
    assert_eq!(run.status("fd-growth"), "fail", "{}", run.summary());
}

#[test]
fn a_daemon_that_double_forks_is_found_judged_and_stopped() {
    let (status, events, _) = run("tcp-echo", &[], "check_daemon.py");
    assert_eq!(status.code(), Some(0), "{}", dump(&events));
    let daemon = server_pid(&events).expect("a server event");
    assert_gone(daemon, "the daemon");
}

#[test]
fn a_port_already_taken_is_refused_before_the_program_starts() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port().to_string();
    let (status, events, stderr) =
        start("tcp-echo", &["--port", &port], "check_never_listens.py").finish();
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(infos(&events, "program").is_empty(), "nothing was started");
}

#[test]
fn a_tcp_server_given_to_a_udp_exercise_is_told_which_protocol() {
    let server = check::exercise("tcp_echo/good.py");
    let demo = check::start("udp-echo", &[], &["python3", &server, "{port}"]);
    let (status, events, stderr) = demo.finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("listens with TCP on port") && stderr.contains("needs UDP"),
        "{stderr}"
    );
    assert_gone(program_pid(&events), "the program");
}

#[test]
fn a_udp_socket_bound_just_before_listening_is_not_called_the_wrong_protocol() {
    // The program binds UDP on the port 0.3 s before it listens with TCP:
    // the wrong-protocol verdict waits, as the wrong-port one does.
    let (status, events, stderr) = run("tcp-echo", &[], "check_udp_first.py");
    assert!(status.success(), "{stderr}\n{}", dump(&events));
    assert_eq!(infos(&events, "listening").len(), 1);
}

#[test]
fn a_launcher_that_exits_while_its_child_serves_hands_the_server_on() {
    // The started process forks the process that serves and exits during
    // the probes: the child, which holds the listening socket, is judged
    // from then on, and the report says so.
    let (status, events, stderr) = run("tcp-echo", &[], "check_handoff.py");
    assert!(status.success(), "{stderr}\n{}", dump(&events));
    let started = program_pid(&events);
    let handoff = infos(&events, "server")
        .into_iter()
        .find(|e| e["value"]["ended_pid"] == started)
        .unwrap_or_else(|| panic!("no handoff in {}", dump(&events)));
    assert_ne!(handoff["value"]["pid"], started);
}

#[test]
fn a_reloading_parents_child_that_leaks_descriptors_is_caught() {
    // The parent holds the listener and only waits; its child serves and
    // leaks a descriptor per client. fd-growth counts the child's too.
    let path = format!("{}/tests/py/check_reloader.py", env!("CARGO_MANIFEST_DIR"));
    let run = check::run("tcp-echo", &[], &["python3", &path, "{port}"]);
    assert_eq!(run.exit_code, Some(1), "{}", dump(&run.events));
    assert_eq!(run.status("fd-growth"), "fail", "{}", dump(&run.events));
    let facts = run.facts("fd-growth", "open_fds");
    assert!(
        facts.iter().all(|f| f["value"]["processes"] == 2),
        "{facts:?}"
    );
}

#[test]
fn so_reuseport_workers_are_the_server_not_leftovers() {
    // Each worker listens on a socket of its own: the server is their
    // parent, and all four are stopped with it, none reported as left.
    let (status, events, stderr) = run("tcp-concurrent", &[], "check_reuseport.py");
    assert!(status.success(), "{stderr}\n{}", dump(&events));
    let stopped = infos(&events, "stopped");
    assert_eq!(
        stopped[0]["value"]["server_pid"],
        program_pid(&events),
        "{}",
        dump(&events)
    );
    assert_eq!(
        stopped[0]["value"]["workers"].as_array().map(Vec::len),
        Some(4)
    );
    assert!(
        !events.iter().any(|e| e["event"] == "warning"),
        "{}",
        dump(&events)
    );
}

#[test]
fn workers_whose_parent_ended_are_judged_and_netlab_never_judges_itself() {
    // The workers are re-parented to netlab: their common ancestor would
    // be netlab itself, which must never be taken for the server (netlab
    // once judged its own descriptors, then SIGKILLed itself).
    let demo = start("tcp-concurrent", &[], "check_orphan_workers.py");
    let netlab_pid = demo.pid();
    let (status, events, stderr) = demo.finish();
    assert_nothing_left(netlab_pid, program_pid(&events));
    assert!(status.success(), "{stderr}\n{}", dump(&events));
    let stopped = infos(&events, "stopped");
    let server = stopped[0]["value"]["server_pid"].as_i64();
    assert!(
        server.is_some_and(|pid| pid != i64::from(netlab_pid)),
        "{}",
        dump(&events)
    );
    assert_eq!(
        stopped[0]["value"]["workers"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn a_server_behind_a_launcher_that_crashes_is_named_with_its_own_end() {
    // sh starts the server in the background and exits 0 at once; the
    // server then dies of SIGSEGV. The report names the server's end (read
    // from its zombie's /proc/PID/stat), not the launcher's status 0, gives
    // the crash hint, and runs nothing more.
    let path = format!("{}/tests/py/check_segfault.py", env!("CARGO_MANIFEST_DIR"));
    let script = format!("python3 {path} {{port}} &");
    let run = check::run("tcp-echo", &[], &["sh", "-c", &script]);
    assert_eq!(run.exit_code, Some(1), "{}", dump(&run.events));
    let failed: Vec<&Value> = run
        .probe_events()
        .filter(|e| e["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{}", dump(&run.events));
    let happened = failed[0]["happened"].as_str().unwrap_or("");
    assert!(
        happened.contains("your server (pid") && happened.contains("killed by SIGSEGV"),
        "{happened}"
    );
    assert!(
        failed[0]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("SIGSEGV")),
        "{}",
        failed[0]
    );
    assert!(run.probe_events().any(|e| e["status"] == "skip"));
    // Behind a shell that reaps it, the status is gone, but the shell's
    // "Segmentation fault" still selects the crash hint.
    let script = format!("python3 {path} {{port}}; echo \"server exited with $?\"");
    let run = check::run("tcp-echo", &[], &["sh", "-c", &script]);
    let failed: Vec<&Value> = run
        .probe_events()
        .filter(|e| e["status"] == "fail")
        .collect();
    assert!(
        failed
            .first()
            .is_some_and(|f| f["hint"].as_str().is_some_and(|h| h.contains("SIGSEGV"))),
        "{}",
        dump(&run.events)
    );
}

#[test]
fn a_wrappers_own_processes_are_named_not_blamed() {
    // `| tee` beside the server is the wrapper's, not a child the server
    // failed to reap: it is listed as also stopped, with no warning.
    let good = check::exercise("tcp_echo/good.py");
    let script = format!("python3 {good} {{port}} 2>&1 | tee /dev/null");
    let run = check::run("tcp-echo", &[], &["sh", "-c", &script]);
    assert_eq!(run.exit_code, Some(0), "{}", dump(&run.events));
    assert!(
        !run.events.iter().any(|e| e["event"] == "warning"),
        "{}",
        dump(&run.events)
    );
    let stopped = infos(&run.events, "stopped");
    let text = stopped[0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("also stopped: ") && text.contains(" tee ("),
        "{text}"
    );
}

#[test]
fn a_launchers_child_that_fails_at_once_is_reported_at_once() {
    // sh exits 0 and its background child exits 3: both have ended, the
    // child as a zombie of netlab. No 10 s wait, and the child's status.
    let started = Instant::now();
    let (status, _, stderr) = check::start(
        "tcp-echo",
        &[],
        &["sh", "-c", "python3 -c 'import sys; sys.exit(3)' {port} &"],
    )
    .finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("it had started pid") && stderr.contains("which exited with status 3"),
        "{stderr}"
    );
}

#[test]
fn a_probe_that_crashed_the_program_quotes_the_exception() {
    // The server raises TypeError on its first send: the failing probe
    // names the exception and hints at it, not at the probe's own topic.
    let run = check::run(
        "tcp-echo",
        &[],
        &[
            "python3",
            &format!("{}/tests/py/check_sends_str.py", env!("CARGO_MANIFEST_DIR")),
            "{port}",
        ],
    );
    assert_eq!(run.status("echo"), "fail", "{}", dump(&run.events));
    assert!(
        run.happened("echo").contains("(it raised `TypeError: "),
        "{}",
        run.happened("echo")
    );
    assert!(
        run.hint("echo").contains("uncaught exception"),
        "{}",
        run.hint("echo")
    );
    // close() inside the recv() loop: Bad file descriptor, its own hint,
    // not the hint of the probe it happened in.
    let run = check::run(
        "tcp-echo",
        &[],
        &[
            "python3",
            &format!(
                "{}/tests/py/check_close_in_loop.py",
                env!("CARGO_MANIFEST_DIR")
            ),
            "{port}",
        ],
    );
    let failed: Vec<&Value> = run
        .probe_events()
        .filter(|e| e["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{}", dump(&run.events));
    assert!(
        failed[0]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("close() indented inside the recv() loop")),
        "{}",
        failed[0]
    );
    assert!(
        !failed[0]["happened"].as_str().unwrap_or("").contains(") ("),
        "one parenthesis: {}",
        failed[0]
    );
    // The client side: nothing was sent because sendall() raised.
    let run = check::run(
        "tcp-client",
        &[],
        &[
            "python3",
            &format!(
                "{}/tests/py/check_client_sends_str.py",
                env!("CARGO_MANIFEST_DIR")
            ),
            "{host}",
            "{port}",
        ],
    );
    let failed: Vec<&Value> = run
        .probe_events()
        .filter(|e| e["status"] == "fail")
        .collect();
    assert!(!failed.is_empty(), "{}", dump(&run.events));
    assert!(
        failed[0]["happened"]
            .as_str()
            .is_some_and(|h| h.contains("(it raised `TypeError: ")),
        "{}",
        failed[0]
    );
}

#[test]
fn a_server_that_ends_by_itself_is_told_to_loop() {
    // A UDP echo server with no loop: one datagram, one reply, exit 0.
    let code = "import socket, sys\n\
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                s.bind(('127.0.0.1', int(sys.argv[1])))\n\
                data, addr = s.recvfrom(65536)\n\
                s.sendto(data, addr)\n";
    let run = check::run("udp-echo", &[], &["python3", "-c", code, "{port}"]);
    assert_eq!(run.exit_code, Some(1));
    assert!(
        run.events.iter().any(|e| e["event"] == "warning"
            && e["hint"].as_str().is_some_and(|h| h.contains("while True"))),
        "{}",
        dump(&run.events)
    );
}

#[test]
fn the_program_holds_its_output_pipe_only_as_stdout_and_stderr() {
    // netlab's copies of the output pipe are close-on-exec: neither the
    // program nor the guard holds one (the guard's kept the pipe open,
    // and every check waited 0.5 s for an end of file that did not come).
    let code = "import os\n\
                out = os.readlink('/proc/self/fd/1')\n\
                extra = [fd for fd in os.listdir('/proc/self/fd') if int(fd) > 2\n\
                \x20        and os.path.exists('/proc/self/fd/' + fd)\n\
                \x20        and os.readlink('/proc/self/fd/' + fd) == out]\n\
                print('copies of the output pipe beyond 1 and 2:', len(extra))\n\
                raise SystemExit(3)\n";
    let (status, events, _) =
        check::start("tcp-echo", &[], &["python3", "-c", code, "{port}"]).finish();
    assert_eq!(status.code(), Some(1));
    let lines = output_lines(&events);
    assert!(
        lines.contains(&"copies of the output pipe beyond 1 and 2: 0".to_string()),
        "{lines:?}"
    );
}

#[test]
fn the_port_netlab_picks_is_outside_the_kernels_client_port_range() {
    // A port in ip_local_port_range can become some client's source port
    // between netlab's test and the program's bind(): EADDRINUSE.
    let (_, events, _) = run("tcp-echo", &[], "check_udp_first.py");
    let port = infos(&events, "program")[0]["value"]["port"]
        .as_u64()
        .expect("port");
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("range");
    let bounds: Vec<u64> = range
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect();
    assert!(
        port < bounds[0] || port > bounds[1],
        "port {port} is in {bounds:?}"
    );
}

#[test]
fn patience_below_a_tenth_is_a_usage_error() {
    let (status, _, stderr) = start("tcp-echo", &["--patience", "0"], "check_silent.py").finish();
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("--patience must be at least 0.1"),
        "{stderr}"
    );
}

#[test]
fn a_missing_interpreter_is_named() {
    let path = format!(
        "{}/tests/py/check_bad_interpreter.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let (status, _, stderr) = check::start("tcp-echo", &[], &[&path, "{port}"]).finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("its #! line names `/usr/bin/python9-does-not-exist`"),
        "{stderr}"
    );
}

#[test]
fn a_hash_bang_line_with_a_windows_line_ending_is_named() {
    // The interpreter exists; the kernel looks for "/bin/sh\r".
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!("netlab-crlf-{}.sh", std::process::id()));
    std::fs::write(&path, "#!/bin/sh\r\necho never\r\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let program = path.to_string_lossy().into_owned();
    let (status, _, stderr) = check::start("tcp-echo", &[], &[&program, "{port}"]).finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("Windows line ending") && stderr.contains("dos2unix"),
        "{stderr}"
    );
    // Through env, the file starts (env exists) and env fails (127).
    std::fs::write(&path, "#!/usr/bin/env python3\r\nprint('never')\r\n").expect("write");
    let (status, _, stderr) = check::start("tcp-echo", &[], &[&program, "{port}"]).finish();
    let _ = std::fs::remove_file(&path);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("Windows line ending") && stderr.contains("dos2unix"),
        "{stderr}"
    );
}

#[test]
fn a_program_in_this_directory_without_its_path_is_explained() {
    // Tests run in the crate's directory, which holds a file `Makefile`.
    let (status, _, stderr) = check::start("tcp-echo", &[], &["Makefile", "{port}"]).finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("a file of that name is in this directory") && stderr.contains("./NAME"),
        "{stderr}"
    );
}

#[test]
fn quiet_shows_only_what_did_not_pass() {
    let server = check::exercise("tcp_echo/broken_no_close.py");
    let run = check::run("tcp-echo", &["--quiet"], &["python3", &server, "{port}"]);
    let shown: Vec<&str> = run
        .probe_events()
        .filter_map(|e| e["probe"].as_str())
        .collect();
    assert_eq!(shown, ["close-wait"], "{}", dump(&run.events));
    let verdict = run
        .events
        .iter()
        .find(|e| e["event"] == "verdict")
        .expect("a verdict");
    assert_eq!(verdict["passed"], 6, "the verdict still counts them all");
}

#[test]
fn the_programs_output_is_shown_as_printed_and_a_traceback_is_pointed_out() {
    let (status, events, _) = run("tcp-echo", &[], "check_noisy.py");
    assert_eq!(status.code(), Some(0), "{}", dump(&events));
    let lines = output_lines(&events);
    assert!(
        lines.contains(&r#"quotes 'single' "double" and a back\slash"#.to_string()),
        "{lines:?}"
    );
    let long = lines
        .iter()
        .find(|l| l.starts_with("xxx"))
        .expect("the long line");
    assert!(long.ends_with("... (4700 more characters)"), "{long}");
    assert!(lines.contains(&r"bell \x07 here".to_string()), "{lines:?}");
    // A right-to-left override would turn the rest of the line around.
    assert!(lines.contains(&r"abc \u{202e}def".to_string()), "{lines:?}");
    assert!(
        // Invalid UTF-8 becomes U+FFFD, one per bad byte.
        lines.contains(&"bytes \u{fffd}\u{fffd} that are not UTF-8".to_string()),
        "{lines:?}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "warning"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("printed a Python traceback ending in `RuntimeError: a worker thread crashed` (its output is below)"))),
        "{}",
        dump(&events)
    );
}

#[test]
fn a_traceback_that_scrolled_out_of_the_shown_output_is_quoted() {
    let (status, events, _) = run("tcp-echo", &[], "check_crash_scrolls.py");
    assert_eq!(status.code(), Some(0), "{}", dump(&events));
    let lines = output_lines(&events);
    assert!(
        !lines.iter().any(|l| l.contains("RuntimeError")),
        "{lines:?}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "warning"
            && e["text"].as_str().is_some_and(|t| t.contains(
                "ending in `RuntimeError: a worker thread crashed` (it came before the last lines"
            ))),
        "{}",
        dump(&events)
    );
}

#[test]
fn a_traceback_for_a_client_that_reset_is_not_called_a_bug() {
    // tcp-echo's `reset` probe resets its connection on purpose; the
    // program's thread for it dies with ConnectionResetError (or, for the
    // client that resets while the server sends, BrokenPipeError) and the
    // server goes on. That is reported as such, not as a fault.
    let (status, events, stderr) = run("tcp-echo", &[], "check_logs_reset.py");
    assert!(status.success(), "{stderr}\n{}", dump(&events));
    let notes = infos(&events, "traceback");
    assert_eq!(notes.len(), 1, "{}", dump(&events));
    assert!(notes[0]["text"]
        .as_str()
        .is_some_and(|t| (t.contains("ending in `ConnectionResetError")
            || t.contains("ending in `BrokenPipeError"))
            && t.contains("went on serving")));
    assert!(
        !events.iter().any(|e| e["event"] == "warning"),
        "{}",
        dump(&events)
    );
}

#[test]
fn a_check_whose_output_closes_early_does_not_pass() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let server = check::exercise("tcp_echo/good.py");
    let mut child = netlab()
        .args(["check", "tcp-echo", "--", "python3", &server, "{port}"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start netlab");
    // Read the first line, then hang up, as `| head -1` does.
    let mut first = String::new();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    out.read_line(&mut first).expect("a line");
    drop(out);
    let status =
        common::wait_with_deadline(&mut child, Duration::from_secs(20)).expect("netlab ends");
    assert_eq!(status.code(), Some(1));
    let program = state_of(child.id() as i32);
    assert_eq!(program, None);
}
