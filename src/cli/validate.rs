//! `brasa validate SPEC`: the fully resolved spec as TOML, then the data split as comments.

use brasa::Result;
use brasa::plan::Plan;
use brasa::progress::Progress;
use brasa::runner;
use clap::Args;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    spec: super::SpecArgs,
}

pub fn execute(args: ValidateArgs) -> Result<()> {
    let loaded = args.spec.load()?;
    let plan = Plan::resolve(&loaded)?;
    let mut text = plan.resolved_toml.clone();
    if loaded.spec.sweep.is_some() {
        // every trial is resolved, so a bad swept key or value fails here, not mid-sweep
        let sweep = brasa::sweep::SweepPlan::resolve(&args.spec.spec, &args.spec.layers(), None)?;
        text.push_str(&format!("\n[sweep]\n{}", sweep.sweep_toml));
        for line in sweep.listing().lines() {
            text.push_str(&format!("# {line}\n"));
        }
        if let brasa::plan::LauncherPlan::Slurm(slurm) = &plan.launcher {
            let invocation = brasa::slurm::Invocation::from_here(args.spec.run_args()?, None)?;
            let root = std::path::absolute(sweep.dir.root()).map_err(|e| brasa::Error::io(sweep.dir.root(), e))?;
            let script = brasa::slurm::script::render(&plan.name, &root, slurm, &invocation);
            let trials: Vec<usize> = sweep.trials.iter().map(|(t, _)| t.number).collect();
            let sbatch = brasa::slurm::sbatch_args(&root.join(brasa::sweep_dir::SLURM).join(brasa::sweep_dir::SLURM_SCRIPT), 0, &trials, slurm.array_parallelism, &[]);
            text.push_str(&format!("#\n# launcher: slurm; `brasa run` submits `sbatch {}` (unfinished trials only) with this script:\n", sbatch.join(" ")));
            for line in script.lines() {
                text.push_str(&format!("#   {line}\n"));
            }
        }
    }
    text.push_str(&describe_model(&plan));
    // what `brasa run` would train on here (adapters are listed, none is opened); the thread
    // pool is not built: validate starts no threads
    match plan.runtime.backend.choose(plan.runtime.device) {
        Ok(chosen) => text.push_str(&format!("# device: {}\n", chosen.info.describe())),
        // `brasa run` here would fail the same way, with the same exit code
        Err(e) if plan.launcher == brasa::plan::LauncherPlan::Local => return Err(e),
        // the trials run on the cluster's nodes, which may have the device this machine lacks
        Err(e) => text.push_str(&format!("# device (on this machine): {e}\n")),
    }
    let root = &plan.data.layout.root;
    if !root.is_dir() {
        let source = plan.data.source.as_deref().unwrap_or("?");
        text.push_str(&format!("\n# data: {} is not here yet; `brasa run` downloads it from {source}\n", root.display()));
        return super::print_out(&text);
    }
    let dataset = runner::prepare_dataset(&plan, &Progress::hidden())?;
    plan.check_against(&dataset, brasa::data::pixels::available_memory())?;
    let split = plan.data.split;
    text.push_str(&format!(
        "\n# data: {} ({} classes; validation {} of the training folder, {}, seed {})\n",
        root.display(),
        dataset.classes.len(),
        split.validation,
        if split.stratify { "stratified" } else { "not stratified" },
        split.seed
    ));
    for line in dataset.counts_table().lines() {
        text.push_str(&format!("#   {line}\n"));
    }
    if split.group_duplicates {
        text.push_str("# data.split.group_duplicates: `brasa run` then moves duplicates found while decoding to one side; it logs the final counts\n");
    }
    if !dataset.skipped.is_empty() {
        text.push_str(&format!(
            "# {} file(s) are not images and will not be used, e.g. {}\n",
            dataset.skipped.len(),
            dataset.skipped[0].display()
        ));
    }
    super::print_out(&text)
}

/// Comment lines on what the spec's model and preprocessing resolve to.
fn describe_model(plan: &Plan) -> String {
    let mut text = String::new();
    if let Some(pretrained) = &plan.model.pretrained {
        let whereabouts = match &pretrained.files {
            Some(files) => format!("found: {}", files.weights.display()),
            None => format!("not on this machine yet; `brasa run` downloads it into {}", brasa::model::hub::cache_dir().display()),
        };
        text.push_str(&format!("\n# model: {} from {} ({whereabouts})\n", plan.model.arch.name(), pretrained.locator.describe()));
    }
    if let Some(origin) = &plan.preprocess.preset {
        let recipe = &plan.preprocess.recipe;
        let resize = match recipe.resize {
            Some((brasa::augment::ResizeTo::ShorterEdge(edge), interpolation)) => format!("shorter edge to {edge} ({interpolation:?})"),
            Some((brasa::augment::ResizeTo::Exact { height, width }, interpolation)) => format!("{height}x{width} ({interpolation:?})"),
            None => "none".into(),
        };
        let crop = recipe.center_crop.map(|(h, w)| format!(", centre crop {h}x{w}")).unwrap_or_default();
        let n = &plan.preprocess.normalize;
        text.push_str(&format!(
            "# preprocess ({origin}): resize {resize}{crop}, mean {:?}, std {:?}\n",
            n.mean, n.std
        ));
    }
    text
}