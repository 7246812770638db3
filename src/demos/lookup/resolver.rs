//! The C library's resolver, wrapped safely: getaddrinfo, getnameinfo,
//! getservbyname_r and getservbyport_r. The libc crate declares the raw
//! functions (nix has none of them); here every pointer they return is read
//! while it is valid, copied into Rust values, and every list is freed.

use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr};

use nix::errno::Errno;

/// One answer of getaddrinfo.
pub struct Answer {
    pub addr: SocketAddr,
    pub canonical: Option<String>,
}

/// A getaddrinfo/getnameinfo error: the EAI_ name and gai_strerror's text.
pub struct GaiError {
    pub name: &'static str,
    pub text: String,
}

impl GaiError {
    fn from_code(code: libc::c_int) -> GaiError {
        if code == libc::EAI_SYSTEM {
            // The real cause is in errno.
            let errno = Errno::last();
            return GaiError {
                name: crate::narrate::errno_name(errno),
                text: errno.desc().to_string(),
            };
        }
        let name = match code {
            libc::EAI_NONAME => "EAI_NONAME",
            libc::EAI_AGAIN => "EAI_AGAIN",
            libc::EAI_FAIL => "EAI_FAIL",
            libc::EAI_NODATA => "EAI_NODATA",
            libc::EAI_FAMILY => "EAI_FAMILY",
            libc::EAI_SERVICE => "EAI_SERVICE",
            libc::EAI_MEMORY => "EAI_MEMORY",
            libc::EAI_OVERFLOW => "EAI_OVERFLOW",
            _ => "EAI_OTHER",
        };
        // SAFETY: gai_strerror returns a pointer to a static, NUL-terminated
        // string for any code.
        let text = unsafe { CStr::from_ptr(libc::gai_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        GaiError { name, text }
    }
}

/// Every address getaddrinfo() finds for `name`. The list it returns is
/// freed with freeaddrinfo() before we return, whatever happens.
pub fn getaddrinfo(name: &CStr) -> Result<Vec<Answer>, GaiError> {
    /// Owns the list, and frees it when dropped.
    struct List(*mut libc::addrinfo);
    impl Drop for List {
        fn drop(&mut self) {
            if !self.0.is_null() {
                // SAFETY: the pointer came from a successful getaddrinfo and
                // is freed exactly once.
                unsafe { libc::freeaddrinfo(self.0) };
            }
        }
    }

    // SAFETY: addrinfo is plain data; all-zero is the documented way to
    // start the hints.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    hints.ai_flags = libc::AI_CANONNAME;
    let mut list = List(std::ptr::null_mut());
    // SAFETY: `name` is NUL-terminated, `hints` is initialised, and `list.0`
    // is a valid place for the result pointer.
    let code = unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut list.0) };
    if code != 0 {
        return Err(GaiError::from_code(code));
    }
    let mut answers = Vec::new();
    let mut next = list.0;
    while !next.is_null() {
        // SAFETY: `next` is a node of the list getaddrinfo built; the list
        // lives until `list` is dropped, after this loop.
        let node = unsafe { &*next };
        // SAFETY: ai_addr points at ai_addrlen bytes of a socket address.
        let addr = unsafe {
            <nix::sys::socket::SockaddrStorage as nix::sys::socket::SockaddrLike>::from_raw(
                node.ai_addr,
                Some(node.ai_addrlen),
            )
        };
        let canonical = (!node.ai_canonname.is_null()).then(|| {
            // SAFETY: a non-null ai_canonname is a NUL-terminated string.
            unsafe { CStr::from_ptr(node.ai_canonname) }
                .to_string_lossy()
                .into_owned()
        });
        if let Some(addr) = addr.as_ref().and_then(crate::sys::to_std) {
            answers.push(Answer { addr, canonical });
        }
        next = node.ai_next;
    }
    Ok(answers)
}

/// The name of `ip`, from getnameinfo() with NI_NAMEREQD (fail rather
/// than return the address itself as text).
pub fn getnameinfo(ip: IpAddr) -> Result<String, GaiError> {
    let addr = nix::sys::socket::SockaddrStorage::from(SocketAddr::new(ip, 0));
    let mut host = [0 as libc::c_char; libc::NI_MAXHOST as usize];
    // SAFETY: `addr` is a valid socket address of `len()` bytes, `host` is
    // a writable buffer of the length we pass, and no service is asked for.
    let code = unsafe {
        libc::getnameinfo(
            nix::sys::socket::SockaddrLike::as_ptr(&addr),
            nix::sys::socket::SockaddrLike::len(&addr),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if code != 0 {
        return Err(GaiError::from_code(code));
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated name into `host`.
    Ok(unsafe { CStr::from_ptr(host.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

/// The services database through glibc's reentrant getservbyname_r and
/// getservbyport_r, which the libc crate does not declare.
pub mod services {
    use std::ffi::{c_char, c_int, CStr};

    use nix::errno::Errno;

    extern "C" {
        fn getservbyname_r(
            name: *const c_char,
            proto: *const c_char,
            result_buf: *mut libc::servent,
            buf: *mut c_char,
            buflen: libc::size_t,
            result: *mut *mut libc::servent,
        ) -> c_int;
        fn getservbyport_r(
            port: c_int,
            proto: *const c_char,
            result_buf: *mut libc::servent,
            buf: *mut c_char,
            buflen: libc::size_t,
            result: *mut *mut libc::servent,
        ) -> c_int;
    }

    /// One line of the services database.
    pub struct Service {
        pub name: String,
        pub port: u16,
        pub proto: String,
        pub aliases: Vec<String>,
    }

    pub fn by_name(name: &CStr, proto: &CStr) -> nix::Result<Option<Service>> {
        query(|entry, buf, result| {
            // SAFETY: both strings are NUL-terminated; `entry`, `buf` (of
            // the given length) and `result` are valid for writes.
            unsafe {
                getservbyname_r(
                    name.as_ptr(),
                    proto.as_ptr(),
                    entry,
                    buf.as_mut_ptr(),
                    buf.len(),
                    result,
                )
            }
        })
    }

    pub fn by_port(port: u16, proto: &CStr) -> nix::Result<Option<Service>> {
        // The port is passed in network byte order, as s_port stores it.
        let port_be = c_int::from(port.to_be());
        query(|entry, buf, result| {
            // SAFETY: as in by_name.
            unsafe {
                getservbyport_r(
                    port_be,
                    proto.as_ptr(),
                    entry,
                    buf.as_mut_ptr(),
                    buf.len(),
                    result,
                )
            }
        })
    }

    /// Run a *_r lookup with a buffer that grows on ERANGE, and copy the
    /// answer out before the buffer goes away.
    fn query(
        call: impl Fn(*mut libc::servent, &mut [c_char], *mut *mut libc::servent) -> c_int,
    ) -> nix::Result<Option<Service>> {
        let mut size = 1024;
        loop {
            let mut buf = vec![0 as c_char; size];
            // SAFETY: servent is plain data; the call fills it in.
            let mut entry: libc::servent = unsafe { std::mem::zeroed() };
            let mut result: *mut libc::servent = std::ptr::null_mut();
            let code = call(&mut entry, &mut buf, &mut result);
            if code == libc::ERANGE && size < 1 << 20 {
                size *= 4;
                continue;
            }
            if code != 0 {
                return Err(Errno::from_raw(code));
            }
            if result.is_null() {
                return Ok(None);
            }
            // SAFETY: on success `entry` points into `buf`, which is alive
            // here: every string is NUL-terminated, s_aliases ends with NULL.
            let service = unsafe {
                let text = |ptr: *const c_char| CStr::from_ptr(ptr).to_string_lossy().into_owned();
                let mut aliases = Vec::new();
                let mut alias = entry.s_aliases;
                while !alias.is_null() && !(*alias).is_null() {
                    aliases.push(text(*alias));
                    alias = alias.add(1);
                }
                Service {
                    name: text(entry.s_name),
                    // s_port holds the port in network byte order in an int.
                    port: u16::from_be(entry.s_port as u16),
                    proto: text(entry.s_proto),
                    aliases,
                }
            };
            return Ok(Some(service));
        }
    }
}
