//! What a process's file descriptors point at: `/proc/PID/fd`.
//!
//! A file descriptor is just a small number; the kernel keeps, per process,
//! a table from those numbers to open "files", which may be real files,
//! terminals, pipes, sockets or kernel objects such as an epoll instance.
//! `/proc/PID/fd` shows that table: one symbolic link per open descriptor,
//! named by its number. Reading the link (`readlink`) gives a description:
//!
//! ```text
//! 0 -> /dev/pts/3               a terminal
//! 3 -> socket:[41234]           a socket, by inode number
//! 4 -> pipe:[8595]              one end of a pipe, by inode number
//! 5 -> anon_inode:[eventpoll]   an epoll instance (no file behind it)
//! 6 -> /home/ada/notes.txt      a regular file
//! ```
//!
//! A socket's inode number is the join key to the rest of the kernel's
//! evidence: it is the `inode` column of `/proc/net/tcp`, so it tells which
//! connection in that table a given descriptor is.

use std::io;
use std::os::fd::BorrowedFd;

/// What kind of object a file descriptor refers to, decoded from its
/// `/proc/PID/fd/N` link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FdKind {
    /// `socket:[INODE]`: a socket; look the inode up in `/proc/net/tcp`.
    Socket {
        /// The socket's inode number.
        inode: u64,
    },
    /// `pipe:[INODE]`: one end of a pipe (both ends share the inode).
    Pipe {
        /// The pipe's inode number.
        inode: u64,
    },
    /// `anon_inode:NAME`: a kernel object with no file behind it. Holds the
    /// text after `anon_inode:` as the kernel wrote it, e.g. `[eventpoll]`
    /// (epoll), `[eventfd]`, `[timerfd]`, `[signalfd]`, `inotify`.
    AnonInode(String),
    /// A terminal device: `/dev/pts/N` (a pseudo-terminal, as in a terminal
    /// window or ssh), `/dev/ttyN`, `/dev/tty`, `/dev/console`.
    Terminal(String),
    /// A path in the file system (including devices such as `/dev/null`;
    /// a deleted file shows as `PATH (deleted)`).
    File(String),
    /// Anything else, e.g. a namespace `net:[4026531840]`.
    Other(String),
}

impl FdKind {
    /// A short lower-case label: `"socket"`, `"pipe"`, `"epoll"`,
    /// `"anon inode"`, `"terminal"`, `"file"` or `"other"`.
    pub fn label(&self) -> &'static str {
        match self {
            FdKind::Socket { .. } => "socket",
            FdKind::Pipe { .. } => "pipe",
            FdKind::AnonInode(name) if name == "[eventpoll]" || name == "eventpoll" => "epoll",
            FdKind::AnonInode(_) => "anon inode",
            FdKind::Terminal(_) => "terminal",
            FdKind::File(_) => "file",
            FdKind::Other(_) => "other",
        }
    }
}

/// One open file descriptor of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdEntry {
    /// The descriptor number.
    pub fd: i32,
    /// The raw link target, e.g. `socket:[41234]`.
    pub target: String,
    /// The target decoded.
    pub kind: FdKind,
}

/// Decodes a `/proc/PID/fd/N` link target such as `"socket:[12345]"`,
/// `"pipe:[678]"`, `"anon_inode:[eventpoll]"`, `"/dev/pts/3"` or
/// `"/home/x/file"`. Never fails: unrecognised text becomes
/// [`FdKind::Other`].
pub fn classify(target: &str) -> FdKind {
    if let Some(inode) = bracketed_inode(target, "socket:") {
        return FdKind::Socket { inode };
    }
    if let Some(inode) = bracketed_inode(target, "pipe:") {
        return FdKind::Pipe { inode };
    }
    if let Some(name) = target.strip_prefix("anon_inode:") {
        return FdKind::AnonInode(name.to_string());
    }
    if target.starts_with("/dev/pts/") || target.starts_with("/dev/tty") || target == "/dev/console"
    {
        return FdKind::Terminal(target.to_string());
    }
    if target.starts_with('/') {
        return FdKind::File(target.to_string());
    }
    FdKind::Other(target.to_string())
}

/// Parses `PREFIX[NUMBER]`, as in `socket:[12345]`.
fn bracketed_inode(target: &str, prefix: &str) -> Option<u64> {
    let digits = target
        .strip_prefix(prefix)?
        .strip_prefix('[')?
        .strip_suffix(']')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lists the open file descriptors of process `pid`, sorted by number.
///
/// Reads every link in `/proc/PID/fd`. Another user's process gives
/// `PermissionDenied` unless we are root. A descriptor that is closed
/// while we scan is skipped. That includes the descriptor this function
/// itself uses to read the directory when `pid` is our own process: the
/// names are collected and the directory closed before any link is read,
/// so it does not show up as a confusing extra entry.
pub fn list_fds(pid: i32) -> io::Result<Vec<FdEntry>> {
    let dir = format!("/proc/{pid}/fd");
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        if let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            numbers.push(fd);
        }
    } // the directory's own descriptor is closed here
    numbers.sort_unstable();

    let mut fds = Vec::with_capacity(numbers.len());
    for fd in numbers {
        match std::fs::read_link(format!("{dir}/{fd}")) {
            Ok(target) => {
                let target = target.to_string_lossy().into_owned();
                let kind = classify(&target);
                fds.push(FdEntry { fd, target, kind });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // closed meanwhile
            Err(e) => return Err(e),
        }
    }
    Ok(fds)
}

/// The inode number of a socket: `fstat(fd).st_ino`.
///
/// Every socket lives on the kernel's internal "sockfs" file system and has
/// an inode number there. It is the number in `socket:[INODE]` and in the
/// `inode` column of `/proc/net/tcp`, so it joins a descriptor we hold to
/// its line in that table. Returns `InvalidInput` if `fd` is not a socket.
pub fn socket_inode_of(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let stat = nix::sys::stat::fstat(fd).map_err(io::Error::from)?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file descriptor is not a socket",
        ));
    }
    Ok(stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd};

    #[test]
    fn classifies_link_targets() {
        assert_eq!(classify("socket:[12345]"), FdKind::Socket { inode: 12345 });
        assert_eq!(classify("pipe:[678]"), FdKind::Pipe { inode: 678 });
        assert_eq!(
            classify("anon_inode:[eventpoll]"),
            FdKind::AnonInode("[eventpoll]".to_string())
        );
        assert_eq!(classify("anon_inode:[eventpoll]").label(), "epoll");
        assert_eq!(FdKind::AnonInode("eventpoll".into()).label(), "epoll");
        assert_eq!(classify("anon_inode:[eventfd]").label(), "anon inode");
        assert_eq!(classify("anon_inode:inotify").label(), "anon inode");
        assert_eq!(
            classify("/dev/pts/3"),
            FdKind::Terminal("/dev/pts/3".into())
        );
        assert_eq!(classify("/dev/tty1").label(), "terminal");
        assert_eq!(classify("/dev/tty").label(), "terminal");
        assert_eq!(
            classify("/home/x/file"),
            FdKind::File("/home/x/file".into())
        );
        assert_eq!(classify("/dev/null").label(), "file");
        assert_eq!(classify("/tmp/gone (deleted)").label(), "file");
        assert_eq!(classify("net:[4026531840]").label(), "other");
        // Malformed socket/pipe links are not guessed at.
        assert_eq!(classify("socket:[12x]").label(), "other");
        assert_eq!(classify("socket:[]").label(), "other");
        assert_eq!(classify("pipe:678").label(), "other");
        assert_eq!(classify("").label(), "other");
        assert_eq!(classify("socket:[1]").label(), "socket");
        assert_eq!(classify("pipe:[1]").label(), "pipe");
    }

    #[test]
    fn own_listener_is_listed_and_joins_proc_net_tcp() {
        use super::super::{proc_net, TcpState};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let inode = socket_inode_of(listener.as_fd()).expect("fstat socket");
        assert_ne!(inode, 0);

        let pid = std::process::id() as i32;
        let fds = list_fds(pid).expect("list own fds");
        let raw = listener.as_raw_fd();
        let mine = fds
            .iter()
            .find(|e| e.fd == raw)
            .expect("listener's fd is listed");
        assert_eq!(mine.kind, FdKind::Socket { inode });
        assert_eq!(mine.target, format!("socket:[{inode}]"));
        assert!(fds.windows(2).all(|w| w[0].fd < w[1].fd), "sorted by fd");

        let table = proc_net::read_tcp_table().expect("read /proc/net/tcp");
        let entry = proc_net::find_by_inode(&table, inode).expect("listener in table");
        assert_eq!(entry.state, TcpState::Listen);
        assert_eq!(entry.local, listener.local_addr().expect("local_addr"));
    }

    #[test]
    fn socket_inode_of_rejects_non_sockets() {
        let file = std::fs::File::open("/proc/self/stat").expect("open");
        let err = socket_inode_of(file.as_fd()).expect_err("not a socket");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
