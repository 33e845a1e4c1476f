//! `bridgelab graph FILE`: the topology and expectations of a scenario's
//! plan, as Graphviz dot or SVG, without privileges.

use std::path::{Path, PathBuf};

use bridgelab::picture::{self, Title};
use bridgelab::scenario::Firewall;

use super::fail;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Svg,
}

pub struct GraphArgs {
    pub output: Option<PathBuf>,
    pub format: Option<GraphFormat>,
    pub version: Option<Firewall>,
    pub step: Option<usize>,
    pub macs: bool,
}

pub fn run(file: &Path, args: &GraphArgs) -> u8 {
    let labs = match load(file, args.version) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let format = args.format.unwrap_or(match &args.output {
        Some(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) => GraphFormat::Svg,
        _ => GraphFormat::Dot,
    });
    let many = labs.len() > 1;
    if many {
        let names: Vec<String> = labs.iter().filter_map(|l| l.scenario().version.map(|v| v.to_string())).collect();
        eprintln!("{}: one graph per version ({}); --version V draws one", file.display(), names.join(", "));
        if format == GraphFormat::Svg && args.output.is_none() {
            eprintln!("bridgelab: an SVG on stdout holds one picture: give --version or -o FILE");
            return 2;
        }
    }
    let mut stdout = String::new();
    for lab in &labs {
        let dot = match draw(lab, args) {
            Ok(d) => d,
            Err(msg) => {
                eprintln!("bridgelab: {msg}");
                return 2;
            }
        };
        let text = match format {
            GraphFormat::Dot => dot,
            GraphFormat::Svg => match picture::svg(&dot) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            },
        };
        match &args.output {
            None => stdout.push_str(&text),
            Some(path) => {
                let path = if many { per_version(path, lab.scenario().version) } else { path.clone() };
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("bridgelab: cannot write {}: {e}", path.display());
                    return 3;
                }
                eprintln!("wrote {} ({})", path.display(), lab.scenario().name);
            }
        }
    }
    // dot reads several graphs from one input, one after another.
    print!("{stdout}");
    0
}

/// The file's runs, or the one run under `--version`.
fn load(file: &Path, version: Option<Firewall>) -> bridgelab::Result<Vec<bridgelab::Lab>> {
    match version {
        None => bridgelab::Lab::load_all(file),
        Some(v) => {
            let s = bridgelab::Scenario::load(file)?.under(v)?;
            Ok(vec![bridgelab::Lab::from_scenario(s)?])
        }
    }
}

/// The dot text of one run: at the start, or after `--step N`.
fn draw(lab: &bridgelab::Lab, args: &GraphArgs) -> Result<String, String> {
    let scenario = lab.scenario();
    let plan = lab.plan();
    let mut title = Title { heading: scenario.name.clone(), detail: None, macs: args.macs };
    match args.step {
        None => {
            let later: Vec<String> = scenario
                .spec
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.expects.is_empty())
                .map(|(i, _)| (i + 1).to_string())
                .collect();
            if !later.is_empty() {
                let (steps, have) = if later.len() > 1 { ("steps", "have") } else { ("step", "has") };
                title.detail = Some(format!(
                    "at the start; {steps} {} {have} expectations of their own (--step N)",
                    later.join(", ")
                ));
            }
            let arrows = picture::arrows_expected(&scenario.spec.expects);
            Ok(picture::topology(scenario, plan, &arrows, &title))
        }
        Some(n) => {
            let count = plan.steps.len();
            let (Some(step), Some(spec)) =
                (n.checked_sub(1).and_then(|i| plan.steps.get(i)), scenario.spec.steps.get(n.wrapping_sub(1)))
            else {
                return Err(format!("--step {n}: {} has {count} step(s), numbered from 1", scenario.name));
            };
            title.detail = Some(format!("after step {n}: {}", step.action));
            let arrows = picture::arrows_expected(&spec.expects);
            Ok(picture::topology(scenario, &step.after, &arrows, &title))
        }
    }
}

/// `out.svg` for run `NAME@docker20` is `out@docker20.svg`.
fn per_version(path: &Path, version: Option<Firewall>) -> PathBuf {
    let Some(v) = version else { return path.to_path_buf() };
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}@{v}.{}", ext.to_string_lossy()),
        None => format!("{stem}@{v}"),
    };
    path.with_file_name(name)
}
