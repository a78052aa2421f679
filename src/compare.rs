//! Paired comparison of runs on the same test images: metric differences with bootstrap
//! intervals, McNemar's exact test on per-image correctness, per-class recall deltas, and a
//! verdict sentence. Reads run folders only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::metrics::Scores;
use crate::run_dir::{Part, PredictionRow, RunDir};
use crate::stats::{self, Interval, Metric};

/// Significance level of the verdict.
pub const ALPHA: f64 = 0.05;

/// A run's test predictions.
#[derive(Debug, Clone)]
pub struct RunPredictions {
    pub dir: PathBuf,
    /// `experiment/run-id`, or the end of its folder's path where that names another run too
    /// ([`distinguish`]).
    pub name: String,
    pub classes: Vec<String>,
    pub rows: Vec<PredictionRow>,
    /// Each row's image as compare pairs it: its path under the run's data root (so the same
    /// dataset mounted elsewhere, or through a link, pairs), else the path as recorded.
    pub keys: Vec<String>,
    pub seed: u64,
}

impl RunPredictions {
    pub fn load(dir: &Path) -> Result<Self> {
        let run = RunDir::open(dir)?;
        let meta = run.read_meta()?;
        if meta.status != crate::run_dir::Status::Complete {
            let status = format!("{:?}", meta.status).to_lowercase();
            return Err(Error::run_dir(dir, format!("did not complete (status {status}): compare needs finished runs")));
        }
        if !run.path(&Part::Test.predictions_file()).is_file() {
            return Err(Error::run_dir(dir, "has no test predictions (no test set, or the run did not finish)"));
        }
        let rows = run.read_predictions(Part::Test, &meta.classes)?;
        let root = Path::new(&meta.data_root);
        let keys = rows
            .iter()
            .map(|r| match Path::new(&r.path).strip_prefix(root) {
                Ok(relative) if !meta.data_root.is_empty() => relative.to_string_lossy().into_owned(),
                _ => r.path.clone(),
            })
            .collect();
        Ok(Self { dir: dir.to_path_buf(), name: format!("{}/{}", meta.experiment, meta.run_id), classes: meta.classes, rows, keys, seed: meta.seed })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricComparison {
    pub metric: &'static str,
    pub a: Interval,
    pub b: Interval,
    /// `b - a`, with a paired bootstrap interval.
    pub difference: Interval,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecallDelta {
    pub class: String,
    pub a: f64,
    pub b: f64,
    pub delta: f64,
}

/// Run `b` against run `a` on the same test images.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub images: usize,
    pub metrics: Vec<MetricComparison>,
    /// Images only `a` classifies correctly.
    pub only_a_correct: usize,
    /// Images only `b` classifies correctly.
    pub only_b_correct: usize,
    pub mcnemar_p: f64,
    pub significant: bool,
    pub recall: Vec<RecallDelta>,
    pub verdict: String,
}

/// Renames the runs whose `experiment/run-id` names another run of `runs` too (two sweeps' `trial-01`,
/// `--out a/r1` and `--out b/r1`) after the shortest end of their folders' paths that tells them
/// apart, so that a verdict never reads "r1 is more accurate than r1".
pub fn distinguish(runs: &mut [RunPredictions]) {
    let absolute: Vec<PathBuf> = runs.iter().map(|r| std::path::absolute(&r.dir).unwrap_or_else(|_| r.dir.clone())).collect();
    let components = |dir: &Path| -> Vec<String> { dir.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect() };
    let tail = |parts: &[String], k: usize| parts[parts.len().saturating_sub(k)..].join("/");
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    for (i, run) in runs.iter_mut().enumerate() {
        let clashing: Vec<usize> = (0..names.len()).filter(|&j| j != i && names[j] == names[i] && absolute[j] != absolute[i]).collect();
        if clashing.is_empty() {
            continue;
        }
        let own = components(&absolute[i]);
        let others: Vec<Vec<String>> = clashing.iter().map(|&j| components(&absolute[j])).collect();
        let k = (1..=own.len()).find(|&k| others.iter().all(|o| tail(o, k) != tail(&own, k))).unwrap_or(own.len());
        run.name = tail(&own, k);
    }
}

/// For each class of `from`, its index in `to`; `None` unless both list the same classes.
fn class_map(from: &[String], to: &[String]) -> Option<Vec<usize>> {
    let map: Vec<usize> = from.iter().map(|class| to.iter().position(|c| c == class)).collect::<Option<_>>()?;
    let distinct: std::collections::HashSet<usize> = map.iter().copied().collect();
    (from.len() == to.len() && distinct.len() == to.len()).then_some(map)
}

/// Compares `b` with `a`; refuses runs whose test sets (images and labels) differ.
pub fn compare(a: &RunPredictions, b: &RunPredictions) -> Result<Comparison> {
    // the same classes listed in another order (a `data.classes` written out) pair by name
    let Some(b_to_a) = class_map(&b.classes, &a.classes) else {
        return Err(Error::Data(format!(
            "{} and {} have different classes ({:?} vs {:?}): their test results cannot be paired",
            a.name, b.name, a.classes, b.classes
        )));
    };
    let by_key: HashMap<&str, &PredictionRow> = b.keys.iter().map(String::as_str).zip(&b.rows).collect();
    let a_rows = || a.keys.iter().map(String::as_str).zip(&a.rows);
    let only_a = a_rows().filter(|(key, _)| !by_key.contains_key(key)).count();
    let a_keys: std::collections::HashSet<&str> = a.keys.iter().map(String::as_str).collect();
    let only_b = b.keys.iter().filter(|key| !a_keys.contains(key.as_str())).count();
    let relabelled = a_rows().filter(|(key, r)| by_key.get(key).is_some_and(|o| b_to_a[o.label] != r.label)).count();
    if only_a + only_b + relabelled > 0 || a.rows.len() != b.rows.len() {
        return Err(Error::Data(format!(
            "{} and {} were tested on different images ({only_a} only in the first, {only_b} only in the second, \
             {relabelled} labelled differently): a paired comparison needs the same test set",
            a.name, b.name
        )));
    }
    let truth: Vec<usize> = a.rows.iter().map(|r| r.label).collect();
    let pred_a: Vec<usize> = a.rows.iter().map(|r| r.prediction).collect();
    let pred_b: Vec<usize> = a.keys.iter().map(|key| b_to_a[by_key[key.as_str()].prediction]).collect();
    let n_classes = a.classes.len();
    let seed = a.seed ^ b.seed.rotate_left(17);
    let metrics = Metric::ALL
        .iter()
        .map(|&metric| MetricComparison {
            metric: metric.name(),
            a: stats::metric_interval(&truth, &pred_a, n_classes, metric, seed),
            b: stats::metric_interval(&truth, &pred_b, n_classes, metric, seed),
            difference: stats::paired_difference(&truth, &pred_a, &pred_b, n_classes, metric, seed),
        })
        .collect::<Vec<_>>();
    let correct = |p: &[usize], i: usize| p[i] == truth[i];
    let only_a_correct = (0..truth.len()).filter(|&i| correct(&pred_a, i) && !correct(&pred_b, i)).count();
    let only_b_correct = (0..truth.len()).filter(|&i| !correct(&pred_a, i) && correct(&pred_b, i)).count();
    let mcnemar_p = stats::mcnemar_exact(only_a_correct, only_b_correct);
    let significant = mcnemar_p < ALPHA;
    let (report_a, report_b) = (Scores::new(&truth, &pred_a, n_classes), Scores::new(&truth, &pred_b, n_classes));
    let recall = a
        .classes
        .iter()
        .enumerate()
        .map(|(c, class)| RecallDelta {
            class: class.clone(),
            a: report_a.per_class[c].recall,
            b: report_b.per_class[c].recall,
            delta: report_b.per_class[c].recall - report_a.per_class[c].recall,
        })
        .collect();
    let accuracy = &metrics[0];
    let direction = match accuracy.difference.value {
        d if d > 0.0 => format!("{} is {:.4} more accurate than {}", b.name, d, a.name),
        d if d < 0.0 => format!("{} is {:.4} less accurate than {}", b.name, -d, a.name),
        _ => format!("{} and {} are equally accurate", b.name, a.name),
    };
    let verdict = format!(
        "{direction} on the same {} test images (95% CI of the difference [{:+.4}, {:+.4}]); McNemar's exact test \
         on the {} images they disagree on gives p = {:.4}: the difference is {}significant at {ALPHA}.",
        truth.len(),
        accuracy.difference.low,
        accuracy.difference.high,
        only_a_correct + only_b_correct,
        mcnemar_p,
        if significant { "" } else { "not " },
    );
    Ok(Comparison {
        a: a.name.clone(),
        b: b.name.clone(),
        images: truth.len(),
        metrics,
        only_a_correct,
        only_b_correct,
        mcnemar_p,
        significant,
        recall,
        verdict,
    })
}

/// Markdown for one comparison (used by `brasa compare` and the sweep report).
pub fn markdown(c: &Comparison) -> String {
    let ci = |i: &Interval| format!("{:.4} [{:.4}, {:.4}]", i.value, i.low, i.high);
    let signed = |i: &Interval| format!("{:+.4} [{:+.4}, {:+.4}]", i.value, i.low, i.high);
    let mut text = format!("### `{}` against the baseline `{}`\n\n", c.b, c.a);
    text.push_str(&format!("**Verdict.** {}\n\n", c.verdict));
    text.push_str(&format!("| metric (test, 95% CI) | `{}` | `{}` | difference |\n|---|---|---|---|\n", c.a, c.b));
    for m in &c.metrics {
        text.push_str(&format!("| {} | {} | {} | {} |\n", m.metric, ci(&m.a), ci(&m.b), signed(&m.difference)));
    }
    text.push_str(&format!(
        "\nMcNemar's exact test: {} images only `{}` gets right, {} only `{}`; p = {:.4}.\n\n",
        c.only_a_correct, c.a, c.only_b_correct, c.b, c.mcnemar_p
    ));
    text.push_str(&format!("| class | recall `{}` | recall `{}` | difference |\n|---|---|---|---|\n", c.a, c.b));
    for r in &c.recall {
        text.push_str(&format!("| {} | {:.4} | {:.4} | {:+.4} |\n", r.class, r.a, r.b, r.delta));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &str, name: &str) -> RunPredictions {
        RunPredictions { dir: PathBuf::from(dir), name: name.into(), classes: Vec::new(), rows: Vec::new(), keys: Vec::new(), seed: 0 }
    }

    #[test]
    fn the_same_classes_in_another_order_pair_by_name() {
        let rows = |classes: [&str; 3], truth: &[&str], predicted: &[&str]| {
            let index = |name: &&str| classes.iter().position(|c| c == name).unwrap();
            let rows: Vec<PredictionRow> = (0..truth.len())
                .map(|i| PredictionRow { path: format!("{i}.png"), label: index(&truth[i]), prediction: index(&predicted[i]), probabilities: vec![0.0; 3] })
                .collect();
            let keys = rows.iter().map(|r| r.path.clone()).collect();
            RunPredictions { classes: classes.map(String::from).to_vec(), rows, keys, ..run("r", "r") }
        };
        let truth = ["cat", "dog", "owl", "dog", "cat", "owl"];
        let predicted = ["cat", "dog", "dog", "dog", "owl", "owl"];
        let a = rows(["cat", "dog", "owl"], &truth, &truth);
        let b = rows(["owl", "cat", "dog"], &truth, &predicted);
        let b_same_order = rows(["cat", "dog", "owl"], &truth, &predicted);
        let (reordered, same) = (compare(&a, &b).unwrap(), compare(&a, &b_same_order).unwrap());
        assert_eq!((reordered.only_a_correct, reordered.only_b_correct), (2, 0));
        assert_eq!(serde_json::to_string(&reordered).unwrap(), serde_json::to_string(&same).unwrap());
        let other = rows(["cat", "dog", "emu"], &["cat"], &["cat"]);
        assert!(compare(&a, &other).unwrap_err().to_string().contains("different classes"));
    }

    #[test]
    fn runs_of_one_name_are_told_apart_by_the_shortest_end_of_their_folders() {
        let mut runs = [run("reports/base/r1", "base/r1"), run("reports/other/r1", "base/r1"), run("reports/x/r2", "base/r2")];
        distinguish(&mut runs);
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["base/r1", "other/r1", "base/r2"]);
        let mut sweeps = [run("a/sweep-1/trial-01", "s/trial-01"), run("b/sweep-2/trial-01", "s/trial-01")];
        distinguish(&mut sweeps);
        assert_eq!([sweeps[0].name.as_str(), sweeps[1].name.as_str()], ["sweep-1/trial-01", "sweep-2/trial-01"]);
    }
}
