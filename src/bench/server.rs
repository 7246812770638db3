//! Which process is the server, and what does it cost? Read from /proc.
//!
//! The load generator only knows an address. To report the server's CPU
//! time and memory it needs the server's pid, and the kernel can tell:
//!
//! 1. `/proc/net/tcp` (and `tcp6`) lists the listening socket on the port,
//!    with its inode number;
//! 2. `/proc/PID/fd/N` of the process that holds that socket is a link to
//!    `socket:[INODE]`.
//!
//! Then `/proc/PID/stat` gives its CPU time (utime + stime, in clock ticks)
//! and `/proc/PID/status` its resident memory (VmRSS). Processes of other
//! users cannot be read without root, and a server in another network
//! namespace is not in our `/proc/net/tcp`: then we say we could not.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;

use crate::kernel::{self, FdKind, TcpState};

/// The processes that hold the listening socket (more than one for a
/// server that forks after listen()).
#[derive(Debug, Clone)]
pub struct ServerProcess {
    pub pids: Vec<i32>,
}

/// Find the processes listening on `addr` (the port, on that IP or on the
/// wildcard address). Err says, in a whole sentence, why we could not.
pub fn find(addr: SocketAddr) -> Result<ServerProcess, &'static str> {
    let Ok(entries) = kernel::read_tcp_table() else {
        return Err("/proc/net/tcp could not be read.");
    };
    let inodes: HashSet<u64> = entries
        .iter()
        .filter(|entry| entry.state == TcpState::Listen && entry.local.port() == addr.port())
        .filter(|entry| {
            let ip = entry.local.ip();
            ip.is_unspecified() || ip.to_canonical() == addr.ip().to_canonical()
        })
        .map(|entry| entry.inode)
        .filter(|inode| *inode != 0)
        .collect();
    if inodes.is_empty() {
        return Err("No listening socket on that port appears in /proc/net/tcp (is the server in another network namespace?).");
    }
    let me = std::process::id() as i32;
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Err("/proc could not be listed.");
    };
    let mut pids: Vec<i32> = proc_dir
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| holds_any(*pid, &inodes))
        .collect();
    pids.sort_unstable();
    if pids.is_empty() {
        return Err(
            "No process we may inspect holds the listening socket (it may belong to another user).",
        );
    }
    Ok(ServerProcess { pids })
}

/// Does process `pid` have one of these sockets open? Processes we may not
/// inspect, or that exit while we look, simply do not match.
fn holds_any(pid: i32, inodes: &HashSet<u64>) -> bool {
    kernel::list_fds(pid).is_ok_and(|fds| {
        fds.iter()
            .any(|entry| matches!(entry.kind, FdKind::Socket { inode } if inodes.contains(&inode)))
    })
}

impl ServerProcess {
    /// Each process's command name (`comm` in /proc/PID/stat), or "?".
    pub fn names(&self) -> Vec<String> {
        self.pids
            .iter()
            .map(|pid| kernel::read_stat(*pid).map_or_else(|_| "?".to_string(), |stat| stat.comm))
            .collect()
    }

    /// utime + stime of all its processes, in clock ticks, from /proc/PID/stat.
    pub fn cpu_ticks(&self) -> io::Result<u64> {
        let mut ticks = 0;
        for pid in &self.pids {
            let stat = kernel::read_stat(*pid)?;
            ticks += stat.utime_ticks + stat.stime_ticks;
        }
        Ok(ticks)
    }

    /// Resident memory of all its processes, in KiB, from /proc/PID/status.
    pub fn rss_kib(&self) -> io::Result<u64> {
        let mut total = 0;
        for pid in &self.pids {
            total += vm_rss_kib(*pid)?;
        }
        Ok(total)
    }
}

/// The `VmRSS:` line of /proc/PID/status ("VmRSS:     5120 kB"): the
/// memory of the process that is in RAM right now.
pub fn vm_rss_kib(pid: i32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no VmRSS line in /proc/PID/status",
        )
    })
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tnetlab\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss(status), Some(5120));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn our_own_memory_is_readable() {
        let kib = vm_rss_kib(std::process::id() as i32).expect("our own status");
        assert!(kib > 0);
    }

    #[test]
    fn a_port_nobody_listens_on_has_no_server() {
        // `find` skips its own process (the load generator holds thousands
        // of sockets); tests/bench.rs checks that it finds a real server.
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = socket.local_addr().expect("addr");
        drop(socket);
        assert!(find(addr).is_err());
    }
}
