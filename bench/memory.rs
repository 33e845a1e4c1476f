//! Memory of one process that builds and removes many labs, one after
//! another, as a long CI job or a service using the library does. Run as
//! root:
//!
//!   sudo cargo bench --bench memory -- [LABS] [SCENARIO] [--probe] [--trim]
//!
//! LABS defaults to 500 and SCENARIO to scenarios/default.toml. Each lab is
//! built, verified and removed; with `--probe` its expectations (and steps)
//! are probed too, responders and proxies included. `--trim` calls glibc's
//! `malloc_trim(0)` before each reading, which hands free heap back to the
//! kernel: what it takes away is fragmentation, not a leak.
//!
//! It prints VmRSS (from /proc/self/status), threads and open file
//! descriptors before the first lab, after the first, after a warm-up of 20
//! labs and then every 50 labs, and the growth of VmRSS per lab after the
//! warm-up. For live heap allocations, run it under `heaptrack`.

use std::time::Instant;

use bridgelab::Lab;

const WARM_UP: usize = 20;

extern "C" {
    // glibc: returns free memory at the top of each heap to the kernel.
    fn malloc_trim(pad: usize) -> i32;
}

fn rss_kb(trim: bool) -> u64 {
    if trim {
        // SAFETY: malloc_trim only walks glibc's own heaps.
        unsafe { malloc_trim(0) };
    }
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

async fn one_lab(path: &str, probe: bool) {
    let mut running = Lab::load(path).expect("scenario").up().await.expect("up");
    let mismatches = running.verify().await.expect("verify");
    assert!(mismatches.is_empty(), "{mismatches:?}");
    if probe {
        let mut responders = bridgelab::probe::start_responders(&running).expect("responders");
        let checked = bridgelab::probe::check_scenario(&mut running, &mut responders).await;
        assert!(checked.failure.is_none(), "{:?}", checked.failure);
        assert!(checked.expectations.iter().all(|o| o.passed), "{:?}", checked.expectations);
    }
    running.down().expect("down");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let probe = args.iter().any(|a| a == "--probe");
    let trim = args.iter().any(|a| a == "--trim");
    let mut rest = args.iter().filter(|a| !a.starts_with("--"));
    let labs: usize = rest.next().map(|n| n.parse().expect("LABS is a number")).unwrap_or(500);
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/default.toml").to_string();
    let path = rest.next().cloned().unwrap_or(default);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let start = Instant::now();
    let mut base = None;
    println!("{:>6} {:>10} {:>8} {:>5}", "labs", "VmRSS kB", "threads", "fds");
    println!("{:>6} {:>10} {:>8} {:>5}", 0, rss_kb(trim), threads(), fds());
    for i in 1..=labs {
        rt.block_on(one_lab(&path, probe));
        if i == 1 || i == WARM_UP || (i > WARM_UP && i % 50 == 0) || i == labs {
            let rss = rss_kb(trim);
            if i >= WARM_UP {
                base.get_or_insert((i, rss));
            }
            println!("{i:>6} {rss:>10} {:>8} {:>5}", threads(), fds());
        }
    }
    let end = rss_kb(trim);
    if let Some((n, rss)) = base.filter(|(n, _)| *n < labs) {
        let per_lab = (end as f64 - rss as f64) * 1024.0 / (labs - n) as f64;
        println!(
            "{labs} labs of {path} in {:.1} s{}{}: {per_lab:.0} bytes per lab after the first {n}",
            start.elapsed().as_secs_f64(),
            if probe { ", probed" } else { "" },
            if trim { ", malloc_trim" } else { "" },
        );
    }
}
