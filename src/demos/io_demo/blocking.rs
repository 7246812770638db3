//! `--mode blocking`: recv() on an empty socket sleeps in the kernel.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};

use super::{connected_pair, peer_sends_after, report_cpu, watch_thread, Args};
use crate::kernel;
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::Narrator;

pub(super) fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "io-demo",
        "io-models",
        "Blocking IO: recv() on a socket with no data puts the thread to sleep in the kernel until data arrives.",
    );
    let pair = connected_pair(nar)?;
    let delay = args.delay();
    // The watcher needs the kernel's id of this very thread.
    let tid = nix::unistd::gettid().as_raw();
    nar.note("A new socket is blocking: a call that cannot finish yet waits inside the kernel. The peer will send only after --delay seconds, so recv() must wait that long.");

    std::thread::scope(|scope| -> Result<()> {
        // Dropping these senders tells the helper threads the scene is over.
        let (cue, cues) = mpsc::channel::<()>();
        let (watch, watching) = mpsc::channel::<()>();
        let theirs = pair.theirs.as_fd();
        scope.spawn(move || peer_sends_after(nar, theirs, delay, &cues));
        scope.spawn(move || watch_thread(nar, tid, &watching, 3));

        let fd = pair.ours.as_raw_fd();
        let mut buf = [0u8; 1024];
        let step = nar.blocking(
            "recv",
            format!("fd {fd}, {}, 0", bytes(buf.len())),
            "no data yet: this thread sleeps until the peer sends; a watcher thread looks at it meanwhile",
        );
        // Measured from here: a --step pause before the call is not waiting.
        let cpu_before = kernel::io::thread_cpu_time().ok();
        let started = Instant::now();
        let _ = cue.send(()); // the peer's --delay starts now
        let _ = watch.send(()); // and the watcher starts looking
        let result = recv(fd, &mut buf, MsgFlags::empty());
        drop(watch);
        match result {
            Ok(count) => {
                step.ok_value(
                    count as i64,
                    format!("{}: {}", bytes(count), show_bytes(&buf[..count], 60)),
                );
                report_cpu(nar, cpu_before, started, "the blocked recv()");
                nar.note("The thread slept in the kernel (state S) and used almost no CPU: the kernel woke it only when the data arrived. This is why blocking IO is simple and cheap, as long as there is only one thing to wait for.");
            }
            Err(Errno::EINTR) => step.fail(Errno::EINTR),
            Err(errno) => {
                step.fail(errno);
                return Err(anyhow::anyhow!("recv() failed: {}", errno.desc()));
            }
        }
        drop(cue);
        Ok(())
    })?;

    let step = nar.call("close", format!("fd {}", pair.ours.as_raw_fd()));
    step.check(nix::unistd::close(pair.ours), |_| "0".into())?;
    let step = nar.call("close", format!("fd {}", pair.theirs.as_raw_fd()));
    step.check(nix::unistd::close(pair.theirs), |_| "0".into())?;
    nar.note("While one recv() blocks, the thread can do nothing else: no other socket, no keyboard. Serving many clients needs non-blocking IO with multiplexing (netlab lesson io-multiplexing), or a process or thread per client.");
    Ok(())
}
