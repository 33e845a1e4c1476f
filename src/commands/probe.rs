//! `bridgelab probe RUN FROM TO PROBE`: probe a kept or served lab.

use bridgelab::probe::responder::Responders;
use bridgelab::registry::Registry;
use bridgelab::scenario::{Expect, ProbeSpec, Sp};

use super::{fail, print_json, Format};

pub struct Args {
    pub run_id: String,
    pub from: String,
    pub to: String,
    pub probe: ProbeSpec,
    pub via: Option<String>,
    pub format: Format,
}

/// Aborts the mirror of a served lab's responders when the probe is done.
struct Abort(tokio::task::JoinHandle<()>);
impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn run(a: Args) -> u8 {
    let reg = Registry::default();
    let lab = match bridgelab::apply::attach(&reg, &a.run_id).await {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let plan = lab.plan();
    let netns = match bridgelab::probe::sender_netns(plan, &a.from) {
        Ok(ns) => ns,
        Err(e) => return unknown(&a.run_id, &a.from, &e, plan),
    };
    if let Err(e) = bridgelab::probe::resolve_target(plan, &netns, &a.to) {
        return unknown(&a.run_id, &a.to, &e, plan);
    }
    // As an [[expect]]'s `via` is validated: the neighbour is the host.
    if let Some(v) = &a.via {
        if v.split_once('@').map_or(v.as_str(), |(n, _)| n) != "host" {
            eprintln!("bridgelab: --via {v:?}: the neighbour must be \"host\" (or \"host@NETWORK\" from a container)");
            return 2;
        }
    }
    // A served lab's responders run in its server: mirror what they see.
    let rec = reg.get(&a.run_id);
    let served = rec.as_ref().is_some_and(|r| r.served && r.owner_alive());
    // `run --hold`: its proxies run in its own process, its responders not yet.
    let held = rec.as_ref().is_some_and(|r| !r.served && !r.kept && r.owner_alive());
    let mut responders = Responders::default();
    let mut _mirror = None;
    if served {
        match bridgelab::probe::share::mirror(&reg.socket_path(&a.run_id)).await {
            Ok((log, task)) => {
                responders.log = log;
                _mirror = Some(Abort(task));
            }
            Err(e) => {
                eprintln!("bridgelab: lab {} is served, but its server does not answer: {e}", a.run_id);
                return 3;
            }
        }
    }
    let sp = |s: &str| Sp::new(0..0, s.to_string());
    let expect = Expect {
        from: Some(sp(&a.from)),
        to: sp(&a.to),
        probe: Some(Sp::new(0..0, a.probe)),
        result: None,
        result_by_version: None,
        flow: None,
        // Only a served lab has responders to say where a probe came from;
        // naming the sender makes the report say when that was not it.
        source: (served && a.probe != ProbeSpec::Icmp).then(|| sp(&a.from)),
        source_by_version: None,
        via: a.via.as_deref().map(sp),
        name: None,
    };
    let Some(o) = bridgelab::probe::check(&lab, &responders, &[expect]).await.pop() else {
        eprintln!("bridgelab: the probe gave no outcome");
        return 3;
    };
    if o.actual.is_none() && o.target.is_none() {
        // It could not be resolved (a `via` the lab cannot use): bad arguments.
        eprintln!("bridgelab: run {}: cannot send {}: {}", a.run_id, o.name, o.detail);
        return 2;
    }
    if a.format == Format::Json {
        print_json(&o);
    } else {
        let target = o.target.map(|t| format!(" ({t})")).unwrap_or_default();
        let verdict = o.actual.as_deref().unwrap_or("not carried out");
        // The source was asked for to be seen, not checked: drop the
        // expectation's complaint, the line below says it better.
        let detail = o.detail.split("; the responder saw the probe come from").next().unwrap_or_default();
        crate::out!("{}{target}: {verdict}: {detail}", o.name);
        if let Some(peer) = o.source_seen {
            let owner = owner_of(plan, peer).map(|n| format!(" ({n})")).unwrap_or_default();
            let rewritten = if bridgelab::probe::node_addresses(plan, &a.from).contains(&peer) {
                String::new()
            } else {
                format!(", not an address of {}: NAT or a userland proxy rewrote it", a.from)
            };
            crate::out!("  source: the responder saw it come from {peer}{owner}{rewritten}");
        }
        if held {
            crate::out!(
                "  note: lab {} belongs to a running `bridgelab run` (pid {}): its proxies run there, its responders \
                 are not shared, so no source is seen",
                a.run_id,
                rec.as_ref().map_or(0, |r| r.pid)
            );
        } else if !served {
            crate::out!(
                "  note: lab {} is not served: nothing listens in it and published ports have no userland proxy, \
                 so a port is refused or blocked and no source is seen (`bridgelab up --serve` serves a lab)",
                a.run_id
            );
        }
    }
    if o.actual.is_some() {
        0
    } else {
        3
    }
}

fn unknown(run_id: &str, what: &str, why: &str, plan: &bridgelab::Plan) -> u8 {
    let mut names: Vec<String> = vec!["host".into(), "external".into()];
    names.extend(plan.containers.iter().map(|c| c.name.clone()));
    for n in &plan.nodes {
        if !names.contains(&n.name) {
            names.push(n.name.clone());
        }
    }
    eprintln!("bridgelab: run {run_id}: {what}: {why} (nodes: {})", names.join(", "));
    2
}

/// The node that owns `ip` in the plan, for saying who a source is.
fn owner_of(plan: &bridgelab::Plan, ip: std::net::Ipv4Addr) -> Option<String> {
    plan.nodes.iter().find(|n| n.links.iter().any(|l| l.addresses.iter().any(|a| a.ip() == ip))).map(|n| n.name.clone())
}
