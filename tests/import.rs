//! `bridgelab import` and `bridgelab audit`.
//!
//! Against real daemons (root; dockerd 20.10.24 from /opt/bl-docker20 and
//! 28.5.2 from /opt/bl-docker28, the daemons `bridgelab diff` runs): a
//! daemon is started in a host namespace bridgelab builds, a topology made
//! on it with docker commands, `import` reads it through the daemon's
//! socket, `check` takes the file, and `audit` run inside that namespace
//! finds no drift; then one rule is broken by hand, in that namespace only,
//! and `audit` reports exactly that rule.
//!
//! Without root: the same over outputs captured from those daemons
//! (tests/fixtures/import/<layout>/, written by the root tests when
//! `BRIDGELAB_CAPTURE_IMPORT=1`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bridgelab::diff::dockerd::{find_dockers, Daemon};
use bridgelab::diff::translate::{self, Action};
use bridgelab::scenario::Firewall;
use bridgelab::Scenario;

/// Two user networks (one with a subnet, icc off), the default bridge with
/// a fixed and a dynamic published port and a link, an address asked for,
/// a container on two networks, one created and never started.
fn topology(firewall: &str) -> String {
    format!(
        r#"
name = "import-{firewall}"
[daemon]
firewall = "{firewall}"

[[network]]
name = "usr"

[[network]]
name = "fixed"
subnet = "10.40.0.0/24"
icc = false

[[container]]
name = "db"
expose = ["5432/tcp"]

[[container]]
name = "web"
publish = ["8080:80", "53/udp"]
links = ["db:database"]

[[container]]
name = "app"
network = ["fixed", "usr"]
ip = "10.40.0.10"
publish = ["127.0.0.1:9000:9000"]

[[container]]
name = "other"
network = "usr"

[[container]]
name = "idle"
publish = ["7000:70"]
running = false
"#
    )
}

fn fixtures(layout: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(layout)
}

fn bridgelab() -> Command {
    Command::new(common::bridgelab_bin())
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The lines of `audit`'s output that are findings.
fn findings(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| ["added ", "removed ", "moved ", "policy ", "chain+ ", "chain- "].iter().any(|k| l.starts_with(k)))
        .map(String::from)
        .collect()
}

/// A real daemon with the topology on it, in a host namespace of its own.
struct RealHost {
    daemon: Daemon,
    host: bridgelab::RunningLab,
    netns: String,
}

async fn real_host(firewall: Firewall, text: &str) -> RealHost {
    let scenario = Scenario::parse("t.toml".into(), text.into()).unwrap();
    let dockers = find_dockers(None).expect("a dockerd (ci/install-docker20.sh, ci/install-docker28.sh)");
    let tools = dockers.for_firewall(firewall).expect("the dockerd of this layout");
    let (pre, plan) = bridgelab::diff::pre_daemon(&scenario).unwrap();
    let mut host = bridgelab::apply::up(pre, plan, Default::default()).await.unwrap();
    // For `ip netns exec` (`in_netns`).
    host.name_namespaces().unwrap();
    let ns = host.netns_file("host").unwrap();
    // As `diff` does: a host that routed before the daemon started.
    if bridgelab::diff::host_before(text).forwarding {
        bridgelab::apply::netns::write_sysctl(ns, "net.ipv4.ip_forward", "1").unwrap();
    }
    let script = translate::translate(&scenario);
    let daemon = Daemon::start(tools, ns, host.run_id(), &script.daemon_flags).await.unwrap();
    daemon.import_image().await.unwrap();
    for c in &script.setup {
        let Action::Docker(args) = &c.action else { unreachable!("setup is docker commands") };
        let mut out = daemon.docker(args).await.unwrap();
        // runc now and then loses its first child on a busy machine (see
        // diff's `runtime_glitch`): removed and run again, at most twice.
        for _ in 0..2 {
            if out.success || !out.message().contains("error waiting for our first child to exit") {
                break;
            }
            let name = &args[args.iter().position(|a| a == "--name").unwrap() + 1];
            daemon.docker(&["rm", "-f", name.as_str()]).await.unwrap();
            out = daemon.docker(args).await.unwrap();
        }
        assert!(out.success, "docker {}: {}", args.join(" "), out.message());
    }
    let netns = bridgelab::registry::namespace_name(host.run_id(), "host");
    RealHost { daemon, host, netns }
}

impl RealHost {
    fn host_url(&self) -> String {
        format!("unix://{}", self.daemon.socket().display())
    }
    fn docker_cli(&self) -> &Path {
        &self.daemon.tools().docker
    }
    /// A command run inside the daemon's namespace, with the daemon's PATH
    /// (its iptables is the one dockerd uses).
    fn in_netns(&self, program: &Path, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(program)
            .args(args)
            .env("PATH", &self.daemon.tools().path)
            .output()
            .unwrap()
    }
    fn audit(&self) -> Output {
        let bin = Path::new(common::bridgelab_bin());
        self.in_netns(
            bin,
            &["audit", "--host", &self.host_url(), "--docker-cli", &self.docker_cli().display().to_string()],
        )
    }
    /// Saves what import reads, for the tests without root.
    async fn capture(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let d = &self.daemon;
        let ids = |out: bridgelab::diff::dockerd::DockerOutput| -> Vec<String> {
            out.stdout.split_whitespace().map(String::from).collect()
        };
        let cs = ids(d.docker(&["ps", "-aq", "--no-trunc"]).await.unwrap());
        let ns = ids(d.docker(&["network", "ls", "-q", "--no-trunc"]).await.unwrap());
        let save = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        save("containers.json", &d.docker(&[&["inspect".to_string()][..], &cs].concat()).await.unwrap().stdout);
        let nets = [&["network".to_string(), "inspect".to_string()][..], &ns].concat();
        save("networks.json", &d.docker(&nets).await.unwrap().stdout);
        save("info.json", &d.docker(&["info", "--format", "{{json .}}"]).await.unwrap().stdout);
        let ns_file = self.host.netns_file("host").unwrap();
        save("iptables-save.txt", &bridgelab::apply::iptables::save4(ns_file).unwrap());
        let v6 = bridgelab::apply::iptables::save6(ns_file).unwrap();
        if !v6.trim().is_empty() {
            save("ip6tables-save.txt", &v6);
        }
    }
    fn down(mut self) {
        self.daemon.stop().unwrap();
        self.host.down().unwrap();
    }
}

async fn import_and_audit(firewall: Firewall, layout: &str, break_rule: &[&str], broken: &str) {
    common::require_root();
    let real = real_host(firewall, &topology(layout)).await;
    if std::env::var_os("BRIDGELAB_CAPTURE_IMPORT").is_some() {
        real.capture(&fixtures(layout)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("imported.toml");
    let out = bridgelab()
        .args(["import", "--host", &real.host_url(), "--docker-cli"])
        .arg(real.docker_cli())
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "import: {}", text(&out));
    let written = std::fs::read_to_string(&file).unwrap();
    for want in [
        format!("firewall = \"{layout}\""),
        "name = \"fixed\"\nsubnet = \"10.40.0.0/24\"\n".into(),
        "icc = false".into(),
        "network = [\"fixed\", \"usr\"]\nip = \"10.40.0.10\"".into(),
        "links = [\"db:database\"]".into(),
        "publish = [\"127.0.0.1:9000:9000\"]".into(),
        "name = \"idle\"\npublish = [\"7000:70\"]\nrunning = false".into(),
        "asked for a dynamic host port, pinned to the".into(),
    ] {
        assert!(written.contains(&want), "{want:?} not in:\n{written}");
    }
    let check = bridgelab().arg("check").arg(&file).output().unwrap();
    assert!(check.status.success(), "check: {}\n{written}", text(&check));

    let clean = real.audit();
    assert_eq!(clean.status.code(), Some(0), "audit of an untouched host:\n{}\n{written}", text(&clean));
    assert!(findings(&clean).is_empty());
    assert!(String::from_utf8_lossy(&clean.stdout).contains("no drift"));

    let iptables = Path::new("iptables");
    let out = real.in_netns(iptables, &[&["-w"][..], break_rule].concat());
    assert!(out.status.success(), "iptables {}: {}", break_rule.join(" "), text(&out));
    let drift = real.audit();
    assert_eq!(drift.status.code(), Some(1), "audit after iptables {}:\n{}", break_rule.join(" "), text(&drift));
    let found = findings(&drift);
    assert_eq!(found.len(), 1, "exactly the broken rule:\n{}", text(&drift));
    assert!(found[0].contains(broken), "{broken:?} not in {:?}", found[0]);
    real.down();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_host_imports_audits_clean_and_shows_a_deleted_rule() {
    // Docker's own DNAT of web's fixed port, deleted by hand.
    import_and_audit(
        Firewall::Docker20,
        "docker20",
        &[
            "-t",
            "nat",
            "-D",
            "DOCKER",
            "!",
            "-i",
            "docker0",
            "-p",
            "tcp",
            "-m",
            "tcp",
            "--dport",
            "8080",
            "-j",
            "DNAT",
            "--to-destination",
            "172.17.0.3:80",
        ],
        "removed  nat: -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.3:80",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_host_imports_audits_clean_and_shows_a_docker_user_rule() {
    import_and_audit(
        Firewall::Docker28,
        "docker28",
        &["-I", "DOCKER-USER", "-s", "10.9.9.0/24", "-j", "DROP"],
        "added    filter: -A DOCKER-USER -s 10.9.9.0/24 -j DROP  (a user's rule in DOCKER-USER",
    )
    .await;
}

// ---- without root: the captured outputs ----

use bridgelab::import::audit::{audit, infer, HostRules, Kind};
use bridgelab::import::{write, HostState, Options};

fn saved(layout: &str) -> HostState {
    HostState::from_dir(&fixtures(layout)).unwrap()
}

fn saved_rules(layout: &str) -> HostRules {
    let dir = fixtures(layout);
    HostRules {
        v4: std::fs::read_to_string(dir.join("iptables-save.txt")).unwrap(),
        v6: std::fs::read_to_string(dir.join("ip6tables-save.txt")).ok(),
        nft_json: None,
    }
}

#[test]
fn saved_outputs_import_into_a_scenario_that_plans_the_hosts_addresses() {
    for layout in ["docker20", "docker28"] {
        let h = saved(layout);
        let imported = write(&h, &Options::default()).unwrap();
        assert_eq!(imported.scenario.spec.daemon.firewall().to_string(), layout);
        // Every address Docker handed out is the plan's.
        for c in &h.containers {
            for (net, ep) in c.network_settings.networks.iter().flatten() {
                let Ok(ip) = ep.ip_address.parse::<std::net::Ipv4Addr>() else { continue };
                let plan = imported.plan.container(c.short_name()).unwrap();
                let planned = plan.endpoints.iter().find(|e| e.network == *net).unwrap().address.0.ip();
                assert_eq!(planned, ip, "{layout}: {} on {net}", c.short_name());
            }
        }
        // Docker's random bridge names map to the plan's.
        let usr = h.networks.iter().find(|n| n.name == "usr").unwrap().bridge().unwrap();
        assert!(imported.bridges.contains_key(&usr), "{layout}: {:?}", imported.bridges);
        assert_eq!(imported.notes.len(), 2, "{layout}: {:?}", imported.notes);
    }
}

#[test]
fn saved_rules_audit_clean_and_each_edit_is_its_finding() {
    for layout in ["docker20", "docker28"] {
        let imported = write(&saved(layout), &Options::default()).unwrap();
        let rules = saved_rules(layout);
        assert_eq!(audit(&imported, &rules).unwrap(), vec![], "{layout}");

        // A user's DOCKER-USER rule.
        let mut r = rules.clone();
        r.v4 = r.v4.replace(
            "-A FORWARD -j DOCKER-USER\n",
            "-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -s 10.9.9.0/24 -j DROP\n",
        );
        let f = audit(&imported, &r).unwrap();
        assert_eq!(f.len(), 1, "{layout}: {f:?}");
        assert_eq!((f[0].kind, f[0].line.as_str()), (Kind::Added, "-A DOCKER-USER -s 10.9.9.0/24 -j DROP"));

        // The last rule of Docker's longest filter chain moved to its head
        // (a tool that re-inserted it).
        let mut r = rules.clone();
        let filter = r.v4.split("COMMIT").next().unwrap().to_string();
        let chain_of = |l: &str| l.split_whitespace().nth(1).unwrap_or_default().to_string();
        let longest = filter
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(chain_of)
            .max_by_key(|c| filter.lines().filter(|l| chain_of(l) == *c).count())
            .unwrap();
        let head = format!("-A {longest} ");
        assert!(filter.lines().filter(|l| l.starts_with(&head)).count() >= 3, "{layout}: {longest}");
        let last = filter.lines().rfind(|l| l.starts_with(&head)).unwrap().to_string();
        r.v4 = r.v4.replace(&format!("{last}\n"), "").replacen(&head, &format!("{last}\n{head}"), 1);
        let f = audit(&imported, &r).unwrap();
        assert_eq!(f.len(), 1, "{layout}: {f:?}");
        assert_eq!((f[0].kind, f[0].line.as_str()), (Kind::Moved, last.as_str()));

        // A flush: only the policies are left.
        let mut r = rules.clone();
        r.v4 =
            r.v4.lines()
                .filter(|l| l.starts_with('*') || *l == "COMMIT" || (l.starts_with(':') && !l.ends_with(" -")))
                .collect::<Vec<_>>()
                .join("\n");
        let f = audit(&imported, &r).unwrap();
        assert!(f.iter().any(|x| x.kind == Kind::ChainRemoved && x.chain == "DOCKER"), "{layout}: {f:?}");
        assert!(f.iter().all(|x| x.kind != Kind::Added), "{layout}: {f:?}");
    }
}

#[test]
fn what_import_cannot_keep_is_said_in_the_file() {
    let mut h = saved("docker20");
    h.info.server_version = "24.0.7".into();
    // An address the plan does not give again (a container removed before it).
    let other = h.containers.iter_mut().find(|c| c.short_name() == "other").unwrap();
    other.network_settings.networks.as_mut().unwrap().get_mut("usr").unwrap().ip_address = "172.18.0.9".into();
    // --icc=false on the command line, but the default bridge says icc is on: inspect wins.
    h.add_daemon_args("--userland-proxy=false --ipv6 --icc=false");
    let imported = write(&h, &Options::default()).unwrap();
    let t = &imported.text;
    assert!(t.contains("# - Docker 24.0.7 is between layouts: written as docker20"), "{t}");
    assert!(t.contains("# - other has 172.18.0.9 on usr on the host, the plan gives it 172.18.0.3"), "{t}");
    assert!(t.contains("# - --ipv6=true left out"), "{t}");
    assert!(t.contains("\nuserland_proxy = false\n"), "{t}");
    assert!(!t.contains("dockerd's defaults assumed"), "{t}");
    let daemon = t.split("[daemon]").nth(1).unwrap().split("\n\n").next().unwrap();
    assert_eq!(daemon, "\nfirewall = \"docker20\"\nuserland_proxy = false", "{t}");
}

#[test]
fn the_verbs_read_saved_outputs_and_say_so_in_their_exit_codes() {
    let dir = fixtures("docker20");
    let out = bridgelab().arg("import").arg("--from").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("firewall = \"docker20\""));
    let out = bridgelab().arg("audit").arg("--from").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = tempfile::tempdir().unwrap();
    let rules = t.path().join("rules");
    let saved = std::fs::read_to_string(dir.join("iptables-save.txt")).unwrap();
    std::fs::write(&rules, saved.replacen("COMMIT\n", "-A INPUT -p tcp -m tcp --dport 22 -j DROP\nCOMMIT\n", 1))
        .unwrap();
    let out = bridgelab().arg("audit").arg("--from").arg(&dir).arg("--rules").arg(&rules).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        findings(&out),
        ["added    filter: -A INPUT -p tcp -m tcp --dport 22 -j DROP  (not Docker's: added by hand (iptables -I/-A) or by another firewall tool)"]
    );
    let out = bridgelab().arg("import").arg("--from").arg(t.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("containers.json"), "{}", text(&out));
}

/// Imports the setup of each shipped scenario in `files` from a real
/// daemon and audits it: the findings of each, by file.
async fn import_shipped(files: &[&str]) -> Vec<(String, Vec<String>, String)> {
    let mut out = Vec::new();
    for f in files {
        let path = common::scenario_path(f);
        let text = std::fs::read_to_string(&path).unwrap();
        let firewall = Scenario::parse(path.clone(), text.clone()).unwrap().spec.daemon.firewall();
        let real = real_host(firewall, &text).await;
        let h = HostState::from_docker(real.docker_cli(), &real.host_url()).unwrap();
        let rules = HostRules::read(real.host.netns_file("host").unwrap(), false).unwrap();
        let i = infer(&h, &Options::default(), &rules).unwrap();
        let found = i.findings.iter().map(|f| f.to_string()).collect();
        out.push((f.to_string(), found, i.imported.text.clone()));
        real.down();
    }
    out
}

/// Shipped topologies on real daemons, with the flags `docker info` does
/// not show (`--userland-proxy=false`, `--iptables=false`,
/// `--allow-direct-routing`, forwarding on before the daemon) read off the
/// rules: each imports and audits with no drift; the file whose host had a
/// user's FORWARD rule before the daemon started shows exactly that rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_topologies_import_from_real_daemons_with_no_drift() {
    common::require_root();
    let files = [
        "docker20-user-networks.toml",
        "docker20-links.toml",
        "docker20-bip-fixed-cidr.toml",
        "docker20-userland-proxy-off.toml",
        "docker20-iptables-off.toml",
        "docker20-forwarding.toml",
        "docker20-docker-user-rule.toml",
        "docker28-routed.toml",
        "docker28-isolated.toml",
        "docker28-nat-unprotected.toml",
        "docker28-proxy-off.toml",
        "docker28-direct-routing.toml",
    ];
    for (f, found, text) in import_shipped(&files).await {
        if f == "docker20-docker-user-rule.toml" {
            assert_eq!(
                found,
                ["added    filter: -A FORWARD -d 198.51.100.9/32 -i docker0 -j DROP  (not Docker's: added by hand \
                  (iptables -I/-A) or by another firewall tool)"],
                "{f}"
            );
        } else {
            assert_eq!(found, Vec::<String>::new(), "{f}:\n{text}");
        }
        let inferred = |key: &str| text.contains(key);
        match f.as_str() {
            "docker20-userland-proxy-off.toml" | "docker28-proxy-off.toml" => {
                assert!(inferred("\nuserland_proxy = false\n"), "{f}:\n{text}")
            }
            "docker20-iptables-off.toml" => assert!(inferred("\niptables = false\n"), "{f}:\n{text}"),
            "docker20-forwarding.toml" => assert!(inferred("[host]\nforwarding = true"), "{f}:\n{text}"),
            "docker28-direct-routing.toml" => assert!(inferred("\nallow_direct_routing = true\n"), "{f}:\n{text}"),
            _ => assert!(inferred("\nuserland_proxy = true\n") && !inferred("forwarding = true"), "{f}:\n{text}"),
        }
    }
}
