//! Static files under a root directory, and the checks every file server needs.
//!
//! A request target is text chosen by the client. Turning it into a file
//! name is where file servers go wrong, so it happens in two layers:
//!
//! 1. **Lexical checks**, before any system call: the target must be a path
//!    (`/...`), its percent-escapes valid, and once decoded it may not hold
//!    a NUL byte, a backslash, a leading `//`, or a `..` segment. `%2e%2e`
//!    is `..` and `%2f` is `/`, so the checks run on the decoded bytes.
//! 2. **The kernel**, which has the last word: the file is opened with
//!    `openat2(root_fd, path, RESOLVE_BENEATH)` (Linux 5.6), which fails
//!    with EXDEV for any path that would leave the directory `root_fd`
//!    refers to, including through a symlink planted inside the root. The
//!    same call opens the file, so there is no gap between "checked" and
//!    "opened" for someone to swap a symlink into.
//!
//! Then `fstat` on the open file tells its size (Content-Length) and whether
//! it is a directory (served as its index.html, or a generated listing).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

use super::response::{self, Status};

/// The longest decoded path this server opens (Linux's PATH_MAX).
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

/// A request target decoded into a file path, checked lexically.
pub struct Path<'t> {
    /// The path as sent, without the query (`?...`): `/docs/a%20b.html`.
    pub raw: &'t str,
    /// The query with its `?`, or "": ignored for files.
    pub query: &'t str,
    /// The decoded path, followed by a NUL for the system call.
    decoded: [u8; PATH_MAX + 1],
    len: usize,
}

impl<'t> Path<'t> {
    /// Decode and check a request target.
    pub fn parse(target: &'t str) -> Result<Path<'t>, Refusal> {
        // Origin-form only: the target of a request to a server (rather than
        // a proxy) is an absolute path. `http://host/x`, `*` or `x` are not.
        if !target.starts_with('/') {
            return Err(refusal(
                Status::BAD_REQUEST,
                "The request target is not a path starting with /; this server is not a proxy.",
            ));
        }
        let (raw, query) = match target.find('?') {
            Some(at) => target.split_at(at),
            None => (target, ""),
        };
        let mut path = Path {
            raw,
            query,
            decoded: [0; PATH_MAX + 1],
            len: 0,
        };
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
            if path.len == PATH_MAX {
                return Err(refusal(
                    Status::URI_TOO_LONG,
                    "The decoded path is longer than PATH_MAX (4096 bytes).",
                ));
            }
            path.decoded[path.len] = byte;
            path.len += 1;
        }
        let decoded = path.decoded();
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
        Ok(path)
    }

    /// The decoded path, starting with `/`.
    pub fn decoded(&self) -> &[u8] {
        &self.decoded[..self.len]
    }

    /// The path relative to the root, NUL-terminated: `/a/b` is `a/b`, and
    /// `/` is `.`, the root itself.
    fn relative(&mut self) -> Option<&CStr> {
        let start = usize::from(self.len > 0 && self.decoded[0] == b'/');
        if start == self.len {
            return Some(c".");
        }
        self.decoded[self.len] = 0;
        // None only if there were a NUL inside, which parse() refused.
        CStr::from_bytes_with_nul(&self.decoded[start..=self.len]).ok()
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

/// Open what `path` names under the root directory `root`.
pub fn open(root: &File, beneath: bool, path: &mut Path<'_>) -> Result<Found, Refusal> {
    // The raw path decides (not the decoded one): the browser resolves
    // relative links against the address as it was sent.
    let ends_with_slash = path.raw.ends_with('/');
    let file_type = content_type(extension_of(path.decoded()));
    let raw = path.raw;
    let relative = path.relative().ok_or(refusal(
        Status::BAD_REQUEST,
        "The path contains a NUL byte (%00), which would cut the file name short.",
    ))?;
    let file = open_beneath(root, relative, beneath).map_err(open_refusal)?;
    // fstat on the open file (std asks statx with AT_EMPTY_PATH, its modern
    // form): the size for Content-Length and the type, of the very file we
    // opened, not of whatever the path names a moment later.
    let meta = file.metadata().map_err(|_| STAT_FAILED)?;
    if meta.is_file() {
        return Ok(Found::File {
            file,
            len: meta.len(),
            content_type: file_type,
        });
    }
    if !meta.is_dir() {
        return Err(refusal(
            Status::FORBIDDEN,
            "The path names a device, pipe or socket; only regular files and directories are served.",
        ));
    }
    if !ends_with_slash && relative.to_bytes() != b"." {
        return Ok(Found::AddSlash);
    }
    // A directory: its index.html, opened relative to the directory itself
    // (so a symlinked index.html must stay inside it too).
    match open_beneath(&file, c"index.html", beneath) {
        Ok(index) => {
            let meta = index.metadata().map_err(|_| STAT_FAILED)?;
            if meta.is_file() {
                return Ok(Found::File {
                    file: index,
                    len: meta.len(),
                    content_type: response::HTML,
                });
            }
        }
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
        Err(error) => return Err(open_refusal(error)),
    }
    listing(&file, raw).map(Found::Listing)
}

const STAT_FAILED: Refusal = refusal(Status::INTERNAL_ERROR, "fstat on the opened file failed.");

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
            "The server's user is not allowed to read this file.",
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

/// Flags for every open: read only; no fd leaked into children; and
/// O_NONBLOCK so that a FIFO planted in the root cannot block the server in
/// open() (it has no effect on reading regular files).
const OPEN_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;

/// Open `path` (relative) under the directory `dir`, never leaving it.
fn open_beneath(dir: &File, path: &CStr, beneath: bool) -> io::Result<File> {
    if !beneath {
        return open_step_by_step(dir, path);
    }
    let how = OpenHow {
        flags: OPEN_FLAGS as u64,
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
        if fd >= 0 {
            // SAFETY: the kernel just gave us this fd; nothing else owns it.
            return Ok(unsafe { File::from_raw_fd(fd as libc::c_int) });
        }
        let error = io::Error::last_os_error();
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
    open_beneath(dir, c".", true).is_ok()
}

/// The fallback for kernels without openat2 (ENOSYS): walk the path one
/// name at a time with `openat(..., O_NOFOLLOW)`, so no symlink is ever
/// followed (a symlink gives ELOOP, answered 403). Stricter than openat2,
/// which follows symlinks that stay inside the root, but just as safe:
/// `..` segments were refused lexically, and each step starts from a
/// directory we already hold open.
fn open_step_by_step(dir: &File, path: &CStr) -> io::Result<File> {
    let mut current: Option<File> = None;
    let mut names = path
        .to_bytes()
        .split(|&b| b == b'/')
        .filter(|name| !name.is_empty())
        .peekable();
    if names.peek().is_none() {
        return dir.try_clone();
    }
    let mut name_buf = [0u8; 256];
    while let Some(name) = names.next() {
        if name.len() >= name_buf.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        name_buf[..name.len()].copy_from_slice(name);
        name_buf[name.len()] = 0;
        let at = current.as_ref().unwrap_or(dir).as_raw_fd();
        let mut flags = OPEN_FLAGS | libc::O_NOFOLLOW;
        if names.peek().is_some() {
            flags |= libc::O_DIRECTORY;
        }
        // SAFETY: name_buf holds a NUL-terminated name; `at` is an open fd.
        let fd = unsafe { libc::openat(at, name_buf.as_ptr().cast(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
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

/// An HTML page listing the directory `dir` (whose URL path is `raw`).
fn listing(dir: &File, raw: &str) -> Result<Vec<u8>, Refusal> {
    let mut entries = read_dir(dir).map_err(open_refusal)?;
    let more = entries.len().saturating_sub(MAX_LISTED);
    entries.truncate(MAX_LISTED);
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
    if raw != "/" {
        page.extend_from_slice(b"<li><a href=\"../\">../</a> (parent directory)</li>\n");
    }
    for (name, is_dir) in &entries {
        page.extend_from_slice(b"<li><a href=\"");
        push_percent_encoded(&mut page, name);
        if *is_dir {
            page.push(b'/');
        }
        page.extend_from_slice(b"\">");
        response::push_escaped(&mut page, name);
        if *is_dir {
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

/// The names in a directory (without `.` and `..`), and which are directories.
fn read_dir(dir: &File) -> io::Result<Vec<(Vec<u8>, bool)>> {
    // fdopendir takes ownership of the fd it is given, and closedir closes
    // it, so hand it a duplicate and keep ours.
    let copy = dir.try_clone()?;
    // SAFETY: `copy` is an open directory fd; into_raw_fd gives its
    // ownership to the DIR stream, which closedir releases below.
    let stream = unsafe { libc::fdopendir(std::os::fd::IntoRawFd::into_raw_fd(copy)) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut entries = Vec::new();
    loop {
        // SAFETY: `stream` is a valid DIR* until closedir; the entry it
        // returns stays valid until the next readdir on the same stream,
        // and we copy what we need before that.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break; // the end (or an error, after which we list what we have)
        }
        // SAFETY: d_name is a NUL-terminated array inside the entry.
        let (name, kind) = unsafe {
            (
                CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes(),
                (*entry).d_type,
            )
        };
        if name == b"." || name == b".." {
            continue;
        }
        entries.push((name.to_vec(), kind == libc::DT_DIR));
        if entries.len() > MAX_LISTED {
            break;
        }
    }
    // SAFETY: `stream` came from fdopendir and is closed exactly once.
    unsafe { libc::closedir(stream) };
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
        assert_eq!(decoded("http://example.com/"), Err(400));
        assert_eq!(decoded("*"), Err(400));
        let long = format!("/{}", "a".repeat(PATH_MAX));
        assert_eq!(decoded(&long), Err(414));
        let longest = format!("/{}", "a".repeat(PATH_MAX - 1));
        assert_eq!(decoded(&longest).map(|d| d.len()), Ok(PATH_MAX));
    }

    #[test]
    fn relative_paths_for_the_kernel() {
        let mut root = Path::parse("/").unwrap();
        assert_eq!(root.relative(), Some(c"."));
        let mut file = Path::parse("/a/b%20c?q").unwrap();
        assert_eq!(file.relative(), Some(c"a/b c"));
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
