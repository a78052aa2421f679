//! `[model]` → [`ModelPlan`]: the architecture, its options, the pretrained checkpoint and what
//! stays frozen.

use super::check::Checker;
use crate::model::hub::{CheckpointFiles, Locator};
use crate::model::pretrained::HfConfig;
use crate::model::{Arch, ArchConfig, Options};
use crate::spec::{closest, schema};

#[derive(Debug, Clone)]
pub struct ModelPlan {
    pub arch: Arch,
    pub options: Options,
    pub pretrained: Option<PretrainedPlan>,
    /// Parameter-path prefixes to freeze.
    pub freeze: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PretrainedPlan {
    pub locator: Locator,
    /// The checkpoint's files when they are on disk (`None`: to be downloaded by `run`).
    pub files: Option<CheckpointFiles>,
}

/// `fetched`: the checkpoint's files when they were just downloaded (else they are looked for on
/// disk and in the cache).
pub(super) fn resolve_model(check: &mut Checker, model: &schema::Model, fetched: Option<&CheckpointFiles>) -> ModelPlan {
    let parsed = Arch::parse(&model.arch);
    let arch = parsed.unwrap_or_else(|| {
        let names = Arch::names();
        let hint = closest(&model.arch, names.iter().copied()).map(|best| format!("did you mean {best:?}?"));
        check.fail_with_hint(
            "model.arch",
            format!("{:?}", model.arch),
            format!("unknown architecture; expected one of: {}", names.join(", ")),
            hint,
        );
        Arch::CvtTiny
    });
    if let Some(rate) = model.drop_path_rate {
        check.range("model.drop_path_rate", rate, 0.0, 1.0, true, false);
    }
    check.range("model.dropout", model.dropout, 0.0, 1.0, true, false);
    let pretrained = model.pretrained.as_ref().and_then(|value| {
        let base = check.loaded.base_dir("model.pretrained");
        match Locator::parse(value, base.as_deref()) {
            Err(message) => {
                check.fail("model.pretrained", Some(format!("{value:?}")), message);
                None
            }
            Ok(locator) => match fetched.map(|files| Ok(Some(files.clone()))).unwrap_or_else(|| locator.find_local()) {
                Ok(files) => Some(PretrainedPlan { locator, files }),
                Err(e) => {
                    check.fail("model.pretrained", Some(format!("{value:?}")), e.to_string());
                    None
                }
            },
        }
    });
    let mut well_formed = true;
    for prefix in &model.freeze {
        if prefix.is_empty() || prefix.starts_with('.') || prefix.ends_with('.') {
            check.fail("model.freeze", Some(format!("{prefix:?}")), "must be a dotted parameter-path prefix (e.g. \"cvt.encoder.stages.0\") or \"backbone\"");
            well_formed = false;
        }
    }
    if well_formed && parsed.is_some() && !model.freeze.is_empty() {
        // each prefix must name parameters of the model that will be built (the checkpoint's
        // config when it is on disk; one not downloaded yet is checked when the run builds it)
        let config = match pretrained.as_ref().map(|p| p.files.as_ref()) {
            None => Some(ArchConfig::for_arch(arch, 2, (224, 224))),
            Some(Some(files)) => HfConfig::read(&files.config).and_then(|hf| hf.arch_config(2)).ok(),
            Some(None) => None,
        };
        if let Some(Err(e)) = config.map(|config| crate::model::check_freeze(&config, &model.freeze)) {
            let message = e.to_string();
            check.fail("model.freeze", Some(format!("{:?}", model.freeze)), message.trim_start_matches("model.freeze: ").to_string());
        }
    }
    ModelPlan {
        arch,
        options: Options { drop_path_rate: model.drop_path_rate, dropout: model.dropout },
        pretrained,
        freeze: model.freeze.clone(),
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::check::testing::{REQUIRED, resolve};

    fn model(section: &str) -> (ModelPlan, Vec<String>) {
        resolve(&format!("{REQUIRED}[model]\n{section}"), |check| resolve_model(check, &check.loaded.spec.model.clone(), None))
    }

    #[test]
    fn a_freeze_prefix_must_name_parameters_of_the_model_before_any_data_is_read() {
        let (_, issues) = model("arch = \"vit-tiny\"\nfreeze = [\"vit.encoder.layer.0\", \"backbone\"]\n");
        assert!(issues.is_empty(), "{issues:?}");
        let (_, issues) = model("arch = \"cvt-tiny\"\nfreeze = [\"backbone\", \"cvt.encoder.stage.0\"]\n");
        assert_eq!(issues, ["model.freeze"]);
        // an unknown architecture is its own error; its freeze prefixes are not guessed at
        let (_, issues) = model("arch = \"vit-b16\"\nfreeze = [\"vit.encoder.layer.0\"]\n");
        assert_eq!(issues, ["model.arch"]);
    }

    #[test]
    fn an_architecture_and_its_options_resolve() {
        let (plan, issues) = model("arch = \"cvt-13\"\ndropout = 0.1\nfreeze = [\"backbone\"]\n");
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!((plan.arch, plan.options.dropout, plan.freeze.as_slice()), (Arch::Cvt13, 0.1, ["backbone".to_string()].as_slice()));
        assert!(plan.pretrained.is_none());
    }

    #[test]
    fn unknown_architectures_bad_options_and_missing_checkpoints_are_named() {
        let (_, issues) = model("arch = \"cvt-31\"\ndropout = 1.0\nfreeze = [\".stages\"]\npretrained = \"no-such-folder\"\n");
        assert_eq!(issues, ["model.arch", "model.dropout", "model.pretrained", "model.freeze"]);
    }
}
