//! The one error type a demo raises on purpose: a message and a hint.
//!
//! Most failures travel as `anyhow::Error` with context ("binding
//! 0.0.0.0:8888"). When the demo knows what the user should do next, it
//! returns a `Failure` instead, and `main` prints the hint under the message.

use std::fmt;

#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>, hint: Option<&str>) -> Failure {
        Failure {
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    /// A failure whose hint had to be built from values read at run time.
    pub fn with_hint(message: impl Into<String>, hint: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
