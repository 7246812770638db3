//! A small epoll wrapper for the load generator.
//!
//! The load generator is a client, not a lesson about epoll (that is
//! `netlab epoll-demo`), so its event loop hides the raw calls behind three
//! methods. They are called through libc: the three calls are all it needs.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// Readiness bits, as epoll_ctl(2) and epoll_wait(2) spell them.
pub const IN: u32 = libc::EPOLLIN as u32;
pub const OUT: u32 = libc::EPOLLOUT as u32;
pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;
pub const ERR: u32 = libc::EPOLLERR as u32;
pub const HUP: u32 = libc::EPOLLHUP as u32;

/// One epoll instance (level-triggered: a socket is reported for as long as
/// it stays ready).
pub struct Epoll {
    epoll_fd: OwnedFd,
}

impl Epoll {
    /// epoll_create1(EPOLL_CLOEXEC).
    pub fn new() -> nix::Result<Epoll> {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
        let fd = Errno::result(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: the descriptor was just created and nothing else owns it.
        let epoll_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { epoll_fd })
    }

    /// epoll_ctl(EPOLL_CTL_ADD): watch `fd` for `events`; `token` comes back
    /// with every readiness report.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> nix::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// epoll_ctl(EPOLL_CTL_MOD): change what `fd` is watched for.
    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> nix::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// epoll_ctl(EPOLL_CTL_DEL). Closing a descriptor also removes it.
    pub fn delete(&self, fd: RawFd) -> nix::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> nix::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        let result = unsafe { libc::epoll_ctl(self.epoll_fd.as_raw_fd(), op, fd, &mut event) };
        Errno::result(result).map(drop)
    }

    /// epoll_wait(): fill `ready` with up to its capacity of reports, waiting
    /// at most `timeout_ms` (returns EINTR when a signal arrives).
    pub fn wait(&self, ready: &mut Vec<libc::epoll_event>, timeout_ms: i32) -> nix::Result<()> {
        ready.clear();
        let capacity = i32::try_from(ready.capacity()).unwrap_or(i32::MAX).max(1);
        // SAFETY: the kernel writes at most `capacity` events into the
        // vector's spare capacity, and returns how many it wrote.
        let count = unsafe {
            libc::epoll_wait(
                self.epoll_fd.as_raw_fd(),
                ready.as_mut_ptr(),
                capacity,
                timeout_ms,
            )
        };
        let count = Errno::result(count)?;
        // SAFETY: the first `count` events were initialised by the kernel.
        unsafe { ready.set_len(count as usize) };
        Ok(())
    }
}
