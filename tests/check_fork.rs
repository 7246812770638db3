//! `netlab check tcp-concurrent` against forking servers whose processes
//! leave the server's own tree or end the wrong way: a double fork (the
//! serving grandchild is adopted by netlab, the subreaper) and children
//! that die on an exception instead of os._exit(0). The other
//! tcp-concurrent answers are in tests/check_tcp.rs.

mod common;

use common::check::{self, exercise, Run, CONCURRENT_PROBES};

/// `netlab --json check tcp-concurrent -- python3 tests/exercises/SCRIPT {port}`.
fn check(script: &str) -> Run {
    check::run(
        "tcp-concurrent",
        &[],
        &["python3", &exercise(script), "{port}"],
    )
}

#[test]
fn a_double_forking_server_passes_every_probe() {
    let run = check("tcp_concurrent/good_double_fork.py");
    run.assert_all_pass(&CONCURRENT_PROBES);
    // Its serving grandchildren are counted as the server's, though
    // netlab adopted them: not "serves from one process".
    let happened = run.happened("child-listener");
    assert!(!happened.contains("serves from one process"), "{happened}");
}

#[test]
fn double_forked_grandchildren_holding_the_listener_are_caught() {
    let run = check("tcp_concurrent/broken_double_fork_listener.py");
    run.assert_caught(
        &CONCURRENT_PROBES,
        "child-listener",
        "close the listening socket right after fork()",
    );
}

#[test]
fn children_that_die_on_an_exception_are_a_warning_in_reaped() {
    let run = check("tcp_concurrent/broken_child_no_exit.py");
    run.assert_statuses(&CONCURRENT_PROBES, &[("reaped", "warn")]);
    assert!(
        run.hint("reaped").contains("os._exit(0)"),
        "{}",
        run.hint("reaped")
    );
    assert!(
        run.happened("reaped").contains("Bad file descriptor"),
        "{}",
        run.happened("reaped")
    );
}
