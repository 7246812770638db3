//! Phase 1 of a load: open the connections, idle ones first.
//!
//! connect() on a non-blocking socket returns EINPROGRESS at once; epoll
//! reports the socket writable when the handshake has ended, and
//! getsockopt(SO_ERROR) says how it ended. A bounded number of handshakes
//! is kept in flight, so ten thousand connections do not overflow the
//! server's accept queue all at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{connect, getsockopt, setsockopt, socket, sockopt, SockFlag, SockType};
use serde_json::json;

use super::epoll::{self, Epoll};
use super::load::{count, new_conn, Conn, Load, Role};
use crate::narrate::{errno_name, Narrator};
use crate::stop;
use crate::sys;

/// At most this many connect() calls wait for their handshake at once, so
/// the server's accept queue is not flooded.
const CONNECTS_IN_FLIGHT: usize = 128;
/// Give up on the connections still waiting when no handshake finished for
/// this long (a server that never accepts).
const CONNECT_PATIENCE: Duration = Duration::from_secs(3);

/// Open `load.idle` and then `load.active` connections, at most
/// CONNECTS_IN_FLIGHT handshakes at a time. Failures are counted by errno.
pub fn open_connections(
    nar: &Narrator,
    load: &Load,
    epoll: &Epoll,
    ready: &mut Vec<libc::epoll_event>,
    conns: &mut Vec<Conn>,
    errors: &mut BTreeMap<String, u64>,
) {
    let total = load.idle + load.active;
    let role_of = |index: usize| {
        if index < load.idle {
            Role::Idle
        } else {
            Role::Active
        }
    };
    let mut next = 0;
    let mut pending: Vec<Option<(OwnedFd, Role)>> = Vec::new();
    let mut in_flight = 0;
    let mut last_progress = Instant::now();
    let mut next_report = Instant::now() + Duration::from_secs(1);
    while next < total || in_flight > 0 {
        if stop::requested().is_some() {
            break;
        }
        while next < total && in_flight < CONNECTS_IN_FLIGHT {
            let role = role_of(next);
            next += 1;
            match start_connect(load.addr) {
                Ok((fd, true)) => conns.push(new_conn(fd, role, load.size)),
                Ok((fd, false)) => {
                    let slot = pending.iter().position(Option::is_none).unwrap_or_else(|| {
                        pending.push(None);
                        pending.len() - 1
                    });
                    if let Err(errno) = epoll.add(fd.as_raw_fd(), epoll::OUT, slot as u64) {
                        count(errors, errno_name(errno));
                        continue;
                    }
                    pending[slot] = Some((fd, role));
                    in_flight += 1;
                }
                Err(errno) => count(errors, errno_name(errno)),
            }
        }
        if in_flight == 0 {
            continue;
        }
        if last_progress.elapsed() > CONNECT_PATIENCE {
            let waiting = pending.iter().filter(|slot| slot.is_some()).count();
            *errors.entry("connect timed out".into()).or_default() +=
                (waiting + total - next) as u64;
            nar.warning(
                format!("{waiting} connections got no answer to their SYN for {} s; giving up on them", CONNECT_PATIENCE.as_secs()),
                Some("the server's accept queue is full: it does not call accept() fast enough (an iterative server serves one client at a time)"),
            );
            break;
        }
        if Instant::now() >= next_report {
            nar.info(
                "connecting",
                json!({ "open": conns.len(), "wanted": total }),
                format!("{} of {total} connections open", conns.len()),
            );
            next_report += Duration::from_secs(1);
        }
        match epoll.wait(ready, 100) {
            Ok(()) | Err(Errno::EINTR) => {}
            Err(errno) => {
                count(errors, errno_name(errno));
                break;
            }
        }
        for event in ready.iter() {
            let slot = event.u64 as usize;
            let Some((fd, role)) = pending.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            in_flight -= 1;
            let _ = epoll.delete(fd.as_raw_fd());
            // The handshake ended; SO_ERROR says how (0: connected).
            match getsockopt(&fd, sockopt::SocketError) {
                Ok(0) => {
                    conns.push(new_conn(fd, role, load.size));
                    last_progress = Instant::now();
                }
                Ok(code) => count(errors, errno_name(Errno::from_raw(code))),
                Err(errno) => count(errors, errno_name(errno)),
            }
        }
    }
    // The connections still waiting for their handshake are given up
    // (closed when `pending` is dropped). Register the open ones under
    // their index in `conns`, which is their token from now on.
    for (token, conn) in conns.iter().enumerate() {
        let interest = match conn.role {
            Role::Active => epoll::IN,
            Role::Idle => epoll::IN | epoll::RDHUP,
        };
        if let Err(errno) = epoll.add(conn.raw().unwrap_or(-1), interest, token as u64) {
            count(errors, errno_name(errno));
        }
    }
}

/// socket(SOCK_NONBLOCK) + connect(): Ok((fd, true)) if connected at once,
/// Ok((fd, false)) if the handshake is under way (EINPROGRESS).
fn start_connect(addr: SocketAddr) -> nix::Result<(OwnedFd, bool)> {
    let fd = socket(
        sys::family_of(&addr),
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // One small message at a time: do not let Nagle's algorithm hold it.
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    match connect(fd.as_raw_fd(), &sys::to_kernel(addr)) {
        Ok(()) => Ok((fd, true)),
        Err(Errno::EINPROGRESS) => Ok((fd, false)),
        Err(errno) => Err(errno),
    }
}
