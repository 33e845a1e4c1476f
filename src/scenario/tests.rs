//! Loading and validation, one case per message a user can meet.

use super::*;
use rstest::rstest;

fn parse(text: &str) -> Result<Scenario, Diagnostics> {
    Scenario::parse("t.toml".into(), text.to_string())
}

fn first_error(text: &str) -> String {
    parse(text).expect_err("scenario should be rejected").to_string().lines().next().unwrap().to_string()
}

#[test]
fn the_formats_example_loads() {
    let s = parse(
        r#"
name  = "icc-off-published-port"
about = "x"
[daemon]
icc = false
[[container]]
name    = "web"
publish = ["8080:80/tcp"]
listen  = ["tcp:80"]
[[container]]
name   = "client"
[[expect]]
from = "client"
to = "web"
probe = "tcp:80"
result = "blocked"
[[expect]]
from = "external"
to = "host"
probe = "tcp:8080"
result = "reachable"
source = "external"
"#,
    )
    .unwrap();
    assert_eq!(s.name, "icc-off-published-port");
    assert!(!s.spec.daemon.icc());
    assert_eq!(s.containers().len(), 2);
    assert_eq!(s.spec.expects[1].source.as_ref().unwrap().get_ref(), "external");
}

#[test]
fn every_section_parses() {
    let s = parse(
        r#"
[daemon]
bip = "10.9.0.1/24"
fixed_cidr = "10.9.0.128/25"
iptables = true
ip_forward = false
icc = true
ip = "127.0.0.1"
ip_masq = false
mtu = 1400
firewall = "docker1"
backend = "iptables"
[host]
nameservers = ["10.0.0.2"]
routes = ["172.17.0.0/16"]
[[host.bridge]]
name = "br0"
address = "192.168.5.1/24"
[[container]]
name = "db"
expose = ["5432/tcp"]
[[container]]
name = "web"
ip = "10.9.0.200"
mac = "02:42:0a:09:00:c8"
publish = ["8080:80", "127.0.0.1::81/udp"]
links = ["db:database"]
listen = ["tcp:80", "udp:53"]
running = false
[[container]]
name = "side"
network = "container:web"
[external]
listen = ["tcp:443"]
routes = ["10.9.0.0/24"]
[probe]
timeout_ms = 100
retries = 2
[snapshot]
addresses = true
links = true
[[step]]
do = "stop"
container = "web"
[[step.expect]]
from = "external"
to = "db"
probe = "icmp"
result = "blocked"
[[step]]
do = "run"
[step.container]
name = "late"
[[step]]
do = "flush-iptables"
"#,
    )
    .unwrap();
    assert_eq!(s.spec.daemon.mtu(), 1400);
    assert_eq!(s.spec.host.bridges[0].address.as_ref().unwrap().get_ref().to_string(), "192.168.5.1/24");
    assert_eq!(s.spec.steps.len(), 3);
    assert!(s.node_names().contains("late"));
    assert_eq!(*s.spec.probe.timeout_ms.get_ref(), 100);
}

#[rstest]
#[case::unknown_key("[daemon]\nicc = false\nbogus = 1\n", "3:1", "unknown field `bogus`")]
#[case::wrong_type("[daemon]\nicc = \"no\"\n", "2:7", "invalid type: string \"no\", expected a boolean")]
#[case::bad_cidr("[host]\nroutes = [\"10.0.0.0/40\"]\n", "2:10", "invalid CIDR address: 10.0.0.0/40")]
#[case::bad_ip("[daemon]\nip = \"1.2.3\"\n", "2:6", "invalid IP address: 1.2.3")]
#[case::bad_name(
    "[[container]]\nname = \"-x\"\n",
    "2:8",
    "Invalid container name (-x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
)]
#[case::duplicate_name(
    "[[container]]\nname = \"ab\"\n[[container]]\nname = \"ab\"\n",
    "4:8",
    "Conflict. The name \"ab\" is already in use"
)]
#[case::reserved_name("[[container]]\nname = \"host\"\n", "2:8", "reserved")]
#[case::unknown_node(
    "[[container]]\nname = \"ab\"\n[[expect]]\nfrom = \"zz\"\nto = \"ab\"\nprobe = \"icmp\"\nresult = \"blocked\"\n",
    "4:8",
    "unknown node \"zz\""
)]
#[case::unknown_network("[[container]]\nname = \"ab\"\nnetwork = \"nets\"\n", "3:11", "network nets not found")]
#[case::unknown_link("[[container]]\nname = \"ab\"\nlinks = [\"db:x\"]\n", "3:10", "Could not get container for db")]
#[case::b_and_bip(
    "[daemon]\nbridge = \"br0\"\nbip = \"10.1.0.1/24\"\n[[host.bridge]]\nname = \"br0\"\naddress = \"10.1.0.1/24\"\n",
    "3:7",
    "You specified -b & --bip, mutually exclusive options. Please specify only one."
)]
#[case::iptables_icc(
    "[daemon]\niptables = false\nicc = false\n",
    "3:7",
    "You specified --iptables=false with --icc=false. ICC uses iptables to function. Please set --icc or --iptables to true."
)]
#[case::bridge_not_found("[daemon]\nbridge = \"br9\"\n", "2:10", "bridge not found: br9")]
#[case::bad_publish(
    "[[container]]\nname = \"ab\"\npublish = [\"8000-8002:80-81\"]\n",
    "3:11",
    "Invalid ranges specified for container and host Ports: 80-81 and 8000-8002"
)]
#[case::host_and_links(
    "[[container]]\nname = \"db\"\n[[container]]\nname = \"ab\"\nnetwork = \"host\"\nlinks = [\"db:d\"]\n",
    "6:10",
    "Conflicting options: --net=host can't be used with links."
)]
#[case::step_unknown_container("[[step]]\ndo = \"stop\"\ncontainer = \"nope\"\n", "3:13", "No such container: nope")]
#[case::predefined_network(
    "[daemon]\nfirewall = \"docker20\"\n[[network]]\nname = \"host\"\n",
    "4:8",
    "operation is not permitted on predefined host network"
)]
#[case::gateway_outside_subnet(
    "[daemon]\nfirewall = \"docker20\"\n[[network]]\nname = \"x4\"\nsubnet = \"10.31.0.0/24\"\ngateway = \"10.32.0.1\"\n",
    "6:11",
    "no matching subnet for gateway 10.32.0.1"
)]
#[case::range_outside_subnet(
    "[daemon]\nfirewall = \"docker20\"\n[[network]]\nname = \"x5\"\nsubnet = \"10.33.0.0/24\"\nip_range = \"10.34.0.0/25\"\n",
    "6:12",
    "no matching subnet for range 10.34.0.0/25"
)]
#[case::gateway_without_subnet(
    "[daemon]\nfirewall = \"docker20\"\n[[network]]\nname = \"x6\"\ngateway = \"10.32.0.1\"\n",
    "5:11",
    "every ip-range or gateway must have a corresponding subnet"
)]
#[case::bip_and_bridge_on_docker20(
    "[daemon]\nfirewall = \"docker20\"\nbridge = \"docker0\"\nbip = \"10.1.0.1/24\"\n",
    "4:7",
    "You specified -b & --bip, mutually exclusive options. Please specify only one"
)]
#[case::ips_not_a_further_network(
    "[daemon]\nfirewall = \"docker20\"\n[[network]]\nname = \"aa\"\n[[container]]\nname = \"cc\"\nnetwork = \"aa\"\nips = { aa = \"10.0.0.1\" }\n",
    "8:14",
    "ips: aa is not one of the networks after the first"
)]
#[case::forwarding_on_docker1("[host]\nforwarding = true\n", "2:14", "Docker 1.6.2 never sets one")]
#[case::network_needs_docker20("[[network]]\nname = \"n1\"\n", "2:8", "need firewall = \"docker20\"")]
#[case::bad_toml("[daemon\n", "1:8", "")]
#[case::route_on_the_uplink("[host]\nroutes = [\"198.51.100.128/25\"]\n", "2:11", "collides with the lab's uplink")]
#[case::default_route("[host]\nroutes = [\"0.0.0.0/0\"]\n", "2:11", "would replace the lab's default route")]
#[case::bip_on_loopback("[daemon]\nbip = \"127.1.0.1/16\"\n", "2:7", "collides with loopback")]
#[case::scenario_name("name = \"../x\"\n", "1:8", "invalid scenario name")]
#[case::removed_container_is_gone(
    "[[container]]\nname = \"ab\"\n[[step]]\ndo = \"remove\"\ncontainer = \"ab\"\n[[step]]\ndo = \"stop\"\ncontainer = \"ab\"\n",
    "8:13",
    "No such container: ab"
)]
fn mistakes_point_at_their_line_and_column(#[case] text: &str, #[case] at: &str, #[case] msg: &str) {
    let e = first_error(text);
    let want = format!("t.toml:{at}: ");
    assert!(e.starts_with(&want), "{e:?} should start with {want:?}");
    assert!(e.contains(msg), "{e:?} should contain {msg:?}");
}

#[test]
fn all_mistakes_are_reported_in_file_order() {
    let e = parse("[[container]]\nname = \"-a\"\n[[container]]\nname = \"-b\"\n").unwrap_err();
    let lines: Vec<(usize, usize, &str)> = e.located();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0].0, lines[1].0), (2, 4));
}

#[test]
fn a_removed_name_can_be_used_again() {
    parse("[[container]]\nname = \"ab\"\n[[step]]\ndo = \"remove\"\ncontainer = \"ab\"\n[[step]]\ndo = \"run\"\n[step.container]\nname = \"ab\"\n")
        .unwrap();
}

#[test]
fn an_overlapping_subnet_names_an_earlier_network_it_overlaps() {
    let e = parse(
        "[daemon]\nfirewall = \"docker20\"\n\
         [[network]]\nname = \"n1\"\nsubnet = \"10.0.0.0/16\"\n\
         [[network]]\nname = \"n2\"\nsubnet = \"10.0.1.0/24\"\n\
         [[network]]\nname = \"n3\"\nsubnet = \"10.0.0.0/8\"\n\
         [[network]]\nname = \"n4\"\nsubnet = \"192.168.0.0/24\"\n\
         [[network]]\nname = \"n5\"\nsubnet = \"10.0.1.128/25\"\n",
    )
    .unwrap_err();
    let lines: Vec<String> = e.to_string().lines().map(String::from).collect();
    assert_eq!(
        lines,
        [
            "t.toml:8:10: Pool overlaps with other one on this address space: 10.0.1.0/24 overlaps network n1",
            "t.toml:11:10: Pool overlaps with other one on this address space: 10.0.0.0/8 overlaps network n1",
            "t.toml:17:10: Pool overlaps with other one on this address space: 10.0.1.128/25 overlaps network n1",
        ]
    );
}

#[test]
fn via_names_the_host_on_a_link_the_sender_has_when_it_sends() {
    let s = parse(
        r#"
[daemon]
firewall = "docker20"
[external]
routes = ["172.17.0.0/16"]
[[network]]
name = "back"
[[container]]
name = "web"
[[container]]
name = "side"
network = "container:web"
[[expect]]
from = "external"
to = "127.0.0.1"
via = "host"
probe = "tcp:80"
result = "blocked"
[[expect]]
from = "side"
to = "127.0.0.1"
via = "host@bridge"
probe = "tcp:80"
result = "blocked"
[[step]]
do = "connect"
container = "web"
network = "back"
[[step.expect]]
from = "side"
to = "127.0.0.1"
via = "host@back"
probe = "tcp:80"
result = "blocked"
[[step]]
do = "disconnect"
container = "web"
network = "back"
[[step.expect]]
from = "web"
to = "127.0.0.1"
via = "host@back"
probe = "tcp:80"
result = "blocked"
"#,
    );
    // Only the last: web left `back` in the step before it.
    let err = s.expect_err("the last via is refused").to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("t.toml:42:7: via: container web is not connected to network back here"), "{err}");
}

#[test]
fn via_splits_into_the_neighbour_and_its_network() {
    let s = parse(
        r#"
[daemon]
firewall = "docker20"
[[container]]
name = "web"
[[expect]]
from = "web"
to = "127.0.0.1"
via = "host@bridge"
probe = "icmp"
result = "blocked"
[[expect]]
from = "external"
to = "127.0.0.1"
probe = "icmp"
result = "blocked"
"#,
    )
    .unwrap();
    assert_eq!(s.spec.expects[0].via(), Some(("host", Some("bridge"))));
    assert_eq!(s.spec.expects[1].via(), None);
}

const VERSIONED: &str = r#"
name = "v"
versions = ["docker1", "docker20", "docker28", "docker29"]
[[container]]
name = "web"
listen = ["udp:53"]
[[expect]]
from = "external"
to = "web"
probe = "icmp"
result_by_version = { docker1 = "reachable", docker20 = "blocked", docker28 = "refused", docker29 = "blocked" }
[[step]]
do = "flow"
name = "dns"
from = "external"
to = "host"
probe = "udp:53"
interval_ms = 50
[[step.expect]]
flow = "dns"
to = "web"
result = "refused"
"#;

#[test]
fn under_another_version_a_file_keeps_its_results_and_is_checked_again() {
    // A file without versions, under each layout: its plain results hold.
    let plain = parse("[daemon]\nfirewall = \"docker20\"\n[[container]]\nname = \"web\"\n[[expect]]\nfrom = \"external\"\nto = \"web\"\nprobe = \"icmp\"\nresult = \"blocked\"\n").unwrap();
    let under1 = plain.under(Firewall::Docker1).unwrap();
    assert_eq!(under1.name, "t@docker1");
    assert_eq!(under1.version, Some(Firewall::Docker1));
    assert_eq!(under1.spec.daemon.firewall(), Firewall::Docker1);
    assert_eq!(under1.spec.expects[0].wanted(), Some(Verdict::Blocked));
    // A versioned file under a version it does not list: results named
    // for other versions are not checked there; a plain one still is.
    let s = parse(VERSIONED).unwrap();
    let other = s.under(Firewall::Docker28).unwrap();
    assert_eq!(other.spec.expects[0].wanted(), Some(Verdict::Refused));
    let trimmed = VERSIONED.replace(", docker28 = \"refused\"", "").replace(", \"docker28\"", "");
    let t = parse(&trimmed).unwrap();
    let unlisted = t.under(Firewall::Docker28).unwrap();
    assert_eq!(unlisted.spec.expects[0].wanted(), None);
    assert!(unlisted.spec.expects[0].met_by(Some(Verdict::Blocked)));
    assert!(!unlisted.spec.expects[0].met_by(None));
    assert_eq!(unlisted.spec.steps[0].expects[0].wanted(), Some(Verdict::Refused));
    // A key the version lacks is an error that says under which.
    let nets = parse("[daemon]\nfirewall = \"docker20\"\n[[network]]\nname = \"back\"\n[[container]]\nname = \"web\"\nnetwork = \"back\"\n").unwrap();
    let e = nets.under(Firewall::Docker1).unwrap_err().to_string();
    assert!(e.contains("(under docker1)"), "{e}");
    assert!(nets.under(Firewall::Docker28).is_ok());
}

#[test]
fn a_file_with_versions_runs_once_per_version_each_with_its_own_result() {
    let s = parse(VERSIONED).unwrap();
    // The file itself keeps what was written.
    assert!(s.spec.expects[0].result.is_none());
    let runs = s.variants();
    let got: Vec<(String, Option<Firewall>, Firewall, Verdict)> = runs
        .iter()
        .map(|r| (r.name.clone(), r.version, r.spec.daemon.firewall(), r.spec.expects[0].result()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("v@docker1".into(), Some(Firewall::Docker1), Firewall::Docker1, Verdict::Reachable),
            ("v@docker20".into(), Some(Firewall::Docker20), Firewall::Docker20, Verdict::Blocked),
            ("v@docker28".into(), Some(Firewall::Docker28), Firewall::Docker28, Verdict::Refused),
            ("v@docker29".into(), Some(Firewall::Docker29), Firewall::Docker29, Verdict::Blocked),
        ]
    );
    for r in &runs {
        assert!(r.spec.versions.is_none() && r.spec.expects[0].result_by_version.is_none());
        // A plain `result` holds under every version.
        assert_eq!(r.spec.steps[0].expects[0].result(), Verdict::Refused);
    }
    // A file without versions is its own single run.
    let plain = parse("[[container]]\nname = \"web\"\n").unwrap();
    assert_eq!(plain.variants().len(), 1);
    assert_eq!(plain.variants()[0].version, None);
}

#[test]
fn source_by_version_gives_each_version_its_source_or_none() {
    let text = r#"versions = ["docker20", "docker28"]
[[container]]
name = "web"
publish = ["8080:80"]
listen = ["tcp:80"]
[[expect]]
from = "external"
to = "host"
probe = "tcp:8080"
result = "reachable"
source_by_version = { docker20 = "host" }
"#;
    let runs = parse(text).unwrap().variants();
    let got: Vec<Option<String>> =
        runs.iter().map(|r| r.spec.expects[0].source.as_ref().map(|s| s.get_ref().clone())).collect();
    assert_eq!(got, [Some("host".to_string()), None]);
    assert!(runs.iter().all(|r| r.spec.expects[0].source_by_version.is_none()));
    let both = text.replace("source_by_version", "source = \"external\"\nsource_by_version");
    assert!(first_error(&both).contains("give either source"), "{}", first_error(&both));
    let unlisted = text.replace("docker20 = \"host\"", "docker1 = \"host\"");
    assert!(first_error(&unlisted).contains("source_by_version: docker1 is not one of the top-level versions"));
    let bare = text.replace("versions = [\"docker20\", \"docker28\"]\n", "");
    assert!(first_error(&bare).contains("source_by_version needs top-level versions"), "{}", first_error(&bare));
}

#[test]
fn fails_by_version_gives_each_version_its_message_or_success() {
    let text = r#"versions = ["docker1", "docker20", "docker28"]
[[container]]
name = "web"
[[step]]
do = "start"
container = "web"
fails_by_version = { docker20 = "a", docker28 = "failed to set up container networking: a" }
"#;
    let runs = parse(text).unwrap().variants();
    let got: Vec<Option<String>> =
        runs.iter().map(|r| r.spec.steps[0].fails.as_ref().map(|s| s.get_ref().clone())).collect();
    assert_eq!(got, [None, Some("a".into()), Some("failed to set up container networking: a".into())]);
    assert!(runs.iter().all(|r| r.spec.steps[0].fails_by_version.is_none()));
    let both = text.replace("fails_by_version", "fails = \"a\"\nfails_by_version");
    assert!(first_error(&both).contains("give either fails"), "{}", first_error(&both));
    let unlisted = text.replace("docker20 = \"a\"", "docker29 = \"a\"");
    assert!(first_error(&unlisted).contains("fails_by_version: docker29 is not one of the top-level versions"));
    let bare = text.replace("versions = [\"docker1\", \"docker20\", \"docker28\"]\n", "");
    assert!(first_error(&bare).contains("fails_by_version needs top-level versions"), "{}", first_error(&bare));
}

#[test]
fn an_expectation_on_a_flow_gets_the_flows_sender_and_probe() {
    let s = parse(VERSIONED).unwrap();
    let e = &s.spec.steps[0].expects[0];
    assert_eq!(e.from().get_ref(), "external");
    assert_eq!(e.probe(), ProbeSpec::Udp(53));
    // Pointing at the `flow` key, for reports.
    let flow_span = e.flow.as_ref().unwrap().span();
    assert_eq!(e.from().span(), flow_span);
    assert_eq!(*s.spec.steps[0].interval_ms.as_ref().unwrap().get_ref(), 50);
}

#[test]
fn a_mistake_under_some_versions_only_says_which() {
    let text = "versions = [\"docker1\", \"docker20\"]\n[daemon]\nuserland_proxy = false\n";
    let err = first_error(text);
    assert!(err.ends_with("(under docker1)"), "{err}");
    // One said under every version is said once, as is.
    let text = "versions = [\"docker1\", \"docker20\"]\n[[container]]\nname = \"x\"\n";
    let err = parse(text).unwrap_err().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("(under"), "{err}");
}
