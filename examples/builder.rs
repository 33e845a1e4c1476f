//! A scenario built in code: the same checks and messages as a file, no
//! file to keep in sync.
//!
//! The builder writes the TOML a person would and loads it as a file;
//! `ScenarioBuilder::to_toml` shows it. This one says what stopping a
//! container does to its published port on Docker 28, builds the lab,
//! checks it on the wire, and snapshots its tables.
//!
//! `cargo run --example builder` prints the scenario, the verdicts and the
//! tables; `cargo test --example builder` (as root) checks them.

use bridgelab::scenario::build::{container, expect, ScenarioBuilder, StepBuilder};
use bridgelab::scenario::{Firewall, ProbeSpec, Proto, Verdict};

fn scenario() -> ScenarioBuilder {
    ScenarioBuilder::new("stop-releases-port")
        .about("Docker 28: a stopped container's published port closes; its rules go with it")
        .firewall(Firewall::Docker28)
        .container(container("web").publish("8080:80").listen(Proto::Tcp, 80))
        .expect(
            expect("external", "host", ProbeSpec::Tcp(8080), Verdict::Reachable)
                .source("external")
                .name("published: DNAT to web"),
        )
        .step(
            StepBuilder::stop("web").expect(
                expect("external", "host", ProbeSpec::Tcp(8080), Verdict::Refused)
                    .name("stopped: no DNAT, nothing listens on the host"),
            ),
        )
}

#[tokio::main]
async fn main() -> bridgelab::Result<()> {
    let scenario = scenario();
    println!("{}", scenario.to_toml());
    let mut running = scenario.lab()?.up().await?;
    println!("{}", running.snapshot().await?);
    let checked = running.check().await?;
    println!("{checked}");
    running.down()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator needs no root: the plan is what Docker would build.
    #[test]
    fn plan() -> bridgelab::Result<()> {
        let lab = scenario().lab()?;
        insta::assert_snapshot!(lab.plan().to_string());
        Ok(())
    }

    /// Built for real: the verdicts hold and the tables are the committed ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lab() -> bridgelab::Result<()> {
        bridgelab::check_environment()?;
        let mut running = scenario().lab()?.up().await?;
        insta::assert_snapshot!(running.snapshot().await?);
        let checked = running.check().await?;
        assert!(checked.passed(), "{checked}");
        let verdicts: Vec<_> = checked.expectations.iter().map(|e| e.verdict()).collect();
        assert_eq!(verdicts, [Some(Verdict::Reachable), Some(Verdict::Refused)]);
        running.down()
    }

    /// A mistake is the file's message, pointing into the generated text.
    #[test]
    fn mistake() {
        let err = scenario().container(container("db").network("backend")).build().unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("<built>/stop-releases-port.toml:"), "{shown}");
        assert!(shown.contains("network = \"backend\""), "the text is shown: {shown}");
    }
}
