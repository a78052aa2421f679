//! The dataset audit: every picture of an image folder (`ROOT/<split>/<class>/<image>`)
//! fingerprinted, and the duplicates among them — exact and near, across splits, across labels.
//!
//! The fingerprints and groups come from [`crate::dedup`], which the run pipeline shares;
//! [`audit`] scans and decodes a whole folder; `write` renders what it found. An unreadable file is a finding, never a failure of the audit, and the
//! audit never changes the dataset.

mod scan;
pub mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use crate::dedup::{Fingerprint, Group, Kind, NEAR_THRESHOLD, PHASH_BITS, Phash, crossing, fingerprint, group, is_near, leaked};

use crate::data::images::read_rgb;
use crate::error::Result;
use crate::progress::Progress;

/// One decoded image of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditedFile {
    /// Relative to the root, `/`-separated.
    pub path: String,
    pub split: String,
    pub class: String,
    /// `(width, height)` as stored.
    pub size: (u32, u32),
    pub fingerprint: Fingerprint,
}

/// A file that has an image extension but cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unreadable {
    /// Relative to the root, `/`-separated.
    pub path: String,
    pub error: String,
}

/// Which splits and classes the members of a group come from (each sorted, without repeats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub splits: Vec<String>,
    pub classes: Vec<String>,
}

impl Span {
    /// Copies of one picture in more than one split: leakage between them.
    pub fn is_cross_split(&self) -> bool {
        self.splits.len() > 1
    }

    /// Copies of one picture under more than one class: at least one label is wrong.
    pub fn is_label_conflict(&self) -> bool {
        self.classes.len() > 1
    }
}

/// Everything the audit of one dataset found.
#[derive(Debug, Clone)]
pub struct Audit {
    pub root: PathBuf,
    /// The perceptual distance used for near groups.
    pub threshold: u32,
    /// Split folder → class folder → decoded images (classes without images included).
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    /// Decoded images, in path order; group members index into it.
    pub files: Vec<AuditedFile>,
    pub unreadable: Vec<Unreadable>,
    /// Files that are not images or not inside a class folder, relative to the root.
    pub skipped: Vec<String>,
    /// Folders that could not be listed (no permission, a link loop), relative to the root:
    /// their images are not audited.
    pub unlistable: Vec<Unreadable>,
    pub groups: Vec<Group>,
}

/// The audit in numbers: what a report embeds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Split folder → class folder → decoded images.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    pub images: usize,
    pub unreadable: usize,
    pub skipped: usize,
    pub threshold: u32,
    pub exact_groups: usize,
    /// Files in exact groups (a group of 3 copies counts 3).
    pub exact_files: usize,
    pub near_groups: usize,
    pub near_files: usize,
    /// Groups (exact or near) with members in more than one split.
    pub cross_split_groups: usize,
    /// Groups (exact or near) with members in more than one class.
    pub label_conflict_groups: usize,
}

/// Scans `root`, decodes every image in parallel (a bar on `progress`), fingerprints them and
/// groups duplicates at perceptual distance `threshold` ([`NEAR_THRESHOLD`] by default).
///
/// Fails only when `root` is not a folder of split folders holding class folders.
pub fn audit(root: &Path, threshold: u32, progress: &Progress) -> Result<Audit> {
    let found = scan::scan(root)?;
    let bar = progress.bar(found.images.len() as u64, "fingerprint");
    let decoded: Vec<Result<(Fingerprint, (u32, u32))>> = found
        .images
        .par_iter()
        .map(|image| {
            let picture = read_rgb(&root.join(&image.path));
            bar.inc(1);
            picture.map(|picture| (fingerprint(&picture), picture.dimensions()))
        })
        .collect();
    bar.finish_and_clear();

    let mut counts = found.classes;
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for (image, result) in found.images.into_iter().zip(decoded) {
        match result {
            Ok((fingerprint, size)) => {
                *counts.entry(image.split.clone()).or_default().entry(image.class.clone()).or_default() += 1;
                files.push(AuditedFile { path: image.path, split: image.split, class: image.class, size, fingerprint });
            }
            Err(error) => unreadable.push(Unreadable { path: image.path, error: error_message(error) }),
        }
    }
    let fingerprints: Vec<Fingerprint> = files.iter().map(|f| f.fingerprint).collect();
    let groups = group(&fingerprints, threshold);
    let unlistable = found.unlistable.into_iter().map(|(path, error)| Unreadable { path, error }).collect();
    Ok(Audit { root: root.to_path_buf(), threshold, counts, files, unreadable, skipped: found.skipped, unlistable, groups })
}

/// The decoder's message without the path, which the listing shows already.
fn error_message(error: crate::Error) -> String {
    match error {
        crate::Error::Image { message, .. } => message,
        other => other.to_string(),
    }
}

impl Audit {
    /// The splits and classes of a group's members.
    pub fn span(&self, group: &Group) -> Span {
        let splits: BTreeSet<&str> = group.members.iter().map(|&i| self.files[i].split.as_str()).collect();
        let classes: BTreeSet<&str> = group.members.iter().map(|&i| self.files[i].class.as_str()).collect();
        Span {
            splits: splits.into_iter().map(String::from).collect(),
            classes: classes.into_iter().map(String::from).collect(),
        }
    }

    pub fn summary(&self) -> Summary {
        let of_kind = |kind: Kind| self.groups.iter().filter(move |g| g.kind == kind);
        let spans: Vec<Span> = self.groups.iter().map(|g| self.span(g)).collect();
        Summary {
            counts: self.counts.clone(),
            images: self.files.len(),
            unreadable: self.unreadable.len(),
            skipped: self.skipped.len(),
            threshold: self.threshold,
            exact_groups: of_kind(Kind::Exact).count(),
            exact_files: of_kind(Kind::Exact).map(|g| g.members.len()).sum(),
            near_groups: of_kind(Kind::Near).count(),
            near_files: of_kind(Kind::Near).map(|g| g.members.len()).sum(),
            cross_split_groups: spans.iter().filter(|s| s.is_cross_split()).count(),
            label_conflict_groups: spans.iter().filter(|s| s.is_label_conflict()).count(),
        }
    }
}
