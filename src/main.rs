//! netlab: learn Linux network and process programming by watching the real
//! system calls, one by one.
//!
//! `main` is thin on purpose: parse the command line, install the stop
//! handlers, run one subcommand, and turn its result into one message and
//! one exit code. Everything a demo prints goes through the narrator.

mod bench;
mod check;
mod cli;
mod demos;
mod error;
mod kernel;
mod lesson;
mod narrate;
mod stop;
mod sys;

use std::io::Write;
use std::process::ExitCode;

use clap::FromArgMatches;

use cli::{Cli, Command};
use error::Failure;
use narrate::{Narrator, Settings};
use stop::StopReason;

fn main() -> ExitCode {
    // The guard `netlab check` starts beside the student's program.
    if std::env::var_os(check::watchdog::ENV).is_some() {
        return ExitCode::from(check::watchdog::serve());
    }
    // Usage errors exit with 2 and clap's own message.
    let matches = cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    if let Err(err) = cli::check(&cli) {
        err.exit();
    }
    narrate::apply_color(cli.global.color);
    let code = match cli.command {
        Command::Lesson(args) => finish_tool(lesson::run(args.topic.as_deref())),
        Command::Completions(args) => {
            let mut cmd = cli::command();
            let mut out = std::io::stdout();
            clap_complete::generate(args.shell, &mut cmd, "netlab", &mut out);
            finish_tool(out.flush().map_err(anyhow::Error::from))
        }
        Command::Man => {
            let mut out = std::io::stdout();
            let rendered = clap_mangen::Man::new(cli::command()).render(&mut out);
            finish_tool(
                rendered
                    .and_then(|()| out.flush())
                    .map_err(anyhow::Error::from),
            )
        }
        command => run_demo(&cli.global, command),
    };
    ExitCode::from(code)
}

/// Run a demo under the narrator and decide the exit code.
fn run_demo(global: &cli::GlobalArgs, command: Command) -> u8 {
    if let Err(errno) = stop::install() {
        eprintln!("netlab: error: cannot install the signal handlers: {errno}");
        return 1;
    }
    let nar = Narrator::new(Settings::from(global));
    let result = match &command {
        Command::TcpServer(args) => demos::tcp_server::run(&nar, args),
        Command::TcpClient(args) => demos::tcp_client::run(&nar, args),
        Command::UdpServer(args) => demos::udp_server::run(&nar, args),
        Command::UdpClient(args) => demos::udp_client::run(&nar, args),
        Command::Broadcast(args) => demos::broadcast::run(&nar, args),
        Command::Lookup(args) => demos::lookup::run(&nar, args),
        Command::Byteorder(args) => demos::byteorder::run(&nar, args),
        Command::Sockinfo(args) => demos::sockinfo::run(&nar, args),
        Command::IoDemo(args) => demos::io_demo::run(&nar, args),
        Command::StickyDemo(args) => demos::sticky::run(&nar, args),
        Command::UnixDemo(args) => demos::unix::run(&nar, args),
        Command::SelectDemo(args) => demos::mux::select::run(&nar, args),
        Command::PollDemo(args) => demos::mux::poll::run(&nar, args),
        Command::EpollDemo(args) => demos::mux::epoll::run(&nar, args),
        Command::HttpServer(args) => demos::http::run(&nar, args),
        Command::ForkDemo(args) => demos::fork_demo::run(&nar, args),
        Command::ZombieDemo(args) => demos::zombie::run(&nar, args),
        Command::OrphanDemo(args) => demos::orphan::run(&nar, args),
        Command::Chatroom(args) => demos::chatroom::run(&nar, args),
        Command::Bench(args) => bench::run(&nar, args),
        Command::Check(args) => {
            if global.step {
                nar.warning(
                    "--step has no effect on check: netlab's own calls are not the lesson here, so the check runs without pauses",
                    None,
                );
            }
            check::run(&nar, args)
        }
        Command::Lesson(_) | Command::Completions(_) | Command::Man => Ok(()),
    };
    let stopped = stop::requested();
    match (result, stopped) {
        // Our reader went away: like `yes | head`, end without a word. A
        // check that could not finish its report has not passed, though.
        (_, Some(StopReason::OutputClosed)) => u8::from(matches!(command, Command::Check(_))),
        (Ok(()), Some(reason)) => {
            let code = reason.exit_code();
            nar.end(reason.describe(), code);
            code as u8
        }
        (Ok(()), None) => {
            nar.end("done", 0);
            0
        }
        // The check's report already said what failed.
        (Err(err), _) if err.downcast_ref::<error::AlreadyReported>().is_some() => {
            nar.end("some probes did not pass", 1);
            1
        }
        (Err(err), _) => {
            report(Some(&nar), &err);
            nar.end("error", 1);
            1
        }
    }
}

/// Exit code for the commands that only print (lesson, completions, man).
fn finish_tool(result: anyhow::Result<()>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(err) if is_broken_pipe(&err) => 0,
        Err(err) => {
            report(None, &err);
            1
        }
    }
}

/// Print the one error message (and hint) on stderr; with --json also as
/// an event on stdout.
fn report(nar: Option<&Narrator>, err: &anyhow::Error) {
    let (message, hint) = match err.downcast_ref::<Failure>() {
        Some(failure) => (failure.message.clone(), failure.hint.clone()),
        None => (format!("{err:#}"), None),
    };
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "netlab: error: {message}");
    if let Some(hint) = &hint {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    if let Some(nar) = nar {
        nar.error(&message, hint.as_deref());
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
