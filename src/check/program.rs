//! The student's program: start it, watch it bind its port, stop it, and
//! clean up after it.
//!
//! The program runs in a process group of its own, so one signal reaches
//! it and everything it forked (`kill(-pgid)`), and the terminal's Ctrl-C
//! reaches only netlab, which then stops the program itself. netlab is a
//! child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`): a process the program
//! forked and left behind is re-parented to netlab, not to init, so netlab
//! can report it, kill it and reap it. PR_SET_PDEATHSIG kills the program
//! if netlab itself dies (`kill -9`), so no server outlives its checker.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::json;

use super::session::Role;
use crate::error::Failure;
use crate::kernel::fds::{list_fds, FdKind};
use crate::kernel::process::{read_stat, state_name, ProcStat};
use crate::kernel::{proc_net, udp, TcpState};
use crate::narrate::{errno_name, Fact, Narrator};
use crate::stop;

/// How much of the program's output is kept for the report.
const OUTPUT_KEEP: usize = 64 * 1024;
/// How long the program has to end after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(1500);

/// The program's output (stdout and stderr share one pipe, so their lines
/// stay in the order they were written), the last OUTPUT_KEEP bytes.
#[derive(Default)]
struct OutputLog {
    bytes: Vec<u8>,
    /// Bytes dropped from the front to keep the log small.
    dropped: usize,
    /// The pipe reached end of file: every process that could write to
    /// it has ended, and all they wrote is here.
    complete: bool,
}

/// A Python traceback in the program's output (see `last_traceback`).
pub struct Traceback {
    /// Its last line, "ValueError: invalid literal for int()", when printed.
    pub exception: Option<String>,
    /// Whether that line is among the lines the report shows.
    pub shown: bool,
}

impl Traceback {
    /// The exception's class, "ConnectionResetError", from its line.
    pub fn class(&self) -> Option<&str> {
        let line = self.exception.as_deref()?;
        let name = line.split(':').next().unwrap_or(line).trim();
        Some(name.rsplit('.').next().unwrap_or(name))
    }

    /// A peer that reset or vanished: what netlab's own probes do on
    /// purpose, and what a server may log and survive.
    pub fn is_peer_gone(&self) -> bool {
        matches!(
            self.class(),
            Some("ConnectionResetError" | "BrokenPipeError" | "ConnectionAbortedError")
        )
    }
}

/// A running (or finished) student program.
pub struct Program {
    pid: i32,
    /// The process that holds the listening socket and so is the server
    /// the probes judge: the program itself, or one it started (see
    /// `server_of`). The program's pid until `wait_bound` finds it.
    server: AtomicI32,
    /// The inodes of the program's listening (or bound) sockets on the
    /// port: one, or one per worker with SO_REUSEPORT. Empty until
    /// `wait_bound` finds them.
    listeners: Mutex<Vec<u64>>,
    /// The kind of socket and the port the server was found on.
    bound: Mutex<Option<(Role, u16)>>,
    /// Servers that ended while another process of the program still held
    /// the listening socket, and the process judged from then on.
    handoffs: Mutex<Vec<(i32, i32)>>,
    /// Set when `stop` begins: the server is no longer re-chosen.
    stopping: AtomicBool,
    child: Mutex<Child>,
    /// Set once the program has been reaped.
    status: Mutex<Option<ExitStatus>>,
    output: Arc<Mutex<OutputLog>>,
}

impl Program {
    /// Start `argv` in its own process group, stdin from /dev/null, stdout
    /// and stderr into one pipe that a thread reads.
    pub fn start(argv: &[String]) -> Result<Program, Failure> {
        let (read_end, write_end) = nix::unistd::pipe().map_err(|errno| {
            Failure::new(
                format!(
                    "cannot make a pipe for your program's output: {}",
                    errno_name(errno)
                ),
                None,
            )
        })?;
        let write_copy = write_end
            .try_clone()
            .map_err(|err| Failure::new(format!("cannot duplicate a pipe: {err}"), None))?;
        let parent = std::process::id() as i32;
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::from(write_copy))
            // Python buffers its prints when the output is a pipe; the
            // report wants them as they happen.
            .env("PYTHONUNBUFFERED", "1")
            .process_group(0);
        // SAFETY: only async-signal-safe calls (prctl, getppid, kill)
        // between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // netlab died between fork and prctl: end now.
                if libc::getppid() != parent {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|err| spawn_failure(&argv[0], &err))?;
        // The command holds the pipe's write ends; drop them so the reader
        // sees end of file when the program (and all it forked) exits.
        drop(command);
        let output = Arc::new(Mutex::new(OutputLog::default()));
        let sink = Arc::clone(&output);
        let _ = std::thread::Builder::new()
            .name("program output".into())
            .spawn(move || read_output(read_end, &sink));
        let pid = child.id() as i32;
        Ok(Program {
            pid,
            server: AtomicI32::new(pid),
            listeners: Mutex::new(Vec::new()),
            bound: Mutex::new(None),
            handoffs: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            child: Mutex::new(child),
            status: Mutex::new(None),
            output,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Reap the program if it has exited (waitpid with WNOHANG, through
    /// std's `try_wait`), and return its status.
    fn poll_status(&self) -> Option<ExitStatus> {
        let mut status = lock(&self.status);
        if status.is_none() {
            if let Ok(Some(done)) = lock(&self.child).try_wait() {
                *status = Some(done);
            }
        }
        *status
    }

    /// Is the program still running?
    pub fn alive(&self) -> bool {
        self.poll_status().is_none()
    }

    /// The server's pid (the program's own unless a process it started
    /// holds the listening socket). When the server has ended but another
    /// process of the program still holds the socket (a launcher that
    /// exits once its child serves), that process is the server from then
    /// on, and `stop` reports the change.
    pub fn server_pid(&self) -> i32 {
        let server = self.server.load(Ordering::Relaxed);
        if lock(&self.listeners).is_empty()
            || self.stopping.load(Ordering::Relaxed)
            || self.running(server)
        {
            return server;
        }
        let inodes = self.listener_inodes();
        let holders: Vec<(i32, i32)> = holders_of(self, &inodes)
            .into_iter()
            .filter(|(pid, _)| self.running(*pid))
            .collect();
        if holders.is_empty() {
            return server;
        }
        let next = server_of(self, &holders);
        self.server.store(next, Ordering::Relaxed);
        lock(&self.handoffs).push((server, next));
        next
    }

    /// Is process `pid` of the program running (not ended, not a zombie)?
    fn running(&self, pid: i32) -> bool {
        if pid == self.pid {
            return self.alive();
        }
        read_stat(pid).is_ok_and(|stat| !matches!(stat.state, 'Z' | 'X'))
    }

    fn set_server(&self, pid: i32, inodes: &[u64], role: Role, port: u16) {
        self.server.store(pid, Ordering::Relaxed);
        *lock(&self.listeners) = inodes.to_vec();
        *lock(&self.bound) = Some((role, port));
    }

    /// The inodes of the sockets on the server's port now (workers with
    /// SO_REUSEPORT may have added theirs since it was found), with the
    /// ones found at start.
    fn listener_inodes(&self) -> Vec<u64> {
        let mut inodes = lock(&self.listeners).clone();
        if let Some((role, port)) = *lock(&self.bound) {
            for (_, inode) in bound_on(role, port) {
                if !inodes.contains(&inode) {
                    inodes.push(inode);
                }
            }
        }
        inodes
    }

    /// Is the server still running (not exited, not a zombie)?
    pub fn server_alive(&self) -> bool {
        self.running(self.server_pid())
    }

    /// How the server ended ("exited with status 1"), None while it runs.
    pub fn server_end(&self) -> Option<String> {
        let server = self.server_pid();
        if server == self.pid {
            return self.exit_description();
        }
        (!self.server_alive()).then(|| format!("the server process (pid {server}) has ended"))
    }

    /// "exited with status 1", "killed by SIGSEGV"; None while it runs.
    pub fn exit_description(&self) -> Option<String> {
        self.poll_status().map(describe)
    }

    /// The exit code the program ended with, if it has ended normally.
    pub fn exit_code(&self) -> Option<i32> {
        self.poll_status().and_then(|status| status.code())
    }

    /// The last `max_lines` lines of the program's output, and how many
    /// earlier lines were left out. Invalid UTF-8 is shown escaped.
    pub fn output_tail(&self, max_lines: usize) -> (Vec<String>, usize) {
        let log = lock(&self.output);
        let text = String::from_utf8_lossy(&log.bytes);
        let mut lines: Vec<String> = text.lines().map(readable_line).collect();
        let mut earlier = 0;
        if lines.len() > max_lines {
            earlier = lines.len() - max_lines;
            lines.drain(..earlier);
        }
        if log.dropped > 0 && earlier == 0 {
            earlier = 1;
        }
        (lines, earlier)
    }

    /// The last Python traceback the program printed, if any: the line
    /// that names its exception, and whether that line is among the last
    /// `tail` lines (the ones the report shows).
    pub fn last_traceback(&self, tail: usize) -> Option<Traceback> {
        let log = lock(&self.output);
        let text = String::from_utf8_lossy(&log.bytes);
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .rposition(|line| line.starts_with("Traceback (most recent call last)"))?;
        // The frames are indented; the first line after them that is not
        // names the exception ("ConnectionResetError: [Errno 104] ...").
        let at = (start + 1..lines.len())
            .find(|&i| !lines[i].is_empty() && !lines[i].starts_with(char::is_whitespace));
        Some(match at {
            Some(i) => Traceback {
                exception: Some(readable_line(lines[i])),
                shown: lines.len() - i <= tail,
            },
            None => Traceback {
                exception: None,
                shown: lines.len() - start <= tail,
            },
        })
    }

    /// Every process under the program (its children, theirs, ...), plus
    /// any process it left behind that was re-parented to netlab.
    pub fn descendants(&self) -> Vec<ProcStat> {
        let mine = std::process::id() as i32;
        let table = process_table();
        let mut found = Vec::new();
        let mut queue = vec![self.pid];
        while let Some(parent) = queue.pop() {
            for stat in table.get(&parent).into_iter().flatten() {
                queue.push(stat.pid);
                found.push(stat.clone());
            }
        }
        // Orphans: children of netlab other than the program itself.
        for stat in table.get(&mine).into_iter().flatten() {
            if stat.pid != self.pid && !found.iter().any(|f| f.pid == stat.pid) {
                let mut orphans = vec![stat.pid];
                found.push(stat.clone());
                while let Some(parent) = orphans.pop() {
                    for below in table.get(&parent).into_iter().flatten() {
                        orphans.push(below.pid);
                        found.push(below.clone());
                    }
                }
            }
        }
        found.sort_by_key(|stat| stat.pid);
        found
    }

    /// Every process under the server (see `server_pid`): its children,
    /// theirs, and so on. Not the processes between the program and the
    /// server (a wrapper), which the server did not start.
    pub fn server_descendants(&self) -> Vec<ProcStat> {
        let server = self.server_pid();
        let table = process_table();
        let mut found = Vec::new();
        let mut queue = vec![server];
        while let Some(parent) = queue.pop() {
            for stat in table.get(&parent).into_iter().flatten() {
                queue.push(stat.pid);
                found.push(stat.clone());
            }
        }
        found.sort_by_key(|stat| stat.pid);
        found
    }

    /// Stop the program: SIGTERM to its process group (and to the server,
    /// should it have left the group), SIGKILL after a grace period, then
    /// every process it forked is killed by pid and reaped. Reports what
    /// it did. Safe to call twice.
    pub fn stop(&self, nar: &Narrator) {
        let netlab = std::process::id() as i32;
        let server = self.server_pid();
        self.stopping.store(true, Ordering::Relaxed);
        // The server and the processes between it and the program (a
        // wrapper such as `sh -c`) are the program itself, not leftovers;
        // nor are zombies re-parented to netlab, which netlab reaps.
        let everything = self.descendants();
        let mut chain = vec![server];
        while let Some(parent) = everything
            .iter()
            .find(|stat| Some(&stat.pid) == chain.last())
            .map(|stat| stat.ppid)
        {
            chain.push(parent);
        }
        // A live process that holds the listening socket can accept()
        // clients on it: a worker of a pre-forking server, part of the
        // server too.
        let inodes = self.listener_inodes();
        let (workers, left_behind): (Vec<ProcStat>, Vec<ProcStat>) = everything
            .into_iter()
            .filter(|stat| !chain.contains(&stat.pid))
            .filter(|stat| !(stat.state == 'Z' && stat.ppid == netlab))
            .partition(|stat| {
                stat.state != 'Z'
                    && inodes
                        .iter()
                        .any(|&inode| holds_socket(stat.pid, inode).is_some())
            });

        let running = self.poll_status().is_none() || self.server_alive();
        let mut how = match self.poll_status() {
            Some(status) if !self.server_alive() => {
                format!("it had already ended ({})", describe_end(status))
            }
            _ => String::new(),
        };
        if running {
            let started = Instant::now();
            // The group id is the program's pid (process_group(0)).
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGTERM);
            if server != self.pid {
                let _ = kill(Pid::from_raw(server), Signal::SIGTERM);
            }
            let ended = || self.poll_status().is_some() && !self.server_alive();
            while !ended() && started.elapsed() < TERM_GRACE {
                std::thread::sleep(Duration::from_millis(10));
            }
            how = if ended() {
                let after = started.elapsed().as_secs_f64();
                match self.poll_status() {
                    Some(status) if server == self.pid => format!(
                        "sent SIGTERM to its process group; it ended after {after:.2} s ({})",
                        describe_end(status)
                    ),
                    _ => format!(
                        "sent SIGTERM to its process group and to the server (pid {server}); the server ended after {after:.2} s"
                    ),
                }
            } else {
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(server), Signal::SIGKILL);
                if let Ok(status) = lock(&self.child).wait() {
                    *lock(&self.status) = Some(status);
                }
                format!(
                    "it did not end within {:.1} s of SIGTERM, so netlab sent SIGKILL",
                    TERM_GRACE.as_secs_f64()
                )
            };
        }
        // Whatever it forked: the group got the signals, but a process can
        // leave the group (setsid), so each one is also killed by pid. They
        // are all ours: started by the program netlab started. Orphans
        // re-parented to netlab (the subreaper) are reaped here; a round
        // catches any that were re-parented while the last one ran.
        let mut reaped = 0;
        for _round in 0..3 {
            let remaining = self.descendants();
            if remaining.is_empty() {
                break;
            }
            for stat in remaining.iter().filter(|stat| stat.state != 'Z') {
                let _ = kill(Pid::from_raw(stat.pid), Signal::SIGKILL);
            }
            reaped += reap_orphans(Duration::from_millis(700));
        }
        // Everything that could write to the output pipe has ended: give
        // the reading thread a moment to take in the last lines (the ones
        // that say why a program ended early).
        let until = Instant::now() + Duration::from_millis(500);
        while !lock(&self.output).complete && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        for (ended, next) in std::mem::take(&mut *lock(&self.handoffs)) {
            nar.startup(
                "server",
                json!({ "pid": next, "ended_pid": ended }),
                format!("the server process (pid {ended}) ended while pid {next} of your program still held the listening socket; the probes judged pid {next} from then on"),
            );
        }
        let with_workers = match workers.len() {
            0 => String::new(),
            n => format!(" and its {n} worker process(es), which held the listening socket"),
        };
        nar.startup(
            "stopped",
            json!({ "pid": self.pid, "server_pid": server, "status": self.exit_description(),
                    "workers": workers.iter().map(|stat| stat.pid).collect::<Vec<_>>() }),
            format!(
                "stopped your program (pid {}){with_workers}: {how}",
                self.pid
            ),
        );
        if !left_behind.is_empty() {
            let mut list: Vec<String> = left_behind
                .iter()
                .take(8)
                .map(|stat| format!("{} {} ({})", stat.pid, stat.comm, state_name(stat.state)))
                .collect();
            if left_behind.len() > 8 {
                list.push(format!("and {} more", left_behind.len() - 8));
            }
            let reaped = match reaped {
                0 => String::new(),
                n => format!(", and reaped the {n} that were left to it"),
            };
            nar.warning(
                format!(
                    "besides the server, your program had {} process(es) when it was stopped: {}; netlab killed what still ran{reaped}",
                    left_behind.len(),
                    list.join(", "),
                ),
                Some("A child that has served its client should exit, and its parent should reap it (waitpid)."),
            );
        }
    }
}

/// Lock a mutex, even one a panicking thread left poisoned.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `describe`, for the end netlab itself caused: SIGTERM is how netlab
/// stops a server, so it is named as such rather than as a fault.
fn describe_end(status: ExitStatus) -> String {
    match status.signal() {
        Some(libc::SIGTERM) => "on SIGTERM, as a server should".to_string(),
        _ => describe(status),
    }
}

fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = Signal::try_from(signal)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {signal}"));
            format!("killed by {name}")
        }
        None => format!("ended: {status}"),
    }
}

/// The longest line of the program's output the report shows whole.
const LINE_KEEP: usize = 300;

/// One line of the program's output as the report shows it: as printed,
/// except control characters (shown escaped, tab kept) and a line longer
/// than LINE_KEEP characters (cut, with how much was left out). Invalid
/// UTF-8 has already become U+FFFD.
fn readable_line(line: &str) -> String {
    let mut out = String::new();
    for (shown, c) in line.chars().enumerate() {
        if shown == LINE_KEEP {
            let rest = line.chars().count() - shown;
            out.push_str(&format!(" ... ({rest} more characters)"));
            break;
        }
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The interpreter named by the #! line of `program`, when `program` is a
/// file that exists (so ENOENT from exec means the interpreter is missing).
fn missing_interpreter(program: &str) -> Option<String> {
    if !program.contains('/') || !Path::new(program).is_file() {
        return None;
    }
    let bytes = std::fs::read(program).ok()?;
    let first = bytes.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?;
    let interpreter = line.strip_prefix("#!")?.trim();
    (!interpreter.is_empty()).then(|| interpreter.to_string())
}

/// A clear message for a program that cannot be started.
fn spawn_failure(program: &str, err: &io::Error) -> Failure {
    match err.kind() {
        // The file exists, so what is missing is the interpreter its #!
        // line names.
        io::ErrorKind::NotFound if missing_interpreter(program).is_some() => {
            let interpreter = missing_interpreter(program).unwrap_or_default();
            Failure::new(
                format!("cannot start `{program}`: its #! line names `{interpreter}`, which does not exist"),
                Some("Fix the first line of the file (e.g. #!/usr/bin/env python3), or run it through its interpreter: python3 FILE."),
            )
        }
        io::ErrorKind::NotFound => Failure::new(
            format!("cannot start `{program}`: no such program"),
            Some("Check the spelling, or give the program's path (./server.py needs `chmod +x` and a #! line; `python3 server.py` does not)."),
        ),
        io::ErrorKind::PermissionDenied => Failure::new(
            format!("cannot start `{program}`: permission denied"),
            Some("Make it executable (chmod +x FILE), or run it through its interpreter: python3 FILE."),
        ),
        _ => Failure::new(format!("cannot start `{program}`: {err}"), None),
    }
}

/// Keep reading the program's output until every writer has closed it.
fn read_output(pipe: OwnedFd, sink: &Mutex<OutputLog>) {
    let mut file = std::fs::File::from(pipe);
    let mut buf = [0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => {
                lock(sink).complete = true;
                return;
            }
            Ok(n) => {
                let mut log = lock(sink);
                log.bytes.extend_from_slice(&buf[..n]);
                if log.bytes.len() > OUTPUT_KEEP {
                    let cut = log.bytes.len() - OUTPUT_KEEP;
                    log.bytes.drain(..cut);
                    log.dropped += cut;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                lock(sink).complete = true;
                return;
            }
        }
    }
}

/// Every process on the machine, by parent pid (one scan of /proc).
fn process_table() -> HashMap<i32, Vec<ProcStat>> {
    let mut table: HashMap<i32, Vec<ProcStat>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = read_stat(pid) {
            table.entry(stat.ppid).or_default().push(stat);
        }
    }
    table
}

/// Reap every child netlab has left (the program's orphans, re-parented
/// here), waiting up to `limit` for the ones just killed. Returns how many.
fn reap_orphans(limit: Duration) -> usize {
    let started = Instant::now();
    let mut reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if started.elapsed() >= limit {
                    return reaped;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(_) => reaped += 1,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return reaped, // ECHILD: none left
        }
    }
}

/// Make netlab the reaper of whatever the program leaves behind.
pub fn become_subreaper(nar: &Narrator) {
    // SAFETY: prctl with integer arguments only.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if result == -1 {
        nar.warning(
            format!(
                "prctl(PR_SET_CHILD_SUBREAPER) failed: {}; processes your program leaves behind will go to init",
                io::Error::last_os_error()
            ),
            None,
        );
    }
}

/// A free port for the program: bind port 0 with the role's protocol on
/// 127.0.0.1, read the port the kernel chose, and let it go.
pub fn free_port(role: Role) -> Result<u16, Failure> {
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let port = match role {
        Role::UdpServer => UdpSocket::bind(any).and_then(|s| s.local_addr()),
        _ => TcpListener::bind(any).and_then(|s| s.local_addr()),
    };
    port.map(|addr| addr.port())
        .map_err(|err| Failure::new(format!("cannot find a free port on 127.0.0.1: {err}"), None))
}

/// netlab's listening socket for a client exercise (127.0.0.1:PORT).
pub fn listen_for_client(port: u16) -> Result<TcpListener, Failure> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr).map_err(|err| match err.kind() {
        io::ErrorKind::AddrInUse => Failure::new(
            format!("cannot listen on {addr}: the port is in use"),
            Some("Leave out --port (netlab then picks a free port and passes it as {port})."),
        ),
        _ => Failure::new(format!("cannot listen on {addr}: {err}"), None),
    })
}

/// Replace `{port}`, `{host}` and (for an exercise with a directory to
/// serve) `{root}` in every argument.
pub fn substitute(command: &[String], port: u16, root: Option<&Path>) -> Vec<String> {
    command
        .iter()
        .map(|arg| {
            let arg = arg
                .replace("{port}", &port.to_string())
                .replace("{host}", "127.0.0.1");
            match root {
                Some(root) => arg.replace("{root}", &root.display().to_string()),
                None => arg,
            }
        })
        .collect()
}

/// Where the program's socket is bound, as the kernel shows it.
pub struct Bound {
    /// The loopback address the probes use to reach it.
    pub probe_addr: SocketAddr,
    /// The socket's inode.
    pub inode: u64,
}

/// Wait until the program has a socket on `port` (TCP: LISTEN), reading
/// /proc/net/tcp or /proc/net/udp every 20 ms, and decide which of its
/// processes is the server (see `server_of`). Fails with a clear message
/// if the program exits first, binds another port or protocol, or takes
/// too long.
pub fn wait_bound(
    nar: &Narrator,
    program: &Program,
    role: Role,
    port: u16,
    timeout: Duration,
) -> Result<Bound, Failure> {
    let started = Instant::now();
    let words = Words::of(role);
    // A socket on the port that no process of the program holds.
    let mut foreign: Option<SocketAddr> = None;
    // When a socket of the other protocol on the port was first seen.
    let mut other_seen: Option<Instant> = None;
    // When a socket held only by a process other than the started one was
    // first seen (see below).
    let mut settling: Option<Instant> = None;
    loop {
        // Every socket on the port, and which of them the program holds
        // (with SO_REUSEPORT, each worker may have one of its own).
        let sockets = bound_on(role, port);
        let mine: Vec<(SocketAddr, u64)> = sockets
            .iter()
            .copied()
            .filter(|&(_, inode)| !holders_of(program, &[inode]).is_empty())
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
            let by_started = holders_of(program, &[first])
                .first()
                .is_some_and(|&(pid, _)| pid == program.pid());
            let since = *settling.get_or_insert_with(Instant::now);
            if by_started || since.elapsed() >= Duration::from_millis(100) {
                let inodes: Vec<u64> = mine.iter().map(|&(_, inode)| inode).collect();
                let holders = holders_of(program, &inodes);
                return Ok(found(
                    nar, program, role, port, local, &inodes, &holders, started,
                ));
            }
        } else if let Some(&(local, _)) = sockets.first() {
            foreign = Some(local);
        }
        let tree_alive = program.alive() || !program.descendants().is_empty();
        if !tree_alive {
            let ended = program.exit_description().unwrap_or_default();
            return Err(Failure::new(
                format!("your program {ended} before netlab saw it {} port {port}", words.doing),
                Some("Its output is above. Run the command by hand (with a real port in place of {port}) to see it fail."),
            ));
        }
        // The right port seen here but not by bound_on() above is a socket
        // that began to listen in between (or a read of the table that
        // missed it): look again, it is not "elsewhere".
        let mut elsewhere = other_ports(program, role);
        elsewhere.retain(|addr| addr.port() != port);
        if !elsewhere.is_empty() && started.elapsed() > Duration::from_millis(500) {
            let list: Vec<String> = elsewhere.iter().map(|a| a.to_string()).collect();
            return Err(Failure::with_hint(
                format!("your program is {} {} instead of port {port}", words.doing, list.join(", ")),
                format!("Read the port from the command line and put {{port}} in the command, or run: netlab check --port {} ...", elsewhere[0].port()),
            ));
        }
        // The other protocol on the port is wrong only once it has been
        // there for half a second: a server may bind a UDP socket (for
        // another job) a moment before it listens with TCP on that port.
        let other = other_protocol_on(program, role, port);
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
                    "your program {} port {port} after {:.1} s ({why}; read from {})",
                    words.not_yet,
                    started.elapsed().as_secs_f64(),
                    words.table
                ),
            };
            return Err(Failure::new(message, Some(words.never_hint)));
        }
        std::thread::sleep(Duration::from_millis(20));
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
fn server_of(program: &Program, holders: &[(i32, i32)]) -> i32 {
    let parents: HashMap<i32, i32> = program
        .descendants()
        .iter()
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
    chains[0]
        .iter()
        .copied()
        .find(|candidate| chains.iter().all(|c| c.contains(candidate)))
        .unwrap_or(holders[0].0)
}

/// A socket of the other protocol on `port`, held by the program: "listens
/// with TCP" / "bound a UDP socket".
fn other_protocol_on(program: &Program, role: Role, port: u16) -> Option<&'static str> {
    let other = match role {
        Role::UdpServer => Role::TcpServer,
        _ => Role::UdpServer,
    };
    let inodes: Vec<u64> = bound_on(other, port)
        .into_iter()
        .map(|(_, inode)| inode)
        .collect();
    if holders_of(program, &inodes).is_empty() {
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
fn bound_on(role: Role, port: u16) -> Vec<(SocketAddr, u64)> {
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
    let mut pids = vec![program.pid()];
    pids.extend(program.descendants().iter().map(|stat| stat.pid));
    pids.into_iter()
        .filter_map(|pid| {
            let fd = inodes.iter().find_map(|&inode| holds_socket(pid, inode))?;
            Some((pid, fd))
        })
        .collect()
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
fn other_ports(program: &Program, role: Role) -> Vec<SocketAddr> {
    let mut inodes = Vec::new();
    let mut pids = vec![program.pid()];
    pids.extend(program.descendants().iter().map(|stat| stat.pid));
    for pid in pids {
        for entry in list_fds(pid).unwrap_or_default() {
            if let FdKind::Socket { inode } = entry.kind {
                inodes.push(inode);
            }
        }
    }
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

/// A directory for `{root}`: /tmp/netlab-check-PID-N/ with the served
/// files in `www/` (the `{root}`) and files that must never be served
/// next to it. Removed on drop.
pub struct WorkDir {
    base: PathBuf,
    root: PathBuf,
}

impl WorkDir {
    pub fn create(prepare: fn(&Path) -> io::Result<()>) -> Result<WorkDir, Failure> {
        use std::os::unix::fs::DirBuilderExt;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let base =
            std::env::temp_dir().join(format!("netlab-check-{}-{stamp}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&base)
            .map_err(|err| {
                Failure::new(format!("cannot create {}: {err}", base.display()), None)
            })?;
        let dir = WorkDir {
            root: base.join("www"),
            base,
        };
        std::fs::create_dir(&dir.root)
            .and_then(|()| prepare(&dir.root))
            .map_err(|err| {
                Failure::new(format!("cannot fill {}: {err}", dir.root.display()), None)
            })?;
        Ok(dir)
    }

    /// The directory the program serves (`{root}`).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
