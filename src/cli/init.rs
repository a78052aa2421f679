//! `brasa init DATA_ROOT`: a commented starting spec for an image folder.

use std::path::PathBuf;

use brasa::Result;
use brasa::init::{Machine, Starter, survey};
use brasa::plan::Plan;
use brasa::progress::Progress;
use brasa::spec::{Layers, LoadedSpec};
use clap::Args;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The image folder: `<root>/<split>/<class>/<image>` (or `<root>/<class>/<image>`).
    data_root: PathBuf,
    /// The model to start from: cvt-13 (fine-tuned), vit-b16 (fine-tuned) or cvt-tiny (from
    /// scratch). Default: cvt-13 when there is a GPU, else cvt-tiny.
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Where to write the spec.
    #[arg(long, default_value = "spec.toml")]
    out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
}

/// The validation fractions init tries, in order, until every class is on both sides.
const VALIDATION_FRACTIONS: [f64; 4] = [0.2, 0.25, 0.34, 0.5];
/// How `brasa::init::render` writes the fraction (replaced by the one that works).
const DEFAULT_VALIDATION: &str = "validation = 0.2";

pub fn execute(args: InitArgs) -> Result<()> {
    if args.out.exists() && !args.force {
        return Err(brasa::Error::usage("--out", format!("{} exists; pass --force to replace it, or --out to write elsewhere", args.out.display())));
    }
    let machine = Machine::here();
    let starter = match &args.model {
        Some(name) => Starter::parse(name).ok_or_else(|| brasa::Error::usage("--model", format!("{name:?}: expected cvt-13, vit-b16 or cvt-tiny")))?,
        None if machine.gpu.is_some() => Starter::Cvt13,
        None => Starter::CvtTiny,
    };
    let found = survey(&args.data_root)?;
    let dir = args.out.parent().filter(|p| !p.as_os_str().is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| brasa::Error::io(&dir, e))?;
    let schema_name = "brasa.schema.json";
    let text = brasa::init::render(&found, starter, &machine, &args.out, schema_name);
    // checked as `brasa validate` would, with its data, before it takes the place of anything;
    // a few images per class may need a larger validation fraction than the usual 0.2 for every
    // class to be on both sides of the split
    let staged = tempfile::Builder::new().prefix(".brasa-init.").suffix(".toml").tempfile_in(&dir).map_err(|e| brasa::Error::io(&dir, e))?;
    let mut first_error = None;
    let mut plan = None;
    for fraction in VALIDATION_FRACTIONS {
        let text = text.replacen(DEFAULT_VALIDATION, &format!("validation = {fraction}"), 1);
        std::fs::write(staged.path(), &text).map_err(|e| brasa::Error::io(staged.path(), e))?;
        let loaded = LoadedSpec::load(staged.path(), &Layers::default())?;
        let checked = Plan::resolve(&loaded).map_err(brasa::Error::from).and_then(|candidate| {
            let dataset = brasa::runner::prepare_dataset(&candidate, &Progress::hidden())?;
            candidate.check_against(&dataset, brasa::data::pixels::available_memory())?;
            Ok(candidate)
        });
        match checked {
            Ok(candidate) => {
                plan = Some(candidate);
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let Some(plan) = plan else {
        let e = first_error.expect("a fraction was tried");
        return Err(brasa::Error::Data(format!("{}: the spec init would write does not pass brasa validate: {e}", brasa::fmt::display_path(&args.data_root))));
    };
    staged.persist(&args.out).map_err(|e| brasa::Error::io(&args.out, e.error))?;
    let schema = dir.join(schema_name);
    let wrote_schema = !schema.exists();
    if wrote_schema {
        brasa::atomic_file::write_atomic(&schema, brasa::spec::json_schema().as_bytes())?;
    }
    let test = found.test.as_ref().map(|t| format!(", test {} ({} images)", t.name, t.total())).unwrap_or_default();
    eprintln!(
        "wrote {} for {}: {} classes, train {} ({} images){test}; model {} at {}x{}, batch {}{}",
        brasa::fmt::display_path(&args.out),
        brasa::fmt::display_path(&args.data_root),
        found.train.counts.len(),
        found.train.name,
        found.train.total(),
        plan.model.arch.name(),
        plan.preprocess.input_size.0,
        plan.preprocess.input_size.1,
        plan.train.batch_size,
        if wrote_schema { format!(" (and {} beside it, for editors)", brasa::fmt::display_path(&schema)) } else { String::new() },
    );
    eprintln!("next: brasa validate {0}   then   brasa run {0}", brasa::fmt::display_path(&args.out));
    Ok(())
}
