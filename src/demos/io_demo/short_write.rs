//! `--mode short-write`: a non-blocking send() takes only what fits.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;

use anyhow::Result;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getsockopt, recv, send, setsockopt, sockopt, MsgFlags};
use serde_json::json;

use super::{connected_pair, set_nonblocking, Args, Pair};
use crate::kernel;
use crate::narrate::text::bytes;
use crate::narrate::{errno_name, Fact, Narrator};
use crate::sys;

/// How long poll() may wait for room in the send buffer before we give up.
const DRAIN_LIMIT_MS: u16 = 10_000;

pub(super) fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "io-demo",
        "io-models",
        "Short writes: a non-blocking send() of a large buffer to a peer that does not read takes only what fits, then fails with EAGAIN.",
    );
    let Pair { ours, theirs } = connected_pair(nar)?;
    let fd = ours.as_raw_fd();
    if let Some(size) = args.sndbuf {
        let step = nar.call(
            "setsockopt",
            format!("fd {fd}, SOL_SOCKET, SO_SNDBUF, {size}"),
        );
        step.check(setsockopt(&ours, sockopt::SndBuf, &(size as usize)), |_| {
            "0".into()
        })?;
        nar.note("A program that sets SO_SNDBUF fixes the buffer's size; the kernel doubles the value to leave room for its own bookkeeping, and stops growing the buffer on its own.");
    }
    buffer_sizes(nar, ours.as_fd(), theirs.as_fd())?;
    set_nonblocking(nar, ours.as_fd())?;
    nar.note("The peer thread does not read yet. Everything we send must fit in our send buffer and the peer's receive buffer.");

    let total = args.bytes();
    let data = vec![b'x'; total];
    let received = std::thread::scope(|scope| -> Result<Option<u64>> {
        // Moved in, so that it is closed (and the peer sees EOF) when this
        // closure ends, on every path.
        let ours: OwnedFd = ours;
        let (drain, drain_now) = mpsc::channel::<()>();
        let theirs = theirs.as_fd();
        let peer = scope.spawn(move || {
            crate::stop::block_stop_signals_in_this_thread();
            // Wait for the word to read; a dropped sender means "never".
            drain_now.recv().ok().map(|()| read_until_eof(theirs))
        });

        // 1. One send() with the whole buffer.
        let step = nar.call("send", format!("fd {fd}, {}, 0", bytes(total)));
        let first = match send(fd, &data, MsgFlags::empty()) {
            Ok(count) => {
                step.ok_value(count as i64, bytes(count));
                count
            }
            Err(errno) => {
                step.fail(errno);
                return Err(anyhow::anyhow!("send() failed: {}", errno.desc()));
            }
        };
        nar.info(
            "short_write",
            json!({ "asked": total, "sent": first }),
            format!(
                "send() was given {} and took {}",
                bytes(total),
                bytes(first)
            ),
        );
        queues(nar, ours.as_fd(), theirs);
        let mut sent = first;
        if first == total {
            nar.note("The kernel took everything at once: the buffers were big enough. Try a larger --bytes, or a small --sndbuf, to see a short write.");
        } else {
            nar.note("A short write: send() returns how many bytes it took, which here is fewer than it was given. The rest is still ours to send; Python's send() returns this count too, and sendall() loops over it.");

            // 2. Try to send the rest right away, until the kernel says
            //    there is no room left. (It may first find a little more
            //    room, as the peer's kernel acknowledges what it holds.)
            while sent < total {
                let step = nar.call("send", format!("fd {fd}, {}, 0", bytes(total - sent)));
                match send(fd, &data[sent..], MsgFlags::empty()) {
                    Err(Errno::EAGAIN) => {
                        step.fail(Errno::EAGAIN);
                        nar.note("EAGAIN: the send buffer is full and the socket is non-blocking, so send() cannot wait for room. A blocking socket would sleep here until the peer reads.");
                        break;
                    }
                    Ok(count) => {
                        step.ok_value(count as i64, bytes(count));
                        nar.note("Another short write: some room had opened up in the meantime, but not enough for everything.");
                        sent += count;
                    }
                    Err(errno) => {
                        step.fail(errno);
                        return Err(anyhow::anyhow!("send() failed: {}", errno.desc()));
                    }
                }
            }
        }

        // 3. Let the peer read, and send the rest each time poll() says
        //    there is room: the loop every non-blocking writer needs.
        let _ = drain.send(());
        nar.note("Now the peer thread starts reading. We send the rest in a loop, waiting with poll() for room in the send buffer before each send().");
        while sent < total {
            if !wait_writable(nar, ours.as_fd())? {
                return Ok(None);
            }
            let step = nar.call("send", format!("fd {fd}, {}, 0", bytes(total - sent)));
            match send(fd, &data[sent..], MsgFlags::empty()) {
                Ok(count) => {
                    step.ok_value(count as i64, bytes(count));
                    sent += count;
                }
                Err(Errno::EAGAIN) => step.fail(Errno::EAGAIN),
                Err(Errno::EINTR) => {
                    step.fail(Errno::EINTR);
                    if crate::stop::requested().is_some() {
                        return Ok(None);
                    }
                }
                Err(errno) => {
                    step.fail(errno);
                    return Err(anyhow::anyhow!("send() failed: {}", errno.desc()));
                }
            }
        }
        let step = nar.call("close", format!("fd {fd}"));
        step.check(nix::unistd::close(ours), |_| "0".into())?;
        Ok(peer.join().ok().flatten())
    })?;

    if let Some(received) = received {
        nar.info(
            "peer_received",
            json!({ "bytes": received, "sent": total }),
            format!("the peer thread read {received} bytes in all, until end of stream"),
        );
        if received == total as u64 {
            nar.note("Every byte arrived: short writes lose nothing as long as the program sends the rest itself.");
        }
    }
    let step = nar.call("close", format!("fd {}", theirs.as_raw_fd()));
    step.check(nix::unistd::close(theirs), |_| "0".into())?;
    Ok(())
}

/// getsockopt(SO_SNDBUF) on our end and SO_RCVBUF on the peer's.
fn buffer_sizes(nar: &Narrator, ours: BorrowedFd<'_>, theirs: BorrowedFd<'_>) -> Result<()> {
    let step = nar.call(
        "getsockopt",
        format!("fd {}, SOL_SOCKET, SO_SNDBUF", ours.as_raw_fd()),
    );
    let sndbuf = step.check(getsockopt(&ours, sockopt::SndBuf), |size| bytes(*size))?;
    nar.kernel(Fact::new(
        format!("fd {}", ours.as_raw_fd()),
        "sndbuf",
        json!({ "bytes": sndbuf }),
        "getsockopt(SO_SNDBUF)",
        format!("our send buffer may hold up to {} now (Linux grows it as needed unless SO_SNDBUF was set)", bytes(sndbuf)),
    ));
    let step = nar.call(
        "getsockopt",
        format!("fd {}, SOL_SOCKET, SO_RCVBUF", theirs.as_raw_fd()),
    );
    let rcvbuf = step.check(getsockopt(&theirs, sockopt::RcvBuf), |size| bytes(*size))?;
    nar.kernel(Fact::new(
        format!("fd {}", theirs.as_raw_fd()),
        "rcvbuf",
        json!({ "bytes": rcvbuf }),
        "getsockopt(SO_RCVBUF)",
        format!(
            "the peer's receive buffer may hold up to {} now",
            bytes(rcvbuf)
        ),
    ));
    Ok(())
}

/// Where the bytes are: our send queue and the peer's receive queue, from
/// ioctl, and the same connection's line in /proc/net/tcp.
fn queues(nar: &Narrator, ours: BorrowedFd<'_>, theirs: BorrowedFd<'_>) {
    let our_subject = format!("fd {}", ours.as_raw_fd());
    match kernel::io::send_queue(ours) {
        Ok(queued) => nar.kernel(Fact::new(
            &our_subject,
            "send_queue",
            json!({ "bytes": queued }),
            "ioctl(SIOCOUTQ)",
            format!(
                "{queued} bytes wait in our send queue, not yet acknowledged by the peer (Send-Q)"
            ),
        )),
        Err(errno) => nar.kernel(Fact::unavailable(
            our_subject,
            "send_queue",
            "ioctl(SIOCOUTQ)",
            errno_name(errno),
        )),
    }
    let their_subject = format!("fd {}", theirs.as_raw_fd());
    match kernel::io::receive_queue(theirs) {
        Ok(queued) => nar.kernel(Fact::new(
            &their_subject,
            "receive_queue",
            json!({ "bytes": queued }),
            "ioctl(SIOCINQ)",
            format!("{queued} bytes wait in the peer's receive queue, unread (Recv-Q)"),
        )),
        Err(errno) => nar.kernel(Fact::unavailable(
            their_subject,
            "receive_queue",
            "ioctl(SIOCINQ)",
            errno_name(errno),
        )),
    }
    let (Ok(local), Ok(remote)) = (
        sys::local_addr(ours.as_raw_fd()),
        sys::local_addr(theirs.as_raw_fd()),
    ) else {
        return;
    };
    let subject = format!("{local} -> {remote}");
    match kernel::proc_net::connection(local, remote) {
        Ok(Some(entry)) => nar.kernel(Fact::new(
            &subject,
            "tcp_queues",
            json!({ "tx_queue": entry.tx_queue, "rx_queue": entry.rx_queue }),
            "/proc/net/tcp",
            format!("{subject}: tx_queue {} bytes, rx_queue {} bytes (what `ss -tn` shows as Send-Q and Recv-Q)", entry.tx_queue, entry.rx_queue),
        )),
        Ok(None) => nar.kernel(Fact::unavailable(subject, "tcp_queues", "/proc/net/tcp", "the connection is not listed")),
        Err(err) => nar.kernel(Fact::unavailable(subject, "tcp_queues", "/proc/net/tcp", err)),
    }
}

/// poll(POLLOUT) until there is room to send. False if a stop interrupted it.
fn wait_writable(nar: &Narrator, ours: BorrowedFd<'_>) -> Result<bool> {
    let step = nar.blocking(
        "poll",
        format!(
            "[fd {} POLLOUT], timeout {DRAIN_LIMIT_MS} ms",
            ours.as_raw_fd()
        ),
        "waiting for room in the send buffer",
    );
    let mut fds = [PollFd::new(ours, PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::from(DRAIN_LIMIT_MS)) {
        Ok(0) => {
            step.ok_value(0, "0: timed out");
            Err(anyhow::anyhow!(
                "the send buffer stayed full for {DRAIN_LIMIT_MS} ms"
            ))
        }
        Ok(ready) => {
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            step.ok_value(
                i64::from(ready),
                format!("{ready} ready: {}", super::poll_flags(revents)),
            );
            Ok(true)
        }
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            Ok(crate::stop::requested().is_none())
        }
        Err(errno) => {
            step.fail(errno);
            Err(anyhow::anyhow!("poll() failed: {}", errno.desc()))
        }
    }
}

/// The peer thread's reading: recv() until end of stream; returns the count.
fn read_until_eof(theirs: BorrowedFd<'_>) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match recv(theirs.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return total,
            Ok(count) => total += count as u64,
            Err(Errno::EINTR) => {}
            Err(_) => return total,
        }
    }
}
