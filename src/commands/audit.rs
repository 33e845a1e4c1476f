//! `bridgelab audit`: a Docker host's rules against the plan of its
//! imported scenario.

use std::fs::File;
use std::path::{Path, PathBuf};

use bridgelab::import::audit::{self, HostRules};
use bridgelab::import::ImportError;

use super::import::{fail, HostArgs};

/// Saved rules for `audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    /// `iptables-save` output to audit instead of this namespace's rules
    /// (default with --from: DIR/iptables-save.txt when it is there).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// `ip6tables-save` output (with --rules; default with --from:
    /// DIR/ip6tables-save.txt when it is there).
    #[arg(long, value_name = "FILE")]
    pub rules6: Option<PathBuf>,
    /// `nft -j list ruleset` output, for a Docker 29 host with the nftables
    /// backend (default with --from: DIR/nft.json when it is there).
    #[arg(long, value_name = "FILE")]
    pub nft: Option<PathBuf>,
}

fn read(f: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(f).map_err(|e| ImportError::BadInput { what: f.display().to_string(), why: e.to_string() })
}

fn rules(host: &HostArgs, r: &RuleArgs, nft_wanted: bool) -> Result<HostRules, ImportError> {
    let saved = |given: &Option<PathBuf>, name: &str| {
        given.clone().or_else(|| host.from.as_ref().map(|d| d.join(name)).filter(|p| p.is_file()))
    };
    let (v4, v6, nft) =
        (saved(&r.rules, "iptables-save.txt"), saved(&r.rules6, "ip6tables-save.txt"), saved(&r.nft, "nft.json"));
    match v4 {
        Some(f) => Ok(HostRules {
            v4: read(&f)?,
            v6: v6.as_deref().map(read).transpose()?,
            nft_json: nft.as_deref().map(read).transpose()?,
        }),
        None => {
            // This process's own namespace: the host's, when run on it.
            let ns = File::open("/proc/self/ns/net")
                .map_err(|e| ImportError::Rules(format!("cannot open this network namespace: {e}")))?;
            let mut h = HostRules::read(&ns, nft_wanted && nft.is_none())?;
            if let Some(f) = nft {
                h.nft_json = Some(read(&f)?);
            }
            Ok(h)
        }
    }
}

/// Whether the host is a Docker 29 with the nftables backend.
fn nftables(h: &bridgelab::import::HostState) -> bool {
    let backend = h.info.firewall_backend.as_ref().map(|b| b.driver.as_str()).unwrap_or_default();
    let backend = h.flags.get("firewall-backend").map(String::as_str).unwrap_or(backend);
    h.info.server_version.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m >= 29)
        && backend.starts_with("nftables")
}

/// The host read, its rules read, and the scenario inferred from both.
pub fn inferred(host: &HostArgs, r: &RuleArgs, path: &Path) -> Result<audit::Inferred, ImportError> {
    let h = host.read()?;
    let rules = rules(host, r, nftables(&h))?;
    let o = bridgelab::import::Options { name: host.name.clone(), path: path.to_path_buf() };
    audit::infer(&h, &o, &rules)
}

pub fn run(host: &HostArgs, r: &RuleArgs) -> u8 {
    let found = match inferred(host, r, Path::new("imported.toml")) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let imported = &found.imported;
    println!(
        "audit: the host's rules against the plan of its imported scenario ({}, {} containers, {} networks)",
        imported.scenario.spec.daemon.firewall(),
        imported.plan.containers.len(),
        imported.plan.networks.len()
    );
    for n in &imported.notes {
        println!("note: {n}");
    }
    for f in &found.findings {
        println!("{f}");
    }
    if found.findings.is_empty() {
        println!("no drift: every rule is where Docker puts it");
        0
    } else {
        println!("DRIFT: {} finding(s)", found.findings.len());
        1
    }
}
