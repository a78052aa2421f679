//! Fetching a dataset archive on a fresh machine: download a zip with a progress bar, extract it
//! with the archive's single top folder stripped (as GitHub archives have one), and move it into
//! place atomically, so a killed download never leaves a half-filled `data.root` behind.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::progress::Progress;

/// Downloads the zip at `url` and extracts it as the folder `root` (which must not exist).
pub fn fetch_zip(url: &str, root: &Path, progress: &Progress) -> Result<()> {
    let parent = root.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    let archive = parent.join(format!(".{name}.download.zip"));
    download(url, &archive, progress)?;
    let staging = parent.join(format!(".{name}.extracting"));
    let extracted = extract_zip(&archive, &staging, progress);
    let result = extracted.and_then(|()| std::fs::rename(&staging, root).map_err(|e| Error::io(root, e)));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    let _ = std::fs::remove_file(&archive);
    result
}

/// Streams `url` into `dest` (through a `.part` file renamed on success).
pub fn download(url: &str, dest: &Path, progress: &Progress) -> Result<()> {
    let fail = |message: String| Error::Download { url: url.to_string(), message };
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let body = response.into_body();
    let bar = progress.bytes_bar(body.content_length(), "downloading");
    let mut reader = body.into_reader();
    let part = dest.with_extension("part");
    let file = File::create(&part).map_err(|e| Error::io(&part, e))?;
    let mut writer = BufWriter::new(file);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buffer).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        writer.write_all(&buffer[..n]).map_err(|e| Error::io(&part, e))?;
        bar.inc(n as u64);
    }
    writer.flush().map_err(|e| Error::io(&part, e))?;
    bar.finish_and_clear();
    std::fs::rename(&part, dest).map_err(|e| Error::io(dest, e))
}

/// Extracts `archive` into `dest`, dropping the top folder when every entry is inside one.
pub fn extract_zip(archive: &Path, dest: &Path, progress: &Progress) -> Result<()> {
    let bad = |message: String| Error::Data(format!("{}: not a usable zip archive: {message}", archive.display()));
    let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut names = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        let name = entry
            .enclosed_name()
            .ok_or_else(|| bad(format!("entry {:?} escapes the archive", entry.name())))?;
        names.push((name, entry.is_dir()));
    }
    let top = common_top_folder(&names);
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    }
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let bar = progress.bar(names.len() as u64, "extracting");
    for (i, (name, is_dir)) in names.into_iter().enumerate() {
        bar.inc(1);
        let relative: PathBuf = match &top {
            Some(top) => name.strip_prefix(top).map(Path::to_path_buf).unwrap_or_default(),
            None => name,
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&relative);
        if is_dir {
            std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        let mut out = File::create(&target).map_err(|e| Error::io(&target, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| bad(format!("{}: {e}", relative.display())))?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// The folder every entry lives in, when there is exactly one.
fn common_top_folder(names: &[(PathBuf, bool)]) -> Option<PathBuf> {
    let mut top: Option<PathBuf> = None;
    for (name, is_dir) in names {
        let mut components = name.components();
        let first = match components.next() {
            Some(Component::Normal(first)) => PathBuf::from(first),
            _ => return None,
        };
        if components.next().is_none() && !is_dir {
            return None; // a file at the top level
        }
        match &top {
            None => top = Some(first),
            Some(existing) if *existing == first => {}
            Some(_) => return None,
        }
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_folder_is_found_only_when_shared() {
        let shared = vec![
            (PathBuf::from("repo-master/"), true),
            (PathBuf::from("repo-master/Training/a/1.jpg"), false),
        ];
        assert_eq!(common_top_folder(&shared), Some(PathBuf::from("repo-master")));
        let flat = vec![(PathBuf::from("Training/a/1.jpg"), false), (PathBuf::from("Testing/a/2.jpg"), false)];
        assert_eq!(common_top_folder(&flat), None);
        let loose = vec![(PathBuf::from("top/a.jpg"), false), (PathBuf::from("README.md"), false)];
        assert_eq!(common_top_folder(&loose), None);
    }
}
