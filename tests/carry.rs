//! `scripts/carry.sh`, which takes a folder to the GPU machine over several size-limited
//! transfers: packed into parts of the sizes asked for, gathered in any order (each part alone
//! says what is still missing, exit 3), unpacked byte for byte once whole, a damaged piece named,
//! and packing the same folder twice gives the same parts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn carry(args: &[&Path]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/carry.sh");
    Command::new("bash").arg(script).args(args).output().expect("bash runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Files under `root`, relative, sorted, with their bytes.
fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, into: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, into);
            } else {
                into.push((path.strip_prefix(root).unwrap().to_path_buf(), fs::read(&path).unwrap()));
            }
        }
    }
    let mut all = Vec::new();
    walk(root, root, &mut all);
    all.sort();
    all
}

/// A folder of 120 KiB that xz cannot shrink much (pseudo-random bytes), in two class folders.
fn dataset(root: &Path) -> PathBuf {
    let folder = root.join("mri");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for (class, count) in [("glioma", 7), ("no tumor", 5)] {
        fs::create_dir_all(folder.join("Training").join(class)).unwrap();
        for i in 0..count {
            let bytes: Vec<u8> = (0..10_240)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            fs::write(folder.join("Training").join(class).join(format!("img ({i}).jpg")), bytes).unwrap();
        }
    }
    folder
}

fn parts(dest: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = fs::read_dir(dest).unwrap().map(|e| e.unwrap().path()).collect();
    parts.sort();
    parts
}

fn size(dir: &Path) -> u64 {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

#[test]
fn a_folder_packed_into_parts_is_gathered_whole_in_any_order() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = dataset(tmp.path());
    let dest = tmp.path().join("carry");
    let out = carry(&[Path::new("pack"), &folder, &dest, Path::new("80K"), Path::new("40K")]);
    assert!(out.status.success(), "{}", text(&out));
    let parts = parts(&dest);
    assert!(parts.len() >= 2, "{parts:?}");
    // each part within its budget (the MANIFEST aside)
    for (part, budget) in parts.iter().zip([80 * 1024, 40 * 1024, 40 * 1024, 40 * 1024]) {
        let pieces = size(part) - fs::metadata(part.join("MANIFEST")).unwrap().len();
        assert!(pieces <= budget, "{} holds {pieces} bytes of pieces, over {budget}", part.display());
    }

    // the last part first: it says what is missing, and leaves nothing unpacked
    let stash = tmp.path().join("stash");
    for part in parts.iter().rev().take(parts.len() - 1) {
        let out = carry(&[Path::new("gather"), part, &stash]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(text(&out).contains("pieces of mri"), "{}", text(&out));
        assert!(!stash.join("mri").exists());
    }
    let out = carry(&[Path::new("gather"), &parts[0], &stash]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), stash.join("mri").display().to_string());
    assert_eq!(files(&stash.join("mri")), files(&folder), "the gathered folder differs from the packed one");
    // a part gathered again once whole changes nothing
    let out = carry(&[Path::new("gather"), &parts[1], &stash]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(files(&stash.join("mri")), files(&folder));

    // the same folder packed again gives the same parts
    let again = tmp.path().join("again");
    let out = carry(&[Path::new("pack"), &folder, &again, Path::new("80K"), Path::new("40K")]);
    assert!(out.status.success(), "{}", text(&out));
    for (a, b) in parts.iter().zip(crate::parts(&again)) {
        assert_eq!(files(a), files(&b), "packing twice differs in {}", a.display());
    }
}

#[test]
fn a_damaged_piece_is_named_and_nothing_is_unpacked() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = dataset(tmp.path());
    let dest = tmp.path().join("carry");
    let out = carry(&[Path::new("pack"), &folder, &dest, Path::new("200K")]);
    assert!(out.status.success(), "{}", text(&out));
    let part = &parts(&dest)[0];
    let mut pieces: Vec<PathBuf> = fs::read_dir(part).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap() != "MANIFEST").collect();
    pieces.sort();
    let damaged = &pieces[pieces.len() / 2];
    let mut bytes = fs::read(damaged).unwrap();
    bytes[0] ^= 1;
    fs::write(damaged, bytes).unwrap();
    let stash = tmp.path().join("stash");
    let out = carry(&[Path::new("gather"), part, &stash]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(damaged.file_name().unwrap().to_str().unwrap()) && text(&out).contains("damaged"), "{}", text(&out));
    assert!(!stash.join("mri").exists());
}

#[test]
fn bad_arguments_are_an_error_that_says_what_was_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let out = carry(&[Path::new("pack"), &tmp.path().join("missing"), &tmp.path().join("d"), Path::new("1M")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no folder at"), "{}", text(&out));
    let folder = dataset(tmp.path());
    let out = carry(&[Path::new("pack"), &folder, &tmp.path().join("d"), Path::new("lots")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not a size: 'lots'"), "{}", text(&out));
    let out = carry(&[Path::new("gather"), tmp.path(), &tmp.path().join("s")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no MANIFEST"), "{}", text(&out));
}
