//! `brasa run SPEC`: train and evaluate one experiment into a run folder — or every trial of its
//! `[sweep]`, each in its own process.

use std::path::PathBuf;

use brasa::plan::{LauncherPlan, Plan};
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
    /// Run only trial K of the spec's sweep (1-based), into its folder in the sweep (`--out`
    /// then names the sweep folder).
    #[arg(long, value_name = "K")]
    trial: Option<usize>,
    /// Where a sweep's trials run, overriding `launcher.name`: local (processes here) or slurm
    /// (one job array; brasa submits it and exits, `brasa status` follows it).
    #[arg(long, value_name = "NAME")]
    launcher: Option<String>,
    /// Trials of a sweep run at once (default: `sweep.jobs`, else 1); threads are split between them.
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Resume the run folder even when its spec, classes or data differ from this run's (the
    /// differences are listed; its results then mix both).
    #[arg(long)]
    force_resume: bool,
    /// List the trials and their overrides (with the Slurm launcher: the sbatch commands and
    /// script), run nothing.
    #[arg(long)]
    dry_run: bool,
    /// No progress bars or log lines; only the final summary.
    #[arg(long, short)]
    quiet: bool,
}

pub fn execute(args: RunArgs) -> Result<()> {
    // from the start: a signal before training (loading, decoding) stops with 130 and a message
    brasa::interrupt::install();
    for (flag, value) in [("--threads", args.threads), ("--jobs", args.jobs)] {
        if value == Some(0) {
            return Err(Error::usage(flag, "must be at least 1"));
        }
    }
    if let Some(threads) = args.threads.filter(|&t| t > brasa::plan::MAX_THREADS) {
        return Err(Error::usage("--threads", format!("{threads} is more than {}, the most brasa starts", brasa::plan::MAX_THREADS)));
    }
    let mut layers = args.spec.layers();
    if let Some(name) = &args.backend {
        layers.overrides.push(Override::new("runtime.backend", name.clone()));
    }
    if let Some(name) = &args.launcher {
        layers.overrides.push(Override::new("launcher.name", name.clone()));
    }
    // a single run takes --threads as a layer like --backend; a sweep splits it between trials
    let mut run_layers = layers.clone();
    if let Some(threads) = args.threads {
        run_layers.overrides.push(Override::new("runtime.threads", figment::value::Value::from(threads as u64)));
    }
    let progress = if args.quiet { Progress::hidden() } else { Progress::stderr() };
    let loaded = LoadedSpec::load(&args.spec.spec, &run_layers)?;
    if loaded.spec.sweep.is_none() {
        if let Some(flag) = [("--trial", args.trial.is_some_and(|k| k != 1)), ("--jobs", args.jobs.is_some())].into_iter().find_map(|(f, set)| set.then_some(f)) {
            return Err(Error::usage(flag, format!("applies to sweeps; {} has no [sweep]: it is a single run (trial 1)", display_path(&args.spec.spec))));
        }
        let plan = Plan::resolve(&loaded)?;
        if plan.launcher != LauncherPlan::Local {
            return Err(Error::usage(
                if args.launcher.is_some() { "--launcher" } else { "launcher.name" },
                format!("slurm submits the trials of a sweep; {} has no [sweep] (give it one, e.g. a single-value grid, or run it here)", display_path(&args.spec.spec)),
            ));
        }
        if args.dry_run {
            return super::print_out("1 trial: the spec as written (it has no [sweep])\n");
        }
        return run_one(&plan, args.out, args.force_resume, progress, None);
    }

    let sweep = SweepPlan::resolve(&args.spec.spec, &layers, args.out.as_deref())?;
    if let Some(number) = args.trial {
        return run_trial(&args, &sweep, number, run_layers, progress);
    }
    let launcher = sweep.trials.first().map(|(_, plan)| plan.launcher.clone()).unwrap_or_default();
    if let LauncherPlan::Slurm(slurm) = &launcher {
        if args.jobs.is_some() {
            return Err(Error::usage("--jobs", "applies to the local launcher; with slurm, launcher.slurm.array_parallelism says how many trials run at once"));
        }
        return submit_to_slurm(&args, &sweep, slurm);
    }
    if args.dry_run {
        return super::print_out(&sweep.listing());
    }
    let jobs = args.jobs.unwrap_or(sweep.sweep.jobs);
    let threads = args.threads.or(sweep.trials.first().and_then(|(_, p)| p.runtime.threads)).unwrap_or_else(brasa::backend::threads);
    let exe = std::env::current_exe().map_err(|e| Error::io("<brasa executable>", e))?;
    let base_args = trial_args(&args)?;
    let sweep_root = sweep.dir.root().to_path_buf();
    let launcher = move |trial: &brasa::spec::sweep::Trial, _dir: &std::path::Path, threads: usize| {
        let mut command = std::process::Command::new(&exe);
        command.args(&base_args);
        command.arg("--trial").arg(trial.number.to_string()).arg("--out").arg(&sweep_root).arg("--threads").arg(threads.to_string());
        command.env(SWEEP_PARENT, std::process::id().to_string());
        // `data.cache = "auto"` then counts the memory of every trial running at once
        command.env(brasa::data::pixels::RUNS_AT_ONCE_ENV, jobs.to_string());
        command
    };
    let tally = sweep::run(&sweep, jobs, threads, &launcher, &progress);
    super::index::refresh(sweep.dir.root(), &progress);
    let tally = tally?;
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

/// `run SPEC` and the layers given to this command (not `--threads`, `--trial`, `--out`): how
/// every trial process of a sweep starts.
fn trial_args(args: &RunArgs) -> Result<Vec<String>> {
    let mut out = args.spec.run_args()?;
    if let Some(backend) = &args.backend {
        out.extend(["--backend".into(), backend.clone()]);
    }
    if let Some(launcher) = &args.launcher {
        out.extend(["--launcher".into(), launcher.clone()]);
    }
    if args.force_resume {
        out.push("--force-resume".into());
    }
    Ok(out)
}

/// Trial `number` of `sweep` in its folder; when no local sweep launched it (a Slurm task, or by
/// hand), it also rewrites `trials.csv` and the sweep report as it ends, and at the time-limit
/// signal (SIGUSR1) in a Slurm job it requeues the job after its checkpoint.
fn run_trial(args: &RunArgs, sweep: &SweepPlan, number: usize, run_layers: brasa::spec::Layers, progress: Progress) -> Result<()> {
    let dir = sweep.trial_dir(number);
    let (trial, _) = sweep.trial(number)?;
    if args.dry_run {
        return super::print_out(&format!("trial {number}: {} into {}\n", trial.describe(), display_path(&dir)));
    }
    sweep.check_folder()?;
    if TrialStatus::of(&dir) == TrialStatus::Complete {
        return super::print_out(&format!("trial {number} ({}) is already complete: {}\n", trial.describe(), display_path(&dir)));
    }
    progress.log(format!("trial {number}: {}", trial.describe()));
    // the time-limit signal before training (or a second one) stops at once: requeued all the same
    let _requeue = brasa::interrupt::on_stop(|signal| requeue_at(signal, "it resumes this trial from its last checkpoint"));
    let standalone = std::env::var_os(brasa::run_dir::HELD_BY_PARENT_ENV).is_none();
    if !standalone {
        watch_parent();
    }
    // the trial's plan again, with --threads among its layers; its values are the [sweep]'s (as
    // `SweepPlan::resolve` layers them), not `--set`s: a relative path among them is relative to
    // the file that sweeps it, and a --set of a swept key stays refused
    let sweep_file = LoadedSpec::load(&args.spec.spec, &run_layers)?.file_setting("sweep").unwrap_or_else(|| args.spec.spec.clone());
    let mut trial_layers = run_layers;
    trial_layers.sweep = Some((sweep_file, trial.overrides.clone()));
    let plan = Plan::resolve(&LoadedSpec::load(&args.spec.spec, &trial_layers)?)?;
    let result = run_one(&plan, Some(dir), args.force_resume, progress.clone(), Some("the same command (or the sweep's) resumes it".into()));
    if standalone {
        // trials.csv and the report follow the trial folders (a trial ends at any time)
        // (keeping what `brasa status` recorded of other trials' jobs, which only it can see)
        let rows = || match sweep.dir.path(sweep_dir::TRIALS_CSV).is_file() {
            true => sweep.dir.refresh_trials().map(|_| ()),
            false => sweep::write_trials_csv(sweep).map(|_| ()),
        };
        let refreshed = sweep.dir.write_spec(&sweep.base_toml, &sweep.sweep_toml).and_then(|()| rows()).and_then(|()| brasa::report::sweep::render(&sweep.dir));
        if let Err(e) = refreshed {
            progress.log(format!("warning: trials.csv or the sweep report of {} could not be rewritten: {e}", display_path(sweep.dir.root())));
        }
    }
    if let Err(Error::Interrupted { signal, .. }) = &result {
        requeue_at(signal, "it resumes this trial from its checkpoint");
    }
    result
}

/// At the time-limit signal (SIGUSR1) in a Slurm job: the job requeued (once per process, however
/// the signal stopped the trial), and said; `then` says what the requeued job does.
fn requeue_at(signal: &str, then: &str) {
    static REQUEUED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if signal != "SIGUSR1" || REQUEUED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    match brasa::slurm::requeue_this_job() {
        None => {}
        Some(Ok(job)) => eprintln!("SIGUSR1: requeued Slurm job {job}; {then}"),
        Some(Err(e)) => eprintln!("SIGUSR1: the job could not be requeued ({e}); submitting the sweep again resumes the trial"),
    }
}

/// Submits the unfinished trials of `sweep` as Slurm job arrays and returns (`--dry-run`: prints
/// the sbatch commands and the script instead).
fn submit_to_slurm(args: &RunArgs, sweep: &SweepPlan, slurm: &brasa::plan::SlurmPlan) -> Result<()> {
    sweep.check_folder()?;
    let invocation = brasa::slurm::Invocation::from_here(trial_args(args)?, args.threads)?;
    // asked once before anything is written, so a cluster that cannot be asked leaves no folder
    let prepared = brasa::slurm::prepare(sweep, slurm, &invocation, args.dry_run)?;
    let root = display_path(sweep.dir.root());
    if args.dry_run {
        let mut text = planned(&root, sweep, &prepared);
        for note in &prepared.notes {
            text.push_str(&format!("# {note} (a dry run goes on without it)\n"));
        }
        for (index, (_, trials)) in prepared.arrays.iter().enumerate() {
            let earlier: Vec<String> = (1..=index).map(|i| format!("<job of array {i}>")).collect();
            let sbatch = prepared.sbatch_args(index, &earlier);
            text.push_str(&format!("# trials {}\nsbatch {}\n", brasa::slurm::script::ranges(trials), sbatch.iter().map(|a| brasa::fmt::shell_quote(a)).collect::<Vec<_>>().join(" ")));
        }
        text.push_str(&format!("# {}:\n{}", display_path(&prepared.script_path), prepared.script));
        return super::print_out(&text);
    }
    let nothing = |prepared: &brasa::slurm::Prepared| {
        let mut text = planned(&root, sweep, prepared);
        text.push_str("nothing to submit: every trial is finished, running or queued\n");
        text.push_str(&format!("status: brasa status {}\n", brasa::fmt::shell_quote(&root)));
        super::print_out(&text)
    };
    if prepared.arrays.is_empty() {
        return nothing(&prepared);
    }
    // again under the sweep's submit lock: a submit running beside this one may have just sent
    // these trials, and each is sent once
    let _submitting = sweep.dir.lock_submissions()?;
    let prepared = brasa::slurm::prepare(sweep, slurm, &invocation, false)?;
    if prepared.arrays.is_empty() {
        return nothing(&prepared);
    }
    sweep.dir.write_spec(&sweep.base_toml, &sweep.sweep_toml)?;
    sweep::write_trials_csv(sweep)?;
    let (made, failed) = brasa::slurm::submit_prepared(&sweep.dir, &prepared);
    let mut text = planned(&root, sweep, &prepared);
    let at_once = slurm.array_parallelism.map(|n| format!(", at most {n} at once")).unwrap_or_default();
    let mut earlier: Vec<String> = prepared.wait_for.clone();
    for submission in &made {
        let after = if slurm.array_parallelism.is_some() && !earlier.is_empty() { format!(", after Slurm job(s) {} end", earlier.join(", ")) } else { String::new() };
        text.push_str(&format!("submitted Slurm array job {}: trials {}{at_once}{after}\n", submission.job_id, brasa::slurm::script::ranges(&submission.trials)));
        earlier.push(submission.job_id.clone());
    }
    if let Some(error) = failed {
        // what is queued comes first, then the error (its message says so too)
        super::print_out(&text)?;
        return Err(error);
    }
    let quoted = brasa::fmt::shell_quote(&root);
    text.push_str(&format!(
        "logs:   {}/slurm/trial-NN.log\nwatch:  brasa status {quoted} --watch\ncancel: brasa status {quoted} --cancel\nthe same command submits again whatever is neither finished nor queued\n",
        root
    ));
    super::print_out(&text)
}

/// The first lines of a submit: the sweep, and the trials it leaves out and why.
fn planned(root: &str, sweep: &SweepPlan, prepared: &brasa::slurm::Prepared) -> String {
    let mut text = format!("sweep {root}: {} trial(s)\n", sweep.trials.len());
    for (number, why) in &prepared.left_out {
        text.push_str(&format!("trial {number:>2}: {why}, not submitted again\n"));
    }
    text
}

/// One run (or one sweep trial) to the end, then its summary on stdout.
fn run_one(plan: &Plan, out: Option<PathBuf>, force_resume: bool, progress: Progress, resume_hint: Option<String>) -> Result<()> {
    let named = out.clone();
    let outcome = runner::run(plan, &RunOptions { out, progress: progress.clone(), force_resume, resume_hint }).map_err(|e| match e {
        Error::Interrupted { signal, step, epoch, run_dir: Some(dir), resume: None } => {
            let resume = Some(resume_command(&dir));
            Error::Interrupted { signal, step, epoch, run_dir: Some(dir), resume }
        }
        other => other,
    });
    // the runs index lists the run however it ended (an interrupted one as unfinished)
    match &outcome {
        Ok(outcome) => super::index::refresh(&outcome.dir, &progress),
        Err(Error::Interrupted { run_dir: Some(dir), .. }) => super::index::refresh(dir, &progress),
        Err(_) => named.iter().filter(|dir| dir.join(brasa::run_dir::META).is_file()).for_each(|dir| super::index::refresh(dir, &progress)),
    }
    let outcome = outcome?;
    let classes = brasa::run_dir::RunDir::open(&outcome.dir)?.read_meta()?.classes;
    let mut text = format!("run folder: {}\n", display_path(&outcome.dir));
    // report.formats may ask for no report at all
    if let Some(report) = [brasa::run_dir::REPORT_MD, brasa::run_dir::REPORT_HTML].iter().map(|f| outcome.dir.join(f)).find(|p| p.is_file()) {
        text.push_str(&format!("report:     {}\n", display_path(&report)));
    }
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
    args.iter().map(|a| brasa::fmt::shell_quote(a)).collect::<Vec<_>>().join(" ")
}

/// In a sweep's trial process, exits when the sweep that started it is gone (killed), instead of
/// training on as an orphan (it holds the trial's lock, so a restarted sweep meanwhile finds the
/// trial taken: soon gone, it is more often simply resumed).
fn watch_parent() {
    #[cfg(unix)]
    if let Some(parent) = std::env::var(SWEEP_PARENT).ok().and_then(|p| p.parse::<u32>().ok()) {
        std::thread::spawn(move || loop {
            if std::os::unix::process::parent_id() != parent {
                eprintln!("the sweep that started this trial is gone; stopping (its checkpoints resume it)");
                std::process::exit(brasa::error::EXIT_INTERRUPTED.into());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        });
    }
}
