//! The student's program: start it, watch it bind its port, stop it, and
//! clean up after it.
//!
//! The program runs in a process group of its own, so one signal reaches
//! it and everything it forked (`kill(-pgid)`), and the terminal's Ctrl-C
//! reaches only netlab, which then stops the program itself. netlab is a
//! child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`): a process the program
//! forked and left behind is re-parented to netlab, not to init, so netlab
//! can report it, kill it and reap it. If netlab itself dies (`kill -9`),
//! the guard in `check/watchdog.rs` kills the program and all it forked
//! (PR_SET_PDEATHSIG, should the guard not start), so no server outlives
//! its checker.
//!
//! The parts: `output` (the program's output and the tracebacks in it),
//! `bound` (waiting for its socket, and which process is the server),
//! `stopping` (stopping it and what it left), `workdir` (the `{root}` for
//! http-static).

mod bound;
mod output;
mod stopping;
mod workdir;

use bound::{bound_on, holders_of, server_of};
pub use bound::{holds_socket, taken, wait_bound};
pub use output::Traceback;
use output::{read_output, OutputLog};
pub use workdir::WorkDir;

use super::watchdog::Watchdog;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use serde_json::json;

use super::session::Role;
use crate::error::Failure;
use crate::kernel::process::{read_stat, ProcStat};
use crate::narrate::{errno_name, Narrator};

/// A running (or finished) student program.
pub struct Program {
    pid: i32,
    /// The program's file as the command named it (argv[0]).
    argv0: String,
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
    /// How a server other than the started program ended, once seen.
    server_ending: Mutex<Option<(i32, ExitStatus)>>,
    child: Mutex<Child>,
    /// Set once the program has been reaped.
    status: Mutex<Option<ExitStatus>>,
    output: Arc<Mutex<OutputLog>>,
    /// The guard that kills the program should netlab itself be killed.
    watchdog: Option<Watchdog>,
}

impl Program {
    /// Start `argv` in its own process group, stdin from /dev/null, stdout
    /// and stderr into one pipe that a thread reads.
    pub fn start(argv: &[String]) -> Result<Program, Failure> {
        // Close-on-exec: only the program's stdout and stderr (dup2()ed
        // copies) hold the write end, not the guard, nor the program as
        // extra descriptors, so end of file comes when the program ends.
        let (read_end, write_end) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| {
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
        // The guard first, so that it inherits nothing of the program's.
        let watchdog = Watchdog::start();
        let guarded = watchdog.is_some();
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
        // Without a guard, PR_SET_PDEATHSIG is the backstop: the kernel
        // kills the program when netlab dies. With one, the program must
        // outlive netlab for a moment, so that the guard can still find
        // the children it forked below it (killed first, a parent's
        // children would go to init and out of reach).
        // SAFETY: only async-signal-safe calls (prctl, getppid, kill)
        // between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if guarded {
                    return Ok(());
                }
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
        if let Some(watchdog) = &watchdog {
            watchdog.group(pid);
        }
        Ok(Program {
            pid,
            argv0: argv[0].clone(),
            server: AtomicI32::new(pid),
            listeners: Mutex::new(Vec::new()),
            bound: Mutex::new(None),
            handoffs: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            server_ending: Mutex::new(None),
            child: Mutex::new(child),
            status: Mutex::new(None),
            output,
            watchdog,
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
    pub fn listener_inodes(&self) -> Vec<u64> {
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

    /// How the server ended, None while it runs: "your program exited
    /// with status 1", or for a server the program started, "your server
    /// (pid 812) was killed by SIGSEGV".
    pub fn server_end(&self) -> Option<String> {
        let server = self.server_pid();
        if server == self.pid {
            return self
                .exit_description()
                .map(|how| format!("your program {how}"));
        }
        if self.running(server) {
            return None;
        }
        Some(match self.server_status() {
            Some(status) => format!("your server (pid {server}) {}", describe(status)),
            None => format!("your server (pid {server}) has ended"),
        })
    }

    /// The server's exit status, once it has ended and netlab could read
    /// it. For a server other than the started program, a zombie's status
    /// is in /proc/PID/stat until its parent reaps it; it is remembered
    /// when seen, as the zombie is soon gone.
    pub fn server_status(&self) -> Option<ExitStatus> {
        let server = self.server_pid();
        if server == self.pid {
            return self.poll_status();
        }
        let mut known = lock(&self.server_ending);
        if let Some((pid, status)) = *known {
            if pid == server {
                return Some(status);
            }
        }
        let status = read_stat(server)
            .ok()
            .filter(|stat| stat.state == 'Z')
            .and_then(|stat| stat.exit_code)
            .map(ExitStatus::from_raw)?;
        *known = Some((server, status));
        Some(status)
    }

    /// "exited with status 1", "was killed by SIGSEGV"; None while it runs.
    pub fn exit_description(&self) -> Option<String> {
        self.poll_status().map(describe)
    }

    /// The exit code the program ended with, if it has ended normally.
    pub fn exit_code(&self) -> Option<i32> {
        self.poll_status().and_then(|status| status.code())
    }
    /// Every process under the program (its children, theirs, ...), plus
    /// any process it left behind that was re-parented to netlab.
    pub fn descendants(&self) -> Vec<ProcStat> {
        let mine = std::process::id() as i32;
        let table = process_table();
        let mut found = Vec::new();
        add_below(&table, self.pid, &mut found);
        // Orphans: children of netlab other than the program itself (and
        // the guard, which is netlab's own).
        for stat in table.get(&mine).into_iter().flatten() {
            if stat.pid != self.pid
                && Some(stat.pid) != self.watchdog_pid()
                && !found.iter().any(|f| f.pid == stat.pid)
            {
                found.push(stat.clone());
                add_below(&table, stat.pid, &mut found);
            }
        }
        found.sort_by_key(|stat| stat.pid);
        if let Some(watchdog) = &self.watchdog {
            watchdog.watch(&found);
        }
        found
    }

    /// Say so when the server was re-chosen (see `server_pid`): after
    /// the probe `during` if given, else at the stop.
    pub fn report_handoffs(&self, nar: &Narrator, during: Option<&str>) {
        let when = match during {
            Some(probe) => format!(" (seen during the probe {probe})"),
            None => String::new(),
        };
        for (ended, next) in std::mem::take(&mut *lock(&self.handoffs)) {
            nar.startup(
                "server",
                json!({ "pid": next, "ended_pid": ended }),
                format!("the server process (pid {ended}) ended while pid {next} of your program still held the listening socket; the probes judge pid {next} from then on{when}"),
            );
        }
    }

    /// The guard's pid, if it runs.
    pub(super) fn watchdog_pid(&self) -> Option<i32> {
        self.watchdog.as_ref().map(Watchdog::pid)
    }

    /// Every process under the server (see `server_pid`): its children,
    /// theirs, and so on. Not the processes between the program and the
    /// server (a wrapper), which the server did not start.
    pub fn server_descendants(&self) -> Vec<ProcStat> {
        let server = self.server_pid();
        let netlab = std::process::id() as i32;
        let table = process_table();
        let parent_of = |pid: i32| {
            table
                .values()
                .flatten()
                .find(|stat| stat.pid == pid)
                .map(|stat| stat.ppid)
        };
        let mut ancestors = vec![server];
        while let Some(parent) = ancestors.last().and_then(|&pid| parent_of(pid)) {
            if parent <= 1 || parent == netlab || ancestors.contains(&parent) {
                break;
            }
            ancestors.push(parent);
        }
        let mut found = Vec::new();
        add_below(&table, server, &mut found);
        // A process whose parent ended is adopted by netlab (the
        // subreaper): a double fork's grandchild serving a client is the
        // server's, though no longer below it; it holds a socket, which a
        // wrapper's orphaned helper (a `sleep`) does not. Its zombie, once
        // it ends, is netlab's to reap, not the server's.
        for stat in table.get(&netlab).into_iter().flatten() {
            if stat.pid != self.pid
                && Some(stat.pid) != self.watchdog_pid()
                && !ancestors.contains(&stat.pid)
                && stat.state != 'Z'
                && holds_a_socket(stat.pid)
            {
                found.push(stat.clone());
                add_below(&table, stat.pid, &mut found);
            }
        }
        found.sort_by_key(|stat| stat.pid);
        // The guard hears of what the probes see too: children forked
        // for clients, some of which may leave the process group.
        if let Some(watchdog) = &self.watchdog {
            watchdog.watch(&found);
        }
        found
    }
}

/// Lock a mutex, even one a panicking thread left poisoned.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            format!("was killed by {name}")
        }
        None => format!("ended: {status}"),
    }
}

/// The interpreter named by the #! line of `program`, when `program` is a
/// file that exists (so ENOENT from exec means the interpreter is missing).
fn missing_interpreter(program: &str) -> Option<Interpreter> {
    if !program.contains('/') || !Path::new(program).is_file() {
        return None;
    }
    let bytes = std::fs::read(program).ok()?;
    let first = bytes.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?;
    let named = line.strip_prefix("#!")?;
    let path = named.trim();
    (!path.is_empty()).then(|| Interpreter {
        path: path.to_string(),
        // Saved with Windows line endings: the kernel looks for a file
        // whose name ends in a carriage return.
        windows_line_end: named.ends_with('\r'),
    })
}

/// The program's #! line ends in a Windows line ending: an interpreter
/// run through `env` then fails on a name ending in "\r" (exit 127).
pub fn windows_hash_bang(program: &Program) -> bool {
    missing_interpreter(&program.argv0).is_some_and(|found| found.windows_line_end)
}

/// The interpreter a #! line names.
struct Interpreter {
    path: String,
    /// The line ends in "\r" (a file saved with CR LF line endings).
    windows_line_end: bool,
}

/// A clear message for a program that cannot be started.
fn spawn_failure(program: &str, err: &io::Error) -> Failure {
    match err.kind() {
        // The file exists, so what is missing is the interpreter its #!
        // line names.
        io::ErrorKind::NotFound => match missing_interpreter(program) {
            Some(Interpreter { path, windows_line_end: true }) => Failure::new(
                format!("cannot start `{program}`: its #! line ends in a Windows line ending (\\r\\n), so the kernel looks for `{path}\\r`, which does not exist"),
                Some("Save the file with Unix line endings (dos2unix FILE, or sed -i 's/\\r$//' FILE), or run it through its interpreter: python3 FILE."),
            ),
            Some(Interpreter { path, .. }) => Failure::new(
                format!("cannot start `{program}`: its #! line names `{path}`, which does not exist"),
                Some("Fix the first line of the file (e.g. #!/usr/bin/env python3), or run it through its interpreter: python3 FILE."),
            ),
            // A file of that name here: the shell does not look in the
            // current directory for a command, and neither does exec.
            None if !program.contains('/') && Path::new(program).is_file() => Failure::new(
                format!("cannot start `{program}`: no such program on the PATH (a file of that name is in this directory)"),
                Some("Give its path, ./NAME (it needs `chmod +x` and a #! line), or run it through its interpreter: python3 NAME."),
            ),
            None => Failure::new(
                format!("cannot start `{program}`: no such program"),
                Some("Check the spelling, or give the program's path (./server.py needs `chmod +x` and a #! line; `python3 server.py` does not)."),
            ),
        },
        io::ErrorKind::PermissionDenied => Failure::new(
            format!("cannot start `{program}`: permission denied"),
            Some("Make it executable (chmod +x FILE), or run it through its interpreter: python3 FILE."),
        ),
        _ => Failure::new(format!("cannot start `{program}`: {err}"), None),
    }
}

/// Does process `pid` hold any socket (read from /proc/PID/fd)?
fn holds_a_socket(pid: i32) -> bool {
    crate::kernel::fds::list_fds(pid).is_ok_and(|fds| {
        fds.iter()
            .any(|entry| matches!(entry.kind, crate::kernel::fds::FdKind::Socket { .. }))
    })
}

/// Add every process below `root` in `table` (its children, theirs...).
fn add_below(table: &HashMap<i32, Vec<ProcStat>>, root: i32, found: &mut Vec<ProcStat>) {
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for stat in table.get(&parent).into_iter().flatten() {
            queue.push(stat.pid);
            found.push(stat.clone());
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

/// A free port for the program, outside the range the kernel takes
/// clients' source ports from (/proc/sys/net/ipv4/ip_local_port_range):
/// a port in that range, free a moment ago, can become the source port of
/// any connection on the machine before the program binds it, and its
/// bind() then fails with EADDRINUSE. Free for both TCP and UDP on
/// 127.0.0.1 when tried; bind to port 0 if no such port is found.
pub fn free_port(role: Role) -> Result<u16, Failure> {
    let (low, high) = bound::ephemeral_range().unwrap_or((32768, 60999));
    // Above the range if there is room there, else below it.
    let (first, last) = match high < 64535 {
        true => (high + 1, 65535),
        false => (10000, low.saturating_sub(1).max(10000)),
    };
    let span = u32::from(last.saturating_sub(first)) + 1;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(16);
    for _ in 0..50 {
        // A small linear congruential step: spread, not secret.
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let port = first + ((seed >> 8) % span) as u16;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        if TcpListener::bind(addr).is_ok() && UdpSocket::bind(addr).is_ok() {
            return Ok(port);
        }
    }
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
