//! fork-demo, zombie-demo and orphan-demo, checked against /proc as the
//! test itself reads it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Every pid other than `parent` that printed an event: the children.
fn child_pids(events: &[Value], parent: i64) -> BTreeSet<i64> {
    events
        .iter()
        .filter_map(|e| e["pid"].as_i64())
        .filter(|pid| *pid != parent)
        .collect()
}

/// The state letter and parent of a process, read from /proc by the test.
fn proc_stat(pid: i64) -> Option<(char, i64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Zombie children of `parent`, counted by the test from /proc.
fn zombies_of(parent: i64) -> usize {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i64>().ok())
        .filter_map(proc_stat)
        .filter(|(state, ppid)| *state == 'Z' && *ppid == parent)
        .count()
}

/// Every pid is gone from /proc (reaped), within a few seconds.
fn assert_gone(pids: &BTreeSet<i64>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for pid in pids {
        while proc_stat(*pid).is_some() {
            assert!(
                Instant::now() < deadline,
                "process {pid} is still there: {:?}",
                proc_stat(*pid)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn run_to_end(args: &[&str]) -> (i64, Vec<Value>) {
    let demo = Demo::start(args);
    let pid = i64::from(demo.pid());
    let (status, events, stderr) = demo.finish();
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    (pid, events)
}

#[test]
fn fork_demo_shows_both_return_values_and_separate_memory() {
    let (parent, events) = run_to_end(&["fork-demo", "--children", "2", "--kill-last"]);
    let kids = child_pids(&events, parent);
    assert_eq!(kids.len(), 2, "two children printed events: {kids:?}");

    // fork() returned each child's pid in the parent and 0 in each child.
    let forks = returns(&events, "fork");
    let in_parent: BTreeSet<i64> = forks
        .iter()
        .filter(|e| e["pid"] == parent)
        .filter_map(|e| e["value"].as_i64())
        .collect();
    assert_eq!(in_parent, kids);
    for kid in &kids {
        assert!(forks.iter().any(|e| e["pid"] == *kid && e["value"] == 0));
        // getppid() in the child is the parent; getpid() is itself.
        let ppid = returns(&events, "getppid")
            .into_iter()
            .find(|e| e["pid"] == *kid)
            .expect("child called getppid");
        assert_eq!(ppid["value"], parent);
        let own = returns(&events, "getpid")
            .into_iter()
            .find(|e| e["pid"] == *kid)
            .expect("child called getpid");
        assert_eq!(own["value"], *kid);
    }

    // Copy-on-write: the children changed their copies, the parent's did not.
    let counters = infos(&events, "counter");
    let value_in = |pid: i64, when: &str| -> Vec<i64> {
        counters
            .iter()
            .filter(|e| e["pid"] == pid && e["value"]["when"] == when)
            .filter_map(|e| e["value"]["value"].as_i64())
            .collect()
    };
    assert_eq!(value_in(parent, "before fork"), [100]);
    assert_eq!(value_in(parent, "after fork"), [100]);
    let changed: BTreeSet<i64> = kids
        .iter()
        .flat_map(|kid| value_in(*kid, "after fork"))
        .collect();
    assert_eq!(changed, BTreeSet::from([1100, 2100]));

    // Exit statuses decoded: _exit(1), and SIGKILL for the last child.
    let statuses = infos(&events, "child_status");
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0]["value"]["exit_code"], 1);
    assert_eq!(statuses[1]["value"]["signal"], "SIGKILL");
    // The parent's own /proc reading of the child, and nothing left.
    let states = facts(&events, "process");
    assert!(states
        .iter()
        .any(|e| e["value"]["ppid"] == parent
            && kids.contains(&e["value"]["pid"].as_i64().unwrap_or(0))));
    let last = facts(&events, "children").pop().expect("children fact");
    assert_eq!(last["value"]["pids"], serde_json::json!([]));
    assert_gone(&kids);
}

#[test]
fn fork_demo_without_flush_prints_the_buffer_once_per_process() {
    let (parent, events) = run_to_end(&["fork-demo", "--children", "2", "--no-flush"]);
    let copies = infos(&events, "buffered_copies");
    assert_eq!(copies[0]["value"]["copies"], 3, "{copies:?}");
    assert_gone(&child_pids(&events, parent));

    let (parent, events) = run_to_end(&["fork-demo", "--children", "2"]);
    let copies = infos(&events, "buffered_copies");
    assert_eq!(copies[0]["value"]["copies"], 1, "{copies:?}");
    assert_gone(&child_pids(&events, parent));
}

#[test]
fn a_zombie_is_z_survives_sigkill_and_wait_once_leaks_the_rest() {
    let mut demo = Demo::start(&[
        "zombie-demo",
        "--children",
        "5",
        "--reap",
        "wait-once",
        "--hold",
        "20",
    ]);
    let pid = i64::from(demo.pid());
    let hold = demo.wait_for("the hold", |e| e["event"] == "info" && e["key"] == "hold");
    assert_eq!(hold["value"]["command"], "ps -el | grep Z");
    assert_eq!(hold["value"]["parent"], pid);
    // Our own reading of /proc, while the demo holds: 4 zombies remain.
    assert_eq!(zombies_of(pid), 4);
    let (status, events, _) = demo.signal(Signal::SIGINT);
    assert_eq!(status.code(), Some(130));

    // Part one: Z, still Z after SIGKILL, gone after waitpid().
    let first: Vec<&Value> = facts(&events, "process").into_iter().take(3).collect();
    assert_eq!(first[0]["value"]["state"], "Z");
    assert_eq!(first[1]["value"]["state"], "Z");
    assert_eq!(first[0]["value"]["pid"], first[2]["value"]["pid"]);
    assert_eq!(first[2]["value"]["state"], Value::Null, "reaped: gone");
    assert!(returns(&events, "kill")[0]["ok"] == true);

    // Part two: one pending SIGCHLD, one handler run, four zombies.
    assert_eq!(
        facts(&events, "pending_signals")[0]["value"]["sigchld"],
        true
    );
    let left = &infos(&events, "zombies_left")[0]["value"];
    assert_eq!(left["handler_runs"], 1);
    assert_eq!(left["zombies"], 4);
    // Ctrl-C still reaps them all.
    assert_eq!(
        returns(&events, "waitpid")
            .iter()
            .filter(|e| e["ok"] == true)
            .count(),
        1 + 4
    );
    let last = facts(&events, "children").pop().expect("children fact");
    assert_eq!(last["value"]["pids"], serde_json::json!([]));
    assert_gone(&child_pids(&events, pid));
}

#[test]
fn reaping_in_a_loop_or_ignoring_sigchld_leaves_no_zombie() {
    for reap in ["loop", "ignore"] {
        let (pid, events) = run_to_end(&["zombie-demo", "--children", "5", "--reap", reap]);
        let left = &infos(&events, "zombies_left")[0]["value"];
        assert_eq!(left["zombies"], 0, "{reap}: {left}");
        if reap == "ignore" {
            let echild = returns(&events, "waitpid")
                .into_iter()
                .any(|e| e["errno"] == "ECHILD");
            assert!(
                echild,
                "SIG_IGN: the kernel reaped them, waitpid has nothing"
            );
        } else {
            assert_eq!(left["handler_runs"], 1);
        }
        assert_gone(&child_pids(&events, pid));
    }
}

#[test]
fn the_subreaper_adopts_and_reaps_the_orphan() {
    let (pid, events) = run_to_end(&["orphan-demo"]);
    let adopted = &infos(&events, "adopted")[0]["value"];
    let family = &infos(&events, "family")[0]["value"];
    assert_eq!(adopted["new_parent"], pid);
    assert_eq!(adopted["old_parent"], family["parent"]);
    // The orphan's own getppid(): first its parent, then netlab.
    let orphan = family["child"].as_i64().expect("orphan pid");
    let seen: Vec<i64> = returns(&events, "getppid")
        .into_iter()
        .filter(|e| e["pid"] == orphan)
        .filter_map(|e| e["value"].as_i64())
        .collect();
    assert_eq!(seen, [family["parent"].as_i64().unwrap(), pid]);
    let statuses = infos(&events, "child_status");
    assert!(statuses.iter().any(|e| e["value"]["pid"] == orphan));
    assert_gone(&child_pids(&events, pid));
}

#[test]
fn without_subreaper_init_or_the_nearest_subreaper_adopts_the_orphan() {
    let (pid, events) = run_to_end(&["orphan-demo", "--no-subreaper"]);
    let adopted = &infos(&events, "adopted")[0]["value"];
    let new_parent = adopted["new_parent"].as_i64().expect("new parent");
    assert_ne!(new_parent, pid);
    // The kernel picks pid 1 or the nearest subreaper among netlab's
    // ancestors: netlab's parent is this test, so read our own chain.
    let mut ancestors = BTreeSet::from([1]);
    let mut at = i64::from(std::process::id());
    while let Some((_, ppid)) = proc_stat(at) {
        ancestors.insert(at);
        if ppid <= 1 {
            break;
        }
        at = ppid;
    }
    assert!(
        ancestors.contains(&new_parent),
        "{new_parent} is neither init nor an ancestor: {ancestors:?}"
    );
    // We could not wait for it ourselves.
    let orphan = adopted["orphan"].as_i64().unwrap();
    assert!(returns(&events, "waitpid")
        .iter()
        .any(|e| e["errno"] == "ECHILD" && e["pid"] == pid));
    // Its new parent reaps it: it disappears from /proc.
    assert_gone(&BTreeSet::from([orphan]));
    assert_gone(&child_pids(&events, pid));
}

#[test]
fn hold_does_not_wait_when_no_zombie_is_left_to_see() {
    // --reap loop leaves no zombie: holding would show an empty `ps`.
    let started = std::time::Instant::now();
    let (pid, events) = run_to_end(&[
        "zombie-demo",
        "--children",
        "3",
        "--reap",
        "loop",
        "--hold",
        "30",
    ]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "it held for nothing"
    );
    assert!(infos(&events, "hold").is_empty(), "no hold announced");
    assert!(
        events.iter().any(|e| e["event"] == "note"
            && e["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("--hold: there is no zombie")),
        "the demo says why it does not hold"
    );
    assert_gone(&child_pids(&events, pid));
}
