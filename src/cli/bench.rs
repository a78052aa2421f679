//! `brasa bench SPEC`: training, inference and data-path throughput of a spec's model on this
//! machine, as text or one JSON line.

use brasa::bench::{self, What};
use brasa::plan::Plan;
use brasa::progress::Progress;
use brasa::spec::{LoadedSpec, Override};
use brasa::{Error, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    spec: super::SpecArgs,
    /// What to time, comma-separated: train, infer, data, epoch (a run's data preparation with
    /// the spec's data.cache: not in the default list, as it loads the whole dataset).
    #[arg(long, value_name = "LIST", default_value = "train,infer,data")]
    what: String,
    /// Timed steps (train) and batches (infer).
    #[arg(long, value_name = "N", default_value_t = 10)]
    steps: usize,
    /// Untimed steps first (autotuning, kernel compilation, first allocations).
    #[arg(long, value_name = "N", default_value_t = 3)]
    warmup: usize,
    /// At most N training-folder images for the data path (default: all).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Compute backend, overriding `runtime.backend` (auto, flex, wgpu, cuda).
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// CPU threads (overrides `runtime.threads`).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Also time each part of a training step (forward, backward, clip, optimizer), waiting for
    /// the device after each, and queuing a step against waiting for it.
    #[arg(long)]
    phases: bool,
    /// One JSON line on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: BenchArgs) -> Result<()> {
    let mut layers = args.spec.layers();
    if let Some(name) = &args.backend {
        layers.overrides.push(Override::new("runtime.backend", name.clone()));
    }
    if let Some(threads) = args.threads {
        if threads == 0 {
            return Err(Error::usage("--threads", "must be at least 1"));
        }
        if threads > brasa::plan::MAX_THREADS {
            return Err(Error::usage("--threads", format!("{threads} is more than {}, the most brasa starts", brasa::plan::MAX_THREADS)));
        }
        layers.overrides.push(Override::new("runtime.threads", figment::value::Value::from(threads as u64)));
    }
    let what = args
        .what
        .split(',')
        .map(|name| What::parse(name.trim()).ok_or_else(|| Error::usage("--what", format!("{name:?}: expected train, infer, data or epoch (comma-separated)"))))
        .collect::<Result<Vec<_>>>()?;
    let loaded = LoadedSpec::load(&args.spec.spec, &layers)?;
    let plan = Plan::resolve(&loaded)?;
    let progress = if args.json { Progress::hidden() } else { Progress::stderr() };
    let options = bench::Options { what, steps: args.steps, warmup: args.warmup, limit: args.limit, phases: args.phases };
    let results = bench::run(&plan, &options, &progress)?;
    if args.json {
        let line = serde_json::to_string(&results).map_err(|e| Error::Data(format!("cannot write the results as JSON: {e}")))?;
        super::print_out(&format!("{line}\n"))
    } else {
        super::print_out(&results.summary())
    }
}
