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
    let loaded = args.spec.load(None)?;
    let plan = Plan::resolve(&loaded)?;
    let mut text = plan.resolved_toml.clone();
    let root = &plan.data.layout.root;
    if !root.is_dir() {
        let source = plan.data.source.as_deref().unwrap_or("?");
        text.push_str(&format!("\n# data: {} is not here yet; `brasa run` downloads it from {source}\n", root.display()));
        return super::print_out(&text);
    }
    let dataset = runner::prepare_dataset(&plan, &Progress::hidden())?;
    let split = plan.data.split;
    text.push_str(&format!(
        "\n# data: {} ({} classes; validation {} of the training folder, {}, seed {})\n",
        root.display(),
        dataset.classes.len(),
        split.validation,
        if split.stratify { "stratified" } else { "not stratified" },
        split.seed
    ));
    for line in runner::counts_table(&dataset).lines() {
        text.push_str(&format!("#   {line}\n"));
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
