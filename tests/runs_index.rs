//! The runs index (`brasa index`, and its refresh after `run`, `report` and `compare --out`):
//! `runs.csv` says what each run folder says, and `index.html` works in headless Chromium — it
//! renders without console errors, sorting, filtering, ranges and brushes give the rows they
//! should (driven through the page's `window.brasaIndex`), its text is readable at 1280 and at
//! 390 px, and it stays small and quick with 500 runs (a synthetic reports folder made by copying
//! real run folders and changing what differs between runs).
//!
//! `BRASA_INDEX_HTML=$PWD/reports/index.html cargo test --release --features gpu --test runs_index a_real -- --ignored`
//! checks a real index the same way (and keeps its screenshot as `index-check.png` beside it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::brasa::TestDir;
use common::browser::{self, Page};
use common::spec::TinySpec;
use serde_json::Value;

/// `runs.csv` as maps from column to value, in row order.
fn runs_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_string)).collect()).collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The data object embedded in an index page.
fn page_data(html: &str) -> Value {
    let start = html.find("window.BRASA_INDEX = ").expect("the page has its data") + "window.BRASA_INDEX = ".len();
    let end = start + html[start..].find(";</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

/// The accuracy row of a `*_report.csv` (written to 4 decimals).
fn report_accuracy(path: &Path) -> f64 {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let row = reader.records().map(Result::unwrap).find(|r| &r[0] == "accuracy").unwrap();
    row[3].parse().unwrap()
}

fn number(text: &str) -> f64 {
    text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// A tiny sweep over two learning rates and one single run, all under `reports/`.
fn small_reports() -> TestDir {
    let dir = TestDir::new().images("data", 6, 2, 16).spec(&TinySpec::new("tiny", "data", 2));
    let sweep: toml::Value = toml::from_str("mode = \"grid\"\n\"train.optimizer.lr\" = [1e-3, 4e-3]").unwrap();
    TinySpec::new("tiny-sweep", "data", 2).insert("sweep", sweep).write(&dir.path().join("sweep.toml"));
    dir
}

/// The check script: drives the page through its hook and reports what it saw.
const CHECK: &str = r#"<script>
window.addEventListener('load', () => setTimeout(() => {
  const t0 = performance.now();
  const api = window.brasaIndex;
  const steps = {};
  try {
    steps.initial = api.state();
    steps.load_ms = performance.now();
    steps.text = brasaTextSizes();
    steps.chart_text = api.chartText();
    __STEPS__
  } catch (e) {
    window.__errors.push('check: ' + e + ' ' + e.stack);
  }
  steps.check_ms = performance.now() - t0;
  brasaReport(steps);
}, 0));
</script>"#;

/// The page's reports at each width (`None` where the browser check is skipped).
fn check_page(index: &Path, steps: &str, widths: &[u32], out: &Path) -> Option<Vec<Value>> {
    let browser = browser::browser_or_skip("the runs index")?;
    let html = std::fs::read_to_string(index).unwrap();
    let script = CHECK.replace("__STEPS__", steps);
    let pages: Vec<Page> = widths
        .iter()
        .map(|&width| Page { html: &html, copy: index.with_file_name(format!("index-check-{width}.html")), width, height: 900 })
        .collect();
    let reports = browser::check(&browser, &pages, &script, &out.join("index.png"));
    for page in &pages {
        std::fs::remove_file(&page.copy).unwrap();
    }
    for (report, width) in reports.iter().zip(widths) {
        assert_eq!(report["errors"], serde_json::json!([]), "page errors at {width} px: {report:#}");
    }
    Some(reports)
}

fn ids(value: &Value) -> Vec<String> {
    value.as_array().unwrap_or_else(|| panic!("not a list: {value}")).iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn runs_and_a_sweep_under_reports_are_indexed_as_their_folders_say_and_the_page_works() {
    let dir = small_reports();
    dir.brasa(["run", "sweep.toml", "--quiet"]).succeeds();
    let ran = dir.brasa(["run", "spec.toml"]).stderr_contains("runs index: reports/index.html (3 runs)").succeeds();
    let reports = dir.path().join("reports");
    assert!(reports.join("index.html").is_file(), "brasa run refreshes the index: {}", ran.stderr);

    // runs.csv: one row per run, as each run folder says
    let rows = runs_csv(&reports.join("runs.csv"));
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for column in [
        "experiment", "run", "sweep", "trial", "status", "date", "wall_seconds", "model", "data", "best_epoch", "val_accuracy", "val_accuracy_low",
        "val_accuracy_high", "val_macro_f1", "val_loss", "test_accuracy", "test_accuracy_low", "test_macro_f1", "leak_free_test_accuracy", "findings",
        "report", "train.optimizer.lr", "train.batch_size", "model.arch",
    ] {
        assert!(rows[0].contains_key(column), "runs.csv has no {column}: {:?}", rows[0].keys());
    }
    for row in &rows {
        let run = reports.join(&row["run"]);
        let meta = read_json(&run.join("meta.json"));
        assert_eq!(row["experiment"], meta["experiment"].as_str().unwrap());
        assert_eq!(row["status"], "complete");
        assert_eq!(row["best_epoch"], meta["best_epoch"].to_string());
        assert_eq!(reports.join(&row["report"]), run.join("report.html"));
        let test = number(&row["test_accuracy"]);
        assert!((test - report_accuracy(&run.join("test_report.csv"))).abs() < 1e-4, "{row:?}");
        let (low, high) = (number(&row["test_accuracy_low"]), number(&row["test_accuracy_high"]));
        assert!(low <= test && test <= high, "{row:?}");
        let val = number(&row["val_accuracy"]);
        assert!((val - report_accuracy(&run.join("val_report.csv"))).abs() < 1e-4, "{row:?}");
        let summary = read_json(&run.join("summary.json"));
        let codes: Vec<&str> = summary["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
        assert_eq!(row["findings"], codes.join(" "));
    }
    let trials: Vec<&BTreeMap<String, String>> = rows.iter().filter(|r| !r["sweep"].is_empty()).collect();
    assert_eq!(trials.len(), 2);
    let mut rates: Vec<f64> = trials.iter().map(|r| number(&r["train.optimizer.lr"])).collect();
    rates.sort_by(f64::total_cmp);
    assert_eq!(rates, [1e-3, 4e-3]);
    assert!(trials.iter().all(|r| r["trial"].starts_with("trial-") && r["sweep"].starts_with("tiny-sweep/sweep-")), "{trials:?}");
    let single = rows.iter().find(|r| r["sweep"].is_empty()).unwrap();
    assert_eq!(single["train.optimizer.lr"], "0.002");

    // the page's data marks the swept key; brasa compare --out into compare/ is linked
    let data = page_data(&std::fs::read_to_string(reports.join("index.html")).unwrap());
    let lr = data["columns"].as_array().unwrap().iter().find(|c| c["key"] == "train.optimizer.lr").unwrap();
    assert_eq!((lr["swept"].as_bool(), lr["log"].as_bool()), (Some(true), Some(true)), "{lr}");
    assert_eq!(data["compare"]["existing"], serde_json::json!([]));
    let (a, b) = (trials[0]["run"].clone(), trials[1]["run"].clone());
    let compared = format!("{}--vs--{}", a.replace('/', "__"), b.replace('/', "__"));
    dir.brasa(["compare", &format!("reports/{a}"), &format!("reports/{b}"), "--out", &format!("reports/compare/{compared}.md")]).succeeds();
    let data = page_data(&std::fs::read_to_string(reports.join("index.html")).unwrap());
    assert_eq!(data["compare"]["existing"], serde_json::json!([compared]));

    // brasa report refreshes it too, and brasa index writes the same table
    std::fs::remove_file(reports.join("runs.csv")).unwrap();
    dir.brasa(["report", &format!("reports/{}", single["run"])]).stderr_contains("runs index:").succeeds();
    assert_eq!(runs_csv(&reports.join("runs.csv")), rows);
    dir.brasa(["index"]).stdout_contains("3 run(s) under reports").succeeds();
    assert_eq!(runs_csv(&reports.join("runs.csv")), rows);

    let steps = format!(
        r#"
    api.sortBy('val_accuracy', 'desc'); steps.by_val = api.state().shown;
    api.sortBy('train.optimizer.lr', 'asc'); steps.by_lr = api.state().shown;
    api.filter('trial-01'); steps.filtered = api.state().shown; api.filter('');
    api.select(['{a}', '{b}']); steps.compare = api.compareTarget();
    api.select(['{a}']); steps.compare_one = api.compareTarget();
    steps.final = api.state();
    "#
    );
    let Some(reports_seen) = check_page(&reports.join("index.html"), &steps, &[1280, 390], dir.path()) else { return };
    let mut by_val: Vec<(f64, String)> = rows.iter().map(|r| (number(&r["val_accuracy"]), r["run"].clone())).collect();
    by_val.sort_by(|x, y| y.0.total_cmp(&x.0));
    let mut by_lr: Vec<(f64, String)> = rows.iter().map(|r| (number(&r["train.optimizer.lr"]), r["run"].clone())).collect();
    by_lr.sort_by(|x, y| x.0.total_cmp(&y.0));
    for (seen, width) in reports_seen.iter().zip([1280, 390]) {
        assert_eq!(seen["initial"]["shown"].as_array().unwrap().len(), 3, "{seen:#}");
        let shown_val: Vec<f64> = ids(&seen["by_val"]).iter().map(|id| number(&rows.iter().find(|r| &r["run"] == id).unwrap()["val_accuracy"])).collect();
        assert_eq!(shown_val, by_val.iter().map(|x| x.0).collect::<Vec<_>>(), "sorted by validation accuracy");
        assert_eq!(ids(&seen["by_lr"]).iter().map(|id| number(&rows.iter().find(|r| &r["run"] == id).unwrap()["train.optimizer.lr"])).collect::<Vec<_>>(), by_lr.iter().map(|x| x.0).collect::<Vec<_>>());
        assert_eq!(ids(&seen["filtered"]), [trials.iter().find(|r| r["trial"] == "trial-01").unwrap()["run"].clone()]);
        assert_eq!(seen["compare"]["href"], format!("compare/{compared}.md"), "{seen:#}");
        assert!(seen["compare_one"].is_null() || seen["compare_one"].get("href").is_none(), "{seen:#}");
        let visible = ids(&seen["final"]["visibleColumns"]);
        let hidden = ids(&seen["final"]["hiddenConstant"]);
        assert!(visible.contains(&"run".to_string()) && visible.contains(&"train.optimizer.lr".to_string()), "{visible:?}");
        assert!(hidden.contains(&"model".to_string()) && hidden.contains(&"train.batch_size".to_string()), "constant columns are hidden: {hidden:?}");
        let best = seen["final"]["best"]["val_accuracy"].as_array().unwrap();
        assert!(best.iter().any(|id| id.as_str() == Some(by_val[0].1.as_str())), "the best validation accuracy is marked: {seen:#}");
        text_is_readable(seen, width);
    }
}

/// Text (HTML, controls and chart text) at least 11 px, and no horizontal scrolling at 390.
fn text_is_readable(seen: &Value, width: u32) {
    let text = &seen["text"];
    for key in ["html_min_px", "controls_min_px", "svg_min_px"] {
        if let Some(px) = text[key].as_f64() {
            assert!(px >= 11.0, "{key} = {px} at {width} px: {text:#}");
        }
    }
    assert!(text["svg_min_px"].as_f64().is_some(), "the page draws its charts at {width} px: {text:#}");
    assert!(seen["chart_text"].as_f64().unwrap() >= 11.0, "{seen:#}");
    assert!(seen["overflow"].as_f64().unwrap() <= 0.0, "no horizontal scrolling at {width} px: {seen:#}");
}

/// Copies the files of a run folder that the index reads (not checkpoints or event files).
fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// A tiny deterministic generator for the synthetic runs.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Makes run `to` a variant of run `from`: another experiment name and learning rate, other
/// validation curves; with `keep_summary` false also other test predictions, and no
/// `summary.json` (the index then derives it from the predictions).
fn vary(from: &Path, to: &Path, experiment: &str, lr: f64, rng: &mut Lcg, keep_summary: bool) {
    copy_run(from, to);
    let mut meta = read_json(&to.join("meta.json"));
    meta["experiment"] = experiment.into();
    meta["run_id"] = to.file_name().unwrap().to_string_lossy().into_owned().into();
    meta["wall_seconds"] = (30.0 + 600.0 * rng.next()).into();
    std::fs::write(to.join("meta.json"), serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    let mut spec: toml::Table = toml::from_str(&std::fs::read_to_string(to.join("spec.toml")).unwrap()).unwrap();
    spec["experiment"]["name"] = experiment.into();
    spec["train"]["optimizer"]["lr"] = lr.into();
    std::fs::write(to.join("spec.toml"), toml::to_string(&spec).unwrap()).unwrap();
    // other validation accuracies (and losses) per epoch
    let shift = rng.next() * 0.4 - 0.2;
    rewrite_csv(&to.join("epochs.csv"), |header, row| {
        for (k, name) in header.iter().enumerate() {
            if name == "val_accuracy" || name == "val_loss" {
                let value: f64 = row[k].parse().unwrap();
                row[k] = format!("{:.6}", (value + shift).clamp(0.0, if name == "val_loss" { 10.0 } else { 1.0 }));
            }
        }
    });
    if keep_summary {
        // its summary.json stays true: the predictions it summarises are the template's
        return;
    }
    // other test predictions: a share of the images predicted as their true class
    let right = rng.next();
    let mut draws = Lcg(rng.0);
    rewrite_csv(&to.join("test_predictions.csv"), |header, row| {
        let label = header.iter().position(|h| h == "label").unwrap();
        let prediction = header.iter().position(|h| h == "prediction").unwrap();
        if draws.next() < right {
            row[prediction] = row[label].clone();
        }
    });
    std::fs::remove_file(to.join("summary.json")).unwrap();
}

fn rewrite_csv(path: &Path, mut edit: impl FnMut(&[String], &mut Vec<String>)) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer.write_record(&header).unwrap();
    for mut row in rows {
        edit(&header, &mut row);
        writer.write_record(&row).unwrap();
    }
    writer.flush().unwrap();
}

#[test]
fn five_hundred_runs_make_a_small_page_that_sorts_filters_and_brushes() {
    let dir = small_reports();
    dir.brasa(["run", "sweep.toml", "--quiet"]).succeeds();
    let real = dir.path().join("reports");
    let sweep_folder: PathBuf = std::fs::read_dir(real.join("tiny-sweep")).unwrap().next().unwrap().unwrap().path();
    let (sweep_toml, template) = (sweep_folder.join("sweep.toml"), sweep_folder.join("trial-01"));

    // 500 runs: 4 sweeps of 50 trials (lr log-spaced) and 300 single runs of 3 experiments
    let synthetic = dir.path().join("many");
    let mut rng = Lcg(42);
    let mut count = 0;
    for s in 0..4 {
        let sweep = synthetic.join(format!("sweep-exp-{s}/sweep-{s:04x}"));
        std::fs::create_dir_all(&sweep).unwrap();
        std::fs::copy(&sweep_toml, sweep.join("sweep.toml")).unwrap();
        for t in 0..50 {
            let lr = 10f64.powf(-4.0 + 2.0 * t as f64 / 49.0);
            vary(&template, &sweep.join(format!("trial-{:02}", t + 1)), &format!("sweep-exp-{s}"), lr, &mut rng, count % 2 == 0);
            count += 1;
        }
    }
    for k in 0..300 {
        let experiment = format!("exp-{}", k % 3);
        let lr = [1e-4, 3e-4, 1e-3, 3e-3][k % 4];
        vary(&template, &synthetic.join(&experiment).join(format!("run-{k:03}")), &experiment, lr, &mut rng, k % 2 == 0);
        count += 1;
    }
    assert_eq!(count, 500);
    // a folder that is not a readable run is named, not silently left out
    std::fs::create_dir_all(synthetic.join("broken/run")).unwrap();
    std::fs::write(synthetic.join("broken/run/meta.json"), "{ not json").unwrap();

    let started = std::time::Instant::now();
    let ran = dir.brasa(["index", "many"]).stdout_contains("500 run(s) under many").stderr_contains("broken/run is not listed").succeeds();
    let seconds = started.elapsed().as_secs_f64();
    let rows = runs_csv(&synthetic.join("runs.csv"));
    assert_eq!(rows.len(), 500, "{}", ran.stderr);
    let page = synthetic.join("index.html");
    let size = std::fs::metadata(&page).unwrap().len();
    eprintln!("500 runs: brasa index took {seconds:.2} s; index.html {:.0} KB", size as f64 / 1024.0);
    assert!(size < 3 << 20, "index.html of 500 runs is {size} bytes");

    // the derived and the stored summaries agree on the same predictions
    let of = |id: &str| rows.iter().find(|r| r["run"] == id).unwrap();
    let with = of("sweep-exp-0/sweep-0000/trial-01");
    assert!(synthetic.join("sweep-exp-0/sweep-0000/trial-01/summary.json").is_file());
    assert!(!synthetic.join("sweep-exp-0/sweep-0000/trial-02/summary.json").exists());
    for row in [with, of("sweep-exp-0/sweep-0000/trial-02")] {
        let run = synthetic.join(&row["run"]);
        assert!((number(&row["test_accuracy"]) - accuracy_of(&run.join("test_predictions.csv"))).abs() < 1e-9, "{row:?}");
    }
    assert_eq!(with["sweep"], "sweep-exp-0/sweep-0000");

    // what the page must show, computed from runs.csv
    let in_range = rows.iter().filter(|r| (0.5..=0.8).contains(&number(&r["test_accuracy"]))).count();
    let brushed = rows.iter().filter(|r| !r["sweep"].is_empty() && (1e-3..=1e-2).contains(&number(&r["train.optimizer.lr"]))).count();
    let experiment_0 = rows.iter().filter(|r| r["run"].contains("exp-0/")).count();
    let steps = r#"
    api.sortBy('test_accuracy', 'desc'); steps.sorted = api.state().shown.slice(0, 5);
    steps.rendered = api.state().renderedRows;
    api.range('test_accuracy', 0.5, 0.8); steps.in_range = api.state().shown.length; api.range('test_accuracy', null, null);
    api.filter('exp-0/'); steps.filtered = api.state().shown.length; api.filter('');
    api.filter('sweep-'); api.brush('train.optimizer.lr', 1e-3, 1e-2); steps.brushed = api.state().shown.length;
    api.brush('train.optimizer.lr', null, null); api.filter('');
    api.showAll(); steps.all_rendered = api.state().renderedRows;
    steps.final = api.state();
    "#;
    let Some(seen) = check_page(&page, steps, &[1280], dir.path()) else { return };
    let seen = &seen[0];
    eprintln!("500 runs: page ready after {} ms, checks took {:.0} ms", seen["load_ms"], seen["check_ms"].as_f64().unwrap_or(f64::NAN));
    assert_eq!(seen["initial"]["shown"].as_array().unwrap().len(), 500);
    assert!(seen["rendered"].as_u64().unwrap() <= 101, "at most 100 rows are drawn at first: {}", seen["rendered"]);
    assert_eq!(seen["all_rendered"].as_u64(), Some(500));
    let mut by_test: Vec<f64> = rows.iter().map(|r| number(&r["test_accuracy"])).collect();
    by_test.sort_by(|a, b| b.total_cmp(a));
    let top: Vec<f64> = ids(&seen["sorted"]).iter().map(|id| number(&of(id)["test_accuracy"])).collect();
    assert_eq!(top, by_test[..5]);
    assert_eq!(seen["in_range"].as_u64(), Some(in_range as u64));
    assert_eq!(seen["filtered"].as_u64(), Some(experiment_0 as u64));
    assert_eq!(seen["brushed"].as_u64(), Some(brushed as u64), "brushing lr in [1e-3, 1e-2] among the sweeps' trials");
    let hidden = ids(&seen["final"]["hiddenConstant"]);
    assert!(hidden.contains(&"model".to_string()) && !hidden.contains(&"train.optimizer.lr".to_string()), "{hidden:?}");
    text_is_readable(seen, 1280);
}

/// The accuracy of a predictions file.
fn accuracy_of(path: &Path) -> f64 {
    let rows = runs_csv(path);
    rows.iter().filter(|r| r["label"] == r["prediction"]).count() as f64 / rows.len() as f64
}

#[test]
#[ignore = "checks the index BRASA_INDEX_HTML names: run with --ignored"]
fn a_real_index_named_by_brasa_index_html_works_at_both_widths() {
    let page = PathBuf::from(std::env::var_os("BRASA_INDEX_HTML").expect("BRASA_INDEX_HTML=path/to/reports/index.html names the index to check"));
    let data = page_data(&std::fs::read_to_string(&page).unwrap());
    let total = data["runs"].as_array().unwrap().len();
    let steps = r#"
    api.sortBy('val_accuracy', 'desc'); steps.by_val = api.state().shown;
    const first = steps.by_val[0];
    api.filter(first); steps.filtered = api.state().shown;
    api.filter('');
    api.select(steps.by_val.slice(0, 2)); steps.compare = api.compareTarget();
    steps.final = api.state();
    "#;
    let shot = tempfile::tempdir().unwrap();
    let Some(seen) = check_page(&page, steps, &[1280, 390], shot.path()) else { return };
    std::fs::copy(shot.path().join("index.png"), page.with_file_name("index-check.png")).unwrap();
    for (seen, width) in seen.iter().zip([1280, 390]) {
        eprintln!(
            "{width} px: {total} runs shown {}, rendered rows {}, visible columns {:?}, hidden constant {}, text {}, chart text {}, overflow {}, ready after {:.0} ms, compare {}",
            seen["initial"]["shown"].as_array().unwrap().len(),
            seen["final"]["renderedRows"],
            seen["final"]["visibleColumns"],
            seen["final"]["hiddenConstant"].as_array().unwrap().len(),
            seen["text"],
            seen["chart_text"],
            seen["overflow"],
            seen["load_ms"].as_f64().unwrap_or(f64::NAN),
            seen["compare"],
        );
        assert_eq!(seen["initial"]["shown"].as_array().unwrap().len(), total);
        let values: Vec<f64> = ids(&seen["by_val"])
            .iter()
            .filter_map(|id| {
                let k = data["runs"].as_array().unwrap().iter().position(|r| r["id"] == id.as_str()).unwrap();
                let column = data["columns"].as_array().unwrap().iter().position(|c| c["key"] == "val_accuracy").unwrap();
                data["runs"][k]["cells"][column][0].as_f64()
            })
            .collect();
        assert!(values.windows(2).all(|w| w[0] >= w[1]), "sorted by validation accuracy: {values:?}");
        assert!(ids(&seen["filtered"]).contains(&ids(&seen["by_val"])[0]));
        text_is_readable(seen, width);
    }
}

/// A process that holds `reports/.index.lock` and never lets go (a `brasa index` stopped with
/// Ctrl-Z) keeps no run waiting for ever: the run finishes, says whom it waited for and that the
/// index was not rewritten, and exits 0; `brasa index` itself gives up with exit 5 naming the
/// holder.
#[test]
fn a_stuck_holder_of_the_index_lock_delays_a_run_a_bounded_time_and_is_named() {
    let dir = small_reports();
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    let lock_path = dir.path().join("reports/.index.lock");
    std::fs::write(&lock_path, "a stopped brasa index (the test)").unwrap();
    let held = std::fs::OpenOptions::new().read(true).write(true).open(&lock_path).unwrap();
    held.lock().unwrap();
    let ran = dir.brasa(["run", "spec.toml", "--quiet"]).env("BRASA_LOCK_WAIT_SECS", "1").succeeds();
    assert!(ran.stderr.contains("waiting for") && ran.stderr.contains("held by a stopped brasa index (the test)"), "{ran}");
    assert!(ran.stderr.contains("warning: the runs index above") && ran.stderr.contains("was not rewritten"), "{ran}");
    assert!(!dir.path().join("reports/runs.csv").exists());
    dir.brasa(["index", "reports"]).env("BRASA_LOCK_WAIT_SECS", "0.5").stderr_contains("held by a stopped brasa index (the test)").exits_with(5);
    drop(held);
    dir.brasa(["index", "reports"]).succeeds();
    assert_eq!(runs_csv(&dir.path().join("reports/runs.csv")).len(), 1);
}
