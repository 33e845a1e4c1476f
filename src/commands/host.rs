//! Reading a real Docker host: what `import` and `audit` share (where the
//! daemon's state and the host's rules come from, and the scenario inferred
//! from both).

use std::fs::File;
use std::path::{Path, PathBuf};

use bridgelab::import::audit::{self, HostRules};
use bridgelab::import::{self, HostState, ImportError, Imported};

/// Where the host is read from.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// The Docker daemon to read, through the docker CLI (`docker --host`):
    /// `docker info`, `ps -aq`, `inspect`, `network ls`, `network inspect`.
    /// Read-only.
    #[arg(long, value_name = "URL", default_value = "unix:///var/run/docker.sock")]
    pub host: String,
    /// Read saved outputs instead of a daemon: DIR/containers.json
    /// (`docker inspect $(docker ps -aq)`), DIR/networks.json (`docker
    /// network inspect $(docker network ls -q)`), DIR/info.json (`docker
    /// info --format '{{json .}}'`), and DIR/daemon.json if there.
    #[arg(long, value_name = "DIR", conflicts_with = "host")]
    pub from: Option<PathBuf>,
    /// The docker CLI to run.
    #[arg(long, value_name = "PATH", default_value = "docker")]
    pub docker_cli: PathBuf,
    /// The daemon's /etc/docker/daemon.json: flags `docker info` does not
    /// show (iptables, ip-forward, userland-proxy, ...).
    #[arg(long, value_name = "FILE")]
    pub daemon_json: Option<PathBuf>,
    /// The dockerd command line, as `ps` or its systemd unit shows it
    /// (e.g. "--userland-proxy=false --icc=false").
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub daemon_args: Option<String>,
    /// The scenario's `name`.
    #[arg(long, default_value = "imported")]
    pub name: String,
}

impl HostArgs {
    pub fn read(&self) -> Result<HostState, ImportError> {
        let mut h = match &self.from {
            Some(dir) => HostState::from_dir(dir)?,
            None => HostState::from_docker(&self.docker_cli, &self.host)?,
        };
        if let Some(f) = &self.daemon_json {
            let text = std::fs::read_to_string(f)
                .map_err(|e| ImportError::BadInput { what: f.display().to_string(), why: e.to_string() })?;
            h.add_daemon_json(&f.display().to_string(), &text)?;
        }
        if let Some(a) = &self.daemon_args {
            h.add_daemon_args(a);
        }
        Ok(h)
    }

    /// The host, read and written as a checked scenario.
    pub fn import(&self, path: &Path) -> Result<Imported, ImportError> {
        let h = self.read()?;
        import::write(&h, &import::Options { name: self.name.clone(), path: path.to_path_buf() })
    }
}

pub fn fail(e: &ImportError) -> u8 {
    eprintln!("bridgelab: {e}");
    e.exit_code()
}

/// Saved rules, for `audit` and `import --infer`.
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
fn nftables(h: &HostState) -> bool {
    let backend = h.info.firewall_backend.as_ref().map(|b| b.driver.as_str()).unwrap_or_default();
    let backend = h.flags.get("firewall-backend").map(String::as_str).unwrap_or(backend);
    h.info.server_version.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m >= 29)
        && backend.starts_with("nftables")
}

/// The host read, its rules read, and the scenario inferred from both.
pub fn inferred(host: &HostArgs, r: &RuleArgs, path: &Path) -> Result<audit::Inferred, ImportError> {
    let h = host.read()?;
    let rules = rules(host, r, nftables(&h))?;
    let o = import::Options { name: host.name.clone(), path: path.to_path_buf() };
    audit::infer(&h, &o, &rules)
}
