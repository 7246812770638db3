//! Waiting for the program's socket, and deciding which of its processes
//! is the server the probes judge.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{describe, Program};
use crate::check::session::Role;
use crate::error::Failure;
use crate::kernel::fds::{list_fds, FdKind};
use crate::kernel::process::ProcStat;
use crate::kernel::{proc_net, udp, TcpState};
use crate::narrate::{Fact, Narrator};
use crate::stop;

/// Where the program's socket is bound, as the kernel shows it.
pub struct Bound {
    /// The loopback address the probes use to reach it.
    pub probe_addr: SocketAddr,
    /// The socket's inode.
    pub inode: u64,
}

/// Wait until the program has a socket on `port` (TCP: LISTEN), reading
/// /proc/net/tcp or /proc/net/udp every 20 ms (50 ms after the first second), and decide which of its
/// processes is the server (see `server_of`). Fails with a clear message
/// if the program exits first, binds another port or protocol, or takes
/// too long.
pub fn wait_bound(
    nar: &Narrator,
    program: &Program,
    role: Role,
    port: u16,
    told_port: bool,
    timeout: Duration,
) -> Result<Bound, Failure> {
    let started = Instant::now();
    let words = Words::of(role);
    // A socket on the port that no process of the program holds.
    let mut foreign: Option<SocketAddr> = None;
    // When a socket of the other protocol on the port was first seen.
    let mut other_seen: Option<Instant> = None;
    // When a socket of the program on another port was first seen.
    let mut elsewhere_seen: Option<Instant> = None;
    // When a socket held only by a process other than the started one was
    // first seen (see below).
    let mut settling: Option<Instant> = None;
    // Rounds in a row in which no process of the program ran.
    let mut ended_rounds = 0;
    loop {
        // One scan of /proc a round: the program's processes and sockets.
        // Whether the program runs is read first: had it ended after the
        // scan, a child it forked just before would be missing from it.
        let program_alive = program.alive();
        let processes = program.descendants();
        let held = Held::of(program, &processes);
        // Every socket on the port, and which of them the program holds
        // (with SO_REUSEPORT, each worker may have one of its own).
        let sockets = bound_on(role, port);
        let mine: Vec<(SocketAddr, u64)> = sockets
            .iter()
            .copied()
            .filter(|&(_, inode)| !held.holders(&[inode]).is_empty())
            .collect();
        if let Some(&(local, first)) = mine.first() {
            if loopback_for(local).is_none() {
                return Err(Failure::new(
                    format!("your program is {} {local}, an address netlab does not probe", words.doing),
                    Some("netlab sends its probes only to loopback (127.0.0.1 or ::1): bind {host} (127.0.0.1) or 0.0.0.0."),
                ));
            }
            // A socket held by a process other than the one netlab started
            // may be the first of several workers, each with a socket of
            // its own (SO_REUSEPORT): look again 0.1 s later, so that the
            // server chosen is their parent, not the first worker.
            let by_started = held
                .holders(&[first])
                .first()
                .is_some_and(|&(pid, _)| pid == program.pid());
            let since = *settling.get_or_insert_with(Instant::now);
            if by_started || since.elapsed() >= Duration::from_millis(100) {
                let inodes: Vec<u64> = mine.iter().map(|&(_, inode)| inode).collect();
                let holders = held.holders(&inodes);
                return Ok(found(
                    nar, program, role, port, local, &inodes, &holders, started,
                ));
            }
        } else if let Some(&(local, _)) = sockets.first() {
            foreign = Some(local);
        }
        // Zombies count as ended: a launcher's child that failed at once
        // lingers as a zombie of netlab (the subreaper) until the stop.
        let tree_alive = program_alive || processes.iter().any(|stat| stat.state != 'Z');
        // A scan of /proc is not one instant: a process forked by one that
        // then exited can be missed. Ended means ended in two rounds.
        ended_rounds = match tree_alive {
            true => 0,
            false => ended_rounds + 1,
        };
        if ended_rounds >= 2 {
            let ended = program.exit_description().unwrap_or_default();
            // How the processes it started ended, read from their zombies.
            let theirs: Vec<String> = processes
                .iter()
                .filter_map(|stat| {
                    let status = ExitStatus::from_raw(stat.exit_code?);
                    (!status.success()).then(|| {
                        format!(
                            "pid {} ({}), which {}",
                            stat.pid,
                            stat.comm,
                            describe(status)
                        )
                    })
                })
                .take(3)
                .collect();
            let theirs = match theirs.is_empty() {
                true => String::new(),
                false => format!("; it had started {}", theirs.join(" and ")),
            };
            if matches!(program.exit_code(), Some(126 | 127)) && super::windows_hash_bang(program) {
                return Err(Failure::new(
                    format!("your program {ended} before it started: its #! line ends in a Windows line ending (\\r\\n), so the interpreter's name ends in \\r, and no such program exists"),
                    Some("Save the file with Unix line endings (dos2unix FILE, or sed -i 's/\\r$//' FILE), or run it through its interpreter: python3 FILE."),
                ));
            }
            return Err(Failure::new(
                format!("your program {ended} before netlab saw it {} port {port}{theirs}", words.doing),
                Some("Its output is above. Run the command by hand (with a real port in place of {port}) to see it fail."),
            ));
        }
        // The right port seen here but not by bound_on() above is a socket
        // that began to listen in between (or a read of the table that
        // missed it): look again, it is not "elsewhere".
        // Another port is the wrong one only after 2 s of it alone: a
        // program may open a second port (an admin port, a debugger's)
        // before it listens on its own.
        let mut elsewhere = other_ports(&held, role);
        elsewhere.retain(|addr| addr.port() != port);
        elsewhere_seen = match elsewhere.is_empty() {
            true => None,
            false => Some(elsewhere_seen.unwrap_or_else(Instant::now)),
        };
        // A port the kernel chose (bind to port 0: an admin or debug port)
        // is never the one a program was told to use: when it was told
        // one, wait for that until the start-up timeout.
        let chosen_by_kernel =
            !elsewhere.is_empty() && elsewhere.iter().all(|addr| in_ephemeral_range(addr.port()));
        let patient = told_port && chosen_by_kernel;
        if !patient && elsewhere_seen.is_some_and(|seen| seen.elapsed() >= Duration::from_secs(2)) {
            let list: Vec<String> = elsewhere.iter().map(|a| a.to_string()).collect();
            return Err(Failure::with_hint(
                format!("your program is {} {} instead of port {port}", words.doing, list.join(", ")),
                format!("Read the port from the command line and put {{port}} in the command, or run: netlab check --port {} ...", elsewhere[0].port()),
            ));
        }
        // The other protocol on the port is wrong only once it has been
        // there for half a second: a server may bind a UDP socket (for
        // another job) a moment before it listens with TCP on that port.
        let other = other_protocol_on(&held, role, port);
        other_seen = other.and(Some(other_seen.unwrap_or_else(Instant::now)));
        let settled = other_seen.is_some_and(|seen| seen.elapsed() > Duration::from_millis(500));
        if let (Some(other), true) = (other, settled) {
            return Err(Failure::new(
                format!(
                    "your program {other} on port {port}, but this exercise needs {}",
                    words.protocol
                ),
                Some(words.protocol_hint),
            ));
        }
        if stop::requested().is_some() || started.elapsed() >= timeout {
            let why = if stop::requested().is_some() {
                "the check was stopped"
            } else {
                "time ran out"
            };
            let message = match foreign {
                Some(local) => format!(
                    "{local} is {} but no process of your program holds it: another program has port {port}",
                    words.state
                ),
                None => format!(
                    "your program {} port {port} after {:.1} s ({why}; read from {}){}",
                    words.not_yet,
                    started.elapsed().as_secs_f64(),
                    words.table,
                    match elsewhere.first() {
                        Some(other) => format!(
                            "; it is {} {other}, a port the kernel chose (bind() to port 0?)",
                            words.doing
                        ),
                        None => String::new(),
                    }
                ),
            };
            return Err(Failure::new(message, Some(words.never_hint)));
        }
        // Every 20 ms at first, when most programs start; then less often.
        let pause = match started.elapsed() < Duration::from_secs(1) {
            true => 20,
            false => 50,
        };
        std::thread::sleep(Duration::from_millis(pause));
    }
}

/// The phrases that differ between a TCP and a UDP server.
struct Words {
    doing: &'static str,
    not_yet: &'static str,
    state: &'static str,
    table: &'static str,
    protocol: &'static str,
    protocol_hint: &'static str,
    never_hint: &'static str,
}

impl Words {
    fn of(role: Role) -> Words {
        match role {
            Role::UdpServer => Words {
                doing: "bound to",
                not_yet: "had not bound a UDP socket to",
                state: "bound",
                table: "/proc/net/udp",
                protocol: "UDP",
                protocol_hint: "Create the socket with socket(AF_INET, SOCK_DGRAM) and bind() it; a UDP server has no listen() and no accept().",
                never_hint: "Check that it binds a UDP socket (SOCK_DGRAM) to the port it is given ({port}); its output is above. A slow start? Raise --startup-timeout.",
            },
            _ => Words {
                doing: "listening on",
                not_yet: "was not listening on",
                state: "LISTEN",
                table: "/proc/net/tcp",
                protocol: "TCP",
                protocol_hint: "Create the socket with socket(AF_INET, SOCK_STREAM), then bind() and listen().",
                never_hint: "Check that it binds the port it is given ({port}) and calls listen(); its output is above. A slow start? Raise --startup-timeout.",
            },
        }
    }
}

/// The socket on the port is the program's: report where, who holds it,
/// and which process the probes will judge as the server.
#[allow(clippy::too_many_arguments)]
fn found(
    nar: &Narrator,
    program: &Program,
    role: Role,
    port: u16,
    local: SocketAddr,
    inodes: &[u64],
    holders: &[(i32, i32)],
    started: Instant,
) -> Bound {
    let server = server_of(program, holders);
    program.set_server(server, inodes, role, port);
    let inode = inodes[0];
    let words = Words::of(role);
    let probe_addr = loopback_for(local).unwrap_or(local);
    let after = started.elapsed().as_secs_f64();
    let (pid, fd) = holders[0];
    nar.startup(
        "listening",
        json!({ "local": local.to_string(), "probe_addr": probe_addr.to_string(), "inode": inode,
                "pid": pid, "fd": fd, "server_pid": server, "seconds": after }),
        format!("your program is ready after {after:.2} s; the probes go to {probe_addr}"),
    );
    let holders_text: Vec<String> = holders
        .iter()
        .take(4)
        .map(|(pid, fd)| format!("pid {pid} as fd {fd}"))
        .collect();
    let more = match holders.len() {
        n if n > 4 => format!(" and {} more", n - 4),
        _ => String::new(),
    };
    nar.kernel_always(Fact::new(
        format!("port {port}"),
        "bound",
        json!(local.to_string()),
        words.source(local),
        format!(
            "{local} is {}, held by {}{more}",
            words.state,
            holders_text.join(", ")
        ),
    ));
    if server != program.pid() {
        let how = match program.exit_description() {
            Some(ended) => format!("the command netlab started (pid {}) {ended}", program.pid()),
            None => format!(
                "it was started by the command netlab ran (pid {})",
                program.pid()
            ),
        };
        nar.startup(
            "server",
            json!({ "pid": server, "started_pid": program.pid() }),
            format!("the server is pid {server}; {how}; the probes judge pid {server}"),
        );
    }
    Bound { probe_addr, inode }
}

impl Words {
    /// The kernel table a socket bound to `local` is listed in.
    fn source(&self, local: SocketAddr) -> &'static str {
        match (self.protocol, local.is_ipv6()) {
            ("UDP", false) => "/proc/net/udp, /proc/PID/fd",
            ("UDP", true) => "/proc/net/udp6, /proc/PID/fd",
            (_, false) => "/proc/net/tcp, /proc/PID/fd",
            (_, true) => "/proc/net/tcp6, /proc/PID/fd",
        }
    }
}

/// Which process is the server: the lowest common ancestor, within the
/// program's tree, of every process that holds the listening socket. For
/// `python3 server.py` that is python3 itself; behind a wrapper (`sh -c`,
/// `make`, `cargo run`) it is the process below the wrapper; for a
/// pre-forking server whose parent closed the listener it is the parent of
/// the workers; for a daemon that double-forked, the daemon.
pub(super) fn server_of(program: &Program, holders: &[(i32, i32)]) -> i32 {
    // Orphans re-parented to netlab (the subreaper) have netlab as their
    // parent: their chains end below it, since netlab is never the server.
    let netlab = std::process::id() as i32;
    let parents: HashMap<i32, i32> = program
        .descendants()
        .iter()
        .filter(|stat| stat.ppid != netlab)
        .map(|stat| (stat.pid, stat.ppid))
        .collect();
    // Each holder's chain of ancestors up to the top of the tree.
    let chain = |pid: i32| {
        let mut chain = vec![pid];
        let mut at = pid;
        while let Some(&parent) = parents.get(&at) {
            chain.push(parent);
            at = parent;
        }
        chain
    };
    let chains: Vec<Vec<i32>> = holders.iter().map(|(pid, _)| chain(*pid)).collect();
    // No common ancestor (workers whose parent has ended): the first
    // holder is the server, the others its fellow workers.
    chains[0]
        .iter()
        .copied()
        .find(|candidate| chains.iter().all(|c| c.contains(candidate)))
        .unwrap_or(holders[0].0)
}

/// A socket of the other protocol on `port`, held by the program: "listens
/// with TCP" / "bound a UDP socket".
fn other_protocol_on(held: &Held, role: Role, port: u16) -> Option<&'static str> {
    let other = match role {
        Role::UdpServer => Role::TcpServer,
        _ => Role::UdpServer,
    };
    let inodes: Vec<u64> = bound_on(other, port)
        .into_iter()
        .map(|(_, inode)| inode)
        .collect();
    if held.holders(&inodes).is_empty() {
        return None;
    }
    Some(match other {
        Role::UdpServer => "bound a UDP socket",
        _ => "listens with TCP",
    })
}

/// Before the program starts: is `port` already taken (TCP: a listener;
/// UDP: a bound socket)? Then whatever answered the probes would not be
/// the program.
pub fn taken(role: Role, port: u16) -> Option<SocketAddr> {
    bound_on(role, port).first().map(|&(local, _)| local)
}

/// The sockets on `port` (TCP: listening; UDP: bound, not connected) and
/// their inodes, read from the kernel's table now.
pub(super) fn bound_on(role: Role, port: u16) -> Vec<(SocketAddr, u64)> {
    match role {
        Role::UdpServer => udp::udp_sockets_on_port(port)
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| !entry.connected)
            .map(|entry| (entry.local, entry.inode))
            .collect(),
        _ => proc_net::read_tcp_table()
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| entry.local.port() == port && entry.state == TcpState::Listen)
            .map(|entry| (entry.local, entry.inode))
            .collect(),
    }
}

/// Every process of the program that holds one of the sockets `inodes`,
/// and on which descriptor, the program itself first.
pub fn holders_of(program: &Program, inodes: &[u64]) -> Vec<(i32, i32)> {
    Held::of(program, &program.descendants()).holders(inodes)
}

/// The sockets the program's processes hold, read from /proc/PID/fd once.
struct Held {
    /// (pid, fd, inode), the program's own first.
    sockets: Vec<(i32, i32, u64)>,
}

impl Held {
    fn of(program: &Program, processes: &[ProcStat]) -> Held {
        let mut pids = vec![program.pid()];
        pids.extend(
            processes
                .iter()
                .filter(|stat| stat.state != 'Z')
                .map(|stat| stat.pid),
        );
        let mut sockets = Vec::new();
        for pid in pids {
            for entry in list_fds(pid).unwrap_or_default() {
                if let FdKind::Socket { inode } = entry.kind {
                    sockets.push((pid, entry.fd, inode));
                }
            }
        }
        Held { sockets }
    }

    /// Each process that holds one of `inodes`, with its first such fd.
    fn holders(&self, inodes: &[u64]) -> Vec<(i32, i32)> {
        let mut found: Vec<(i32, i32)> = Vec::new();
        for &(pid, fd, inode) in &self.sockets {
            if inodes.contains(&inode) && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, fd));
            }
        }
        found
    }
}

/// The descriptor on which process `pid` holds the socket with `inode`
/// (read from /proc/PID/fd), if it holds it.
pub fn holds_socket(pid: i32, inode: u64) -> Option<i32> {
    list_fds(pid)
        .ok()?
        .into_iter()
        .find_map(|entry| match entry.kind {
            FdKind::Socket { inode: found } if found == inode => Some(entry.fd),
            _ => None,
        })
}

/// Ports the program's processes hold (TCP: listening; UDP: bound).
fn other_ports(held: &Held, role: Role) -> Vec<SocketAddr> {
    let inodes: Vec<u64> = held.sockets.iter().map(|&(_, _, inode)| inode).collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    match role {
        Role::UdpServer => udp::read_udp_table()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| inodes.contains(&e.inode) && e.local.port() != 0)
            .map(|e| e.local)
            .collect(),
        _ => proc_net::read_tcp_table()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| inodes.contains(&e.inode) && e.state == TcpState::Listen)
            .map(|e| e.local)
            .collect(),
    }
}

/// Is `port` one the kernel hands out for bind() to port 0 (and for
/// clients' source ports)?
fn in_ephemeral_range(port: u16) -> bool {
    ephemeral_range().is_some_and(|(low, high)| (low..=high).contains(&port))
}

/// The range of ports the kernel picks from for bind() to port 0 and for
/// clients, read from /proc/sys/net/ipv4/ip_local_port_range.
pub(super) fn ephemeral_range() -> Option<(u16, u16)> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let bounds: Vec<u16> = range
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match bounds.as_slice() {
        [low, high] if low <= high => Some((*low, *high)),
        _ => None,
    }
}

/// The loopback address that reaches a socket bound to `local`: itself if
/// it is a loopback address, 127.0.0.1 or ::1 for a wildcard, None otherwise.
fn loopback_for(local: SocketAddr) -> Option<SocketAddr> {
    let ip = local.ip();
    let reach: IpAddr = match ip {
        IpAddr::V4(v4) if v4.is_loopback() => ip,
        IpAddr::V4(v4) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.is_loopback() => ip,
        IpAddr::V6(v6) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if v4.is_loopback() || v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
            _ => return None,
        },
        IpAddr::V4(_) => return None,
    };
    Some(SocketAddr::new(reach, local.port()))
}
