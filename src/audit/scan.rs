//! Listing what an audit looks at: every split folder of the root, every class folder of each
//! split, their image files, and every other file (skipped, but listed).

use std::collections::BTreeMap;
use std::path::Path;

use walkdir::WalkDir;

use crate::data::folder;
use crate::fmt::relative;
use crate::error::{Error, Result};

/// An image file to decode; paths relative to the root, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    pub path: String,
    pub split: String,
    pub class: String,
}

#[derive(Debug, Default)]
pub struct Found {
    /// Every split folder with class folders → its class folders, counts at 0.
    pub classes: BTreeMap<String, BTreeMap<String, usize>>,
    /// In path order.
    pub images: Vec<FoundImage>,
    /// Files that are not images or not inside `<split>/<class>/`, in path order.
    pub skipped: Vec<String>,
}

/// Lists `root`: its sub-folders are splits, theirs are classes.
pub fn scan(root: &Path) -> Result<Found> {
    if !root.exists() {
        return Err(Error::Data(format!("dataset root {} does not exist", root.display())));
    }
    if !root.is_dir() {
        return Err(Error::Data(format!("dataset root {} is not a folder", root.display())));
    }
    let mut found = Found::default();
    let (splits, files) = entries(root)?;
    found.skipped.extend(files);
    for split in splits {
        let split_dir = root.join(&split);
        let (classes, _) = entries(&split_dir)?;
        if classes.is_empty() {
            found.skipped.extend(all_files(root, &split_dir)?);
            continue;
        }
        let listed = folder::scan(&split_dir, &classes, false)?;
        found.skipped.extend(listed.skipped.iter().map(|path| relative(root, path)));
        found.images.extend(listed.items.iter().map(|item| FoundImage {
            path: relative(root, &item.path),
            split: split.clone(),
            class: classes[item.label].clone(),
        }));
        found.classes.insert(split, classes.into_iter().map(|class| (class, 0)).collect());
    }
    if found.classes.is_empty() {
        return Err(Error::Data(format!(
            "{} has no split folders with class folders (expected {}/<split>/<class>/<image>)",
            root.display(),
            root.display()
        )));
    }
    found.images.sort_by(|a, b| a.path.cmp(&b.path));
    found.skipped.sort();
    Ok(found)
}

/// The sub-folder names (following links) and file names of `dir`, each sorted.
fn entries(dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let mut folders = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            folders.push(name);
        } else {
            files.push(name);
        }
    }
    folders.sort();
    files.sort();
    Ok((folders, files))
}

/// Every file below `dir`, relative to `root`.
fn all_files(root: &Path, dir: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in WalkDir::new(dir).follow_links(true) {
        let entry = entry.map_err(|e| Error::Data(format!("cannot list {}: {e}", dir.display())))?;
        if entry.file_type().is_file() {
            files.push(relative(root, entry.path()));
        }
    }
    Ok(files)
}


#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn lists_splits_classes_images_and_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("Training/b/2.png"));
        touch(&root.join("Training/a/1.JPG"));
        touch(&root.join("Training/a/notes.txt"));
        touch(&root.join("Training/stray.jpg"));
        touch(&root.join("Testing/a/3.jpg"));
        std::fs::create_dir_all(root.join("Testing/empty")).unwrap();
        touch(&root.join("docs/readme.md"));
        touch(&root.join("LICENSE"));
        let found = scan(root).unwrap();
        let images: Vec<(&str, &str, &str)> =
            found.images.iter().map(|i| (i.path.as_str(), i.split.as_str(), i.class.as_str())).collect();
        assert_eq!(
            images,
            [
                ("Testing/a/3.jpg", "Testing", "a"),
                ("Training/a/1.JPG", "Training", "a"),
                ("Training/b/2.png", "Training", "b")
            ]
        );
        assert_eq!(found.skipped, ["LICENSE", "Training/a/notes.txt", "Training/stray.jpg", "docs/readme.md"]);
        let classes: Vec<(&String, Vec<&String>)> =
            found.classes.iter().map(|(s, c)| (s, c.keys().collect())).collect();
        assert_eq!(format!("{classes:?}"), r#"[("Testing", ["a", "empty"]), ("Training", ["a", "b"])]"#);
    }

    #[test]
    fn missing_root_and_flat_root_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = scan(&missing).unwrap_err().to_string();
        assert!(err.contains("does not exist") && err.contains("nope"), "{err}");
        touch(&dir.path().join("flat/1.jpg"));
        let err = scan(&dir.path().join("flat")).unwrap_err().to_string();
        assert!(err.contains("no split folders"), "{err}");
    }
}
