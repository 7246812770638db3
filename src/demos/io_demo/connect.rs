//! `--mode connect`: a non-blocking connect(), EINPROGRESS, poll, SO_ERROR.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::Result;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{bind, connect, getsockopt, listen, sockopt, Backlog, SockFlag};
use serde_json::json;

use super::new_tcp_socket;
use crate::narrate::{errno_name, Fact, Narrator};
use crate::sys;

/// How long poll() waits for a handshake before the demo gives up. On
/// loopback the answer comes in microseconds.
const HANDSHAKE_LIMIT_MS: u16 = 5000;

pub(super) fn run(nar: &Narrator) -> Result<()> {
    nar.start(
        "io-demo",
        "io-models",
        "Non-blocking connect: connect() returns EINPROGRESS at once; poll() says when the handshake is over and SO_ERROR says how it went.",
    );

    // A port where a server listens...
    nar.note("First a server: a socket that listens on a port the kernel picks.");
    let listener = bound_socket(nar)?;
    let step = nar.call(
        "listen",
        format!("fd {}, backlog 1", listener.0.as_raw_fd()),
    );
    step.check(listen(&listener.0, Backlog::new(1)?), |_| "0".into())?;
    if !attempt(nar, listener.1, "the listening port")? {
        return Ok(());
    }

    // ...and a port where nothing listens.
    nar.note("Now a closed port: a socket bound to a port but not listening. The kernel answers a SYN to it with RST, and no other program can take the port meanwhile.");
    let closed = bound_socket(nar)?;
    if !attempt(nar, closed.1, "the closed port")? {
        return Ok(());
    }

    for fd in [listener.0, closed.0] {
        let step = nar.call("close", format!("fd {}", fd.as_raw_fd()));
        step.check(nix::unistd::close(fd), |_| "0".into())?;
    }
    nar.note("A non-blocking connect lets one thread start many connections at once and wait for all of them with poll or epoll: netlab lesson io-multiplexing.");
    Ok(())
}

/// socket, bind(127.0.0.1:0), getsockname.
fn bound_socket(nar: &Narrator) -> Result<(OwnedFd, SocketAddr)> {
    let socket = new_tcp_socket(nar, SockFlag::empty())?;
    let fd = socket.as_raw_fd();
    let wanted = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let step = nar.call("bind", format!("fd {fd}, {wanted}"));
    step.check(bind(fd, &sys::to_kernel(wanted)), |_| "0".into())?;
    let step = nar.call("getsockname", format!("fd {fd}"));
    let addr = step.check(sys::local_addr(fd), |addr| addr.to_string())?;
    Ok((socket, addr))
}

/// One non-blocking connect to `target`, followed to its end. Returns false
/// if a stop request interrupted it.
fn attempt(nar: &Narrator, target: SocketAddr, what: &str) -> Result<bool> {
    let socket = new_tcp_socket(nar, SockFlag::SOCK_NONBLOCK)?;
    let fd = socket.as_raw_fd();

    // connect() on a non-blocking socket sends the SYN and returns at once.
    let step = nar.call("connect", format!("fd {fd}, {target} ({what})"));
    match connect(fd, &sys::to_kernel(target)) {
        Err(Errno::EINPROGRESS) => {
            step.fail(Errno::EINPROGRESS);
            nar.note("EINPROGRESS: the SYN is sent and the handshake goes on in the kernel. connect() did not wait for it; the program is free to do other work.");
        }
        Ok(()) => {
            step.ok("0");
            nar.note(
                "The handshake finished before connect() returned; on loopback that can happen.",
            );
        }
        Err(errno) => {
            step.fail(errno);
            nar.note(
                "connect() failed at once, before any waiting: the kernel already knew the answer.",
            );
        }
    }
    nar.tcp_state(socket.as_fd());

    // poll(POLLOUT): the socket becomes writable when the handshake is over,
    // whether it worked or not.
    let step = nar.blocking(
        "poll",
        format!("[fd {fd} POLLOUT], timeout {HANDSHAKE_LIMIT_MS} ms"),
        "waiting for the handshake to finish, one way or the other",
    );
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::from(HANDSHAKE_LIMIT_MS)) {
        Ok(0) => {
            step.ok_value(0, "0: timed out");
            nar.warning(
                format!("no answer from {target} within {HANDSHAKE_LIMIT_MS} ms"),
                None,
            );
        }
        Ok(ready) => {
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            step.ok_value(
                i64::from(ready),
                format!("{ready} ready: fd {fd} {}", super::poll_flags(revents)),
            );
            if revents.contains(PollFlags::POLLERR) {
                nar.note("POLLERR with POLLOUT: writable, but only because the attempt is over and failed. Being writable alone does not mean connected.");
            }
        }
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            return Ok(false);
        }
        Err(errno) => {
            step.fail(errno);
            return Err(anyhow::anyhow!("poll() failed: {}", errno.desc()));
        }
    }

    // getsockopt(SO_ERROR): the verdict, which connect() would have returned
    // had it waited. Reading it also clears it.
    let step = nar.call("getsockopt", format!("fd {fd}, SOL_SOCKET, SO_ERROR"));
    let code = step.check(
        getsockopt(&socket, sockopt::SocketError),
        |code| match code {
            0 => "0 (no error)".to_string(),
            code => {
                let errno = Errno::from_raw(*code);
                format!("{code} ({}: {})", errno_name(errno), errno.desc())
            }
        },
    )?;
    let errno = (code != 0).then(|| Errno::from_raw(code));
    nar.kernel(Fact::new(
        format!("fd {fd}"),
        "so_error",
        json!({ "code": code, "errno": errno.map(errno_name) }),
        "getsockopt(SO_ERROR)",
        match errno {
            None => {
                format!("fd {fd} has no pending error: the connection to {target} is established")
            }
            Some(errno) => format!(
                "fd {fd}'s pending error is {}: the connection to {target} failed",
                errno_name(errno)
            ),
        },
    ));
    nar.tcp_state(socket.as_fd());
    nar.info(
        "connect_result",
        json!({ "target": target.to_string(), "what": what, "connected": errno.is_none(), "errno": errno.map(errno_name) }),
        match errno {
            None => format!("connected to {target} ({what})"),
            Some(errno) => format!("could not connect to {target} ({what}): {}", errno_name(errno)),
        },
    );
    if errno.is_none() {
        nar.note(
            "SO_ERROR is 0 and the socket is ESTABLISHED: the non-blocking connect succeeded.",
        );
    } else {
        nar.note("SO_ERROR holds the reason the handshake failed: here the other kernel answered our SYN with RST, which is ECONNREFUSED.");
    }
    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(socket), |_| "0".into())?;
    Ok(true)
}
