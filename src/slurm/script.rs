//! The batch script of a sweep's job array, and how its trials are split into arrays.
//!
//! One script serves every array of the sweep: a task's trial is its array index plus the
//! array's offset (`BRASA_TRIAL_OFFSET`, 0 unless the trial numbers pass the cluster's
//! `MaxArraySize`). The script appends everything a trial prints, attempt after attempt, to
//! `SWEEP_DIR/slurm/trial-NN.log`, runs the spec's setup lines and `exec`s brasa, so Slurm's
//! `--signal=B:USR1@<s>` reaches brasa itself (a bash trap would wait for the program to end).

use std::path::{Path, PathBuf};

use crate::fmt::shell_quote;
use crate::plan::SlurmPlan;

/// The variable that holds an array's offset (trial = array index + offset).
pub const OFFSET_ENV: &str = "BRASA_TRIAL_OFFSET";

/// How a trial's process is started: `exe` with `args` (`run SPEC --set … `), then `--trial K
/// --out SWEEP_DIR`, from `workdir`.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub exe: PathBuf,
    pub args: Vec<String>,
    pub workdir: PathBuf,
    /// `--threads N` given to `brasa run`: passed on as it is.
    pub threads: Option<usize>,
}

impl Invocation {
    /// This process's executable and working directory, starting trials with `args`.
    pub fn from_here(args: Vec<String>, threads: Option<usize>) -> crate::error::Result<Self> {
        use crate::error::Error;
        Ok(Self {
            exe: std::env::current_exe().map_err(|e| Error::io("<brasa executable>", e))?,
            args,
            workdir: std::env::current_dir().map_err(|e| Error::io("<working directory>", e))?,
            threads,
        })
    }
}

/// The batch script for the sweep `name` in `sweep_dir` (absolute).
pub fn render(name: &str, sweep_dir: &Path, slurm: &SlurmPlan, invocation: &Invocation) -> String {
    let logs = sweep_dir.join(crate::sweep_dir::SLURM);
    let mut options: Vec<String> = vec![
        format!("--job-name=brasa-{name}"),
        // Slurm's own output for the task (the trial's own log is trial-NN.log beside it)
        format!("--output={}", logs.join("job-%A_%a.out").display()),
        "--open-mode=append".into(),
        "--requeue".into(),
        format!("--signal=B:USR1@{}", slurm.signal_before_limit_s),
        format!("--chdir={}", invocation.workdir.display()),
    ];
    let mut option = |flag: &str, value: Option<String>| {
        if let Some(value) = value {
            options.push(format!("--{flag}={value}"));
        }
    };
    option("partition", slurm.partition.clone());
    option("time", slurm.time.as_ref().map(|(text, _)| text.clone()));
    option("cpus-per-task", slurm.cpus_per_task.map(|n| n.to_string()));
    option("mem", slurm.mem.clone());
    option("gres", slurm.gpus.map(|n| format!("gpu:{n}")));
    option("account", slurm.account.clone());
    option("qos", slurm.qos.clone());
    option("constraint", slurm.constraint.clone());
    options.extend(slurm.extra_args.iter().cloned());

    let mut text = format!(
        "#!/bin/bash\n# brasa sweep {name}: one array task per trial, trial = array index + ${OFFSET_ENV}.\n# Written by `brasa run --launcher slurm`; submitted with `sbatch --array=… {}`.\n",
        logs.join(crate::sweep_dir::SLURM_SCRIPT).display()
    );
    for option in &options {
        text.push_str(&format!("#SBATCH {}\n", directive(option)));
    }
    text.push_str("set -euo pipefail\n");
    text.push_str(&format!("trial=$(( SLURM_ARRAY_TASK_ID + ${{{OFFSET_ENV}:-0}} ))\n"));
    text.push_str(&format!("exec >>\"$(printf '%s/trial-%02d.log' {} \"$trial\")\" 2>&1\n", shell_quote(&logs.display().to_string())));
    text.push_str(
        "echo \"== $(date -u +%Y-%m-%dT%H:%M:%SZ) Slurm job ${SLURM_JOB_ID} (array task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}, restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): trial ${trial}\"\n",
    );
    for line in &slurm.setup {
        text.push_str(line);
        text.push('\n');
    }
    let mut command = vec![shell_quote(&invocation.exe.display().to_string())];
    command.extend(invocation.args.iter().map(|a| shell_quote(a)));
    command.extend(["--trial".into(), "\"$trial\"".into(), "--out".into(), shell_quote(&sweep_dir.display().to_string())]);
    match (invocation.threads, slurm.cpus_per_task) {
        (Some(threads), _) => command.extend(["--threads".into(), threads.to_string()]),
        (None, Some(_)) => command.extend(["--threads".into(), "\"${SLURM_CPUS_PER_TASK}\"".into()]),
        (None, None) => {}
    }
    text.push_str(&format!("exec {}\n", command.join(" ")));
    text
}

/// One sbatch option as an `#SBATCH` line holds it. sbatch splits a directive at white space,
/// takes `"…"` and `'…'` as quotes, `\\` as an escape and an unquoted `#` as a comment, so a
/// path or an `extra_args` item with a space would otherwise become a second, invalid directive.
/// The value of `--flag=value` is quoted (the flag stays readable); a plain word is left as it is.
pub fn directive(option: &str) -> String {
    let plain = |text: &str| !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || "\"'\\#".contains(c));
    let quote = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    if plain(option) {
        return option.to_string();
    }
    match option.split_once('=') {
        Some((flag, value)) if plain(flag) => format!("{flag}={}", quote(value)),
        _ => quote(option),
    }
}

/// Splits `trials` (ascending) into arrays whose indices stay below `max_array_size`: `(offset,
/// trials)`, each trial's index being `trial - offset`. Trial numbers below the limit keep their
/// number as their index.
pub fn chunks(trials: &[usize], max_array_size: usize) -> Vec<(usize, Vec<usize>)> {
    let max = max_array_size.max(1);
    let mut chunks: Vec<(usize, Vec<usize>)> = Vec::new();
    for &trial in trials {
        match chunks.last_mut() {
            Some((offset, members)) if trial - *offset < max => members.push(trial),
            _ => chunks.push((if trial < max { 0 } else { trial }, vec![trial])),
        }
    }
    chunks
}

/// `[1, 2, 3, 5]` → `"1-3,5"`: numbers in Slurm's array form.
pub fn ranges(numbers: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut index = 0;
    while index < numbers.len() {
        let start = numbers[index];
        let mut end = start;
        while index + 1 < numbers.len() && numbers[index + 1] == end + 1 {
            index += 1;
            end = numbers[index];
        }
        parts.push(if end == start { start.to_string() } else { format!("{start}-{end}") });
        index += 1;
    }
    parts.join(",")
}

/// `"1-3,5"` → `[1, 2, 3, 5]`; `None` when it is not in that form.
pub fn parse_ranges(text: &str) -> Option<Vec<usize>> {
    let mut numbers = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((start, end)) => {
                let (start, end): (usize, usize) = (start.parse().ok()?, end.parse().ok()?);
                if end < start || end - start > 1_000_000 {
                    return None;
                }
                numbers.extend(start..=end);
            }
            None => numbers.push(part.parse().ok()?),
        }
    }
    Some(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slurm() -> SlurmPlan {
        SlurmPlan {
            partition: Some("gpu".into()),
            time: Some(("2:00:00".into(), 7200)),
            cpus_per_task: Some(4),
            mem: Some("16G".into()),
            gpus: Some(1),
            array_parallelism: Some(2),
            account: None,
            qos: Some("normal".into()),
            constraint: None,
            extra_args: vec!["--exclusive".into()],
            signal_before_limit_s: 120,
            setup: vec!["module load cuda".into()],
        }
    }

    #[test]
    fn the_script_sets_every_option_and_execs_the_trial_with_its_log() {
        let invocation = Invocation {
            exe: "/opt/brasa/bin/brasa".into(),
            args: vec!["run".into(), "/home/me/lr sweep.toml".into(), "--set".into(), "train.epochs=3".into()],
            workdir: "/home/me".into(),
            threads: None,
        };
        let script = render("lr", Path::new("/scratch/sweep-1"), &slurm(), &invocation);
        for line in [
            "#SBATCH --job-name=brasa-lr\n",
            "#SBATCH --output=/scratch/sweep-1/slurm/job-%A_%a.out\n",
            "#SBATCH --open-mode=append\n#SBATCH --requeue\n#SBATCH --signal=B:USR1@120\n#SBATCH --chdir=/home/me\n",
            "#SBATCH --partition=gpu\n#SBATCH --time=2:00:00\n#SBATCH --cpus-per-task=4\n#SBATCH --mem=16G\n#SBATCH --gres=gpu:1\n#SBATCH --qos=normal\n#SBATCH --exclusive\nset -euo pipefail\n",
            "trial=$(( SLURM_ARRAY_TASK_ID + ${BRASA_TRIAL_OFFSET:-0} ))\n",
            "exec >>\"$(printf '%s/trial-%02d.log' /scratch/sweep-1/slurm \"$trial\")\" 2>&1\n",
            "module load cuda\nexec /opt/brasa/bin/brasa run '/home/me/lr sweep.toml' --set train.epochs=3 --trial \"$trial\" --out /scratch/sweep-1 --threads \"${SLURM_CPUS_PER_TASK}\"\n",
        ] {
            assert!(script.contains(line), "{line:?} not in\n{script}");
        }
        assert!(script.starts_with("#!/bin/bash\n"));
        // sbatch reads #SBATCH lines only before the first command
        let first_command = script.lines().position(|l| !l.starts_with('#')).unwrap();
        assert!(script.lines().skip(first_command).all(|l| !l.starts_with("#SBATCH")));
    }

    #[test]
    fn directive_values_with_spaces_quotes_or_hashes_are_quoted_as_sbatch_reads_them() {
        assert_eq!(directive("--exclusive"), "--exclusive");
        assert_eq!(directive("--output=/s/slurm/job-%A_%a.out"), "--output=/s/slurm/job-%A_%a.out");
        assert_eq!(directive("--chdir=/home/me/with space"), "--chdir=\"/home/me/with space\"");
        assert_eq!(directive("--comment=say \"hi\" #1 \\o/"), "--comment=\"say \\\"hi\\\" #1 \\\\o/\"");
        assert_eq!(directive("--comment=it's"), "--comment=\"it's\"");
        assert_eq!(directive("-J my job"), "\"-J my job\"");
        let invocation = Invocation { exe: "/b/brasa".into(), args: vec![], workdir: "/home/me/my work".into(), threads: None };
        let script = render("lr", Path::new("/scratch/a sweep"), &SlurmPlan { extra_args: vec!["--comment=hello world".into()], ..slurm() }, &invocation);
        for line in ["#SBATCH --output=\"/scratch/a sweep/slurm/job-%A_%a.out\"\n", "#SBATCH --chdir=\"/home/me/my work\"\n", "#SBATCH --comment=\"hello world\"\n"] {
            assert!(script.contains(line), "{line:?} not in\n{script}");
        }
    }

    #[test]
    fn trials_past_the_array_limit_go_to_arrays_of_their_own() {
        assert_eq!(chunks(&[1, 2, 3], 1001), vec![(0, vec![1, 2, 3])]);
        assert_eq!(chunks(&[2, 5, 9, 10, 11, 25], 10), vec![(0, vec![2, 5, 9]), (10, vec![10, 11]), (25, vec![25])]);
        assert_eq!(chunks(&[], 10), vec![]);
        for (offset, trials) in chunks(&(1..=50).collect::<Vec<_>>(), 8) {
            assert!(trials.iter().all(|t| t - offset < 8), "{offset} {trials:?}");
        }
    }

    #[test]
    fn ranges_round_trip() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
        assert_eq!(parse_ranges("1-3,5,7-8"), Some(vec![1, 2, 3, 5, 7, 8]));
        assert_eq!(parse_ranges(""), Some(vec![]));
        assert_eq!(parse_ranges("3-1"), None);
        assert_eq!(parse_ranges("x"), None);
    }
}
