//! The client's receiver process: everything the server sends, printed
//! for the person at the keyboard.
//!
//! After the login the client forks, and the child runs `receive_lines`
//! until the server says `EXIT` (we left) or `DOWN` (it stops). Its exit
//! status tells the sender which (see `client.rs`).

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::socket::MsgFlags;
use nix::unistd::Pid;
use serde_json::json;

use super::client::{ignore_stranger, Client};
use std::os::fd::RawFd;

use super::protocol::{self, parse_reply, Refusal, Reply, MAX_DATAGRAM};
use super::{die_with_parent, is_transient, recv_datagram};
use crate::narrate::Narrator;

/// The receiver's exit statuses, which tell the sender why it ended.
pub(super) const RECEIVER_GOT_EXIT: i32 = 0;
pub(super) const RECEIVER_FAILED: i32 = 1;
pub(super) const RECEIVER_SERVER_DOWN: i32 = 3;
/// The server refused a request of ours with `unknown name` or `not your
/// name`: it no longer has us at our address (it was restarted, or it
/// dropped us). The client does not log in again by itself: the line that
/// was refused is lost, and a new login could take a name someone else
/// now has; the sender ends with a clear message instead.
pub(super) const RECEIVER_FORGOTTEN: i32 = 4;

/// The receiver process: print what the server sends until EXIT or DOWN.
/// Returns its exit status.
/// `answers` is the pipe's write end: one byte there tells the sender that
/// the answer to its `/who` came.
pub(super) fn receive_lines(nar: &Narrator, client: &Client, parent: Pid, answers: RawFd) -> i32 {
    if !die_with_parent(nar, parent) {
        return RECEIVER_FAILED;
    }
    // Ctrl-C reaches every process in the terminal's foreground group.
    // The sender handles it (it sends Q and waits for our EXIT), so the
    // receiver ignores it and keeps receiving until EXIT arrives.
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    let step = nar.call("sigaction", "SIGINT, SIG_IGN");
    // SAFETY: SIG_IGN installs no code of ours.
    let _ = step.check(
        unsafe { signal::sigaction(Signal::SIGINT, &ignore) },
        |_| "0".into(),
    );
    nar.note("The receiver ignores Ctrl-C: the sender answers it by sending Q, and this process keeps receiving until the server's EXIT arrives.");
    // The protocol's limit: recvmsg() with MSG_TRUNC still tells the real
    // length of a longer datagram, so it is seen as too long, not as cut.
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        let step = nar.blocking(
            "recvmsg",
            format!("fd {}, {} bytes, MSG_TRUNC", client.fd, buf.len()),
            "waiting for what the server sends",
        );
        let datagram = match recv_datagram(client.fd, &mut buf, MsgFlags::empty()) {
            Ok(received) => received,
            Err(errno) if is_transient(errno) => {
                step.fail(errno);
                continue;
            }
            Err(errno) => {
                step.fail(errno);
                return RECEIVER_FAILED;
            }
        };
        step.ok_value(datagram.real as i64, datagram.describe(&buf));
        let from = datagram.from;
        if from != client.server {
            ignore_stranger(nar, from);
            continue;
        }
        if datagram.oversized() {
            nar.warning(
                format!(
                    "the server sent a datagram of {} bytes, more than the protocol's {MAX_DATAGRAM}; it was cut by the kernel (MSG_TRUNC) and is ignored",
                    datagram.real
                ),
                None,
            );
            continue;
        }
        let length = datagram.kept;
        let Some(reply) = parse_reply(&buf[..length]) else {
            nar.info(
                "not_a_reply",
                json!({ "from": from.to_string(), "length": length }),
                "ignored a datagram from the server that is not a reply of the protocol",
            );
            continue;
        };
        let forgotten = matches!(
            reply,
            Reply::Err(reason)
                if reason == Refusal::UnknownName.reason() || reason == Refusal::Spoofed.reason()
        );
        let line = match &reply {
            Reply::Msg { name, text } => {
                format!(
                    "{}: {}",
                    protocol::printable(name),
                    protocol::printable(text)
                )
            }
            Reply::Join(name) => format!("* {} joined", protocol::printable(name)),
            Reply::Leave(name) => format!("* {} left", protocol::printable(name)),
            Reply::Users(names) => format!("* here: {}", protocol::printable(&names.join(", "))),
            Reply::Err(reason) if forgotten => format!(
                "! refused: {}; the server no longer knows you as {}",
                protocol::printable(reason),
                client.name()
            ),
            Reply::Err(reason) => format!("! refused: {}", protocol::printable(reason)),
            Reply::Down => "* the server is shutting down".to_string(),
            Reply::Exit => "* you have left the room".to_string(),
            // A second OK answers a login we sent twice: nothing to show.
            Reply::Ok => String::new(),
        };
        if !line.is_empty() {
            if nar.is_json() {
                // The chat's own output: in JSON it is an event, kept even
                // with --quiet, as the plain line is in human output.
                nar.startup(
                    "received",
                    json!({ "kind": reply_kind(&reply), "line": line }),
                    format!("received: {line}"),
                );
            } else {
                client.show_line(&line);
            }
        }
        match reply {
            Reply::Exit => return RECEIVER_GOT_EXIT,
            Reply::Down => return RECEIVER_SERVER_DOWN,
            _ if forgotten => return RECEIVER_FORGOTTEN,
            Reply::Users(_) => {
                // Tell the sender its /who was answered. The pipe is empty
                // or nearly so: this write does not block.
                let step = nar.call("write", format!("fd {answers} (pipe), 1 byte"));
                let _ = step.check(
                    nix::unistd::write(
                        // SAFETY: the pipe's write end stays open in this process
                        // until it exits.
                        unsafe { std::os::fd::BorrowedFd::borrow_raw(answers) },
                        b"w",
                    ),
                    |count| format!("{count} byte"),
                );
            }
            _ => {}
        }
    }
}

fn reply_kind(reply: &Reply) -> &'static str {
    match reply {
        Reply::Ok => "OK",
        Reply::Err(_) => "ERR",
        Reply::Exit => "EXIT",
        Reply::Join(_) => "JOIN",
        Reply::Leave(_) => "LEAVE",
        Reply::Msg { .. } => "MSG",
        Reply::Users(_) => "USERS",
        Reply::Down => "DOWN",
    }
}
