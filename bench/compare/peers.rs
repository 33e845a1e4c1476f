//! The tools compared: bridgelab (library and CLI), netavark, the CNI
//! reference plugins, a shell script and the floor. Each builds N
//! containers on one bridge, each publishing one TCP port (host port
//! 10000 + i to container port 80), then removes them. Setup and teardown
//! run from nothing to N connected container namespaces and back: a peer's
//! container namespaces are made (and removed) inside its timing, as
//! bridgelab makes and removes its own.

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use serde_json::{json, Value};

use crate::ns::{self, BenchRecord, Ns};

pub type Res<T> = Result<T, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    Lib,
    Cli,
    Netavark,
    Cni,
    Shell,
    Floor,
}

pub const TOOLS: [Tool; 6] = [Tool::Lib, Tool::Cli, Tool::Netavark, Tool::Cni, Tool::Shell, Tool::Floor];

impl Tool {
    pub fn key(self) -> &'static str {
        match self {
            Tool::Lib => "lib",
            Tool::Cli => "cli",
            Tool::Netavark => "netavark",
            Tool::Cni => "cni",
            Tool::Shell => "shell",
            Tool::Floor => "floor",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Tool::Lib => "bridgelab Lab::up/down",
            Tool::Cli => "bridgelab up/down (CLI)",
            Tool::Netavark => "netavark 1.4 (Debian)",
            Tool::Cni => "CNI bridge+host-local+portmap",
            Tool::Shell => "shell script (ip + iptables)",
            Tool::Floor => "floor (unshare + netlink)",
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub setup: Duration,
    pub teardown: Duration,
    /// Peak RSS of the process that built the lab, kB (the CLI's `up`).
    pub max_rss_kb: Option<u64>,
}

pub struct Ctx<'a> {
    pub rt: &'a tokio::runtime::Runtime,
    pub record: &'a BenchRecord,
    pub tmp: &'a Path,
    pub bridgelab: &'a Path,
    pub firewall: &'a str,
}

pub const NETAVARK: &str = "/usr/lib/podman/netavark";
pub const CNI_PATH: &str = "/usr/lib/cni";

/// Why a peer cannot run here, said once, before anything is measured.
pub fn missing(tool: Tool) -> Option<String> {
    if matches!(tool, Tool::Netavark | Tool::Cni | Tool::Shell) && which("iptables").is_none() {
        return Some("iptables is not on PATH".into());
    }
    match tool {
        Tool::Netavark if !Path::new(NETAVARK).exists() => {
            Some(format!("{NETAVARK} is missing: install Debian's netavark (apt-get install -y netavark)"))
        }
        Tool::Cni => ["bridge", "host-local", "portmap"]
            .iter()
            .find(|p| !Path::new(CNI_PATH).join(p).exists())
            .map(|p| format!("{CNI_PATH}/{p} is missing: apt-get install -y containernetworking-plugins")),
        _ => None,
    }
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(prog)).find(|p| p.exists())
}

pub fn run(tool: Tool, ctx: &Ctx, n: usize, round: usize) -> Res<Times> {
    match tool {
        Tool::Lib => lib(ctx, n),
        Tool::Cli => cli(ctx, n),
        Tool::Netavark => netavark(ctx, n, round),
        Tool::Cni => cni(ctx, n, round),
        Tool::Shell => shell(ctx, n, round),
        Tool::Floor => floor(ctx, n, round),
    }
}

/// The scenario of N containers on Docker's default bridge, each publishing
/// one TCP port, as bridgelab reads it.
pub fn scenario_text(firewall: &str, n: usize) -> String {
    let mut s = format!("name = \"bench-{n}\"\nabout = \"{n} containers, one published port each\"\n[daemon]\nfirewall = \"{firewall}\"\n");
    for i in 0..n {
        s.push_str(&format!("[[container]]\nname = \"c{i}\"\npublish = [\"{}:80\"]\n", 10000 + i));
    }
    s
}

fn scenario_file(ctx: &Ctx, n: usize) -> Res<PathBuf> {
    let path = ctx.tmp.join(format!("bench-{n}.toml"));
    if !path.exists() {
        std::fs::write(&path, scenario_text(ctx.firewall, n)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path)
}

/// Asserts that a bridgelab lab's namespaces are gone.
fn gone(run_id: &str) -> Res<()> {
    let left: Vec<String> = bridgelab::registry::lab_namespaces()
        .into_iter()
        .filter(|n| bridgelab::registry::run_id_of(n) == Some(run_id))
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("lab {run_id} left {} namespaces behind", left.len()))
    }
}

/// bridgelab through the library: parse, plan, `Lab::up`, read back
/// (`verify`, which must find nothing), then `down`.
fn lib(ctx: &Ctx, n: usize) -> Res<Times> {
    let path = scenario_file(ctx, n)?;
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    ctx.rt.block_on(async {
        let start = Instant::now();
        let scenario = bridgelab::Scenario::parse(path.clone(), text).map_err(|e| e.to_string())?;
        let lab = bridgelab::Lab::from_scenario(scenario).map_err(|e| e.to_string())?;
        let running = lab.up().await.map_err(|e| e.to_string())?;
        let mismatches = running.verify().await.map_err(|e| e.to_string())?;
        let setup = start.elapsed();
        if !mismatches.is_empty() {
            return Err(format!("the lab differs from its plan: {}", mismatches[0]));
        }
        let id = running.run_id().to_string();
        let start = Instant::now();
        running.down().map_err(|e| e.to_string())?;
        let teardown = start.elapsed();
        gone(&id)?;
        Ok(Times { setup, teardown, max_rss_kb: None })
    })
}

/// bridgelab's CLI: `bridgelab up FILE` (which reads the lab back and
/// exits 1 if it differs), its peak RSS from wait4, then `bridgelab down`.
///
/// `up` is started by a fresh copy of this bench (`__rusage`, see
/// [`rusage_main`]), not by the bench itself: a child's `ru_maxrss` starts
/// at its parent's RSS when it forks, since the kernel records the old
/// address space's high-water mark at exec. Spawned straight from a bench
/// that has built labs of 1,000 in-process, `up` would report the bench's
/// peak (65–81 MiB) instead of its own (36 MiB).
fn cli(ctx: &Ctx, n: usize) -> Res<Times> {
    let path = scenario_file(ctx, n)?;
    let exe = std::env::current_exe().map_err(|e| format!("the bench's own path: {e}"))?;
    let out = Command::new(exe)
        .arg(RUSAGE_ARG)
        .arg(ctx.bridgelab)
        .arg("up")
        .arg(&path)
        .output()
        .map_err(|e| format!("{}: {e}", ctx.bridgelab.display()))?;
    let out_text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    let Some((status, max_rss_kb, setup)) = out_text.lines().rev().find_map(parse_rusage_line) else {
        return Err(format!("bench __rusage gave no measurement: {out_text}{err}"));
    };
    // Parse the id first: a lab that differs is kept, and must go.
    let id = out_text
        .lines()
        .find_map(|l| l.strip_prefix("lab ").and_then(|r| r.split_once(" is up")).map(|(id, _)| id.to_string()));
    let Some(id) = id else {
        return Err(format!("bridgelab up exited {status} without a lab: {err}"));
    };
    let start = Instant::now();
    let down = Command::new(ctx.bridgelab).args(["down", &id]).output().map_err(|e| e.to_string())?;
    let teardown = start.elapsed();
    if status != 0 {
        return Err(format!("bridgelab up exited {status}: {out_text}{err}"));
    }
    if !down.status.success() {
        return Err(format!("bridgelab down {id}: {}", String::from_utf8_lossy(&down.stderr)));
    }
    gone(&id)?;
    Ok(Times { setup, teardown, max_rss_kb: Some(max_rss_kb) })
}

/// The first argument that makes this bench a measuring wrapper.
pub const RUSAGE_ARG: &str = "__rusage";
/// What the wrapper prints last: exit code, peak RSS in kB, nanoseconds.
const RUSAGE_MARK: &str = "bench-rusage";

fn parse_rusage_line(line: &str) -> Option<(i32, u64, Duration)> {
    let mut f = line.strip_prefix(RUSAGE_MARK)?.split_whitespace();
    let code = f.next()?.parse().ok()?;
    let kb = f.next()?.parse().ok()?;
    let nanos = f.next()?.parse().ok()?;
    Some((code, kb, Duration::from_nanos(nanos)))
}

/// `compare __rusage PROGRAM ARGS..`: runs PROGRAM with this process's
/// stdout and stderr, then prints its exit code, peak RSS and wall time
/// on one last line of stdout, and exits with its code. This process is
/// freshly exec'd and small, so what it spawns starts from a few MiB.
pub fn rusage_main(args: &[String]) -> std::process::ExitCode {
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: compare {RUSAGE_ARG} PROGRAM [ARGS..]");
        return std::process::ExitCode::from(2);
    };
    let start = Instant::now();
    let measured = Command::new(program)
        .args(rest)
        .spawn()
        .map_err(|e| format!("{program}: {e}"))
        .and_then(|child| wait4(child.id()));
    let elapsed = start.elapsed();
    match measured {
        Ok((code, usage)) => {
            println!("{RUSAGE_MARK} {code} {} {}", usage.ru_maxrss, elapsed.as_nanos());
            std::process::ExitCode::from(code.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("compare {RUSAGE_ARG}: {e}");
            std::process::ExitCode::from(3)
        }
    }
}

/// Waits for a child and returns its exit code and resource usage.
fn wait4(pid: u32) -> Res<(i32, nix::libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { nix::libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    if r < 0 {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let code =
        if nix::libc::WIFEXITED(status) { nix::libc::WEXITSTATUS(status) } else { 128 + nix::libc::WTERMSIG(status) };
    Ok((code, usage))
}

/// Names of one peer's host and container namespaces for one round.
fn names(ctx: &Ctx, tool: Tool, n: usize, round: usize) -> (String, Vec<String>) {
    let p = ctx.record.prefix(&format!("{}{n}r{round}", tool.key()));
    (format!("{p}host"), (0..n).map(|i| format!("{p}c{i}")).collect())
}

/// Runs a command, failing with its stderr; returns its stdout.
fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>, what: &str) -> Res<Vec<u8>> {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).map_err(|e| format!("{what}: stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ));
    }
    Ok(out.stdout)
}

/// Checks (untimed) that the host namespace holds the bridge and N veths.
fn check_links(host: &Ns, n: usize, what: &str) -> Res<()> {
    let links = ns::interfaces(&host.file).map_err(|e| e.to_string())?;
    // lo, the bridge, N veth ends.
    if links.len() < n + 2 {
        return Err(format!("{what}: the host namespace has {} interfaces, not {}: {links:?}", links.len(), n + 2));
    }
    Ok(())
}

fn remove_all(host: &Ns, containers: &[Ns]) -> Res<()> {
    ns::remove(&host.path).map_err(|e| e.to_string())?;
    for c in containers {
        ns::remove(&c.path).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// netavark 1.4: `netavark setup NETNS` with a JSON network options file per
/// container, as podman calls it, run inside the throwaway host namespace
/// (with `DBUS_SYSTEM_BUS_ADDRESS` empty, as netavark's own tests do, so it
/// does not ask the root namespace's firewalld); its config dir is a temp
/// dir.
/// A peer's throwaway host namespace and its containers' (the host one
/// removed again if the others cannot be made).
fn host_and_containers(host_name: &str, names: &[String]) -> Res<(Ns, Vec<Ns>)> {
    let host = ns::create(&[host_name.to_string()]).map_err(|e| e.to_string())?.remove(0);
    match ns::create(names) {
        Ok(c) => Ok((host, c)),
        Err(e) => {
            let _ = remove_all(&host, &[]);
            Err(e.to_string())
        }
    }
}

fn netavark(ctx: &Ctx, n: usize, round: usize) -> Res<Times> {
    let (host_name, names) = names(ctx, Tool::Netavark, n, round);
    let config = ctx.tmp.join(format!("netavark-{n}-{round}"));
    std::fs::create_dir_all(&config).map_err(|e| e.to_string())?;
    let opts: Vec<Vec<u8>> = (0..n).map(|i| netavark_options(i).to_string().into_bytes()).collect();
    let nv = |host: &File, action: &str, ns_path: &Path, input: &[u8]| {
        let mut cmd = ns::command_in(host, NETAVARK);
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", "").arg("--config").arg(&config).arg(action).arg(ns_path);
        run_cmd(&mut cmd, Some(input), &format!("netavark {action} {}", ns_path.display())).map(|_| ())
    };
    let start = Instant::now();
    let (host, containers) = host_and_containers(&host_name, &names)?;
    let mut result = Ok(());
    for (c, o) in containers.iter().zip(&opts) {
        result = nv(&host.file, "setup", &c.path, o);
        if result.is_err() {
            break;
        }
    }
    let setup = start.elapsed();
    let result = result.and_then(|()| check_links(&host, n, "netavark"));
    if let Err(e) = result {
        let _ = remove_all(&host, &containers);
        return Err(e);
    }
    let start = Instant::now();
    let mut result = Ok(());
    for (c, o) in containers.iter().zip(&opts) {
        if let Err(e) = nv(&host.file, "teardown", &c.path, o) {
            result = Err(e);
            break;
        }
    }
    let removed = remove_all(&host, &containers);
    let teardown = start.elapsed();
    result?;
    removed?;
    let _ = std::fs::remove_dir_all(&config);
    Ok(Times { setup, teardown, max_rss_kb: None })
}

fn netavark_options(i: usize) -> Value {
    let ip = format!("10.88.{}.{}", i / 250, i % 250 + 2);
    json!({
        "container_id": format!("{:064x}", 0xbe4c_0000u64 + i as u64),
        "container_name": format!("c{i}"),
        "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": 10000 + i, "range": 1, "protocol": "tcp"}],
        "networks": {"podman": {"static_ips": [ip], "interface_name": "eth0"}},
        "network_info": {"podman": {
            "name": "podman",
            "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
            "driver": "bridge",
            "network_interface": "podman0",
            "subnets": [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}],
            "ipv6_enabled": false,
            "internal": false,
            "dns_enabled": false,
            "ipam_options": {"driver": "host-local"}
        }}
    })
}

/// The CNI reference plugins as a conflist (bridge with host-local IPAM,
/// then portmap), invoked as libcni does: ADD runs each plugin in order
/// with the previous one's result, DEL in reverse order with the cached
/// result. host-local keeps its leases in a temp dir.
fn cni(ctx: &Ctx, n: usize, round: usize) -> Res<Times> {
    let (host_name, names) = names(ctx, Tool::Cni, n, round);
    let data = ctx.tmp.join(format!("cni-{n}-{round}"));
    let bridge = json!({
        "cniVersion": "1.0.0", "name": "blbench", "type": "bridge", "bridge": "cni0",
        "isGateway": true, "ipMasq": true, "hairpinMode": true,
        "ipam": {"type": "host-local", "dataDir": data, "routes": [{"dst": "0.0.0.0/0"}],
                 "ranges": [[{"subnet": "10.89.0.0/16", "gateway": "10.89.0.1"}]]}
    });
    let plugin = |host: &File, command: &str, conf: &Value, id: &str, netns: &Path| -> Res<Value> {
        let ty = conf["type"].as_str().unwrap_or_default().to_string();
        let mut cmd = ns::command_in(host, Path::new(CNI_PATH).join(&ty));
        cmd.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", CNI_PATH);
        let out = run_cmd(&mut cmd, Some(conf.to_string().as_bytes()), &format!("CNI {command} {ty} {id}"))?;
        if command == "ADD" {
            serde_json::from_slice(&out).map_err(|e| format!("CNI {ty}: result: {e}"))
        } else {
            Ok(Value::Null)
        }
    };
    let portmap = |i: usize, prev: &Value| {
        json!({
            "cniVersion": "1.0.0", "name": "blbench", "type": "portmap",
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [{"hostPort": 10000 + i, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": prev
        })
    };
    let with_prev = |conf: &Value, prev: &Value| {
        let mut c = conf.clone();
        c["prevResult"] = prev.clone();
        c
    };
    let start = Instant::now();
    let (host, containers) = host_and_containers(&host_name, &names)?;
    let mut results = Vec::new();
    let mut failed = None;
    for (i, c) in containers.iter().enumerate() {
        let id = format!("blbench{i}");
        let added = plugin(&host.file, "ADD", &bridge, &id, &c.path)
            .and_then(|prev| plugin(&host.file, "ADD", &portmap(i, &prev), &id, &c.path));
        match added {
            Ok(r) => results.push(r),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let setup = start.elapsed();
    let checked = match failed {
        Some(e) => Err(e),
        None => check_links(&host, n, "CNI"),
    };
    if let Err(e) = checked {
        let _ = remove_all(&host, &containers);
        let _ = std::fs::remove_dir_all(&data);
        return Err(e);
    }
    let start = Instant::now();
    let mut result = Ok(());
    for (i, (c, prev)) in containers.iter().zip(&results).enumerate() {
        let id = format!("blbench{i}");
        let deleted = plugin(&host.file, "DEL", &portmap(i, prev), &id, &c.path)
            .and_then(|_| plugin(&host.file, "DEL", &with_prev(&bridge, prev), &id, &c.path));
        if let Err(e) = deleted {
            result = Err(e);
            break;
        }
    }
    let removed = remove_all(&host, &containers);
    let teardown = start.elapsed();
    let _ = std::fs::remove_dir_all(&data);
    result?;
    removed?;
    Ok(Times { setup, teardown, max_rss_kb: None })
}

/// `bench/peer.sh`, run inside a throwaway host namespace.
fn shell(ctx: &Ctx, n: usize, round: usize) -> Res<Times> {
    let (host_name, names) = names(ctx, Tool::Shell, n, round);
    let prefix = names[0].strip_suffix('0').unwrap_or(&names[0]).to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/peer.sh");
    let sh = |host: &File, action: &str| {
        let mut cmd = ns::command_in(host, "sh");
        cmd.args([script, action, &prefix, &n.to_string()]);
        run_cmd(&mut cmd, None, &format!("peer.sh {action}")).map(|_| ())
    };
    let start = Instant::now();
    let host = ns::create(std::slice::from_ref(&host_name)).map_err(|e| e.to_string())?.remove(0);
    let made = sh(&host.file, "setup");
    let setup = start.elapsed();
    if let Err(e) = made.and_then(|()| check_links(&host, n, "shell")) {
        let _ = ns::remove(&host.path);
        let _ = ns::remove_prefixed(&prefix);
        return Err(e);
    }
    let start = Instant::now();
    let result = sh(&host.file, "teardown");
    let removed = ns::remove(&host.path).map_err(|e| e.to_string());
    let teardown = start.elapsed();
    let left = ns::remove_prefixed(&prefix).map_err(|e| e.to_string())?;
    result?;
    removed?;
    if left > 0 {
        return Err(format!("peer.sh teardown left {left} namespaces"));
    }
    Ok(Times { setup, teardown, max_rss_kb: None })
}

/// The floor: what any tool must at least ask of the kernel. Namespaces by
/// `unshare` on one thread, each bind-mounted (as `ip netns add` does) in
/// a tmpfs the floor mounts for the round, as bridgelab pins its own: not
/// in `/run/netns`, whose cost is that of its file system and its past (on
/// this machine an ext4 directory that once held thousands of names, where
/// a hundred new files cost 22–30 ms instead of 1.4 ms in a new one, and
/// bridgelab's names there are made on a thread of their own); the bridge
/// and every veth pair (the container end created in its namespace, the
/// host end up and on the bridge) through ONE netlink session in the host
/// namespace, all requests in flight at once; each container's `eth0` up,
/// its address, `lo` up and the default route through a socket opened in
/// its namespace as it was made (the kernel has no request that adds an
/// address in another namespace), all containers' requests in flight at
/// once. No firewall rules. Teardown: unmount the tmpfs, and with it every
/// namespace.
fn floor(ctx: &Ctx, n: usize, round: usize) -> Res<Times> {
    let (host_name, names) = names(ctx, Tool::Floor, n, round);
    let rt = ctx.rt.handle().clone();
    let open = || -> std::io::Result<(rtnetlink::Handle, tokio::task::JoinHandle<()>)> {
        let _enter = rt.enter();
        let (conn, handle, _) = rtnetlink::new_connection()?;
        Ok((handle, rt.spawn(conn)))
    };
    // The bench's run id names it: a killed bench's is `bridgelab cleanup`'s.
    let dir = bridgelab::registry::lab_netns_dir(&ctx.record.id);
    let unmount = || bridgelab::apply::netns::unmount_lab_dir(&dir).map_err(|e| format!("floor: unmount: {e}"));
    let start = Instant::now();
    bridgelab::apply::netns::mount_lab_dir(&dir).map_err(|e| format!("floor: {e}"))?;
    let made = ns::create_with(&dir, std::slice::from_ref(&host_name), open)
        .and_then(|mut host| Ok((host.remove(0), ns::create_with(&dir, &names, open)?)));
    let ((host, (hnl, htask)), containers) = match made {
        Ok(m) => m,
        Err(e) => {
            let _ = unmount();
            return Err(e.to_string());
        }
    };
    tracing::debug!("floor: {} namespaces made at {:?}", n + 1, start.elapsed());
    let built: Res<()> = ctx.rt.block_on(async {
        use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
        use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};
        use std::os::fd::AsRawFd;
        let e = |what: &str| {
            let what = what.to_string();
            move |err: rtnetlink::Error| format!("floor: {what}: {err}")
        };
        let mut br = LinkBridge::new("br0").up().build();
        br.header.index = 100;
        hnl.link().add(br).execute().await.map_err(e("bridge"))?;
        hnl.address()
            .add(100, IpAddr::V4(Ipv4Addr::new(10, 91, 0, 1)), 16)
            .execute()
            .await
            .map_err(e("bridge address"))?;
        try_join_all(containers.iter().enumerate().map(|(i, (c, _))| {
            // The container end gets index 2 in its fresh namespace (lo is 1).
            // It cannot be brought up in this request: veth refuses to open
            // before its pair is joined (ENOTCONN).
            let mut peer = LinkMessageBuilder::<LinkUnspec>::new().name("eth0").setns_by_fd(c.file.as_raw_fd()).build();
            peer.header.index = 2;
            let mut veth = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
                .name(format!("vf{i}"))
                .controller(100)
                .up()
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .build();
            veth.header.index = 1000 + i as u32;
            hnl.link().add(veth).execute()
        }))
        .await
        .map_err(e("veth"))?;
        try_join_all(containers.iter().enumerate().map(|(i, (_, (nl, _)))| async move {
            let ip = Ipv4Addr::new(10, 91, (i / 250) as u8, (i % 250 + 2) as u8);
            let lo = nl.link().set(LinkUnspec::new_with_index(1).up().build()).execute();
            let addr = async {
                nl.link().set(LinkUnspec::new_with_index(2).up().build()).execute().await?;
                nl.address().add(2, IpAddr::V4(ip), 16).execute().await?;
                let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(Ipv4Addr::new(10, 91, 0, 1)).build();
                nl.route().add(route).execute().await
            };
            futures::try_join!(lo, addr).map(|_| ())
        }))
        .await
        .map_err(e("container side"))?;
        Ok(())
    });
    let setup = start.elapsed();
    let built = built.and_then(|()| check_links(&host, n, "floor"));
    let start = Instant::now();
    htask.abort();
    drop((hnl, host));
    for (c, (nl, task)) in containers {
        task.abort();
        drop((nl, c));
    }
    let removed = unmount();
    let teardown = start.elapsed();
    built?;
    removed?;
    Ok(Times { setup, teardown, max_rss_kb: None })
}
