//! The client end: connect to the socket file (or abstract name), send one
//! message, read the echo, close.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{connect, recv, send, MsgFlags};
use serde_json::json;

use super::{peer_credentials, unix_socket, Place};
use crate::error::Failure;
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{errno_name, Narrator};

pub(super) fn run(nar: &Narrator, place: &Place, message: &[u8]) -> Result<()> {
    let socket = unix_socket(nar)?;
    let fd = socket.as_raw_fd();
    let addr = place.address()?;

    // connect(): no handshake on the wire; the kernel links the two sockets
    // directly, or refuses at once.
    let step = nar.call("connect", format!("fd {fd}, {place}"));
    match connect(fd, &addr) {
        Ok(()) => step.ok("0"),
        Err(errno) => {
            step.fail(errno);
            return Err(connect_failure(errno, place).into());
        }
    }
    nar.note("Connected. There was no handshake on any wire: the kernel joined the two sockets directly, and the data will be copied from one process's buffer to the other's.");
    peer_credentials(nar, &socket, "the server");
    let talked = talk(nar, &socket, message);
    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(socket), |_| "0".into())?;
    talked
}

/// send() the message, then recv() the echo. An error if the echo did not
/// come back (the connection broke, or the other end closed first).
pub(super) fn talk(nar: &Narrator, socket: &OwnedFd, message: &[u8]) -> Result<()> {
    let fd = socket.as_raw_fd();
    if message.is_empty() {
        // send() of 0 bytes puts nothing in the stream, and an echo server
        // would have nothing to answer: waiting for the echo would hang.
        nar.note("An empty message is skipped: a byte stream has no empty messages, so zero bytes would send nothing and no echo would come.");
        return Ok(());
    }
    if !send_all(nar, socket, message) {
        if crate::stop::requested().is_some() {
            return Ok(());
        }
        return Err(Failure::new("send() failed, so the message was not sent", None).into());
    }
    let mut buf = vec![0u8; 1024];
    let step = nar.blocking(
        "recv",
        format!("fd {fd}, {}, 0", bytes(buf.len())),
        "waiting for the echo",
    );
    match recv(fd, &mut buf, MsgFlags::empty()) {
        Ok(0) => {
            step.ok_value(0, "0: end of stream");
            return Err(Failure::new(
                "the other end closed the connection before it echoed the message",
                None,
            )
            .into());
        }
        Ok(count) => {
            step.ok_value(
                count as i64,
                format!("{}: {}", bytes(count), show_bytes(&buf[..count], 60)),
            );
            nar.info(
                "echo",
                json!({ "bytes": count, "text": String::from_utf8_lossy(&buf[..count]) }),
                format!("the other end echoed {}", bytes(count)),
            );
        }
        Err(Errno::EINTR) if crate::stop::requested().is_some() => step.fail(Errno::EINTR),
        Err(errno) => {
            step.fail(errno);
            return Err(Failure::new(
                format!(
                    "recv() of the echo failed: {} ({})",
                    errno_name(errno),
                    errno.desc()
                ),
                None,
            )
            .into());
        }
    }
    Ok(())
}

/// send() until every byte is out. False if the connection broke.
fn send_all(nar: &Narrator, socket: &OwnedFd, data: &[u8]) -> bool {
    let fd = socket.as_raw_fd();
    let mut sent = 0;
    while sent < data.len() {
        let step = nar.call("send", format!("fd {fd}, {}, 0", bytes(data.len() - sent)));
        match send(fd, &data[sent..], MsgFlags::empty()) {
            Ok(count) => {
                step.ok_value(count as i64, bytes(count));
                sent += count;
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if crate::stop::requested().is_some() {
                    return false;
                }
            }
            Err(errno) => {
                step.fail(errno);
                return false;
            }
        }
    }
    true
}

/// A failed connect(), explained.
fn connect_failure(errno: Errno, place: &Place) -> Failure {
    match (errno, place) {
        (Errno::ENOENT, Place::File(path)) => Failure::with_hint(
            format!("cannot connect to {}: there is no such file, so no server has bound it", path.display()),
            format!("start a server first: netlab unix-demo --role server --path {}", path.display()),
        ),
        (Errno::ECONNREFUSED, Place::File(path)) if !is_socket_file(path) => Failure::new(
            format!("cannot connect to {}: the file is not a socket", path.display()),
            Some("give the path a server bound with --role server --path"),
        ),
        (Errno::ECONNREFUSED, Place::File(path)) => Failure::with_hint(
            format!("cannot connect to {}: the socket file exists but nobody listens on it (Connection refused)", path.display()),
            "the file was probably left by a server that crashed; a new server can remove it with --unlink-stale",
        ),
        (Errno::ECONNREFUSED, Place::Abstract(name)) => Failure::with_hint(
            format!("cannot connect to @{name}: nobody listens on this abstract name (Connection refused)"),
            format!("start a server first: netlab unix-demo --role server --abstract {name}"),
        ),
        (Errno::EACCES, _) => Failure::new(
            format!("cannot connect to {place}: permission denied"),
            Some("connecting needs write permission on the socket file (and search permission on its directories)"),
        ),
        (Errno::ENOTSOCK, _) => Failure::new(
            format!("cannot connect to {place}: it is not a socket"),
            None,
        ),
        (other, _) => Failure::new(
            format!("cannot connect to {place}: {} ({})", errno_name(other), other.desc()),
            None,
        ),
    }
}

/// Is there a socket file at `path`? (Linux refuses a connect() to any
/// other kind of file with the same ECONNREFUSED as a stale socket.)
fn is_socket_file(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}
