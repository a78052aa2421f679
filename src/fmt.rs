//! Small text forms shared by the CLI, the logs and the reports (a leaf: imports nothing).

use std::path::{Component, Path};

/// A path as the user would like to read it: relative to the working directory when inside it.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let relative = cwd.as_deref().and_then(|cwd| path.strip_prefix(cwd).ok());
    relative.unwrap_or(path).display().to_string()
}

/// `path` relative to `root`, `/`-separated whatever the platform.
pub fn relative(root: &Path, path: &Path) -> String {
    let inner = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = inner
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    parts.join("/")
}

/// `arg` as one word for a POSIX shell: as it is when it holds nothing the shell would read,
/// else in single quotes.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// A size in megabytes (10⁶ bytes), with a decimal below 100: `0.4 MB`, `12.3 MB`, `1455 MB`.
pub fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb < 99.95 { format!("{mb:.1} MB") } else { format!("{mb:.0} MB") }
}

/// Human-readable duration: `1 h 02 min`, `7 min 31 s`, `12.4 s`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{seconds:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        assert_eq!(format_duration(12.44), "12.4 s");
        assert_eq!(format_duration(451.0), "7 min 31 s");
        assert_eq!(format_duration(3720.0), "1 h 02 min");
    }

    #[test]
    fn sizes_keep_a_decimal_only_while_it_matters() {
        assert_eq!(megabytes(0), "0.0 MB");
        assert_eq!(megabytes(2_500_000), "2.5 MB");
        assert_eq!(megabytes(99_949_999), "99.9 MB");
        assert_eq!(megabytes(99_950_000), "100 MB");
        assert_eq!(megabytes(1_455_300_000), "1455 MB");
    }

    #[test]
    fn relative_paths_use_slashes_and_drop_the_root() {
        assert_eq!(relative(Path::new("/data"), Path::new("/data/Training/a/1.jpg")), "Training/a/1.jpg");
        assert_eq!(relative(Path::new("/elsewhere"), Path::new("/data/x.jpg")), "data/x.jpg");
    }
}
