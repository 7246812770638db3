//! unix-demo: socket files, abstract names, stale files, SO_PEERCRED, and
//! no socket file or process left behind.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// A socket path of this test alone (pid and name), removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        let path =
            std::env::temp_dir().join(format!("netlab-test-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }

    fn str(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }

    fn exists(&self) -> bool {
        self.0.symlink_metadata().is_ok()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn finish_ok(demo: Demo) -> Vec<Value> {
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

#[test]
fn both_ends_talk_through_a_socket_file_that_is_removed_at_the_end() {
    let path = TempPath::new("both");
    let events = finish_ok(Demo::start(&["unix-demo", "--path", path.str()]));
    // bind() made a socket file, and /proc/net/unix lists it as listening.
    let file = &facts(&events, "file_type")[0]["value"];
    assert_eq!(file["socket"], true, "{file}");
    let listed = &facts(&events, "unix_socket")[0]["value"];
    assert_eq!(listed["state"], "listening");
    assert_eq!(listed["path"], path.str());
    // The forked client: its pid, as fork() returned it to the parent...
    let parent = events[0]["pid"].as_i64().unwrap();
    let fork = returns(&events, "fork")
        .into_iter()
        .find(|e| e["pid"] == parent)
        .expect("the parent's fork result");
    let child = fork["value"].as_i64().unwrap();
    assert!(child > 0);
    // ...is the pid SO_PEERCRED reports to the server, and the server's
    // pid is what the client sees.
    let creds = facts(&events, "peer_cred");
    let of_client = creds
        .iter()
        .find(|e| e["value"]["whose"] == "the client")
        .expect("server side");
    assert_eq!(of_client["value"]["pid"].as_i64(), Some(child));
    assert_eq!(of_client["pid"].as_i64(), Some(parent));
    let of_server = creds
        .iter()
        .find(|e| e["value"]["whose"] == "the server")
        .expect("client side");
    assert_eq!(of_server["value"]["pid"].as_i64(), Some(parent));
    assert_eq!(of_server["pid"].as_i64(), Some(child));
    assert_eq!(
        infos(&events, "echo")[0]["value"]["text"],
        "hello over AF_UNIX"
    );
    // Reaped, and the file is gone.
    assert_eq!(
        infos(&events, "reaped")[0]["value"]["status"],
        "exited with status 0"
    );
    assert_eq!(facts(&events, "file_exists")[0]["value"], false);
    assert!(!path.exists());
}

#[test]
fn a_python_client_is_identified_by_so_peercred() {
    let path = TempPath::new("python");
    let mut demo = Demo::start(&[
        "unix-demo",
        "--role",
        "server",
        "--path",
        path.str(),
        "--max-clients",
        "1",
    ]);
    demo.wait_for("the listening line", |e| {
        e["event"] == "info" && e["key"] == "unix_listening"
    });
    assert!(std::fs::symlink_metadata(&path.0)
        .unwrap()
        .file_type()
        .is_socket());
    let output = python("unix_client.py", &[path.str(), "ping from python"]);
    let mut lines = output.lines();
    let python_pid: i64 = lines.next().unwrap().parse().unwrap();
    assert_eq!(lines.next(), Some("ping from python"));
    let events = finish_ok(demo);
    let cred = &facts(&events, "peer_cred")[0]["value"];
    assert_eq!(cred["pid"].as_i64(), Some(python_pid));
    assert_eq!(
        cred["uid"].as_u64(),
        Some(u64::from(std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata("/proc/self").unwrap()
        )))
    );
    assert!(!path.exists(), "the server unlinks its file");
}

#[test]
fn a_stale_socket_file_is_diagnosed_and_removed_only_on_request() {
    let path = TempPath::new("stale");
    // A crashed server: bound, then gone without unlink().
    drop(std::os::unix::net::UnixListener::bind(&path.0).expect("bind"));
    assert!(path.exists());

    let (status, events, stderr) =
        Demo::start(&["unix-demo", "--role", "server", "--path", path.str()]).finish();
    assert_eq!(status.code(), Some(1), "{}", dump(&events));
    assert!(stderr.contains("stale socket file"), "{stderr}");
    assert!(stderr.contains("--unlink-stale"), "{stderr}");
    assert_eq!(returns(&events, "bind")[0]["errno"], "EADDRINUSE");
    assert_eq!(
        returns(&events, "connect")[0]["errno"],
        "ECONNREFUSED",
        "the probe"
    );
    assert!(path.exists(), "never removed without --unlink-stale");

    let events = finish_ok(Demo::start(&[
        "unix-demo",
        "--path",
        path.str(),
        "--unlink-stale",
    ]));
    let calls = calls(&events);
    assert!(
        in_order(
            &calls,
            &["bind", "lstat", "connect", "unlink", "bind", "listen"]
        ),
        "{calls:?}"
    );
    assert!(!path.exists());
}

#[test]
fn a_live_server_or_a_plain_file_is_never_removed() {
    let path = TempPath::new("plain");
    std::fs::write(&path.0, "not a socket").unwrap();
    let (status, _, stderr) = Demo::start(&[
        "unix-demo",
        "--role",
        "server",
        "--path",
        path.str(),
        "--unlink-stale",
    ])
    .finish();
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path.0).unwrap(), "not a socket");

    let live = TempPath::new("live");
    let _listener = std::os::unix::net::UnixListener::bind(&live.0).expect("bind");
    let (status, _, stderr) = Demo::start(&[
        "unix-demo",
        "--role",
        "server",
        "--path",
        live.str(),
        "--unlink-stale",
    ])
    .finish();
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("a server is listening"), "{stderr}");
    assert!(live.exists());
}

#[test]
fn an_abstract_name_needs_no_file() {
    let name = format!("netlab-test-{}", std::process::id());
    let events = finish_ok(Demo::start(&["unix-demo", "--abstract", &name]));
    let listed = &facts(&events, "unix_socket")[0]["value"];
    assert_eq!(listed["path"], format!("@{name}"));
    assert!(facts(&events, "file_type").is_empty());
    assert!(!calls(&events).contains(&"unlink".to_string()));
    assert_eq!(
        infos(&events, "echo")[0]["value"]["text"],
        "hello over AF_UNIX"
    );

    // A Python client reaches the abstract name too; afterwards nobody
    // holds it, so a client is refused.
    let mut demo = Demo::start(&[
        "unix-demo",
        "--role",
        "server",
        "--abstract",
        &name,
        "--max-clients",
        "1",
    ]);
    demo.wait_for("the listening line", |e| {
        e["event"] == "info" && e["key"] == "unix_listening"
    });
    let output = python("unix_client.py", &[&format!("@{name}"), "abstract"]);
    assert!(output.ends_with("abstract\n"), "{output}");
    finish_ok(demo);
    let output = netlab()
        .args(["unix-demo", "--role", "client", "--abstract", &name])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Connection refused"));
}

#[test]
fn ctrl_c_stops_the_server_and_removes_its_file() {
    let path = TempPath::new("sigint");
    let mut demo = Demo::start(&["unix-demo", "--role", "server", "--path", path.str()]);
    demo.wait_for_call("accept", 1);
    assert!(path.exists());
    let (status, events, _) = demo.signal(Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "{}", dump(&events));
    assert!(calls(&events).contains(&"unlink".to_string()));
    assert!(!path.exists());
}

#[test]
fn a_client_without_a_server_gets_a_clear_error() {
    let path = TempPath::new("nobody");
    let output = netlab()
        .args(["unix-demo", "--role", "client", "--path", path.str()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no such file"), "{stderr}");
    std::fs::write(&path.0, "plain").unwrap();
    let output = netlab()
        .args(["unix-demo", "--role", "client", "--path", path.str()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a socket"));
    let long = "x".repeat(200);
    let output = netlab()
        .args(["unix-demo", "--path", &long])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("108 bytes"));
}

#[test]
fn openbsd_nc_is_a_client_too() {
    let path = TempPath::new("nc");
    let mut demo = Demo::start(&[
        "unix-demo",
        "--role",
        "server",
        "--path",
        path.str(),
        "--max-clients",
        "1",
    ]);
    demo.wait_for("the listening line", |e| {
        e["event"] == "info" && e["key"] == "unix_listening"
    });
    // -N: shut down the sending side at end of input, so the server sees EOF.
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'hi from nc\\n' | nc -N -U '{}'",
            path.str()
        ))
        .output()
        .expect("run nc");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi from nc\n");
    let events = finish_ok(demo);
    assert_eq!(returns(&events, "recv")[0]["value"], 11);
    assert!(!path.exists());
}

#[test]
fn a_socketpair_needs_no_name_and_reports_its_creator_at_both_ends() {
    let events = finish_ok(Demo::start(&[
        "unix-demo",
        "--role",
        "pair",
        "--message",
        "over the pair",
    ]));
    let parent = events[0]["pid"].as_i64().unwrap();
    assert_eq!(returns(&events, "socketpair")[0]["ok"], true);
    let listed = &facts(&events, "unix_socket")[0]["value"];
    assert_eq!(listed["state"], "connected");
    assert!(listed["path"].is_null(), "{listed}");
    // Both ends name the process that made the pair, the child's too.
    let creds = facts(&events, "peer_cred");
    assert_eq!(creds.len(), 2);
    assert!(
        creds.iter().any(|c| c["pid"].as_i64() != Some(parent)),
        "one is read by the child"
    );
    for cred in &creds {
        assert_eq!(cred["value"]["pid"].as_i64(), Some(parent), "{cred}");
    }
    assert_eq!(infos(&events, "echo")[0]["value"]["text"], "over the pair");
    assert_eq!(
        infos(&events, "reaped")[0]["value"]["status"],
        "exited with status 0"
    );
}

#[test]
fn an_empty_message_is_skipped_instead_of_waiting_for_an_echo() {
    // Server and forked client, and the socketpair: neither may hang.
    let path = TempPath::new("empty");
    for args in [
        vec!["unix-demo", "--path", path.str(), "-m", ""],
        vec!["unix-demo", "--role", "pair", "-m", ""],
    ] {
        let events = finish_ok(Demo::start(&args));
        let calls = calls(&events);
        // Only the server's recv, which sees the client close: no send at all.
        assert!(!calls.contains(&"send".to_string()), "{calls:?}");
        assert_eq!(returns(&events, "recv").len(), 1, "{}", dump(&events));
        assert_eq!(returns(&events, "recv")[0]["value"], 0);
    }
    assert!(!path.exists());
}

#[test]
fn a_path_a_socket_is_bound_to_is_in_use_not_stale() {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    // A server caught between its bind() and its listen(): connect() is
    // refused, exactly as for a stale file, but the path is in use.
    let path = TempPath::new("bound");
    let bound = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(bound.as_raw_fd(), &UnixAddr::new(&path.0).unwrap()).unwrap();
    let (status, events, stderr) = Demo::start(&[
        "unix-demo",
        "--role",
        "server",
        "--path",
        path.str(),
        "--unlink-stale",
    ])
    .finish();
    assert_eq!(status.code(), Some(1), "{}", dump(&events));
    assert!(stderr.contains("in use, not stale"), "{stderr}");
    assert_eq!(returns(&events, "connect")[0]["errno"], "ECONNREFUSED");
    assert_eq!(facts(&events, "bound_sockets")[0]["value"]["count"], 1);
    assert!(!calls(&events).contains(&"unlink".to_string()));
    assert!(
        path.exists(),
        "a path a live socket is bound to is never removed"
    );
    drop(bound);
}

#[test]
fn runs_at_the_same_time_each_use_their_own_default_file() {
    // Four runs at once, as a class would start them: none may find
    // another's file in its way, and each removes its own.
    let demos: Vec<Demo> = (0..4).map(|_| Demo::start(&["unix-demo"])).collect();
    for demo in demos {
        let pid = demo.pid();
        let events = finish_ok(demo);
        let own = format!("/tmp/netlab-unix-{pid}.sock");
        assert_eq!(infos(&events, "default_path")[0]["value"]["path"], own);
        assert_eq!(returns(&events, "bind")[0]["ok"], true, "{}", dump(&events));
        assert_eq!(
            infos(&events, "echo")[0]["value"]["text"],
            "hello over AF_UNIX"
        );
        assert!(!std::path::Path::new(&own).exists());
    }
}
