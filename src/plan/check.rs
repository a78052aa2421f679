//! The [`Checker`]: collects spec problems while a plan is resolved, each located through the
//! loaded spec's provenance (file or `--set` or environment variable, key, value).

use crate::spec::{LoadedSpec, SpecIssue};

/// A number as a message shows it: `1e300`, not its 301 digits.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude.is_finite() && magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) { format!("{value:e}") } else { value.to_string() }
}

/// Collects issues while resolving, each located through the loaded spec's provenance.
pub struct Checker<'a> {
    pub loaded: &'a LoadedSpec,
    pub issues: Vec<SpecIssue>,
}

impl Checker<'_> {
    pub fn fail(&mut self, key: &str, value: impl Into<Option<String>>, message: impl Into<String>) {
        let origin_key = key.split('[').next().unwrap_or(key);
        self.issues.push(SpecIssue {
            origin: self.loaded.origin(origin_key),
            key: key.to_string(),
            value: value.into(),
            message: message.into(),
            hint: None,
        });
    }

    pub fn fail_with_hint(&mut self, key: &str, value: String, message: impl Into<String>, hint: Option<String>) {
        self.fail(key, Some(value), message);
        if let Some(last) = self.issues.last_mut() {
            last.hint = hint;
        }
    }

    /// `lo < value < hi` (or `<=` where `inclusive`).
    pub fn range(&mut self, key: &str, value: f64, lo: f64, hi: f64, lo_inclusive: bool, hi_inclusive: bool) {
        let above = if lo_inclusive { value >= lo } else { value > lo };
        let below = if hi_inclusive { value <= hi } else { value < hi };
        if !(value.is_finite() && above && below) {
            let (open, close) = (if lo_inclusive { "[" } else { "(" }, if hi_inclusive { "]" } else { ")" });
            let hi_text = if hi.is_infinite() { "∞".to_string() } else { hi.to_string() };
            self.fail(key, Some(number(value)), format!("must be in {open}{lo}, {hi_text}{close}"));
        }
    }

    pub fn positive(&mut self, key: &str, value: usize) {
        if value == 0 {
            self.fail(key, Some("0".into()), "must be at least 1");
        }
    }
}

/// For the sections' unit tests: a spec from text, and a section resolved with a fresh checker.
#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::spec::Layers;

    /// The keys every spec needs; a test appends the sections it is about.
    pub const REQUIRED: &str = "[experiment]\nname = \"x\"\n[data]\nroot = \"d\"\ntrain = \"train\"\n";

    /// `text` as a spec file in a temporary folder (kept alive beside it), loaded.
    pub fn load(text: &str) -> (tempfile::TempDir, LoadedSpec) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spec.toml");
        std::fs::write(&file, text).unwrap();
        let loaded = LoadedSpec::load(&file, &Layers::default()).unwrap_or_else(|e| panic!("{e}"));
        (dir, loaded)
    }

    /// What `resolve` gives with a fresh checker over `text`, and the keys of the issues it found.
    pub fn resolve<T>(text: &str, resolve: impl FnOnce(&mut Checker) -> T) -> (T, Vec<String>) {
        let (_dir, loaded) = load(text);
        let mut check = Checker { loaded: &loaded, issues: Vec::new() };
        let resolved = resolve(&mut check);
        (resolved, check.issues.into_iter().map(|issue| issue.key).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_their_bounds_and_open_ends() {
        let (_dir, loaded) = testing::load(&format!("{}[model]\narch = \"cvt-tiny\"\n", testing::REQUIRED));
        let mut check = Checker { loaded: &loaded, issues: Vec::new() };
        check.range("train.optimizer.lr", 0.0, 0.0, f64::INFINITY, false, false);
        check.range("augment.chain[0].p", 0.5, 0.0, 1.0, true, true);
        check.positive("train.epochs", 0);
        let messages: Vec<&str> = check.issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(messages, ["must be in (0, ∞)", "must be at least 1"]);
        assert_eq!(check.issues[0].key, "train.optimizer.lr");
    }

    #[test]
    fn huge_and_tiny_numbers_are_shown_short() {
        assert_eq!(number(1e300), "1e300");
        assert_eq!(number(-3e38), "-3e38");
        assert_eq!(number(1e-9), "1e-9");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(1e-6), "1e-6");
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(0.0), "0");
    }
}
