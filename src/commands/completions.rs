//! `bridgelab completions SHELL`: the shell's completion script, generated
//! by clap_complete from the same clap definition the binary parses with.

use clap::CommandFactory;

pub fn run(shell: clap_complete::Shell) -> u8 {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::Cli::command(), "bridgelab", &mut out);
    use std::io::Write as _;
    // A closed stdout (`| head`) is not an error worth a message.
    let _ = std::io::stdout().write_all(&out);
    0
}
