//! What a run records about itself: `meta.json` as it starts and as it ends, where each image
//! went (`split.csv`) and the duplicate groups (`duplicates.csv`).

use std::path::Path;
use std::time::SystemTime;

use super::budget::Budget;
use super::inputs::Images;
use crate::backend::{self, DeviceInfo};
use crate::build_info::{BRASA_VERSION, BURN_VERSION, GIT_COMMIT, timestamp};
use crate::data::{Dataset, Item};
use crate::dedup::Group;
use crate::model;
use crate::plan::Plan;
use crate::run_dir::{Counts, Placement, DuplicateRow, Meta, ModelMeta, Part, PreprocessMeta, ReportMeta, RunDir, SplitRow, Status, TrainMeta, UnreadableFile};

/// What a run starts from, once its inputs are ready.
#[derive(Clone, Copy)]
pub struct RunInputs<'a> {
    pub plan: &'a Plan,
    pub dataset: &'a Dataset,
    pub budget: &'a Budget,
}

/// Every image of the run with its part: the training folder's items, then the test items.
fn parts_of(dataset: &Dataset) -> Vec<(&Item, Part)> {
    let mut in_val = vec![false; dataset.train_folder.len()];
    dataset.split.val.iter().for_each(|&i| in_val[i] = true);
    let train = dataset.train_folder.iter().zip(in_val).map(|(item, val)| (item, if val { Part::Val } else { Part::Train }));
    train.chain(dataset.test.iter().map(|item| (item, Part::Test))).collect()
}

/// `split.csv` rows: every image, its class, part and stored size.
pub fn split_rows(dataset: &Dataset, images: &Images) -> Vec<SplitRow> {
    let sizes = images.train_sizes.iter().chain(&images.test_sizes);
    let mut rows: Vec<SplitRow> = parts_of(dataset)
        .into_iter()
        .zip(sizes)
        .map(|((item, split), &(width, height))| SplitRow {
            path: item.path.display().to_string(),
            class: dataset.classes[item.label].clone(),
            split: split.into(),
            width: Some(width),
            height: Some(height),
        })
        .collect();
    // the files left out because they cannot be read, at the end, without a size
    rows.extend(dataset.left_out.iter().map(|l| SplitRow {
        path: l.path.display().to_string(),
        class: dataset.classes[l.label].clone(),
        split: Placement::Skipped,
        width: None,
        height: None,
    }));
    rows
}

/// `duplicates.csv` rows: one per member of each group, paths relative to the data root.
pub fn duplicate_rows(dataset: &Dataset, groups: &[Group], root: &Path) -> Vec<DuplicateRow> {
    let parts = parts_of(dataset);
    let mut rows = Vec::new();
    for group in groups {
        let mut members: Vec<DuplicateRow> = group
            .members
            .iter()
            .map(|&i| {
                let (item, part) = parts[i];
                DuplicateRow {
                    group: group.id,
                    kind: group.kind.as_str().to_string(),
                    split: part.name().to_string(),
                    class: dataset.classes[item.label].clone(),
                    path: crate::fmt::relative(root, &item.path),
                }
            })
            .collect();
        members.sort_by(|a, b| a.path.cmp(&b.path));
        rows.extend(members);
    }
    rows
}

/// `meta.json` as a run starts (or resumes after `previous`): status running, nothing trained.
pub fn initial_meta(inputs: &RunInputs, built: &model::Built, run: &RunDir, previous: Option<&Meta>, device: &DeviceInfo) -> Meta {
    let RunInputs { plan, dataset, budget } = *inputs;
    let counts = dataset.counts();
    let run_id = run.root().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Meta {
        experiment: plan.name.clone(),
        description: plan.description.clone(),
        run_id,
        status: Status::Running,
        error: None,
        brasa_version: BRASA_VERSION.into(),
        git_commit: GIT_COMMIT.into(),
        burn_version: BURN_VERSION.into(),
        backend: device.backend.clone(),
        device: Some(device.clone()),
        gpu_memory_peak_bytes: None,
        threads: backend::threads(),
        seed: plan.seed,
        spec_file: plan.spec_file.display().to_string(),
        data_root: plan.data.layout.root.display().to_string(),
        started_at: previous.map(|m| m.started_at.clone()).unwrap_or_else(|| timestamp(SystemTime::now())),
        finished_at: None,
        // a killed run never wrote its wall time: count at least the epochs it finished
        wall_seconds: match previous {
            Some(m) => m.wall_seconds.or_else(|| run.read_epochs().ok().map(|epochs| epochs.iter().map(|e| e.seconds).sum())),
            None => None,
        },
        classes: dataset.classes.clone(),
        counts: Counts { train: counts.train, val: counts.val, test: counts.test },
        data_fingerprint: None,
        skipped_files: dataset.skipped.iter().map(|p| p.display().to_string()).collect(),
        unreadable: dataset
            .left_out
            .iter()
            .map(|l| UnreadableFile {
                path: l.path.display().to_string(),
                class: dataset.classes[l.label].clone(),
                folder: if l.test { "test" } else { "train" }.into(),
                error: l.message.clone(),
            })
            .collect(),
        model: ModelMeta {
            arch: plan.model.arch.name().into(),
            parameters: built.model.num_params(),
            frozen: built.frozen,
            input_size: [plan.preprocess.input_size.0, plan.preprocess.input_size.1],
            pretrained: plan.model.pretrained.as_ref().map(|p| p.locator.describe()),
            config: serde_json::to_value(&built.config).expect("configs serialise"),
            import: built.import.as_ref().map(|i| serde_json::to_value(i).expect("reports serialise")),
            notes: built.notes.clone(),
        },
        preprocess: Some(PreprocessMeta {
            recipe: plan.preprocess.recipe,
            normalize: plan.preprocess.normalize,
            preset: plan.preprocess.preset.clone(),
        }),
        train: TrainMeta {
            epochs: plan.train.epochs,
            batch_size: plan.train.batch_size,
            lr: plan.train.lr,
            weight_decay: plan.train.weight_decay,
            schedule: plan.train.schedule.name().into(),
            warmup_steps: budget.warmup_steps,
            grad_clip: plan.train.grad_clip,
            select_best: plan.train.select.name().into(),
            augment_mode: plan.augment.mode.name().into(),
            augment_copies: plan.augment.effective_copies(),
            samples_per_epoch: budget.samples_per_epoch,
            steps_per_epoch: budget.steps_per_epoch,
        },
        report: ReportMeta {
            markdown: plan.report.markdown,
            html: plan.report.html,
            prediction_grid: plan.report.prediction_grid,
            mistakes: plan.report.mistakes,
            attention_maps: plan.report.attention_maps,
            templates: plan.report.templates.as_ref().map(|p| p.display().to_string()),
            tensorboard: plan.report.tensorboard,
        },
        best_epoch: None,
        epochs_run: 0,
        stopped_early: false,
        resumed: previous.map_or(0, |m| m.resumed + 1),
    }
}

/// How training ended, for the final `meta.json`.
pub struct Ending {
    pub best_epoch: Option<usize>,
    pub epochs_run: usize,
    pub stopped_early: bool,
    pub gpu_memory_peak_bytes: Option<u64>,
}

/// `meta` once the run has ended after `seconds` more: complete, or failed with `error`.
/// `meta.json` of a run a signal stopped after saving a checkpoint: still running (it resumes),
/// its wall time counted so far.
pub fn interrupted_meta(mut meta: Meta, seconds: f64) -> Meta {
    meta.wall_seconds = Some(meta.wall_seconds.unwrap_or(0.0) + seconds);
    meta
}

pub fn final_meta(mut meta: Meta, ending: Option<&Ending>, error: Option<String>, seconds: f64) -> Meta {
    meta.wall_seconds = Some(meta.wall_seconds.unwrap_or(0.0) + seconds);
    meta.finished_at = Some(timestamp(SystemTime::now()));
    if let Some(ending) = ending {
        meta.best_epoch = ending.best_epoch;
        meta.epochs_run = ending.epochs_run;
        meta.stopped_early = ending.stopped_early;
        meta.gpu_memory_peak_bytes = ending.gpu_memory_peak_bytes;
    }
    meta.status = if error.is_some() { Status::Failed } else { Status::Complete };
    meta.error = error;
    meta
}
