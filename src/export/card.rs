//! The model card (`README.md`) of an export: what the model is, the data and split it learnt
//! from, the recipe, its validation and test scores with confidence intervals, the leak-free test
//! figure and the findings — from the run folder alone, with no links (it travels without the
//! run's report).

use std::fmt::Write;

use crate::predict::{Trained, Which};
use crate::report::Summary;
use crate::run_dir::{self, Part, RunDir};

pub struct Inputs<'a> {
    pub run: &'a RunDir,
    pub summary: &'a Summary,
    pub trained: &'a Trained,
    pub which: Which,
    pub tensors: usize,
}

/// Markdown `[text](target)` → `text`, so no sentence points at a file the export lacks.
fn unlink(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find("](").and_then(|close| after[close + 2..].find(')').map(|end| (close, close + 2 + end))) {
            Some((close, end)) => {
                out.push_str(&rest[..open]);
                out.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The augmentation chain of the run's resolved spec, one op a line.
fn augmentation(run: &RunDir) -> Vec<String> {
    let Ok(text) = run.read_to_string(run_dir::SPEC) else { return Vec::new() };
    let Ok(spec) = text.parse::<toml::Table>() else { return Vec::new() };
    let chain = spec.get("augment").and_then(|a| a.get("chain")).and_then(|c| c.as_array()).cloned().unwrap_or_default();
    chain
        .iter()
        .filter_map(|step| step.as_table())
        .map(|step| {
            let op = step.get("op").and_then(|o| o.as_str()).unwrap_or("?");
            let args: Vec<String> = step.iter().filter(|(k, _)| *k != "op").map(|(k, v)| format!("{k} = {v}")).collect();
            if args.is_empty() { op.to_string() } else { format!("{op} ({})", args.join(", ")) }
        })
        .collect()
}

pub fn render(inputs: &Inputs) -> String {
    let Inputs { run, summary, trained, which, tensors } = inputs;
    let meta = &summary.meta;
    let family = trained.config.family().name();
    let mut s = String::new();
    let _ = writeln!(s, "---\nlibrary_name: transformers\npipeline_tag: image-classification\ntags:\n- brasa\n- image-classification\n- {family}\nmetrics:\n- accuracy\n- f1\n---\n");
    let _ = writeln!(s, "# {} ({})\n", meta.experiment, meta.model.arch);
    if !meta.description.is_empty() {
        let _ = writeln!(s, "{}\n", meta.description);
    }
    // meta.json's epoch counts are filled in when the run ends; an interrupted run's are in
    // checkpoints/state.json, which also chose the weights being exported
    let state = run.read_checkpoint_state::<crate::train::TrainState>().ok().flatten().map(|c| c.train);
    let unfinished = state.as_ref().is_some_and(|t| t.epochs_done > meta.epochs_run);
    let epochs_run = state.as_ref().map_or(meta.epochs_run, |t| t.epochs_done.max(meta.epochs_run));
    let best_epoch = meta.best_epoch.or(state.as_ref().and_then(|t| t.best_epoch));
    let epoch = match which {
        Which::Best => format!("the best epoch ({}, by validation {})", best_epoch.map(|e| e.to_string()).unwrap_or_else(|| "?".into()), meta.train.select_best),
        Which::Last => format!("the last checkpoint (epoch {epochs_run} of {})", meta.train.epochs),
    };
    let _ = writeln!(
        s,
        "An image classifier for {} classes ({}), trained with brasa {} (commit {}) as run `{}` and exported from {epoch}: {tensors} tensors, {} parameters.\n",
        meta.classes.len(),
        meta.classes.join(", "),
        meta.brasa_version,
        meta.git_commit,
        meta.run_id,
        meta.model.parameters,
    );

    if let crate::model::ArchConfig::Cvt(c) = &trained.config {
        let exported = super::hf::transformers_depths(&c.depth);
        if exported != c.depth {
            let _ = writeln!(
                s,
                "The CvT was trained with {:?} layers per stage; `config.json` says {exported:?}, because transformers cannot build a CvT whose stage *s* has *s* layers or fewer. The added layers are exact identities (both output projections zero), so the logits are the trained model's.\n",
                c.depth
            );
        }
    }
    if unfinished {
        let _ = writeln!(
            s,
            "**The run did not finish**: it stopped after epoch {epochs_run} of {} (its last checkpoint, `checkpoints/state.json`), before its final evaluation.\n",
            meta.train.epochs
        );
    }
    let _ = writeln!(s, "## Results\n");
    if summary.parts.is_empty() {
        let _ = writeln!(s, "The run has no predictions recorded (it stopped before its final evaluation).\n");
    } else {
        let _ = writeln!(s, "| part | images | accuracy | 95% CI | macro F1 | 95% CI |\n| --- | ---: | ---: | --- | ---: | --- |");
        for part in summary.parts.iter().chain(summary.leak_free.iter()) {
            let title = if part.title == "Test, leak-free" { "test, leak-free" } else if part.part == Part::Test { "test" } else { "validation" };
            let _ = writeln!(s, "| {title} | {} | {} | {} | {} | {} |", part.total, part.accuracy, part.accuracy_ci, part.macro_avg.f1, part.macro_f1_ci);
        }
        let _ = writeln!(s, "\nIntervals are 95% bootstrap intervals over the images of each part (seed {}).", meta.seed);
        match &summary.leak_free {
            Some(free) => {
                let test = summary.parts.iter().find(|p| p.part == Part::Test).map(|p| p.total).unwrap_or(0);
                let _ = writeln!(
                    s,
                    "{} of the {test} test images have a duplicate among the training images; on the other {}, the leak-free test accuracy is {} {}.",
                    test.saturating_sub(free.total),
                    free.total,
                    free.accuracy,
                    free.accuracy_ci
                );
            }
            None if run.path(run_dir::DUPLICATES).is_file() => {
                let _ = writeln!(s, "No test image has a duplicate among the training images: the test figure is leak-free.");
            }
            None => {}
        }
        s.push('\n');
    }
    if !summary.findings.is_empty() {
        let _ = writeln!(s, "## Findings\n");
        for finding in &summary.findings {
            let _ = writeln!(s, "- {}", unlink(&finding.text));
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## Data\n");
    let root = std::path::Path::new(&meta.data_root);
    let _ = writeln!(s, "An image folder (`{}`), one subfolder per class.\n", root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| meta.data_root.clone()));
    let _ = writeln!(s, "| class | train | validation | test |\n| --- | ---: | ---: | ---: |");
    let count = |v: &Vec<usize>, i: usize| v.get(i).copied().unwrap_or(0);
    for (i, class) in meta.classes.iter().enumerate() {
        let _ = writeln!(s, "| {class} | {} | {} | {} |", count(&meta.counts.train, i), count(&meta.counts.val, i), count(&meta.counts.test, i));
    }
    let total = |v: &Vec<usize>| v.iter().sum::<usize>();
    let _ = writeln!(s, "| **total** | {} | {} | {} |\n", total(&meta.counts.train), total(&meta.counts.val), total(&meta.counts.test));

    let _ = writeln!(s, "## Training recipe\n");
    let t = &meta.train;
    let [height, width] = meta.model.input_size;
    let mut lines = vec![
        format!("model: {} ({}), {height}x{width} inputs{}", meta.model.arch, family, meta.model.pretrained.as_ref().map(|p| format!(", fine-tuned from {p}")).unwrap_or_else(|| ", trained from scratch".into())),
        format!("epochs: {epochs_run} run of {} ({} steps of {} images an epoch)", t.epochs, t.steps_per_epoch, t.batch_size),
        format!("optimizer: learning rate {}, weight decay {}, schedule {} ({} warm-up steps){}", t.lr, t.weight_decay, t.schedule, t.warmup_steps, t.grad_clip.map(|c| format!(", gradient clip {c}")).unwrap_or_default()),
        format!("augmentation: {} ({} cop{} an epoch)", t.augment_mode, t.augment_copies, if t.augment_copies == 1 { "y" } else { "ies" }),
    ];
    lines.extend(augmentation(run).into_iter().map(|op| format!("  - {op}")));
    lines.push(format!("seed {}; {} on {} thread(s){}", meta.seed, meta.backend, meta.threads, meta.wall_seconds.map(|w| format!("; {}", crate::fmt::format_duration(w))).unwrap_or_default()));
    for line in lines {
        if line.starts_with("  ") {
            let _ = writeln!(s, "{line}");
        } else {
            let _ = writeln!(s, "- {line}");
        }
    }
    let _ = writeln!(
        s,
        "\n## How to use\n\n```python\nfrom transformers import pipeline\n\nclassifier = pipeline(\"image-classification\", model=\"path/to/this/folder\")\nprint(classifier(\"image.jpg\"))\n```\n\nor with brasa: `brasa predict --pretrained path/to/this/folder IMAGES...`.\n`preprocessor_config.json` does what the run's preprocessing did, so both give the run's inputs."
    );
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_are_reduced_to_their_text() {
        assert_eq!(super::unlink("see [the curve](#training) and [x] (y) [a](b"), "see the curve and [x] (y) [a](b");
    }
}
