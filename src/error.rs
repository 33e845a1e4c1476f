//! The library's error type and the exit codes the CLI maps it to.

use crate::scenario::Diagnostics;

/// Everything that can go wrong between a scenario file and a verdict.
///
/// Its `Display` is written for people: the CLI prints it as it is, and so
/// does its `Debug`, so a test returning `bridgelab::Result<()>` fails with
/// the same words as the CLI.
#[derive(thiserror::Error)]
pub enum Error {
    /// The scenario is wrong: `path:line:col: message` lines.
    #[error("{0}")]
    Scenario(#[from] Diagnostics),
    /// A scenario built in code ([`ScenarioBuilder`](crate::scenario::build::ScenarioBuilder))
    /// is wrong: the same lines, located in the TOML the builder wrote,
    /// followed by that text with the lines in question marked.
    #[error("{0}")]
    Built(#[from] crate::scenario::build::BuildError),
    /// This machine cannot run a lab (not root, a missing tool or kernel feature).
    #[error("{0}")]
    Environment(String),
    /// Building the lab failed half-way; what was built has been removed.
    #[error("{context}: {source}")]
    Apply {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Removing a lab failed; every failure is listed, not just the first.
    #[error("teardown failed:\n  {}", .0.join("\n  "))]
    Teardown(Vec<String>),
    /// A `run id` that names no lab.
    #[error("no such run: {0} (see `bridgelab ls`)")]
    NoSuchRun(String),
    /// A tool bridgelab ran was ended by a signal meant for bridgelab (a
    /// Ctrl-C, a `kill` of the job): an interruption, not a broken host.
    #[error("interrupted: {what} was killed by {signal}")]
    Interrupted { what: String, signal: nix::sys::signal::Signal },
    /// A node name that a lab does not have.
    #[error("run {run_id} has no node {node:?}; its nodes: {known}")]
    UnknownNode { run_id: String, node: String, known: String },
    /// A run id that cannot be one: it must be 1 to 16 letters and digits.
    #[error("invalid run id {0}: a run id is 1 to 16 ASCII letters and digits (see `bridgelab ls`)")]
    InvalidRunId(String),
}

impl Error {
    /// The CLI's exit code: 2 bad input, 3 environment or apply problems,
    /// 128 + the signal for an interruption (as a shell reports it).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Scenario(_)
            | Error::Built(_)
            | Error::NoSuchRun(_)
            | Error::InvalidRunId(_)
            | Error::UnknownNode { .. } => 2,
            Error::Interrupted { signal, .. } => 128 + *signal as i32,
            _ => 3,
        }
    }

    pub(crate) fn apply(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Apply { context: context.into(), source: Box::new(source) }
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
