//! The server end: bind a name (and deal with a stale file), listen, serve
//! echo clients, and clean up the file. With `--role both` it forks its own
//! client first and reaps it at the end.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{bind, connect, listen, recv, send, Backlog, MsgFlags, UnixAddr};
use nix::sys::stat::{lstat, SFlag};
use serde_json::json;

use super::{
    client, end_child, peer_credentials, reap_child, unix_socket, unix_table_entry, Args, Place,
};
use crate::demos::children::{self, Forked, ForkedChild};
use crate::error::Failure;
use crate::kernel;
use crate::narrate::text::{bytes, show_bytes};
use crate::narrate::{errno_name, Fact, Narrator};
use crate::stop;

pub(super) fn run(
    nar: &Narrator,
    args: &Args,
    place: &Place,
    fork_client: Option<&[u8]>,
) -> Result<()> {
    let listener = unix_socket(nar)?;
    let addr = place.address()?;
    bind_name(nar, &listener, place, &addr, args.unlink_stale)?;
    // From here on the file exists: the guard removes it on an early return.
    let mut file = SocketFile(match place {
        Place::File(path) => Some(path.as_path()),
        Place::Abstract(_) => None,
    });
    show_the_name(nar, place);

    let fd = listener.as_raw_fd();
    let step = nar.call("listen", format!("fd {fd}, backlog 5"));
    step.check(listen(&listener, Backlog::new(5)?), |_| "0".into())?;
    unix_table_entry(nar, &listener);
    nar.startup(
        "unix_listening",
        json!({ "path": place.shown(), "abstract": place.is_abstract() }),
        match place {
            Place::File(path) => format!("listening on {}; try: nc -U {}", path.display(), path.display()),
            Place::Abstract(name) => format!("listening on the abstract name @{name}; try: netlab unix-demo --role client --abstract {name}"),
        },
    );

    let mut child = match fork_client {
        Some(message) => {
            limit_the_wait(nar, &listener)?;
            match children::fork(nar, "making a child process to be the client")? {
                Forked::Child => end_child(nar, client_child(nar, &listener, place, message)),
                Forked::Parent { child } => Some(ForkedChild::new(child)),
            }
        }
        None => None,
    };
    let max_clients = if child.is_some() {
        Some(1)
    } else {
        args.max_clients
    };
    let mut served = 0u64;
    while stop::requested().is_none() && max_clients.is_none_or(|max| served < max) {
        let step = nar.blocking(
            "accept",
            format!("fd {fd}"),
            "waiting for a client to connect",
        );
        let conn = match nix::sys::socket::accept(&listener) {
            Ok(conn) => {
                let raw = conn.as_raw_fd();
                step.ok_value(i64::from(raw), format!("fd {raw}"));
                conn
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                continue;
            }
            Err(Errno::EAGAIN) if child.is_some() => {
                step.fail(Errno::EAGAIN);
                nar.warning(
                    format!("no client connected within {} s; the client child must have failed (see its lines above)", ACCEPT_LIMIT.as_secs()),
                    None,
                );
                break;
            }
            Err(errno) => {
                step.fail(errno);
                return Err(errno).context("accept() failed");
            }
        };
        served += 1;
        let peer_pid = peer_credentials(nar, &conn, "the client");
        if let (Some(pid), Some(child)) = (peer_pid, &child) {
            if pid == child.pid().as_raw() {
                nar.note("The pid the kernel reports is the child we forked: SO_PEERCRED tells a server exactly which local process connected, something a TCP server cannot know.");
            }
        }
        serve(nar, conn)?;
    }

    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(listener), |_| "0".into())?;
    file.remove(nar);
    if let Some(child) = child.as_mut() {
        reap_child(nar, child)?;
    }
    Ok(())
}

/// The forked child of `--role both` is only a client: it closes its copy
/// of the listening socket, as a forked process should close every
/// descriptor it does not use, and connects like any other client. (The
/// copy is closed by number: the child ends in _exit(), so its `OwnedFd`
/// is never dropped.)
fn client_child(nar: &Narrator, listener: &OwnedFd, place: &Place, message: &[u8]) -> Result<()> {
    let listen_fd = listener.as_raw_fd();
    let step = nar.call("close", format!("fd {listen_fd} (the child's copy)"));
    step.check(nix::unistd::close(listen_fd), |_| "0".into())?;
    client::run(nar, place, message)
}

/// With --role both, the only client is our own child.
const ACCEPT_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// setsockopt(SO_RCVTIMEO) on the listening socket: accept() honours the
/// receive timeout too. With --role both the only client is the child, and
/// if it failed before connecting, the server must not wait for ever.
fn limit_the_wait(nar: &Narrator, listener: &OwnedFd) -> Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    use nix::sys::time::{TimeVal, TimeValLike};
    let step = nar.call(
        "setsockopt",
        format!(
            "fd {}, SOL_SOCKET, SO_RCVTIMEO, {} s",
            listener.as_raw_fd(),
            ACCEPT_LIMIT.as_secs()
        ),
    );
    let limit = TimeVal::seconds(ACCEPT_LIMIT.as_secs() as i64);
    step.check(
        setsockopt(listener, sockopt::ReceiveTimeout, &limit),
        |_| "0".into(),
    )?;
    nar.note("A receive timeout on the listening socket limits accept() too: the only client will be our child, and if it fails before it connects, accept() gives up with EAGAIN instead of waiting for ever.");
    Ok(())
}

/// bind(), and if the name is taken, find out why and say what to do.
fn bind_name(
    nar: &Narrator,
    listener: &OwnedFd,
    place: &Place,
    addr: &UnixAddr,
    unlink_stale: bool,
) -> Result<()> {
    let fd = listener.as_raw_fd();
    let step = nar.call("bind", format!("fd {fd}, {place}"));
    let errno = match bind(fd, addr) {
        Ok(()) => {
            step.ok("0");
            return Ok(());
        }
        Err(errno) => {
            step.fail(errno);
            errno
        }
    };
    let path = match (errno, place) {
        (Errno::EADDRINUSE, Place::File(path)) => path,
        (Errno::EADDRINUSE, Place::Abstract(name)) => {
            return Err(Failure::with_hint(
                format!("cannot bind @{name}: another socket holds this abstract name (Address already in use)"),
                "an abstract name is freed when its socket closes, so it is never stale: stop the other program or choose another name",
            )
            .into())
        }
        (Errno::ENOENT, _) => {
            return Err(Failure::new(
                format!("cannot bind {place}: its directory does not exist"),
                Some("create the directory first, or choose a path in an existing one such as /tmp"),
            )
            .into())
        }
        (Errno::EACCES, _) => {
            return Err(Failure::new(
                format!("cannot bind {place}: permission denied"),
                Some("bind() creates the file, so it needs write permission on the directory; /tmp works for everyone"),
            )
            .into())
        }
        (other, _) => {
            return Err(Failure::new(
                format!("cannot bind {place}: {} ({})", errno_name(other), other.desc()),
                None,
            )
            .into())
        }
    };
    nar.note("EADDRINUSE: a file with this name already exists. bind() never replaces a file, so either a server is running, or an earlier one left its file behind.");
    match probe(nar, path)? {
        Probe::Listening => Err(Failure::with_hint(
            format!("cannot bind {}: a server is listening on it (Address already in use)", path.display()),
            "stop that server, or choose another --path",
        )
        .into()),
        Probe::Bound => Err(Failure::with_hint(
            format!("cannot bind {}: a socket is bound to it, so it is in use, not stale (Address already in use)", path.display()),
            "another program bound it and may be about to listen(); stop it, or choose another --path",
        )
        .into()),
        Probe::NotASocket => Err(Failure::with_hint(
            format!("cannot bind {}: the file exists and is not a socket", path.display()),
            "netlab only ever removes socket files; choose another --path",
        )
        .into()),
        Probe::Stale if !unlink_stale => Err(Failure::with_hint(
            format!("cannot bind {}: a stale socket file is in the way (Address already in use)", path.display()),
            format!("no socket is bound to it (connect() was refused and /proc/net/unix does not list it), so a server that did not clean up left it; remove it with `rm {}` or run again with --unlink-stale", path.display()),
        )
        .into()),
        Probe::Stale => unlink_and_bind(nar, fd, place, path, addr),
    }
}

/// --unlink-stale: remove the stale file and bind again, holding a lock
/// on the directory. Two runs that both found the file stale would
/// otherwise race: the first unlinks and binds, and the second unlinks
/// the first one's live file. With the lock, the second run looks at
/// /proc/net/unix again after the first has bound, and finds the path in
/// use.
fn unlink_and_bind(
    nar: &Narrator,
    fd: std::os::fd::RawFd,
    place: &Place,
    path: &Path,
    addr: &UnixAddr,
) -> Result<()> {
    use nix::fcntl::{Flock, FlockArg};
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let step = nar.call("open", format!("{}, O_RDONLY", dir.display()));
    let dir_file = step.check(
        std::fs::File::open(dir).map_err(|err| Errno::from_raw(err.raw_os_error().unwrap_or(0))),
        |file| format!("fd {}", file.as_raw_fd()),
    )?;
    let dir_fd = dir_file.as_raw_fd();
    let step = nar.blocking(
        "flock",
        format!("fd {dir_fd}, LOCK_EX"),
        "waiting for any other run that is replacing a stale file here",
    );
    let lock = match Flock::lock(dir_file, FlockArg::LockExclusive) {
        Ok(lock) => {
            step.ok("0");
            lock
        }
        Err((_, errno)) => {
            step.fail(errno);
            return Err(errno).context("locking the directory before removing the stale file");
        }
    };
    nar.note("The directory is locked (flock is advisory: every netlab run asks for it before it removes a socket file). Now look again: another run may have bound the path since we checked.");
    let result = match bound_sockets(nar, path) {
        Some(0) => {
            nar.note("--unlink-stale: still no socket is bound to the file, so it is safe to remove it and bind again.");
            let step = nar.call("unlink", path.display().to_string());
            step.check(nix::unistd::unlink(path), |_| "0".into())
                .map_err(anyhow::Error::from)
                .and_then(|_| {
                    let step = nar.call("bind", format!("fd {fd}, {place}"));
                    step.check(bind(fd, addr), |_| "0".into())
                        .with_context(|| format!("binding {place} after removing the stale file"))
                })
        }
        Some(_) => Err(Failure::with_hint(
            format!("cannot bind {}: another program bound it while we looked (Address already in use)", path.display()),
            "the file is in use now, so it is not removed; choose another --path",
        )
        .into()),
        None => Err(Failure::with_hint(
            format!("cannot bind {}: /proc/net/unix cannot be read, so whether the file is in use is unknown", path.display()),
            "netlab removes a socket file only when the kernel shows it is unused; remove it yourself if you are sure",
        )
        .into()),
    };
    // Unlock, then close the directory: other runs may go ahead.
    let step = nar.call("flock", format!("fd {dir_fd}, LOCK_UN"));
    match lock.unlock() {
        Ok(dir_file) => {
            step.ok("0");
            let step = nar.call("close", format!("fd {dir_fd}"));
            step.check(
                nix::unistd::close(std::os::fd::OwnedFd::from(dir_file)),
                |_| "0".into(),
            )?;
        }
        // Closing the descriptor (when the lock is dropped) releases it too.
        Err((_, errno)) => step.fail(errno),
    }
    result
}

/// What is at a path that bind() found taken.
enum Probe {
    Listening,
    /// A socket is bound to the path but does not (yet) listen.
    Bound,
    Stale,
    NotASocket,
}

/// lstat() the path; if it is a socket, try to connect to it. A refusal
/// alone does not make the file stale: a socket may be bound to it and
/// not listening yet (a server between its bind() and listen()), so the
/// kernel's table of Unix sockets has the last word.
fn probe(nar: &Narrator, path: &Path) -> Result<Probe> {
    let step = nar.call("lstat", path.display().to_string());
    let stat = step.check(lstat(path), |stat| file_type_name(stat.st_mode).to_string())?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Ok(Probe::NotASocket);
    }
    nar.note("It is a socket file. Is anybody listening on it? A connect() tells: a live server accepts it.");
    let probe = unix_socket(nar)?;
    let step = nar.call(
        "connect",
        format!("fd {}, {}", probe.as_raw_fd(), path.display()),
    );
    let connected = match connect(probe.as_raw_fd(), &UnixAddr::new(path)?) {
        Ok(()) => {
            step.ok("0");
            true
        }
        Err(errno) => {
            step.fail(errno);
            false
        }
    };
    let step = nar.call("close", format!("fd {}", probe.as_raw_fd()));
    step.check(nix::unistd::close(probe), |_| "0".into())?;
    if connected {
        return Ok(Probe::Listening);
    }
    nar.note("Refused: nobody listens. But a socket may be bound to the file and not listen yet (another server between its bind() and listen()), so ask the kernel which sockets are bound to this path.");
    Ok(match bound_sockets(nar, path) {
        Some(0) => {
            nar.note("No socket is bound to the file: it is stale, left by a process that ended without unlink().");
            Probe::Stale
        }
        Some(_) => Probe::Bound,
        // Unknown is treated as in use: a live file must never be removed.
        None => Probe::Bound,
    })
}

/// How many sockets `/proc/net/unix` lists as bound to `path`, shown as a
/// kernel fact; None if the table cannot be read.
fn bound_sockets(nar: &Narrator, path: &Path) -> Option<usize> {
    let subject = path.display().to_string();
    match kernel::proc_unix::sockets_bound_to(path) {
        Ok(entries) => {
            let states: Vec<&str> = entries.iter().map(|entry| entry.state).collect();
            nar.kernel(Fact::new(
                &subject,
                "bound_sockets",
                json!({ "count": entries.len(), "states": states }),
                "/proc/net/unix",
                if entries.is_empty() {
                    format!("no socket is bound to {subject}")
                } else {
                    format!(
                        "{} socket(s) bound to {subject}: {}",
                        entries.len(),
                        states.join(", ")
                    )
                },
            ));
            Some(entries.len())
        }
        Err(err) => {
            nar.kernel(Fact::unavailable(
                subject,
                "bound_sockets",
                "/proc/net/unix",
                err,
            ));
            None
        }
    }
}

fn file_type_name(mode: libc::mode_t) -> &'static str {
    match SFlag::from_bits_truncate(mode) & SFlag::S_IFMT {
        SFlag::S_IFSOCK => "a socket (s)",
        SFlag::S_IFREG => "a regular file (-)",
        SFlag::S_IFDIR => "a directory (d)",
        SFlag::S_IFLNK => "a symbolic link (l)",
        SFlag::S_IFIFO => "a named pipe (p)",
        SFlag::S_IFCHR => "a character device (c)",
        SFlag::S_IFBLK => "a block device (b)",
        _ => "of an unknown type",
    }
}

/// After bind: show the file bind() created, or say there is none.
fn show_the_name(nar: &Narrator, place: &Place) {
    let Place::File(path) = place else {
        nar.note("No file was created: an abstract name (shown with a leading @) lives only in the kernel and disappears with the socket, so there is nothing to clean up and nothing to go stale.");
        return;
    };
    let step = nar.call("lstat", path.display().to_string());
    match lstat(path.as_path()) {
        Ok(stat) => {
            step.ok(file_type_name(stat.st_mode));
            nar.kernel(Fact::new(
                path.display().to_string(),
                "file_type",
                json!({ "type": file_type_name(stat.st_mode), "socket": SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK, "mode": format!("{:o}", stat.st_mode & 0o7777), "inode": stat.st_ino }),
                "stat()",
                format!("{} is {}, mode {:o}", path.display(), file_type_name(stat.st_mode), stat.st_mode & 0o7777),
            ));
            nar.note("bind() created this file; `ls -l` shows it with type s. It is only a name: the data never passes through the disk.");
        }
        Err(errno) => step.fail(errno),
    }
}

/// Echo what one client sends until it closes, then close its socket.
pub(super) fn serve(nar: &Narrator, conn: OwnedFd) -> Result<()> {
    let fd = conn.as_raw_fd();
    let mut buf = vec![0u8; 1024];
    loop {
        let step = nar.blocking(
            "recv",
            format!("fd {fd}, {}, 0", bytes(buf.len())),
            "waiting for data from the other end",
        );
        match recv(fd, &mut buf, MsgFlags::empty()) {
            Ok(0) => {
                step.ok_value(0, "0: end of stream");
                nar.note("recv() returned 0: the other end closed its socket.");
                break;
            }
            Ok(count) => {
                step.ok_value(
                    count as i64,
                    format!("{}: {}", bytes(count), show_bytes(&buf[..count], 60)),
                );
                let step = nar.call("send", format!("fd {fd}, {}, 0", bytes(count)));
                match send(fd, &buf[..count], MsgFlags::empty()) {
                    Ok(sent) => step.ok_value(sent as i64, bytes(sent)),
                    Err(errno) => {
                        step.fail(errno);
                        break;
                    }
                }
            }
            Err(Errno::EINTR) => {
                step.fail(Errno::EINTR);
                if stop::requested().is_some() {
                    break;
                }
            }
            Err(errno) => {
                step.fail(errno);
                nar.warning(
                    format!(
                        "recv() failed with {}; closing this client",
                        errno_name(errno)
                    ),
                    None,
                );
                break;
            }
        }
    }
    let step = nar.call("close", format!("fd {fd}"));
    step.check(nix::unistd::close(conn), |_| "0".into())?;
    Ok(())
}

/// The socket file this server created. `remove` unlinks it with
/// narration; if the server leaves early (an error), `Drop` removes it
/// quietly, so no run leaves a stale file behind.
struct SocketFile<'a>(Option<&'a Path>);

impl SocketFile<'_> {
    fn remove(&mut self, nar: &Narrator) {
        let Some(path) = self.0.take() else {
            return;
        };
        nar.note("Closing the socket does not remove its file: the server must unlink() it, or the next bind() fails with EADDRINUSE.");
        let step = nar.call("unlink", path.display().to_string());
        if step
            .check(nix::unistd::unlink(path), |_| "0".into())
            .is_ok()
        {
            let exists = path.symlink_metadata().is_ok();
            nar.kernel(Fact::new(
                path.display().to_string(),
                "file_exists",
                json!(exists),
                "stat()",
                if exists {
                    format!("{} still exists", path.display())
                } else {
                    format!("{} is gone", path.display())
                },
            ));
        }
    }
}

impl Drop for SocketFile<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
