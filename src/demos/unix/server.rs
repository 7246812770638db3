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
        reap_child(nar, child);
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
        Probe::NotASocket => Err(Failure::with_hint(
            format!("cannot bind {}: the file exists and is not a socket", path.display()),
            "netlab only ever removes socket files; choose another --path",
        )
        .into()),
        Probe::Stale if !unlink_stale => Err(Failure::with_hint(
            format!("cannot bind {}: a stale socket file is in the way (Address already in use)", path.display()),
            format!("nobody listens on it (connect() was refused), so a server that did not clean up left it; remove it with `rm {}` or run again with --unlink-stale", path.display()),
        )
        .into()),
        Probe::Stale => {
            nar.note("--unlink-stale: nobody listens on the file, so it is safe to remove it and bind again.");
            let step = nar.call("unlink", path.display().to_string());
            step.check(nix::unistd::unlink(path), |_| "0".into())?;
            let step = nar.call("bind", format!("fd {fd}, {place}"));
            step.check(bind(fd, addr), |_| "0".into())
                .with_context(|| format!("binding {place} after removing the stale file"))?;
            Ok(())
        }
    }
}

/// What is at a path that bind() found taken.
enum Probe {
    Listening,
    Stale,
    NotASocket,
}

/// lstat() the path; if it is a socket, try to connect to it: a refusal
/// means nobody listens, and the file is stale.
fn probe(nar: &Narrator, path: &Path) -> Result<Probe> {
    let step = nar.call("lstat", path.display().to_string());
    let stat = step.check(lstat(path), |stat| file_type_name(stat.st_mode).to_string())?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Ok(Probe::NotASocket);
    }
    nar.note("It is a socket file. Is anybody listening on it? A connect() tells: a live server accepts it, a stale file refuses it.");
    let probe = unix_socket(nar)?;
    let step = nar.call(
        "connect",
        format!("fd {}, {}", probe.as_raw_fd(), path.display()),
    );
    let result = match connect(probe.as_raw_fd(), &UnixAddr::new(path)?) {
        Ok(()) => {
            step.ok("0");
            Probe::Listening
        }
        Err(Errno::ECONNREFUSED) => {
            step.fail(Errno::ECONNREFUSED);
            nar.note("ECONNREFUSED: the file is there, but no socket listens behind it. It is stale, left by a process that ended without unlink().");
            Probe::Stale
        }
        Err(errno) => {
            step.fail(errno);
            Probe::Listening
        }
    };
    let step = nar.call("close", format!("fd {}", probe.as_raw_fd()));
    step.check(nix::unistd::close(probe), |_| "0".into())?;
    Ok(result)
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
