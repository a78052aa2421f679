//! `[launcher]` → [`LauncherPlan`]: where a sweep's trials run, with every sbatch option checked
//! before anything is submitted (a job rejected by the cluster an hour later is a lost hour).

use super::check::Checker;
use crate::spec::schema;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum LauncherPlan {
    /// Trial processes on this machine.
    #[default]
    Local,
    Slurm(SlurmPlan),
}

/// The sbatch options of a sweep's job array, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmPlan {
    pub partition: Option<String>,
    /// `--time`, as written (a form Slurm accepts), and in seconds.
    pub time: Option<(String, u64)>,
    pub cpus_per_task: Option<usize>,
    pub mem: Option<String>,
    pub gpus: Option<usize>,
    pub array_parallelism: Option<usize>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    pub extra_args: Vec<String>,
    pub signal_before_limit_s: u64,
    pub setup: Vec<String>,
}

pub(super) fn resolve_launcher(check: &mut Checker, launcher: Option<&schema::Launcher>) -> LauncherPlan {
    // `--launcher` is a layer of the spec, so the name here is the one this command uses: a
    // local run is not refused for a setting only Slurm reads
    let Some(launcher) = launcher.filter(|l| l.name == schema::LauncherName::Slurm) else { return LauncherPlan::Local };
    let slurm = &launcher.slurm;
    let mut word = |key: &str, value: &Option<String>| {
        if let Some(text) = value
            && (text.trim().is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control() || "'\"\\$`;".contains(c)))
        {
            check.fail(key, Some(format!("{text:?}")), "must be one word (no spaces, quotes or shell characters)");
        }
        value.clone()
    };
    let partition = word("launcher.slurm.partition", &slurm.partition);
    let account = word("launcher.slurm.account", &slurm.account);
    let qos = word("launcher.slurm.qos", &slurm.qos);
    let constraint = word("launcher.slurm.constraint", &slurm.constraint);
    let time = slurm.time.as_ref().and_then(|text| match slurm_seconds(text) {
        Some(seconds) if seconds > 0 => Some((text.clone(), seconds)),
        _ => {
            check.fail(
                "launcher.slurm.time",
                Some(format!("{text:?}")),
                "must be a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (more than 0)",
            );
            None
        }
    });
    let mem = slurm.mem.as_ref().and_then(|text| {
        let digits = text.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
        let unit = text.len() - digits.len();
        if !digits.is_empty() && unit <= 1 && digits.chars().all(|c| c.is_ascii_digit()) && digits.parse::<u64>().is_ok_and(|n| n > 0) {
            Some(text.clone())
        } else {
            check.fail("launcher.slurm.mem", Some(format!("{text:?}")), "must be a memory size: a whole number with an optional K, M, G or T, e.g. \"8G\"");
            None
        }
    });
    for (key, value) in [
        ("launcher.slurm.cpus_per_task", slurm.cpus_per_task),
        ("launcher.slurm.gpus", slurm.gpus),
        ("launcher.slurm.array_parallelism", slurm.array_parallelism),
    ] {
        if let Some(value) = value {
            check.positive(key, value);
        }
    }
    // Slurm takes up to 65535 s for --signal's time
    if !(1..=65535).contains(&slurm.signal_before_limit_s) {
        check.fail("launcher.slurm.signal_before_limit_s", Some(slurm.signal_before_limit_s.to_string()), "must be in [1, 65535] seconds");
    } else if let Some((text, seconds)) = &time
        && slurm.signal_before_limit_s >= *seconds
    {
        check.fail(
            "launcher.slurm.signal_before_limit_s",
            Some(slurm.signal_before_limit_s.to_string()),
            format!("must be shorter than the time limit launcher.slurm.time = {text:?} ({seconds} s), or the signal comes at the start"),
        );
    }
    for (index, arg) in slurm.extra_args.iter().enumerate() {
        if !arg.starts_with('-') || arg.contains(['\n', '\r']) {
            check.fail(&format!("launcher.slurm.extra_args[{index}]"), Some(format!("{arg:?}")), "must be one sbatch option, starting with '-' (e.g. \"--exclusive\")");
        }
    }
    for (index, line) in slurm.setup.iter().enumerate() {
        if line.contains(['\n', '\r']) {
            check.fail(&format!("launcher.slurm.setup[{index}]"), Some(format!("{line:?}")), "must be one shell line per item");
        }
    }
    LauncherPlan::Slurm(SlurmPlan {
        partition,
        time,
        cpus_per_task: slurm.cpus_per_task,
        mem,
        gpus: slurm.gpus,
        array_parallelism: slurm.array_parallelism,
        account,
        qos,
        constraint,
        extra_args: slurm.extra_args.clone(),
        signal_before_limit_s: slurm.signal_before_limit_s,
        setup: slurm.setup.clone(),
    })
}

/// Seconds in a Slurm time limit (`MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`).
pub fn slurm_seconds(text: &str) -> Option<u64> {
    let number = |part: &str| -> Option<u64> { (!part.is_empty() && part.chars().all(|c| c.is_ascii_digit())).then(|| part.parse().ok()).flatten() };
    let (days, rest) = match text.split_once('-') {
        Some((days, rest)) => (Some(number(days)?), rest),
        None => (None, text),
    };
    let parts: Vec<u64> = rest.split(':').map(number).collect::<Option<_>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [minutes]) => minutes * 60,
        (None, [minutes, seconds]) => minutes * 60 + seconds,
        (None, [hours, minutes, seconds]) => hours * 3600 + minutes * 60 + seconds,
        (Some(d), [hours]) => d * 86400 + hours * 3600,
        (Some(d), [hours, minutes]) => d * 86400 + hours * 3600 + minutes * 60,
        (Some(d), [hours, minutes, seconds]) => d * 86400 + hours * 3600 + minutes * 60 + seconds,
        _ => return None,
    };
    Some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::check::testing::{REQUIRED, resolve};

    fn keys(section: &str) -> (LauncherPlan, Vec<String>) {
        let text = format!("{REQUIRED}[model]\narch = \"cvt-tiny\"\n{section}");
        resolve(&text, |check| {
            let launcher = check.loaded.spec.launcher.clone();
            resolve_launcher(check, launcher.as_ref())
        })
    }

    #[test]
    fn slurm_time_limits_in_every_form_slurm_takes() {
        assert_eq!(slurm_seconds("30"), Some(1800));
        assert_eq!(slurm_seconds("30:15"), Some(1815));
        assert_eq!(slurm_seconds("2:00:00"), Some(7200));
        assert_eq!(slurm_seconds("1-12"), Some(129600));
        assert_eq!(slurm_seconds("1-0:30"), Some(88200));
        assert_eq!(slurm_seconds("1-00:00:01"), Some(86401));
        for bad in ["", "1h", "1:2:3:4", "-1", "1-", "a:b"] {
            assert_eq!(slurm_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_slurm_launcher_with_every_option_resolves_and_local_is_the_default() {
        assert_eq!(keys(""), (LauncherPlan::Local, vec![]));
        let (plan, issues) = keys(
            "[launcher]\nname = \"slurm\"\n[launcher.slurm]\npartition = \"gpu\"\ntime = \"1:00:00\"\ncpus_per_task = 4\nmem = \"16G\"\ngpus = 1\narray_parallelism = 2\nextra_args = [\"--exclusive\"]\nsetup = [\"module load cuda\"]\n",
        );
        assert!(issues.is_empty(), "{issues:?}");
        let LauncherPlan::Slurm(slurm) = plan else { panic!("{plan:?}") };
        assert_eq!((slurm.time, slurm.signal_before_limit_s, slurm.mem.as_deref()), (Some(("1:00:00".into(), 3600)), 120, Some("16G")));
    }

    #[test]
    fn bad_slurm_options_name_their_keys() {
        let (_, issues) = keys(
            "[launcher]\nname = \"slurm\"\n[launcher.slurm]\npartition = \"a b\"\ntime = \"1h\"\nmem = \"lots\"\ncpus_per_task = 0\nextra_args = [\"exclusive\"]\nsignal_before_limit_s = 0\nsetup = [\"a\\nb\"]\n",
        );
        assert_eq!(
            issues,
            [
                "launcher.slurm.partition",
                "launcher.slurm.time",
                "launcher.slurm.mem",
                "launcher.slurm.cpus_per_task",
                "launcher.slurm.signal_before_limit_s",
                "launcher.slurm.extra_args[0]",
                "launcher.slurm.setup[0]",
            ]
        );
        let (_, issues) = keys("[launcher]\nname = \"slurm\"\n[launcher.slurm]\ntime = \"1\"\nsignal_before_limit_s = 60\n");
        assert_eq!(issues, ["launcher.slurm.signal_before_limit_s"], "the signal must come before the limit");
    }

    #[test]
    fn a_local_launcher_ignores_settings_only_slurm_reads() {
        // `--launcher local` on a spec written for Slurm: the same sweep folder serves both
        let (plan, issues) = keys("[launcher]\nname = \"local\"\n[launcher.slurm]\ntime = \"1\"\nsignal_before_limit_s = 120\nmem = \"lots\"\n");
        assert_eq!((plan, issues), (LauncherPlan::Local, vec![]));
        let (plan, issues) = keys("[launcher.slurm]\ntime = \"1\"\nsignal_before_limit_s = 120\n");
        assert_eq!((plan, issues), (LauncherPlan::Local, vec![]));
    }
}
