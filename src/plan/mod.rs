//! Spec → Plan: every value range-checked, every path made concrete, every name resolved to a
//! typed choice. After this point nothing holds an unchecked string; everything downstream
//! (data, model, training, report) works from the [`Plan`] only.
//!
//! All problems are collected and reported together, each naming the file, key and value. A plan
//! is never changed once resolved: a downloaded checkpoint gives a new plan, resolved from the
//! same spec through the same checks ([`Plan::with_checkpoint`]).
//!
//! One file per spec section: `data`, `preprocess`, `augment`, `model`, `train`; `check` holds the
//! [`check::Checker`], `sizes` the size and interpolation forms two sections share.

mod against_data;
mod augment;
mod check;
mod data;
mod launcher;
mod model;
mod preprocess;
mod sizes;
mod train;

use std::path::PathBuf;
use std::sync::Arc;

pub use augment::AugmentPlan;
pub use data::DataPlan;
pub use launcher::{LauncherPlan, SlurmPlan, slurm_seconds};
pub use model::{ModelPlan, PretrainedPlan};
pub use preprocess::PreprocessPlan;
pub use train::{TrainPlan, Warmup};

use check::Checker;
use crate::backend::Backend;
use crate::model::hub::CheckpointFiles;
use crate::spec::schema;
use crate::spec::{LoadedSpec, SpecError, SpecIssue};

/// The most CPU threads `runtime.threads` (and `--threads`) may ask for: beyond the cores of
/// the largest machines, a typo (an extra zero) would otherwise start that many OS threads.
pub const MAX_THREADS: usize = 1024;

/// A validated experiment, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub spec_file: PathBuf,
    /// The fully resolved spec, as TOML (written to the run folder as `spec.toml`).
    pub resolved_toml: String,
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub data: DataPlan,
    pub preprocess: PreprocessPlan,
    pub augment: AugmentPlan,
    pub model: ModelPlan,
    pub train: TrainPlan,
    pub runtime: RuntimePlan,
    pub report: ReportPlan,
    /// Where a sweep's trials run (`[launcher]`).
    pub launcher: LauncherPlan,
    /// The spec this plan was resolved from, to resolve it again with a downloaded checkpoint.
    loaded: Arc<LoadedSpec>,
}

#[derive(Debug, Clone, Copy)]
pub struct RuntimePlan {
    pub backend: Backend,
    /// `runtime.device`: which GPU.
    pub device: Option<usize>,
    pub threads: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ReportPlan {
    pub markdown: bool,
    pub html: bool,
    pub prediction_grid: usize,
    pub mistakes: usize,
    pub attention_maps: usize,
    /// A folder of templates replacing the built-in ones, absolute.
    pub templates: Option<PathBuf>,
    /// TensorBoard event files in `tb/`.
    pub tensorboard: bool,
}

impl Plan {
    /// Validates `loaded` and resolves it into a plan.
    pub fn resolve(loaded: &LoadedSpec) -> Result<Self, SpecError> {
        Self::resolve_with(loaded, None)
    }

    /// This plan with its pretrained checkpoint's files, just downloaded: resolved again from the
    /// same spec, so `preset = "hf"` takes the checkpoint's image processor and every check
    /// (e.g. the augment chain's output size against it) runs as for a checkpoint on disk.
    pub fn with_checkpoint(&self, files: CheckpointFiles) -> Result<Self, SpecError> {
        Self::resolve_with(&self.loaded, Some(&files))
    }

    fn resolve_with(loaded: &LoadedSpec, fetched: Option<&CheckpointFiles>) -> Result<Self, SpecError> {
        let spec = &loaded.spec;
        let mut check = Checker { loaded, issues: Vec::new() };

        let name = spec.experiment.name.clone();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || name.starts_with('.') {
            check.fail("experiment.name", Some(format!("{name:?}")), "must be a folder-safe name: letters, digits, '-', '_', '.'");
        }

        let data = data::resolve_data(&mut check, &spec.data, spec.experiment.seed);
        let model = model::resolve_model(&mut check, &spec.model, fetched);
        let issues_before_preprocess = check.issues.len();
        let preprocess = preprocess::resolve_preprocess(&mut check, &spec.preprocess, &model);
        let preprocess_valid = check.issues.len() == issues_before_preprocess;
        let augment = augment::resolve_augment(&mut check, &spec.augment, preprocess.input_size);
        if model.pretrained.is_none()
            && preprocess_valid
            && let Err(why) = crate::model::ArchConfig::for_arch(model.arch, 2, preprocess.input_size).check_input(preprocess.input_size)
        {
            check.fail("preprocess", None, format!("{} does not take what preprocessing gives: {why}", model.arch.name()));
        }
        let train = train::resolve_train(&mut check, &spec.train);
        let backend = spec.runtime.backend.into();
        if let Some(threads) = spec.runtime.threads {
            check.positive("runtime.threads", threads);
            if threads > MAX_THREADS {
                check.fail("runtime.threads", Some(threads.to_string()), format!("must be at most {MAX_THREADS}: each is an OS thread of the pool that decodes, augments and trains (leave it out to use every core)"));
            }
        }
        for (key, value) in [
            ("report.prediction_grid", spec.report.prediction_grid),
            ("report.mistakes", spec.report.mistakes),
            ("report.attention_maps", spec.report.attention_maps),
        ] {
            if value > 100 {
                check.fail(key, Some(value.to_string()), "must be at most 100");
            }
        }
        let launcher = launcher::resolve_launcher(&mut check, spec.launcher.as_ref());
        if launcher != LauncherPlan::Local && spec.sweep.is_none() {
            check.fail(
                "launcher.name",
                Some("\"slurm\"".into()),
                "slurm submits the trials of a sweep, and this spec has no [sweep]: give it one (e.g. a single-value grid), or leave launcher.name out to run it here",
            );
        }
        let templates = spec.report.templates.as_ref().and_then(|value| {
            let base = check.loaded.base_dir("report.templates").unwrap_or_default();
            let dir = data::normalize(&base.join(value));
            if dir.is_dir() {
                Some(dir)
            } else {
                check.fail("report.templates", Some(format!("{value:?}")), format!("{} is not a folder", crate::fmt::display_path(&dir)));
                None
            }
        });

        if !check.issues.is_empty() {
            return Err(SpecError { issues: check.issues });
        }
        let mut resolved = spec.clone();
        // every path concrete, as `data.root`: the resolved spec then means the same from any folder
        resolved.data.root = data.layout.root.clone().into();
        resolved.report.templates = templates.as_ref().map(|dir| dir.display().to_string());
        if let Some(crate::model::hub::Locator::Local(path)) = model.pretrained.as_ref().map(|p| &p.locator) {
            resolved.model.pretrained = Some(data::normalize(path).display().to_string());
        }
        // a plan is one run: the sweep that may have produced it is not part of its spec
        resolved.sweep = None;
        // nor where it runs: a trial resumes under either launcher, in the same sweep folder
        resolved.launcher = None;
        let resolved_toml = toml::to_string(&resolved).map_err(|e| {
            SpecError::single(SpecIssue {
                origin: crate::fmt::display_path(&loaded.file),
                key: String::new(),
                value: None,
                message: format!("cannot write the resolved spec back as TOML: {e}"),
                hint: None,
            })
        })?;
        Ok(Self {
            spec_file: loaded.file.clone(),
            resolved_toml,
            name,
            description: spec.experiment.description.clone(),
            seed: spec.experiment.seed,
            data,
            preprocess,
            augment,
            model,
            train,
            runtime: RuntimePlan { backend, device: spec.runtime.device, threads: spec.runtime.threads },
            report: ReportPlan {
                markdown: spec.report.formats.contains(&schema::ReportFormat::Markdown),
                html: spec.report.formats.contains(&schema::ReportFormat::Html),
                prediction_grid: spec.report.prediction_grid,
                mistakes: spec.report.mistakes,
                attention_maps: spec.report.attention_maps,
                templates,
                tensorboard: spec.report.tensorboard,
            },
            launcher,
            loaded: Arc::new(loaded.clone()),
        })
    }
}


impl From<schema::BackendName> for Backend {
    fn from(name: schema::BackendName) -> Self {
        match name {
            schema::BackendName::Auto => Backend::Auto,
            schema::BackendName::Flex => Backend::Flex,
            schema::BackendName::Wgpu => Backend::Wgpu,
            schema::BackendName::Cuda => Backend::Cuda,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Layers;

    /// A spec fine-tuning `hf:brasa/not-in-any-cache` with `preset = "hf"` and a chain ending in
    /// a 224 px crop, and a checkpoint whose processor wants `size` px inputs.
    fn spec_and_checkpoint(dir: &std::path::Path, size: u32) -> (LoadedSpec, CheckpointFiles) {
        std::fs::create_dir_all(dir.join("data/train")).unwrap();
        let file = dir.join("spec.toml");
        std::fs::write(
            &file,
            r#"
[experiment]
name = "x"
[data]
root = "data"
train = "train"
[preprocess]
preset = "hf"
[augment]
chain = [{ op = "random_resized_crop", size = 224 }]
[model]
arch = "vit-base-patch16-224"
pretrained = "hf:brasa/not-in-any-cache"
"#,
        )
        .unwrap();
        let checkpoint = dir.join("checkpoint");
        std::fs::create_dir_all(&checkpoint).unwrap();
        let preprocessor = checkpoint.join("preprocessor_config.json");
        std::fs::write(&preprocessor, format!(r#"{{"size": {{"height": {size}, "width": {size}}}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}}"#)).unwrap();
        let files = CheckpointFiles { weights: checkpoint.join("model.safetensors"), config: checkpoint.join("config.json"), preprocessor: Some(preprocessor) };
        (LoadedSpec::load(&file, &Layers::default()).unwrap(), files)
    }

    #[test]
    fn a_downloaded_checkpoint_gives_a_new_plan_with_its_processor() {
        let dir = tempfile::tempdir().unwrap();
        let (loaded, files) = spec_and_checkpoint(dir.path(), 224);
        let plan = Plan::resolve(&loaded).unwrap();
        assert!(plan.model.pretrained.as_ref().unwrap().files.is_none(), "not on disk yet");
        let fetched = plan.with_checkpoint(files.clone()).unwrap();
        assert_eq!(fetched.model.pretrained.as_ref().unwrap().files.as_ref().unwrap().preprocessor, files.preprocessor);
        assert!(fetched.preprocess.preset.as_deref().unwrap().contains("preprocessor_config.json"));
        assert_eq!(fetched.resolved_toml, plan.resolved_toml, "the same spec");
        assert!(plan.model.pretrained.as_ref().unwrap().files.is_none(), "the first plan is unchanged");
    }

    #[test]
    fn a_downloaded_processor_the_chain_does_not_fit_is_a_located_spec_error() {
        let dir = tempfile::tempdir().unwrap();
        let (loaded, files) = spec_and_checkpoint(dir.path(), 32);
        let plan = Plan::resolve(&loaded).unwrap();
        let error = plan.with_checkpoint(files).unwrap_err();
        let issue = &error.issues[0];
        assert_eq!(issue.key, "augment.chain");
        assert!(issue.origin.ends_with("spec.toml"), "{}", issue.origin);
        assert!(issue.message.contains("224x224") && issue.message.contains("32x32"), "{}", issue.message);
    }
}
