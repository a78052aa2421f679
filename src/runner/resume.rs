//! The run folder's identity: a fresh folder's name, whether a folder may be resumed, and the
//! model, optimizer and journal restored from its last checkpoint.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::journal::RunJournal;
use crate::build_info::timestamp;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::run_dir::{self, Meta, RunDir, Status};
use crate::train::optim::AdamW;
use crate::train::{Classifier, TrainState};

/// Makes `reports/<experiment>/<UTC timestamp>` (`parent`/stamp), with a suffix `-2`, `-3`, …
/// when that name is taken: made with `create_dir`, which fails on a folder that exists, so two
/// runs started in the same second each get a folder of their own.
pub fn new_run_dir(parent: &Path) -> Result<PathBuf> {
    let stamp = timestamp(SystemTime::now()).replace(['-', ':'], "").replace('T', "-").trim_end_matches('Z').to_string();
    make_unique_dir(parent, &stamp)
}

/// Makes `parent/name`, else the first of `parent/name-2`, `parent/name-3`, … that is not there.
fn make_unique_dir(parent: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let mut candidate = parent.join(name);
    let mut n = 2;
    loop {
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                candidate = parent.join(format!("{name}-{n}"));
                n += 1;
            }
            Err(e) => return Err(Error::io(&candidate, e)),
        }
    }
}

/// Removes the folder [`new_run_dir`] made for a run that failed before writing anything into it
/// but its lock (a spec that does not fit the data, say), as if it had never been made.
pub fn remove_if_unused(dir: &Path) {
    let only_lock = std::fs::read_dir(dir).is_ok_and(|entries| entries.filter_map(|e| e.ok()).all(|e| e.file_name() == run_dir::LOCK));
    if only_lock {
        let _ = std::fs::remove_file(dir.join(run_dir::LOCK));
        let _ = std::fs::remove_dir(dir);
    }
}

/// What a run is made of, beyond its spec: compared with a run folder's before resuming it.
pub struct Identity<'a> {
    pub classes: &'a [String],
    /// [`data_fingerprint`] of the run's images and split.
    pub data: &'a str,
    /// `split.csv`'s rows of this run, to say which files differ.
    pub split: &'a [run_dir::SplitRow],
}

/// The previous meta when `run` holds an unfinished run of the same spec, classes and data; an
/// error saying what differs otherwise (with `force`, a warning, and the run resumes anyway). A
/// finished run is never resumed, forced or not.
pub fn check_resumable(run: &RunDir, plan: &Plan, identity: &Identity, force: bool, progress: &crate::progress::Progress) -> Result<Option<Meta>> {
    if !run.path(run_dir::META).is_file() {
        return Ok(None);
    }
    let previous = run.read_meta()?;
    if previous.status == Status::Complete {
        return Err(Error::run_dir(
            run.root(),
            "holds a finished run; `brasa report` rebuilds its report, another --out starts a new run",
        ));
    }
    let spec = run.read_to_string(run_dir::SPEC)?;
    let mut differences = spec_differences(&spec, &plan.resolved_toml);
    if previous.classes != identity.classes {
        differences.push(format!("classes: [{}] → [{}]", previous.classes.join(", "), identity.classes.join(", ")));
    }
    if let Some(before) = previous.data_fingerprint.as_deref()
        && before != identity.data
    {
        differences.push(data_difference(run, identity.split));
    }
    if differences.is_empty() {
        return Ok(Some(previous));
    }
    let list = differences.iter().map(|d| format!("\n  {d}")).collect::<String>();
    if force {
        progress.log(format!(
            "warning: --force-resume: resuming {} although this run differs from the one it holds:{list}\nits checkpoints, epochs and final results now mix both",
            crate::fmt::display_path(run.root())
        ));
        return Ok(Some(previous));
    }
    Err(Error::run_dir(
        run.root(),
        format!(
            "holds an unfinished run of a different spec or data, so it is not resumed:{list}\nrun with what it was started with, choose another --out folder, or pass --force-resume to continue it anyway (its results would then mix both)"
        ),
    ))
}

/// A fingerprint of the run's data: every image's path, class, part and pixels (its exact
/// fingerprint), in order. Equal exactly when a resumed run would see the same data.
pub fn data_fingerprint(rows: &[run_dir::SplitRow], exact: impl Iterator<Item = u128>) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let mut exact = exact;
    for row in rows {
        hash.update(row.path.as_bytes());
        hash.update([0]);
        hash.update(row.class.as_bytes());
        hash.update([0]);
        hash.update(format!("{:?}", row.split).as_bytes());
        // skipped rows have no pixels
        if row.split != run_dir::Placement::Skipped {
            hash.update(exact.next().unwrap_or_default().to_le_bytes());
        }
    }
    hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What differs between the folder's `split.csv` and `now`.
fn data_difference(run: &RunDir, now: &[run_dir::SplitRow]) -> String {
    let Ok(before) = run.read_split() else {
        return "data: its images differ (the folder's split.csv cannot be read to say which)".into();
    };
    let key = |r: &run_dir::SplitRow| (r.path.clone(), r.class.clone());
    let before_map: std::collections::BTreeMap<_, _> = before.iter().map(|r| (key(r), r.split)).collect();
    let now_map: std::collections::BTreeMap<_, _> = now.iter().map(|r| (key(r), r.split)).collect();
    let added: Vec<&(String, String)> = now_map.keys().filter(|k| !before_map.contains_key(*k)).collect();
    let removed: Vec<&(String, String)> = before_map.keys().filter(|k| !now_map.contains_key(*k)).collect();
    let moved = now_map.iter().filter(|(k, part)| before_map.get(*k).is_some_and(|p| p != *part)).count();
    if added.is_empty() && removed.is_empty() && moved == 0 {
        return "data: the same files in the same parts, but the pixels of some changed".into();
    }
    let example = |list: &[&(String, String)]| list.first().map(|(path, _)| format!(", e.g. {path}")).unwrap_or_default();
    format!(
        "data: {} image(s) added{}, {} removed{}, {moved} in another part (train/val/test) than before",
        added.len(),
        example(&added),
        removed.len(),
        example(&removed)
    )
}

/// The keys whose values differ between two resolved specs, `key: before → now`, ignoring
/// `[runtime]` (backend, device, threads), `data.cache` and `train.checkpoint_every_steps`: a run
/// started on one backend can resume on another (checkpoints hold plain f32 records, whatever
/// device wrote them), with its images kept elsewhere (every cache mode gives the same pixels),
/// and checkpointing more or less often.
pub fn spec_differences(before: &str, now: &str) -> Vec<String> {
    let identity = |text: &str| {
        text.parse::<toml::Table>().ok().map(|mut table| {
            table.remove("runtime");
            if let Some(toml::Value::Table(data)) = table.get_mut("data") {
                data.remove("cache");
            }
            if let Some(toml::Value::Table(train)) = table.get_mut("train") {
                train.remove("checkpoint_every_steps");
            }
            let mut flat = std::collections::BTreeMap::new();
            flatten("", &toml::Value::Table(table), &mut flat);
            flat
        })
    };
    if before == now {
        return Vec::new();
    }
    let (Some(a), Some(b)) = (identity(before), identity(now)) else {
        return vec!["spec: the folder's spec.toml cannot be read as TOML".into()];
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let shown = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(not set)".into());
    let mut differences: Vec<String> = keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).map(|k| format!("{k}: {} → {}", shown(a.get(k)), shown(b.get(k)))).collect();
    const SHOWN: usize = 12;
    if differences.len() > SHOWN {
        let more = differences.len() - SHOWN;
        differences.truncate(SHOWN);
        differences.push(format!("… and {more} more key(s)"));
    }
    differences
}

/// Whether two resolved specs make the same run (see [`spec_differences`]).
pub fn same_spec(before: &str, now: &str) -> bool {
    spec_differences(before, now).is_empty()
}

/// Dotted key → value (arrays as one value, written in TOML).
fn flatten(prefix: &str, value: &toml::Value, out: &mut std::collections::BTreeMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, value, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// AdamW with the Hugging Face Trainer's grouping: no weight decay on biases and LayerNorm
/// weights (`Trainer.get_decay_parameter_names`).
pub fn new_optimizer<M: Classifier>(plan: &Plan, model: &M) -> AdamW {
    AdamW::new(model, (&plan.train).into(), |param| param.hf_decays())
}

/// Loads checkpoint `file` of `run` into `model`.
pub fn load_model<M: Classifier>(model: M, run: &RunDir, file: &str) -> Result<M> {
    let path = run.checkpoint_path(file);
    crate::model::load(model, &path).map_err(|e| Error::run_dir(run.root(), format!("cannot load checkpoint {}: {e}", path.display())))
}

/// What training starts from: a fresh model and optimizer, or the last checkpoint of an
/// interrupted run with the journal's rows up to it.
pub struct Start<M> {
    pub model: M,
    pub optimizer: AdamW,
    pub state: TrainState,
}

/// Restores training from `run`'s last checkpoint, if it has one.
pub fn restore<M: Classifier>(model: M, plan: &Plan, run: &RunDir, journal: &mut RunJournal, device: &burn::tensor::Device) -> Result<Start<M>> {
    let Some(checkpoint) = run.read_checkpoint_state::<TrainState>()? else {
        let optimizer = new_optimizer(plan, &model);
        return Ok(Start { model, optimizer, state: TrainState::default() });
    };
    let model = load_model(model, run, &checkpoint.last_model)?;
    let optimizer_path = run.checkpoint_path(&checkpoint.last_optimizer);
    if !optimizer_path.is_file() {
        return Err(Error::run_dir(
            run.root(),
            format!(
                "checkpoints/{} is missing: {} names it as the optimizer state to resume from (restore the file, or start again in another --out)",
                checkpoint.last_optimizer,
                run_dir::STATE
            ),
        ));
    }
    // groups are keyed by parameter id: build them from the loaded model's ids
    let optimizer = new_optimizer(plan, &model).load(&optimizer_path, &device.clone().inner()).map_err(|e| {
        Error::run_dir(
            run.root(),
            format!("cannot load optimizer state {}: {e} (damaged, written for another model, or by a brasa before its multi-tensor AdamW: resume with that brasa, or start again in another --out)", checkpoint.last_optimizer),
        )
    })?;
    journal.steps = run.read_steps()?.into_iter().filter(|s| s.step <= checkpoint.train.step).collect();
    check_steps_complete(run, &journal.steps, checkpoint.train.step)?;
    journal.epochs = run.read_epochs()?.into_iter().filter(|e| e.epoch <= checkpoint.train.epochs_done).collect();
    journal.best_model = checkpoint.best_model.clone();
    journal.best_val = checkpoint.best_val.clone();
    journal.progress.log(match &checkpoint.train.partial {
        Some(partial) => format!(
            "resuming in epoch {} after step {} ({} of its batches done)",
            checkpoint.train.epochs_done + 1,
            checkpoint.train.step,
            partial.batches_done
        ),
        None => format!("resuming after epoch {} (step {})", checkpoint.train.epochs_done, checkpoint.train.step),
    });
    Ok(Start { model, optimizer, state: checkpoint.train })
}

/// `steps.csv` up to the checkpoint holds every step, 1 to `step`, once: a file cut or edited
/// from outside would otherwise resume into a finished run whose `steps.csv` has a gap.
fn check_steps_complete(run: &RunDir, steps: &[crate::run_dir::StepRow], step: usize) -> Result<()> {
    let Some(missing) = first_missing_step(steps.iter().map(|s| s.step), step) else { return Ok(()) };
    Err(Error::run_dir(
        run.root(),
        format!(
            "{} is damaged: it has {} row(s) up to the checkpoint's step {step}, and step {missing} is missing or out of place (restore the file, or start again in another --out)",
            run_dir::STEPS,
            steps.len()
        ),
    ))
}

/// The first step of 1..=`last` that `steps` (in file order) lacks or holds out of order.
fn first_missing_step(steps: impl Iterator<Item = usize>, last: usize) -> Option<usize> {
    let mut expected = 1;
    for step in steps {
        if step != expected {
            return Some(expected.min(step));
        }
        expected += 1;
    }
    (expected <= last).then_some(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_in_the_steps_up_to_the_checkpoint_is_found() {
        assert_eq!(first_missing_step([1, 2, 3].into_iter(), 3), None);
        assert_eq!(first_missing_step(std::iter::empty(), 0), None);
        assert_eq!(first_missing_step((1..=49).into_iter(), 100), Some(50));
        assert_eq!(first_missing_step([1, 2, 4, 5].into_iter(), 5), Some(3));
        assert_eq!(first_missing_step([1, 2, 2, 3].into_iter(), 3), Some(2));
        assert_eq!(first_missing_step([2, 3].into_iter(), 3), Some(1));
    }

    #[test]
    fn runs_started_in_the_same_second_get_a_folder_each() {
        let reports = tempfile::tempdir().unwrap();
        let parent = reports.path().join("quickstart");
        let made: Vec<PathBuf> = (0..3).map(|_| make_unique_dir(&parent, "20261128-101500").unwrap()).collect();
        let names: Vec<String> = made.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["20261128-101500", "20261128-101500-2", "20261128-101500-3"]);
        assert!(made.iter().all(|p| p.is_dir()));
        assert!(new_run_dir(&parent).unwrap().is_dir());

        // a folder left with nothing but its lock goes; one with anything else stays
        std::fs::write(made[0].join(run_dir::LOCK), "brasa pid 1").unwrap();
        remove_if_unused(&made[0]);
        assert!(!made[0].exists());
        std::fs::write(made[1].join("unreadable.txt"), "x").unwrap();
        remove_if_unused(&made[1]);
        assert!(made[1].is_dir());
    }
}
