//! The load generator: many echo connections driven by one thread.
//!
//! One thread and one epoll instance drive every connection, which is the
//! only way a load generator on a small machine stays cheaper than the
//! server it measures (a thread per connection would spend its time in the
//! scheduler). Each *active* connection has exactly one message in flight:
//! send it, wait until the whole echo is back, check it byte for byte, send
//! the next. *Idle* connections are opened first and then left alone; they
//! are what makes select() and poll() slow. At the end every idle connection
//! sends one message, and one that does not get its echo back counts as lost.
//!
//! Phases: connect (non-blocking, a bounded number at a time), the timed
//! run, the idle check. Nothing here allocates per round trip.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    connect, getsockopt, recv, send, setsockopt, socket, sockopt, MsgFlags, SockFlag, SockType,
};
use serde_json::json;

use super::epoll::{self, Epoll};
use super::histogram::Histogram;
use super::server::ServerProcess;
use crate::narrate::{errno_name, Narrator};
use crate::stop;
use crate::sys;

/// At most this many connect() calls wait for their handshake at once, so
/// the server's accept queue is not flooded.
const CONNECTS_IN_FLIGHT: usize = 128;
/// Give up on the connections still waiting when no handshake finished for
/// this long (a server that never accepts).
const CONNECT_PATIENCE: Duration = Duration::from_secs(3);
/// Descriptors this process needs besides its connections.
const OWN_FDS: u64 = 32;
/// The idle check's message: enough to prove the server still serves the
/// connection, small enough for ten thousand of them.
const IDLE_CHECK_BYTES: usize = 64;
/// How long the idle check waits for the last echo.
const IDLE_CHECK_PATIENCE: Duration = Duration::from_secs(5);

/// What to load, and how.
#[derive(Debug, Clone)]
pub struct Load {
    pub addr: SocketAddr,
    /// Connections that echo messages back to back.
    pub active: usize,
    /// Connections opened first and then left idle.
    pub idle: usize,
    pub duration: Duration,
    /// Bytes per message.
    pub size: usize,
}

/// The server's CPU time and memory over the timed run, or why not.
#[derive(Debug, Clone)]
pub enum ServerUsage {
    Measured {
        pids: Vec<i32>,
        cpu_seconds: f64,
        rss_kib: Option<u64>,
    },
    Unavailable(String),
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Outcome {
    pub round_trips: u64,
    pub seconds: f64,
    pub latency: Histogram,
    /// Failures by kind: "mismatch", "ECONNRESET", "closed by server", ...
    pub errors: BTreeMap<String, u64>,
    /// Active connections that were opened.
    pub active_open: usize,
    /// Active connections still open at the end that never completed a
    /// round trip (an iterative server leaves them waiting).
    pub stalled: usize,
    /// Idle connections that were opened, and how many of them were lost
    /// (closed, reset or silent in the idle check).
    pub idle_open: usize,
    pub idle_lost: usize,
    /// This process's own CPU time during the timed run.
    pub client_cpu_seconds: f64,
    pub server: ServerUsage,
    /// A stop (Ctrl-C) cut the run short.
    pub interrupted: bool,
}

impl Outcome {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.idle_lost as u64
    }

    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.round_trips as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Server CPU time per round trip, in microseconds.
    pub fn server_cpu_us(&self) -> Option<f64> {
        match &self.server {
            ServerUsage::Measured { cpu_seconds, .. } if self.round_trips > 0 => {
                Some(cpu_seconds * 1e6 / self.round_trips as f64)
            }
            _ => None,
        }
    }

    pub fn client_cpu_us(&self) -> Option<f64> {
        (self.round_trips > 0).then(|| self.client_cpu_seconds * 1e6 / self.round_trips as f64)
    }

    pub fn server_rss_kib(&self) -> Option<u64> {
        match &self.server {
            ServerUsage::Measured { rss_kib, .. } => *rss_kib,
            ServerUsage::Unavailable(_) => None,
        }
    }
}

/// Is this connection one that echoes all the time, or one that waits?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Active,
    Idle,
}

/// One client connection and its message in flight.
struct Conn {
    /// None once the connection failed or is finished (and was closed).
    fd: Option<OwnedFd>,
    role: Role,
    /// The message being echoed, rewritten for every round trip so that an
    /// echo that belongs to another connection or an older message differs.
    message: Vec<u8>,
    sent: usize,
    received: usize,
    /// When the first byte of this message was sent.
    started: Instant,
    seq: u64,
    round_trips: u64,
    /// Is EPOLLOUT in the interest set (a send did not fit at once)?
    watching_out: bool,
}

impl Conn {
    fn raw(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// Fill `message` with printable letters that depend on the connection and
/// the sequence number, and end it with a newline (friendly to line-based
/// student servers).
fn fill(message: &mut [u8], conn: usize, seq: u64) {
    let seed = (conn as u64)
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(seq.wrapping_mul(7919));
    for (index, byte) in message.iter_mut().enumerate() {
        let mixed = seed.wrapping_add((index as u64).wrapping_mul(131)) ^ (seed >> 7);
        *byte = b'a' + (mixed % 26) as u8;
    }
    if let Some(last) = message.last_mut() {
        *last = b'\n';
    }
}

/// Every active connection keeps its message in memory: refuse a load
/// that would need more than 1 GiB for them.
pub fn check_memory(active: usize, size: usize) -> Result<(), crate::error::Failure> {
    const MAX_IN_FLIGHT: usize = 1 << 30;
    let total = active.saturating_mul(size);
    if total > MAX_IN_FLIGHT {
        return Err(crate::error::Failure::new(
            format!(
                "{active} connections with {size}-byte messages would keep {} MiB in flight",
                total >> 20
            ),
            Some("use fewer connections or smaller messages (at most 1 GiB in all)"),
        ));
    }
    Ok(())
}

/// Raise this process's soft RLIMIT_NOFILE to the hard limit, so that it
/// may hold `connections` sockets and a few descriptors of its own (stdio,
/// epoll, the stop pipe). Returns the new soft limit.
pub fn raise_fd_limit(nar: &Narrator, connections: u64) -> Result<u64, crate::error::Failure> {
    let needed = connections + OWN_FDS;
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|errno| {
        crate::error::Failure::new(
            format!("getrlimit(RLIMIT_NOFILE) failed: {}", errno_name(errno)),
            None,
        )
    })?;
    let step = nar.call(
        "setrlimit",
        format!("RLIMIT_NOFILE, soft {hard}, hard {hard}"),
    );
    if let Err(errno) = step.check(setrlimit(Resource::RLIMIT_NOFILE, hard, hard), |_| {
        "0".into()
    }) {
        return Err(crate::error::Failure::new(
            format!("setrlimit(RLIMIT_NOFILE) failed: {}", errno_name(errno)),
            None,
        ));
    }
    nar.note("Every connection is a file descriptor, and the soft limit on open descriptors (often 1024) would stop the load early; a process may raise it up to the hard limit.");
    if hard < needed {
        return Err(crate::error::Failure::with_hint(
            format!("{connections} connections need {needed} file descriptors with our own, but the hard limit is {hard} (soft was {soft})"),
            "use fewer connections, or raise the hard limit (`ulimit -Hn`, /etc/security/limits.conf) as root",
        ));
    }
    Ok(hard)
}

/// Run the load: connect, run for `load.duration`, check the idle ones.
pub fn run(nar: &Narrator, load: &Load, server: Option<&ServerProcess>) -> anyhow::Result<Outcome> {
    let epoll = Epoll::new()?;
    let mut errors = BTreeMap::new();
    let mut ready = Vec::with_capacity(1024);

    // Phase 1: the idle connections first, then the active ones.
    let mut conns: Vec<Conn> = Vec::with_capacity(load.idle + load.active);
    open_connections(nar, load, &epoll, &mut ready, &mut conns, &mut errors);
    let idle_open = conns.iter().filter(|conn| conn.role == Role::Idle).count();
    let active_open = conns.len() - idle_open;

    // Phase 2: the timed run.
    let mut latency = Histogram::new();
    let mut round_trips = 0u64;
    let mut idle_lost = 0usize;
    let mut scratch = vec![0u8; 64 * 1024];
    let cpu_before = server.map(ServerProcess::cpu_ticks);
    let client_before = own_cpu_seconds();
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut next_progress = started + Duration::from_secs(1);
    let mut interrupted = stop::requested().is_some();

    for (token, conn) in conns.iter_mut().enumerate() {
        if conn.role == Role::Active {
            begin_round_trip(&epoll, token, conn, &mut errors);
        }
    }
    while !interrupted {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_progress {
            progress(nar, started, round_trips, &errors);
            next_progress += Duration::from_secs(1);
            let any_active = conns
                .iter()
                .any(|conn| conn.role == Role::Active && conn.fd.is_some());
            if !any_active {
                break; // every active connection failed: nothing left to measure
            }
        }
        let wait = deadline.min(next_progress).saturating_duration_since(now);
        match epoll.wait(&mut ready, wait.as_millis().min(1000) as i32 + 1) {
            Ok(()) => {}
            Err(Errno::EINTR) => {
                interrupted = stop::requested().is_some();
                continue;
            }
            Err(errno) => return Err(anyhow::anyhow!("epoll_wait failed: {}", errno_name(errno))),
        }
        for event in &ready {
            let token = event.u64 as usize;
            let events = event.events;
            let Some(conn) = conns.get_mut(token) else {
                continue;
            };
            if conn.fd.is_none() {
                continue;
            }
            if conn.role == Role::Idle {
                // An idle connection has nothing to say: anything it
                // reports means the server closed or reset it.
                if idle_is_gone(conn) {
                    close_conn(conn);
                    idle_lost += 1;
                }
                continue;
            }
            if events & epoll::OUT != 0 {
                send_rest(&epoll, token, conn, &mut errors);
            }
            if conn.fd.is_some()
                && events & (epoll::IN | epoll::ERR | epoll::HUP | epoll::RDHUP) != 0
            {
                if let Some(elapsed) = receive(conn, &mut scratch, &mut errors) {
                    latency.record(elapsed.as_nanos() as u64);
                    round_trips += 1;
                    conn.round_trips += 1;
                    conn.seq += 1;
                    begin_round_trip(&epoll, token, conn, &mut errors);
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let client_cpu_seconds = own_cpu_seconds() - client_before;
    let server_usage = measure_server(server, cpu_before);
    // Open, but not one echo in the whole run: the server never served them.
    let stalled = conns
        .iter()
        .filter(|conn| conn.role == Role::Active && conn.fd.is_some() && conn.round_trips == 0)
        .count();

    // The active connections are done; close them before the idle check.
    for conn in conns.iter_mut().filter(|conn| conn.role == Role::Active) {
        close_conn(conn);
    }
    if !interrupted && idle_open > 0 {
        idle_lost += check_idle(nar, load.size, &epoll, &mut ready, &mut conns, &mut scratch);
    }
    Ok(Outcome {
        round_trips,
        seconds,
        latency,
        errors,
        active_open,
        stalled,
        idle_open,
        idle_lost,
        client_cpu_seconds,
        server: server_usage,
        interrupted,
    })
}

fn progress(nar: &Narrator, started: Instant, round_trips: u64, errors: &BTreeMap<String, u64>) {
    let seconds = started.elapsed().as_secs_f64();
    let failed: u64 = errors.values().sum();
    nar.info(
        "progress",
        json!({ "seconds": round1(seconds), "round_trips": round_trips, "errors": failed }),
        format!(
            "{seconds:.0} s: {} round trips so far ({} a second), {failed} errors",
            super::report::thousands(round_trips as f64),
            super::report::thousands(round_trips as f64 / seconds.max(0.001))
        ),
    );
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The server's CPU time over the run (the difference of two readings of
/// /proc/PID/stat) and its memory now, while every connection is open.
fn measure_server(
    server: Option<&ServerProcess>,
    before: Option<std::io::Result<u64>>,
) -> ServerUsage {
    let Some(server) = server else {
        return ServerUsage::Unavailable("the server's process was not found".into());
    };
    let ticks = match (before, server.cpu_ticks()) {
        (Some(Ok(before)), Ok(after)) => after.saturating_sub(before),
        (_, Err(err)) | (Some(Err(err)), _) => {
            return ServerUsage::Unavailable(format!("/proc/PID/stat could not be read: {err}"))
        }
        (None, _) => return ServerUsage::Unavailable("no first reading".into()),
    };
    ServerUsage::Measured {
        pids: server.pids.clone(),
        cpu_seconds: ticks as f64 / crate::kernel::clock_ticks_per_second() as f64,
        rss_kib: server.rss_kib().ok(),
    }
}

/// getrusage(RUSAGE_SELF): this process's user + system CPU time.
fn own_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |usage| {
        let (user, system) = (usage.user_time(), usage.system_time());
        let seconds = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        seconds(user) + seconds(system)
    })
}

/// Open `load.idle` and then `load.active` connections, at most
/// CONNECTS_IN_FLIGHT handshakes at a time. Failures are counted by errno.
fn open_connections(
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

fn new_conn(fd: OwnedFd, role: Role, size: usize) -> Conn {
    // Idle connections get their (small) message only for the idle check.
    let message = match role {
        Role::Active => vec![0; size],
        Role::Idle => Vec::new(),
    };
    Conn {
        fd: Some(fd),
        role,
        message,
        sent: 0,
        received: 0,
        started: Instant::now(),
        seq: 0,
        round_trips: 0,
        watching_out: false,
    }
}

fn count(errors: &mut BTreeMap<String, u64>, kind: &str) {
    match errors.get_mut(kind) {
        Some(counter) => *counter += 1,
        None => {
            errors.insert(kind.to_string(), 1);
        }
    }
}

/// Close a connection that failed or is done (dropping the OwnedFd closes
/// it, which also takes it out of the epoll set).
fn close_conn(conn: &mut Conn) {
    conn.fd = None;
}

/// Start a round trip: a fresh message, sent as far as the socket takes it.
fn begin_round_trip(
    epoll: &Epoll,
    token: usize,
    conn: &mut Conn,
    errors: &mut BTreeMap<String, u64>,
) {
    fill(&mut conn.message, token, conn.seq);
    conn.sent = 0;
    conn.received = 0;
    conn.started = Instant::now();
    send_rest(epoll, token, conn, errors);
}

/// send() what is left of the message. A short write is normal for a big
/// message: the rest goes when epoll says the socket is writable again.
fn send_rest(epoll: &Epoll, token: usize, conn: &mut Conn, errors: &mut BTreeMap<String, u64>) {
    let Some(fd) = conn.raw() else { return };
    while conn.sent < conn.message.len() {
        // MSG_NOSIGNAL: a reset connection gives EPIPE, not SIGPIPE.
        match send(fd, &conn.message[conn.sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(count) => conn.sent += count,
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                count(errors, errno_name(errno));
                close_conn(conn);
                return;
            }
        }
    }
    let want_out = conn.sent < conn.message.len();
    if want_out != conn.watching_out {
        let interest = if want_out {
            epoll::IN | epoll::OUT
        } else {
            epoll::IN
        };
        if let Err(errno) = epoll.modify(fd, interest, token as u64) {
            count(errors, errno_name(errno));
            close_conn(conn);
            return;
        }
        conn.watching_out = want_out;
    }
}

/// recv() what the server echoed and compare it with what we sent. Returns
/// the round trip's time once the whole echo is back.
fn receive(
    conn: &mut Conn,
    scratch: &mut [u8],
    errors: &mut BTreeMap<String, u64>,
) -> Option<Duration> {
    let fd = conn.raw()?;
    loop {
        match recv(fd, scratch, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => {
                count(errors, "closed by server");
                close_conn(conn);
                return None;
            }
            Ok(got) => {
                let expected = conn.message.get(conn.received..conn.received + got);
                if expected != Some(&scratch[..got]) || conn.received + got > conn.sent {
                    // Wrong bytes, or bytes we have not sent yet: either way
                    // this is not an echo of our message.
                    count(errors, "echo mismatch");
                    close_conn(conn);
                    return None;
                }
                conn.received += got;
                if conn.received == conn.message.len() {
                    return Some(conn.started.elapsed());
                }
            }
            Err(Errno::EAGAIN) => return None,
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                count(errors, errno_name(errno));
                close_conn(conn);
                return None;
            }
        }
    }
}

/// An idle connection reported an event: did the server close or reset it?
/// (Data it did not ask for would be a broken echo server; count it lost.)
fn idle_is_gone(conn: &Conn) -> bool {
    let Some(fd) = conn.raw() else { return false };
    let mut byte = [0u8; 1];
    !matches!(
        recv(fd, &mut byte, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_PEEK),
        Err(Errno::EAGAIN)
    )
}

/// The idle check: one message on every idle connection that is still
/// open; each must come back intact within IDLE_CHECK_PATIENCE. Returns
/// how many did not.
fn check_idle(
    nar: &Narrator,
    size: usize,
    epoll: &Epoll,
    ready: &mut Vec<libc::epoll_event>,
    conns: &mut [Conn],
    scratch: &mut [u8],
) -> usize {
    // The kinds of failure are not kept apart here: lost is lost.
    let mut errors = BTreeMap::new();
    let (mut waiting, mut lost) = (0usize, 0usize);
    for (token, conn) in conns.iter_mut().enumerate() {
        if conn.role == Role::Idle && conn.fd.is_some() {
            conn.message.resize(size.min(IDLE_CHECK_BYTES), 0);
            begin_round_trip(epoll, token, conn, &mut errors);
            if conn.fd.is_some() {
                waiting += 1;
            } else {
                lost += 1;
            }
        }
    }
    let checked = waiting + lost;
    let deadline = Instant::now() + IDLE_CHECK_PATIENCE;
    while waiting > 0 && Instant::now() < deadline && stop::requested().is_none() {
        match epoll.wait(ready, 100) {
            Ok(()) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        for event in ready.iter() {
            let token = event.u64 as usize;
            let Some(conn) = conns.get_mut(token) else {
                continue;
            };
            if conn.fd.is_none() {
                continue;
            }
            if event.events & epoll::OUT != 0 {
                send_rest(epoll, token, conn, &mut errors);
            }
            let answered = conn.fd.is_some() && receive(conn, scratch, &mut errors).is_some();
            if answered {
                close_conn(conn);
                waiting -= 1;
            } else if conn.fd.is_none() {
                waiting -= 1;
                lost += 1;
            }
        }
    }
    // Whatever is still waiting got no echo in time.
    lost += waiting;
    nar.info(
        "idle_check",
        json!({ "checked": checked, "lost": lost }),
        format!(
            "idle check: {} of {checked} idle connections echoed one message",
            checked - lost
        ),
    );
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_printable_lines_that_differ_by_connection_and_turn() {
        let mut first = vec![0u8; 64];
        let mut other_conn = vec![0u8; 64];
        let mut next_turn = vec![0u8; 64];
        fill(&mut first, 3, 7);
        fill(&mut other_conn, 4, 7);
        fill(&mut next_turn, 3, 8);
        assert!(first[..63].iter().all(u8::is_ascii_lowercase));
        assert_eq!(first[63], b'\n');
        assert_ne!(first, other_conn);
        assert_ne!(first, next_turn);
        let mut one = [0u8; 1];
        fill(&mut one, 0, 0);
        assert_eq!(one, *b"\n");
    }

    #[test]
    fn loads_that_need_too_much_memory_are_refused() {
        assert!(check_memory(50, 64).is_ok());
        assert!(check_memory(1000, 1 << 20).is_ok());
        assert!(check_memory(2000, 1 << 20).is_err());
        assert!(check_memory(usize::MAX, 2).is_err());
    }
}
