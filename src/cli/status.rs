//! `brasa status SWEEP_DIR [--watch [SECS]] [--cancel]`: one line per trial of a sweep, from its
//! folders and (for a sweep sent to Slurm) the queue; `trials.csv` and the sweep report are
//! rewritten on the way.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use brasa::fmt::display_path;
use brasa::status::{self, SweepStatus};
use brasa::sweep_dir::SweepDir;
use brasa::{Error, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A sweep folder (`reports/<experiment>/sweep-<id>`, or the `--out` of the sweep).
    sweep_dir: PathBuf,
    /// Refresh every SECS seconds (default 10) until no trial is running or queued.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "10")]
    watch: Option<u64>,
    /// Cancel the sweep's Slurm jobs that are still queued or running (running trials save a
    /// checkpoint first; submitting the sweep again resumes them).
    #[arg(long, conflicts_with = "watch")]
    cancel: bool,
}

pub fn execute(args: StatusArgs) -> Result<()> {
    if args.watch == Some(0) {
        return Err(Error::usage("--watch", "must be at least 1 second"));
    }
    let dir = SweepDir::open(&args.sweep_dir)?;
    if args.cancel {
        let now = read(&dir)?;
        let jobs = now.active_jobs();
        let local: Vec<String> = now
            .trials
            .iter()
            .filter_map(|t| match &t.standing {
                status::Standing::Running { task: None, holder, .. } => Some(format!("trial {} by {}", t.trial, holder.as_deref().unwrap_or("another process"))),
                _ => None,
            })
            .collect();
        if jobs.is_empty() && !local.is_empty() {
            // saying "nothing to cancel" with exit 0 would let a script believe the sweep stopped
            return Err(Error::usage(
                "--cancel",
                format!(
                    "cancels Slurm jobs only, and this sweep runs here: {}; stop it with Ctrl-C in the sweep's terminal, or `kill -INT PID` (its trials save a checkpoint and stop)",
                    local.join(", ")
                ),
            ));
        }
        if jobs.is_empty() {
            return super::print_out(&format!("{}nothing to cancel: no trial of this sweep is queued or running in Slurm\n", now.render(&dir)));
        }
        brasa::slurm::cancel(&jobs)?;
        return super::print_out(&format!(
            "cancelled Slurm job(s) {}; running trials save a checkpoint as they stop\nresume later with the command that submitted the sweep\n",
            jobs.join(", ")
        ));
    }
    let Some(seconds) = args.watch else {
        return super::print_out(&read(&dir)?.render(&dir));
    };
    let _graceful = brasa::interrupt::Graceful::new();
    let clear = std::io::stdout().is_terminal();
    loop {
        let now = read(&dir)?;
        let stamp = brasa::build_info::timestamp(std::time::SystemTime::now());
        super::print_out(&format!("{}{stamp}\n{}", if clear { "\x1b[2J\x1b[H" } else { "" }, now.render(&dir)))?;
        if now.trials.iter().all(|t| t.standing.settled()) {
            return Ok(());
        }
        for _ in 0..seconds * 10 {
            if brasa::interrupt::requested().is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The sweep's status; the sweep report is rendered again from the refreshed `trials.csv`.
fn read(dir: &SweepDir) -> Result<SweepStatus> {
    let now = status::read(dir)?;
    if let Err(e) = brasa::report::sweep::render(dir) {
        eprintln!("warning: the sweep report of {} could not be rewritten: {e}", display_path(dir.root()));
    }
    Ok(now)
}
