//! Unix domain sockets as the kernel lists them: `/proc/net/unix`.
//!
//! One line per AF_UNIX socket in this network namespace:
//!
//! ```text
//! Num       RefCount Protocol Flags    Type St Inode Path
//! 0000000012345678: 00000002 00000000 00010000 0001 01 40123 /tmp/netlab.sock
//! ```
//!
//! `Flags` 00010000 marks a listening socket (`__SO_ACCEPTCON`), `Type` is
//! 0001 for SOCK_STREAM, 0002 for SOCK_DGRAM and 0005 for SOCK_SEQPACKET,
//! `St` is 01 unconnected, 02 connecting, 03 connected, 04 disconnecting,
//! and `Path` is the bound name: a file path, `@name` for an abstract name
//! (the leading NUL byte shown as `@`), or nothing for an unbound socket.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// `__SO_ACCEPTCON` in the `Flags` column: the socket is listening.
const ACCEPTCON: u32 = 0x0001_0000;

/// One line of `/proc/net/unix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixEntry {
    /// The socket's inode, the same number `/proc/PID/fd/N` shows as `socket:[N]`.
    pub inode: u64,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_SEQPACKET`, or `type N`.
    pub kind: String,
    /// `listening`, `unconnected`, `connecting`, `connected`, `disconnecting`.
    pub state: &'static str,
    /// The bound name: a path, `@name` for the abstract namespace, or None.
    pub path: Option<String>,
}

/// Parse the text of `/proc/net/unix`; lines that do not parse are skipped.
pub fn parse_unix_table(text: &str) -> Vec<UnixEntry> {
    text.lines().skip(1).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<UnixEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
    let kind = match u16::from_str_radix(fields.get(4)?, 16).ok()? {
        1 => "SOCK_STREAM".to_string(),
        2 => "SOCK_DGRAM".to_string(),
        5 => "SOCK_SEQPACKET".to_string(),
        other => format!("type {other}"),
    };
    let state = if flags & ACCEPTCON != 0 {
        "listening"
    } else {
        match u8::from_str_radix(fields.get(5)?, 16).ok()? {
            1 => "unconnected",
            2 => "connecting",
            3 => "connected",
            4 => "disconnecting",
            _ => "unknown",
        }
    };
    let inode = fields.get(6)?.parse().ok()?;
    // A path may contain spaces: it is everything after the seventh field.
    let path = fields.get(7).map(|_| fields[7..].join(" "));
    Some(UnixEntry {
        inode,
        kind,
        state,
        path,
    })
}

/// Read and parse `/proc/net/unix`.
pub fn read_unix_table() -> io::Result<Vec<UnixEntry>> {
    Ok(parse_unix_table(&std::fs::read_to_string(
        "/proc/net/unix",
    )?))
}

/// The entry of the socket with this inode, if the kernel lists it.
pub fn unix_entry_by_inode(inode: u64) -> io::Result<Option<UnixEntry>> {
    Ok(read_unix_table()?
        .into_iter()
        .find(|entry| entry.inode == inode))
}

/// Every socket the kernel lists as bound to the file `path`: a listener,
/// the connections it accepted, or a socket that is bound but not yet
/// listening. The table shows each path as the binding program wrote it,
/// so the comparison is made with care and errs on the side of "bound":
/// the same file name in the same directory (compared after resolving
/// symbolic links), or the same file name given as a relative path, whose
/// directory cannot be known from here.
pub fn sockets_bound_to(path: &Path) -> io::Result<Vec<UnixEntry>> {
    let ours = Place::of(path);
    Ok(read_unix_table()?
        .into_iter()
        .filter(|entry| {
            entry
                .path
                .as_deref()
                .filter(|listed| !listed.starts_with('@'))
                .is_some_and(|listed| ours.may_be(Path::new(listed)))
        })
        .collect())
}

/// A socket path as a file name and its resolved directory.
struct Place {
    name: Option<OsString>,
    dir: Option<PathBuf>,
}

impl Place {
    fn of(path: &Path) -> Place {
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        Place {
            name: path.file_name().map(OsString::from),
            dir: std::fs::canonicalize(dir).ok(),
        }
    }

    /// Could `listed` (a path from the table) name the same file as ours?
    fn may_be(&self, listed: &Path) -> bool {
        let theirs = Place::of(listed);
        if theirs.name != self.name {
            return false;
        }
        // A relative path was relative to the binder's working directory,
        // which we do not know; a directory we cannot resolve is unknown too.
        listed.is_relative() || theirs.dir.is_none() || self.dir.is_none() || theirs.dir == self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "Num       RefCount Protocol Flags    Type St Inode Path
0000000012345678: 00000002 00000000 00010000 0001 01 40123 /tmp/netlab.sock
0000000012345679: 00000002 00000000 00000000 0001 03 40124 @netlab-demo
000000001234567a: 00000003 00000000 00000000 0001 03 40125
000000001234567b: 00000002 00000000 00000000 0002 01 40126 /tmp/a b.sock
garbage
";

    #[test]
    fn parses_listening_connected_abstract_and_unbound_sockets() {
        let entries = parse_unix_table(TABLE);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].state, "listening");
        assert_eq!(entries[0].path.as_deref(), Some("/tmp/netlab.sock"));
        assert_eq!(entries[0].kind, "SOCK_STREAM");
        assert_eq!(entries[1].state, "connected");
        assert_eq!(entries[1].path.as_deref(), Some("@netlab-demo"));
        assert_eq!(entries[2].path, None);
        assert_eq!(entries[3].kind, "SOCK_DGRAM");
        assert_eq!(entries[3].path.as_deref(), Some("/tmp/a b.sock"));
    }

    #[test]
    fn finds_a_real_socket_by_inode() {
        use std::os::fd::AsFd;
        let (one, _two) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let inode = crate::kernel::fds::socket_inode_of(one.as_fd()).expect("inode");
        let entry = unix_entry_by_inode(inode).expect("read").expect("listed");
        assert_eq!(entry.state, "connected");
        assert_eq!(entry.path, None);
    }

    #[test]
    fn a_socket_bound_but_not_listening_is_found_by_its_path() {
        use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, UnixAddr};
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("netlab-unit-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sock = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .expect("socket");
        bind(sock.as_raw_fd(), &UnixAddr::new(&path).expect("addr")).expect("bind");
        let bound = sockets_bound_to(&path).expect("read");
        // Another path in the same directory is not ours.
        let other = sockets_bound_to(&path.with_extension("other")).expect("read");
        drop(sock);
        let _ = std::fs::remove_file(&path);
        assert_eq!(bound.len(), 1, "{bound:?}");
        assert_eq!(bound[0].state, "unconnected");
        assert!(other.is_empty(), "{other:?}");
        // Gone with the socket: the same path is now bound by nobody.
        assert!(sockets_bound_to(&path).expect("read").is_empty());
    }
}
