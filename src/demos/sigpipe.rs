//! Choosing what SIGPIPE does, as a narrated step every socket demo shares.
//!
//! Writing to a connection the other side has closed makes the kernel send
//! SIGPIPE to the writer, and its default action kills the process without a
//! word. Rust programs start with SIGPIPE ignored; C and Python programs start
//! with the default. netlab sets it explicitly, so the demo shows the choice:
//! a server ignores it (one vanished client must not kill it), and
//! `tcp-client --sigpipe default` shows the death.

use anyhow::Result;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::cli::SigpipeChoice;
use crate::narrate::Narrator;

/// sigaction(SIGPIPE, SIG_IGN or SIG_DFL), narrated.
pub fn set(nar: &Narrator, choice: SigpipeChoice) -> Result<()> {
    let (handler, name) = match choice {
        SigpipeChoice::Ignore => (SigHandler::SigIgn, "SIG_IGN"),
        SigpipeChoice::Default => (SigHandler::SigDfl, "SIG_DFL"),
    };
    let step = nar.call("sigaction", format!("SIGPIPE, {name}"));
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN and SIG_DFL install no handler code, so nothing can
    // run in signal context.
    step.check(
        unsafe { signal::sigaction(Signal::SIGPIPE, &action) },
        |_| "0".into(),
    )?;
    match choice {
        SigpipeChoice::Ignore => nar.note("SIGPIPE is ignored: writing to a connection the other side has closed fails with EPIPE, an error the program handles, instead of killing it."),
        SigpipeChoice::Default => nar.note("SIGPIPE has its default action: writing to a connection the other side has closed kills this process on the spot, as it would a C program."),
    }
    Ok(())
}
