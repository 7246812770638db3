//! The command line itself: help, completions, man page, lessons, --step.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn run(args: &[&str]) -> std::process::Output {
    netlab()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run netlab")
}

fn stdout_of(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "netlab {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn help_groups_the_commands_by_topic() {
    let help = stdout_of(&["--help"]);
    let sockets = help.find("TCP sockets:").expect("a TCP topic");
    let tools = help.find("Reading and tools:").expect("a tools topic");
    let server = help.find("  tcp-server").expect("tcp-server listed");
    assert!(sockets < server && server < tools, "{help}");
    assert!(
        help.contains("--json") && help.contains("--step"),
        "global flags are listed"
    );
}

#[test]
fn every_subcommand_help_ends_with_an_example_that_names_its_lesson() {
    for command in ["tcp-server", "tcp-client"] {
        let help = stdout_of(&[command, "--help"]);
        assert!(
            help.contains(&format!("Example:\n  netlab {command}")),
            "{help}"
        );
        assert!(help.contains("Lesson: netlab lesson tcp"), "{help}");
    }
}

#[test]
fn usage_errors_exit_with_2() {
    let output = run(&["tcp-server", "--port", "70000"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("70000"));
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(
        run(&["tcp-server", "--accept-delay", "-1"]).status.code(),
        Some(2)
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_command_tree() {
    let bash = stdout_of(&["completions", "bash"]);
    assert!(bash.contains("tcp-server") && bash.contains("--no-reuseaddr"));
    let zsh = stdout_of(&["completions", "zsh"]);
    assert!(zsh.contains("#compdef netlab"));
    let man = stdout_of(&["man"]);
    assert!(man.contains(".TH netlab"), "{}", &man[..200.min(man.len())]);
    assert!(man.contains("tcp\\-server"));
}

#[test]
fn lessons_are_listed_and_rendered_without_markdown_marks() {
    let list = stdout_of(&["lesson"]);
    assert!(
        list.contains("osi-and-sockets") && list.contains("tcp"),
        "{list}"
    );
    let tcp = stdout_of(&["lesson", "tcp"]);
    assert!(tcp.contains("TIME_WAIT"));
    for mark in ["```", "**", "\n# ", "\n## ", "|---"] {
        assert!(
            !tcp.contains(mark),
            "raw Markdown {mark:?} in the rendered lesson"
        );
    }
    let unknown = run(&["lesson", "no-such-lesson"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("osi-and-sockets"),
        "lists the valid lessons"
    );
}

#[test]
fn lessons_follow_the_color_flag() {
    let coloured = stdout_of(&["lesson", "tcp", "--color", "always"]);
    assert!(
        coloured.contains("\x1b["),
        "--color always colours a lesson too"
    );
    let plain = stdout_of(&["lesson", "tcp"]);
    assert!(!plain.contains("\x1b["), "no colour into a pipe");
}

#[test]
fn reading_a_lesson_into_head_ends_quietly() {
    let bin = env!("CARGO_BIN_EXE_netlab");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("'{bin}' lesson tcp | head -3"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 3);
}

#[test]
fn step_without_a_terminal_never_waits() {
    let closed = closed_port();
    let port = closed.port.to_string();
    let output = netlab()
        .args(["--step", "tcp-client", "--port", &port, "-m", "x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // It ran straight to the refused connect instead of waiting for a key.
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--step needs a terminal"));
}

/// Run a shell command line inside a pseudo-terminal (util-linux `script`),
/// feeding `keys` as typed input. Returns everything the terminal showed.
fn in_terminal(command: &str, keys: &str) -> String {
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) must be installed");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // Give the program time to reach its first pause, then type.
        std::thread::sleep(std::time::Duration::from_millis(700));
        stdin.write_all(keys.as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
    }
    if wait_with_deadline(&mut child, PATIENCE).is_none() {
        // Killing script closes the pseudo-terminal, which hangs up (SIGHUP)
        // everything running in it: nothing is left behind.
        let _ = child.kill();
        let _ = child.wait();
        panic!("the stepped run did not end");
    }
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn step_pauses_in_a_terminal_and_restores_it_afterwards() {
    let bin = env!("CARGO_BIN_EXE_netlab");
    // `c` answers the first pause and runs on; the server serves no client
    // (--max-clients 0), so it ends by itself. Then stty shows the mode.
    let screen = in_terminal(
        &format!("'{bin}' --step --color never tcp-server --host 127.0.0.1 --port 0 --max-clients 0; stty -a"),
        "c",
    );
    assert!(
        screen.contains("next: sigaction(SIGPIPE, SIG_IGN)"),
        "{screen}"
    );
    assert!(screen.contains(", backlog 5)  -> 0"), "{screen}");
    assert!(
        screen.contains(" icanon") && screen.contains(" echo"),
        "the terminal is back in cooked mode: {screen}"
    );
}

#[test]
fn q_in_step_mode_stops_the_demo_cleanly() {
    let bin = env!("CARGO_BIN_EXE_netlab");
    let screen = in_terminal(
        &format!("'{bin}' --step --color never tcp-server --host 127.0.0.1 --port 0; echo \"exit=$?\"; stty -a"),
        "\n\nq",
    );
    // Paused before setsockopt(): it and everything after it never run.
    assert!(screen.contains("next: setsockopt(fd 3"), "{screen}");
    assert!(!screen.contains("bind(fd 3"), "{screen}");
    assert!(screen.contains("end: quit at a --step pause"), "{screen}");
    assert!(screen.contains("exit=130"), "{screen}");
    assert!(screen.contains(" icanon"), "{screen}");
}

#[test]
fn q_in_step_mode_ends_a_demo_that_never_blocks_before_the_next_call() {
    let bin = env!("CARGO_BIN_EXE_netlab");
    // sockinfo: Enter runs socket(), q at the pause before bind().
    let screen = in_terminal(
        &format!("'{bin}' --step --color never sockinfo; echo \"exit=$?\"; stty -a"),
        "\nq",
    );
    assert!(
        screen.contains("socket(AF_INET, SOCK_STREAM, 0)  -> fd 3"),
        "{screen}"
    );
    assert!(screen.contains("next: bind(fd 3"), "{screen}");
    assert!(
        screen.contains("bind() is not made: the run ends here"),
        "{screen}"
    );
    assert!(!screen.contains("bind(fd 3, 127.0.0.1:0)  -> "), "{screen}");
    assert!(!screen.contains("listen("), "{screen}");
    assert!(screen.contains("end: quit at a --step pause"), "{screen}");
    assert!(screen.contains("exit=130"), "{screen}");
    assert!(screen.contains(" icanon"), "{screen}");

    // byteorder: q at the very first pause, before htons().
    let screen = in_terminal(
        &format!("'{bin}' --step --color never byteorder 8888; echo \"exit=$?\""),
        "q",
    );
    assert!(screen.contains("next: htons(8888)"), "{screen}");
    assert!(!screen.contains("htons(8888)  -> "), "{screen}");
    assert!(!screen.contains("htonl(8888)"), "{screen}");
    assert!(screen.contains("exit=130"), "{screen}");
}

#[test]
fn q_in_step_mode_ends_http_server_before_its_next_call() {
    let bin = env!("CARGO_BIN_EXE_netlab");
    let screen = in_terminal(
        &format!(
            "'{bin}' --step --color never http-server --host 127.0.0.1 --port 0; echo \"exit=$?\""
        ),
        "\n\nq",
    );
    // Two calls ran; q at the third pause ends the run before that call.
    assert!(screen.contains("end: quit at a --step pause"), "{screen}");
    assert!(!screen.contains("listen(fd"), "{screen}");
    assert!(screen.contains("exit=130"), "{screen}");
}

#[test]
fn a_tiny_open_file_limit_still_starts() {
    // Under `ulimit -n 64` there is no fd 100 for netlab's own self-pipe to
    // move up to; it must keep its low numbers and run, not fail with EINVAL.
    let bin = env!("CARGO_BIN_EXE_netlab");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n 64 && exec '{bin}' --json sockinfo"))
        .stdin(Stdio::null())
        .output()
        .expect("run sh");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("signal handlers"), "{stderr}");
}

#[test]
fn a_forked_childs_wrapped_lines_fit_the_terminal_with_their_pid_prefix() {
    // Notes and kernel lines wrap at the terminal's width; a child's lines
    // start with `[PID] `, and that prefix must count, or a projector shows
    // the end of each wrapped line on a line of its own.
    let bin = env!("CARGO_BIN_EXE_netlab");
    let screen = in_terminal(
        &format!("stty cols 70; '{bin}' --color never fork-demo"),
        "",
    );
    let child_lines: Vec<&str> = screen
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| line.starts_with('[') && (line.contains("kernel:") || line.contains("  ")))
        .filter(|line| !line.contains(" * ") && !line.contains("->") && !line.contains("..."))
        .collect();
    assert!(!child_lines.is_empty(), "{screen}");
    for line in child_lines {
        assert!(
            line.chars().count() <= 70,
            "wider than 70: {line:?}\n{screen}"
        );
    }
}

#[test]
fn a_terminal_of_unknown_width_wraps_at_80_columns() {
    // A pseudo-terminal that reports 0 columns (`script` run without a
    // terminal): netlab wraps at 80, not at its narrowest width of 40.
    let bin = env!("CARGO_BIN_EXE_netlab");
    let screen = in_terminal(
        &format!("stty cols 0; '{bin}' --color never byteorder 8888"),
        "",
    );
    // Notes and kernel lines (indented) are the ones that wrap.
    let widest = screen
        .lines()
        .filter(|line| line.starts_with("     "))
        .map(|line| line.trim_end_matches('\r').chars().count())
        .max()
        .unwrap_or(0);
    assert!(
        (41..=80).contains(&widest),
        "widest line {widest}:\n{screen}"
    );
}

#[test]
fn a_hangup_is_reported_as_such_with_the_shells_exit_status() {
    // SIGHUP (a closed terminal) is not SIGTERM: "hung up", 128 + 1.
    let (mut demo, _) = tcp_server(&[]);
    demo.wait_for_call("accept", 1);
    let (status, events, _) = demo.signal(nix::sys::signal::Signal::SIGHUP);
    assert_eq!(status.code(), Some(129), "{}", dump(&events));
    let end = events
        .iter()
        .find(|e| e["event"] == "end")
        .expect("an end event");
    assert!(
        end["reason"]
            .as_str()
            .is_some_and(|r| r.contains("hung up")),
        "{end}"
    );
}

#[test]
fn start_up_lines_and_warnings_fit_a_narrow_terminal() {
    // netlab check's start-up lines, its warning about a command without
    // {port}, and the error all wrap at 50 columns.
    let bin = env!("CARGO_BIN_EXE_netlab");
    let screen = in_terminal(
        &format!(
            "stty cols 50; '{bin}' --color never check --startup-timeout 0.5 tcp-echo -- python3 -c 'import time; time.sleep(5)'"
        ),
        "",
    );
    let body: Vec<&str> = screen
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| line.starts_with("   "))
        .collect();
    assert!(
        body.iter().any(|line| line.contains("warning:")),
        "{screen}"
    );
    for line in body {
        assert!(
            line.chars().count() <= 50,
            "wider than 50: {line:?}\n{screen}"
        );
    }
}
