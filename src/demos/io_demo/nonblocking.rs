//! `--mode nonblocking`: EAGAIN at once, the cost of a loop that spins on
//! it, and poll() doing the same wait asleep.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Result;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};
use serde_json::json;

use super::{
    connected_pair, ms, peer_sends_after, report_cpu, set_nonblocking, watch_thread, Args,
};
use crate::kernel;
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::Narrator;
use crate::stop;

pub(super) fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "io-demo",
        "io-models",
        "Non-blocking IO: recv() returns EAGAIN at once, and a loop that retries it burns a whole core until data arrives.",
    );
    let pair = connected_pair(nar)?;
    let delay = args.delay();
    let tid = nix::unistd::gettid().as_raw();
    set_nonblocking(nar, pair.ours.as_fd())?;

    std::thread::scope(|scope| -> Result<()> {
        let (cue, cues) = mpsc::channel::<()>();
        let theirs = pair.theirs.as_fd();
        // The peer sends twice, each time after --delay: once while we
        // spin, once while poll() waits.
        scope.spawn(move || {
            peer_sends_after(nar, theirs, delay, &cues);
            peer_sends_after(nar, theirs, delay, &cues);
        });
        let ours = pair.ours.as_fd();
        let mut buf = [0u8; 1024];

        // 1. One recv() on the empty socket: no waiting, just EAGAIN.
        let step = nar.call(
            "recv",
            format!("fd {}, {}, 0", ours.as_raw_fd(), bytes(buf.len())),
        );
        match recv(ours.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Err(Errno::EAGAIN) => {
                step.fail(Errno::EAGAIN);
                nar.note("EAGAIN (Python: BlockingIOError) is not a failure: it means \"nothing yet, try later\". The call returned at once instead of sleeping.");
            }
            Ok(count) => step.ok_value(count as i64, bytes(count)),
            Err(errno) => {
                step.fail(errno);
                return Err(anyhow::anyhow!("recv() failed: {}", errno.desc()));
            }
        }

        // 2. The naive loop: call recv() again and again until data comes.
        let Some(spun) = spin_until_data(nar, scope, ours, tid, &mut buf, &cue) else {
            return Ok(()); // stopped with Ctrl-C
        };
        nar.note("Each EAGAIN cost a system call and the thread never slept: the watcher saw it running (R), and one core stayed busy doing nothing useful. A loop around a non-blocking call needs something that can sleep until the socket is ready.");
        let _ = spun;

        // 3. The right way: poll() sleeps until the socket is readable.
        wait_with_poll(nar, scope, ours, tid, &mut buf, &cue)?;
        drop(cue);
        Ok(())
    })?;

    let step = nar.call("close", format!("fd {}", pair.ours.as_raw_fd()));
    step.check(nix::unistd::close(pair.ours), |_| "0".into())?;
    let step = nar.call("close", format!("fd {}", pair.theirs.as_raw_fd()));
    step.check(nix::unistd::close(pair.theirs), |_| "0".into())?;
    nar.note("Non-blocking calls pay off when one thread watches many sockets with select, poll or epoll and only calls recv() on the ready ones: netlab lesson io-multiplexing.");
    Ok(())
}

/// Call recv() in a tight loop until it returns data, counting the calls.
/// Only the last call is narrated: narrating each would itself be the work.
fn spin_until_data<'scope>(
    nar: &'scope Narrator,
    scope: &'scope std::thread::Scope<'scope, '_>,
    ours: BorrowedFd<'_>,
    tid: i32,
    buf: &mut [u8],
    cue: &mpsc::Sender<()>,
) -> Option<u64> {
    let (watch, watching) = mpsc::channel::<()>();
    scope.spawn(move || watch_thread(nar, tid, &watching, 2));
    let fd = ours.as_raw_fd();
    let step = nar.call(
        "recv",
        format!(
            "fd {fd}, {}, 0, in a loop until it returns data (only the last call is shown)",
            bytes(buf.len())
        ),
    );
    let _ = cue.send(()); // the peer's --delay starts now
    let _ = watch.send(()); // and the watcher starts looking
    let cpu_before = kernel::io::thread_cpu_time().ok();
    let started = Instant::now();
    let mut eagain: u64 = 0;
    let result = loop {
        match recv(fd, buf, MsgFlags::empty()) {
            Err(Errno::EAGAIN) => {
                eagain += 1;
                // A stop request is only an atomic load away. The loop
                // ends with the errno its last recv() really returned.
                if stop::requested().is_some() {
                    break Err(Errno::EAGAIN);
                }
            }
            Err(Errno::EINTR) if stop::requested().is_none() => {}
            other => break other,
        }
    };
    let wall = started.elapsed();
    drop(watch);
    match result {
        Ok(count) => {
            step.ok_value(
                count as i64,
                format!("{}: {}", bytes(count), show_bytes(&buf[..count], 60)),
            );
            nar.info(
                "spin",
                json!({ "calls": eagain + 1, "eagain": eagain, "wall_ms": ms(wall) }),
                format!(
                    "the loop called recv() {} times in {:.3} s: {eagain} of them returned EAGAIN",
                    eagain + 1,
                    wall.as_secs_f64()
                ),
            );
            report_cpu(nar, cpu_before, started, "the spinning loop");
            Some(eagain)
        }
        Err(errno) => {
            step.fail(errno);
            if errno == Errno::EAGAIN {
                nar.info(
                    "spin",
                    json!({ "calls": eagain, "eagain": eagain, "wall_ms": ms(wall), "stopped": true }),
                    format!(
                        "stopped: the loop called recv() {eagain} times in {:.3} s, and every one returned EAGAIN",
                        wall.as_secs_f64()
                    ),
                );
                nar.note("The loop stopped because of Ctrl-C, not because recv() failed: its last call returned EAGAIN like all the others, since no data had arrived yet.");
            }
            None
        }
    }
}

/// poll() for POLLIN with no timeout, then one recv().
fn wait_with_poll<'scope>(
    nar: &'scope Narrator,
    scope: &'scope std::thread::Scope<'scope, '_>,
    ours: BorrowedFd<'_>,
    tid: i32,
    buf: &mut [u8],
    cue: &mpsc::Sender<()>,
) -> Result<()> {
    let fd = ours.as_raw_fd();
    let (watch, watching) = mpsc::channel::<()>();
    scope.spawn(move || watch_thread(nar, tid, &watching, 2));
    let step = nar.blocking(
        "poll",
        format!("[fd {fd} POLLIN], timeout -1"),
        "sleeping until fd is readable: the peer sends again after --delay",
    );
    let cpu_before = kernel::io::thread_cpu_time().ok();
    let started = Instant::now();
    let _ = cue.send(()); // the peer's --delay starts now
    let _ = watch.send(()); // and the watcher starts looking
    let mut fds = [PollFd::new(ours, PollFlags::POLLIN)];
    let result = poll(&mut fds, PollTimeout::NONE);
    drop(watch);
    match result {
        Ok(ready) => {
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            step.ok_value(
                i64::from(ready),
                format!("{ready} ready: fd {fd} {}", super::poll_flags(revents)),
            );
        }
        Err(Errno::EINTR) => {
            step.fail(Errno::EINTR);
            return Ok(());
        }
        Err(errno) => {
            step.fail(errno);
            return Err(anyhow::anyhow!("poll() failed: {}", errno.desc()));
        }
    }
    report_cpu(nar, cpu_before, started, "the wait in poll()");
    let step = nar.call("recv", format!("fd {fd}, {}, 0", bytes(buf.len())));
    match recv(fd, buf, MsgFlags::empty()) {
        Ok(count) => step.ok_value(
            count as i64,
            format!("{}: {}", bytes(count), show_bytes(&buf[..count], 60)),
        ),
        Err(errno) => step.fail(errno),
    }
    nar.note("The same wait, but asleep: poll() returned only when the socket was readable, so the thread used almost no CPU and recv() then succeeded at the first try.");
    Ok(())
}
