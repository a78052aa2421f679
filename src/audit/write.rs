//! The audit's files: `duplicates.csv` (one row per file of each group), `audit.md` (the numbers,
//! the threshold, the largest groups) and `thumbs/group-<id>.jpg` (a contact sheet per large
//! group). The one place that knows their names and columns; every file is written atomically.

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use rayon::prelude::*;

use super::{Audit, Group, NEAR_THRESHOLD};
use crate::augment::{Interpolation, ResizeTo, resize};
use crate::data::images::read_rgb;
use crate::error::{Error, Result};
use crate::atomic_file::write_atomic;

pub const DUPLICATES_CSV: &str = "duplicates.csv";
pub const AUDIT_MD: &str = "audit.md";
pub const THUMBS_DIR: &str = "thumbs";
pub const CSV_HEADER: [&str; 5] = ["group", "kind", "split", "class", "path"];

/// Groups drawn as contact sheets, largest first.
const SHEETS: usize = 8;
/// Members drawn on one sheet.
const SHEET_MEMBERS: usize = 8;
const SHEET_COLUMNS: usize = 4;
const THUMB: u32 = 160;
const GAP: u32 = 4;
/// Groups in the table of largest groups.
const TABLE_ROWS: usize = 20;
/// Skipped files listed by name in audit.md (all are counted).
const SKIPPED_LISTED: usize = 50;

/// Writes `duplicates.csv`, `audit.md` and the contact sheets into `out` (created if needed);
/// returns the paths written.
pub fn write_all(audit: &Audit, out: &Path) -> Result<Vec<PathBuf>> {
    let thumbs = out.join(THUMBS_DIR);
    std::fs::create_dir_all(&thumbs).map_err(|e| Error::io(&thumbs, e))?;
    let mut written = Vec::new();

    let csv_path = out.join(DUPLICATES_CSV);
    write_atomic(&csv_path, &duplicates_csv(audit)?)?;
    written.push(csv_path);

    let sheets: Vec<&Group> = audit.groups.iter().take(SHEETS).collect();
    let encoded: Vec<Result<(usize, Vec<u8>)>> =
        sheets.par_iter().map(|group| contact_sheet(audit, group).map(|jpeg| (group.id, jpeg))).collect();
    let mut sheet_ids = Vec::new();
    for result in encoded {
        let (id, jpeg) = result?;
        let path = thumbs.join(sheet_name(id));
        write_atomic(&path, &jpeg)?;
        written.push(path);
        sheet_ids.push(id);
    }

    let md_path = out.join(AUDIT_MD);
    write_atomic(&md_path, markdown(audit, &sheet_ids).as_bytes())?;
    written.push(md_path);
    remove_stale_sheets(&thumbs, &sheet_ids)?;
    Ok(written)
}

/// Removes the contact sheets an earlier audit into the same folder left that this one did not
/// write (its groups changed): `audit.md` links only this audit's sheets.
fn remove_stale_sheets(thumbs: &Path, current: &[usize]) -> Result<()> {
    let keep: Vec<String> = current.iter().map(|&id| sheet_name(id)).collect();
    for entry in std::fs::read_dir(thumbs).map_err(|e| Error::io(thumbs, e))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.strip_prefix("group-").and_then(|rest| rest.strip_suffix(".jpg")).is_some_and(|id| id.parse::<usize>().is_ok());
        if ours && !keep.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(&entry.path(), e))?;
        }
    }
    Ok(())
}

fn sheet_name(id: usize) -> String {
    format!("group-{id}.jpg")
}

/// `group,kind,split,class,path`: one row per member of each group, by group id then path.
pub fn duplicates_csv(audit: &Audit) -> Result<Vec<u8>> {
    let csv_error = |e: csv::Error| Error::Report(format!("cannot write {DUPLICATES_CSV}: {e}"));
    let mut buffer = Vec::new();
    {
        let mut writer = csv::Writer::from_writer(&mut buffer);
        writer.write_record(CSV_HEADER).map_err(csv_error)?;
        let mut groups: Vec<&Group> = audit.groups.iter().collect();
        groups.sort_by_key(|g| g.id);
        for group in groups {
            let mut members: Vec<&super::AuditedFile> = group.members.iter().map(|&i| &audit.files[i]).collect();
            members.sort_by(|a, b| a.path.cmp(&b.path));
            for file in members {
                let id = group.id.to_string();
                writer
                    .write_record([id.as_str(), group.kind.as_str(), &file.split, &file.class, &file.path])
                    .map_err(csv_error)?;
            }
        }
        writer.flush().map_err(|e| Error::Report(format!("cannot write {DUPLICATES_CSV}: {e}")))?;
    }
    Ok(buffer)
}

/// The numbers of the audit as markdown: images per split and class, unreadable and skipped
/// files, duplicate groups. Printed by `brasa data audit` and heading `audit.md`.
pub fn summary_markdown(audit: &Audit) -> String {
    let summary = audit.summary();
    let mut text = format!("# Dataset audit: {}\n\n", audit.root.display());
    text.push_str(&counts_table(audit));
    let _ = writeln!(text, "\n- images decoded: {}", summary.images);
    let _ = writeln!(text, "- unreadable image files: {}", summary.unreadable);
    let _ = writeln!(text, "- skipped files (not images, or not in a class folder): {}", summary.skipped);
    if !audit.unlistable.is_empty() {
        let _ = writeln!(text, "- folders that could not be listed (their images not audited): {}", audit.unlistable.len());
    }
    let _ = writeln!(text, "- exact-duplicate groups: {} ({} files)", summary.exact_groups, summary.exact_files);
    let _ = writeln!(
        text,
        "- near-duplicate groups: {} ({} files; pHash distance ≤ {} of 256 bits)",
        summary.near_groups, summary.near_files, summary.threshold
    );
    let _ = writeln!(text, "- groups spanning more than one split (leakage): {}", summary.cross_split_groups);
    let _ =
        writeln!(text, "- groups spanning more than one class (label conflicts): {}", summary.label_conflict_groups);
    text
}

/// Rows: classes (union over splits); columns: splits, then the total. `–`: no such class folder.
fn counts_table(audit: &Audit) -> String {
    let splits: Vec<&String> = audit.counts.keys().collect();
    let mut classes: Vec<&String> = audit.counts.values().flat_map(|c| c.keys()).collect();
    classes.sort();
    classes.dedup();
    let mut text = String::from("| class |");
    splits.iter().for_each(|s| {
        let _ = write!(text, " {s} |");
    });
    text.push_str(" total |\n|---|");
    text.push_str(&"---:|".repeat(splits.len() + 1));
    text.push('\n');
    for class in &classes {
        let _ = write!(text, "| {class} |");
        let mut total = 0;
        for split in &splits {
            match audit.counts[*split].get(*class) {
                Some(n) => {
                    total += n;
                    let _ = write!(text, " {n} |");
                }
                None => text.push_str(" – |"),
            }
        }
        let _ = writeln!(text, " {total} |");
    }
    text.push_str("| **total** |");
    for split in &splits {
        let _ = write!(text, " {} |", audit.counts[*split].values().sum::<usize>());
    }
    let _ = writeln!(text, " {} |", audit.counts.values().flat_map(|c| c.values()).sum::<usize>());
    text
}

/// The whole `audit.md`; `sheets`: ids of the groups with a contact sheet in `thumbs/`.
pub fn markdown(audit: &Audit, sheets: &[usize]) -> String {
    let mut text = summary_markdown(audit);
    text.push_str("\nEvery file of every group, one row each: [duplicates.csv](duplicates.csv).\n");
    text.push_str(&threshold_section(audit.threshold));
    text.push_str(&largest_groups(audit));
    text.push_str(&sheets_section(audit, sheets));
    text.push_str(&problem_files(audit));
    text
}

fn threshold_section(threshold: u32) -> String {
    let mut text = String::from("\n## How duplicates are found\n\n");
    text.push_str(
        "- **exact**: the same decoded pixels and size (SHA-256 of width, height and RGB pixels, \
         first 128 bits), whatever the file format, compression or metadata.\n\
         - **near**: a 256-bit pHash — the picture in grey, shrunk to 32×32, the 16×16 lowest \
         frequencies of its DCT, one bit each for above or below their mean — compared by Hamming \
         distance (0–256 bits). Pictures within the threshold are linked, and linked pictures form a \
         group (so A–B and B–C group A, B and C); a group lists every file of its pictures, so a file \
         can be in an exact and in a near group.\n",
    );
    let _ = writeln!(
        text,
        "- threshold: **{threshold}** bits{}.",
        if threshold == NEAR_THRESHOLD { "" } else { " (set with --threshold)" }
    );
    text.push_str(&format!("\n{}\n", THRESHOLD_RATIONALE));
    text
}

/// Why [`NEAR_THRESHOLD`] has its value (kept in step with its doc comment).
const THRESHOLD_RATIONALE: &str = "Why 10 by default: on the brain-MRI dataset, re-encoding a picture \
as JPEG at quality 60 or resizing it moves its hash by at most 6 bits, and 99 % of 10 %-brighter copies \
stay within 7. Distinct files up to 12 bits apart looked, side by side, like the same slice re-encoded, \
resized or re-windowed; the first pair of different (adjacent) slices of one scan is 13 bits apart, and \
most pairs from 17 bits on are different slices — all dark with a bright head, they look alike. Crops are \
not caught: cutting 1 % off each side moves the hash by about 19 bits, as far as an adjacent slice, and \
a threshold that loose would group different slices of one patient. The usual 64-bit pHash is too \
coarse here: most distinct pictures within 2 bits of each other are different slices.";

fn largest_groups(audit: &Audit) -> String {
    if audit.groups.is_empty() {
        return "\n## Groups\n\nNo duplicates found.\n".into();
    }
    let mut text =
        format!("\n## Largest groups ({} of {})\n\n", audit.groups.len().min(TABLE_ROWS), audit.groups.len());
    text.push_str("| group | kind | files | splits | classes | first file |\n|---:|---|---:|---|---|---|\n");
    for group in audit.groups.iter().take(TABLE_ROWS) {
        let span = audit.span(group);
        let mark = |flag: bool| if flag { " ⚠" } else { "" };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {}{} | {}{} | `{}` |",
            group.id,
            group.kind.as_str(),
            group.members.len(),
            span.splits.join(", "),
            mark(span.is_cross_split()),
            span.classes.join(", "),
            mark(span.is_label_conflict()),
            audit.files[group.members[0]].path
        );
    }
    text.push_str("\n⚠: the group spans several splits (leakage) or several classes (conflicting labels).\n");
    text
}

fn sheets_section(audit: &Audit, sheets: &[usize]) -> String {
    if sheets.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n## Contact sheets of the largest groups\n");
    for &id in sheets {
        let Some(group) = audit.groups.iter().find(|g| g.id == id) else { continue };
        let _ = writeln!(
            text,
            "\n### Group {id}: {}, {} files\n\n![group {id}]({THUMBS_DIR}/{})\n",
            group.kind.as_str(),
            group.members.len(),
            sheet_name(id)
        );
        for (n, &member) in group.members.iter().take(SHEET_MEMBERS).enumerate() {
            let file = &audit.files[member];
            let _ = writeln!(text, "{}. `{}` ({}×{})", n + 1, file.path, file.size.0, file.size.1);
        }
        if group.members.len() > SHEET_MEMBERS {
            let _ = writeln!(text, "\n… and {} more (see duplicates.csv).", group.members.len() - SHEET_MEMBERS);
        }
    }
    text
}

fn problem_files(audit: &Audit) -> String {
    let mut text = String::new();
    if !audit.unreadable.is_empty() {
        text.push_str("\n## Unreadable image files\n\n");
        for file in &audit.unreadable {
            let _ = writeln!(text, "- `{}`: {}", file.path, file.error);
        }
    }
    if !audit.unlistable.is_empty() {
        text.push_str("\n## Folders that could not be listed\n\n");
        for folder in &audit.unlistable {
            let _ = writeln!(text, "- `{}`: {}", folder.path, folder.error);
        }
    }
    if !audit.skipped.is_empty() {
        text.push_str("\n## Skipped files\n\n");
        for path in audit.skipped.iter().take(SKIPPED_LISTED) {
            let _ = writeln!(text, "- `{path}`");
        }
        if audit.skipped.len() > SKIPPED_LISTED {
            let _ = writeln!(text, "- … and {} more", audit.skipped.len() - SKIPPED_LISTED);
        }
    }
    text
}

/// The first eight members of `group`, each fitted into a square cell, as a JPEG.
/// A member that can no longer be read is drawn as an empty grey cell.
pub fn contact_sheet(audit: &Audit, group: &Group) -> Result<Vec<u8>> {
    let members: Vec<usize> = group.members.iter().copied().take(SHEET_MEMBERS).collect();
    let columns = SHEET_COLUMNS.min(members.len()) as u32;
    let rows = members.len().div_ceil(SHEET_COLUMNS) as u32;
    let cell = THUMB + GAP;
    let mut sheet = RgbImage::from_pixel(columns * cell + GAP, rows * cell + GAP, Rgb([255, 255, 255]));
    for (k, &member) in members.iter().enumerate() {
        let (x, y) = ((k as u32 % columns) * cell + GAP, (k as u32 / columns) * cell + GAP);
        let cell_background = RgbImage::from_pixel(THUMB, THUMB, Rgb([128, 128, 128]));
        image::imageops::replace(&mut sheet, &cell_background, x as i64, y as i64);
        if let Ok(picture) = read_rgb(&audit.root.join(&audit.files[member].path)) {
            let thumb = fit(&picture);
            let (dx, dy) = ((THUMB - thumb.width()) / 2, (THUMB - thumb.height()) / 2);
            image::imageops::replace(&mut sheet, &thumb, (x + dx) as i64, (y + dy) as i64);
        }
    }
    let mut jpeg = Vec::new();
    sheet
        .write_with_encoder(JpegEncoder::new_with_quality(Cursor::new(&mut jpeg), 85))
        .map_err(|e| Error::Report(format!("contact sheet of group {}: {e}", group.id)))?;
    Ok(jpeg)
}

/// `picture` shrunk (or grown) to fit a `THUMB`×`THUMB` cell, aspect ratio kept.
fn fit(picture: &RgbImage) -> RgbImage {
    let (width, height) = picture.dimensions();
    let scale = THUMB as f64 / width.max(height).max(1) as f64;
    let to = ResizeTo::Exact {
        height: ((height as f64 * scale).round() as u32).clamp(1, THUMB),
        width: ((width as f64 * scale).round() as u32).clamp(1, THUMB),
    };
    resize::resize(picture, to, Interpolation::Bilinear)
}
