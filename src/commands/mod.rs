//! CLI verbs. Each returns the process exit code: 0 pass, 1 an expectation
//! failed, 2 bad input, 3 environment problem, 128 + N stopped by signal N.

mod audit;
mod check;
mod cleanup;
mod completions;
mod diff;
mod down;
mod graph;
mod host;
mod import;
mod ls;
mod plan;
mod probe;
mod progress;
mod run;
mod shard;
mod shell;
mod snapshot;
mod up;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// bridgelab builds a Docker host's bridge networking for real, in throwaway
/// network namespaces, from a scenario file; checks it; and removes it again.
///
/// Exit codes: 0 pass, 1 an expectation failed, 2 bad scenario or arguments,
/// 3 environment problem (not root, missing kernel feature or tool);
/// stopped by a signal, after removing its lab: 129 SIGHUP, 130 SIGINT
/// (Ctrl-C), 131 SIGQUIT, 143 SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "bridgelab", version, about, long_about)]
pub struct Cli {
    /// Log what bridgelab does (or set RUST_LOG).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, validate and plan scenario files; needs no privileges.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check only the K-th of N slices of FILES (see `run --shard`).
        #[arg(long, value_name = "K/N")]
        shard: Option<shard::Shard>,
    },
    /// Print what a scenario would build (addresses, links, routes); needs no privileges.
    Plan {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Draw a scenario's topology and expectations as a Graphviz graph;
    /// needs no privileges.
    ///
    /// The picture is drawn from the plan: the host with its bridges
    /// (Docker's, each with its network and subnet, and `[[host.bridge]]`s)
    /// and its uplink; the external node and `[[machine]]`s; every container
    /// with its interfaces' addresses (and MACs with --macs) and listeners;
    /// published ports as blue dotted arrows from the host (host
    /// address:port → container port); and each [[expect]] as an arrow from
    /// sender to target: green reachable, orange refused, red dashed
    /// blocked, grey where the file checks no result, labelled with its
    /// probe and `via`. `bridgelab run --graph DIR` draws what a real run
    /// saw instead, failed expectations bold and marked ✗.
    ///
    /// Writes Graphviz dot (stdout, or -o FILE), or SVG with --format svg or
    /// an -o FILE ending in .svg, made by Graphviz's `dot -Tsvg` (apt-get
    /// install graphviz; without it, exit 3 and a message that says so).
    /// A file with `versions` is one graph per version: on stdout one after
    /// another, with -o FILE one file each (out.svg: out@docker20.svg, ...);
    /// --version V draws one (any layout, as `run --versions` runs it).
    ///
    /// Exit codes: 0 written, 2 bad scenario or arguments, 3 no `dot` for
    /// SVG, or the file cannot be written.
    Graph {
        /// The scenario file (TOML; see docs/scenario-format.md).
        file: PathBuf,
        /// Write to FILE instead of stdout; `.svg` picks SVG.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// `dot` (Graphviz's language) or `svg` (needs Graphviz's `dot`).
        /// Default: svg for an -o FILE ending in .svg, else dot.
        #[arg(long, value_enum)]
        format: Option<graph::GraphFormat>,
        /// Draw the file under this layout only (docker1, docker20,
        /// docker28, docker29): one of its `versions`, or any other.
        #[arg(long, value_name = "VERSION")]
        version: Option<bridgelab::scenario::Firewall>,
        /// Draw the lab after step N (from 1) with that step's expectations,
        /// instead of the start with the top-level ones.
        #[arg(long, value_name = "N")]
        step: Option<usize>,
        /// Also show each container interface's MAC address.
        #[arg(long)]
        macs: bool,
    },
    /// Build each scenario, check it against its plan, probe its [[expect]]s,
    /// report, and tear it down (root).
    ///
    /// Every file gets a PASS or FAIL: one that does not load, or whose lab
    /// cannot be built, is a failed scenario in every report format, and
    /// the verdicts gathered before any failure are kept.
    ///
    /// On a terminal, more than one lab shows a progress bar on stderr (the
    /// scenario running, passed and failed so far), cleared before the
    /// report; never when stderr is not a terminal, with TERM=dumb or --hold.
    Run {
        /// Scenario files (TOML), run one after another. Each builds its own
        /// lab, which is removed before the next file starts.
        #[arg(required = true, value_name = "FILES")]
        files: Vec<PathBuf>,
        /// The report on stdout. `text`: a PASS/FAIL line per scenario and a
        /// line per expectation, with the reason for each failure. `json`: an
        /// array with one object per scenario (file, scenario, run_id,
        /// mismatches, expectations, steps, errors, passed, build_ms,
        /// elapsed_ms).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// After building each lab, name its namespaces under /run/netns,
        /// print `ready RUN_ID` and an `ip netns exec` line for each, and
        /// wait: Enter (or end of input) goes on to probe and tear the lab
        /// down; Ctrl-C tears it down at once (exit 130). (Without --hold a
        /// lab is not named: `bridgelab shell RUN_ID NODE` reaches it.)
        #[arg(long)]
        hold: bool,
        /// Also write a JUnit XML report: a testsuite per file, a testcase
        /// per expectation, per step and per error, each with its time.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also probe every pair of nodes (host, external, containers) and
        /// print the truth table, e.g. `--matrix icmp,tcp:80`.
        #[arg(long, value_name = "PROBES", value_delimiter = ',', value_parser = parse_probe)]
        matrix: Vec<bridgelab::scenario::ProbeSpec>,
        /// With --matrix: also write the truth tables as one self-contained
        /// HTML page (a table per scenario and probe, rows from, columns to,
        /// cells coloured by verdict, a contradicted [[expect]] outlined and
        /// starred). The text tables are still printed.
        #[arg(long, value_name = "FILE", requires = "matrix")]
        html: Option<PathBuf>,
        /// Draw each scenario as `bridgelab graph` does, with the arrows
        /// coloured by what the run saw and each failed expectation bold
        /// and marked ✗: DIR/<scenario>.dot, DIR/<scenario>.step-N.dot for
        /// each step with expectations, and an .svg beside each when
        /// Graphviz's `dot` is installed.
        #[arg(long, value_name = "DIR")]
        graph: Option<PathBuf>,
        /// Capture the host's bridge and uplink for the run into
        /// DIR/<scenario>-<interface>.pcap.
        #[arg(long, value_name = "DIR")]
        pcap: Option<PathBuf>,
        /// Run each file under every one of these Docker layouts instead of
        /// its own (`[daemon] firewall` or `versions`), e.g.
        /// `--versions docker1,docker20,docker28`, and print a verdict table
        /// per file: a row per expectation, a column per version, `*` where
        /// the result is not the one the file expects there. An expectation
        /// whose `result_by_version` does not name a version is shown, not
        /// checked, under it. A version the file cannot be expressed in (a
        /// key it lacks) is a column that says why, and exit code 2.
        #[arg(long, value_name = "VERSIONS", value_delimiter = ',')]
        versions: Vec<bridgelab::scenario::Firewall>,
        /// Run only the K-th of N slices of FILES (1 <= K <= N), for
        /// spreading a suite over N CI machines: the files are sorted,
        /// duplicates dropped, and file i (from 0) goes to slice i mod N + 1,
        /// so N machines given the same files run every one exactly once.
        /// A slice with no file runs nothing and passes.
        #[arg(long, value_name = "K/N")]
        shard: Option<shard::Shard>,
    },
    /// Build a scenario and keep it, to work with: `probe`, `shell`,
    /// `snapshot`, or `ip netns exec` (root).
    ///
    /// Builds the lab of FILE, compares it with its plan, and prints the run
    /// id and an `ip netns exec` line for each of the lab's namespaces.
    /// Expectations and steps are not probed.
    ///
    /// Without --serve the lab stays in place when bridgelab exits, but
    /// without userland proxies for published ports or responders for
    /// `listen` (both live in bridgelab's process): a probe to them is
    /// refused or blocked. Remove it with `bridgelab down RUN_ID`;
    /// `bridgelab cleanup` leaves kept labs alone unless given --all.
    ///
    /// With --serve bridgelab stays in the foreground with the lab's proxies
    /// and responders until `bridgelab down RUN_ID` (from another shell: it
    /// signals this process, which removes the lab and exits 143) or Ctrl-C
    /// (exit 130). If the server is killed (SIGKILL), `bridgelab cleanup`
    /// removes its lab.
    ///
    /// Exit codes: 0 the lab equals its plan, 1 it differs (and is kept, for
    /// a look), 2 bad scenario, 3 environment problem; with --serve, 128 + N
    /// once stopped by signal N.
    Up {
        /// The scenario file (TOML; see docs/scenario-format.md).
        file: PathBuf,
        /// Stay in the foreground serving the lab's userland proxies and
        /// `listen` responders, until `bridgelab down RUN_ID` or Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
    /// Remove a lab kept by `up`, or stop one that `up --serve` serves
    /// (see `ls` for run ids).
    ///
    /// A served lab's server is sent SIGTERM and removes its lab itself;
    /// `down` waits until it has exited, and removes whatever a server that
    /// died half-way left.
    Down {
        /// The run id that `up` printed: 1 to 16 letters and digits.
        run_id: String,
    },
    /// Probe a kept lab with bridgelab's own probes (root).
    ///
    /// Sends PROBE from node FROM to TO in the lab RUN_ID (`up`, `up --serve`
    /// or `run --hold`), as an `[[expect]]` would, and prints the verdict:
    /// reachable, refused (reached, nothing listening) or blocked, with what
    /// was seen. On a served lab (`up --serve`) the responders answer, and
    /// for tcp and udp the responder says which address the probe came from
    /// (after NAT or the userland proxy). A lab kept by plain `up` has no
    /// responders or proxies: ports are refused or blocked there.
    ///
    /// The lab's plan is made again from the scenario its run record keeps,
    /// and must be the one it was built from.
    ///
    /// Examples: `bridgelab probe 3f2a01bc external host tcp:8080`,
    /// `bridgelab probe 3f2a01bc web 172.18.0.3 icmp`,
    /// `bridgelab probe 3f2a01bc web 127.0.0.1 tcp:8080 --via host`.
    ///
    /// Exit codes: 0 a verdict (whatever it is), 2 unknown run or node, or
    /// a --via the lab cannot use, 3 the lab is gone or the probe could not
    /// be sent.
    Probe {
        /// The run id (see `bridgelab ls`).
        run_id: String,
        /// The sender: host, external, a container or a [[machine]].
        from: String,
        /// The target: a node as in `to` of an [[expect]] (host, external,
        /// a container, `container@network`) or an IPv4 address.
        to: String,
        /// icmp, tcp:PORT or udp:PORT.
        #[arg(value_parser = parse_probe)]
        probe: bridgelab::scenario::ProbeSpec,
        /// Send the probe as an Ethernet frame to this neighbour's MAC, as
        /// an [[expect]]'s `via`: `host`, or `host@NETWORK` from a container.
        #[arg(long, value_name = "NEIGHBOUR")]
        via: Option<String>,
        /// `json`: the outcome as `run --format json` reports an expectation.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Open a shell, or run a command, inside a node of a kept lab (root).
    ///
    /// As `ip netns exec` does: joins the node's network namespace, unshares
    /// a mount namespace (a slave of this one, so nothing mounted there
    /// leaks back) and mounts a fresh /sys there, so /sys/class/net lists
    /// the node's interfaces; binds /etc/netns/NAMESPACE/* over /etc.
    /// Without CMD it runs $SHELL (or /bin/sh). BRIDGELAB_RUN and
    /// BRIDGELAB_NODE are set for it. NODE may also be a container living in
    /// another's namespace (`host` or `container:` mode).
    ///
    /// Example: `bridgelab shell 3f2a01bc web -- ip -o addr`.
    ///
    /// Exit codes: the command's own (128 + N if signal N ended it); 2
    /// unknown run or node, 3 the lab is gone or not root, 126 the
    /// namespace cannot be entered, 127 the command is not found.
    Shell {
        /// The run id (see `bridgelab ls`).
        run_id: String,
        /// The node: host, external, a container or a [[machine]].
        node: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Print a kept lab's normalized tables, as the test suite snapshots
    /// them (root).
    ///
    /// Reads the lab RUN_ID back through netlink and iptables-save (nft for
    /// Docker 29's nftables backend) and prints what the scenario's
    /// [snapshot] selects (by default the host's rules and every node's
    /// routes), with no counters, interface indexes, run ids or random MACs:
    /// the same bytes as the scenario's committed
    /// tests/snapshots/scenarios__lab-NAME.snap, for a lab that still
    /// matches its plan.
    ///
    /// Exit codes: 0 printed, 2 unknown run, 3 the lab is gone.
    Snapshot {
        /// The run id (see `bridgelab ls`).
        run_id: String,
    },
    /// List labs on this machine and whether their owner is alive.
    Ls {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run each scenario on a real Docker daemon too, and show where it and
    /// bridgelab's lab differ (root).
    ///
    /// For each FILE, bridgelab builds a host namespace as its lab's host
    /// (uplink 198.51.100.1/24, the external node 198.51.100.2, [host]
    /// routes and bridges) and starts a real dockerd inside it, with its
    /// own containerd, a private data-root, exec-root, socket and mount
    /// namespace, and an image imported from busybox-static (no registry).
    /// It translates the scenario into dockerd flags and docker commands
    /// (network create, run, connect, stop, ...), builds bridgelab's lab for
    /// the same scenario, and after the setup and after every step reads both
    /// back and probes the scenario's [[expect]]s on both sides with
    /// bridgelab's own probes and responders.
    ///
    /// The output is a unified diff per phase, `-` for bridgelab and `+` for
    /// Docker, of: iptables-save of the host (Docker's random br-<id>
    /// names mapped to bridgelab's; one container's port rules compared as a
    /// set, since dockerd 20.10 orders them at random), every container's
    /// interfaces (address, MAC, MTU), the published ports, the host's
    /// bridges, the routes of every namespace, the sysctls Docker sets, the
    /// outcome of every docker command, and the verdict and seen source of
    /// every expectation. Then how many of the scenario's expectations Docker
    /// met, and where the time went.
    ///
    /// The dockerd is `--docker PATH`, else `dockerd` on PATH, else
    /// /opt/bl-docker20/usr/sbin/dockerd; its version must be the one the
    /// scenario's `firewall` imitates (docker20: 20.10.x, docker28: 28.x).
    /// The daemon and everything it started are killed by pid, and every
    /// namespace, mount, cgroup and temporary directory removed, on every
    /// path (Ctrl-C too); `bridgelab cleanup` does it for a run whose owner
    /// was killed.
    ///
    /// Exit codes: 0 every file equal, 1 a file differs, 2 bad scenario,
    /// 3 no usable dockerd (the message says how to install one) or another
    /// environment problem; 128 + N stopped by signal N.
    Diff {
        /// Scenario files (TOML), diffed one after another, each with a
        /// fresh daemon.
        #[arg(required = true, value_name = "FILES")]
        files: Vec<PathBuf>,
        /// The dockerd to run (its containerd, runc, docker-init,
        /// docker-proxy and docker CLI beside it or on PATH).
        #[arg(long, value_name = "PATH")]
        docker: Option<PathBuf>,
        /// Diff every file even after one differs or fails (by default
        /// diff stops at the first one).
        #[arg(long)]
        keep_going: bool,
    },
    /// Read a running Docker host and write a scenario that rebuilds it.
    ///
    /// Reads, read-only, what the daemon says about itself (`docker info`,
    /// `ps`, `inspect`, `network ls`, `network inspect`, through the docker
    /// CLI and --host; or saved outputs with --from DIR) and the daemon's
    /// flags where given (--daemon-json, --daemon-args). Writes a scenario
    /// (stdout, or -o FILE) with: the layout nearest the Docker version
    /// (docker1, docker20, docker28, docker29), [daemon] from the default
    /// bridge (bip, fixed_cidr, icc, ip_masq, ip, mtu, -b) and the flags
    /// given, every bridge network with its subnet, gateway, range and
    /// options, every container in the order it was started with its
    /// networks, the addresses the user asked for, published ports, exposed
    /// ports and links. A `#` comment at the top lists everything approximated:
    /// a version between layouts, a dynamic host port pinned to the one it
    /// got, a network driver or IPv6 left out, an address the plan gives
    /// differently. The file is checked and planned before it is written.
    ///
    /// Exit codes: 0 written, 2 bad saved input, 3 docker not reachable or
    /// the written file does not check (a bug: the message shows it).
    Import {
        #[command(flatten)]
        host: host::HostArgs,
        /// Also read the host's rules (as `audit` does: this namespace's,
        /// or --rules, --rules6, --nft) and take from them what Docker does
        /// not show: --iptables, --userland-proxy, and whether forwarding
        /// was on before the daemon started; the file says what was inferred.
        #[arg(long)]
        infer: bool,
        #[command(flatten)]
        rules: host::RuleArgs,
        /// Write the scenario to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Compare a Docker host's firewall rules with what bridgelab plans for it.
    ///
    /// Imports the host as `import` does, plans the scenario, and compares
    /// the plan's rules with the host's: `iptables-save` and
    /// `ip6tables-save` of this network namespace (read-only; run it on the
    /// Docker host), or saved outputs (--rules, --rules6; `nft -j list
    /// ruleset` with --nft for Docker 29's nftables backend). What Docker
    /// does not show (--iptables, --userland-proxy unless given, forwarding
    /// on before the daemon) is inferred: the combination whose plan is
    /// nearest the rules is audited, and named in a note. Docker's
    /// random bridge names are mapped to bridgelab's, counters dropped, and
    /// one container's port rules compared as a set, as `bridgelab diff`
    /// does. Each rule another tool added (a DOCKER-USER rule, ufw,
    /// firewalld), removed (iptables -D, a flush) or moved, and each policy
    /// changed, is one line with a short explanation.
    ///
    /// Exit codes: 0 no drift, 1 drift, 2 bad saved input, 3 docker or the
    /// rules not readable.
    Audit {
        #[command(flatten)]
        host: host::HostArgs,
        #[command(flatten)]
        rules: host::RuleArgs,
    },
    /// Remove what dead runs left behind; never touches a live run.
    Cleanup {
        /// Also remove labs kept by `bridgelab up`.
        #[arg(long)]
        all: bool,
    },
    /// Print a shell's completion script for bridgelab.
    ///
    /// bash: `bridgelab completions bash > /etc/bash_completion.d/bridgelab`
    /// (or `source <(bridgelab completions bash)` in ~/.bashrc).
    /// zsh: `bridgelab completions zsh > "${fpath[1]}/_bridgelab"`.
    /// fish: `bridgelab completions fish > ~/.config/fish/completions/bridgelab.fish`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of scenario files, for editors.
    ///
    /// The same schema is committed as docs/scenario.schema.json. Point
    /// taplo (and VS Code's Even Better TOML, which uses it) at it with a
    /// `#:schema ./docs/scenario.schema.json` first line in a scenario, or
    /// a `[[rule]]` in .taplo.toml; see the README. Needs no privileges.
    Schema,
}

impl Command {
    /// Whether the verb builds a lab, which must be torn down whatever
    /// happens to its output.
    pub fn holds_labs(&self) -> bool {
        matches!(self, Command::Run { .. } | Command::Up { .. } | Command::Diff { .. })
    }
}

/// `println!` that ignores a closed stdout, for verbs holding a lab.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Check { files, shard } => check::run(&shard::files(files, shard)),
        Command::Plan { file, format } => plan::run(&file, format),
        Command::Graph { file, output, format, version, step, macs } => {
            graph::run(&file, &graph::GraphArgs { output, format, version, step, macs })
        }
        Command::Run { files, format, hold, junit, matrix, html, graph, pcap, versions, shard } => {
            let files = shard::files(files, shard);
            interruptible(run::run(&files, run::RunArgs { format, hold, junit, matrix, html, graph, pcap, versions }))
                .await
        }
        Command::Up { file, serve } => interruptible(up::run(&file, serve)).await,
        Command::Probe { run_id, from, to, probe, via, format } => {
            probe::run(probe::Args { run_id, from, to, probe, via, format }).await
        }
        Command::Shell { run_id, node, command } => shell::run(&run_id, &node, &command),
        Command::Snapshot { run_id } => snapshot::run(&run_id).await,
        Command::Down { run_id } => down::run(&run_id),
        Command::Ls { format } => ls::run(format),
        Command::Diff { files, docker, keep_going } => {
            interruptible(diff::run(&files, docker.as_deref(), keep_going)).await
        }
        Command::Import { host, infer, rules, output } => {
            import::run(&host, infer.then_some(&rules), output.as_deref())
        }
        Command::Audit { host, rules } => audit::run(&host, &rules),
        Command::Cleanup { all } => cleanup::run(all),
        Command::Completions { shell } => completions::run(shell),
        Command::Schema => {
            crate::out!("{}", bridgelab::scenario::scenario_schema().trim_end());
            0
        }
    }
}

/// Runs `fut` until it ends or a signal that ends jobs arrives (SIGINT,
/// SIGTERM, SIGHUP, SIGQUIT). On a signal the future is dropped, and with
/// it every lab it holds: their `Drop` removes them before this returns
/// 128 + the signal, as a shell reports a job ended by it.
async fn interruptible(fut: impl std::future::Future<Output = u8>) -> u8 {
    use nix::sys::signal::Signal;
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup), Ok(mut quit)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::quit()),
    ) else {
        eprintln!("bridgelab: cannot install signal handlers");
        return 3;
    };
    let mut fut = Box::pin(fut);
    // Signals first: a run that ends in the same poll as a signal (a tool
    // that the signal also reached) still counts as interrupted.
    let (sig, what) = tokio::select! {
        biased;
        _ = int.recv() => (Signal::SIGINT, "interrupted"),
        _ = term.recv() => (Signal::SIGTERM, "terminated"),
        _ = hup.recv() => (Signal::SIGHUP, "hung up"),
        _ = quit.recv() => (Signal::SIGQUIT, "quit"),
        code = &mut fut => return code,
    };
    // Removes the labs now, before saying so.
    drop(fut);
    eprintln!("bridgelab: {what} ({sig}); lab removed");
    128 + sig as u8
}

fn parse_probe(s: &str) -> Result<bridgelab::scenario::ProbeSpec, String> {
    s.parse()
}

/// Prints an error for a person and returns its exit code.
pub fn fail(e: &bridgelab::Error) -> u8 {
    eprintln!("{}", render_error(e));
    e.exit_code() as u8
}

pub(crate) fn render_error(e: &bridgelab::Error) -> String {
    match e {
        // Scenario mistakes are already `path:line:col: message` lines.
        bridgelab::Error::Scenario(d) => d.to_string(),
        other => format!("bridgelab: {other}"),
    }
}

pub fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => crate::out!("{s}"),
        Err(e) => eprintln!("bridgelab: cannot render JSON: {e}"),
    }
}
