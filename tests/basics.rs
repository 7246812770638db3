//! The socket-basics commands: lookup, byteorder and sockinfo, checked
//! against what the test reads itself (/etc/hosts, /etc/services, its own
//! getsockopt calls, its own arithmetic).
//!
//! No test looks up a name that is not in /etc/hosts: that would send a
//! query to this machine's DNS server.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitStatus;

use common::*;
use nix::sys::socket::{
    bind, connect, getsockopt, listen, setsockopt, socket, sockopt, AddressFamily, Backlog,
    SockFlag, SockType, SockaddrIn,
};
use serde_json::Value;

fn run(args: &[&str]) -> (ExitStatus, Vec<Value>, String) {
    Demo::start(args).finish()
}

/// The names /etc/hosts gives an address, in file order.
fn hosts_names(address: &str) -> Vec<String> {
    let text = std::fs::read_to_string("/etc/hosts").expect("/etc/hosts");
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(address)).then(|| words.map(str::to_string).collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

#[test]
fn lookup_localhost_forward_and_reverse_from_etc_hosts() {
    let names = hosts_names("127.0.0.1");
    assert!(
        names.iter().any(|name| name == "localhost"),
        "this test needs `127.0.0.1 localhost` in /etc/hosts"
    );
    let (status, events, stderr) = run(&["lookup", "localhost"]);
    assert!(status.success(), "exit {status}; stderr: {stderr}");

    let addresses: Vec<&str> = infos(&events, "address")
        .iter()
        .filter_map(|e| e["value"]["addr"].as_str())
        .collect();
    assert!(addresses.contains(&"127.0.0.1"), "{addresses:?}");
    // Every address found is one /etc/hosts gives to localhost.
    for address in &addresses {
        assert!(
            hosts_names(address).iter().any(|name| name == "localhost"),
            "{address} does not come from /etc/hosts"
        );
    }
    let from_file = &infos(&events, "hosts_file")[0]["value"]["lines"];
    assert!(!from_file.as_array().unwrap().is_empty());

    // The reverse lookup of 127.0.0.1 is the first name of its line.
    let reverse = infos(&events, "reverse")
        .into_iter()
        .find(|e| e["value"]["addr"] == "127.0.0.1")
        .expect("a reverse lookup of 127.0.0.1");
    assert_eq!(reverse["value"]["name"], names[0].as_str());
    assert!(in_order(&calls(&events), &["getaddrinfo", "getnameinfo"]));
}

#[test]
fn lookup_an_address_goes_back_to_its_name() {
    let (status, events, _) = run(&["lookup", "127.0.0.1"]);
    assert!(status.success());
    assert!(in_order(&calls(&events), &["getnameinfo", "getaddrinfo"]));
    let confirmed = &infos(&events, "forward_confirmed")[0]["value"];
    assert_eq!(confirmed["confirmed"], true);
    assert_eq!(confirmed["name"], hosts_names("127.0.0.1")[0].as_str());
}

/// The port and protocols /etc/services gives a name.
fn services_entries(name: &str) -> Vec<(u16, String)> {
    let text = std::fs::read_to_string("/etc/services").expect("/etc/services (netbase)");
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let service = words.next()?;
            let (port, proto) = words.next()?.split_once('/')?;
            let aliases: Vec<&str> = words.collect();
            (service == name || aliases.contains(&name))
                .then(|| (port.parse().ok(), proto.to_string()))
                .and_then(|(port, proto)| Some((port?, proto)))
        })
        .collect()
}

#[test]
fn lookup_services_by_name_and_by_port() {
    let expected = services_entries("mysql");
    assert!(
        expected.contains(&(3306, "tcp".to_string())),
        "/etc/services must list mysql 3306/tcp: {expected:?}"
    );
    let (status, events, stderr) = run(&["lookup", "--service", "mysql", "--port", "22/tcp"]);
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    let found: Vec<(u16, String)> = infos(&events, "service")
        .iter()
        .filter(|e| e["value"]["name"] == "mysql")
        .map(|e| {
            (
                e["value"]["port"].as_u64().unwrap() as u16,
                e["value"]["proto"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(found, expected, "netlab and /etc/services agree");

    let by_port = infos(&events, "service")
        .into_iter()
        .find(|e| e["value"]["port"] == 22)
        .expect("port 22");
    assert_eq!(by_port["value"]["proto"], "tcp");
    assert!(services_entries(by_port["value"]["name"].as_str().unwrap())
        .contains(&(22, "tcp".to_string())));
}

#[test]
fn lookup_bad_input_is_a_clear_error() {
    let (status, events, stderr) = run(&["lookup", "--service", "no-such-service-here"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("no service named"), "{stderr}");
    assert_eq!(returns(&events, "getservbyname").len(), 2);

    // An empty name never reaches the resolver.
    let (status, events, stderr) = run(&["lookup", ""]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("empty"), "{stderr}");
    assert!(returns(&events, "getaddrinfo").is_empty());

    for args in [
        vec!["lookup"],
        vec!["lookup", "--port", "70000"],
        vec!["lookup", "--port", "22/sctp"],
    ] {
        let output = netlab().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn byteorder_of_a_known_number() {
    let (status, events, stderr) = run(&["byteorder", "8888"]);
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    let short = &infos(&events, "short")[0]["value"];
    // 8888 is 0x22B8: network order puts 0x22 first, whatever the machine.
    assert_eq!(short["network_bytes"], "22 b8");
    assert_eq!(short["host_bytes"], hex(&8888u16.to_ne_bytes()));
    assert_eq!(short["htons"], 8888u16.to_be());
    let long = &infos(&events, "long")[0]["value"];
    assert_eq!(long["network_bytes"], "00 00 22 b8");
    assert_eq!(long["htonl"], 8888u32.to_be());
    let endianness = &infos(&events, "endianness")[0]["value"]["order"];
    assert_eq!(
        endianness,
        if cfg!(target_endian = "little") {
            "little"
        } else {
            "big"
        }
    );
    // The kernel's own sockaddr_in holds the port in network order.
    let sin = &facts(&events, "sin_port_bytes")[0]["value"];
    assert_eq!(sin["sin_port"], "22 b8");
    assert_eq!(sin["sin_addr"], "7f 00 00 01");
}

#[test]
fn byteorder_reads_hex_and_shows_an_address() {
    let (status, events, _) = run(&["byteorder", "0xC0A8010A"]);
    assert!(status.success());
    let long = &infos(&events, "long")[0]["value"];
    assert_eq!(long["value"], 3_232_235_786u64);
    // Only the number read as an IPv4 address: nothing is sent anywhere.
    assert_eq!(long["ipv4"], "192.168.1.10");
    assert!(infos(&events, "short").is_empty(), "too big for 16 bits");
    for bad in ["-1", "4294967296", "0x", "ten", ""] {
        let output = netlab().args(["byteorder", bad]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    }
}

/// The value netlab reported for one option of one of its sockets.
fn reported(events: &[Value], socket: &str, option: &str, phase: &str) -> Value {
    facts(events, "sockopt")
        .into_iter()
        .find(|e| {
            e["value"]["socket"] == socket
                && e["value"]["option"] == option
                && e["value"]["phase"] == phase
        })
        .map(|e| e["value"]["value"].clone())
        .unwrap_or_else(|| panic!("no {socket} {option} ({phase}) in:\n{}", dump(events)))
}

fn new_socket(kind: SockType) -> OwnedFd {
    socket(AddressFamily::Inet, kind, SockFlag::empty(), None).expect("socket")
}

#[test]
fn sockinfo_reports_what_getsockopt_says() {
    let (status, events, stderr) = run(&["sockinfo", "--rcvbuf", "5000", "--sndbuf", "7000"]);
    assert!(status.success(), "exit {status}; stderr: {stderr}");

    // The same requests on the test's own sockets, read back with getsockopt.
    let udp = new_socket(SockType::Datagram);
    let udp_rcv_default = getsockopt(&udp, sockopt::RcvBuf).unwrap();
    let udp_snd_default = getsockopt(&udp, sockopt::SndBuf).unwrap();
    setsockopt(&udp, sockopt::RcvBuf, &5000).unwrap();
    setsockopt(&udp, sockopt::SndBuf, &7000).unwrap();
    assert_eq!(
        reported(&events, "udp", "SO_RCVBUF", "default"),
        udp_rcv_default
    );
    assert_eq!(
        reported(&events, "udp", "SO_SNDBUF", "default"),
        udp_snd_default
    );
    assert_eq!(
        reported(&events, "udp", "SO_RCVBUF", "after setsockopt"),
        getsockopt(&udp, sockopt::RcvBuf).unwrap()
    );
    assert_eq!(
        reported(&events, "udp", "SO_SNDBUF", "after setsockopt"),
        getsockopt(&udp, sockopt::SndBuf).unwrap()
    );
    assert_eq!(
        reported(&events, "udp", "SO_BROADCAST", "read"),
        u8::from(getsockopt(&udp, sockopt::Broadcast).unwrap())
    );

    // A connected TCP socket, like netlab's.
    let listener = new_socket(SockType::Stream);
    bind(listener.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    listen(&listener, Backlog::new(1).unwrap()).unwrap();
    let server: SockaddrIn = nix::sys::socket::getsockname(listener.as_raw_fd()).unwrap();
    let tcp = new_socket(SockType::Stream);
    connect(tcp.as_raw_fd(), &server).unwrap();
    setsockopt(&tcp, sockopt::RcvBuf, &5000).unwrap();
    setsockopt(&tcp, sockopt::SndBuf, &7000).unwrap();
    assert_eq!(
        reported(&events, "tcp", "SO_RCVBUF", "after setsockopt"),
        getsockopt(&tcp, sockopt::RcvBuf).unwrap()
    );
    assert_eq!(
        reported(&events, "tcp", "SO_SNDBUF", "after setsockopt"),
        getsockopt(&tcp, sockopt::SndBuf).unwrap()
    );
    assert_eq!(
        reported(&events, "tcp", "TCP_NODELAY", "read"),
        u8::from(getsockopt(&tcp, sockopt::TcpNoDelay).unwrap())
    );
    assert_eq!(
        reported(&events, "tcp", "SO_KEEPALIVE", "read"),
        u8::from(getsockopt(&tcp, sockopt::KeepAlive).unwrap())
    );
    assert_eq!(
        reported(&events, "tcp", "SO_REUSEADDR", "read"),
        u8::from(getsockopt(&tcp, sockopt::ReuseAddr).unwrap())
    );
    // Family, type and protocol are the kernel's numbers.
    assert_eq!(reported(&events, "tcp", "SO_DOMAIN", "read"), libc::AF_INET);
    assert_eq!(
        reported(&events, "tcp", "SO_TYPE", "read"),
        libc::SOCK_STREAM
    );
    assert_eq!(
        reported(&events, "tcp", "SO_PROTOCOL", "read"),
        libc::IPPROTO_TCP
    );
    assert_eq!(
        reported(&events, "udp", "SO_TYPE", "read"),
        libc::SOCK_DGRAM
    );
    assert_eq!(
        reported(&events, "udp", "SO_PROTOCOL", "read"),
        libc::IPPROTO_UDP
    );

    // The course's list of attributes, one line per socket.
    let sockets = infos(&events, "socket");
    assert_eq!(sockets.len(), 2);
    let tcp_info = &sockets[0]["value"];
    assert_eq!(tcp_info["sockname_before_bind"], "0.0.0.0:0");
    assert!(tcp_info["sockname"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(tcp_info["peername"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_ne!(tcp_info["sockname"], tcp_info["peername"]);
    assert_eq!(sockets[1]["value"]["peername"], Value::Null);
    // getpeername before connect: ENOTCONN, for both.
    let peer_errors: Vec<&Value> = returns(&events, "getpeername")
        .into_iter()
        .filter(|e| e["errno"] == "ENOTCONN")
        .collect();
    assert_eq!(peer_errors.len(), 2);
}

#[test]
fn sockinfo_rejects_impossible_sizes() {
    for bad in ["0", "-5", "huge", "4294967296"] {
        let output = netlab()
            .args(["sockinfo", "--rcvbuf", bad])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    }
}
