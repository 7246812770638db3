//! `--mode timeout`: SO_RCVTIMEO, Python's `settimeout`, measured.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{getsockopt, recv, setsockopt, sockopt, MsgFlags};
use nix::sys::time::{TimeVal, TimeValLike};
use serde_json::json;

use super::{connected_pair, ms, peer_sends_after, Args};
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{Fact, Narrator};

pub(super) fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "io-demo",
        "io-models",
        "Timeouts: SO_RCVTIMEO makes a blocking recv() give up after a set time, with EAGAIN.",
    );
    let pair = connected_pair(nar)?;
    let timeout = args.timeout();
    let fd = pair.ours.as_raw_fd();

    // setsockopt(SO_RCVTIMEO): the longest a blocking receive may wait.
    let micros = i64::try_from(timeout.as_micros()).unwrap_or(i64::MAX);
    let step = nar.call(
        "setsockopt",
        format!(
            "fd {fd}, SOL_SOCKET, SO_RCVTIMEO, {:.3} s",
            timeout.as_secs_f64()
        ),
    );
    step.check(
        setsockopt(
            &pair.ours,
            sockopt::ReceiveTimeout,
            &TimeVal::microseconds(micros),
        ),
        |_| "0".into(),
    )?;
    let step = nar.call("getsockopt", format!("fd {fd}, SOL_SOCKET, SO_RCVTIMEO"));
    let stored = step.check(getsockopt(&pair.ours, sockopt::ReceiveTimeout), |tv| {
        format!("{:.3} s", tv.num_microseconds() as f64 / 1e6)
    })?;
    let stored_ms = stored.num_microseconds() as f64 / 1e3;
    nar.kernel(Fact::new(
        format!("fd {fd}"),
        "rcvtimeo",
        json!({ "ms": stored_ms }),
        "getsockopt(SO_RCVTIMEO)",
        format!("fd {fd} lets a receive wait at most {stored_ms:.1} ms (the kernel counts it in clock ticks)"),
    ));
    nar.note("The socket is still blocking, but now with a limit. Python's sock.settimeout(t) gives the same behaviour another way: it makes the socket non-blocking and waits in poll() for at most t seconds.");

    // The peer stays quiet past the first timeout, then sends during the second wait.
    let peer_delay = timeout.mul_f64(1.5);
    let outcome = std::thread::scope(|scope| -> Result<bool> {
        let (cue, cues) = mpsc::channel::<()>();
        let theirs = pair.theirs.as_fd();
        scope.spawn(move || peer_sends_after(nar, theirs, peer_delay, &cues));
        let mut buf = [0u8; 1024];
        for attempt in 1..=2 {
            let step = nar.blocking(
                "recv",
                format!("fd {fd}, {}, 0", bytes(buf.len())),
                format!("waiting at most {:.3} s for data", timeout.as_secs_f64()),
            );
            if attempt == 1 {
                let _ = cue.send(()); // the peer's 1.5 timeouts start now
            }
            let started = Instant::now();
            let result = recv(fd, &mut buf, MsgFlags::empty());
            let waited = started.elapsed();
            match result {
                Err(Errno::EAGAIN) => {
                    step.fail(Errno::EAGAIN);
                    nar.info(
                        "timed_out",
                        json!({ "attempt": attempt, "timeout_ms": ms(timeout), "elapsed_ms": ms(waited) }),
                        format!(
                            "recv() gave up after {:.3} s (the timeout is {:.3} s)",
                            waited.as_secs_f64(),
                            timeout.as_secs_f64()
                        ),
                    );
                    nar.note("EAGAIN after a timeout means \"nothing arrived in time\"; Python raises TimeoutError (socket.timeout) here. The program can retry, give up, or do other work.");
                }
                Ok(count) => {
                    step.ok_value(
                        count as i64,
                        format!("{}: {}", bytes(count), show_bytes(&buf[..count], 60)),
                    );
                    nar.info(
                        "received",
                        json!({ "attempt": attempt, "timeout_ms": ms(timeout), "elapsed_ms": ms(waited) }),
                        format!(
                            "data arrived after {:.3} s, within the {:.3} s timeout",
                            waited.as_secs_f64(),
                            timeout.as_secs_f64()
                        ),
                    );
                    nar.note("Data that comes before the timeout ends the wait at once, exactly as without a timeout.");
                    break;
                }
                Err(Errno::EINTR) => {
                    step.fail(Errno::EINTR);
                    return Ok(false);
                }
                Err(errno) => {
                    step.fail(errno);
                    return Err(anyhow::anyhow!("recv() failed: {}", errno.desc()));
                }
            }
        }
        drop(cue);
        Ok(true)
    })?;
    if !outcome {
        return Ok(());
    }

    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(pair.ours), |_| "0".into())?;
    let step = nar.call("close", format!("fd {}", pair.theirs.as_raw_fd()));
    step.check(nix::unistd::close(pair.theirs), |_| "0".into())?;
    nar.note("A timeout bounds one wait on one socket. To wait for the first of many sockets, with one timeout for all, use select, poll or epoll (netlab lesson io-multiplexing).");
    Ok(())
}
