//! The probes about what a request asks for: files that exist (text and
//! binary), one that does not, HEAD, and paths that try to leave the root.
//! Each request goes on a new connection with `Connection: close`.

use std::time::{Duration, Instant};

use super::exchange::{exchange, request, Broken};
use super::*; // the hints and the helpers that check a response
use crate::check::net::{self, End};
use crate::check::session::{Outcome, Target};

/// `get-file`: five files, each on a new connection, must come back whole
/// and correctly labelled. A head whose lines end in a bare \n is a warning.
pub(super) fn get_file(target: Target, deadline: Instant) -> Outcome {
    let expected = "200 OK with the file's exact bytes, Content-Length equal to its size in bytes, and the Content-Type of its extension";
    let mut done = Vec::new();
    let mut bare_lf = None;
    for file in [
        &files::INDEX,
        &files::NOTES,
        &files::STYLE,
        &files::SUB_PAGE,
        &files::SPACED,
    ] {
        let what = format!("GET {}", file.url);
        let checked = fetch(target.addr, file, deadline).and_then(|response| {
            check_bytes(&what, &response, file)?;
            check_type(&what, &response, file)?;
            Ok(response)
        });
        match checked {
            Ok(response) => {
                if response.bare_lf && bare_lf.is_none() {
                    bare_lf = Some(format!("{what}: {}", response.summary()));
                }
                done.push(served(file, &response));
            }
            Err(miss) => return miss.outcome(expected),
        }
    }
    let happened = format!("200 OK for {}", done.join(", "));
    // A query is no part of the file name: the sixth GET is a warning.
    let file = &files::STYLE;
    let url = format!("{}?v=1", file.url);
    let what = format!("GET {url}");
    let (result, _conn) = exchange(
        target.addr,
        &request("GET", &url, target.addr, true),
        true,
        deadline,
    );
    let queried = result
        .map_err(|failed| miss_of(&what, failed))
        .and_then(|response| {
            check_bytes(&what, &response, file)?;
            check_type(&what, &response, file).map_err(|miss| Miss {
                hint: HINT_QUERY_TYPE,
                ..miss
            })
        });
    if let Err(miss) = queried {
        // A request with a query that ended the server is no warning.
        if !miss.answered {
            if let Some(ended) = ended_after(&target) {
                return Outcome::fail(
                    expected,
                    format!("{happened}; but {}, and {ended}", miss.happened),
                    HINT_QUERY_CRASH,
                )
                .about_a_crash();
            }
        }
        let hint = if miss.hint == HINT_QUERY_TYPE {
            HINT_QUERY_TYPE
        } else {
            HINT_QUERY
        };
        return Outcome::warn(
            expected,
            format!(
                "{happened}; but {}, although the same file without ?v=1 came back right",
                miss.happened
            ),
            hint,
        );
    }
    let happened = format!("{happened}; and for {url}, the same file");
    match bare_lf {
        Some(first) => Outcome::warn(
            expected,
            format!("{happened}; but the head's lines end with \\n, not \\r\\n ({first})"),
            HINT_CRLF,
        ),
        None => Outcome::pass(expected, happened),
    }
}

/// `binary`: every byte value, unchanged: a file read as text fails here.
/// Its Content-Type is judged here only when `judge_type` (get-file found
/// the other files' types right; otherwise it has said so).
pub(super) fn binary(target: Target, deadline: Instant, judge_type: bool) -> Outcome {
    let file = &files::LOGO;
    let size = file.bytes().len();
    let expected = format!(
        "200 OK with all {size} bytes of the PNG unchanged, Content-Length: {size}, Content-Type: image/png"
    );
    let what = format!("GET {}", file.url);
    let ended_before = target.ended();
    let response = match fetch(target.addr, file, deadline) {
        Ok(response) => response,
        // No answer from a program that had ended before the request: the
        // file's mode has nothing to do with it.
        Err(miss) if !miss.answered => {
            let before = ended_before.is_some() || miss.hint == HINT_CONNECT;
            match ended_before.or_else(|| ended_after(&target)) {
                Some(ended) if before => {
                    return Outcome::fail(
                        &expected,
                        format!(
                            "{what}: your program had already ended ({ended}), so no response came"
                        ),
                        HINT_ENDED,
                    )
                }
                // It ended during this request: reading the file as text is
                // the usual reason (a UnicodeDecodeError).
                Some(ended) => {
                    return Outcome::fail(
                        &expected,
                        format!("{}, and {ended} during this request", miss.happened),
                        HINT_BINARY_SILENT,
                    )
                }
                // The text files came back, this one did not: reading it as
                // text is the usual reason (a UnicodeDecodeError ends the
                // handler).
                None if miss.hint == HINT_NO_RESPONSE => {
                    return Outcome::fail(&expected, miss.happened, HINT_BINARY_SILENT)
                }
                None => return miss.outcome(&expected),
            }
        }
        Err(miss) => return miss.outcome(&expected),
    };
    if let Err(miss) = check_bytes(&what, &response, file) {
        return miss.outcome(&expected);
    }
    let note = match check_type(&what, &response, file) {
        Ok(()) => "",
        Err(miss) if judge_type => return miss.outcome(&expected),
        Err(_) => " (the wrong Content-Type: see get-file)",
    };
    Outcome::pass(
        &expected,
        format!(
            "200 OK for {}, byte for byte{note}",
            served(file, &response)
        ),
    )
}

/// `not-found`: 404 for a missing file, and the server still serves the
/// next request.
pub(super) fn not_found(target: Target, deadline: Instant) -> Outcome {
    let expected = "404 Not Found for a file that does not exist, then 200 for the next request";
    let missing = "/no-such-file.html";
    let what = format!("GET {missing}");
    let (result, _conn) = exchange(
        target.addr,
        &request("GET", missing, target.addr, true),
        true,
        deadline,
    );
    let answer = match result {
        Ok(response) if response.status == 404 => response.summary(),
        Ok(response) => {
            return Outcome::fail(
                expected,
                format!("{what}: {}", response.summary()),
                HINT_404,
            )
        }
        // A server that fails on the missing file without answering is
        // the bug this probe is for, whichever way the connection ended.
        Err(failed) if failed.broken == Broken::NoResponse => {
            return Outcome::fail(expected, format!("{what}: {}", failed.what), HINT_404)
        }
        Err(failed) => return miss_of(&what, failed).outcome(expected),
    };
    let file = &files::STYLE;
    let next = format!("GET {}", file.url);
    let checked = fetch(target.addr, file, deadline)
        .and_then(|response| check_served(&next, &response, file));
    match checked {
        Ok(served) => Outcome::pass(expected, format!("{what}: {answer}; then {served}")),
        Err(miss) => Outcome::fail(
            expected,
            format!("{what}: {answer}; but then {}", miss.happened),
            survival_hint(&miss),
        ),
    }
}

/// `head`: GET's status line and headers, and not one byte after them.
/// "GET's" is what this server answers to GET (its head only: whether the
/// file itself comes back right is get-file's question).
pub(super) fn head(target: Target, deadline: Instant) -> Outcome {
    let file = &files::STYLE;
    let size = file.bytes().len();
    let expected = format!(
        "the status and Content-Length that GET gets (200 OK and {size} for a correct server), and no body"
    );
    let what = format!("HEAD {}", file.url);
    // GET's head, on its own connection; if none comes, the file's size.
    let (get, _conn) = exchange(
        target.addr,
        &request("GET", file.url, target.addr, true),
        false,
        deadline,
    );
    let (want_status, want_length, as_get) = match get {
        Ok(get) => (
            get.status,
            get.content_length,
            format!("GET {} answers {}", file.url, get.summary()),
        ),
        Err(_) => (200, Some(size), format!("the file has {size} bytes")),
    };
    let (result, conn) = exchange(
        target.addr,
        &request("HEAD", file.url, target.addr, true),
        false,
        deadline,
    );
    let response = match result {
        Ok(response) => response,
        Err(failed) if failed.broken == Broken::NoResponse => {
            return Outcome::fail(
                &expected,
                format!("{what}: {}", failed.what),
                HINT_HEAD_STATUS,
            )
        }
        Err(failed) => return miss_of(&what, failed).outcome(&expected),
    };
    if response.status != want_status {
        return Outcome::fail(
            &expected,
            format!("{what}: {}, but {as_get}", response.summary()),
            HINT_HEAD_STATUS,
        );
    }
    if response.content_length != want_length {
        return Outcome::fail(
            &expected,
            format!("{what}: {}, but {as_get}", response.summary()),
            HINT_HEAD_LENGTH,
        );
    }
    // Whatever follows the head is a body that must not be there. We asked
    // for Connection: close, so a correct server closes now; one that keeps
    // the connection open gets half a second to show it sends nothing.
    let Some(mut conn) = conn else {
        return Outcome::fail(&expected, "netlab lost its connection", HINT_NETLAB);
    };
    let (extra, end) =
        conn.rest(Instant::now() + Duration::from_millis(500).min(net::left(deadline)));
    if !extra.is_empty() {
        let which = if extra == file.bytes() {
            format!("the file's {} bytes", extra.len())
        } else {
            format!("{} bytes", extra.len())
        };
        return Outcome::fail(
            &expected,
            format!(
                "{what}: {}, then {which} followed the head: {}",
                response.summary(),
                net::show(&extra)
            ),
            HINT_HEAD_BODY,
        );
    }
    let after = match end {
        End::Eof => "then the connection closed with no body".to_string(),
        End::TimedOut => "then no body bytes within half a second".to_string(),
        other => format!("then {} with no body", other.describe()),
    };
    Outcome::pass(expected, format!("{what}: {}, {after}", response.summary()))
}

/// `traversal`: paths that climb out of the root (plainly, percent-encoded,
/// with an encoded slash, through a subdirectory, absolute) must be refused;
/// a response that holds the secret's token, or any 2xx, fails.
pub(super) fn traversal(target: Target, deadline: Instant) -> Outcome {
    let expected = "every request for a path outside the root refused (403, 404 or another 4xx), never the secret file";
    let Some(root) = target.root.clone() else {
        return Outcome::fail(expected, "netlab has no directory for {root}", HINT_NETLAB);
    };
    let (token, secret) = match (files::secret_token(&root), files::secret_path(&root)) {
        (Ok(token), Ok(secret)) => (token, secret),
        (Err(err), _) | (_, Err(err)) => {
            return Outcome::fail(
                expected,
                format!("netlab could not read its own secret file: {err}"),
                HINT_NETLAB,
            )
        }
    };
    let mut attacks: Vec<String> = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2E%2E/%2E%2E/secret.txt",
    ]
    .iter()
    .map(|path| path.to_string())
    .collect();
    // The secret's absolute path after the slash ("//tmp/.../secret.txt"):
    // os.path.join(root, "/tmp/...") throws the root away.
    let absolute = secret.to_string_lossy().into_owned();
    if absolute.starts_with('/')
        && absolute
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"%?#".contains(&b))
    {
        attacks.push(format!("/{absolute}"));
    }
    let mut answers = Vec::new();
    for path in &attacks {
        let what = format!("GET {path}");
        let (result, _conn) = exchange(
            target.addr,
            &request("GET", path, target.addr, true),
            true,
            deadline,
        );
        let (got, answer) = match result {
            Ok(response) => {
                let mut got = response.body.clone();
                for (_, value) in &response.headers {
                    got.extend_from_slice(value.as_bytes());
                }
                let answer = response.summary();
                if (200..300).contains(&response.status) && !contains(&got, &token) {
                    return Outcome::fail(
                        expected,
                        format!("{what}: {answer}, {} bytes: {} (there is no file of that name under the root)", response.body.len(), net::show(&response.body)),
                        HINT_TRAVERSAL,
                    );
                }
                (got, format!("{} {}", response.status, response.reason))
            }
            Err(failed) if failed.broken == Broken::NoConnect => {
                return miss_of(&what, failed).outcome(expected)
            }
            // Silence is not a refusal: the client waits, and so do we.
            Err(failed) if failed.got.is_empty() && failed.end == Some(End::TimedOut) => {
                return miss_of(&what, failed).outcome(expected)
            }
            // A connection closed without an answer refuses the request.
            Err(failed) => (
                failed.got.clone(),
                format!("no valid response ({})", failed.what),
            ),
        };
        if contains(&got, &token) {
            return Outcome::fail(
                expected,
                format!(
                    "{what}: the response holds the secret file {} from outside the root: {}",
                    secret.display(),
                    net::show(&got)
                ),
                HINT_TRAVERSAL,
            );
        }
        answers.push(format!("{what}: {answer}"));
    }
    Outcome::pass(expected, answers.join("; "))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
