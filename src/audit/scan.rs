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
    /// Folders that could not be listed (no permission, a link loop), with why, in path order.
    pub unlistable: Vec<(String, String)>,
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
        let classes = match entries(&split_dir) {
            Ok((classes, _)) => classes,
            Err(error) => {
                found.unlistable.push((relative(root, &split_dir), error.to_string()));
                continue;
            }
        };
        if classes.is_empty() {
            all_files(root, &split_dir, &mut found);
            continue;
        }
        let listed = folder::scan(&split_dir, &classes, false)?;
        found.skipped.extend(listed.skipped.iter().map(|path| relative(root, path)));
        found.unlistable.extend(listed.unlistable.iter().map(|(path, why)| (relative(root, path), why.clone())));
        found.images.extend(listed.items.iter().map(|item| FoundImage {
            path: relative(root, &item.path),
            split: split.clone(),
            class: classes[item.label].clone(),
        }));
        found.classes.insert(split, classes.into_iter().map(|class| (class, 0)).collect());
    }
    if found.classes.is_empty() {
        if let Some((_, why)) = found.unlistable.first() {
            return Err(Error::Data(why.clone()));
        }
        return Err(Error::Data(format!(
            "{} has no split folders with class folders (expected {}/<split>/<class>/<image>)",
            root.display(),
            root.display()
        )));
    }
    found.images.sort_by(|a, b| a.path.cmp(&b.path));
    found.skipped.sort();
    found.unlistable.sort();
    Ok(found)
}

/// The sub-folder names (following links; an error for one whose name is not UTF-8) and the other
/// names of `dir`, each sorted: hidden
/// folders and brasa's output are among the others, as training leaves them out
/// ([`folder::is_hidden`], [`folder::is_brasa_output`]).
fn entries(dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let mut folders = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() && !folder::is_hidden(&entry.file_name()) && !folder::is_brasa_output(&path) {
            // a split or class is named by its folder: a lossy name would name no folder
            folders.push(folder::class_name(&path)?);
        } else {
            files.push(name);
        }
    }
    folders.sort();
    files.sort();
    Ok((folders, files))
}

/// Every file below `dir` into `found.skipped`, and the folders that cannot be listed into
/// `found.unlistable`, relative to `root`.
fn all_files(root: &Path, dir: &Path, found: &mut Found) {
    for entry in WalkDir::new(dir).follow_links(true) {
        match entry {
            Ok(entry) if entry.file_type().is_file() => found.skipped.push(relative(root, entry.path())),
            Ok(_) => {}
            Err(error) => {
                let (path, why) = folder::unlistable(&error, dir);
                found.unlistable.push((relative(root, &path), why));
            }
        }
    }
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
    fn hidden_folders_are_skipped_not_splits_or_classes_as_in_training() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("Training/a/1.png"));
        touch(&root.join("Training/.ipynb_checkpoints/2.png"));
        touch(&root.join("Training/__MACOSX/3.png"));
        touch(&root.join(".git/objects/x.png"));
        let found = scan(root).unwrap();
        let images: Vec<&str> = found.images.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(images, ["Training/a/1.png"]);
        assert_eq!(found.classes.keys().collect::<Vec<_>>(), ["Training"]);
        assert_eq!(found.classes["Training"].keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(found.skipped, [".git", "Training/.ipynb_checkpoints", "Training/__MACOSX"]);
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
