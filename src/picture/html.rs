//! The matrix of a run (`bridgelab run --matrix PROBES --html FILE`) as one
//! self-contained HTML page: per scenario and probe a table, rows the
//! sender, columns the target, each cell coloured by its verdict and
//! marked where it contradicts an `[[expect]]`. The page is well-formed
//! XML too (every tag closed, no named entities but XML's), so any XML
//! parser can check it.

use std::fmt::Write as _;

use super::dot::{BLOCKED, REACHABLE, REFUSED};
use crate::probe::matrix::Cell;
use crate::report::ScenarioReport;

/// The page for every report that has a matrix.
pub fn matrix_html(reports: &[ScenarioReport]) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    h.push_str("<title>bridgelab matrix</title>\n<style>\n");
    let _ = write!(
        h,
        "body {{ font-family: sans-serif; margin: 1.5em; }}\n\
         table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}\n\
         th, td {{ border: 1px solid #999; padding: 0.3em 0.6em; text-align: center; }}\n\
         th {{ background: #eee; }}\n\
         td.reachable {{ background: {REACHABLE}; color: #fff; }}\n\
         td.refused {{ background: {REFUSED}; color: #fff; }}\n\
         td.blocked {{ background: {BLOCKED}; color: #fff; }}\n\
         td.error {{ background: #555; color: #fff; }}\n\
         td.self {{ background: #fafafa; color: #bbb; }}\n\
         td.differs {{ outline: 3px solid #000; outline-offset: -3px; font-weight: bold; }}\n\
         ul.differs {{ margin-top: -1em; }}\n\
         p.legend span {{ padding: 0 0.4em; color: #fff; }}\n"
    );
    h.push_str("</style>\n</head>\n<body>\n<h1>bridgelab matrix</h1>\n");
    let _ = writeln!(
        h,
        "<p class=\"legend\">Rows send, columns receive. \
         <span style=\"background: {REACHABLE}\">R reachable</span> \
         <span style=\"background: {REFUSED}\">r refused</span> \
         <span style=\"background: {BLOCKED}\">x blocked</span> \
         <span style=\"background: #555\">! no verdict</span> \
         A cell marked * (outlined) contradicts an [[expect]]; hover a cell for what was seen.</p>"
    );
    for r in reports.iter().filter(|r| !r.matrix.is_empty()) {
        let _ = writeln!(h, "<h2>{}</h2>\n<p>{}</p>", esc(&r.scenario), esc(&r.file.display().to_string()));
        let names = nodes(&r.matrix);
        let mut probes: Vec<&str> = Vec::new();
        for c in &r.matrix {
            if !probes.contains(&c.probe.as_str()) {
                probes.push(&c.probe);
            }
        }
        for p in probes {
            table(&mut h, &r.matrix, p, &names);
        }
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// The nodes in the order the matrix probed them (every node sends).
fn nodes(cells: &[Cell]) -> Vec<&str> {
    let mut v: Vec<&str> = Vec::new();
    for c in cells {
        for n in [&c.from, &c.to] {
            if !v.contains(&n.as_str()) {
                v.push(n);
            }
        }
    }
    v
}

fn table(h: &mut String, cells: &[Cell], probe: &str, names: &[&str]) {
    let _ = writeln!(h, "<table class=\"matrix\" data-probe=\"{}\">", esc(probe));
    let _ = write!(h, "<caption>{}</caption>\n<tr><th>from \\ to</th>", esc(probe));
    for n in names {
        let _ = write!(h, "<th>{}</th>", esc(n));
    }
    h.push_str("</tr>\n");
    for from in names {
        let _ = write!(h, "<tr><th>{}</th>", esc(from));
        for to in names {
            match cells.iter().find(|c| c.probe == probe && c.from == *from && c.to == *to) {
                None => h.push_str("<td class=\"self\">-</td>"),
                Some(c) => {
                    let (class, letter) = match c.actual.as_deref() {
                        Some("reachable") => ("reachable", "R"),
                        Some("refused") => ("refused", "r"),
                        Some("blocked") => ("blocked", "x"),
                        _ => ("error", "!"),
                    };
                    let mut title = format!("{from} → {to} {probe}: {}", c.actual.as_deref().unwrap_or("no verdict"));
                    if !c.detail.is_empty() {
                        let _ = write!(title, " ({})", c.detail);
                    }
                    if let Some(e) = &c.expected {
                        let _ = write!(title, "; expected {e}");
                    }
                    let _ = write!(
                        h,
                        "<td class=\"{class}{}\" title=\"{}\">{}{letter}</td>",
                        if c.differs { " differs" } else { "" },
                        esc(&title),
                        if c.differs { "*" } else { "" }
                    );
                }
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    let wrong: Vec<&Cell> = cells.iter().filter(|c| c.probe == probe && c.differs).collect();
    if !wrong.is_empty() {
        h.push_str("<ul class=\"differs\">\n");
        for c in wrong {
            let _ = writeln!(
                h,
                "<li>* {} → {}: expected {}, got {} ({})</li>",
                esc(&c.from),
                esc(&c.to),
                esc(c.expected.as_deref().unwrap_or("?")),
                esc(c.actual.as_deref().unwrap_or("no verdict")),
                esc(&c.detail)
            );
        }
        h.push_str("</ul>\n");
    }
}

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(from: &str, to: &str, actual: Option<&str>, expected: Option<&str>) -> Cell {
        Cell {
            from: from.into(),
            to: to.into(),
            probe: "tcp:80".into(),
            expected: expected.map(Into::into),
            actual: actual.map(Into::into),
            detail: "<syn> & \"ack\"".into(),
            differs: expected.is_some() && expected != actual,
        }
    }

    /// Every tag closed, every text escaped, each cell where it belongs:
    /// an XML parser reads the page and finds them.
    #[test]
    fn the_page_is_well_formed_and_marks_the_contradiction() {
        let mut r = ScenarioReport::new("s<1>.toml".into(), "a&b".into());
        r.matrix =
            vec![cell("host", "web", Some("reachable"), None), cell("web", "host", Some("blocked"), Some("reachable"))];
        let page = matrix_html(&[r]);
        let opt = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
        let doc = roxmltree::Document::parse_with_options(&page, opt).expect("well-formed");
        let tds: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("td")).collect();
        // 2 nodes: 4 cells, 2 of them a node to itself.
        assert_eq!(tds.len(), 4);
        let classes: Vec<&str> = tds.iter().map(|t| t.attribute("class").unwrap()).collect();
        assert_eq!(classes, ["self", "reachable", "blocked differs", "self"]);
        assert_eq!(tds[2].text(), Some("*x"));
        assert!(tds[2].attribute("title").unwrap().contains("blocked (<syn> & \"ack\"); expected reachable"));
        let h2 = doc.descendants().find(|n| n.has_tag_name("h2")).unwrap();
        assert_eq!(h2.text(), Some("a&b"));
        assert!(page.contains("a&amp;b") && !page.contains("<syn>"));
    }
}
