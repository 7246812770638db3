//! The narration events: one type for every line netlab can print.
//!
//! The same `Event` is rendered as prose for people (`human.rs`) or written
//! as one JSON object per line with `--json`. The JSON form is a stable,
//! documented schema (docs/json-events.md): fields are only ever added, never
//! renamed or removed, and `v` changes if that promise is ever broken.

use serde::Serialize;
use serde_json::Value;

/// The schema version written in every JSON event.
pub const SCHEMA_VERSION: u32 = 1;

/// What happened. Serialised with `"event": "<kind>"` next to the fields.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Kind {
    /// A demo begins: its name, the lesson that explains it, one line on what it shows.
    Start {
        demo: String,
        lesson: String,
        about: String,
    },
    /// A system call is about to be made. `blocking` calls may wait; `wait`
    /// says what for. Printed before the call, so the class sees where the
    /// program waits.
    Call {
        call: String,
        args: String,
        blocking: bool,
        wait: Option<String>,
    },
    /// The call came back: `ok` with a `result` (and the raw `value`, e.g. a
    /// fd or a byte count), or an `errno` name such as "ECONNREFUSED" with
    /// its `error` text.
    Return {
        call: String,
        ok: bool,
        result: String,
        value: Option<i64>,
        errno: Option<String>,
        error: Option<String>,
    },
    /// A fact read from the kernel just now. `value` is null when the fact
    /// could not be read (`available` false), and `text` then says why.
    Kernel {
        subject: String,
        fact: String,
        value: Value,
        source: String,
        available: bool,
        text: String,
    },
    /// An explanation: a whole sentence, never assembled from fragments.
    Note { text: String },
    /// A milestone with data a program may want: `key` names it
    /// ("listening", "connected", ...), `value` carries it.
    Info {
        key: String,
        value: Value,
        text: String,
    },
    /// Something went wrong but the demo goes on.
    Warning { text: String, hint: Option<String> },
    /// Under load: steps that were not narrated one by one, counted.
    Summary {
        seconds: f64,
        hidden_steps: u64,
        calls: Value,
        errors: Value,
        counters: Value,
    },
    /// The run failed: the one error message, as main prints it.
    Error {
        message: String,
        hint: Option<String>,
    },
    /// The demo finished: why, and the exit code the process will have.
    End { reason: String, exit_code: i32 },
    /// `netlab check`: one probe's result. `status` is "pass", "warn",
    /// "fail" or "skip"; `hint` (for a failure or warning) says what to
    /// look at; `facts` are the kernel facts read during the probe, each
    /// shaped like a `kernel` event's fields.
    Probe {
        exercise: String,
        probe: String,
        checks: String,
        status: String,
        expected: String,
        happened: String,
        hint: Option<String>,
        seconds: f64,
        facts: Vec<Value>,
    },
    /// `netlab check`: the end of the program's output (stdout and stderr
    /// in the order written); `earlier_lines` were left out.
    Output {
        program_pid: i32,
        lines: Vec<String>,
        earlier_lines: usize,
    },
    /// `netlab check`: the counts, and the lesson to read. `ok` is true
    /// only when no probe failed or was skipped.
    Verdict {
        exercise: String,
        lesson: String,
        passed: usize,
        warned: usize,
        failed: usize,
        skipped: usize,
        failed_probes: Vec<String>,
        ok: bool,
    },
}

/// One event with the fields every event carries.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Schema version.
    pub v: u32,
    /// Seconds since the program started.
    pub t: f64,
    /// The process that printed it (a forked child has its own).
    pub pid: u32,
    /// The system-call step this event belongs to, if any.
    pub step: Option<u32>,
    #[serde(flatten)]
    pub kind: Kind,
}

impl Event {
    /// The event as one line of JSON (without the newline).
    pub fn to_json_line(&self) -> String {
        // Serialising plain strings, numbers and maps cannot fail; fall back
        // to a minimal object rather than panic if it ever did.
        serde_json::to_string(self).unwrap_or_else(|err| {
            format!(r#"{{"v":{SCHEMA_VERSION},"event":"error","message":"could not encode an event: {err}"}}"#)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_events_carry_the_common_fields_and_the_kind() {
        let event = Event {
            v: SCHEMA_VERSION,
            t: 0.25,
            pid: 42,
            step: Some(5),
            kind: Kind::Return {
                call: "accept".into(),
                ok: true,
                result: "fd 4, peer 127.0.0.1:5000".into(),
                value: Some(4),
                errno: None,
                error: None,
            },
        };
        let parsed: Value = serde_json::from_str(&event.to_json_line()).expect("valid JSON");
        assert_eq!(parsed["event"], "return");
        assert_eq!(parsed["v"], 1);
        assert_eq!(parsed["pid"], 42);
        assert_eq!(parsed["step"], 5);
        assert_eq!(parsed["call"], "accept");
        assert_eq!(parsed["value"], 4);
        assert_eq!(parsed["errno"], Value::Null);
    }

    #[test]
    fn kernel_facts_that_could_not_be_read_say_so() {
        let event = Event {
            v: SCHEMA_VERSION,
            t: 0.0,
            pid: 1,
            step: None,
            kind: Kind::Kernel {
                subject: "fd 4".into(),
                fact: "tcp_state".into(),
                value: Value::Null,
                source: "tcp_info".into(),
                available: false,
                text: "the state of fd 4 could not be read: EBADF".into(),
            },
        };
        let parsed: Value = serde_json::from_str(&event.to_json_line()).expect("valid JSON");
        assert_eq!(parsed["event"], "kernel");
        assert_eq!(parsed["available"], false);
        assert_eq!(parsed["value"], Value::Null);
        assert_eq!(parsed["step"], Value::Null);
    }
}
