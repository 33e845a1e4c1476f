//! What Docker says about itself, as `docker inspect`, `docker network
//! inspect` and `docker info --format '{{json .}}'` print it (API field
//! names), read from saved files or through the docker CLI.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::ImportError;

/// `docker inspect` of one container, as far as import reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub created: String,
    pub state: State,
    pub host_config: HostConfig,
    pub config: Config,
    pub network_settings: NetworkSettings,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct State {
    pub running: bool,
    pub started_at: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub network_mode: String,
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub links: Option<Vec<String>>,
    pub publish_all_ports: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub mac_address: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    pub ports: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub networks: Option<BTreeMap<String, Endpoint>>,
}

/// A container's endpoint on one network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    /// What the user asked for (`--ip`, `network connect --ip`).
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<IpamConfig>,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IpamConfig {
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
}

/// `docker network inspect` of one network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub created: String,
    pub driver: String,
    pub internal: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    pub config: Option<Vec<Pool>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Pool {
    #[serde(rename = "Subnet")]
    pub subnet: String,
    #[serde(rename = "Gateway")]
    pub gateway: String,
    #[serde(rename = "IPRange")]
    pub ip_range: String,
}

impl Network {
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.as_ref()?.get(&format!("com.docker.network.{key}")).map(String::as_str)
    }
    /// The default bridge (`docker0`, or `-b`'s).
    pub fn is_default_bridge(&self) -> bool {
        self.option("bridge.default_bridge") == Some("true")
    }
    /// The IPv4 pool (`Config` holds the IPv6 one too, with `--ipv6`).
    pub fn pool4(&self) -> Option<&Pool> {
        self.ipam.config.iter().flatten().find(|p| !p.subnet.is_empty() && !p.subnet.contains(':'))
    }
    /// The Linux bridge: its `bridge.name` option, or `br-` and the first
    /// 12 digits of its id (libnetwork's bridge driver).
    pub fn bridge(&self) -> Option<String> {
        if self.driver != "bridge" {
            return None;
        }
        let named = self.option("bridge.name").filter(|n| !n.is_empty()).map(String::from);
        Some(named.unwrap_or_else(|| format!("br-{}", &self.id[..self.id.len().min(12)])))
    }
}

impl Container {
    pub fn short_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }
}

/// `docker info --format '{{json .}}'`, as far as import reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Info {
    pub server_version: String,
    /// Docker 28.2+: which firewall backend the daemon runs.
    pub firewall_backend: Option<FirewallBackend>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FirewallBackend {
    pub driver: String,
}

/// Everything import knows about one Docker host.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    pub containers: Vec<Container>,
    pub networks: Vec<Network>,
    pub info: Info,
    /// Daemon flags the user gave (`daemon.json` keys, or `--flag=value`
    /// from the dockerd command line), by daemon.json name: `iptables`,
    /// `userland-proxy`, ...; values as text.
    pub flags: BTreeMap<String, String>,
    /// Where it came from, for the file's header.
    pub source: String,
    /// Whether `net.ipv4.ip_forward` was 1 before the daemon started
    /// (`[host] forwarding`): no Docker output says it; `None` unknown.
    pub forwarding: Option<bool>,
    /// What was inferred rather than read (see [`super::audit::infer`]),
    /// for the file's header.
    pub inferred: Vec<String>,
}

/// Saved files of `--from DIR`.
pub const CONTAINERS_FILE: &str = "containers.json";
pub const NETWORKS_FILE: &str = "networks.json";
pub const INFO_FILE: &str = "info.json";
pub const DAEMON_JSON_FILE: &str = "daemon.json";

fn bad(what: impl std::fmt::Display, why: impl std::fmt::Display) -> ImportError {
    ImportError::BadInput { what: what.to_string(), why: why.to_string() }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, ImportError> {
    serde_json::from_str(text).map_err(|e| bad(what, e))
}

/// `docker inspect` prints `[]` and an error for no ids; a saved file of
/// `docker inspect $(docker ps -aq)` on a host without containers is empty.
fn parse_list<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<Vec<T>, ImportError> {
    if text.trim().is_empty() {
        return Ok(vec![]);
    }
    parse(what, text)
}

impl HostState {
    /// From JSON: the outputs of `docker inspect`, `docker network inspect`
    /// and `docker info --format '{{json .}}'`.
    pub fn from_json(containers: &str, networks: &str, info: &str) -> Result<HostState, ImportError> {
        Ok(HostState {
            containers: parse_list("docker inspect", containers)?,
            networks: parse_list("docker network inspect", networks)?,
            info: parse("docker info", info)?,
            flags: BTreeMap::new(),
            source: String::new(),
            forwarding: None,
            inferred: vec![],
        })
    }

    /// From a directory of saved outputs: `containers.json`,
    /// `networks.json`, `info.json`, and `daemon.json` when it is there.
    pub fn from_dir(dir: &Path) -> Result<HostState, ImportError> {
        let read = |name: &str, needed: bool| -> Result<Option<String>, ImportError> {
            let p = dir.join(name);
            match std::fs::read_to_string(&p) {
                Ok(t) => Ok(Some(t)),
                Err(e) if !needed && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(bad(p.display(), e)),
            }
        };
        let at = |name: &str| dir.join(name).display().to_string();
        let containers = read(CONTAINERS_FILE, true)?.unwrap_or_default();
        let networks = read(NETWORKS_FILE, true)?.unwrap_or_default();
        let info = read(INFO_FILE, true)?.unwrap_or_default();
        let mut h = HostState {
            containers: parse_list(&at(CONTAINERS_FILE), &containers)?,
            networks: parse_list(&at(NETWORKS_FILE), &networks)?,
            info: parse(&at(INFO_FILE), &info)?,
            flags: BTreeMap::new(),
            source: format!("saved outputs in {}", dir.display()),
            forwarding: None,
            inferred: vec![],
        };
        if let Some(text) = read(DAEMON_JSON_FILE, false)? {
            h.add_daemon_json(&at(DAEMON_JSON_FILE), &text)?;
        }
        Ok(h)
    }

    /// Through the docker CLI `cli` against `host` (`unix:///path`): the
    /// same five read-only commands a user would type.
    pub fn from_docker(cli: &Path, host: &str) -> Result<HostState, ImportError> {
        let docker = |args: &[&str]| -> Result<String, ImportError> {
            let out = Command::new(cli)
                .arg("--host")
                .arg(host)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| ImportError::Docker(format!("cannot run {}: {e}", cli.display())))?;
            if !out.status.success() {
                return Err(ImportError::Docker(format!(
                    "docker --host {host} {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let info = docker(&["info", "--format", "{{json .}}"])?;
        let ids = docker(&["ps", "-aq", "--no-trunc"])?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        let containers = if ids.is_empty() { String::new() } else { docker(&[&["inspect"][..], &ids].concat())? };
        let nets = docker(&["network", "ls", "-q", "--no-trunc"])?;
        let nets: Vec<&str> = nets.split_whitespace().collect();
        let networks =
            if nets.is_empty() { String::new() } else { docker(&[&["network", "inspect"][..], &nets].concat())? };
        let mut h = HostState::from_json(&containers, &networks, &info)?;
        h.source = format!("{host}, through {}", cli.display());
        Ok(h)
    }

    /// Adds the flags of a `daemon.json`.
    pub fn add_daemon_json(&mut self, what: &str, text: &str) -> Result<(), ImportError> {
        let v: BTreeMap<String, serde_json::Value> = parse(what, text)?;
        for (k, v) in v {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            self.flags.insert(k, text);
        }
        Ok(())
    }

    /// Adds the flags of a dockerd command line (`--userland-proxy=false
    /// --iptables=false`, as `ps` or the systemd unit shows it). A bare
    /// `--flag` is `true`; `--flag value` is taken as its value.
    pub fn add_daemon_args(&mut self, args: &str) {
        let words: Vec<&str> = args.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            if let Some(flag) = words[i].strip_prefix("--") {
                match flag.split_once('=') {
                    Some((k, v)) => {
                        self.flags.insert(k.to_string(), v.to_string());
                    }
                    None => match words.get(i + 1).filter(|n| !n.starts_with('-')) {
                        Some(v) if !BOOLEAN_FLAGS.contains(&flag) => {
                            self.flags.insert(flag.to_string(), v.to_string());
                            i += 1;
                        }
                        _ => {
                            self.flags.insert(flag.to_string(), "true".into());
                        }
                    },
                }
            }
            i += 1;
        }
    }
}

/// dockerd's boolean flags: a bare `--icc` takes no value after it.
const BOOLEAN_FLAGS: [&str; 7] =
    ["iptables", "ip-forward", "ip-masq", "icc", "userland-proxy", "allow-direct-routing", "ip-forward-no-drop"];

/// A Docker timestamp (`2026-11-26T08:01:02.5Z`, RFC 3339 with up to nine
/// fraction digits, trailing zeros dropped by Go) in an order that sorts
/// as time does.
pub fn time_key(t: &str) -> String {
    let (main, frac) = match t.split_once('.') {
        Some((m, f)) => (m, f.trim_end_matches('Z')),
        None => (t.trim_end_matches('Z'), ""),
    };
    format!("{main}.{frac:0<9}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_time_does() {
        let a = time_key("2026-11-26T08:00:00.1Z");
        let b = time_key("2026-11-26T08:00:00.12Z");
        let c = time_key("2026-11-26T08:00:01Z");
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn dockerd_command_lines_give_flags() {
        let mut h = HostState::default();
        h.add_daemon_args("/usr/bin/dockerd -H fd:// --userland-proxy=false --icc --bip 10.1.0.1/24");
        assert_eq!(h.flags.get("userland-proxy").map(String::as_str), Some("false"));
        assert_eq!(h.flags.get("icc").map(String::as_str), Some("true"));
        assert_eq!(h.flags.get("bip").map(String::as_str), Some("10.1.0.1/24"));
        h.add_daemon_json("daemon.json", r#"{"iptables": false, "bip": "10.2.0.1/24"}"#).unwrap();
        assert_eq!(h.flags.get("iptables").map(String::as_str), Some("false"));
        assert_eq!(h.flags.get("bip").map(String::as_str), Some("10.2.0.1/24"));
        assert!(h.add_daemon_json("daemon.json", "{").is_err());
    }
}
