//! The server's console process: the administrator's lines, sent to the
//! server as `C admin text`.
//!
//! The console's socket is made by the parent before fork()
//! (`open_console_socket`), so that the receive loop knows the one address
//! allowed to speak as `admin`. After fork() the child runs `console`:
//! read a line from the terminal, send it, until end of input.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::sys::socket::{bind, socket, SockFlag, SockType};
use nix::unistd::Pid;
use serde_json::json;

use super::protocol::{self, ADMIN, MAX_DATAGRAM};
use super::{die_with_parent, send_datagram};
use crate::demos::children;
use crate::demos::stdin_lines;
use crate::narrate::Narrator;
use crate::sys;

/// The console's socket, bound to the loopback address (port 0: any free
/// port) so that its datagrams have an address the server can recognise.
/// `wildcard`: the server bound 0.0.0.0 or ::, and `target` is the
/// loopback address of the same family.
pub(super) fn open_console_socket(
    nar: &Narrator,
    target: SocketAddr,
    wildcard: bool,
) -> Result<(OwnedFd, SocketAddr)> {
    let step = nar.call(
        "socket",
        format!("{}, SOCK_DGRAM, 0", sys::family_name(&target)),
    );
    let sock = step.check(
        socket(
            sys::family_of(&target),
            SockType::Datagram,
            SockFlag::empty(),
            None,
        ),
        |fd| format!("fd {}: the console's socket", fd.as_raw_fd()),
    )?;
    let fd = sock.as_raw_fd();
    let local = SocketAddr::new(target.ip(), 0);
    let step = nar.call("bind", format!("fd {fd}, {local}"));
    step.check(bind(fd, &sys::to_kernel(local)), |_| "0".into())
        .context("binding the console's socket")?;
    let step = nar.call("getsockname", format!("fd {fd}"));
    let console_addr = step.check(sys::local_addr(fd), |addr| addr.to_string())?;
    nar.info(
        "console_socket",
        json!({ "addr": console_addr.to_string(), "sends_to": target.to_string() }),
        format!("the console sends from {console_addr} to {target}; only that address may speak as admin"),
    );
    if wildcard {
        nar.note("The console sends to the server's port at a loopback address, because a wildcard address (0.0.0.0 or ::) is what a server binds to mean every address, not an address anyone can send to.");
    } else {
        nar.note("The console sends to the very address the server bound, from a socket of its own on the same address, so its datagrams take the same path as everyone's.");
    }
    Ok((sock, console_addr))
}

/// The console process: each line typed on the server's standard input
/// becomes `C admin line`, sent to the server's own socket. Never returns.
pub(super) fn console(nar: &Narrator, parent: Pid, console_sock: OwnedFd, target: SocketAddr) -> ! {
    if !die_with_parent(nar, parent) {
        children::exit_child(1);
    }
    let fd = console_sock.as_raw_fd();
    let read = stdin_lines::send_each_line(
        nar,
        "The console: type a line and press Enter to speak to every user as admin. End of input (Ctrl-D) ends this console process only; the server goes on.",
        |line| {
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                return true;
            }
            let clean: String = text
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let (datagram, left_out) = protocol::chat_datagram(ADMIN, &clean);
            if left_out > 0 {
                nar.info(
                    "cut",
                    json!({ "left_out": left_out }),
                    format!("the line was cut at a character boundary so that the MSG the server forwards fits in {MAX_DATAGRAM} bytes; {left_out} bytes left out"),
                );
            }
            send_datagram(nar, fd, &datagram, target);
            true
        },
    );
    if let Err(err) = read {
        nar.warning(format!("the console stops: {err:#}"), None);
        children::exit_child(1);
    }
    nar.info(
        "console_closed",
        json!({ "pid": std::process::id() }),
        "end of input on the console: this console process ends; the server keeps serving",
    );
    children::exit_child(0)
}
