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

pub fn run(host: &HostArgs, r: &RuleArgs) -> u8 {
    let imported = match host.import(Path::new("imported.toml")) {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    let nft = !imported.plan.iptables.nft.is_empty();
    let found = match rules(host, r, nft).and_then(|h| audit::audit(&imported, &h)) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    println!(
        "audit: the host's rules against the plan of its imported scenario ({}, {} containers, {} networks)",
        imported.scenario.spec.daemon.firewall(),
        imported.plan.containers.len(),
        imported.plan.networks.len()
    );
    for n in &imported.notes {
        println!("note: {n}");
    }
    for f in &found {
        println!("{f}");
    }
    if found.is_empty() {
        println!("no drift: every rule is where Docker puts it");
        0
    } else {
        println!("DRIFT: {} finding(s)", found.len());
        1
    }
}
