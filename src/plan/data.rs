//! `[data]` → [`DataPlan`]: the dataset's folders, split and source.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::check::Checker;
use crate::data::pixels::CacheMode;
use crate::data::{Layout, SplitRule};
use crate::spec::schema;

#[derive(Debug, Clone)]
pub struct DataPlan {
    pub layout: Layout,
    pub split: SplitRule,
    /// Zip archive to download when `layout.root` does not exist.
    pub source: Option<String>,
    pub expect: Option<BTreeMap<String, BTreeMap<String, usize>>>,
    /// Where decoded images are kept while the run trains.
    pub cache: CacheMode,
    /// `data.unreadable = "skip"`: leave out the files that cannot be read (else stop, listing them).
    pub skip_unreadable: bool,
}

pub(super) fn resolve_data(check: &mut Checker, data: &schema::Data, seed: u64) -> DataPlan {
    let root = normalize(&data.root.relative());
    if let Some(source) = &data.source
        && !(source.starts_with("http://") || source.starts_with("https://"))
    {
        check.fail("data.source", Some(format!("{source:?}")), "must be an http:// or https:// URL of a zip archive");
    }
    if !root.is_dir() && data.source.is_none() {
        let what = if root.exists() { "is not a folder" } else { "does not exist" };
        check.fail(
            "data.root",
            Some(format!("{:?}", data.root.original().display().to_string())),
            format!("{} {what} (set data.source to download it)", root.display()),
        );
    }
    for (key, folder) in [("data.train", Some(&data.train)), ("data.test", data.test.as_ref())] {
        if let Some(folder) = folder
            && (folder.is_empty() || folder.contains(".."))
        {
            check.fail(key, Some(format!("{folder:?}")), "must name a folder inside data.root");
        }
    }
    if let Some(classes) = &data.classes {
        let mut seen = std::collections::HashSet::new();
        if classes.is_empty() {
            check.fail("data.classes", Some("[]".into()), "must list at least one class (or be left out)");
        }
        for class in classes {
            if class.is_empty() || !seen.insert(class) {
                check.fail("data.classes", Some(format!("{class:?}")), "class names must be non-empty and unique");
            }
        }
    }
    check.range("data.split.validation", data.split.validation, 0.0, 1.0, false, false);
    DataPlan {
        layout: Layout { root, train: data.train.clone(), test: data.test.clone(), classes: data.classes.clone() },
        split: SplitRule {
            validation: data.split.validation,
            stratify: data.split.stratify,
            seed: data.split.seed.unwrap_or(seed),
            group_duplicates: data.split.group_duplicates,
        },
        source: data.source.clone(),
        expect: data.expect.clone(),
        cache: data.cache.into(),
        skip_unreadable: data.unreadable == schema::Unreadable::Skip,
    }
}

/// An absolute path with `.` and `..` removed lexically (symlinks are kept as written).
pub(super) fn normalize(path: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

impl From<schema::Cache> for CacheMode {
    fn from(cache: schema::Cache) -> Self {
        match cache {
            schema::Cache::Auto => CacheMode::Auto,
            schema::Cache::Memory => CacheMode::Memory,
            schema::Cache::Disk => CacheMode::Disk,
            schema::Cache::None => CacheMode::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan::check::testing::resolve;

    #[test]
    fn bad_data_values_are_each_named() {
        let text = "[experiment]\nname = \"x\"\n[model]\narch = \"cvt-tiny\"\n[data]\nroot = \"missing\"\ntrain = \"../up\"\nsource = \"ftp://x/y.zip\"\nclasses = [\"a\", \"a\"]\n[data.split]\nvalidation = 1.0\n";
        let (plan, issues) = resolve(text, |check| resolve_data(check, &check.loaded.spec.data.clone(), 3));
        assert_eq!(issues, ["data.source", "data.train", "data.classes", "data.split.validation"]);
        assert!(plan.layout.root.is_absolute() && plan.layout.root.ends_with("missing"));
        assert_eq!(plan.split.seed, 3, "the experiment's seed when the split has none");
    }

    #[test]
    fn the_cache_mode_is_auto_unless_set() {
        let base = "[experiment]\nname = \"x\"\n[model]\narch = \"cvt-tiny\"\n[data]\nroot = \".\"\ntrain = \"t\"\n";
        let (plan, _) = resolve(base, |check| resolve_data(check, &check.loaded.spec.data.clone(), 3));
        assert_eq!(plan.cache, CacheMode::Auto);
        let (plan, _) = resolve(&format!("{base}cache = \"disk\"\n"), |check| resolve_data(check, &check.loaded.spec.data.clone(), 3));
        assert_eq!(plan.cache, CacheMode::Disk);
    }

    #[test]
    fn normalize_removes_dots_lexically() {
        assert_eq!(normalize(std::path::Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
        assert!(normalize(std::path::Path::new("rel")).is_absolute());
    }
}
