//! CLI verbs. Each returns the process exit code:
//! 0 pass, 1 an expectation failed, 2 bad input, 3 environment problem.

mod check;
mod cleanup;
mod down;
mod ls;
mod plan;
mod run;
mod up;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// bridgelab builds a Docker host's bridge networking for real, in throwaway
/// network namespaces, from a scenario file; checks it; and removes it again.
///
/// Exit codes: 0 pass, 1 an expectation failed, 2 bad scenario or arguments,
/// 3 environment problem (not root, missing kernel feature or tool).
#[derive(Debug, Parser)]
#[command(name = "bridgelab", version, about, long_about)]
pub struct Cli {
    /// Log what bridgelab does (or set RUST_LOG).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, validate and plan scenario files; needs no privileges.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print what a scenario would build (addresses, links, routes); needs no privileges.
    Plan {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Build each scenario, check it against its plan, probe its [[expect]]s,
    /// report, and tear it down (root).
    Run {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// After building each lab, print `ready RUN_ID` and wait for Enter
        /// (or end of input, or Ctrl-C) before probing and tearing it down.
        #[arg(long)]
        hold: bool,
        /// Also write a JUnit XML report (one testcase per expectation).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also probe every pair of nodes (host, external, containers) and
        /// print the truth table, e.g. `--matrix icmp,tcp:80`.
        #[arg(long, value_name = "PROBES", value_delimiter = ',', value_parser = parse_probe)]
        matrix: Vec<bridgelab::scenario::ProbeSpec>,
        /// Capture the host's bridge and uplink for the run into
        /// DIR/<scenario>-<interface>.pcap.
        #[arg(long, value_name = "DIR")]
        pcap: Option<PathBuf>,
    },
    /// Build a scenario and keep it for poking with `ip netns exec` (root).
    ///
    /// Builds the lab of FILE, compares it with its plan, and leaves it in
    /// place when bridgelab exits. It prints the run id and an
    /// `ip netns exec` line for each of the lab's namespaces. Expectations
    /// and steps are not probed, and a kept lab has neither userland proxies
    /// for published ports nor responders for `listen`: both live in
    /// bridgelab's own process.
    ///
    /// Remove the lab with `bridgelab down RUN_ID`. `bridgelab cleanup` leaves
    /// kept labs alone unless it is given --all.
    ///
    /// Exit codes: 0 the lab equals its plan, 1 it differs (and is kept, for
    /// a look), 2 bad scenario, 3 environment problem.
    Up {
        /// The scenario file (TOML; see docs/scenario-format.md).
        file: PathBuf,
    },
    /// Remove a lab kept by `up` (see `ls` for run ids).
    Down {
        /// The run id that `up` printed: 1 to 16 letters and digits.
        run_id: String,
    },
    /// List labs on this machine and whether their owner is alive.
    Ls {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Remove what dead runs left behind; never touches a live run.
    Cleanup {
        /// Also remove labs kept by `bridgelab up`.
        #[arg(long)]
        all: bool,
    },
}

impl Command {
    /// Whether the verb builds a lab, which must be torn down whatever
    /// happens to its output.
    pub fn holds_labs(&self) -> bool {
        matches!(self, Command::Run { .. } | Command::Up { .. })
    }
}

/// `println!` that ignores a closed stdout, for verbs holding a lab.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Check { files } => check::run(&files),
        Command::Plan { file, format } => plan::run(&file, format),
        Command::Run { files, format, hold, junit, matrix, pcap } => {
            interruptible(run::run(&files, run::RunArgs { format, hold, junit, matrix, pcap })).await
        }
        Command::Up { file } => interruptible(up::run(&file)).await,
        Command::Down { run_id } => down::run(&run_id),
        Command::Ls { format } => ls::run(format),
        Command::Cleanup { all } => cleanup::run(all),
    }
}

/// Runs `fut` until it ends or SIGINT/SIGTERM arrives. On a signal the
/// future is dropped, and with it every lab it holds: their `Drop` removes
/// them before the process exits.
async fn interruptible(fut: impl std::future::Future<Output = u8>) -> u8 {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        eprintln!("bridgelab: cannot install signal handlers");
        return 3;
    };
    tokio::select! {
        code = fut => code,
        _ = int.recv() => { eprintln!("bridgelab: interrupted; lab removed"); 130 }
        _ = term.recv() => { eprintln!("bridgelab: terminated; lab removed"); 143 }
    }
}

fn parse_probe(s: &str) -> Result<bridgelab::scenario::ProbeSpec, String> {
    s.parse()
}

/// Prints an error for a person and returns its exit code.
pub fn fail(e: &bridgelab::Error) -> u8 {
    eprintln!("{}", render_error(e));
    e.exit_code() as u8
}

fn render_error(e: &bridgelab::Error) -> String {
    match e {
        // Scenario mistakes are already `path:line:col: message` lines.
        bridgelab::Error::Scenario(d) => d.to_string(),
        other => format!("bridgelab: {other}"),
    }
}

pub fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => crate::out!("{s}"),
        Err(e) => eprintln!("bridgelab: cannot render JSON: {e}"),
    }
}
