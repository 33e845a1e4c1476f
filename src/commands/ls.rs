//! `bridgelab ls`: labs on this machine.

use serde::Serialize;

use super::{print_json, Format};
use bridgelab::registry::{lab_namespaces, run_id_of, Registry};

#[derive(Serialize)]
struct Row {
    run_id: String,
    scenario: String,
    state: &'static str,
    pid: Option<u32>,
    namespaces: Vec<String>,
    /// The pid of the real dockerd `bridgelab diff` runs in this lab's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    dockerd: Option<u32>,
}

pub fn run(format: Format) -> u8 {
    let namespaces = lab_namespaces();
    let (records, unreadable) = Registry::default().scan();
    let mut rows: Vec<Row> = records
        .iter()
        .map(|r| Row {
            run_id: r.run_id.clone(),
            scenario: r.scenario.clone(),
            state: if r.kept {
                "kept"
            } else if r.served && r.owner_alive() {
                "served"
            } else if r.owner_alive() {
                "running"
            } else {
                "dead"
            },
            pid: Some(r.pid),
            namespaces: namespaces.iter().filter(|n| run_id_of(n) == Some(r.run_id.as_str())).cloned().collect(),
            dockerd: r.daemon.as_ref().and_then(|d| d.processes.iter().find(|p| p.name == "dockerd")).map(|p| p.pid),
        })
        .collect();
    for ns in &namespaces {
        let id = run_id_of(ns).unwrap_or("?");
        if !records.iter().any(|r| r.run_id == id) {
            match rows.iter_mut().find(|r| r.run_id == id) {
                Some(row) => row.namespaces.push(ns.clone()),
                None => rows.push(Row {
                    run_id: id.into(),
                    scenario: "?".into(),
                    // A record that does not parse is not an orphan: cleanup spares it.
                    state: if unreadable.iter().any(|u| u.run_id == id) { "unreadable" } else { "orphaned" },
                    pid: None,
                    namespaces: vec![ns.clone()],
                    dockerd: None,
                }),
            }
        }
    }
    match format {
        Format::Json => print_json(&rows),
        Format::Text if rows.is_empty() => println!("no labs"),
        Format::Text => {
            println!("{:<10} {:<9} {:<8} {:<4} SCENARIO", "RUN", "STATE", "PID", "NS");
            for r in &rows {
                let pid = r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                let dockerd = r.dockerd.map(|p| format!(" (diff: dockerd pid {p})")).unwrap_or_default();
                println!(
                    "{:<10} {:<9} {:<8} {:<4} {}{dockerd}",
                    r.run_id,
                    r.state,
                    pid,
                    r.namespaces.len(),
                    r.scenario
                );
            }
        }
    }
    0
}
