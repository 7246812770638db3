//! The command tree: every subcommand of netlab, its one-line summary, its
//! example and its lesson. Each demo's flags live next to its code, in the
//! demo's `Args` struct (`src/demos/tcp_server.rs` and so on), so a student
//! reading a demo sees the options it reads.
//!
//! House rules for flags (keep them when adding a demo):
//! - `///` comments are the `--help` text; the first line is the one-line
//!   summary, so make it a whole sentence.
//! - Every subcommand ends its help with an `Example:` line that works as is.
//! - Servers take `--host` and `--port`; `--port 0` lets the kernel choose and
//!   the demo prints the address it really bound.
//! - A flag that shows a classic mistake is named after the mistake
//!   (`--no-reuseaddr`), so the bug and the fix live in one binary.
//! - Global flags (`--json`, `--quiet`, `--step`, `--color`, `--rate`) belong to
//!   the narrator and work on every subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Learn Linux network and process programming by watching the real system
/// calls, one by one.
#[derive(Debug, Parser)]
#[command(name = "netlab", version, propagate_version = true)]
#[command(
    after_help = "Start with: netlab lesson\nThen try:   netlab tcp-server --port 8888   (and `nc 127.0.0.1 8888` in another terminal)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// How the narration is printed. These flags work with every subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Print one JSON object per line instead of prose (schema: docs/json-events.md).
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only the start-up lines, warnings and errors (check: the probes that did not pass, and the verdict).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Wait for a key before each system call (Enter: next, c: run on, q: quit).
    #[arg(long, global = true)]
    pub step: bool,

    /// When to use colour. `auto` means: only on a terminal, and not when NO_COLOR is set.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true, env = "NETLAB_COLOR", value_name = "WHEN")]
    pub color: ColorChoice,

    /// Narrate at most N steps a second in full; above that, print one summary
    /// line a second. 0 narrates every step.
    #[arg(long, default_value_t = 50, global = true, value_name = "N")]
    pub rate: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// A TCP echo server: socket, bind, listen, accept, recv, send, close; one client at a time, or a process or thread each.
    #[command(
        after_help = "Lesson: netlab lesson tcp\n\nExample:\n  netlab tcp-server --port 8888\n  (then, in another terminal: nc 127.0.0.1 8888)\n  netlab tcp-server --model fork   (one child process per client)\n  netlab tcp-server --model fork --no-close-in-parent --close-after 1   (the client never gets EOF)"
    )]
    TcpServer(crate::demos::tcp_server::Args),

    /// A TCP client: connect, send, receive, close, and what goes wrong when the peer is gone.
    #[command(
        after_help = "Lesson: netlab lesson tcp\n\nExample:\n  netlab tcp-client --port 8888 --message hello --half-close"
    )]
    TcpClient(crate::demos::tcp_client::Args),

    /// A UDP echo server: socket(SOCK_DGRAM), bind, recvmsg and sendto; no listen, no accept.
    #[command(
        after_help = "Lesson: netlab lesson udp\n\nExample:\n  netlab udp-server --port 9999\n  (then, in another terminal: nc -u 127.0.0.1 9999)\n  netlab udp-server --port 9999 --rcvbuf 4096 --slow 20\n  (then: netlab udp-client --port 9999 --count 500 --size 200)"
    )]
    UdpServer(crate::demos::udp_server::Args),

    /// A UDP client: sendto, a reply that may never come, connected UDP, and floods.
    #[command(
        after_help = "Lesson: netlab lesson udp\n\nExample:\n  netlab udp-client --port 9999 --message hello\n  netlab udp-client --port 9998 --message anyone --connect"
    )]
    UdpClient(crate::demos::udp_client::Args),

    /// Broadcast: one datagram, and every listener on the subnet receives a copy.
    #[command(
        after_help = "Lesson: netlab lesson broadcast\n\nExample:\n  netlab broadcast\n  (or, in three terminals: netlab broadcast listen, twice, then netlab broadcast send)"
    )]
    Broadcast(crate::demos::broadcast::Args),

    /// Name and service lookup: getaddrinfo, getnameinfo and the services database.
    #[command(
        after_help = "Lesson: netlab lesson osi-and-sockets\n\nExample:\n  netlab lookup localhost\n  (and: netlab lookup --service mysql --port 53/udp)"
    )]
    Lookup(crate::demos::lookup::Args),

    /// A number's bytes in host order and network order (htons, htonl).
    #[command(
        after_help = "Lesson: netlab lesson osi-and-sockets\n\nExample:\n  netlab byteorder 8888"
    )]
    Byteorder(crate::demos::byteorder::Args),

    /// A TCP and a UDP socket's attributes and options, read back from the kernel.
    #[command(after_help = "Lesson: netlab lesson osi-and-sockets\n\nExample:\n  netlab sockinfo")]
    Sockinfo(crate::demos::sockinfo::Args),

    /// Blocking, non-blocking, timeouts, non-blocking connect and short writes, one scene each.
    #[command(
        after_help = "Lesson: netlab lesson io-models\n\nExample:\n  netlab io-demo --mode nonblocking\n  netlab io-demo --mode short-write --sndbuf 8192"
    )]
    IoDemo(crate::demos::io_demo::Args),

    /// Sticky packets: TCP is a byte stream, so messages merge and split; and the fixes.
    #[command(
        after_help = "Lesson: netlab lesson sticky-packets\n\nExample:\n  netlab sticky-demo --fix length\n  netlab sticky-demo --fix delimiter --port 9000   (then: nc 127.0.0.1 9000)"
    )]
    StickyDemo(crate::demos::sticky::Args),

    /// Unix domain sockets: a socket file or an abstract name, stale files, SO_PEERCRED, socketpair.
    #[command(
        after_help = "Lesson: netlab lesson unix-sockets\n\nExample:\n  netlab unix-demo --role both\n  netlab unix-demo --role server --path /tmp/demo.sock   (then: nc -U /tmp/demo.sock)"
    )]
    UnixDemo(crate::demos::unix::Args),

    /// An echo server for many clients with select(): read, write and error fd sets, FD_SETSIZE.
    #[command(
        after_help = "Lesson: netlab lesson io-multiplexing\n\nExample:\n  netlab select-demo --port 8888 --timeout 5"
    )]
    SelectDemo(crate::demos::mux::select::Args),

    /// An echo server for many clients with poll(): an array of fds and event bits.
    #[command(
        after_help = "Lesson: netlab lesson io-multiplexing\n\nExample:\n  netlab poll-demo --port 8888"
    )]
    PollDemo(crate::demos::mux::poll::Args),

    /// An echo server for many clients with epoll: the kernel keeps the ready list; LT and ET.
    #[command(
        after_help = "Lesson: netlab lesson io-multiplexing\n\nExample:\n  netlab epoll-demo --port 8888 --edge --partial-read --bufsize 4"
    )]
    EpollDemo(crate::demos::mux::epoll::Args),

    /// An HTTP/1.1 server written on raw sockets: a page that shows your own request, or static files.
    #[command(
        after_help = "Lesson: netlab lesson http\n\nExample:\n  netlab http-server --port 8000   (then open http://127.0.0.1:8000 in a browser)\n  netlab http-server --port 8000 --root ./site --model thread"
    )]
    HttpServer(crate::demos::http::Args),

    /// fork(): one process becomes two, with separate memory.
    #[command(
        after_help = "Lesson: netlab lesson processes\n\nExample:\n  netlab fork-demo --children 2\n  netlab fork-demo --no-flush   (the buffered line is written once per process)"
    )]
    ForkDemo(crate::demos::fork_demo::Args),

    /// Zombies: a child that exited and was not waited for, and the ways to reap it.
    #[command(
        after_help = "Lesson: netlab lesson processes\n\nExample:\n  netlab zombie-demo --reap wait-once --children 5\n  netlab zombie-demo --hold 30   (then, in another terminal: ps -el | grep Z)"
    )]
    ZombieDemo(crate::demos::zombie::Args),

    /// Orphans: a child whose parent exited first, and who adopts it.
    #[command(
        after_help = "Lesson: netlab lesson processes\n\nExample:\n  netlab orphan-demo\n  netlab orphan-demo --no-subreaper   (init, or a subreaper above netlab, adopts it)"
    )]
    OrphanDemo(crate::demos::orphan::Args),

    /// The course's UDP chatroom: a server that checks every sender and fans lines out, clients that fork to send and receive.
    #[command(
        after_help = "Lesson: netlab lesson chatroom\n\nExample:\n  netlab chatroom server --port 8888\n  netlab --quiet chatroom client --name ana --server 127.0.0.1:8888"
    )]
    Chatroom(crate::demos::chatroom::Args),

    /// Load an echo server and measure it (bench echo), or compare select, poll and epoll (bench mux).
    #[command(
        after_help = "Lesson: netlab lesson io-multiplexing\n\nExample:\n  netlab bench echo --addr 127.0.0.1:8888 --conns 50 --secs 5\n  netlab bench mux --idle 0,100,1000 --secs 2"
    )]
    Bench(crate::bench::Args),

    /// Check your own server or client: netlab runs it, probes it on loopback, reads the kernel, and reports.
    #[command(
        after_help = "Lessons: each exercise names its own (netlab check --list)\n\nExample:\n  netlab check --list\n  netlab check tcp-echo -- python3 echo_server.py {port}\n  netlab check tcp-client -- python3 client.py {host} {port}\n  netlab check http-static -- python3 http_server.py {port} {root}"
    )]
    Check(crate::check::Args),

    /// List the lessons, or read one in the terminal.
    #[command(after_help = "Example:\n  netlab lesson tcp")]
    Lesson(LessonArgs),

    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    #[command(
        after_help = "Example:\n  netlab completions bash > ~/.local/share/bash-completion/completions/netlab"
    )]
    Completions(CompletionsArgs),

    /// Print the manual page (roff) on standard output.
    #[command(after_help = "Example:\n  netlab man > netlab.1 && man ./netlab.1")]
    Man,
}

/// Which topic each subcommand belongs to, in the order `netlab --help` shows
/// them. A test checks that every subcommand appears here exactly once.
pub const TOPICS: &[(&str, &[&str])] = &[
    ("Socket basics", &["lookup", "byteorder", "sockinfo"]),
    ("TCP sockets", &["tcp-server", "tcp-client", "sticky-demo"]),
    (
        "UDP and broadcast",
        &["udp-server", "udp-client", "broadcast"],
    ),
    (
        "IO models",
        &["io-demo", "select-demo", "poll-demo", "epoll-demo", "bench"],
    ),
    ("HTTP", &["http-server"]),
    ("Unix domain sockets", &["unix-demo"]),
    ("Processes", &["fork-demo", "zombie-demo", "orphan-demo"]),
    ("Project", &["chatroom"]),
    ("Check your own programs", &["check"]),
    ("Reading and tools", &["lesson", "completions", "man"]),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SigpipeChoice {
    /// SIG_DFL: the kernel kills the process (exit status 141 in a shell).
    Default,
    /// SIG_IGN: the write fails with EPIPE and the program decides.
    Ignore,
}

#[derive(Debug, Clone, Args)]
pub struct LessonArgs {
    /// The lesson to read (`netlab lesson` lists them). A unique prefix is enough.
    pub topic: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Parse a non-negative number of seconds ("0.5", "2").
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..=86_400.0).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "`{text}` is not a number of seconds between 0 and 86400"
        )),
    }
}

/// What clap's derive cannot say: a flag that only some `--mode`s use. Each
/// demo checks its own flags; a problem is a usage error (exit 2), printed
/// the way clap prints its own, with the subcommand's usage line.
pub fn check(cli: &Cli) -> Result<(), clap::Error> {
    let (name, checked) = match &cli.command {
        Command::IoDemo(args) => ("io-demo", args.check()),
        Command::StickyDemo(args) => ("sticky-demo", args.check()),
        Command::TcpServer(args) => ("tcp-server", args.check()),
        Command::Check(args) => ("check", args.check()),
        _ => return Ok(()),
    };
    let Err(message) = checked else {
        return Ok(());
    };
    let mut cmd = command();
    // build() gives every subcommand its full name ("netlab io-demo").
    cmd.build();
    let kind = clap::error::ErrorKind::ArgumentConflict;
    Err(match cmd.find_subcommand_mut(name) {
        Some(sub) => sub.error(kind, message),
        None => cmd.error(kind, message),
    })
}

/// The command tree with the topic-grouped subcommand list `netlab --help`
/// shows. clap has no grouping of subcommands, so the list is drawn here from
/// the tree's own `about` lines and spliced into the help template.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut groups = String::new();
    for (topic, names) in TOPICS {
        groups.push_str(&format!("{topic}:\n"));
        for name in *names {
            let about = cmd
                .find_subcommand(name)
                .and_then(|sub| sub.get_about())
                .map(|about| about.to_string())
                .unwrap_or_default();
            groups.push_str(&format!("  {name:<13} {about}\n"));
        }
        groups.push('\n');
    }
    let template = format!(
        "{{before-help}}{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{groups}Options:\n{{options}}{{after-help}}"
    );
    cmd.help_template(template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_exactly_one_topic() {
        let cmd = Cli::command();
        let listed: Vec<&str> = TOPICS
            .iter()
            .flat_map(|(_, names)| names.iter().copied())
            .collect();
        for sub in cmd.get_subcommands() {
            let count = listed
                .iter()
                .filter(|name| **name == sub.get_name())
                .count();
            assert_eq!(count, 1, "{} must be listed once in TOPICS", sub.get_name());
        }
        assert_eq!(
            listed.len(),
            cmd.get_subcommands().count(),
            "TOPICS names a subcommand that does not exist"
        );
    }

    #[test]
    fn every_subcommand_help_ends_with_an_example() {
        for sub in Cli::command().get_subcommands() {
            let after = sub
                .get_after_help()
                .map(|text| text.to_string())
                .unwrap_or_default();
            assert!(
                after.contains("Example:\n  netlab "),
                "{} has no example",
                sub.get_name()
            );
        }
    }

    #[test]
    fn seconds_are_checked() {
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}

/// Every `netlab ...` command quoted in the lessons, the README and the docs
/// must parse, so a student who copies one never meets a usage error.
#[cfg(test)]
mod documented_commands {
    use super::*;
    use clap::error::ErrorKind;
    use clap::Parser;

    /// Split a command line like a shell would, for the simple lines the
    /// docs use: words, single and double quotes; stop at a pipe, `&&`, `;`,
    /// a redirection, `&` or a comment.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut quote: Option<char> = None;
        for ch in line.chars() {
            match (quote, ch) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '\'' | '"') => {
                    quote = Some(ch);
                    in_word = true;
                }
                (None, '|' | ';' | '&' | '>' | '<' | '#') if !in_word || ch != '#' => break,
                (None, c) if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                (None, c) => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            words.push(word);
        }
        words
    }

    /// The `netlab ...` commands in a Markdown text: lines of code blocks
    /// and inline code spans. A synopsis with placeholders (`[--port PORT]`,
    /// `<TOPIC>`, `...`) is a description, not a command, and is skipped.
    fn commands_in(markdown: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut in_block = false;
        for line in markdown.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if in_block {
                let command = trimmed.trim_start_matches("$ ");
                if command.starts_with("netlab ") {
                    found.push(command.to_string());
                }
                continue;
            }
            for (index, span) in line.split('`').enumerate() {
                if index % 2 == 1 && span.starts_with("netlab ") {
                    found.push(span.to_string());
                }
            }
        }
        found.retain(|command| {
            !command.contains('[') && !command.contains('<') && !command.contains("...")
        });
        found
    }

    #[test]
    fn the_splitter_handles_quotes_and_pipes() {
        assert_eq!(
            shell_words("netlab tcp-client -m 'a b' | head"),
            ["netlab", "tcp-client", "-m", "a b"]
        );
        assert_eq!(
            shell_words("netlab man > netlab.1 && man ./netlab.1"),
            ["netlab", "man"]
        );
        assert_eq!(
            shell_words("netlab lesson tcp   # read it"),
            ["netlab", "lesson", "tcp"]
        );
    }

    #[test]
    fn every_netlab_command_in_the_docs_parses() {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut files = vec![format!("{root}/README.md")];
        for folder in ["lessons", "docs"] {
            if let Ok(entries) = std::fs::read_dir(format!("{root}/{folder}")) {
                for entry in entries.flatten() {
                    files.push(entry.path().to_string_lossy().into_owned());
                }
            }
        }
        let mut checked = 0;
        for file in files.iter().filter(|file| file.ends_with(".md")) {
            let text = std::fs::read_to_string(file).unwrap_or_else(|err| panic!("{file}: {err}"));
            for command in commands_in(&text) {
                let words = shell_words(&command);
                match Cli::try_parse_from(&words) {
                    Ok(_) => {}
                    // `--help` and `--version` "fail" by printing text.
                    Err(err)
                        if matches!(
                            err.kind(),
                            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
                        ) => {}
                    Err(err) => panic!("{file}: `{command}` does not parse:\n{err}"),
                }
                checked += 1;
            }
        }
        assert!(
            checked >= 20,
            "only {checked} commands found: is the extraction broken?"
        );
    }
}
