//! Scanning an image folder: `<split>/<class>/<image>`, classes sorted by name → label ids.
//!
//! Nothing is dropped silently: files that are not images are returned as `skipped` so the
//! caller can report them, and a class folder without images is an error.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::error::{Error, Result};

/// Extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp"];

/// One image and its label id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub path: PathBuf,
    pub label: usize,
}

/// The images of one split folder.
#[derive(Debug, Clone, Default)]
pub struct SplitFolder {
    /// Sorted by label, then path.
    pub items: Vec<Item>,
    /// Files that are not images (or not inside a class folder), in path order.
    pub skipped: Vec<PathBuf>,
    /// Folders below a class folder that could not be listed (no permission, a link back to an
    /// ancestor), with why, in path order; their images are not in `items`.
    pub unlistable: Vec<(PathBuf, String)>,
}

impl SplitFolder {
    /// This listing, or an error naming the first folder that could not be listed: data to
    /// train or predict on must be listed whole.
    pub fn whole(self) -> Result<Self> {
        match self.unlistable.first() {
            Some((path, why)) => Err(Error::Data(format!("cannot list {}: {why}", path.display()))),
            None => Ok(self),
        }
    }
}

/// Whether a file or folder name is left out of every listing, as Hugging Face `datasets`
/// (the reference's image folder loader) leaves it out: hidden (`.DS_Store`, `._x.jpg`,
/// `.ipynb_checkpoints`) or special (`__MACOSX`, `__pycache__`). The scan lists them as skipped.
pub fn is_hidden(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name.starts_with("__")
}

/// Whether `dir` holds what brasa writes rather than images: the decoded-image cache
/// (`.cache/pixels`), run or sweep folders (a `meta.json`, `sweep.toml` or `.lock` in it), or
/// experiments' folders of them (`reports/<experiment>/<run>/`). A run started inside a flat
/// image folder writes its `reports` there; the next run must not take it for a class.
pub fn is_brasa_output(dir: &Path) -> bool {
    const MARKS: [&str; 3] = ["meta.json", "sweep.toml", ".lock"];
    let marked = |folder: &Path| MARKS.iter().any(|mark| folder.join(mark).is_file());
    let subfolders = |folder: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(folder).map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()).unwrap_or_default()
    };
    if marked(dir) || dir.join(".cache").join("pixels").is_dir() {
        return true;
    }
    let children = subfolders(dir);
    !children.is_empty() && children.iter().all(|child| marked(child) || subfolders(child).iter().any(|run| marked(run)))
}

/// Class names of a split folder: its sub-folders, sorted by name, leaving out hidden ones and
/// brasa's own output ([`is_hidden`], [`is_brasa_output`]).
pub fn class_folders(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut classes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        // `Path::is_dir` follows symbolic links: a linked class folder counts
        if entry.path().is_dir() && !is_hidden(&entry.file_name()) && !is_brasa_output(&entry.path()) {
            classes.push(class_name(&entry.path())?);
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(Error::Data(format!(
            "{} has no class folders (expected <split>/<class>/<image>)",
            dir.display()
        )));
    }
    Ok(classes)
}

/// The folder a walk below `walked` could not list, and why, from walkdir's error.
pub fn unlistable(error: &walkdir::Error, walked: &Path) -> (PathBuf, String) {
    let why = match (error.loop_ancestor(), error.io_error()) {
        (Some(ancestor), _) => format!("a link back to its ancestor {}", ancestor.display()),
        (None, Some(io)) => io.to_string(),
        (None, None) => error.to_string(),
    };
    (error.path().unwrap_or(walked).to_path_buf(), why)
}

/// The class a folder names: its name, which must be UTF-8 (classes are written to CSV, JSON
/// and the model's config by name; a lossy name would name no folder).
pub fn class_name(folder: &Path) -> Result<String> {
    let name = folder.file_name().unwrap_or(folder.as_os_str());
    name.to_str().map(str::to_string).ok_or_else(|| {
        Error::Data(format!(
            "folder {} has a name that is not valid UTF-8: rename it (splits and classes are named by their folders)",
            folder.display()
        ))
    })
}

/// Lists the images of `dir` for the given `classes` (label = index in `classes`).
///
/// `require_all`: every class must have a folder with at least one image (training data);
/// otherwise missing class folders are allowed (a test set may lack a class).
pub fn scan(dir: &Path, classes: &[String], require_all: bool) -> Result<SplitFolder> {
    let present = class_folders(dir)?;
    let unknown: Vec<&String> = present.iter().filter(|c| !classes.contains(c)).collect();
    if !unknown.is_empty() {
        return Err(Error::Data(format!(
            "{} has class folders that are not in the class list {:?}: {:?}",
            dir.display(),
            classes,
            unknown
        )));
    }
    let mut folder = SplitFolder::default();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        // files beside the class folders, and the folders that are no class
        if !entry.path().is_dir() || !present.iter().any(|class| *class == entry.file_name().to_string_lossy()) {
            folder.skipped.push(entry.path());
        }
    }
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() {
            if require_all {
                return Err(Error::Data(format!("class folder {} is missing", class_dir.display())));
            }
            continue;
        }
        let mut count = 0;
        let visible = |entry: &walkdir::DirEntry| entry.depth() == 0 || !is_hidden(entry.file_name());
        let mut walk = WalkDir::new(&class_dir).follow_links(true).sort_by_file_name().into_iter();
        while let Some(entry) = walk.next() {
            if let Ok(entry) = &entry
                && !visible(entry)
            {
                // listed as skipped, and nothing under a hidden folder is read
                if entry.file_type().is_dir() {
                    walk.skip_current_dir();
                }
                folder.skipped.push(entry.path().to_path_buf());
                continue;
            }
            let entry = match entry {
                Ok(entry) => entry,
                // a link to nothing is a file that cannot be read, with the others (listed, and
                // left out under data.unreadable = "skip"), not the end of the listing
                Err(e) if e.path().is_some_and(|p| p.is_symlink() && !p.exists()) => {
                    let path = e.path().expect("checked").to_path_buf();
                    if is_image(&path) {
                        folder.items.push(Item { path, label });
                        count += 1;
                    } else {
                        folder.skipped.push(path);
                    }
                    continue;
                }
                // walkdir goes on past a folder it cannot read or a link loop: listed, and the
                // caller says whether that is fatal
                Err(e) => {
                    folder.unlistable.push(unlistable(&e, &class_dir));
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            if is_image(entry.path()) {
                folder.items.push(Item { path: entry.into_path(), label });
                count += 1;
            } else {
                folder.skipped.push(entry.into_path());
            }
        }
        if count == 0 && require_all {
            return Err(Error::Data(format!(
                "class folder {} holds no images ({})",
                class_dir.display(),
                IMAGE_EXTENSIONS.join(", ")
            )));
        }
    }
    folder.skipped.sort();
    folder.unlistable.sort();
    Ok(folder)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|known| known.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_nothing_is_listed_as_an_item_to_read_not_a_listing_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("a/1.png"));
        std::os::unix::fs::symlink(root.join("gone.png"), root.join("a/broken.png")).unwrap();
        std::os::unix::fs::symlink(root.join("gone.txt"), root.join("a/broken.txt")).unwrap();
        let folder = scan(root, &["a".to_string()], true).unwrap();
        let items: Vec<&Path> = folder.items.iter().map(|i| i.path.as_path()).collect();
        assert_eq!(items, [root.join("a/1.png"), root.join("a/broken.png")]);
        assert_eq!(folder.skipped, [root.join("a/broken.txt")]);
    }

    #[test]
    fn scans_sorted_classes_and_reports_non_images() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("b_class/2.PNG"));
        touch(&root.join("b_class/1.jpg"));
        touch(&root.join("a_class/x.jpeg"));
        touch(&root.join("a_class/notes.txt"));
        touch(&root.join("stray.jpg"));
        let classes = class_folders(root).unwrap();
        assert_eq!(classes, ["a_class", "b_class"]);
        let folder = scan(root, &classes, true).unwrap();
        let names: Vec<(String, usize)> = folder
            .items
            .iter()
            .map(|i| (i.path.file_name().unwrap().to_string_lossy().into_owned(), i.label))
            .collect();
        assert_eq!(names, [("x.jpeg".into(), 0), ("1.jpg".into(), 1), ("2.PNG".into(), 1)]);
        assert_eq!(folder.skipped, [root.join("a_class/notes.txt"), root.join("stray.jpg")]);
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_to_images_and_class_folders_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        touch(&store.join("a.png"));
        touch(&store.join("b_images/b.png"));
        let root = dir.path().join("split");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::os::unix::fs::symlink(store.join("a.png"), root.join("a/linked.png")).unwrap();
        std::os::unix::fs::symlink(store.join("b_images"), root.join("b")).unwrap();
        let classes = class_folders(&root).unwrap();
        assert_eq!(classes, ["a", "b"]);
        let folder = scan(&root, &classes, true).unwrap();
        assert_eq!(folder.items.len(), 2);
    }

    #[test]
    fn hidden_files_and_folders_and_brasa_output_are_skipped_not_classes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("cat/0.png"));
        touch(&root.join("cat/._0.png"));
        touch(&root.join("cat/.DS_Store"));
        touch(&root.join("cat/.ipynb_checkpoints/1.png"));
        touch(&root.join("dog/0.png"));
        touch(&root.join("__MACOSX/cat/._0.png"));
        touch(&root.join(".ipynb_checkpoints/x.png"));
        // a run started in the image folder: reports/<experiment>/<run>/ and the pixel cache
        touch(&root.join("reports/flat/20261207-120000/.lock"));
        touch(&root.join("reports/flat/20261207-120000/meta.json"));
        std::fs::create_dir_all(root.join("reports/.cache/pixels")).unwrap();
        let classes = class_folders(root).unwrap();
        assert_eq!(classes, ["cat", "dog"]);
        let folder = scan(root, &classes, true).unwrap();
        let items: Vec<_> = folder.items.iter().map(|i| i.path.strip_prefix(root).unwrap().to_owned()).collect();
        assert_eq!(items, [Path::new("cat/0.png"), Path::new("dog/0.png")]);
        let skipped: Vec<_> = folder.skipped.iter().map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(skipped, [".ipynb_checkpoints", "__MACOSX", "cat/.DS_Store", "cat/._0.png", "cat/.ipynb_checkpoints", "reports"]);
        // a class folder of images in sub-folders stays a class
        touch(&root.join("bird/a/0.png"));
        assert_eq!(class_folders(root).unwrap(), ["bird", "cat", "dog"]);
    }

    #[test]
    fn a_class_folder_whose_name_is_not_utf8_is_named_in_an_error() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("cat/1.jpg"));
        touch(&dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9")).join("2.jpg"));
        let err = class_folders(dir.path()).unwrap_err().to_string();
        assert!(err.contains("caf\u{FFFD}") && err.contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn unknown_and_empty_class_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("cat/1.jpg"));
        touch(&dir.path().join("dog/readme.md"));
        let classes = vec!["cat".to_string(), "dog".to_string()];
        let err = scan(dir.path(), &classes, true).unwrap_err().to_string();
        assert!(err.contains("dog") && err.contains("no images"), "{err}");
        let err = scan(dir.path(), &["cat".to_string()], true).unwrap_err().to_string();
        assert!(err.contains("not in the class list"), "{err}");
    }
}
