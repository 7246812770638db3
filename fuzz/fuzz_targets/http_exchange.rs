//! Fuzz target: the HTTP request-handling core, bytes in, responses out.
//!
//! The core (`src/demos/http/exchange/`) has no sockets and no narrator, so
//! this target includes its source directly and drives it the way one
//! connection would: hand it everything received so far, send the reply,
//! drop the `consumed` bytes, and ask again until it needs more bytes or the
//! connection would close.
//!
//! Run it with `make fuzz` (ten minutes) or
//! `cargo +nightly fuzz run http_exchange -- -max_total_time=60`.
//!
//! Every input goes to two sites: one serving a fixture directory
//! (`--root`), and the built-in page that shows the request (no root).
//!
//! Invariants checked on every reply, for any input:
//! - `handle` never panics;
//! - `consumed` is at least 1 and at most the bytes it was given;
//! - the head starts with `HTTP/1.1 `, a 3-digit status equal to
//!   `response.status` and a space, and ends with the blank line (CRLF CRLF);
//!   every line ends with CRLF and holds no other CR or LF (no header can be
//!   smuggled in through a reflected path); Date and Server are there;
//! - Content-Length equals the length of the body sent (HEAD excepted: it
//!   announces the length of the body it leaves out; 1xx, 204 and 304 have
//!   no body);
//! - no response serves a file from outside the root: every file body lies
//!   under the root once symlinks are resolved, and no body contains the
//!   secret kept next to the root (which a symlink inside the root points to);
//! - no body holds the tag `<x-fuzz` (a seed puts it in the target and the
//!   headers): the page and the error pages escape what the client sent;
//! - the built-in page never answers with a file.

#![no_main]

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/demos/http/exchange/mod.rs"]
mod exchange;

use exchange::{Body, Limits, Outcome, Site};

/// What the file outside the root contains; no response may ever carry it.
/// A NUL and a `<` make sure no response can hold it by echoing the request
/// (a path with NUL is refused, and the pages escape `<` and show NUL as
/// `\x00`): libFuzzer soon learns these bytes from the comparisons below and
/// puts them into requests.
const SECRET: &[u8] = b"netlab-fuzz\0<secret> outside the root";

/// Small limits, so that short inputs reach 414, 431 and 413 too.
const LIMITS: Limits = Limits {
    max_line: 512,
    max_head: 2048,
    max_headers: 16,
    max_body: 1024,
};

/// The fixture, built once per fuzzing process.
struct Fixture {
    /// `--root` over the fixture directory.
    files: Site,
    /// No `--root`: the built-in page that shows the request.
    builtin: Site,
    /// The canonical root, to compare file paths against.
    root: PathBuf,
}

/// A fixed clock: the Date header does not change between runs, so a crash
/// replays exactly.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000)
}

/// Where the fixture lives: a directory of its own per fuzzing process.
static BASE: OnceLock<PathBuf> = OnceLock::new();

/// Remove the fixture when libFuzzer exits (it ends with exit(), after
/// which no Rust destructor runs).
extern "C" fn remove_fixture() {
    if let Some(base) = BASE.get() {
        let _ = fs::remove_dir_all(base);
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let base = BASE.get_or_init(|| {
            std::env::temp_dir().join(format!("netlab-fuzz-{}", std::process::id()))
        });
        let _ = fs::remove_dir_all(base);
        build_fixture(base).expect("cannot build the fuzz fixture in the temp directory");
        // SAFETY: atexit only stores the function pointer; remove_fixture
        // touches nothing but BASE, which lives as long as the process.
        unsafe { libc::atexit(remove_fixture) };
        let site = Site::new(Some(&base.join("root"))).expect("Site::new refused the fixture root");
        let root = base
            .join("root")
            .canonicalize()
            .expect("canonicalize the fixture root");
        let builtin = Site::new(None).expect("Site::new without a root");
        Fixture {
            files: site,
            builtin,
            root,
        }
    })
}

/// base/outside/secret.txt            the file no response may serve
/// base/root/hello.txt                text
/// base/root/data.bin                 all 256 byte values
/// base/root/a b.txt                  a name that needs percent-encoding
/// base/root/sub/index.html           a directory with an index
/// base/root/sub/style.css
/// base/root/empty/                   a directory without one (a listing)
/// base/root/escape.txt -> ../outside/secret.txt   symlinks out of the root
/// base/root/escape-dir -> ../outside
fn build_fixture(base: &Path) -> std::io::Result<()> {
    let root = base.join("root");
    fs::create_dir_all(base.join("outside"))?;
    fs::write(base.join("outside/secret.txt"), SECRET)?;
    fs::create_dir_all(root.join("sub"))?;
    fs::create_dir_all(root.join("empty"))?;
    fs::write(root.join("hello.txt"), b"hello from the fuzz root\n")?;
    fs::write(root.join("data.bin"), (0..=255u8).collect::<Vec<u8>>())?;
    fs::write(root.join("a b.txt"), b"a name with a space\n")?;
    fs::write(
        root.join("sub/index.html"),
        b"<!doctype html><title>sub</title>\n",
    )?;
    fs::write(root.join("sub/style.css"), b"body { color: black }\n")?;
    symlink("../outside/secret.txt", root.join("escape.txt"))?;
    symlink("../outside", root.join("escape-dir"))?;
    Ok(())
}

/// The value of the first header called `name` (any case) in a response head.
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// A tag that would be live HTML if the built-in page copied a request into
/// itself without escaping it (a seed carries it in the target and headers).
const MARKUP: &[u8] = b"<x-fuzz";

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    connection(&fixture.files, Some(&fixture.root), data);
    connection(&fixture.builtin, None, data);
});

/// Feed one connection's bytes to `handle`, request after request, and
/// check every reply. `root` is the served directory, None for the page.
fn connection(site: &Site, root: Option<&Path>, data: &[u8]) {
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 40000));
    let mut rest = data;
    // One connection: answer requests until the core needs more bytes, the
    // response closes the connection, or the input is used up.
    while !rest.is_empty() {
        let exchange = match exchange::handle(site, &LIMITS, rest, peer, now()) {
            Outcome::NeedMore => break,
            Outcome::Reply(exchange) => exchange,
        };
        let response = &exchange.response;
        assert!(
            exchange.consumed > 0,
            "consumed 0 bytes: the connection would loop forever"
        );
        assert!(
            exchange.consumed <= rest.len(),
            "consumed {} of {} bytes",
            exchange.consumed,
            rest.len()
        );

        // The head: status line and the blank line.
        let head = std::str::from_utf8(&response.head).expect("the response head is not UTF-8");
        let status = format!("HTTP/1.1 {:03} ", response.status);
        assert!(
            (100..=999).contains(&response.status),
            "status {}",
            response.status
        );
        assert!(
            head.starts_with(&status),
            "head does not start with {status:?}: {head:?}"
        );
        assert!(
            head.ends_with("\r\n\r\n"),
            "head does not end with CRLF CRLF: {head:?}"
        );
        // No CR or LF except as CRLF line ends: a path reflected in a header
        // (Location) must not be able to add headers of its own.
        assert!(
            head.split("\r\n").all(|line| !line.contains(['\r', '\n'])),
            "a lone CR or LF in the head: {head:?}"
        );
        assert!(header(head, "Date").is_some(), "no Date header: {head:?}");
        assert!(
            header(head, "Server").is_some(),
            "no Server header: {head:?}"
        );
        assert_eq!(
            head.matches("\r\n\r\n").count(),
            1,
            "a blank line inside the head: {head:?}"
        );

        // The body, and what the head says about its length.
        let is_head = exchange
            .request
            .as_ref()
            .is_some_and(|req| req.method == "HEAD");
        let announced = header(head, "Content-Length").map(|value| {
            value
                .parse::<u64>()
                .expect("Content-Length is not a number")
        });
        let (sent, bytes): (u64, Option<&[u8]>) = match &response.body {
            Body::Empty => (0, None),
            Body::Bytes(bytes) => (bytes.len() as u64, Some(bytes)),
            Body::File { file, len } => {
                let Some(root) = root else {
                    panic!("the built-in page answered with a file: {head:?}");
                };
                // Which file is this really? The kernel knows: /proc/self/fd.
                let path = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
                    .expect("readlink /proc/self/fd");
                assert!(
                    path.starts_with(root),
                    "serves {} from outside the root {}",
                    path.display(),
                    root.display()
                );
                let size = file.metadata().expect("fstat the served file").len();
                assert_eq!(*len, size, "Body::File len differs from the file's size");
                (*len, None)
            }
        };
        if is_head {
            assert!(
                matches!(response.body, Body::Empty),
                "a HEAD response carries a body"
            );
        } else if matches!(response.status, 100..=199 | 204 | 304) {
            // The statuses that never have a body (RFC 9110, 6.4.1).
            assert_eq!(sent, 0, "a {} response carries a body", response.status);
            assert!(announced.is_none_or(|len| len == 0), "{head:?}");
        } else {
            assert_eq!(
                announced,
                Some(sent),
                "Content-Length differs from the body: {head:?}"
            );
        }
        if let Some(bytes) = bytes {
            assert!(
                !contains(bytes, MARKUP),
                "a body carries request text as live HTML (unescaped <): {head:?}"
            );
            assert!(
                !contains(bytes, SECRET),
                "a response body carries the secret from outside the root"
            );
        }
        if let Body::File { file, .. } = &response.body {
            // Read through a second descriptor, so the served file's offset
            // stays where the connection layer expects it (0).
            let mut content = Vec::new();
            fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
                .and_then(|mut copy| copy.read_to_end(&mut content))
                .expect("read the served file");
            assert!(
                !contains(&content, SECRET),
                "a file body is the secret from outside the root"
            );
        }

        if !response.keep_alive {
            break;
        }
        rest = &rest[exchange.consumed..];
    }
}
