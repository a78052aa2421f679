//! The import graph of `src/`: every top-level module imports only modules listed before it in
//! [`LAYERS`], so data flows one way (spec → plan → run → run folder → report) and there are no
//! cycles. A new module must be placed in the list; an import that runs upward fails here with
//! the file and line.

use std::path::{Path, PathBuf};

/// Top-level modules, lowest first. Each may import only the modules above it in this list.
const LAYERS: &[&str] = &[
    // leaves: shared vocabulary, no behaviour of the pipeline
    "fmt",
    "nonfinite",
    "spec",
    "error",
    "atomic_file",
    "build_info",
    "progress",
    "interrupt",
    "allocator",
    "metrics",
    "stats",
    "attention_map",
    "dedup",
    "kernels",
    // the machinery a run is made of
    "augment",
    "backend",
    "data",
    "model",
    "train",
    // spec → plan
    "plan",
    // the folders a run and a sweep leave behind, and what reads them
    "run_dir",
    "sweep_dir",
    "tensorboard",
    "compare",
    "report",
    "runs_index",
    // the commands' library halves
    "audit",
    "predict",
    "export",
    "runner",
    "bench",
    "sweep",
    "slurm",
    "status",
    "init",
    // the binary
    "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate roots).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).unwrap().components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The top-level modules a line of code names through `crate::` or `brasa::`.
fn imports(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["crate::", "brasa::"] {
        let mut rest = line;
        while let Some(at) = rest.find(prefix) {
            let preceded_by_ident = rest[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
            if !preceded_by_ident && !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let rank = |name: &str| LAYERS.iter().position(|m| *m == name);
    let mut problems = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let Some(own) = rank(&module) else {
            problems.push(format!("{}: module `{module}` is not in LAYERS (tests/architecture.rs)", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for imported in imports(line) {
                if imported == module {
                    continue;
                }
                match rank(&imported) {
                    Some(other) if other < own => {}
                    Some(_) => problems.push(format!("{}:{}: `{module}` imports `{imported}`, which is above it", file.display(), number + 1)),
                    None => {} // a re-export at the crate root (`crate::Result`) or an item of lib.rs
                }
            }
        }
    }
    assert!(problems.is_empty(), "imports that run upward:\n{}", problems.join("\n"));
}

#[test]
fn every_top_level_module_is_placed() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ").and_then(|rest| rest.strip_suffix(';')) {
            assert!(LAYERS.contains(&name), "src/lib.rs declares `{name}`, which tests/architecture.rs does not place in LAYERS");
        }
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    assert_eq!(imports("use crate::report::render; let x = brasa::plan::Plan::resolve;"), ["report", "plan"]);
    assert!(imports("mycrate::report").is_empty());
}

#[test]
fn the_readme_architecture_names_every_module_in_order() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("## Architecture").nth(1).expect("README has an Architecture section");
    let listing = section.split("```text").nth(1).and_then(|rest| rest.split("```").next()).expect("a text block");
    let mut last = 0;
    for module in LAYERS {
        let (file, folder) = (format!("src/{module}.rs"), format!("src/{module}/"));
        let at = listing.find(&file).or_else(|| listing.find(&folder));
        let at = at.unwrap_or_else(|| panic!("README's Architecture section does not list `{module}`"));
        assert!(at >= last, "README's Architecture section lists `{module}` out of the LAYERS order");
        last = at;
    }
}
