//! A scenario as a real Docker daemon is told it: dockerd flags, then
//! docker commands in the scenario's order.
//!
//! Pure: no I/O, so every translation is unit-tested without root or a
//! daemon. The order is the scenario's: `[[network]]`s first (a container
//! may name them), then each `[[container]]` (`docker run`, or `docker
//! create` for `running = false`, then `docker network connect` for each
//! further network), then each `[[step]]`.
//!
//! Containers run `sleep` under `--init` (tini as pid 1): nothing in them
//! listens, since probes are answered by bridgelab's own responders opened
//! inside the containers' namespaces, and tini passes SIGTERM on at once, so
//! a stop takes milliseconds instead of Docker's 10 s timeout. Stops and
//! restarts still say `-t 1`, in case a container ignores SIGTERM.

use crate::scenario::{
    Container, Daemon, Network, NetworkMode, Scenario, Step, StepAction, StepContainer, DEFAULT_BRIDGE,
};

/// The image every container runs: busybox-static, imported by `diff`
/// (`docker import`), never pulled from a registry.
pub const IMAGE: &str = "busybox:latest";

/// What every container runs: a process that waits and does nothing.
pub const KEEPALIVE: [&str; 2] = ["sleep", "86400"];

/// One thing done to the real host, in the scenario's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `docker ARGS…` against the daemon's own socket.
    Docker(Vec<String>),
    /// SIGTERM dockerd, wait for it to end, start it again with the same
    /// flags over the same data-root and namespaces.
    RestartDaemon,
    /// `iptables -F` and `-X` of the filter and nat tables in the host
    /// namespace: what a firewall reload does to Docker's rules.
    FlushIptables,
    /// `iptables-restore` of a `host-rules` step in the host namespace.
    HostRules { rules: String, noflush: bool },
    /// A `sysctl` step: the value written in the node's namespace.
    Sysctl { node: String, key: String, value: String },
}

/// An action with what the report calls it and, for a step that says it
/// `fails`, Docker's error it is meant to meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerCommand {
    pub action: Action,
    /// Docker's message (or a part of it) the scenario expects.
    pub fails: Option<String>,
}

impl DockerCommand {
    fn docker(args: Vec<String>) -> DockerCommand {
        DockerCommand { action: Action::Docker(args), fails: None }
    }

    /// The command as a person would type it (`docker run -d --name web …`).
    pub fn display(&self) -> String {
        match &self.action {
            Action::Docker(args) => {
                let quoted: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
                format!("docker {}", quoted.join(" "))
            }
            Action::RestartDaemon => "restart dockerd (SIGTERM, start again)".into(),
            Action::FlushIptables => "iptables -F; iptables -X; iptables -t nat -F; iptables -t nat -X".into(),
            Action::HostRules { noflush, .. } => {
                format!("iptables-restore{} < the step's rules", if *noflush { " --noflush" } else { "" })
            }
            Action::Sysctl { node, key, value } => format!("sysctl -w {key}={value} (in {node})"),
        }
    }
}

/// A word quoted for a shell where it needs it, for reports only.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+[]".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The commands of one `[[step]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepScript {
    /// `step N: action`, as the lab's reports call it.
    pub label: String,
    pub commands: Vec<DockerCommand>,
}

/// A whole scenario for a real daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// dockerd's flags from `[daemon]`, after the ones `diff` always gives
    /// (data-root, sockets, pid file).
    pub daemon_flags: Vec<String>,
    /// Networks and containers, before the top-level `[[expect]]`s.
    pub setup: Vec<DockerCommand>,
    pub steps: Vec<StepScript>,
}

/// Translates a scenario.
pub fn translate(s: &Scenario) -> Script {
    let spec = &s.spec;
    let mut setup: Vec<DockerCommand> = spec.networks.iter().map(network_create).collect();
    for c in &spec.containers {
        setup.extend(container(c));
    }
    let steps = spec
        .steps
        .iter()
        .enumerate()
        .map(|(i, st)| StepScript { label: format!("step {}: {}", i + 1, step_label(st)), commands: step(st) })
        .collect();
    Script { daemon_flags: daemon_flags(&spec.daemon), setup, steps }
}

/// `[daemon]` as dockerd flags. Only what the scenario gives: a flag left
/// out keeps dockerd's default, as in the scenario.
pub fn daemon_flags(d: &Daemon) -> Vec<String> {
    let mut f = Vec::new();
    let boolean = |f: &mut Vec<String>, name: &str, v: &Option<crate::scenario::Sp<bool>>| {
        if let Some(v) = v {
            f.push(format!("--{name}={}", v.get_ref()));
        }
    };
    if let Some(b) = &d.bridge {
        f.push(format!("--bridge={}", b.get_ref()));
    }
    if let Some(b) = &d.bip {
        f.push(format!("--bip={}", b.get_ref()));
    }
    if let Some(c) = &d.fixed_cidr {
        f.push(format!("--fixed-cidr={}", c.get_ref()));
    }
    if let Some(m) = &d.mtu {
        f.push(format!("--mtu={}", m.get_ref()));
    }
    boolean(&mut f, "icc", &d.icc);
    boolean(&mut f, "ip-masq", &d.ip_masq);
    boolean(&mut f, "iptables", &d.iptables);
    boolean(&mut f, "ip-forward", &d.ip_forward);
    if let Some(ip) = &d.ip {
        f.push(format!("--ip={}", ip.get_ref()));
    }
    boolean(&mut f, "userland-proxy", &d.userland_proxy);
    boolean(&mut f, "allow-direct-routing", &d.allow_direct_routing);
    boolean(&mut f, "ip-forward-no-drop", &d.ip_forward_no_drop);
    f
}

/// `docker network create` with the network's options, as `-o` driver
/// options where the CLI has no flag of its own.
pub fn network_create(n: &Network) -> DockerCommand {
    let mut a: Vec<String> = vec!["network".into(), "create".into(), "--driver".into(), "bridge".into()];
    if let Some(s) = &n.subnet {
        a.extend(["--subnet".into(), s.get_ref().to_string()]);
    }
    if let Some(g) = &n.gateway {
        a.extend(["--gateway".into(), g.get_ref().to_string()]);
    }
    if let Some(r) = &n.ip_range {
        a.extend(["--ip-range".into(), r.get_ref().to_string()]);
    }
    if n.internal {
        a.push("--internal".into());
    }
    let mut opt = |k: &str, v: String| a.extend(["--opt".into(), format!("com.docker.network.{k}={v}")]);
    if let Some(b) = &n.bridge {
        opt("bridge.name", b.get_ref().clone());
    }
    if !n.icc {
        opt("bridge.enable_icc", "false".into());
    }
    if !n.ip_masq {
        opt("bridge.enable_ip_masquerade", "false".into());
    }
    if let Some(m) = &n.mtu {
        opt("driver.mtu", m.get_ref().to_string());
    }
    if let Some(h) = &n.host_ip {
        opt("bridge.host_binding_ipv4", h.get_ref().to_string());
    }
    if let Some(m) = &n.gateway_mode {
        opt("bridge.gateway_mode_ipv4", m.get_ref().to_string());
    }
    a.push(n.name.get_ref().clone());
    DockerCommand::docker(a)
}

/// `--network` as the scenario gives it. Unset is left out (the default
/// bridge), since Docker treats a missing `--network` and an explicit
/// `--network bridge` differently (`--ip` is quietly ignored without it).
fn network_arg(m: &NetworkMode) -> String {
    match m {
        NetworkMode::Bridge => "bridge".into(),
        NetworkMode::Host => "host".into(),
        NetworkMode::None => "none".into(),
        NetworkMode::Container(c) => format!("container:{c}"),
        NetworkMode::Named(n) => n.clone(),
    }
}

/// `docker run -d` (or `docker create` when not running) of a container,
/// then `docker network connect` for each network after the first.
pub fn container(c: &Container) -> Vec<DockerCommand> {
    let mut a: Vec<String> = if c.running { vec!["run".into(), "-d".into()] } else { vec!["create".into()] };
    a.extend(["--init".into(), "--name".into(), c.name().to_string()]);
    let networks = c.networks();
    if c.network.is_some() {
        a.extend(["--network".into(), network_arg(&networks[0])]);
    }
    if let Some(ip) = &c.ip {
        a.extend(["--ip".into(), ip.get_ref().to_string()]);
    }
    if let Some(m) = &c.mac {
        a.extend(["--mac-address".into(), m.get_ref().to_string()]);
    }
    for p in &c.publish {
        a.extend(["--publish".into(), p.get_ref().to_string()]);
    }
    for e in &c.expose {
        a.extend(["--expose".into(), e.get_ref().to_string()]);
    }
    if c.publish_all {
        a.push("--publish-all".into());
    }
    for l in &c.links {
        a.extend(["--link".into(), l.get_ref().to_string()]);
    }
    a.push(IMAGE.into());
    a.extend(KEEPALIVE.iter().map(|s| s.to_string()));
    let mut out = vec![DockerCommand::docker(a)];
    for n in networks.iter().skip(1) {
        let mut a: Vec<String> = vec!["network".into(), "connect".into()];
        if let Some(ip) = c.ips.get(&network_arg(n)) {
            a.extend(["--ip".into(), ip.get_ref().to_string()]);
        }
        a.extend([network_arg(n), c.name().to_string()]);
        out.push(DockerCommand::docker(a));
    }
    out
}

fn step_label(st: &Step) -> String {
    let action = *st.action.get_ref();
    let name = st.container.as_ref().map(|c| c.get_ref().name().to_string());
    match (name, &st.network) {
        (Some(c), Some(n)) => format!("{action} {c} {}", n.get_ref()),
        (Some(c), None) => format!("{action} {c}"),
        _ => action.to_string(),
    }
}

/// The commands of one step.
pub fn step(st: &Step) -> Vec<DockerCommand> {
    let name = st.container.as_ref().map(|c| c.get_ref().name().to_string()).unwrap_or_default();
    let network = st.network.as_ref().map(|n| n.get_ref().clone()).unwrap_or_default();
    let docker = |args: &[&str]| DockerCommand::docker(args.iter().map(|s| s.to_string()).collect());
    let mut commands = match *st.action.get_ref() {
        StepAction::Connect => match &st.ip {
            Some(ip) => vec![docker(&["network", "connect", "--ip", &ip.get_ref().to_string(), &network, &name])],
            None => vec![docker(&["network", "connect", &network, &name])],
        },
        StepAction::Disconnect => vec![docker(&["network", "disconnect", &network, &name])],
        StepAction::Stop => vec![docker(&["stop", "-t", "1", &name])],
        StepAction::Start => vec![docker(&["start", &name])],
        StepAction::Restart => vec![docker(&["restart", "-t", "1", &name])],
        StepAction::Remove => vec![docker(&["rm", "-f", &name])],
        StepAction::Run => match st.container.as_ref().map(|c| c.get_ref()) {
            Some(StepContainer::Inline(c)) => container(c),
            // validate refuses a `run` of a name; starting it is the nearest meaning.
            _ => vec![docker(&["start", &name])],
        },
        StepAction::FlushIptables => vec![DockerCommand { action: Action::FlushIptables, fails: None }],
        StepAction::RestartDaemon => vec![DockerCommand { action: Action::RestartDaemon, fails: None }],
        // Traffic, not a docker command: the prober starts the flow on each side.
        StepAction::Flow => vec![],
        StepAction::HostRules => {
            let rules = st.rules.as_ref().map(|r| r.get_ref().clone()).unwrap_or_default();
            let noflush = st.noflush.as_ref().is_some_and(|n| *n.get_ref());
            vec![DockerCommand { action: Action::HostRules { rules, noflush }, fails: None }]
        }
        StepAction::Sysctl => {
            let node = st.node.as_ref().map(|n| n.get_ref().clone()).unwrap_or_else(|| "host".into());
            let key = st.key.as_ref().map(|k| k.get_ref().clone()).unwrap_or_default();
            let value = st.value.as_ref().map(|v| v.get_ref().0.clone()).unwrap_or_default();
            vec![DockerCommand { action: Action::Sysctl { node, key, value }, fails: None }]
        }
    };
    // The step's `fails` belongs to the command that starts the container:
    // the first one (`run`, `start`, `restart`).
    if let (Some(f), Some(first)) = (&st.fails, commands.first_mut()) {
        first.fails = Some(f.get_ref().clone());
    }
    commands
}

/// Whether the scenario's default bridge is Docker's own `docker0` (so the
/// real one and the lab's have the same name).
pub fn default_bridge(d: &Daemon) -> &str {
    match d.bridge.as_ref().map(|b| b.get_ref().as_str()) {
        Some(b) => b,
        None => DEFAULT_BRIDGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        Scenario::parse("t.toml".into(), text.into()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn args(c: &DockerCommand) -> Vec<&str> {
        match &c.action {
            Action::Docker(a) => a.iter().map(|s| s.as_str()).collect(),
            other => panic!("not a docker command: {other:?}"),
        }
    }

    #[test]
    fn daemon_flags_are_only_those_given() {
        let s = scenario(
            r#"
            [daemon]
            firewall = "docker20"
            bip = "10.66.0.1/24"
            fixed_cidr = "10.66.0.128/25"
            mtu = 1400
            icc = false
            ip_masq = false
            ip = "198.51.100.1"
            userland_proxy = false
            ip_forward = true
            "#,
        );
        assert_eq!(
            translate(&s).daemon_flags,
            [
                "--bip=10.66.0.1/24",
                "--fixed-cidr=10.66.0.128/25",
                "--mtu=1400",
                "--icc=false",
                "--ip-masq=false",
                "--ip-forward=true",
                "--ip=198.51.100.1",
                "--userland-proxy=false"
            ]
        );
        assert!(translate(&scenario("[daemon]\nfirewall = \"docker20\"\n")).daemon_flags.is_empty());
        let off = scenario("[daemon]\nfirewall = \"docker20\"\niptables = false\n");
        assert_eq!(translate(&off).daemon_flags, ["--iptables=false"]);
    }

    #[test]
    fn docker28_flags_and_gateway_modes() {
        let s = scenario(
            r#"
            [daemon]
            firewall = "docker28"
            allow_direct_routing = true
            ip_forward_no_drop = true
            [[network]]
            name = "r"
            gateway_mode = "routed"
            [[network]]
            name = "iso"
            internal = true
            gateway_mode = "isolated"
            [[network]]
            name = "plain"
            "#,
        );
        let script = translate(&s);
        assert_eq!(script.daemon_flags, ["--allow-direct-routing=true", "--ip-forward-no-drop=true"]);
        let opt = |i: usize| args(&script.setup[i]).iter().filter(|a| a.contains("gateway_mode")).count();
        assert_eq!(args(&script.setup[0])[4..], ["--opt", "com.docker.network.bridge.gateway_mode_ipv4=routed", "r"]);
        assert_eq!(
            args(&script.setup[1])[4..],
            ["--internal", "--opt", "com.docker.network.bridge.gateway_mode_ipv4=isolated", "iso"]
        );
        assert_eq!(opt(2), 0, "no gateway_mode: Docker's default, not an explicit nat");
    }

    #[test]
    fn networks_come_first_with_their_options() {
        let s = scenario(
            r#"
            [daemon]
            firewall = "docker20"
            [[container]]
            name = "web"
            network = "neta"
            [[network]]
            name = "neta"
            subnet = "10.20.0.0/24"
            gateway = "10.20.0.1"
            ip_range = "10.20.0.128/25"
            [[network]]
            name = "quiet"
            internal = true
            icc = false
            ip_masq = false
            mtu = 1400
            bridge = "quiet0"
            "#,
        );
        let script = translate(&s);
        assert_eq!(
            args(&script.setup[0]),
            [
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                "10.20.0.0/24",
                "--gateway",
                "10.20.0.1",
                "--ip-range",
                "10.20.0.128/25",
                "neta"
            ]
        );
        assert_eq!(
            args(&script.setup[1]),
            [
                "network",
                "create",
                "--driver",
                "bridge",
                "--internal",
                "--opt",
                "com.docker.network.bridge.name=quiet0",
                "--opt",
                "com.docker.network.bridge.enable_icc=false",
                "--opt",
                "com.docker.network.bridge.enable_ip_masquerade=false",
                "--opt",
                "com.docker.network.driver.mtu=1400",
                "quiet"
            ]
        );
        assert_eq!(args(&script.setup[2])[..2], ["run", "-d"]);
    }

    #[test]
    fn a_container_is_run_with_every_option_then_connected() {
        let s = scenario(
            r#"
            [daemon]
            firewall = "docker20"
            [[network]]
            name = "front"
            subnet = "10.20.0.0/24"
            [[network]]
            name = "back"
            [[container]]
            name = "db"
            [[container]]
            name = "web"
            network = ["front", "back"]
            ip = "10.20.0.9"
            mac = "02:42:0a:14:00:63"
            publish = ["8080:80", "127.0.0.1::81/udp", "90"]
            expose = ["5432/tcp"]
            links = ["db:database"]
            listen = ["tcp:80"]
            "#,
        );
        let script = translate(&s);
        // db: the default bridge, no --network at all.
        assert_eq!(args(&script.setup[2]), ["run", "-d", "--init", "--name", "db", IMAGE, "sleep", "86400"]);
        assert_eq!(
            args(&script.setup[3]),
            [
                "run",
                "-d",
                "--init",
                "--name",
                "web",
                "--network",
                "front",
                "--ip",
                "10.20.0.9",
                "--mac-address",
                "02:42:0a:14:00:63",
                "--publish",
                "8080:80/tcp",
                "--publish",
                "127.0.0.1::81/udp",
                "--publish",
                "90/tcp",
                "--expose",
                "5432/tcp",
                "--link",
                "db:database",
                IMAGE,
                "sleep",
                "86400"
            ]
        );
        assert_eq!(args(&script.setup[4]), ["network", "connect", "back", "web"]);
        assert_eq!(script.setup.len(), 5);
    }

    #[test]
    fn network_modes_and_stopped_containers() {
        let s = scenario(
            r#"
            [daemon]
            firewall = "docker20"
            [[container]]
            name = "web"
            network = "bridge"
            running = false
            [[container]]
            name = "h1"
            network = "host"
            [[container]]
            name = "n1"
            network = "none"
            [[container]]
            name = "j1"
            network = "container:h1"
            "#,
        );
        let script = translate(&s);
        let got: Vec<Vec<&str>> = script.setup.iter().map(|c| args(c)[..7].to_vec()).collect();
        assert_eq!(
            got,
            [
                ["create", "--init", "--name", "web", "--network", "bridge", IMAGE],
                ["run", "-d", "--init", "--name", "h1", "--network", "host"],
                ["run", "-d", "--init", "--name", "n1", "--network", "none"],
                ["run", "-d", "--init", "--name", "j1", "--network", "container:h1"],
            ]
        );
    }

    #[test]
    fn steps_keep_their_order_and_stop_quickly() {
        let s = scenario(
            r#"
            [daemon]
            firewall = "docker20"
            [[network]]
            name = "usr"
            [[container]]
            name = "web"
            [[step]]
            do = "connect"
            container = "web"
            network = "usr"
            [[step]]
            do = "disconnect"
            container = "web"
            network = "usr"
            [[step]]
            do = "stop"
            container = "web"
            [[step]]
            do = "start"
            container = "web"
            fails = "port is already allocated"
            [[step]]
            do = "restart"
            container = "web"
            [[step]]
            do = "flush-iptables"
            [[step]]
            do = "restart-daemon"
            [[step]]
            do = "run"
            [step.container]
            name = "late"
            network = ["usr", "bridge"]
            [[step]]
            do = "remove"
            container = "late"
            "#,
        );
        let script = translate(&s);
        let labels: Vec<&str> = script.steps.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "step 1: connect web usr",
                "step 2: disconnect web usr",
                "step 3: stop web",
                "step 4: start web",
                "step 5: restart web",
                "step 6: flush-iptables",
                "step 7: restart-daemon",
                "step 8: run late",
                "step 9: remove late"
            ]
        );
        let shown: Vec<Vec<String>> =
            script.steps.iter().map(|s| s.commands.iter().map(|c| c.display()).collect()).collect();
        assert_eq!(shown[0], ["docker network connect usr web"]);
        assert_eq!(shown[1], ["docker network disconnect usr web"]);
        assert_eq!(shown[2], ["docker stop -t 1 web"]);
        assert_eq!(shown[3], ["docker start web"]);
        assert_eq!(script.steps[3].commands[0].fails.as_deref(), Some("port is already allocated"));
        assert_eq!(shown[4], ["docker restart -t 1 web"]);
        assert_eq!(script.steps[5].commands[0].action, Action::FlushIptables);
        assert_eq!(script.steps[6].commands[0].action, Action::RestartDaemon);
        assert_eq!(
            shown[7],
            [
                format!("docker run -d --init --name late --network usr {IMAGE} sleep 86400"),
                "docker network connect bridge late".to_string()
            ]
        );
        assert_eq!(shown[8], ["docker rm -f late"]);
    }

    #[test]
    fn reports_quote_what_a_shell_would_split() {
        let c = DockerCommand::docker(vec!["run".into(), "a b".into(), "it's".into()]);
        assert_eq!(c.display(), r"docker run 'a b' 'it'\''s'");
    }
}
