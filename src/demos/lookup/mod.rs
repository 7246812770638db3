//! # lookup: names to addresses, addresses to names, services to ports
//!
//! Programs connect to addresses, people type names. Turning one into the
//! other is not the kernel's job: it is done by C library functions in our
//! own process, which read `/etc/nsswitch.conf` to decide where to look
//! (`/etc/hosts` first, then usually a DNS server). The same library keeps
//! the services database, `/etc/services`, a plain table from names such
//! as `mysql` to port numbers such as 3306/tcp.
//!
//! Calls shown: getaddrinfo (every address of a name, IPv4 and IPv6),
//! getnameinfo (the reverse, address to name), getservbyname and
//! getservbyport (the services database). None of them is a system call;
//! they open and read files, and may send DNS queries, on our behalf.
//! Their raw C interfaces are wrapped safely in `resolver.rs`, next to
//! this file.
//!
//! Try it:
//!
//! ```text
//! netlab lookup localhost
//! netlab lookup 127.0.0.1
//! netlab lookup --service mysql
//! netlab lookup --port 53/udp
//! ```
//!
//! Lesson: `netlab lesson osi-and-sockets`.

mod resolver;

use std::ffi::{CStr, CString};
use std::net::{IpAddr, SocketAddr};

use anyhow::Result;
use serde_json::json;

use crate::error::Failure;
use crate::narrate::text::show_bytes;
use crate::narrate::Narrator;
use resolver::{getaddrinfo, getnameinfo, services, Answer};

/// The flags of this demo (the `--help` text is in the `///` comments).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A host name (localhost) or an IP address (127.0.0.1, ::1) to look up.
    /// A name that is not in /etc/hosts is sent to your DNS server.
    #[arg(required_unless_present_any = ["service", "port"])]
    pub target: Option<String>,

    /// Look a service name up in the services database (e.g. mysql, ssh, domain).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// Look a port up in the services database: 3306/tcp, 53/udp, or 22 for both protocols.
    #[arg(long, value_name = "PORT/PROTO", value_parser = parse_port_proto)]
    pub port: Option<(u16, Option<Proto>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn name(self) -> &'static CStr {
        match self {
            Proto::Tcp => c"tcp",
            Proto::Udp => c"udp",
        }
    }
}

/// `--port`: "3306/tcp", "53/udp" or "22".
fn parse_port_proto(text: &str) -> Result<(u16, Option<Proto>), String> {
    let (port, proto) = match text.split_once('/') {
        Some((port, proto)) => (port, Some(proto)),
        None => (text, None),
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{port}` is not a port number (0 to 65535)"))?;
    let proto = match proto.map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("tcp") => Some(Proto::Tcp),
        Some("udp") => Some(Proto::Udp),
        Some(other) => return Err(format!("`{other}` is not tcp or udp")),
    };
    Ok((port, proto))
}

pub fn run(nar: &Narrator, args: &Args) -> Result<()> {
    nar.start(
        "lookup",
        "osi-and-sockets",
        "Name lookups (getaddrinfo, getnameinfo) and the services database (getservbyname, getservbyport).",
    );
    if let Some(target) = &args.target {
        show_nsswitch(nar);
        match target
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => lookup_address(nar, ip)?,
            Err(_) => lookup_name(nar, target)?,
        }
    }
    if let Some(service) = &args.service {
        lookup_service(nar, service)?;
    }
    if let Some((port, proto)) = args.port {
        lookup_port(nar, port, proto);
    }
    Ok(())
}

/// Where the C library will look, from /etc/nsswitch.conf.
fn show_nsswitch(nar: &Narrator) {
    let hosts = std::fs::read_to_string("/etc/nsswitch.conf")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.trim()
                    .strip_prefix("hosts:")
                    .map(|rest| rest.trim().to_string())
            })
        });
    match hosts {
        Some(sources) => nar.info(
            "nsswitch",
            json!({ "hosts": sources }),
            format!("/etc/nsswitch.conf says hosts: {sources}"),
        ),
        None => nar.info(
            "nsswitch",
            json!({ "hosts": null }),
            "/etc/nsswitch.conf has no hosts line; the C library then looks in DNS, then /etc/hosts",
        ),
    }
    nar.note("getaddrinfo() and getnameinfo() are C library functions, not system calls: they follow the hosts line of /etc/nsswitch.conf, where files means /etc/hosts and dns means a query to the DNS server in /etc/resolv.conf.");
}

/// Forward, then reverse for every address found.
fn lookup_name(nar: &Narrator, name: &str) -> Result<()> {
    let answers = forward(nar, name)?;
    show_hosts_file(nar, name);
    let mut seen: Vec<IpAddr> = Vec::new();
    for answer in &answers {
        if !seen.contains(&answer.addr.ip()) {
            seen.push(answer.addr.ip());
            reverse(nar, answer.addr.ip());
        }
    }
    Ok(())
}

/// Reverse, then forward from the name found, to see whether it leads back.
fn lookup_address(nar: &Narrator, ip: IpAddr) -> Result<()> {
    let Some(name) = reverse(nar, ip) else {
        return Ok(());
    };
    // A name that does not resolve forward is an answer too: "not confirmed".
    let answers = forward(nar, &name).unwrap_or_default();
    let back = answers.iter().any(|answer| answer.addr.ip() == ip);
    nar.info(
        "forward_confirmed",
        json!({ "addr": ip.to_string(), "name": name, "confirmed": back }),
        format!(
            "{} resolves back to {ip}: {}",
            show_bytes(name.as_bytes(), 80),
            if back { "yes" } else { "no" }
        ),
    );
    if !back {
        nar.note("The name found for the address does not lead back to it: forward and reverse records are kept separately, and nothing forces them to agree.");
    }
    Ok(())
}

/// getaddrinfo(name, NULL, {AF_UNSPEC, SOCK_STREAM, AI_CANONNAME}).
fn forward(nar: &Narrator, name: &str) -> Result<Vec<Answer>> {
    let c_name = host_cstring(name)?;
    let step = nar.call(
        "getaddrinfo",
        format!(
            "{}, NULL, AF_UNSPEC, SOCK_STREAM, AI_CANONNAME",
            show_bytes(name.as_bytes(), 80)
        ),
    );
    let answers = match getaddrinfo(&c_name) {
        Ok(answers) => answers,
        Err(err) => {
            step.fail_code(err.name, err.text.clone());
            return Err(Failure::new(
                format!("no address found for `{name}`: {} ({})", err.name, err.text),
                Some("check the spelling; a name that is not in /etc/hosts needs a working DNS server"),
            )
            .into());
        }
    };
    let count = match answers.len() {
        1 => "1 address".to_string(),
        n => format!("{n} addresses"),
    };
    step.ok_value(answers.len() as i64, count);
    nar.note("SOCK_STREAM in the hints asks for one answer per address; without it each address comes three times, once per socket type.");
    if let Some(canonical) = answers.iter().find_map(|answer| answer.canonical.clone()) {
        nar.info(
            "canonical_name",
            json!({ "name": canonical }),
            format!("canonical name: {}", show_bytes(canonical.as_bytes(), 80)),
        );
    }
    for answer in &answers {
        let family = match answer.addr {
            SocketAddr::V4(_) => "AF_INET",
            SocketAddr::V6(_) => "AF_INET6",
        };
        nar.info(
            "address",
            json!({ "name": name, "family": family, "addr": answer.addr.ip().to_string() }),
            format!("{family} {}", answer.addr.ip()),
        );
    }
    Ok(answers)
}

/// getnameinfo(addr, NI_NAMEREQD): the name, or None if there is none.
fn reverse(nar: &Narrator, ip: IpAddr) -> Option<String> {
    let step = nar.call("getnameinfo", format!("{ip}, NI_NAMEREQD"));
    match getnameinfo(ip) {
        Ok(name) => {
            step.ok(show_bytes(name.as_bytes(), 80));
            nar.info(
                "reverse",
                json!({ "addr": ip.to_string(), "name": name }),
                format!("{ip} is called {}", show_bytes(name.as_bytes(), 80)),
            );
            Some(name)
        }
        Err(err) => {
            step.fail_code(err.name, err.text.clone());
            nar.info(
                "reverse",
                json!({ "addr": ip.to_string(), "name": null, "error": err.name }),
                format!("{ip} has no name: {}", err.text),
            );
            None
        }
    }
}

/// The lines of /etc/hosts that mention `name`, to show where an answer came from.
fn show_hosts_file(nar: &Narrator, name: &str) {
    let Ok(text) = std::fs::read_to_string("/etc/hosts") else {
        return;
    };
    let lines: Vec<String> = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| {
            line.split_whitespace()
                .skip(1)
                .any(|word| word.eq_ignore_ascii_case(name))
        })
        .map(str::to_string)
        .collect();
    let shown = if lines.is_empty() {
        "no line of /etc/hosts names it, so the answer came from another source (DNS)".to_string()
    } else {
        format!("/etc/hosts: {}", lines.join(" | "))
    };
    nar.info("hosts_file", json!({ "name": name, "lines": lines }), shown);
}

/// getservbyname for tcp and for udp.
fn lookup_service(nar: &Narrator, service: &str) -> Result<()> {
    let Ok(c_service) = CString::new(service) else {
        return Err(Failure::new("a service name cannot contain a NUL byte", None).into());
    };
    let mut found = 0;
    for proto in [Proto::Tcp, Proto::Udp] {
        let proto_name = proto.name().to_string_lossy();
        let step = nar.call(
            "getservbyname",
            format!("{}, \"{proto_name}\"", show_bytes(service.as_bytes(), 40)),
        );
        match services::by_name(&c_service, proto.name()) {
            Ok(Some(entry)) => {
                step.ok(format!("{}/{}", entry.port, entry.proto));
                found += 1;
                show_service(nar, &entry);
            }
            Ok(None) => step.ok("NULL: not in the database"),
            Err(errno) => step.fail(errno),
        }
    }
    if found == 0 {
        return Err(Failure::new(
            format!("the services database has no service named `{service}`"),
            Some("`grep -w NAME /etc/services` lists the names it knows"),
        )
        .into());
    }
    Ok(())
}

/// getservbyport for one protocol, or both.
fn lookup_port(nar: &Narrator, port: u16, proto: Option<Proto>) {
    let protos = match proto {
        Some(proto) => vec![proto],
        None => vec![Proto::Tcp, Proto::Udp],
    };
    for proto in protos {
        let proto_name = proto.name().to_string_lossy();
        // The services database stores ports in network byte order.
        let step = nar.call("getservbyport", format!("htons({port}), \"{proto_name}\""));
        match services::by_port(port, proto.name()) {
            Ok(Some(entry)) => {
                step.ok(entry.name.clone());
                show_service(nar, &entry);
            }
            Ok(None) => {
                step.ok("NULL: not in the database");
                nar.info(
                    "service",
                    json!({ "name": null, "port": port, "proto": proto_name }),
                    format!("no service is named for {port}/{proto_name}"),
                );
            }
            Err(errno) => step.fail(errno),
        }
    }
    nar.note("The services database only gives names to numbers. It reserves nothing: any program may bind any free port.");
}

fn show_service(nar: &Narrator, entry: &services::Service) {
    nar.info(
        "service",
        json!({ "name": entry.name, "port": entry.port, "proto": entry.proto, "aliases": entry.aliases }),
        format!(
            "{} is {}/{}{}",
            entry.name,
            entry.port,
            entry.proto,
            if entry.aliases.is_empty() {
                String::new()
            } else {
                format!(" (aliases: {})", entry.aliases.join(", "))
            }
        ),
    );
}

/// A host name for the C library: no NUL byte, not empty, not absurdly long.
fn host_cstring(name: &str) -> Result<CString> {
    if name.is_empty() {
        return Err(Failure::new(
            "the host name is empty",
            Some("give a name such as localhost, or an address such as 127.0.0.1"),
        )
        .into());
    }
    if name.len() > 253 {
        return Err(Failure::new(
            format!(
                "the host name is {} characters long; DNS names have at most 253",
                name.len()
            ),
            None,
        )
        .into());
    }
    CString::new(name)
        .map_err(|_| Failure::new("a host name cannot contain a NUL byte", None).into())
}
