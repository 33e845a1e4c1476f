//! `bridgelab import`: a running Docker host as a scenario file.

use std::path::{Path, PathBuf};

use bridgelab::import::{self, HostState, ImportError, Imported};

/// Where the host is read from (shared with `audit`).
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

pub fn run(args: &HostArgs, rules: Option<&super::audit::RuleArgs>, output: Option<&Path>) -> u8 {
    let path = output.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("imported.toml"));
    let imported = match rules {
        None => args.import(&path),
        Some(r) => super::audit::inferred(args, r, &path).map(|i| i.imported),
    };
    let imported = match imported {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    match output {
        None => print!("{}", imported.text),
        Some(f) => {
            if let Err(e) = std::fs::write(f, &imported.text) {
                eprintln!("bridgelab: cannot write {}: {e}", f.display());
                return 3;
            }
            eprintln!(
                "bridgelab: wrote {} ({} containers, {} networks, {} approximations noted in it)",
                f.display(),
                imported.plan.containers.len(),
                imported.plan.networks.len(),
                imported.notes.len()
            );
        }
    }
    0
}
