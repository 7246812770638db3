//! Where data and threads wait: a socket's queues, a thread's sleep, its CPU time.
//!
//! The IO-model demos claim things like "recv() is asleep in the kernel",
//! "the loop burned 300 ms of CPU" and "3.9 MB wait in the send queue". Each
//! of those is read here, from the kernel, at the moment it is narrated:
//!
//! * `ioctl(SIOCINQ)` and `ioctl(SIOCOUTQ)`: how many bytes wait in a
//!   socket's receive queue (not yet read by the program) and send queue
//!   (not yet acknowledged by the peer). `ss` shows the same numbers as
//!   Recv-Q and Send-Q.
//! * `/proc/PID/task/TID/wchan`: the kernel function a sleeping thread waits
//!   in (`wait_woken`, `hrtimer_nanosleep`...), or `0` when it is running.
//! * `getrusage(RUSAGE_THREAD)`: the CPU time this thread has used so far.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::resource::{getrusage, UsageWho};

/// `ioctl(fd, SIOCINQ)`: bytes in a TCP socket's receive queue that the
/// program has not read yet (Recv-Q in `ss`). SIOCINQ is FIONREAD.
pub fn receive_queue(fd: BorrowedFd<'_>) -> nix::Result<u32> {
    queue_ioctl(fd, libc::FIONREAD)
}

/// `ioctl(fd, SIOCOUTQ)`: bytes in a TCP socket's send queue that the peer
/// has not acknowledged yet (Send-Q in `ss`). SIOCOUTQ is TIOCOUTQ.
pub fn send_queue(fd: BorrowedFd<'_>) -> nix::Result<u32> {
    queue_ioctl(fd, libc::TIOCOUTQ)
}

fn queue_ioctl(fd: BorrowedFd<'_>, request: libc::Ioctl) -> nix::Result<u32> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: both requests write one int through the pointer, which points
    // at a live c_int.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), request, &mut bytes) };
    Errno::result(result)?;
    u32::try_from(bytes).map_err(|_| Errno::EPROTO)
}

/// `/proc/PID/task/TID/wchan`: the kernel function thread TID sleeps in.
/// Returns `None` when the thread is running (the kernel writes `0`).
pub fn task_wchan(pid: i32, tid: i32) -> io::Result<Option<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/wchan"))?;
    let name = text.trim();
    Ok((!name.is_empty() && name != "0").then(|| name.to_string()))
}

/// CPU time the calling thread has used so far: (user, system).
/// User time is spent in the program's own code, system time in the
/// kernel on its behalf (inside system calls).
pub fn thread_cpu_time() -> nix::Result<(Duration, Duration)> {
    let usage = getrusage(UsageWho::RUSAGE_THREAD)?;
    let to_duration = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(tv.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(tv.tv_usec()).unwrap_or(0))
    };
    Ok((
        to_duration(usage.user_time()),
        to_duration(usage.system_time()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn queues_count_unread_bytes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().expect("accept");
        client.write_all(b"hello").expect("write");
        // Loopback delivers at once, but give the kernel a moment anyway.
        let mut waiting = 0;
        for _ in 0..100 {
            waiting = receive_queue(server.as_fd()).expect("SIOCINQ");
            if waiting == 5 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(waiting, 5);
        assert_eq!(send_queue(server.as_fd()).expect("SIOCOUTQ"), 0);
    }

    #[test]
    fn this_thread_is_running_and_has_used_cpu() {
        let pid = std::process::id() as i32;
        let tid = nix::unistd::gettid().as_raw();
        // A running thread has no wait channel (the kernel writes 0).
        assert_eq!(task_wchan(pid, tid).expect("wchan"), None);
        let (user, system) = thread_cpu_time().expect("getrusage");
        assert!(user + system < Duration::from_secs(3600));
    }
}
