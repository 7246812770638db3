//! A real browser against http-server: headless Chromium loads the built-in
//! page from 127.0.0.1, once printing the DOM it built and once taking a
//! screenshot. The page must show the browser's own User-Agent and request
//! line, and the server's narration must show the same request.
//!
//! Needs Debian's chromium (`apt-get install chromium`; .ci/run installs
//! it). Without it the test fails and says so: a skipped browser test would
//! pass while proving nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Demo;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::os::unix::process::CommandExt;

const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one Chromium run may take before it is killed (it takes about
/// a second here; the first start on a cold disk takes longer).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// A temporary directory for Chromium's profile and the screenshot,
/// removed when the test ends, also when it fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "netlab-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: this test needs Debian's headless Chromium; \
         install it with `apt-get install chromium` (.ci/run does this in CI)"
    );
}

/// Run headless Chromium on `url` with `extra` arguments and a fresh
/// profile in `profile`; kill it (its whole process group, started here)
/// if it overstays the timeout.
fn chromium(profile: &Path, url: &str, extra: &[String]) -> Output {
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        // Only TCP to 127.0.0.1: no QUIC, and none of the background
        // requests (updates, sync, safe browsing) Chromium would otherwise
        // send to Google's hosts, whose names must not even be resolved.
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    // Its own process group, so that on a timeout the renderer and the
    // other helper processes it starts go with it.
    .process_group(0);
    let child = cmd.spawn().expect("start chromium");
    let pid = Pid::from_raw(child.id() as i32);
    // Read its output in a thread; this one watches the clock.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = done_tx.send(());
        output
    });
    let started = Instant::now();
    if done_rx.recv_timeout(BROWSER_TIMEOUT).is_err() {
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = reader.join();
        panic!(
            "chromium (pid {pid}) did not finish within {} s and was killed",
            BROWSER_TIMEOUT.as_secs()
        );
    }
    let output = reader
        .join()
        .expect("the chromium reader thread")
        .expect("wait for chromium");
    // Chromium's helper processes (zygote, renderer) end with it. Should one
    // still be there after a while, it is in the group started here: stop it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !group_members(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !group_members(pid).is_empty() {
        let _ = killpg(pid, Signal::SIGKILL);
    }
    assert!(
        output.status.success(),
        "chromium failed after {:?} ({}); stderr:\n{}",
        started.elapsed(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The live processes whose process group is `group`, from /proc/PID/stat:
/// after the command name in parentheses come the state and, two fields
/// later, the group. Zombies are left out: they run nothing, and whoever
/// inherited them reaps them.
fn group_members(group: Pid) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let mut fields = stat.rsplit_once(") ")?.1.split(' ');
                    let state = fields.next()?;
                    let pgrp = fields.nth(1)?.parse::<i32>().ok()?;
                    Some(state != "Z" && pgrp == group.as_raw())
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Text as an HTML serializer writes it in a text node.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

fn is_info(event: &Value, key: &str) -> bool {
    event["event"] == "info" && event["key"] == key
}

/// Wait for the narration of `GET /`; return the client's address and the
/// User-Agent header narrated with it.
fn narrated_get_root(server: &mut Demo) -> (String, String) {
    let request = server.wait_for("the narrated request GET /", |e| {
        is_info(e, "request") && e["value"]["method"] == "GET" && e["value"]["target"] == "/"
    });
    let peer = request["value"]["peer"]
        .as_str()
        .expect("the request's peer is a string")
        .to_string();
    // The header lines follow their request line in the narration.
    let header = server.wait_for("the narrated User-Agent header of GET /", |e| {
        is_info(e, "request_header")
            && e["value"]["name"]
                .as_str()
                .is_some_and(|name| name.eq_ignore_ascii_case("user-agent"))
    });
    let user_agent = header["value"]["value"]
        .as_str()
        .expect("the header's value is a string")
        .to_string();
    (peer, user_agent)
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(png: &[u8]) -> (u32, u32) {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    assert!(
        png.len() > 33,
        "the screenshot has only {} bytes",
        png.len()
    );
    assert_eq!(&png[..8], SIGNATURE, "the screenshot is not a PNG");
    // The first chunk: length (4 bytes, 13 for IHDR), type "IHDR", then
    // width and height as 32-bit big-endian numbers.
    assert_eq!(&png[8..12], &13u32.to_be_bytes(), "IHDR length");
    assert_eq!(&png[12..16], b"IHDR", "the first chunk is not IHDR");
    let number = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    (number(16), number(20))
}

#[test]
fn chromium_sees_its_own_request_on_the_built_in_page() {
    require_chromium();
    let mut server = Demo::start(&["http-server", "--host", "127.0.0.1", "--port", "0"]);
    let addr = server.listening_addr();
    let url = format!("http://{addr}/");
    let temp = TempDir::new("browser");

    // 1. The DOM, as Chromium built it from the page.
    let profile = temp.0.join("profile-dom");
    let output = chromium(&profile, &url, &["--dump-dom".to_string()]);
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    let (peer, user_agent) = narrated_get_root(&mut server);
    assert!(
        user_agent.contains("HeadlessChrome/"),
        "the narrated User-Agent is not headless Chromium's: {user_agent:?}"
    );
    assert!(
        dom.contains(&html_text(&user_agent)),
        "the page does not show the browser's User-Agent {user_agent:?}; DOM:\n{dom}"
    );
    assert!(
        dom.contains("GET / HTTP/1.1"),
        "the page does not show the request line GET / HTTP/1.1; DOM:\n{dom}"
    );
    // The client's port, which the browser's kernel chose for this
    // connection: the page must show the same one accept() returned.
    let port = peer.rsplit_once(':').map(|(_, port)| port).unwrap_or("");
    assert!(
        !port.is_empty() && dom.contains(port),
        "the page does not show the client's port (the server saw {peer}); DOM:\n{dom}"
    );

    // 2. A screenshot at projector size.
    let profile = temp.0.join("profile-shot");
    let shot = temp.0.join("page.png");
    chromium(
        &profile,
        &url,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,900".to_string(),
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert_eq!(png_size(&png), (1280, 900), "the screenshot's size");
    // Keep a copy for a person to look at, when asked to.
    if let Some(dir) = std::env::var_os("NETLAB_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, Path::new(&dir).join("http-page.png"));
    }
    // The second load is a second request for / with the same browser.
    assert_eq!(
        narrated_get_root(&mut server).1,
        user_agent,
        "the second load sent a different User-Agent"
    );
}
