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
//! scenario ──► plan ──► apply ──► probe ──► report
//! parse,       pure:    namespaces, pnet      verdicts for
//! validate,    IPAM,    rtnetlink,  probes,   people, JSON,
//! keep spans   names,   one restore responders JUnit
//!              MACs,    per table,
//!              rules,   read-back,
//!              routes   teardown
//! ```
//!
//! * [`scenario`] parses a file and validates every reference in it. Values
//!   keep their position so that a Docker error found later still points at a
//!   line and column. [`ScenarioBuilder`] writes a scenario in code.
//! * [`plan`] is the simulator. It runs Docker's daemon logic (bridge address
//!   selection, the IP and port allocators, MAC derivation, the iptables
//!   calls of each Docker version) with no I/O and no privileges, and
//!   produces the complete description of the lab: every namespace with its
//!   links, addresses, routes and sysctls, and the host's rules. `bridgelab
//!   plan` prints it; most of bridgelab's logic is unit-tested here.
//! * [`apply`] turns a plan into namespaces and links through rtnetlink, using
//!   sockets opened inside each namespace, loads the rules with one
//!   `iptables-restore` per table, and takes everything down again on
//!   every path: success, error, panic, signal. [`apply::verify`] reads the
//!   built lab back through netlink and compares it with the plan.
//! * [`probe`] sends each expectation's packets from inside the sender's
//!   namespace and turns what comes back into a [`Verdict`](scenario::Verdict).
//! * [`report`] renders verdicts for people, as JSON and as JUnit XML.
//! * [`registry`] records every lab under `/run/bridgelab` so that
//!   `bridgelab cleanup` can remove what a killed run left behind without
//!   touching a live one.
//!
//! ## Why it is shaped this way
//!
//! * **The plan is pure.** One description of the lab is the simulator's
//!   answer (`bridgelab plan`, no root needed), the recipe `apply` follows,
//!   and what the built lab is compared with. Docker's decisions are made in
//!   one place, in plain functions tested without root; the privileged code
//!   only carries them out.
//! * **The kernel has the last word.** After building (and after every
//!   `[[step]]`) the lab is read back through netlink and `iptables-save`
//!   and compared with the plan, so a kernel that disagrees (a missing
//!   module, a rule it rewrites) is reported as such, not discovered later
//!   as a puzzling verdict.
//! * **Rules go in atomically.** Docker runs iptables once per rule; the lab
//!   reaches the same rule set with one `iptables-restore` per table, so no
//!   half-loaded rule set is ever probed, and building stays fast.
//! * **Probes are packets, not sockets.** They are crafted with pnet and
//!   sent from inside the sender's namespace, so a verdict says what came
//!   back on the wire (a SYN-ACK, a RST, an ICMP unreachable, silence).
//!   Responders in each node record whom they saw, so NAT (`source`) is
//!   checked too.
//! * **Lower layers never import higher ones.** The probes work on any
//!   [`probe::Testbed`]: a lab, or the real dockerd host of `bridgelab
//!   diff`.
//!
//! ## Use it from Rust tests
//!
//! Add bridgelab as a dev-dependency and test your own scenario files
//! (`examples/scenario_files.rs` runs every `scenarios/*.toml` through
//! this with rstest's `#[files]`):
//!
//! ```no_run
//! # async fn demo() -> bridgelab::Result<()> {
//! bridgelab::check_environment()?; // root; fails, never skips, without it
//! let mut running = bridgelab::Lab::load("scenarios/default.toml")?.up().await?;
//! let tables = running.snapshot().await?; // normalized rules and routes
//! let checked = running.check().await?; // every [[expect]], steps included
//! assert!(checked.passed(), "{checked}");
//! println!("web is at {}", running.plan().container("web").unwrap().ip().unwrap());
//! running.down()?;
//! # let _ = tables; Ok(()) }
//! ```
//!
//! Snapshot `tables` with `insta::assert_snapshot!`. A scenario built in code
//! goes through the same checks as a file ([`scenario::build`],
//! `examples/builder.rs`):
//!
//! ```
//! use bridgelab::scenario::build::{container, expect};
//! use bridgelab::scenario::{ProbeSpec, Proto, Verdict};
//!
//! let lab = bridgelab::ScenarioBuilder::new("published")
//!     .container(container("web").publish("8080:80").listen(Proto::Tcp, 80))
//!     .expect(expect("external", "host", ProbeSpec::Tcp(8080), Verdict::Reachable))
//!     .lab()?; // planned, no root needed; `.up().await?` builds it
//! assert_eq!(lab.plan().port_mappings.len(), 1);
//! # Ok::<(), bridgelab::Error>(())
//! ```
//!
//! Every error is a [`bridgelab::Error`](Error), whose `Display` (and
//! `Debug`) is written for people.
//!
//! The scenario format is described in `docs/scenario-format.md`, and how
//! to write one in `docs/writing-scenarios.md`.

pub mod apply;
pub mod capture;
pub mod cleanup;
pub mod diff;
pub mod error;
pub mod import;
pub mod picture;
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
///
/// ```
/// let lab = bridgelab::Lab::load(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/icc-off.toml"))?;
/// // The simulator's answer, without root: Docker 1.6.2 gave the first
/// // container the first address of 172.17.0.0/16 (its bridge is 172.17.42.1).
/// assert_eq!(lab.plan().container("web").unwrap().ip().unwrap().to_string(), "172.17.0.1");
/// # Ok::<(), bridgelab::Error>(())
/// ```
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

    /// Builds the lab, as root: namespaces, links, rules, responders'
    /// proxies, then reads it back and waits for carrier. On error, whatever
    /// was built is removed before this returns; the [`RunningLab`] removes
    /// it when dropped, or with [`RunningLab::down`].
    ///
    /// ```no_run
    /// # async fn demo() -> bridgelab::Result<()> {
    /// let running = bridgelab::Lab::load("scenarios/icc-off.toml")?.up().await?;
    /// assert!(running.verify().await?.is_empty(), "the kernel agrees with the plan");
    /// running.down()
    /// # }
    /// ```
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
        Error::Scenario(d) => Error::Built(scenario::build::BuildError(d)),
        other => other,
    }
}
