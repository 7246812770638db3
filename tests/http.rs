//! http-server against real clients: curl, Python's http.client and raw
//! sockets; every error code, the timeouts, pipelining, clients that leave
//! in the middle, and the three models.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Start http-server on 127.0.0.1, port 0, and read where it listens.
fn server(extra: &[&str]) -> (Demo, SocketAddr) {
    server_with(&[], extra)
}

/// The same with global flags (`--rate 0`) before the command.
fn server_with(global: &[&str], extra: &[&str]) -> (Demo, SocketAddr) {
    let mut args = global.to_vec();
    args.extend_from_slice(&["http-server", "--host", "127.0.0.1", "--port", "0"]);
    args.extend_from_slice(extra);
    let mut demo = Demo::start(&args);
    let addr = demo.listening_addr();
    (demo, addr)
}

/// Stop the server with SIGTERM: it closes everything and exits 143.
fn stop(server: Demo) -> Vec<Value> {
    let pid = server.pid();
    let (status, events, stderr) = server.signal(Signal::SIGTERM);
    assert_eq!(status.code(), Some(143), "stderr: {stderr}");
    assert_eq!(events.last().expect("events")["event"], "end");
    assert!(stderr.is_empty(), "no error expected: {stderr}");
    assert_no_children(pid);
    events
}

/// A fresh directory under the target dir, with a few files to serve.
fn site(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("http-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(
        dir.join("index.html"),
        "<!DOCTYPE html><title>home</title><p>home page</p>\n",
    )
    .expect("index");
    std::fs::write(dir.join("hello.txt"), "hello, world\n").expect("hello");
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(256 * 40).collect();
    std::fs::write(dir.join("bin.dat"), every_byte).expect("bin");
    std::fs::write(dir.join("sub/a b.txt"), "spaced\n").expect("spaced");
    std::fs::write(dir.join("empty.txt"), "").expect("empty");
    dir
}

/// A large file, made of a repeating pattern (so a wrong offset shows).
fn big_file(dir: &Path, megabytes: usize) -> PathBuf {
    let path = dir.join("big.dat");
    let block: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let mut file = std::fs::File::create(&path).expect("big");
    for _ in 0..megabytes {
        file.write_all(&block).expect("write big");
    }
    path
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to netlab");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

/// One response read from a stream: status, head text, body.
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

/// Read one response (head, then Content-Length bytes of body; no body
/// after a HEAD request).
fn read_reply(stream: &mut TcpStream, head_request: bool) -> Reply {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "the response head ended early ({other:?}) after {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let head = String::from_utf8(head).expect("an ASCII head");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let mut reply = Reply {
        status,
        head,
        body: Vec::new(),
    };
    let length: usize = reply
        .header("Content-Length")
        .map(|len| len.parse().expect("a Content-Length number"))
        .unwrap_or(0);
    if !head_request {
        reply.body = vec![0u8; length];
        stream.read_exact(&mut reply.body).expect("the body");
    }
    reply
}

/// Send raw bytes, read one response.
fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = connect(addr);
    stream.write_all(request).expect("send the request");
    read_reply(&mut stream, false)
}

/// Has the server closed this connection (read returns 0 or a reset)?
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn curl(args: &[&str]) -> (i32, Vec<u8>, String) {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    (
        output.status.code().unwrap_or(-1),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn curl_gets_the_built_in_page_with_its_own_request() {
    // --rate 0: every step narrated, so every request's events are seen.
    let (server, addr) = server_with(&["--rate", "0"], &[]);
    let url = format!("http://{addr}/hello?x=1");
    let (code, body, err) = curl(&["-A", "netlab-test-agent/1.0", &url]);
    assert_eq!(code, 0, "curl failed: {err}");
    let page = String::from_utf8(body).expect("UTF-8 page");
    assert!(page.contains("<!DOCTYPE html>") || page.contains("<!doctype html>"));
    assert!(
        page.contains("netlab-test-agent/1.0"),
        "the page shows the User-Agent:\n{page}"
    );
    assert!(page.contains("/hello"), "the page shows the request line");

    // HEAD (-I): the same headers, no body.
    let (code, head, err) = curl(&["-I", &url]);
    assert_eq!(code, 0, "curl -I failed: {err}");
    let head = String::from_utf8(head).expect("ASCII head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-length:"));
    assert!(head.to_ascii_lowercase().contains("date:"));
    assert!(head.to_ascii_lowercase().contains("server:"));

    // HTTP/1.0: answered, then the server closes.
    let (code, _, err) = curl(&["-v", "--http1.0", &url]);
    assert_eq!(code, 0, "curl --http1.0 failed: {err}");
    assert!(
        err.contains("HTTP/1.0") || err.contains("HTTP/1.1 200"),
        "{err}"
    );
    assert!(
        err.contains("Closing connection") || err.contains("closing connection"),
        "HTTP/1.0 without keep-alive closes: {err}"
    );

    // favicon.ico gets a proper answer, not an error page.
    let (code, _, err) = curl(&["--fail", &format!("http://{addr}/favicon.ico")]);
    assert_eq!(code, 0, "favicon: {err}");

    let events = stop(server);
    let requests = infos(&events, "request");
    assert!(
        requests.len() >= 4,
        "each request is narrated: {}",
        dump(&events)
    );
    assert!(requests.iter().any(|e| e["value"]["method"] == "HEAD"));
    assert!(!infos(&events, "response").is_empty());
}

#[test]
fn curl_reuses_one_connection_and_gets_files_404_and_no_traversal() {
    let root = site("curl");
    let (server, addr) = server_with(
        &["--rate", "0"],
        &["--root", root.to_str().expect("utf-8 path")],
    );
    let base = format!("http://{addr}");

    // Three URLs on one command line: one connection, kept alive.
    let (code, body, err) = curl(&[
        "-v",
        &format!("{base}/hello.txt"),
        &format!("{base}/"),
        &format!("{base}/sub/a%20b.txt"),
    ]);
    assert_eq!(code, 0, "curl failed: {err}");
    assert!(
        err.contains("Re-using existing connection"),
        "keep-alive: {err}"
    );
    let body = String::from_utf8(body).expect("text");
    assert!(body.starts_with("hello, world\n"), "{body}");
    assert!(body.contains("home page"), "index.html for /");
    assert!(body.ends_with("spaced\n"), "percent-decoded path: {body}");

    // Content-Type by extension.
    let (_, head, _) = curl(&["-I", &format!("{base}/index.html")]);
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");

    // A missing file: 404 with a page.
    let (_, body, _) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{base}/nope.txt"),
    ]);
    assert_eq!(body, b"404");

    // Traversal: never outside the root, however spelled.
    for path in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/sub/..%2f..%2f..%2fetc/passwd",
    ] {
        let (code, body, err) = curl(&[
            "--path-as-is",
            "-w",
            "\n%{http_code}",
            &format!("{base}{path}"),
        ]);
        assert_eq!(code, 0, "{err}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("root:"), "{path} leaked /etc/passwd");
        assert!(
            text.ends_with("403") || text.ends_with("404") || text.ends_with("400"),
            "{path}: {text}"
        );
    }

    let events = stop(server);
    let accepted = returns(&events, "accept")
        .iter()
        .filter(|e| e["ok"] == true)
        .count();
    assert!(accepted >= 4, "{}", dump(&events));
}

#[test]
fn python_http_client_keeps_one_connection_and_streams_a_large_file() {
    let root = site("python");
    big_file(&root, 20);
    let (server, addr) = server(&["--root", root.to_str().expect("utf-8 path")]);
    let out = python(
        "http_client.py",
        &[
            &addr.ip().to_string(),
            &addr.port().to_string(),
            &server.pid().to_string(),
        ],
    );
    let seen: Value = serde_json::from_str(out.trim()).expect("JSON from http_client.py");
    assert_eq!(
        seen["connections"], 1,
        "one connection for every request: {seen}"
    );
    assert_eq!(
        seen["statuses"],
        serde_json::json!([200, 200, 200, 200, 200, 200, 200])
    );
    assert!(seen["index"].as_str().expect("index").contains("home page"));

    let every_byte: Vec<u8> = (0..=255u8).cycle().take(256 * 40).collect();
    assert_eq!(seen["bin_len"], every_byte.len());
    assert_eq!(seen["bin_sha256"], sha256_hex(&every_byte));

    let big = std::fs::read(root.join("big.dat")).expect("read big");
    assert_eq!(seen["head_length"], big.len());
    assert_eq!(seen["big_len"], big.len());
    assert_eq!(seen["big_sha256"], sha256_hex(&big));
    // Streamed, never read whole: the server stays far below the file's size.
    let rss = seen["rss_max_kib"].as_u64().expect("rss");
    assert!(
        rss > 0 && rss < 16 * 1024,
        "server VmRSS {rss} KiB while sending 20 MB"
    );
    let events = stop(server);
    assert!(
        !returns(&events, "sendfile").is_empty() || events.iter().any(|e| e["event"] == "summary")
    );
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("feed sha256sum");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

#[test]
fn every_error_code_from_raw_sockets() {
    let (server, addr) = server_with(
        &["--rate", "0"],
        &[
            "--max-line",
            "100",
            "--max-head",
            "600",
            "--max-headers",
            "8",
            "--max-body",
            "16",
        ],
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage", b"HELLO THERE\r\n\r\n".to_vec(), 400),
        (
            "bad header",
            b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "DELETE",
            b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            405,
        ),
        (
            "unknown method",
            b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            405,
        ),
        (
            "chunked body",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            501,
        ),
        (
            "HTTP/2.0",
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
            505,
        ),
        (
            "long line",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200)).into_bytes(),
            414,
        ),
        (
            "many headers",
            format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: 1\r\n".repeat(20)).into_bytes(),
            431,
        ),
        (
            "long head",
            format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(700)).into_bytes(),
            431,
        ),
        (
            "large body",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".to_vec(),
            413,
        ),
    ];
    for (name, request, want) in &cases {
        let reply = exchange(addr, request);
        assert_eq!(reply.status, *want, "{name}: {}", reply.head);
        if *want == 405 {
            let allow = reply.header("Allow").unwrap_or_default();
            assert!(
                allow.contains("GET") && allow.contains("HEAD"),
                "405 names what is allowed: {}",
                reply.head
            );
        }
    }
    // After all that, the server still answers.
    assert_eq!(
        exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
    let events = stop(server);
    assert!(infos(&events, "response").len() >= cases.len());
}

#[test]
fn a_half_sent_request_gets_408_and_an_idle_connection_is_closed() {
    let (server, addr) = server(&["--header-timeout", "0.4", "--idle-timeout", "0.6"]);
    // Half a request head, then nothing.
    let mut slow = connect(addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: slow")
        .expect("half a request");
    let started = Instant::now();
    let reply = read_reply(&mut slow, false);
    assert_eq!(reply.status, 408, "{}", reply.head);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "408 within the timeout and a tick"
    );
    assert!(
        closed_by_server(&mut slow),
        "the connection closes after 408"
    );

    // A connection that never sends: closed after the idle timeout.
    let mut idle = connect(addr);
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let read = idle.read(&mut byte);
    assert!(matches!(read, Ok(0)), "closed with FIN, got {read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // A keep-alive connection after a request: closed after idle too.
    let mut kept = connect(addr);
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(read_reply(&mut kept, false).status, 200);
    assert!(matches!(kept.read(&mut byte), Ok(0)));

    let events = stop(server);
    let why: Vec<String> = infos(&events, "connection_closed")
        .iter()
        .map(|e| e["value"]["why"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(why.iter().any(|w| w.contains("408")), "{why:?}");
    assert!(
        why.iter().filter(|w| w.contains("idle")).count() >= 2,
        "{why:?}"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for model in ["epoll", "iterative", "thread"] {
        let (server, addr) = server(&["--model", model]);
        let mut stream = connect(addr);
        // Three requests in one write; the last one closes.
        stream
            .write_all(
                b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
                  HEAD /second HTTP/1.1\r\nHost: x\r\n\r\n\
                  GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .expect("pipeline");
        let first = read_reply(&mut stream, false);
        let second = read_reply(&mut stream, true);
        let third = read_reply(&mut stream, false);
        assert_eq!(
            (first.status, second.status, third.status),
            (200, 200, 200),
            "{model}"
        );
        assert!(
            String::from_utf8_lossy(&first.body).contains("/first"),
            "{model}: first is first"
        );
        assert!(
            String::from_utf8_lossy(&third.body).contains("/third"),
            "{model}: third is third"
        );
        assert!(!String::from_utf8_lossy(&third.body).contains("/second"));
        assert!(
            closed_by_server(&mut stream),
            "{model}: Connection: close is honoured"
        );
        let events = stop(server);
        let targets: Vec<&str> = infos(&events, "request")
            .iter()
            .filter_map(|e| e["value"]["target"].as_str())
            .collect();
        assert_eq!(targets, ["/first", "/second", "/third"], "{model}");
    }
}

#[test]
fn clients_that_leave_mid_body_or_mid_response_cost_only_their_connection() {
    let root = site("leave");
    big_file(&root, 8);
    let (server, addr) = server_with(&["--rate", "0"], &["--root", root.to_str().expect("utf-8")]);

    // Mid-body: a request that announces 10 bytes and sends 3, then closes.
    let mut partial = connect(addr);
    partial
        .write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .expect("send");
    partial.shutdown(Shutdown::Both).expect("close");
    drop(partial);

    // Mid-response: ask for 8 MB, read a little, then reset the connection.
    for _ in 0..3 {
        let mut leaver = connect(addr);
        leaver
            .write_all(b"GET /big.dat HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut some = [0u8; 4096];
        leaver
            .read_exact(&mut some)
            .expect("the start of the response");
        set_linger_zero(&leaver);
        drop(leaver);
    }

    // The server goes on.
    let reply = exchange(addr, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(reply.body, b"hello, world\n");
    let events = stop(server);
    let resets = infos(&events, "connection_closed")
        .iter()
        .filter(|e| e["value"]["why"].as_str().unwrap_or("").contains("reset"))
        .count();
    assert!(resets >= 3, "each leaver is a reset: {}", dump(&events));
    assert!(
        events.iter().any(
            |e| e["event"] == "return" && (e["errno"] == "EPIPE" || e["errno"] == "ECONNRESET")
        ),
        "EPIPE or ECONNRESET is narrated"
    );
}

/// SO_LINGER with a zero timeout: close() sends RST instead of FIN.
fn set_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsFd;
    let linger = nix::sys::socket::sockopt::Linger;
    nix::sys::socket::setsockopt(
        &stream.as_fd(),
        linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .expect("SO_LINGER");
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    let root = site("stall");
    big_file(&root, 16);
    let (server, addr) = server(&[
        "--root",
        root.to_str().expect("utf-8"),
        "--send-timeout",
        "0.5",
    ]);
    let mut stalled = connect(addr);
    stalled
        .write_all(b"GET /big.dat HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(1500));
    // Meanwhile the server serves others.
    assert_eq!(
        exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
    let events = stop(server);
    assert!(
        infos(&events, "connection_closed")
            .iter()
            .any(|e| e["value"]["why"]
                .as_str()
                .unwrap_or("")
                .contains("send timeout")),
        "{}",
        dump(&events)
    );
    drop(stalled);
}

#[test]
fn the_three_models_answer_the_same_requests() {
    let root = site("models");
    for model in ["epoll", "iterative", "thread"] {
        let (server, addr) = server(&["--model", model, "--root", root.to_str().expect("utf-8")]);
        let mut stream = connect(addr);
        for (path, status) in [
            ("/hello.txt", 200),
            ("/missing", 404),
            ("/empty.txt", 200),
            ("/", 200),
        ] {
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
            let reply = read_reply(&mut stream, false);
            assert_eq!(reply.status, status, "{model} {path}");
            if path == "/hello.txt" {
                assert_eq!(reply.body, b"hello, world\n", "{model}");
            }
        }
        // (Iterative: curl is served once this connection is gone.)
        drop(stream);
        let (code, body, err) = curl(&[&format!("http://{addr}/bin.dat")]);
        assert_eq!(code, 0, "{model}: {err}");
        assert_eq!(
            body,
            std::fs::read(root.join("bin.dat")).expect("bin"),
            "{model}"
        );
        let events = stop(server);
        assert!(infos(&events, "response").len() >= 4, "{model}");
    }
}

#[test]
fn iterative_keeps_the_second_client_waiting_while_the_first_holds_on() {
    let (server, addr) = server_with(
        &["--rate", "0"],
        &["--model", "iterative", "--header-timeout", "5"],
    );
    // The first client connects and sends half a request.
    let mut first = connect(addr);
    first.write_all(b"GET /first HTTP/1.1\r\n").expect("half");
    std::thread::sleep(Duration::from_millis(200));
    // The second sends a whole request, and waits.
    let mut second = connect(addr);
    second
        .write_all(b"GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("second");
    second
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    assert!(
        second.read(&mut byte).is_err(),
        "no answer while the first client holds the server"
    );
    // The first finishes; then both are answered, in turn.
    first
        .write_all(b"Host: x\r\nConnection: close\r\n\r\n")
        .expect("rest");
    assert_eq!(read_reply(&mut first, false).status, 200);
    second.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let reply = read_reply(&mut second, false);
    assert!(String::from_utf8_lossy(&reply.body).contains("/second"));
    let events = stop(server);
    assert!(
        facts(&events, "accept_queue")
            .iter()
            .any(|e| e["value"]["waiting"].as_u64().unwrap_or(0) >= 1),
        "the kernel's accept queue shows the waiting client: {}",
        dump(&events)
    );
    assert!(!infos(&events, "clients_waiting").is_empty());
    assert!(
        facts(&events, "last_data_recv")
            .iter()
            .any(|e| e["value"].as_u64().unwrap_or(0) >= 1000),
        "the second client's time in the queue is read from TCP_INFO"
    );
}

#[test]
fn thread_model_serves_a_fast_client_while_a_slow_one_holds_its_thread() {
    let (server, addr) = server(&["--model", "thread"]);
    let mut slow = connect(addr);
    slow.write_all(b"GET /slow HTTP/1.1\r\n").expect("half");
    let started = Instant::now();
    let reply = exchange(addr, b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    // Ctrl-C while the slow client's thread waits in recv(): the main
    // thread shuts its connection down, joins every thread, exits 130.
    let pid = server.pid();
    let (status, events, stderr) = server.signal(Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "stderr: {stderr}");
    assert_no_children(pid);
    assert!(
        closed_by_server(&mut slow),
        "the slow client's connection is closed"
    );
    assert!(infos(&events, "thread_for_connection").len() >= 2);
    let threads = infos(&events, "threads");
    assert_eq!(threads.len(), 1);
    assert_eq!(
        threads[0]["value"]["started"],
        threads[0]["value"]["finished"]
    );
    assert!(!returns(&events, "shutdown").is_empty());
    // The kernel counts them: main, the stop helper, and two connections.
    assert!(
        facts(&events, "threads")
            .iter()
            .any(|e| e["value"].as_i64().unwrap_or(0) >= 4),
        "{}",
        dump(&events)
    );
}

#[test]
fn a_root_that_is_not_a_directory_is_a_clear_error() {
    let output = netlab()
        .args([
            "http-server",
            "--port",
            "0",
            "--root",
            "/nonexistent/netlab-root",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/netlab-root"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    let output = netlab()
        .args(["http-server", "--header-timeout", "-1"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_closing_response_with_bytes_left_unread_is_delivered_whole() {
    let root = site("linger");
    big_file(&root, 4);
    let big = std::fs::read(root.join("big.dat")).expect("big");
    for model in ["epoll", "iterative", "thread"] {
        // --rate 0: every step is shown, so the shutdown step can be found.
        let (server, addr) = server_with(
            &["--rate", "0"],
            &["--model", model, "--root", root.to_str().expect("utf-8")],
        );
        let mut stream = connect(addr);
        // The first request closes the connection; 170 KB follow it, which
        // the server never reads: they stay in its socket's receive queue.
        let mut bytes = b"GET /big.dat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec();
        bytes.extend_from_slice(&b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5000));
        stream.write_all(&bytes).expect("send");
        // Read late: most of the 4 MB still waits in the server's send
        // buffer when it is done writing. A close() with unread bytes would
        // send RST and throw that away; the server lingers instead.
        std::thread::sleep(Duration::from_millis(300));
        let reply = read_reply(&mut stream, false);
        assert_eq!(reply.status, 200, "{model}");
        assert_eq!(reply.header("Connection").as_deref(), Some("close"));
        assert!(reply.body == big, "{model}: the whole file arrives");
        let mut rest = Vec::new();
        let end = stream.read_to_end(&mut rest);
        assert!(
            matches!(end, Ok(0)),
            "{model}: then a clean end, got {end:?}"
        );
        drop(stream);
        let events = stop(server);
        assert!(!returns(&events, "shutdown").is_empty(), "{model}");
    }
}

#[test]
fn a_client_trickling_its_head_gets_408_in_every_model() {
    for model in ["epoll", "iterative", "thread"] {
        let (server, addr) = server(&["--model", model, "--header-timeout", "0.5"]);
        let mut slow = connect(addr);
        slow.write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
            .expect("start");
        // One byte every 100 ms: the socket is never quiet for a whole
        // SO_RCVTIMEO tick, yet the head never completes.
        let mut writer = slow.try_clone().expect("clone");
        let trickle = std::thread::spawn(move || {
            for _ in 0..40 {
                if writer.write_all(b"a").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let started = Instant::now();
        assert_eq!(read_reply(&mut slow, false).status, 408, "{model}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{model}: {:?}",
            started.elapsed()
        );
        assert!(closed_by_server(&mut slow), "{model}");
        trickle.join().expect("trickle");
        stop(server);
    }
}

#[test]
fn quiet_prints_the_listening_line_and_nothing_per_request() {
    let (server, addr) = server_with(&["--quiet"], &[]);
    for _ in 0..3 {
        assert_eq!(
            exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status,
            200
        );
    }
    let events = stop(server);
    let kinds: Vec<String> = events
        .iter()
        .map(|e| format!("{}:{}", e["event"], e["key"]))
        .collect();
    assert_eq!(
        kinds,
        ["\"start\":null", "\"info\":\"listening\"", "\"end\":null"],
        "{}",
        dump(&events)
    );
}

/// The `t` (seconds since start) of an event.
fn at(event: &Value) -> f64 {
    event["t"].as_f64().expect("t")
}

/// A burst of short connections (more steps than --rate 50 shows), then a
/// pause, then one request: the burst's summary comes when the traffic
/// stops, not when the late client arrives, and the late request is
/// narrated in full. (Review defect 1.)
fn burst_then_a_late_request(model: &str) {
    let (server, addr) = server(&["--model", model]);
    for _ in 0..25 {
        let reply = exchange(
            addr,
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(reply.status, 200);
    }
    std::thread::sleep(Duration::from_millis(2500));
    let reply = exchange(addr, b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(reply.status, 200);
    let events = stop(server);
    let late = infos(&events, "request")
        .into_iter()
        .find(|e| e["value"]["target"] == "/late")
        .unwrap_or_else(|| panic!("{model}: the late request is narrated\n{}", dump(&events)));
    let summaries: Vec<&Value> = events.iter().filter(|e| e["event"] == "summary").collect();
    assert!(!summaries.is_empty(), "{model}: the burst is summarised");
    assert!(
        summaries.iter().any(|s| at(s) + 1.0 < at(late)),
        "{model}: a summary is printed when the burst ends, well before the late request at {}: {:?}",
        at(late),
        summaries.iter().map(|s| at(s)).collect::<Vec<_>>()
    );
}

#[test]
fn a_bursts_summary_comes_when_it_ends_in_epoll() {
    burst_then_a_late_request("epoll");
}

#[test]
fn a_bursts_summary_comes_when_it_ends_in_thread() {
    burst_then_a_late_request("thread");
}

/// The root's open at start-up, then per request openat2 and fstat, the
/// pread on the fd openat2 returned, and that fd's close. (Defect 2.)
#[test]
fn the_file_system_calls_are_steps_from_open_to_close() {
    let root = site("trace");
    let (server, addr) = server_with(&["--rate", "0"], &["--root", root.to_str().expect("utf-8")]);
    let reply = exchange(addr, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(reply.body, b"hello, world\n");
    let events = stop(server);
    let opened = returns(&events, "open");
    assert!(
        opened.iter().any(|e| e["value"].as_i64() == Some(3)),
        "the root is opened as fd 3: {}",
        dump(&events)
    );
    let file = returns(&events, "openat2")
        .first()
        .and_then(|e| e["value"].as_i64())
        .unwrap_or_else(|| panic!("openat2 is a step with the file's fd\n{}", dump(&events)));
    let names = calls(&events);
    assert!(
        in_order(&names, &["openat2", "fstat", "pread", "writev", "close"]),
        "{names:?}"
    );
    let args_of = |call: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| is_call(e, call))
            .map(|e| e["args"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(args_of("pread")
        .iter()
        .any(|a| a.starts_with(&format!("fd {file},"))));
    assert!(
        args_of("close")
            .iter()
            .any(|a| a.starts_with(&format!("fd {file} "))),
        "the file's fd is closed: {:?}",
        args_of("close")
    );
}

/// A client with a tiny receive buffer asks for a large file and reads
/// nothing: every model drops it after --send-timeout, not later. (Defect 3.)
#[test]
fn the_send_timeout_holds_in_every_model() {
    let root = site("sendtimeout");
    big_file(&root, 16);
    let root = root.to_str().expect("utf-8").to_string();
    // The three models at once, each with its own server.
    let checks: Vec<_> = ["iterative", "thread", "epoll"]
        .into_iter()
        .map(|model| {
            let root = root.clone();
            std::thread::spawn(move || send_timeout_holds(model, &root))
        })
        .collect();
    for check in checks {
        check.join().expect("the check passes");
    }
}

fn send_timeout_holds(model: &str, root: &str) {
    use nix::sys::socket::{self as sock, sockopt};
    let (server, addr) = server(&["--model", model, "--root", root, "--send-timeout", "0.3"]);
    let socket = sock::socket(
        sock::AddressFamily::Inet,
        sock::SockType::Stream,
        sock::SockFlag::empty(),
        None,
    )
    .expect("socket");
    // A tiny receive buffer: the kernel soon stops taking the response.
    sock::setsockopt(&socket, sockopt::RcvBuf, &4096).expect("SO_RCVBUF");
    let SocketAddr::V4(v4) = addr else {
        unreachable!("the server is on 127.0.0.1")
    };
    sock::connect(
        std::os::fd::AsRawFd::as_raw_fd(&socket),
        &sock::SockaddrIn::from(v4),
    )
    .expect("connect");
    let mut stalled = TcpStream::from(socket);
    stalled
        .write_all(b"GET /big.dat HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(1500));
    let events = stop(server);
    let closed = infos(&events, "connection_closed")
        .into_iter()
        .find(|e| {
            e["value"]["why"]
                .as_str()
                .unwrap_or("")
                .contains("send timeout")
        })
        .unwrap_or_else(|| panic!("{model}: dropped for the send timeout\n{}", dump(&events)));
    let accepted = returns(&events, "accept")
        .into_iter()
        .find(|e| e["ok"] == true)
        .expect("accepted");
    let took = at(closed) - at(accepted);
    assert!(
        took < 1.0,
        "{model}: dropped {took:.2} s after accept(), with --send-timeout 0.3"
    );
    // The blocking models' sends may wait, and say so.
    if model != "epoll" {
        assert!(
            events
                .iter()
                .any(|e| is_call(e, "send") && e["blocking"] == true),
            "{model}: a blocking send is narrated as blocking"
        );
    }
    drop(stalled);
}

/// Ctrl-C in --model thread: the main thread's shutdown() ends the
/// connections, and their threads say so rather than blame the client.
/// (Defect 4.)
#[test]
fn ctrl_c_in_thread_narrates_our_shutdown_as_ours() {
    let root = site("threadstop");
    big_file(&root, 16);
    let (server, addr) = server_with(
        &["--rate", "0"],
        &["--model", "thread", "--root", root.to_str().expect("utf-8")],
    );
    let mut waiting = connect(addr);
    waiting.write_all(b"GET /slow HTTP/1.1\r\n").expect("half");
    let mut stalled = connect(addr);
    stalled
        .write_all(b"GET /big.dat HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(500));
    let (status, events, stderr) = server.signal(Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "stderr: {stderr}");
    let why: Vec<String> = infos(&events, "connection_closed")
        .iter()
        .map(|e| e["value"]["why"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        why,
        ["server stopping", "server stopping"],
        "{}",
        dump(&events)
    );
    let notes: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "note")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        !notes.iter().any(|n| n.contains("the client sent FIN")),
        "{notes:?}"
    );
    assert!(
        !notes.iter().any(|n| n.starts_with("The client is gone")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("our own shutdown()")),
        "{notes:?}"
    );
    drop((waiting, stalled));
}

/// The 408 is built like every other response (Date, Server netlab/...),
/// and says which part was late. (Defect 6.)
#[test]
fn the_408_has_the_usual_headers_and_says_what_was_late() {
    let (server, addr) = server(&["--header-timeout", "0.3"]);
    let mut head_late = connect(addr);
    head_late
        .write_all(b"GET / HTTP/1.1\r\nHost: x")
        .expect("half");
    let mut body_late = connect(addr);
    body_late
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .expect("short body");
    for stream in [&mut head_late, &mut body_late] {
        let reply = read_reply(stream, false);
        assert_eq!(reply.status, 408, "{}", reply.head);
        assert!(reply.header("Date").is_some(), "{}", reply.head);
        assert!(
            reply
                .header("Server")
                .is_some_and(|s| s.starts_with("netlab/")),
            "{}",
            reply.head
        );
    }
    let events = stop(server);
    let whys: Vec<String> = infos(&events, "response")
        .iter()
        .filter(|e| e["value"]["status"] == 408)
        .map(|e| e["value"]["why"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(whys.len(), 2, "{whys:?}");
    assert!(whys.iter().any(|w| w.contains("body")), "{whys:?}");
    assert!(whys.iter().any(|w| !w.contains("body")), "{whys:?}");
}

/// A head timeout longer than the send timeout: the 408 still goes out in
/// the blocking models, since each response's send timeout starts when its
/// sending starts, not at the request's last byte. (Review 2, item 1.)
#[test]
fn the_408_goes_out_when_the_head_timeout_exceeds_the_send_timeout() {
    for model in ["iterative", "thread", "epoll"] {
        let (server, addr) = server(&[
            "--model",
            model,
            "--header-timeout",
            "0.6",
            "--send-timeout",
            "0.3",
        ]);
        let mut slow = connect(addr);
        slow.write_all(b"GET / HTTP/1.1\r\n").expect("half a head");
        let reply = read_reply(&mut slow, false);
        assert_eq!(reply.status, 408, "{model}: {}", reply.head);
        let events = stop(server);
        let endings: Vec<String> = events
            .iter()
            .filter(|e| e.to_string().contains("send timeout"))
            .map(|e| e.to_string())
            .collect();
        assert!(endings.is_empty(), "{model}: {endings:?}");
    }
}

/// Out of descriptors with clients still arriving: the warnings come at
/// most once a second (not ten times), and the extra clients are turned
/// away (their connection ends) instead of waiting. (Defect 8.)
#[test]
fn running_out_of_descriptors_warns_once_a_second_and_turns_clients_away() {
    use std::os::unix::process::CommandExt;
    let mut cmd = netlab();
    // --rate 0: every step is shown, so the turned-away clients can be counted.
    cmd.args([
        "--json",
        "--rate",
        "0",
        "http-server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 120,
                rlim_max: 120,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut server = Demo::spawn(cmd);
    let addr = server.listening_addr();
    // More idle connections than the server has descriptors left.
    let clients: Vec<TcpStream> = (0..130).map(|_| connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let events = stop(server);
    // Each turned-away client: the spare is closed, the client accepted
    // into its number and closed at once, and the spare opened again.
    let turned_away = events
        .iter()
        .filter(|e| is_call(e, "close") && e["args"].as_str().unwrap_or("").contains("the spare"))
        .count();
    let warnings = events.iter().filter(|e| e["event"] == "warning").count();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} warnings\n{}",
        dump(&events)
    );
    assert!(turned_away >= 5, "{turned_away} clients were turned away");
    drop(clients);
}

/// Thread model out of descriptors, then the clients leave: the next
/// healthy client is served, not accepted after a wait and closed (a
/// blocking accept() fails with EMFILE even when no client waits, and the
/// spare must not be spent then). (Review 2, item 2.)
#[test]
fn after_running_out_of_descriptors_the_next_client_is_served_in_thread() {
    use std::os::unix::process::CommandExt;
    let mut cmd = netlab();
    cmd.args([
        "--json",
        "--rate",
        "0",
        "http-server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--model",
        "thread",
    ]);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 16,
                rlim_max: 16,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut server = Demo::spawn(cmd);
    let addr = server.listening_addr();
    let clients: Vec<TcpStream> = (0..10).map(|_| connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(clients);
    std::thread::sleep(Duration::from_millis(1000));
    let reply = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(reply.status, 200, "{}", reply.head);
    stop(server);
}

/// The listing leaves out what the server would refuse with 403: a FIFO
/// and a name with a backslash. (Review 2, item 4.)
#[test]
fn the_listing_links_only_what_the_server_serves() {
    let dir = site("listing-refused");
    std::fs::remove_file(dir.join("index.html")).expect("no index");
    nix::unistd::mkfifo(
        &dir.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    std::fs::write(dir.join("back\\slash.txt"), "x\n").expect("backslash");
    let root = dir.to_str().expect("utf-8 path");
    let (server, addr) = server(&["--root", root]);
    let reply = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let page = String::from_utf8_lossy(&reply.body).to_string();
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert!(page.contains("hello.txt"), "{page}");
    assert!(!page.contains("pipe"), "{page}");
    assert!(!page.contains("slash"), "{page}");
    stop(server);
}
