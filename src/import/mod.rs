//! `bridgelab import` and `bridgelab audit`: from a running Docker host to
//! a scenario file, and from that scenario back to the host's rules.
//!
//! ```text
//! docker inspect, network inspect, info ──► HostState ──► scenario text ──► check, plan
//!   (the CLI through --host, or saved JSON)          (writer: comments          │
//!                                                      where it approximates)   ▼
//! iptables-save (live or saved) ─────────────────────────────────────► audit: drift
//! ```
//!
//! * [`HostState`] is what Docker says about itself: containers, networks,
//!   `docker info`, and the daemon's flags where the user can give them
//!   (`daemon.json`, the dockerd command line): `docker info` does not say
//!   `--iptables`, `--ip-forward` or `--userland-proxy`.
//! * [`write`] turns it into a scenario ([`Imported`]), checked and planned
//!   by bridgelab itself before it is handed out.
//! * [`audit`] compares a host's rules with the plan of that scenario.
//!
//! Reading the host is read-only: `docker ps`, `inspect`, `network ls`,
//! `network inspect` and `info`, through the docker CLI (`docker --host`),
//! and `iptables-save`. The Docker API is not spoken here directly: the
//! crates that do (bollard: hyper, tower, http and ~60 more crates) would
//! more than double bridgelab's dependencies for five GET requests, and
//! a host with Docker has its CLI.

pub mod audit;
mod inspect;
mod writer;

pub use inspect::{Container, HostState, Info, Network};
pub use writer::{write, Imported, Options};

/// What can go wrong reading a host or writing its scenario.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A saved file, or the CLI's output, is not what Docker prints.
    #[error("{what}: {why}")]
    BadInput { what: String, why: String },
    /// The docker CLI could not be run or the daemon did not answer.
    #[error("{0}")]
    Docker(String),
    /// The scenario written does not pass `bridgelab check`: a bug of the
    /// writer, shown with the text.
    #[error("the imported scenario does not pass check:\n{diagnostics}\n--- scenario ---\n{text}")]
    NotValid { diagnostics: String, text: String },
    /// Rules could not be read (a missing tool, no permission).
    #[error("{0}")]
    Rules(String),
}

impl ImportError {
    /// The CLI's exit code: 2 bad input, 3 environment.
    pub fn exit_code(&self) -> u8 {
        match self {
            ImportError::BadInput { .. } => 2,
            _ => 3,
        }
    }
}
