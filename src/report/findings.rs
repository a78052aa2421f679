//! Findings: short sentences derived from a run's files that tell the reader what the numbers
//! mean — the traps the reference notebook fell into (validation far above test, leakage, a
//! class the model never finds) and signs of unfinished training. Each one links to the report
//! section holding its evidence. The thresholds are constants, documented here and in the README.

use serde::Serialize;

use crate::metrics::Scores;
use crate::run_dir::{EpochRow, StepRow};
use crate::stats::{self, Interval, Metric};

/// Validation accuracy this far above test accuracy (and an interval of the gap above zero)
/// makes a finding.
pub const GAP: f64 = 0.05;
/// A class whose recall is below this is "near zero".
pub const LOW_RECALL: f64 = 0.2;
/// A class "absorbs" predictions when it receives at least this share of them and at least
/// `ABSORB_RATIO` times its true share.
pub const ABSORB_SHARE: f64 = 0.5;
pub const ABSORB_RATIO: f64 = 1.5;
/// A step whose gradient norm exceeds this multiple of the median of the `SPIKE_WINDOW`
/// steps before it is a spike.
pub const SPIKE_FACTOR: f64 = 5.0;
pub const SPIKE_WINDOW: usize = 50;
/// A relative fall of the training loss per epoch, over the last two epochs, that counts as
/// "still falling".
pub const STILL_FALLING: f64 = 0.01;

/// One finding: a sentence and the section (anchor, title) with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// A short stable name of what was found (`best-is-last`), for lists of runs.
    pub code: &'static str,
    pub text: String,
    pub anchor: &'static str,
    pub section: &'static str,
}

/// True and predicted labels of one part.
#[derive(Clone, Copy)]
pub struct Labels<'a> {
    pub truth: &'a [usize],
    pub predicted: &'a [usize],
}

/// What the duplicate analysis of the run found (see [`super::leakage`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeakFacts {
    pub test_leaked: usize,
    pub test_total: usize,
    pub val_leaked: usize,
    pub val_total: usize,
    pub conflicts: usize,
    /// Accuracy on the test images without a duplicate on the training side.
    pub leak_free_accuracy: Option<Interval>,
}

pub struct Inputs<'a> {
    pub classes: &'a [String],
    pub epochs: &'a [EpochRow],
    pub steps: &'a [StepRow],
    pub best_epoch: Option<usize>,
    pub val: Option<Labels<'a>>,
    pub test: Option<Labels<'a>>,
    pub leaks: Option<&'a LeakFacts>,
    pub seed: u64,
    /// Classes of the image files left out because they cannot be read, with their folder
    /// (`train` or `test`).
    pub unreadable: &'a [(String, String)],
}

/// The findings that apply, most important first.
pub fn derive(inputs: &Inputs) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let (Some(val), Some(test)) = (inputs.val, inputs.test) {
        findings.extend(generalisation_gap(val, test, inputs.classes.len(), inputs.seed));
    }
    if let Some(leaks) = inputs.leaks {
        findings.extend(leakage(leaks));
    }
    for (part, labels, anchor, section) in [
        ("test", inputs.test, "test-classification-report", "Test classification report"),
        ("validation", inputs.val, "validation-classification-report", "Validation classification report"),
    ] {
        if let Some(labels) = labels {
            findings.extend(class_problems(part, labels, inputs.classes, anchor, section));
        }
    }
    findings.extend(unreadable(inputs.unreadable));
    findings.extend(training_progress(inputs.epochs, inputs.best_epoch));
    findings.extend(gradient_spikes(inputs.steps));
    findings
}

fn unreadable(files: &[(String, String)]) -> Option<Finding> {
    if files.is_empty() {
        return None;
    }
    let mut per_class: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    files.iter().for_each(|(class, _)| *per_class.entry(class).or_default() += 1);
    let classes: Vec<String> = per_class.iter().map(|(class, n)| format!("{class} {n}")).collect();
    let test = files.iter().filter(|(_, folder)| folder == "test").count();
    Some(Finding {
        code: "unreadable-files",
        text: format!(
            "{} image file(s) cannot be read and were left out of this run ({}; {} from the training folder, {test} from the test folder): \
             every count and score here is of the other images. `split.csv` lists them as `skipped`; fix or remove them.",
            files.len(),
            classes.join(", "),
            files.len() - test
        ),
        anchor: "data",
        section: "Data",
    })
}

fn generalisation_gap(val: Labels, test: Labels, num_classes: usize, seed: u64) -> Option<Finding> {
    let gap = stats::independent_difference((val.truth, val.predicted), (test.truth, test.predicted), num_classes, Metric::Accuracy, seed);
    if gap.value < GAP || gap.low <= 0.0 {
        return None;
    }
    let val_acc = Scores::new(val.truth, val.predicted, num_classes).accuracy;
    let test_acc = Scores::new(test.truth, test.predicted, num_classes).accuracy;
    Some(Finding {
        code: "val-test-gap",
        text: format!(
            "Validation accuracy ({val_acc:.4}) is far above test accuracy ({test_acc:.4}): a gap of {:.4} (95% CI [{:.4}, {:.4}]). \
             The validation images come from the training folder and do not predict how the model does on the test images — \
             trust the test figures, and look for a difference between the two folders (source, preprocessing, duplicates).",
            gap.value, gap.low, gap.high
        ),
        anchor: "results",
        section: "Results",
    })
}

fn leakage(leaks: &LeakFacts) -> Vec<Finding> {
    let mut findings = Vec::new();
    if leaks.test_leaked > 0 {
        let leak_free = match leaks.leak_free_accuracy {
            Some(i) => format!(
                " On the {} leak-free test images accuracy is {:.4} [{:.4}, {:.4}].",
                leaks.test_total - leaks.test_leaked,
                i.value,
                i.low,
                i.high
            ),
            None => String::new(),
        };
        findings.push(Finding {
            code: "test-leak",
            text: format!(
                "{} of {} test images ({:.1}%) have an exact or near duplicate among the training/validation images: \
                 the test set leaks into training.{leak_free}",
                leaks.test_leaked,
                leaks.test_total,
                100.0 * leaks.test_leaked as f64 / leaks.test_total.max(1) as f64
            ),
            anchor: "dataset-audit",
            section: "Dataset audit",
        });
    }
    if leaks.val_leaked > 0 {
        findings.push(Finding {
            code: "val-leak",
            text: format!(
                "{} of {} validation images ({:.1}%) have a duplicate among the training images, so validation scores are optimistic \
                 (`[data.split] group_duplicates = true` keeps duplicates on one side).",
                leaks.val_leaked,
                leaks.val_total,
                100.0 * leaks.val_leaked as f64 / leaks.val_total.max(1) as f64
            ),
            anchor: "dataset-audit",
            section: "Dataset audit",
        });
    }
    if leaks.conflicts > 0 {
        findings.push(Finding {
            code: "label-conflicts",
            text: format!("{} group(s) of duplicate images carry different class labels.", leaks.conflicts),
            anchor: "dataset-audit",
            section: "Dataset audit",
        });
    }
    findings
}

fn class_problems(part: &str, labels: Labels, classes: &[String], anchor: &'static str, section: &'static str) -> Vec<Finding> {
    let report = Scores::new(labels.truth, labels.predicted, classes.len());
    let total = labels.truth.len().max(1) as f64;
    let mut findings = Vec::new();
    for (c, class) in classes.iter().enumerate() {
        let scores = &report.per_class[c];
        if scores.support > 0 && scores.recall < LOW_RECALL {
            let found = report.confusion[c][c];
            findings.push(Finding {
                code: "low-recall",
                text: format!(
                    "`{class}` is almost never recognised on the {part} images: recall {:.4} ({found} of {}).",
                    scores.recall, scores.support
                ),
                anchor,
                section,
            });
        }
        let predicted = labels.predicted.iter().filter(|&&p| p == c).count() as f64 / total;
        let actual = scores.support as f64 / total;
        if predicted >= ABSORB_SHARE && predicted >= ABSORB_RATIO * actual {
            findings.push(Finding {
                code: "absorbs-predictions",
                text: format!(
                    "`{class}` absorbs most {part} predictions: {:.0}% of the images are predicted as `{class}`, though only {:.0}% are.",
                    predicted * 100.0,
                    actual * 100.0
                ),
                anchor,
                section,
            });
        }
    }
    findings
}

fn training_progress(epochs: &[EpochRow], best_epoch: Option<usize>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(last) = epochs.last() else {
        return findings;
    };
    if epochs.len() >= 2 && best_epoch == Some(last.epoch) {
        findings.push(Finding {
            code: "best-is-last",
            text: format!(
                "The best epoch is the last one ({} of {}): the model was still improving when training stopped.",
                last.epoch,
                epochs.len()
            ),
            anchor: "training",
            section: "Training",
        });
    }
    let val_min = epochs.iter().map(|e| e.val_loss).fold(f64::INFINITY, f64::min);
    let val_falling = epochs.len() >= 2 && last.val_loss <= val_min;
    let train_falling = epochs.len() >= 3 && {
        let t: Vec<f64> = epochs[epochs.len() - 3..].iter().map(|e| e.train_loss).collect();
        t[1] < t[0] * (1.0 - STILL_FALLING) && t[2] < t[1] * (1.0 - STILL_FALLING)
    };
    if val_falling || train_falling {
        let which = match (train_falling, val_falling) {
            (true, true) => "training and validation loss were",
            (true, false) => "training loss was",
            _ => "validation loss was",
        };
        findings.push(Finding {
            code: "still-improving",
            text: format!(
                "The {which} still falling at the last epoch (validation loss {:.4}, training loss {:.4}): more epochs may help.",
                last.val_loss, last.train_loss
            ),
            anchor: "training",
            section: "Training",
        });
    }
    findings
}

/// Steps whose gradient norm jumps far above the recent median: `(step, norm, median)`.
pub fn spikes(steps: &[StepRow]) -> Vec<(usize, f64, f64)> {
    let norms: Vec<f64> = steps.iter().map(|s| s.grad_norm).collect();
    let mut found = Vec::new();
    for i in 20..norms.len() {
        let mut window: Vec<f64> = norms[i.saturating_sub(SPIKE_WINDOW)..i].iter().copied().filter(|v| v.is_finite()).collect();
        if window.len() < 20 {
            continue;
        }
        window.sort_by(f64::total_cmp);
        let median = stats::quantile(&window, 0.5);
        if median > 0.0 && norms[i] > SPIKE_FACTOR * median {
            found.push((steps[i].step, norms[i], median));
        }
    }
    found
}

fn gradient_spikes(steps: &[StepRow]) -> Option<Finding> {
    let found = spikes(steps);
    let worst = found.iter().max_by(|a, b| (a.1 / a.2).total_cmp(&(b.1 / b.2)))?;
    Some(Finding {
        code: "gradient-spikes",
        text: format!(
            "{} gradient-norm spike(s) (over {SPIKE_FACTOR}× the median of the previous {SPIKE_WINDOW} steps); the largest at step {}: {:.3} against a median of {:.3}. \
             Consider a lower learning rate, warm-up or gradient clipping.",
            found.len(),
            worst.0,
            worst.1,
            worst.2
        ),
        anchor: "training",
        section: "Training",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, train_loss: f64, val_loss: f64) -> EpochRow {
        EpochRow { epoch, train_loss, val_loss, ..EpochRow::default() }
    }

    #[test]
    fn gap_low_recall_and_absorption() {
        let classes = vec!["a".to_string(), "b".to_string()];
        // validation: all right; test: everything predicted as `b`
        let val_truth: Vec<usize> = (0..100).map(|i| i % 2).collect();
        let test_truth = val_truth.clone();
        let test_pred = vec![1; 100];
        let inputs = Inputs {
            classes: &classes,
            epochs: &[],
            steps: &[],
            best_epoch: None,
            val: Some(Labels { truth: &val_truth, predicted: &val_truth }),
            test: Some(Labels { truth: &test_truth, predicted: &test_pred }),
            leaks: None,
            seed: 1,
            unreadable: &[],
        };
        let findings = derive(&inputs);
        let anchors: Vec<&str> = findings.iter().map(|f| f.anchor).collect();
        assert_eq!(anchors, ["results", "test-classification-report", "test-classification-report"], "{findings:#?}");
        assert!(findings[0].text.contains("gap of 0.5000"), "{}", findings[0].text);
        assert!(findings[1].text.contains("`a`") && findings[1].text.contains("recall 0.0000 (0 of 50)"));
        assert!(findings[2].text.contains("100% of the images are predicted as `b`, though only 50%"));
    }

    #[test]
    fn no_findings_for_a_good_run() {
        let classes = vec!["a".to_string(), "b".to_string()];
        let truth: Vec<usize> = (0..100).map(|i| i % 2).collect();
        let epochs = [epoch(1, 1.0, 0.9), epoch(2, 0.5, 0.6), epoch(3, 0.5, 0.7)];
        let inputs = Inputs {
            classes: &classes,
            epochs: &epochs,
            steps: &[],
            best_epoch: Some(2),
            val: Some(Labels { truth: &truth, predicted: &truth }),
            test: Some(Labels { truth: &truth, predicted: &truth }),
            leaks: Some(&LeakFacts::default()),
            seed: 1,
            unreadable: &[],
        };
        assert_eq!(derive(&inputs), []);
        let left_out = [("a".to_string(), "train".to_string()), ("a".to_string(), "test".to_string()), ("b".to_string(), "train".to_string())];
        let findings = derive(&Inputs { unreadable: &left_out, ..inputs });
        assert_eq!(findings.len(), 1);
        assert!(findings[0].text.starts_with("3 image file(s) cannot be read and were left out of this run (a 2, b 1; 2 from the training folder, 1 from the test folder)"), "{}", findings[0].text);
        assert_eq!(findings[0].anchor, "data");
    }

    #[test]
    fn unfinished_training_and_spikes() {
        let epochs = [epoch(1, 1.0, 0.9), epoch(2, 0.8, 0.8), epoch(3, 0.6, 0.7)];
        let steps: Vec<StepRow> = (1..=100)
            .map(|step| StepRow { step, epoch: 1, loss: 1.0, lr: 1e-3, grad_norm: if step == 70 { 9.0 } else { 1.0 + (step % 3) as f64 * 0.1 } })
            .collect();
        let found = training_progress(&epochs, Some(3));
        assert_eq!(found.len(), 2);
        assert!(found[0].text.contains("last one (3 of 3)"));
        assert!(found[1].text.contains("training and validation loss were still falling"));
        assert_eq!(spikes(&steps), [(70, 9.0, 1.1)]);
        assert!(gradient_spikes(&steps).unwrap().text.starts_with("1 gradient-norm spike(s)"));
    }
}
