//! Mutational fuzzing of parse → validate → plan → print.
//!
//! Each case is a shipped scenario (or an invalid one from `tests/invalid/`)
//! with a few mutations: flipped bytes, cut or doubled ranges, swapped
//! lines, lines from another file, known keys with odd values, huge numbers,
//! long strings, whole tables. Every case must end, within a time limit,
//! without a panic, in one of two ways:
//!
//! * refused: every line is `path:line:col: message`, and bounded;
//! * accepted: the plan (and the plan after every step) is one the kernel
//!   can build: namespace names within NAME_MAX, interface names the kernel
//!   takes, at most 1,023 ports per bridge, every veth peer and bridge
//!   master present. Text and JSON output work.
//!
//! `cargo test --test fuzz` runs a few hundred cases. A long run:
//!
//! ```sh
//! BRIDGELAB_FUZZ_SECS=600 BRIDGELAB_FUZZ_SEED=$RANDOM nice -n 10 \
//!     cargo test --release --test fuzz -- --nocapture
//! ```
//!
//! `BRIDGELAB_FUZZ_CASES` sets a number of cases instead, and
//! `BRIDGELAB_FUZZ_CASE_SECS` the limit per case (10 s). A finding is
//! written to `target/fuzz-findings/` with its seed and case number;
//! `BRIDGELAB_FUZZ_DUMP=N` writes case N there too, and
//! `BRIDGELAB_FUZZ_FIRST=N` starts at case N (replay with the seed).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bridgelab::plan::{LinkKind, Plan};
use bridgelab::scenario::Scenario;

/// xorshift64*: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "name",
    "about",
    "bridge",
    "bip",
    "fixed_cidr",
    "iptables",
    "ip_forward",
    "icc",
    "ip",
    "ip_masq",
    "mtu",
    "userland_proxy",
    "firewall",
    "backend",
    "nameservers",
    "routes",
    "address",
    "network",
    "mac",
    "publish",
    "expose",
    "links",
    "listen",
    "running",
    "from",
    "to",
    "probe",
    "result",
    "source",
    "timeout_ms",
    "retries",
    "do",
    "container",
    "subnet",
    "gateway",
    "ip_range",
    "internal",
];

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "67",
    "68",
    "1500",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "1e308",
    "-0.0",
    "nan",
    "inf",
    "0x10",
    "0o7",
    "1_000",
];

fn strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "a",
        "ab",
        "web",
        "db",
        "client",
        "host",
        "external",
        "none",
        "bridge",
        "docker0",
        "br0",
        "eth0",
        "lo",
        "container:web",
        "container:",
        "container:host",
        "host,bridge",
        "1-65535",
        "1-65535:1-65535",
        "0-65535",
        "65535",
        "65536",
        "0",
        "80",
        "8080:80",
        "127.0.0.1::80",
        "0.0.0.0:1-65535:1-65535/udp",
        "1.2.3.4:80:80/sctp",
        "80/udp",
        "5432",
        "90-80",
        "tcp:0",
        "tcp:65535",
        "udp:53",
        "icmp",
        "tcp:",
        "reachable",
        "refused",
        "blocked",
        "stop",
        "start",
        "restart",
        "remove",
        "run",
        "flush-iptables",
        "restart-daemon",
        "connect",
        "disconnect",
        "0.0.0.0",
        "255.255.255.255",
        "0.0.0.0/0",
        "172.17.42.1/16",
        "172.17.0.0/16",
        "10.0.0.1/30",
        "10.0.0.1/31",
        "10.0.0.1/32",
        "10.0.0.0/8",
        "127.0.0.1",
        "198.51.100.2",
        "198.51.100.0/24",
        "224.0.0.1",
        "02:42:ac:11:00:02",
        "ff:ff:ff:ff:ff:ff",
        "00:00:00:00:00:00",
        "02-42-ac-11-00-02",
        "0242.ac11.0002",
        "docker1",
        "docker20",
        "docker28",
        "iptables",
        "nftables",
        "db:db",
        "web:alias",
        "x:y:z",
        "../x",
        "a/b",
        "é",
        "\u{202e}",
        "\\u0000",
        "\\n",
        "a\\tb",
        "web@bridge",
        "host@nowhere",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("w".repeat(250));
    v.push("a".repeat(70_000));
    v.push("a b ".repeat(300));
    v.push(format!("c{}", "1".repeat(300)));
    v
}

/// Whole tables to drop in, with `{}` for a name.
const TABLES: &[&str] = &[
    "\n[[container]]\nname = \"{}\"\n",
    "\n[[container]]\nname = \"{}\"\npublish = [\"1-65535:1-65535\"]\n",
    "\n[[container]]\nname = \"{}\"\npublish = [\"1-28232\"]\n",
    "\n[[container]]\nname = \"{}\"\nnetwork = \"container:web\"\n",
    "\n[[container]]\nname = \"{}\"\nnetwork = \"host\"\npublish = [\"80\"]\n",
    "\n[[container]]\nname = \"{}\"\nrunning = false\nlinks = [\"web:w\"]\n",
    "\n[[container]]\nname = \"{}\"\nexpose = [\"1-65535\"]\n",
    "\n[[step]]\ndo = \"stop\"\ncontainer = \"{}\"\n",
    "\n[[step]]\ndo = \"start\"\ncontainer = \"{}\"\n",
    "\n[[step]]\ndo = \"remove\"\ncontainer = \"{}\"\n",
    "\n[[step]]\ndo = \"restart\"\ncontainer = \"{}\"\n",
    "\n[[step]]\ndo = \"run\"\n[step.container]\nname = \"{}\"\nlinks = [\"web:w\"]\n",
    "\n[[step]]\ndo = \"restart-daemon\"\n",
    "\n[[step]]\ndo = \"flush-iptables\"\n",
    "\n[[expect]]\nfrom = \"{}\"\nto = \"external\"\nprobe = \"tcp:80\"\nresult = \"blocked\"\n",
    "\n[[host.bridge]]\nname = \"{}\"\naddress = \"10.3.0.1/24\"\n",
    "\n[[network]]\nname = \"{}\"\nsubnet = \"10.4.0.0/24\"\n",
    "\n[daemon]\nbridge = \"{}\"\n",
];

/// The text of `name = value` for a random key and value.
fn random_line(rng: &mut Rng, strings: &[String]) -> String {
    let key = rng.pick(KEYS);
    let value = match rng.below(5) {
        0 => rng.pick(NUMBERS).to_string(),
        1 => if rng.below(2) == 0 { "true" } else { "false" }.to_string(),
        2 => format!("[\"{}\", \"{}\"]", rng.pick(strings), rng.pick(strings)),
        3 => format!("{{ name = \"{}\" }}", rng.pick(strings)),
        _ => format!("\"{}\"", rng.pick(strings)),
    };
    format!("{key} = {value}\n")
}

/// Positions just after each newline (and 0): where a line may go.
fn line_starts(b: &[u8]) -> Vec<usize> {
    std::iter::once(0).chain(b.iter().enumerate().filter(|(_, c)| **c == b'\n').map(|(i, _)| i + 1)).collect()
}

fn mutate(rng: &mut Rng, seeds: &[(PathBuf, String)], strings: &[String]) -> Vec<u8> {
    // Mostly the working scenarios, so that many cases get past the parser
    // into the simulator.
    let shipped = seeds.iter().filter(|(p, _)| p.parent().is_some_and(|d| d.ends_with("scenarios"))).count();
    let base = if rng.below(4) > 0 { rng.below(shipped) } else { rng.below(seeds.len()) };
    let mut b = seeds[base].1.clone().into_bytes();
    for _ in 0..1 + rng.below(3) {
        let len = b.len();
        let at = rng.below(len + 1);
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let end = (at + 1 + rng.below(64)).min(len);
                b.drain(at.min(end)..end);
            }
            2 if len > 0 => {
                let end = (at + 1 + rng.below(128)).min(len);
                let piece = b[at.min(end)..end].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, piece);
            }
            3 => {
                let starts = line_starts(&b);
                let to = *rng.pick(&starts);
                b.splice(to..to, random_line(rng, strings).into_bytes());
            }
            4 => {
                // Swap two lines.
                let text = String::from_utf8_lossy(&b).into_owned();
                let mut lines: Vec<&str> = text.lines().collect();
                if lines.len() > 1 {
                    let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(i, j);
                }
                b = (lines.join("\n") + "\n").into_bytes();
            }
            5 => {
                // A number in the file becomes an odd one.
                let digits: Vec<usize> = (0..len).filter(|i| b[*i].is_ascii_digit()).collect();
                if !digits.is_empty() {
                    let start = *rng.pick(&digits);
                    let end = (start..len).find(|i| !b[*i].is_ascii_digit()).unwrap_or(len);
                    b.splice(start..end, rng.pick(NUMBERS).bytes());
                }
            }
            6 => {
                // A quoted string's contents become another string.
                let quotes: Vec<usize> = (0..len).filter(|i| b[*i] == b'"').collect();
                if quotes.len() >= 2 {
                    let k = rng.below(quotes.len() - 1);
                    let (open, close) = (quotes[k], quotes[k + 1]);
                    b.splice(open + 1..close, rng.pick(strings).bytes());
                }
            }
            7 => {
                // Lines from another file.
                let other = &rng.pick(seeds).1;
                let lines: Vec<&str> = other.lines().collect();
                if !lines.is_empty() {
                    let from = rng.below(lines.len());
                    let n = 1 + rng.below(8);
                    let piece = lines[from..(from + n).min(lines.len())].join("\n") + "\n";
                    let starts = line_starts(&b);
                    let to = *rng.pick(&starts);
                    b.splice(to..to, piece.into_bytes());
                }
            }
            8 => {
                let name = rng.pick(strings).clone();
                let table = rng.pick(TABLES).replace("{}", &name);
                b.extend_from_slice(table.as_bytes());
            }
            9 => {
                // Many copies of a table: big scenarios.
                let table = *rng.pick(TABLES);
                for i in 0..rng.below(1500) {
                    b.extend_from_slice(table.replace("{}", &format!("n{i}")).as_bytes());
                }
            }
            _ => b.extend_from_slice(random_line(rng, strings).as_bytes()),
        }
    }
    b
}

/// What the kernel takes as an interface name (`dev_valid_name`).
fn kernel_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.bytes().any(|c| c == b'/' || c == b':' || c.is_ascii_whitespace())
}

/// Why `run` could not build this plan, if it could not.
fn unbuildable(plan: &Plan) -> Option<String> {
    let mut names = BTreeSet::new();
    let links_of: HashMap<&str, BTreeSet<&str>> =
        plan.nodes.iter().map(|n| (n.name.as_str(), n.links.iter().map(|l| l.name.as_str()).collect())).collect();
    for n in &plan.nodes {
        let ns = bridgelab::registry::namespace_name("0123456789abcdef", &n.name);
        if ns.len() > 255 || ns.contains('/') || !names.insert(ns.clone()) {
            return Some(format!("namespace name {ns:.80}… ({} bytes) for node {:.80}", ns.len(), n.name));
        }
        let mut links = BTreeSet::new();
        let mut ports: HashMap<&str, usize> = HashMap::new();
        let bridges: BTreeSet<&str> =
            n.links.iter().filter(|l| l.kind == LinkKind::Bridge).map(|l| l.name.as_str()).collect();
        for l in &n.links {
            if !kernel_ifname(&l.name) || !links.insert(l.name.as_str()) {
                return Some(format!("link {:?} in {:.80}", l.name, n.name));
            }
            if let Some(m) = &l.master {
                if !bridges.contains(m.as_str()) {
                    return Some(format!("{} has master {m}, no bridge of that name", l.name));
                }
                *ports.entry(m).or_default() += 1;
            }
            if let LinkKind::Veth { peer_node, peer, .. } = &l.kind {
                if !links_of.get(peer_node.as_str()).is_some_and(|l| l.contains(peer.as_str())) {
                    return Some(format!("veth {} has no peer {peer_node:.80}:{peer}", l.name));
                }
            }
            if !(68..=65536).contains(&l.mtu_expected) {
                return Some(format!("mtu {} on {}", l.mtu_expected, l.name));
            }
        }
        if let Some((br, n)) = ports.iter().find(|(_, n)| **n > 1023) {
            return Some(format!("{n} ports on bridge {br}"));
        }
    }
    if let Some(m) = plan.port_mappings.iter().find(|m| m.host_port == 0 || m.container_port == 0) {
        return Some(format!("port mapping {m}"));
    }
    None
}

/// One case, start to end; `Err` says what is wrong with the outcome.
fn one_case(text: String) -> Result<&'static str, String> {
    let scenario = match Scenario::parse("case.toml".into(), text) {
        Ok(s) => s,
        Err(d) => return refused(&d.to_string()),
    };
    let plan = match bridgelab::plan::plan(&scenario) {
        Ok(p) => p,
        Err(d) => return refused(&d.to_string()),
    };
    let mut size = 0;
    for (i, p) in std::iter::once(&plan).chain(plan.steps.iter().map(|s| &s.after)).enumerate() {
        if let Some(why) = unbuildable(p) {
            return Err(format!("accepted, but run could not build it (after step {i}): {why}"));
        }
        size += bridgelab::plan::limits::plan_size(p);
    }
    // Printing is linear in the plan's size, which is bounded; a plan near
    // the bound takes seconds to print in a debug build, so only smaller
    // ones are printed here.
    if size < 200_000 {
        let _ = plan.to_string();
        serde_json::to_string(&plan).map_err(|e| format!("JSON: {e}"))?;
    }
    Ok("accepted")
}

fn refused(message: &str) -> Result<&'static str, String> {
    if message.is_empty() {
        return Err("refused without a message".into());
    }
    for line in message.lines() {
        let rest = line.strip_prefix("case.toml:").ok_or_else(|| format!("no path: {line:.200}"))?;
        let mut parts = rest.splitn(3, ':');
        let located = parts.next().is_some_and(|l| l.parse::<usize>().is_ok())
            && parts.next().is_some_and(|c| c.parse::<usize>().is_ok());
        if !located {
            return Err(format!("no line:col: {line:.200}"));
        }
        if line.chars().count() > 600 {
            return Err(format!("a line of {} characters: {line:.200}", line.chars().count()));
        }
    }
    Ok("refused")
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// Where cases that fail (or are asked for) are written.
fn findings() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn seeds() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for dir in ["scenarios", "tests/invalid"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files.into_iter().filter(|f| f.extension().is_some_and(|x| x == "toml")) {
            let text = std::fs::read_to_string(&f).unwrap();
            v.push((f, text));
        }
    }
    v
}

#[test]
fn mutated_scenarios_never_panic_hang_or_pass_check_unbuildable() {
    let seed = env_num("BRIDGELAB_FUZZ_SEED").unwrap_or(0x5eed);
    let budget = env_num("BRIDGELAB_FUZZ_SECS").map(Duration::from_secs);
    let cases = env_num("BRIDGELAB_FUZZ_CASES").unwrap_or(if budget.is_some() { u64::MAX } else { 300 });
    let limit = Duration::from_secs(env_num("BRIDGELAB_FUZZ_CASE_SECS").unwrap_or(10));
    let seeds = seeds();
    let strings = strings();
    let start = Instant::now();
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut slowest = (Duration::ZERO, 0);
    let first = env_num("BRIDGELAB_FUZZ_FIRST").unwrap_or(0);
    let mut n = first;
    let cases = cases.saturating_add(first);
    while n < cases && budget.is_none_or(|b| start.elapsed() < b) {
        let mut rng = Rng::new(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let bytes = mutate(&mut rng, &seeds, &strings);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if env_num("BRIDGELAB_FUZZ_DUMP") == Some(n) {
            let file = findings().join(format!("seed-{seed}-case-{n}.toml"));
            std::fs::write(&file, &bytes).unwrap();
            eprintln!("case {n} is in {}", file.display());
        }
        let (tx, rx) = mpsc::channel();
        let input = text.clone();
        let began = Instant::now();
        std::thread::Builder::new()
            .name(format!("case {n}"))
            .spawn(move || {
                let r = std::panic::catch_unwind(|| one_case(input));
                let _ = tx.send(r);
            })
            .unwrap();
        let outcome = match rx.recv_timeout(limit) {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(format!("panicked: {msg}"))
            }
            Err(_) => Err(format!("still running after {limit:?}")),
        };
        let took = began.elapsed();
        if took > slowest.0 {
            slowest = (took, n);
        }
        match outcome {
            Ok(kind) => *counts.entry(kind).or_default() += 1,
            Err(why) => {
                let file = findings().join(format!("seed-{seed}-case-{n}.toml"));
                std::fs::write(&file, &bytes).unwrap();
                panic!(
                    "case {n} (BRIDGELAB_FUZZ_SEED={seed}): {why:.400}\nthe case is in {}\nafter {n} cases in {:?}",
                    file.display(),
                    start.elapsed()
                );
            }
        }
        n += 1;
    }
    eprintln!(
        "fuzz: seed {seed}, {} cases in {:.0?}: {} accepted, {} refused; slowest case {} took {:.0?}",
        n - first,
        start.elapsed(),
        counts.get("accepted").unwrap_or(&0),
        counts.get("refused").unwrap_or(&0),
        slowest.1,
        slowest.0
    );
    assert!(n > first);
}
