//! # bridgelab
//!
//! A network-namespace test harness and simulator for Docker bridge
//! networking.
//!
//! A scenario file describes a Docker host. bridgelab computes what Docker
//! would build for it, builds that for real in throwaway network namespaces,
//! checks it, and removes it again. Data flows one way through the modules:
//!
//! ```text
//! scenario ──► plan ──► apply ──► (probe) ──► report
//! parse,       pure:    namespaces,           verdicts,
//! validate,    IPAM,    rtnetlink,            snapshots
//! keep spans   names,   sysctls,
//!              MACs,    teardown
//!              routes
//! ```
//!
//! * [`scenario`] parses a file and validates every reference in it. Values
//!   keep their position so that a Docker error found later still points at a
//!   line and column.
//! * [`plan`] is the simulator. It runs Docker's daemon logic (bridge address
//!   selection, the IP allocator, MAC derivation) with no I/O and no
//!   privileges, and produces the complete description of the lab: every
//!   namespace with its links, addresses, routes and sysctls. `bridgelab plan`
//!   prints it; most of bridgelab's logic is unit-tested here.
//! * [`apply`] turns a plan into namespaces and links through rtnetlink, using
//!   sockets opened inside each namespace, and takes everything down again on
//!   every path: success, error, panic, signal. [`apply::verify`] reads the
//!   built lab back through netlink and compares it with the plan.
//! * [`registry`] records every lab under `/run/bridgelab` so that
//!   `bridgelab cleanup` can remove what a killed run left behind without
//!   touching a live one.
//!
//! The entry point for programs and tests is [`Lab`]:
//!
//! ```no_run
//! # async fn demo() -> bridgelab::Result<()> {
//! let lab = bridgelab::Lab::load("scenarios/default.toml")?;
//! let running = lab.up().await?;
//! println!("web is at {}", running.plan().container("web").unwrap().ip().unwrap());
//! running.down()?;
//! # Ok(()) }
//! ```

pub mod apply;
pub mod capture;
pub mod cleanup;
pub mod diff;
pub mod error;
pub mod import;
pub mod plan;
pub mod probe;
pub mod registry;
pub mod report;
pub mod scenario;
mod stable_hash;

pub use apply::{check_environment, RunningLab};
pub use error::{Error, Result};
pub use plan::Plan;
pub use probe::{Checked, ExpectOutcome};
pub use scenario::build::ScenarioBuilder;
pub use scenario::Scenario;

use std::path::Path;

/// A scenario with its plan: everything needed to build a lab.
#[derive(Debug, Clone)]
pub struct Lab {
    scenario: Scenario,
    plan: Plan,
}

impl Lab {
    /// Loads, validates and plans a scenario file. Needs no privileges.
    pub fn load(path: impl AsRef<Path>) -> Result<Lab> {
        let scenario = Scenario::load(path)?;
        Lab::from_scenario(scenario)
    }

    /// Loads a scenario file and plans each of its runs: one, or one per
    /// version of a file with top-level `versions` (see
    /// [`Scenario::variants`]).
    pub fn load_all(path: impl AsRef<Path>) -> Result<Vec<Lab>> {
        Scenario::load(path)?.variants().into_iter().map(Lab::from_scenario).collect()
    }

    /// Plans an already loaded scenario. A file with `versions` is one lab
    /// per version: plan each of [`Scenario::variants`].
    pub fn from_scenario(scenario: Scenario) -> Result<Lab> {
        if let Some(vs) = &scenario.spec.versions {
            let names: Vec<String> = vs.get_ref().iter().map(|v| v.get_ref().to_string()).collect();
            return Err(scenario
                .error(
                    vs.span(),
                    format!(
                        "this scenario runs once per version ({}): each run is its own lab (bridgelab run and check take them all)",
                        names.join(", ")
                    ),
                )
                .into());
        }
        let plan = plan::plan(&scenario)?;
        Ok(Lab { scenario, plan })
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Builds the lab. On error, whatever was built is removed before this returns.
    pub async fn up(self) -> Result<RunningLab> {
        apply::up(self.scenario, self.plan, apply::UpOptions::default()).await
    }

    /// Builds the lab with options (a kept lab, a fixed run id).
    pub async fn up_with(self, options: apply::UpOptions) -> Result<RunningLab> {
        apply::up(self.scenario, self.plan, options).await
    }
}

impl ScenarioBuilder {
    /// Builds and plans the scenario: [`build`](ScenarioBuilder::build),
    /// then [`Lab::from_scenario`]. A Docker error found while planning is
    /// located in the generated text too ([`Error::Built`]).
    pub fn lab(&self) -> Result<Lab> {
        Lab::from_scenario(self.build()?).map_err(built)
    }

    /// One lab per run: one, or one per version of a scenario with
    /// [`versions`](ScenarioBuilder::versions) (as [`Lab::load_all`]).
    pub fn labs(&self) -> Result<Vec<Lab>> {
        self.build()?.variants().into_iter().map(|s| Lab::from_scenario(s).map_err(built)).collect()
    }
}

/// A mistake in a built scenario shows the text it is in.
fn built(e: Error) -> Error {
    match e {
        Error::Scenario(d) => Error::Built(d),
        other => other,
    }
}
