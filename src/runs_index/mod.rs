//! The runs index: every run under a reports folder on one page, with no server.
//!
//! ```text
//! reports/
//!   index.html          one self-contained page (inline data, style and script; works from file://)
//!   runs.csv            one row per run: what ran, its scores with intervals, findings, spec keys
//!   compare/A--vs--B.md `brasa compare` outputs the page links (A, B: run folders, `/` as `__`)
//!   .index.lock         held while the two files above are rewritten
//! ```
//!
//! Both files are derived from the run folders alone (`summary.json` where it is current, the
//! predictions files otherwise) and rewritten whole, atomically, by `brasa index` and after
//! every `brasa run`, `brasa report` and `brasa compare --out` that writes under the folder. The
//! page's data object (`window.BRASA_INDEX`) is `{title, root, generated_at, brasa_version,
//! columns: [table::Column], runs: [{id, report, cells, curves}], compare: {dir, existing}}`;
//! `templates/index.html` draws it.

mod collect;
pub mod table;

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::atomic_file::write_atomic_together;
use crate::error::{Error, Result};

pub use collect::{Entry, relative_id, run_folders};

pub const INDEX_HTML: &str = "index.html";
pub const RUNS_CSV: &str = "runs.csv";
/// Where the page looks for `brasa compare` outputs, relative to the reports folder.
pub const COMPARE_DIR: &str = "compare";
/// Serialises rewrites of the two files between processes (trials of a sweep end at any time).
const LOCK: &str = ".index.lock";
/// The name of a folder that is an index root without an index yet.
pub const REPORTS: &str = "reports";

const TEMPLATE: &str = include_str!("../../templates/index.html");
/// Where the template takes its data.
const DATA_MARKER: &str = "/*BRASA_INDEX_DATA*/null";
/// What marks a page written by brasa, in its first bytes.
const GENERATOR: &str = "<meta name=\"generator\" content=\"brasa index\">";

/// What writing an index did.
#[derive(Debug)]
pub struct Written {
    pub root: PathBuf,
    pub runs: usize,
    pub files: Vec<PathBuf>,
    /// Folders with a `meta.json` that could not be read, and why.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Runs shown with parts missing, and what.
    pub warnings: Vec<(String, String)>,
}

/// Writes `root/index.html` and `root/runs.csv` for every run under `root`.
pub fn write(root: &Path) -> Result<Written> {
    if !root.is_dir() {
        return Err(Error::run_dir(root, "not a folder: `brasa index` takes the folder runs are written to (default `reports/`)".to_string()));
    }
    if root.join(crate::run_dir::META).exists() {
        return Err(Error::run_dir(
            root,
            "is a run folder: `brasa index` lists the run folders under a reports folder; give the folder that holds it (`brasa report` rebuilds one run's report)".to_string(),
        ));
    }
    // bounded: a stopped `brasa index` must not hang every run that finishes under this folder
    let _lock = crate::run_dir::lock_shared_file(&root.join(LOCK), &format!("{RUNS_CSV} and {INDEX_HTML}"))?;

    let (entries, unreadable) = collect::runs(root);
    let table = table::build(&entries);
    let csv = table.csv(&entries).map_err(|e| Error::run_dir(root, format!("cannot write {RUNS_CSV}: {e}")))?;
    let page = page(root, &entries, &table);
    let files = vec![root.join(RUNS_CSV), root.join(INDEX_HTML)];
    // the two files are replaced together or not at all: both are written whole before either
    // is renamed into place, and what would make a rename fail is checked before that
    if let Some(blocked) = files.iter().find(|f| f.metadata().is_ok_and(|m| !m.is_file())) {
        return Err(Error::run_dir(root, format!("{} is not a file: neither {RUNS_CSV} nor {INDEX_HTML} was replaced", crate::fmt::display_path(blocked))));
    }
    write_atomic_together(&[(&files[0], &csv), (&files[1], page.as_bytes())])?;
    let warnings = entries.iter().flat_map(|e| e.warnings.iter().map(|w| (e.id.clone(), w.clone()))).collect();
    Ok(Written { root: root.to_path_buf(), runs: entries.len(), files, unreadable, warnings })
}

/// The page: the template with the data object in place.
fn page(root: &Path, entries: &[Entry], table: &table::Table) -> String {
    let runs: Vec<_> = entries
        .iter()
        .zip(&table.rows)
        .map(|(entry, cells)| json!({"id": entry.id, "report": entry.report, "cells": cells, "curves": entry.curves}))
        .collect();
    let data = json!({
        "title": "brasa runs",
        "root": crate::fmt::display_path(root),
        "generated_at": crate::build_info::timestamp(std::time::SystemTime::now()),
        "brasa_version": env!("CARGO_PKG_VERSION"),
        "columns": table.columns,
        "runs": runs,
        "compare": {"dir": COMPARE_DIR, "existing": comparisons(root)},
    });
    // inside a <script>, `</script>` (or `<!--`) in a string would end it: `<` as its JSON escape
    let data = data.to_string().replace('<', "\\u003c");
    TEMPLATE.replacen(DATA_MARKER, &data, 1)
}

/// The `brasa compare` outputs in `root/compare/`, as `A--vs--B` names.
fn comparisons(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(COMPARE_DIR)) else { return Vec::new() };
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".md").filter(|n| n.contains("--vs--")).map(str::to_string))
        .collect();
    found.sort();
    found
}

/// Where the page looks for the comparison of run `a` (the baseline) with run `b`, both given
/// as ids (their folders relative to the reports folder).
pub fn compare_file(root: &Path, a: &str, b: &str) -> PathBuf {
    root.join(COMPARE_DIR).join(format!("{}--vs--{}.md", a.replace('/', "__"), b.replace('/', "__")))
}

/// The index root `path` is under: the nearest enclosing folder that holds an index written by
/// brasa or is named `reports`.
pub fn root_of(path: &Path) -> Option<PathBuf> {
    let path = std::path::absolute(path).ok()?;
    path.ancestors().skip(1).find(|dir| is_index_root(dir)).map(Path::to_path_buf)
}

fn is_index_root(dir: &Path) -> bool {
    if dir.file_name().is_some_and(|n| n == REPORTS) {
        return true;
    }
    let mut head = [0u8; 1024];
    let read = std::fs::File::open(dir.join(INDEX_HTML)).and_then(|mut f| std::io::Read::read(&mut f, &mut head));
    read.is_ok_and(|n| String::from_utf8_lossy(&head[..n]).contains(GENERATOR))
}

/// After a command wrote under `path`: the index of the folder it is under, rewritten (`None`
/// when it is under none).
pub fn refresh(path: &Path) -> Option<Result<Written>> {
    let root = root_of(path)?;
    // an index root given relative to here, as the user would name it
    let shown = std::env::current_dir().ok().and_then(|here| root.strip_prefix(&here).ok().map(Path::to_path_buf)).filter(|p| !p.as_os_str().is_empty());
    Some(write(shown.as_deref().unwrap_or(&root)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_its_data_marker_and_generator_near_the_top() {
        assert_eq!(TEMPLATE.matches(DATA_MARKER).count(), 1);
        assert!(TEMPLATE[..TEMPLATE.len().min(1024)].contains(GENERATOR));
    }

    #[test]
    fn a_folder_named_reports_or_holding_a_brasa_index_is_an_index_root() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("reports/exp/run-1");
        std::fs::create_dir_all(&run).unwrap();
        assert_eq!(root_of(&run).unwrap(), dir.path().join("reports"));
        let other = dir.path().join("mine/exp/run-1");
        std::fs::create_dir_all(&other).unwrap();
        assert_eq!(root_of(&other), None);
        std::fs::write(dir.path().join("mine/index.html"), TEMPLATE).unwrap();
        assert_eq!(root_of(&other).unwrap(), dir.path().join("mine"));
        std::fs::write(dir.path().join("mine/exp/index.html"), "<html>someone else's</html>").unwrap();
        assert_eq!(root_of(&other).unwrap(), dir.path().join("mine"));
    }

    #[test]
    fn comparison_files_name_both_runs() {
        assert_eq!(compare_file(Path::new("reports"), "a/sweep-1/trial-01", "b/run"), Path::new("reports/compare/a__sweep-1__trial-01--vs--b__run.md"));
    }
}
