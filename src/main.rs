//! The `bridgelab` command: a thin layer over the library, one file per verb
//! in `commands/`.

mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    if !cli.command.holds_labs() {
        // Like other Unix tools, end quietly when a reader (`| head`) goes
        // away. Verbs that hold a lab keep SIGPIPE ignored instead, so they
        // always reach their teardown, and write with `out!`.
        // SAFETY: set once at start, before any thread exists.
        unsafe {
            let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl);
        }
    }
    let filter = if cli.verbose { "bridgelab=debug" } else { "bridgelab=warn" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bridgelab: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let code = rt.block_on(commands::dispatch(cli));
    // Every lab is gone by now: it lived in the future just finished. Do
    // not wait for blocking work still running (a probe's retries after a
    // signal): exit at once.
    rt.shutdown_background();
    ExitCode::from(code)
}
