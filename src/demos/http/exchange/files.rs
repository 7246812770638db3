//! Static files under a root directory, and the checks every file server needs.
//!
//! A request target is text chosen by the client. Turning it into a file
//! name is where file servers go wrong, so it happens in two layers:
//!
//! 1. **Lexical checks**, before any system call: the target must be a path
//!    (`/...`), its percent-escapes valid, and once decoded it may not hold
//!    a NUL byte, a backslash, a leading `//`, or a `..` segment. `%2e%2e`
//!    is `..` and `%2f` is `/`, so the checks run on the decoded bytes.
//!    With a root, two more: no name may start with `.` (hidden files such
//!    as `.git/` or `.env` are not served), and the decoded path must fit
//!    in PATH_MAX.
//! 2. **The kernel**, which has the last word: the file is opened with
//!    `openat2(root_fd, path, RESOLVE_BENEATH)` (Linux 5.6), which fails
//!    with EXDEV for any path that would leave the directory `root_fd`
//!    refers to, including through a symlink planted inside the root. The
//!    same call opens the file, so there is no gap between "checked" and
//!    "opened" for someone to swap a symlink into.
//!
//! Then `fstat` on the open file tells its size (Content-Length) and whether
//! it is a directory (served as its index.html, or a generated listing).
//!
//! Every system call made here can be written down in a [`Tracer`], so the
//! narration shows them all (the server turns this on unless `--quiet`).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

use super::response::{self, Status};
use super::Traced;

/// The longest path Linux opens, counting the NUL at its end (PATH_MAX).
/// The decoded path is `/` + the relative path, so its length is the same.
pub const PATH_MAX: usize = 4096;

/// Why a target cannot be served, with the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub why: &'static str,
}

const fn refusal(status: Status, why: &'static str) -> Refusal {
    Refusal { status, why }
}

/// Where the system calls of one request are written down, if anywhere.
/// `Tracer(None)` records nothing and allocates nothing: the arguments and
/// results are only formatted when someone is listening.
pub struct Tracer<'t>(pub Option<&'t mut Vec<Traced>>);

impl Tracer<'_> {
    fn record(
        &mut self,
        call: &'static str,
        args: impl FnOnce() -> String,
        result: impl FnOnce() -> Result<String, i32>,
    ) {
        if let Some(calls) = self.0.as_mut() {
            calls.push(Traced {
                call,
                args: args(),
                result: result(),
            });
        }
    }
}

/// A request target decoded into a file path, checked lexically.
pub struct Path<'t> {
    /// The path as sent, without the query (`?...`): `/docs/a%20b.html`.
    pub raw: &'t str,
    /// The query with its `?`, or "": ignored for files.
    pub query: &'t str,
    /// The decoded path, followed by a NUL for the system call.
    decoded: Vec<u8>,
}

impl<'t> Path<'t> {
    /// Decode and check a request target.
    pub fn parse(target: &'t str) -> Result<Path<'t>, Refusal> {
        // Origin-form (`/docs/a.html`) is what a browser sends a server.
        // RFC 9112 (section 3.2.2) also asks a server to accept absolute-form
        // (`http://host/docs/a.html`), which proxies get: the path is used
        // and the host part ignored. `*` or `x` are not paths at all.
        let target = match path_of_absolute_form(target) {
            Some(path) => path,
            None if target.starts_with('/') => target,
            None => {
                return Err(refusal(
                    Status::BAD_REQUEST,
                    "The request target is neither a path starting with / nor an http:// URL.",
                ))
            }
        };
        let (raw, query) = match target.find('?') {
            Some(at) => target.split_at(at),
            None => (target, ""),
        };
        // Decoding never makes a path longer, so this one allocation is
        // enough (the +1 is for the NUL the system call needs).
        let mut decoded = Vec::with_capacity(raw.len() + 1);
        let mut bytes = raw.bytes();
        while let Some(byte) = bytes.next() {
            let byte = if byte == b'%' {
                match (bytes.next().and_then(hex), bytes.next().and_then(hex)) {
                    (Some(high), Some(low)) => high << 4 | low,
                    _ => {
                        return Err(refusal(
                            Status::BAD_REQUEST,
                            "A % in the path is not followed by two hexadecimal digits.",
                        ))
                    }
                }
            } else {
                byte
            };
            decoded.push(byte);
        }
        if decoded.contains(&0) {
            return Err(refusal(
                Status::BAD_REQUEST,
                "The path contains a NUL byte (%00), which would cut the file name short.",
            ));
        }
        if decoded.contains(&b'\\') {
            return Err(refusal(
                Status::FORBIDDEN,
                "The path contains a backslash, a path separator on Windows, so it is refused.",
            ));
        }
        if decoded.starts_with(b"//") {
            return Err(refusal(
                Status::FORBIDDEN,
                "The path starts with //, which a careless server would join as an absolute path outside the root.",
            ));
        }
        if decoded
            .split(|&b| b == b'/')
            .any(|segment| segment == b"..")
        {
            return Err(refusal(
                Status::FORBIDDEN,
                "The path contains a .. segment, which would climb out of the root directory.",
            ));
        }
        decoded.push(0);
        Ok(Path {
            raw,
            query,
            decoded,
        })
    }

    /// The decoded path, starting with `/`.
    pub fn decoded(&self) -> &[u8] {
        &self.decoded[..self.decoded.len() - 1]
    }

    /// The path relative to the root, NUL-terminated: `/a/b` is `a/b`, and
    /// `/` is `.`, the root itself.
    fn relative(&self) -> &CStr {
        let relative = &self.decoded[1..];
        if relative == b"\0" {
            return c".";
        }
        // parse() refused a NUL inside and put one at the end.
        CStr::from_bytes_with_nul(relative).unwrap_or(c".")
    }
}

/// The path part of an absolute-form target: `http://host:8000/a?x` gives
/// `/a?x`, and `http://host` or `http://host?x` give `/`. None when the
/// target is not an http or https URL.
fn path_of_absolute_form(target: &str) -> Option<&str> {
    let after_scheme = ["http://", "https://"].iter().find_map(|scheme| {
        let start = target.get(..scheme.len())?;
        start
            .eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    })?;
    // The authority (host and port) ends at the first `/`, `?` or `#`.
    match after_scheme.find(['/', '?', '#']) {
        Some(at) if after_scheme[at..].starts_with('/') => Some(&after_scheme[at..]),
        _ => Some("/"),
    }
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// What a checked path turned out to be.
pub enum Found {
    /// A regular file, open, with its size and its Content-Type.
    File {
        file: File,
        len: u64,
        content_type: &'static str,
    },
    /// A directory asked for without its trailing `/`: redirect, so that
    /// relative links in its page resolve inside it.
    AddSlash,
    /// A directory without index.html: an HTML listing.
    Listing(Vec<u8>),
}

/// Does a name in the path start with `.`? Such names are hidden files and
/// directories (`.git/`, `.env`, `.htpasswd`, `.ssh/`), which often hold
/// secrets that were never meant to be published. Like most file servers'
/// usual configuration, this one neither serves nor lists them.
fn is_hidden(decoded: &[u8]) -> bool {
    decoded
        .split(|&b| b == b'/')
        .any(|name| name.first() == Some(&b'.'))
}

const HIDDEN: Refusal = refusal(
    Status::FORBIDDEN,
    "The path names a hidden file or directory (a name starting with ., such as .git or .env); this server neither serves nor lists them.",
);

const TOO_LONG: Refusal = refusal(
    Status::URI_TOO_LONG,
    "The decoded path is longer than PATH_MAX (4096 bytes), the longest path Linux opens.",
);

/// Open what `path` names under the root directory `root`.
pub fn open(
    root: &File,
    beneath: bool,
    path: &Path<'_>,
    trace: &mut Tracer,
) -> Result<Found, Refusal> {
    if is_hidden(path.decoded()) {
        return Err(HIDDEN);
    }
    // 414 rather than 404: the file cannot be opened under any name this
    // long (the kernel would say ENAMETOOLONG, also answered 414), and the
    // client learns that the length is the problem, not the name. Checked
    // here, before the call, so no system call is wasted on it.
    if path.decoded().len() > PATH_MAX {
        return Err(TOO_LONG);
    }
    // The raw path decides (not the decoded one): the browser resolves
    // relative links against the address as it was sent.
    let ends_with_slash = path.raw.ends_with('/');
    let file_type = content_type(extension_of(path.decoded()));
    let relative = path.relative();
    let file =
        open_beneath(root, "root fd", relative, READ, beneath, trace).map_err(open_refusal)?;
    let kind = match fstat(&file, trace) {
        Ok(kind) => kind,
        Err(_) => {
            close(file, trace);
            return Err(STAT_FAILED);
        }
    };
    match kind {
        Kind::File(len) => {
            // The server sends it, then closes it: the file is the caller's now.
            return Ok(Found::File {
                file,
                len,
                content_type: file_type,
            });
        }
        Kind::Directory => {}
        Kind::Other => {
            close(file, trace);
            return Err(refusal(
                Status::FORBIDDEN,
                "The path names a device, pipe or socket; only regular files and directories are served.",
            ));
        }
    }
    if !ends_with_slash && relative != c"." {
        close(file, trace);
        return Ok(Found::AddSlash);
    }
    // A directory: its index.html, opened relative to the directory itself
    // (so a symlinked index.html must stay inside it too).
    match open_beneath(&file, "fd", c"index.html", READ, beneath, trace) {
        Ok(index) => match fstat(&index, trace) {
            Ok(Kind::File(len)) => {
                close(file, trace);
                return Ok(Found::File {
                    file: index,
                    len,
                    content_type: response::HTML,
                });
            }
            // A directory (or a pipe) called index.html: list instead.
            _ => close(index, trace),
        },
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
        Err(error) => {
            close(file, trace);
            return Err(open_refusal(error));
        }
    }
    let page = listing(root, &file, relative, path.raw, beneath, trace);
    close(file, trace);
    page.map(Found::Listing)
}

const STAT_FAILED: Refusal = refusal(Status::INTERNAL_ERROR, "fstat on the opened file failed.");

/// What `fstat` says an open file is.
enum Kind {
    /// A regular file of this many bytes.
    File(u64),
    Directory,
    /// A FIFO, a socket or a device.
    Other,
}

/// fstat on an open file: its type and size, of the very file we opened,
/// not of whatever the path names a moment later.
fn fstat(file: &File, trace: &mut Tracer) -> io::Result<Kind> {
    let fd = file.as_raw_fd();
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole struct stat into the buffer we pass.
    let result = unsafe { libc::fstat(fd, stat.as_mut_ptr()) };
    if result != 0 {
        let error = io::Error::last_os_error();
        trace.record(
            "fstat",
            || format!("fd {fd}"),
            || Err(error.raw_os_error().unwrap_or(0)),
        );
        return Err(error);
    }
    // SAFETY: fstat succeeded, so it filled the struct in.
    let stat = unsafe { stat.assume_init() };
    let (kind, size) = (stat.st_mode & libc::S_IFMT, stat.st_size);
    trace.record(
        "fstat",
        || format!("fd {fd}"),
        || {
            Ok(match kind {
                libc::S_IFREG => format!("a regular file, {size} bytes"),
                libc::S_IFDIR => "a directory".to_string(),
                _ => "not a regular file or a directory".to_string(),
            })
        },
    );
    Ok(match kind {
        libc::S_IFREG => Kind::File(u64::try_from(size).unwrap_or(0)),
        libc::S_IFDIR => Kind::Directory,
        _ => Kind::Other,
    })
}

/// Close a file we opened and no longer need (dropping it would too, but
/// silently: this way the narration sees the call).
fn close(file: File, trace: &mut Tracer) {
    let fd = file.into_raw_fd();
    // SAFETY: into_raw_fd gave us sole ownership of fd; it is closed once.
    let result = unsafe { libc::close(fd) };
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    trace.record(
        "close",
        || format!("fd {fd}"),
        || {
            if result == 0 {
                Ok("0".to_string())
            } else {
                Err(errno)
            }
        },
    );
}

/// The status for a failed open, named by its errno.
fn open_refusal(error: io::Error) -> Refusal {
    match error.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => refusal(
            Status::NOT_FOUND,
            "No such file under the root directory.",
        ),
        Some(libc::EXDEV) => refusal(
            Status::FORBIDDEN,
            "The kernel refused the path: it leads outside the root directory (openat2 with RESOLVE_BENEATH gave EXDEV).",
        ),
        Some(libc::ELOOP) => refusal(
            Status::FORBIDDEN,
            "The path goes through a symbolic link the server does not follow (a loop, or any link when openat2 is missing).",
        ),
        Some(libc::EACCES) | Some(libc::EPERM) => refusal(
            Status::FORBIDDEN,
            "The server's user is not allowed to read what this path names (a file, or a directory to list).",
        ),
        Some(libc::ENAMETOOLONG) => refusal(
            Status::URI_TOO_LONG,
            "A name in the path is longer than the file system allows.",
        ),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOMEM) | Some(libc::EAGAIN) => {
            refusal(
                Status::UNAVAILABLE,
                "The server is out of file descriptors or memory for the moment.",
            )
        }
        _ => refusal(Status::INTERNAL_ERROR, "Opening the file failed."),
    }
}

/// The struct `openat2` reads (linux/openat2.h). libc has one too, but it is
/// `#[non_exhaustive]`, so it cannot be written as a literal; this copy has
/// the same layout: three u64 fields.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Open flags, and how the narration spells them.
#[derive(Clone, Copy)]
struct Flags {
    bits: libc::c_int,
    text: &'static str,
}

/// Flags for every file the server reads: read only; no fd leaked into
/// children; no controlling terminal; and O_NONBLOCK so that a FIFO planted
/// in the root cannot block the server in open() (it has no effect on
/// reading regular files).
const READ: Flags = Flags {
    bits: libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY,
    text: "O_RDONLY|O_CLOEXEC|O_NONBLOCK|O_NOCTTY",
};

/// Flags to look a path up without opening the file for reading (O_PATH):
/// enough to learn where a symlink leads, and cheap.
const LOOK_UP: Flags = Flags {
    bits: libc::O_PATH | libc::O_CLOEXEC,
    text: "O_PATH|O_CLOEXEC",
};

/// Open `path` (relative) under the directory `dir`, never leaving it.
/// `dir_label` is how the narration names `dir`'s fd ("root fd" or "fd").
fn open_beneath(
    dir: &File,
    dir_label: &str,
    path: &CStr,
    flags: Flags,
    beneath: bool,
    trace: &mut Tracer,
) -> io::Result<File> {
    if !beneath {
        return open_step_by_step(dir, dir_label, path, flags, trace);
    }
    let how = OpenHow {
        flags: flags.bits as u64,
        mode: 0,
        // RESOLVE_BENEATH: every step of the lookup, symlinks and `..`
        // included, must stay under `dir`, or the call fails with EXDEV.
        // RESOLVE_NO_MAGICLINKS: no /proc/PID/fd/N style links either.
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    // A few tries at most (see EAGAIN below), so that someone renaming
    // files in a loop cannot keep the server spinning here.
    let mut tries = 0;
    loop {
        tries += 1;
        // SAFETY: openat2 reads a NUL-terminated path and `how`, both alive
        // for the call, with the size of `how` passed as the kernel expects.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        let result = if fd >= 0 {
            Ok(fd as libc::c_int)
        } else {
            Err(io::Error::last_os_error())
        };
        trace.record(
            "openat2",
            || {
                format!(
                    "{dir_label} {}, {}, {}, RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS",
                    dir.as_raw_fd(),
                    quoted(path.to_bytes()),
                    flags.text
                )
            },
            || match &result {
                Ok(fd) => Ok(format!("fd {fd}")),
                Err(error) => Err(error.raw_os_error().unwrap_or(0)),
            },
        );
        let error = match result {
            // SAFETY: the kernel just gave us this fd; nothing else owns it.
            Ok(fd) => return Ok(unsafe { File::from_raw_fd(fd) }),
            Err(error) => error,
        };
        // EAGAIN: a rename raced with the lookup and the kernel could not
        // prove the path stays beneath; it asks us to try again (after the
        // last try, the caller answers 503). EINTR: a signal arrived.
        let again = matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::EINTR));
        if !again || tries == 4 {
            return Err(error);
        }
    }
}

/// Can the server use openat2 (Linux 5.6 or later)? Asked once, at start:
/// opening the root itself beneath the root must work. A kernel without
/// the call says ENOSYS; a seccomp filter (some containers) may say EPERM
/// instead. Either way, the step-by-step fallback below is used.
pub fn has_openat2(dir: &File) -> bool {
    open_beneath(dir, "root fd", c".", LOOK_UP, true, &mut Tracer(None)).is_ok()
}

/// The fallback for kernels without openat2 (ENOSYS): walk the path one
/// name at a time with `openat(..., O_NOFOLLOW)`, so no symlink is ever
/// followed (a symlink gives ELOOP, answered 403). Stricter than openat2,
/// which follows symlinks that stay inside the root, but just as safe:
/// `..` segments were refused lexically, and each step starts from a
/// directory we already hold open.
fn open_step_by_step(
    dir: &File,
    dir_label: &str,
    path: &CStr,
    flags: Flags,
    trace: &mut Tracer,
) -> io::Result<File> {
    let mut current: Option<File> = None;
    let mut names = path
        .to_bytes()
        .split(|&b| b == b'/')
        .filter(|name| !name.is_empty())
        .peekable();
    let mut name_buf = [0u8; 256];
    while let Some(name) = names.next() {
        if name.len() >= name_buf.len() {
            if let Some(previous) = current.take() {
                close(previous, trace);
            }
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        name_buf[..name.len()].copy_from_slice(name);
        name_buf[name.len()] = 0;
        let at = current.as_ref().unwrap_or(dir).as_raw_fd();
        let last = names.peek().is_none();
        let mut bits = flags.bits | libc::O_NOFOLLOW;
        if !last {
            bits |= libc::O_DIRECTORY;
        }
        // SAFETY: name_buf holds a NUL-terminated name; `at` is an open fd.
        let fd = unsafe { libc::openat(at, name_buf.as_ptr().cast(), bits) };
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        trace.record(
            "openat",
            || {
                let label = if current.is_none() { dir_label } else { "fd" };
                let directory = if last { "" } else { "|O_DIRECTORY" };
                format!(
                    "{label} {at}, {}, {}|O_NOFOLLOW{directory}",
                    quoted(name),
                    flags.text
                )
            },
            || {
                if fd >= 0 {
                    Ok(format!("fd {fd}"))
                } else {
                    Err(errno)
                }
            },
        );
        // The directory we looked the name up in is done with.
        if let Some(previous) = current.take() {
            close(previous, trace);
        }
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(errno));
        }
        // SAFETY: a fresh fd from the kernel, owned by nothing else.
        current = Some(unsafe { File::from_raw_fd(fd) });
    }
    current.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
}

/// A file name as the narration shows it: in double quotes, with `"`, `\\`
/// and bytes that are not printable ASCII escaped (`\\xE9`).
pub fn quoted(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for &b in name {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b' '..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out.push('"');
    out
}

/// The part after the last `/`.
fn last_segment(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// The extension of the last segment, without the dot ("" if none).
fn extension_of(path: &[u8]) -> &[u8] {
    let name = last_segment(path);
    match name.iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 => &name[dot + 1..],
        _ => b"",
    }
}

/// Content-Type by file extension: the browser decides how to show a body
/// from this header, not from the name in the URL.
pub fn content_type(extension: &[u8]) -> &'static str {
    const TYPES: &[(&str, &str)] = &[
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("js", "text/javascript; charset=utf-8"),
        ("mjs", "text/javascript; charset=utf-8"),
        ("json", "application/json"),
        ("txt", "text/plain; charset=utf-8"),
        ("md", "text/markdown; charset=utf-8"),
        ("csv", "text/csv; charset=utf-8"),
        ("xml", "application/xml"),
        ("svg", "image/svg+xml"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("avif", "image/avif"),
        ("ico", "image/x-icon"),
        ("pdf", "application/pdf"),
        ("wasm", "application/wasm"),
        ("woff", "font/woff"),
        ("woff2", "font/woff2"),
        ("ttf", "font/ttf"),
        ("otf", "font/otf"),
        ("mp3", "audio/mpeg"),
        ("ogg", "audio/ogg"),
        ("wav", "audio/wav"),
        ("mp4", "video/mp4"),
        ("webm", "video/webm"),
        ("zip", "application/zip"),
        ("gz", "application/gzip"),
        ("tar", "application/x-tar"),
    ];
    TYPES
        .iter()
        .find(|(ext, _)| ext.as_bytes().eq_ignore_ascii_case(extension))
        .map_or("application/octet-stream", |&(_, mime)| mime)
}

/// Most entries a listing shows; a directory with more gets a note instead.
const MAX_LISTED: usize = 10_000;

/// An HTML page listing the directory `dir`, which is `relative` under the
/// root and `raw` in the URL. The listing shows what the server would
/// serve: no hidden names, and no symlink that leads outside the root.
fn listing(
    root: &File,
    dir: &File,
    relative: &CStr,
    raw: &str,
    beneath: bool,
    trace: &mut Tracer,
) -> Result<Vec<u8>, Refusal> {
    let mut entries = read_dir(dir, trace).map_err(open_refusal)?;
    let more = entries.len().saturating_sub(MAX_LISTED);
    entries.truncate(MAX_LISTED);
    // Hidden names (see is_hidden) are left out, like `.` and `..`.
    entries.retain(|entry| !entry.name.starts_with(b"."));
    // Nor what a request for it would get 403 for: a name with a backslash
    // (refused as text, like in a request), and anything but a file, a
    // directory or a symlink (a FIFO, a socket, a device).
    entries.retain(|entry| {
        !entry.name.contains(&b'\\')
            && !matches!(
                entry.kind,
                libc::DT_FIFO | libc::DT_SOCK | libc::DT_CHR | libc::DT_BLK
            )
    });
    // A symlink is listed only if it stays inside the root, checked with the
    // same openat2 rule as a request, relative to the root. DT_UNKNOWN
    // (some file systems do not fill d_type in) might be a symlink too.
    entries.retain(|entry| {
        !matches!(entry.kind, libc::DT_LNK | libc::DT_UNKNOWN)
            || stays_inside(root, relative, &entry.name, beneath, trace)
    });
    entries.sort();

    let mut page = Vec::with_capacity(1024 + entries.len() * 96);
    page.extend_from_slice(
        b"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Index of ",
    );
    response::push_escaped(&mut page, raw.as_bytes());
    page.extend_from_slice(b"</title>\n<style>body{font:1.5rem/1.6 system-ui,sans-serif;margin:2rem;color:#111;background:#fff}a{color:#0645ad}</style>\n</head>\n<body>\n<h1>Index of ");
    response::push_escaped(&mut page, raw.as_bytes());
    page.extend_from_slice(
        b"</h1>\n<p>There is no index.html here, so the server lists the directory.</p>\n<ul>\n",
    );
    // A link up, except at the root, which has nothing above it to serve.
    if raw != "/" {
        page.extend_from_slice(b"<li><a href=\"../\">../</a> (parent directory)</li>\n");
    }
    for entry in &entries {
        let is_dir = entry.kind == libc::DT_DIR;
        page.extend_from_slice(b"<li><a href=\"");
        push_percent_encoded(&mut page, &entry.name);
        if is_dir {
            page.push(b'/');
        }
        page.extend_from_slice(b"\">");
        response::push_escaped(&mut page, &entry.name);
        if is_dir {
            page.push(b'/');
        }
        page.extend_from_slice(b"</a></li>\n");
    }
    page.extend_from_slice(b"</ul>\n");
    if more > 0 {
        page.extend_from_slice(b"<p>(");
        response::push_number(&mut page, more as u64);
        page.extend_from_slice(b" more entries not shown.)</p>\n");
    }
    page.extend_from_slice(b"</body>\n</html>\n");
    Ok(page)
}

/// Does the entry `name` of the directory `relative` resolve inside the
/// root? openat2 with O_PATH (a lookup, not a real open) and the same
/// RESOLVE_BENEATH rule as a request: EXDEV means it leads outside, and a
/// loop or a dangling link would not be served either. Without openat2 the
/// server follows no symlink, so none is listed.
fn stays_inside(
    root: &File,
    relative: &CStr,
    name: &[u8],
    beneath: bool,
    trace: &mut Tracer,
) -> bool {
    if !beneath {
        return false;
    }
    let dir = relative.to_bytes();
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    let mut path = Vec::with_capacity(dir.len() + name.len() + 2);
    if dir != b"." {
        path.extend_from_slice(dir);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path.push(0);
    let Ok(path) = CStr::from_bytes_with_nul(&path) else {
        return false;
    };
    match open_beneath(root, "root fd", path, LOOK_UP, true, trace) {
        Ok(file) => {
            close(file, trace);
            true
        }
        Err(_) => false,
    }
}

/// One name in a directory, and its type as getdents64 reports it
/// (`DT_DIR`, `DT_REG`, `DT_LNK`... or `DT_UNKNOWN`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    name: Vec<u8>,
    kind: u8,
}

/// The names in a directory (`.` and `..` included), read with the system
/// call behind readdir(3): `getdents64` fills a buffer with as many
/// records as fit, and returns 0 at the end of the directory.
fn read_dir(dir: &File, trace: &mut Tracer) -> io::Result<Vec<Entry>> {
    let fd = dir.as_raw_fd();
    let mut buffer = vec![0u8; 32 * 1024];
    let mut entries = Vec::new();
    while entries.len() <= MAX_LISTED {
        // SAFETY: the kernel writes at most buffer.len() bytes into buffer.
        let got =
            unsafe { libc::syscall(libc::SYS_getdents64, fd, buffer.as_mut_ptr(), buffer.len()) };
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        trace.record(
            "getdents64",
            || format!("fd {fd}, a buffer of {} bytes", buffer.len()),
            || match got {
                0 => Ok("0: the end of the directory".to_string()),
                1.. => Ok(format!("{got} bytes of entries")),
                _ => Err(errno),
            },
        );
        if got < 0 {
            // An error after some entries: list what we have.
            if entries.is_empty() {
                return Err(io::Error::from_raw_os_error(errno));
            }
            break;
        }
        if got == 0 {
            break;
        }
        // The buffer holds records one after another, each:
        //   u64 d_ino, i64 d_off, u16 d_reclen, u8 d_type, d_name (NUL-ended),
        // padded so that the next record starts d_reclen bytes later.
        let mut records = &buffer[..got as usize];
        while let Some(&[reclen_low, reclen_high, kind]) = records.get(16..19) {
            let reclen = usize::from(u16::from_ne_bytes([reclen_low, reclen_high]));
            let Some(name) = records.get(19..reclen) else {
                break; // a record shorter than its header: cannot happen
            };
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            entries.push(Entry {
                name: name[..end].to_vec(),
                kind,
            });
            records = &records[reclen..];
        }
    }
    Ok(entries)
}

/// Append a file name for use in a URL: unreserved bytes as they are,
/// everything else as %XX (so spaces, `#`, `?` and non-ASCII names work).
fn push_percent_encoded(out: &mut Vec<u8>, name: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in name {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// A `Location` value for the same path with a `/` added (query kept).
/// Non-ASCII bytes are percent-encoded; the rest was already checked by
/// httparse to be printable.
pub fn with_slash(path: &Path<'_>) -> Vec<u8> {
    let mut location = Vec::with_capacity(path.raw.len() + path.query.len() + 1);
    for &b in path
        .raw
        .as_bytes()
        .iter()
        .chain(b"/")
        .chain(path.query.as_bytes())
    {
        if b.is_ascii() {
            location.push(b);
        } else {
            push_percent_encoded(&mut location, &[b]);
        }
    }
    location
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(target: &str) -> Result<Vec<u8>, u16> {
        Path::parse(target)
            .map(|path| path.decoded().to_vec())
            .map_err(|refusal| refusal.status.code)
    }

    #[test]
    fn percent_decoding_and_the_query() {
        assert_eq!(decoded("/a%20b.html").unwrap(), b"/a b.html");
        assert_eq!(decoded("/%41%62%7e").unwrap(), b"/Ab~");
        assert_eq!(decoded("/caf%C3%A9").unwrap(), "/café".as_bytes());
        assert_eq!(decoded("/x.txt?a=%zz&b=/../").unwrap(), b"/x.txt");
        let path = Path::parse("/dir?x=1").unwrap();
        assert_eq!((path.raw, path.query), ("/dir", "?x=1"));
        // A + is a plus in a path (it means space only in form queries).
        assert_eq!(decoded("/a+b").unwrap(), b"/a+b");
        for bad in ["/%", "/%4", "/%g0", "/%0g"] {
            assert_eq!(decoded(bad), Err(400), "{bad}");
        }
    }

    #[test]
    fn lexical_refusals() {
        assert_eq!(decoded("/.."), Err(403));
        assert_eq!(decoded("/a/../b"), Err(403));
        assert_eq!(decoded("/a/%2E%2e/b"), Err(403));
        assert_eq!(decoded("/a%2f..%2fb"), Err(403));
        assert_eq!(decoded("/..."), Ok(b"/...".to_vec()));
        assert_eq!(decoded("/..a"), Ok(b"/..a".to_vec()));
        assert_eq!(decoded("/a/./b"), Ok(b"/a/./b".to_vec()));
        assert_eq!(decoded("//x"), Err(403));
        assert_eq!(decoded("/%2F%2Fx"), Err(403));
        assert_eq!(decoded("/a\\b"), Err(403));
        assert_eq!(decoded("/a%5Cb"), Err(403));
        assert_eq!(decoded("/a%00b"), Err(400));
        assert_eq!(decoded("*"), Err(400));
        assert_eq!(decoded("etc/passwd"), Err(400));
        // No length limit here: PATH_MAX matters only when a file is opened.
        let long = format!("/{}", "a".repeat(2 * PATH_MAX));
        assert_eq!(decoded(&long).map(|d| d.len()), Ok(2 * PATH_MAX + 1));
    }

    #[test]
    fn absolute_form_uses_the_path_and_ignores_the_host() {
        assert_eq!(decoded("http://example.com/a%20b").unwrap(), b"/a b");
        assert_eq!(decoded("HTTPS://example.com:8443/x?y=/z").unwrap(), b"/x");
        assert_eq!(decoded("http://example.com").unwrap(), b"/");
        assert_eq!(decoded("http://example.com?x=/y").unwrap(), b"/");
        // The checks still apply to the path part.
        assert_eq!(decoded("http://example.com/../etc/passwd"), Err(403));
        assert_eq!(decoded("http://example.com//etc/passwd"), Err(403));
        assert_eq!(decoded("ftp://example.com/"), Err(400));
        assert_eq!(decoded("http:/x"), Err(400));
    }

    #[test]
    fn hidden_names() {
        assert!(is_hidden(b"/.env"));
        assert!(is_hidden(b"/.git/config"));
        assert!(is_hidden(b"/a/.ssh/id_ed25519"));
        assert!(is_hidden(b"/a/./b"));
        assert!(!is_hidden(b"/a.b/c.txt"));
        assert!(!is_hidden(b"/"));
    }

    #[test]
    fn relative_paths_for_the_kernel() {
        let root = Path::parse("/").unwrap();
        assert_eq!(root.relative(), c".");
        let file = Path::parse("/a/b%20c?q").unwrap();
        assert_eq!(file.relative(), c"a/b c");
        let absolute = Path::parse("http://localhost:8000/a/b?q").unwrap();
        assert_eq!((absolute.raw, absolute.query), ("/a/b", "?q"));
        assert_eq!(absolute.relative(), c"a/b");
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type(extension_of(b"/index.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(extension_of(b"/a/photo.jpeg")), "image/jpeg");
        assert_eq!(
            content_type(extension_of(b"/archive.tar.gz")),
            "application/gzip"
        );
        assert_eq!(
            content_type(extension_of(b"/README")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(extension_of(b"/.bashrc")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(extension_of(b"/dir.d/file")),
            "application/octet-stream"
        );
    }

    #[test]
    fn errno_to_status() {
        let status = |errno| {
            open_refusal(io::Error::from_raw_os_error(errno))
                .status
                .code
        };
        assert_eq!(status(libc::ENOENT), 404);
        assert_eq!(status(libc::ENOTDIR), 404);
        assert_eq!(status(libc::EXDEV), 403);
        assert_eq!(status(libc::ELOOP), 403);
        assert_eq!(status(libc::EACCES), 403);
        assert_eq!(status(libc::ENAMETOOLONG), 414);
        assert_eq!(status(libc::EMFILE), 503);
        assert_eq!(status(libc::EIO), 500);
    }

    #[test]
    fn urls_for_links_and_redirects() {
        let mut out = Vec::new();
        push_percent_encoded(&mut out, "a b#?é.txt".as_bytes());
        assert_eq!(out, b"a%20b%23%3F%C3%A9.txt");
        let path = Path::parse("/caf\u{e9}?x=1").unwrap();
        assert_eq!(with_slash(&path), b"/caf%C3%A9/?x=1");
    }
}
