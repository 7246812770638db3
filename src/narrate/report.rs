//! `netlab check`'s report lines: a probe's result, the program's output,
//! the verdict. Like every other line, they go through the narrator, so
//! `--json` turns them into events (docs/json-events.md).

use serde_json::Value;

use super::{Fact, Kind, Narrator};

/// One probe's result, as `netlab check` reports it.
pub struct ProbeReport {
    pub exercise: &'static str,
    pub probe: &'static str,
    pub checks: &'static str,
    /// "pass", "warn", "fail" or "skip".
    pub status: &'static str,
    pub expected: String,
    pub happened: String,
    pub hint: Option<&'static str>,
    pub seconds: f64,
    pub facts: Vec<Fact>,
}

/// The end of the student's program's output.
pub struct ProgramOutput {
    pub pid: i32,
    pub lines: Vec<String>,
    pub earlier_lines: usize,
}

/// The counts at the end of a check.
pub struct Verdict {
    pub exercise: &'static str,
    pub lesson: &'static str,
    pub passed: usize,
    pub warned: usize,
    pub failed: usize,
    pub skipped: usize,
    pub failed_probes: Vec<&'static str>,
}

impl Narrator {
    /// A probe's result. With `--quiet` only the probes that did not
    /// pass are shown: the report's errors.
    pub fn probe(&self, report: ProbeReport) {
        if self.settings.quiet && report.status == "pass" {
            return;
        }
        let facts: Vec<Value> = report.facts.iter().map(Fact::to_json).collect();
        self.emit(
            None,
            Kind::Probe {
                exercise: report.exercise.into(),
                probe: report.probe.into(),
                checks: report.checks.into(),
                status: report.status.into(),
                expected: report.expected,
                happened: report.happened,
                hint: report.hint.map(str::to_string),
                seconds: report.seconds,
                facts,
            },
        );
    }

    /// The program's last lines of output.
    pub fn program_output(&self, output: ProgramOutput) {
        self.emit(
            None,
            Kind::Output {
                program_pid: output.pid,
                lines: output.lines,
                earlier_lines: output.earlier_lines,
            },
        );
    }

    /// The verdict: how many probes passed, and the lesson to read.
    pub fn verdict(&self, verdict: &Verdict) {
        self.emit(
            None,
            Kind::Verdict {
                exercise: verdict.exercise.into(),
                lesson: verdict.lesson.into(),
                passed: verdict.passed,
                warned: verdict.warned,
                failed: verdict.failed,
                skipped: verdict.skipped,
                failed_probes: verdict
                    .failed_probes
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
                ok: verdict.failed == 0 && verdict.skipped == 0,
            },
        );
    }
}
