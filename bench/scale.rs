//! Setup and teardown of `N` containers (one published TCP port each) by
//! bridgelab, against the kernel's floor, interleaved in one process so the
//! ratios hold on a busy machine. Run as root:
//!
//!   sudo cargo bench --bench scale -- [--firewall docker1|docker20] [--reps R] [--networks K] [--cli] N...
//!
//! * floor: one thread `unshare`s a namespace per node and bind-mounts it
//!   (the host's first); one rtnetlink session in the host namespace then
//!   makes the bridge and, per container, a veth pair with its peer
//!   created in the container's namespace and the host end on the bridge
//!   and up, one request at a time, as `ip -batch` does. Teardown removes
//!   the namespace files.
//! * library: `Lab::up` then `RunningLab::verify` (what `bridgelab up`
//!   does, read-back included), and `RunningLab::down`.
//! * cli (with `--cli`): `bridgelab up FILE` and `bridgelab down ID` of the
//!   release binary, process start included.
//!
//! `RUST_LOG=bridgelab=debug` prints when each phase of a build ends.

#[path = "../tests/common/scale.rs"]
mod scale;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bridgelab::scenario::Scenario;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec};

const NETNS: &str = "/run/netns";

struct Floor {
    paths: Vec<PathBuf>,
    _files: Vec<File>,
}

/// Namespaces by `unshare` in one thread; the host's rtnetlink session is
/// opened while that thread is inside it.
fn floor_namespaces(n: usize) -> (Floor, rtnetlink::Handle) {
    let rt = tokio::runtime::Handle::current();
    bridgelab::apply::netns::share_dir(Path::new(NETNS)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _enter = rt.enter();
            let (mut paths, mut files, mut handle) = (Vec::new(), Vec::new(), None);
            for i in 0..=n {
                unshare(CloneFlags::CLONE_NEWNET).unwrap();
                let path = Path::new(NETNS).join(format!("bl-floor{}-{i}", std::process::id()));
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o0).open(&path).unwrap();
                mount(Some("/proc/thread-self/ns/net"), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
                files.push(File::open(&path).unwrap());
                paths.push(path);
                if i == 0 {
                    let (conn, h, _) = rtnetlink::new_connection().unwrap();
                    rt.spawn(conn);
                    handle = Some(h);
                }
            }
            (Floor { paths, _files: files }, handle.unwrap())
        })
        .join()
        .unwrap()
    })
}

async fn floor_up(n: usize) -> (Floor, Duration) {
    let start = Instant::now();
    let (floor, h) = floor_namespaces(n);
    tracing::debug!("floor: namespaces done at {:?}", start.elapsed());
    h.link().add(LinkBridge::new("br0").up().build()).execute().await.unwrap();
    let br = 2; // lo is 1 in a fresh namespace; the bridge is the next link.
    for i in 1..=n {
        let peer =
            LinkMessageBuilder::<LinkUnspec>::new().name("eth0".to_string()).setns_by_fd(floor._files[i].as_raw_fd());
        let veth = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(format!("veth{i}"))
            .set_info_data(rtnetlink::packet_route::link::InfoData::Veth(
                rtnetlink::packet_route::link::InfoVeth::Peer(peer.build()),
            ))
            .build();
        h.link().add(veth).execute().await.unwrap();
        let set = LinkUnspec::new_with_name(&format!("veth{i}")).controller(br).up().build();
        h.link().set(set).execute().await.unwrap();
    }
    (floor, start.elapsed())
}

fn floor_down(f: Floor) -> Duration {
    let start = Instant::now();
    drop(f._files);
    for p in f.paths.iter().rev() {
        bridgelab::apply::netns::remove(p).unwrap();
    }
    start.elapsed()
}

async fn lib_up_down(text: &str) -> (Duration, Duration, usize) {
    let scenario = Scenario::parse("scale.toml".into(), text.to_string()).unwrap();
    let lab = bridgelab::Lab::from_scenario(scenario).unwrap();
    let start = Instant::now();
    let running = lab.up().await.unwrap();
    let mismatches = running.verify().await.unwrap();
    let up = start.elapsed();
    assert!(mismatches.is_empty(), "{mismatches:?}");
    let start = Instant::now();
    running.down().unwrap();
    tracing::debug!("down: {:?}", start.elapsed());
    (up, start.elapsed(), mismatches.len())
}

fn cli_up_down(file: &Path) -> (Duration, Duration) {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/bridgelab");
    let start = Instant::now();
    let out = std::process::Command::new(&bin).arg("up").arg(file).output().unwrap();
    let up = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let id = text.split_whitespace().nth(1).unwrap().to_string();
    let start = Instant::now();
    let ok = std::process::Command::new(&bin).args(["down", &id]).status().unwrap().success();
    assert!(ok);
    (up, start.elapsed())
}

/// Waits for the kernel to free what the last run removed: 2 ms per
/// namespace, at least a quarter of a second (a bench, not a test: a
/// pause, not a synchronisation).
fn quiet(n: usize) {
    std::thread::sleep(Duration::from_millis(250.max(2 * n as u64)));
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    assert!(nix::unistd::geteuid().is_root(), "the benchmark builds namespaces: run it as root");
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut firewall, mut reps, mut networks, mut cli, mut ns) = ("docker1".to_string(), 3, 0, false, vec![]);
    let mut no_floor = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--firewall" => firewall = args.next().unwrap(),
            "--reps" => reps = args.next().unwrap().parse().unwrap(),
            "--networks" => networks = args.next().unwrap().parse().unwrap(),
            "--cli" => cli = true,
            // Only bridgelab (for `strace -c`, `perf`): the floor's column shows 0.
            "--no-floor" => no_floor = true,
            n => ns.push(n.parse::<usize>().unwrap()),
        }
    }
    if ns.is_empty() {
        ns = vec![100, 1000];
    }
    let dir = tempfile::tempdir().unwrap();
    println!("firewall = {firewall:?}, networks = {networks}, {reps} runs each, medians");
    println!(
        "{:>6} | {:>9} {:>9} | {:>9} {:>9} {:>6} | {:>9} {:>9}",
        "N", "floor up", "down", "lib up", "down", "ratio", "cli up", "down"
    );
    for n in ns {
        let text = scale::bridge_lab(&firewall, n, networks, 1);
        let file = dir.path().join(format!("scale-{n}.toml"));
        std::fs::write(&file, &text).unwrap();
        let (mut fu, mut fd, mut lu, mut ld, mut cu, mut cd) = (vec![], vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..reps {
            // The kernel frees removed namespaces later, in a work queue
            // that takes the RTNL lock: let the last run's go first.
            if !no_floor {
                quiet(n);
                let (f, t) = floor_up(n).await;
                fu.push(t);
                fd.push(floor_down(f));
            }
            quiet(n);
            let (u, d, _) = lib_up_down(&text).await;
            lu.push(u);
            ld.push(d);
            if cli {
                quiet(n);
                let (u, d) = cli_up_down(&file);
                cu.push(u);
                cd.push(d);
            }
        }
        let (fu, fd, lu, ld) = (median(fu), median(fd), median(lu), median(ld));
        let (cu, cd) = if cli { (ms(median(cu)), ms(median(cd))) } else { ("-".into(), "-".into()) };
        println!(
            "{n:>6} | {:>9} {:>9} | {:>9} {:>9} {:>5.2}x | {cu:>9} {cd:>9}",
            ms(fu),
            ms(fd),
            ms(lu),
            ms(ld),
            lu.as_secs_f64() / fu.as_secs_f64()
        );
    }
}
