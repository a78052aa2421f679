//! `brasa run SPEC`: train and evaluate one experiment into a run folder — or every trial of its
//! `[sweep]`, each in its own process.

use std::path::PathBuf;

use brasa::plan::Plan;
use brasa::progress::Progress;
use brasa::runner::{self, RunOptions};
use brasa::fmt::display_path;
use brasa::spec::{LoadedSpec, Override};
use brasa::sweep::{self, SweepPlan};
use brasa::sweep_dir::{self as sweep_dir, TrialStatus};
use brasa::{Error, Result};
use clap::Args;

/// Set in a sweep's trial processes: the parent's pid, so an orphaned trial stops.
const SWEEP_PARENT: &str = "BRASA_SWEEP_PARENT";

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    spec: super::SpecArgs,
    /// The run folder (default: reports/<experiment>/<timestamp>); an unfinished run of the same
    /// spec there is resumed. For a sweep, the sweep folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Compute backend, overriding `runtime.backend` (flex, wgpu, cuda).
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// CPU threads (overrides `runtime.threads`; not part of the run's spec, so a run can resume
    /// with another count).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Run only trial K of the spec's sweep (1-based), into its folder in the sweep.
    #[arg(long, value_name = "K")]
    trial: Option<usize>,
    /// Trials of a sweep run at once (default: `sweep.jobs`, else 1); threads are split between them.
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Resume the run folder even when its spec, classes or data differ from this run's (the
    /// differences are listed; its results then mix both).
    #[arg(long)]
    force_resume: bool,
    /// List the trials and their overrides, run nothing.
    #[arg(long)]
    dry_run: bool,
    /// No progress bars or log lines; only the final summary.
    #[arg(long, short)]
    quiet: bool,
}

pub fn execute(args: RunArgs) -> Result<()> {
    for (flag, value) in [("--threads", args.threads), ("--jobs", args.jobs)] {
        if value == Some(0) {
            return Err(Error::usage(flag, "must be at least 1"));
        }
    }
    let mut layers = args.spec.layers();
    if let Some(name) = &args.backend {
        layers.overrides.push(Override { key: "runtime.backend".into(), value: name.clone().into() });
    }
    // a single run takes --threads as a layer like --backend; a sweep splits it between trials
    let mut run_layers = layers.clone();
    if let Some(threads) = args.threads {
        run_layers.overrides.push(Override { key: "runtime.threads".into(), value: figment::value::Value::from(threads as u64) });
    }
    let progress = if args.quiet { Progress::hidden() } else { Progress::stderr() };
    let loaded = LoadedSpec::load(&args.spec.spec, &run_layers)?;
    if loaded.spec.sweep.is_none() {
        if let Some(flag) = [("--trial", args.trial.is_some_and(|k| k != 1)), ("--jobs", args.jobs.is_some())].into_iter().find_map(|(f, set)| set.then_some(f)) {
            return Err(Error::usage(flag, format!("applies to sweeps; {} has no [sweep]: it is a single run (trial 1)", display_path(&args.spec.spec))));
        }
        if args.dry_run {
            return super::print_out("1 trial: the spec as written (it has no [sweep])\n");
        }
        let plan = Plan::resolve(&loaded)?;
        return run_one(&plan, args.out, args.force_resume, progress);
    }

    let sweep = SweepPlan::resolve(&args.spec.spec, &layers, if args.trial.is_some() { None } else { args.out.as_deref() })?;
    if args.dry_run {
        return super::print_out(&sweep.listing());
    }
    if let Some(number) = args.trial {
        let dir = args.out.clone().unwrap_or_else(|| sweep.trial_dir(number));
        let (trial, _) = sweep.trial(number)?;
        if TrialStatus::of(&dir) == TrialStatus::Complete {
            return super::print_out(&format!("trial {number} ({}) is already complete: {}\n", trial.describe(), display_path(&dir)));
        }
        progress.log(format!("trial {number}: {}", trial.describe()));
        watch_parent();
        // the trial's plan again, with --threads among its layers
        let mut trial_layers = run_layers;
        trial_layers.overrides.extend(trial.overrides.iter().cloned());
        let plan = Plan::resolve(&LoadedSpec::load(&args.spec.spec, &trial_layers)?)?;
        return run_one(&plan, Some(dir), args.force_resume, progress);
    }
    let jobs = args.jobs.unwrap_or(sweep.sweep.jobs);
    let threads = args.threads.or(sweep.trials.first().and_then(|(_, p)| p.runtime.threads)).unwrap_or_else(brasa::backend::threads);
    let exe = std::env::current_exe().map_err(|e| Error::io("<brasa executable>", e))?;
    let spec = args.spec.spec.clone();
    let overrides = args.spec.overrides.clone();
    let unset = args.spec.unset.clone();
    let backend = args.backend.clone();
    let force_resume = args.force_resume;
    let launcher = move |trial: &brasa::spec::sweep::Trial, dir: &std::path::Path, threads: usize| {
        let mut command = std::process::Command::new(&exe);
        command.arg("run").arg(&spec);
        for key in &unset {
            command.arg("--unset").arg(&key.0);
        }
        for o in &overrides {
            command.arg("--set").arg(format!("{}={}", o.key, brasa::spec::render_value(&o.value)));
        }
        if let Some(backend) = &backend {
            command.arg("--backend").arg(backend);
        }
        if force_resume {
            command.arg("--force-resume");
        }
        command.arg("--trial").arg(trial.number.to_string()).arg("--out").arg(dir).arg("--threads").arg(threads.to_string());
        command.env(SWEEP_PARENT, std::process::id().to_string());
        // `data.cache = "auto"` then counts the memory of every trial running at once
        command.env(brasa::data::pixels::RUNS_AT_ONCE_ENV, jobs.to_string());
        command
    };
    let tally = sweep::run(&sweep, jobs, threads, &launcher, &progress)?;
    let failed = tally.failed;
    let elsewhere = if tally.elsewhere > 0 { format!(", {} running in another process", tally.elsewhere) } else { String::new() };
    let summary = format!(
        "sweep folder: {}\nreport:       {}\ntrials:       {} ({} complete{elsewhere})\n",
        display_path(sweep.dir.root()),
        display_path(&sweep.dir.path(sweep_dir::REPORT_MD)),
        sweep.trials.len(),
        tally.complete
    );
    super::print_out(&summary)?;
    if failed > 0 {
        return Err(Error::TrialsFailed { failed, total: sweep.trials.len(), csv: display_path(&sweep.dir.path(sweep_dir::TRIALS_CSV)).into() });
    }
    Ok(())
}

/// One run (or one sweep trial) to the end, then its summary on stdout.
fn run_one(plan: &Plan, out: Option<PathBuf>, force_resume: bool, progress: Progress) -> Result<()> {
    let outcome = runner::run(plan, &RunOptions { out, progress, force_resume }).map_err(|e| match e {
        Error::Interrupted { signal, step, epoch, run_dir: Some(dir), resume: None } => {
            let resume = Some(resume_command(&dir));
            Error::Interrupted { signal, step, epoch, run_dir: Some(dir), resume }
        }
        other => other,
    })?;
    let classes = brasa::run_dir::RunDir::open(&outcome.dir)?.read_meta()?.classes;
    let mut text = format!("run folder: {}\n", display_path(&outcome.dir));
    text.push_str(&format!("report:     {}\n", display_path(&outcome.dir.join(brasa::run_dir::REPORT_MD))));
    text.push_str(&format!("wall time:  {}\n", brasa::fmt::format_duration(outcome.wall_seconds)));
    if let Some(epoch) = outcome.best_epoch {
        text.push_str(&format!("best epoch: {epoch}\n"));
    }
    text.push_str(&format!("validation accuracy: {:.4}  macro F1: {:.4}\n", outcome.val.accuracy, outcome.val.macro_avg.f1));
    if let Some(test) = &outcome.test {
        text.push_str(&format!("test accuracy:       {:.4}  macro F1: {:.4}\n", test.accuracy, test.macro_avg.f1));
        let recalls: Vec<String> = classes.iter().zip(&test.per_class).map(|(c, s)| format!("{c} {:.4}", s.recall)).collect();
        text.push_str(&format!("test recall: {}\n", recalls.join(", ")));
    }
    super::print_out(&text)
}

/// This process's command line with `--out DIR` (added when it was not given), shell-quoted:
/// what resumes an interrupted run.
fn resume_command(dir: &std::path::Path) -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        *first = "brasa".into();
    }
    if !args.iter().any(|a| a == "--out" || a.starts_with("--out=")) {
        args.push("--out".into());
        args.push(dir.display().to_string());
    }
    let quote = |arg: &String| {
        if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
            arg.clone()
        } else {
            format!("'{}'", arg.replace('\'', "'\\''"))
        }
    };
    args.iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// In a sweep's trial process, exits when the sweep that started it is gone (killed), instead of
/// training on as an orphan that a restarted sweep would collide with.
fn watch_parent() {
    #[cfg(unix)]
    if let Some(parent) = std::env::var(SWEEP_PARENT).ok().and_then(|p| p.parse::<u32>().ok()) {
        std::thread::spawn(move || loop {
            if std::os::unix::process::parent_id() != parent {
                eprintln!("the sweep that started this trial is gone; stopping (its checkpoints resume it)");
                std::process::exit(brasa::error::EXIT_INTERRUPTED.into());
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        });
    }
}
