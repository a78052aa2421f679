//! `brasa data audit` and the `brasa::audit` library on a small image folder the tests write:
//! the same picture as PNG with and without metadata and as a JPEG's lossless PNG (exact), a
//! re-encoded smaller JPEG (near), copies across splits and classes, a corrupt file, a non-image.

mod common;

use std::io::Cursor;
use std::path::Path;

use brasa::audit::{self, Kind, NEAR_THRESHOLD};
use brasa::progress::Progress;
use common::brasa::TestDir;
use common::images::waves;
use common::{csv_header, csv_rows};
use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};

fn save_png(image: &RgbImage, path: &Path, compression: CompressionType) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_with_encoder(PngEncoder::new_with_quality(Cursor::new(&mut bytes), compression, FilterType::Adaptive))
        .unwrap();
    write(path, &bytes);
    bytes
}

fn jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_with_encoder(JpegEncoder::new_with_quality(Cursor::new(&mut bytes), quality)).unwrap();
    bytes
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// `png` with a `tEXt` chunk inserted after its header chunk: other bytes, the same pixels.
fn with_text_chunk(png: &[u8], keyword: &str, text: &str) -> Vec<u8> {
    let header_end = 8 + 4 + 4 + 13 + 4; // signature, then IHDR's length, type, data and CRC
    let mut chunk = b"tEXt".to_vec();
    chunk.extend_from_slice(keyword.as_bytes());
    chunk.push(0);
    chunk.extend_from_slice(text.as_bytes());
    let mut out = png[..header_end].to_vec();
    out.extend_from_slice(&((chunk.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    out.extend_from_slice(&png[header_end..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The test dataset, at `data` in a new folder.
fn with_dataset() -> TestDir {
    let dir = TestDir::new();
    let root = dir.path().join("data");
    let train = root.join("Training");
    let test = root.join("Testing");

    // exact: the same pixels as PNG, and as PNG with other compression and a text chunk
    let p1 = waves(1, 96, 80);
    save_png(&p1, &train.join("cat/p1.png"), CompressionType::Fast);
    let mut other = Vec::new();
    p1.write_with_encoder(PngEncoder::new_with_quality(
        Cursor::new(&mut other),
        CompressionType::Best,
        FilterType::Paeth,
    ))
    .unwrap();
    write(&train.join("cat/p1_meta.png"), &with_text_chunk(&other, "Comment", "re-saved by a scanner"));

    // near: a JPEG, the same bytes again (exact), and a smaller re-encoding at lower quality
    let p2 = waves(2, 128, 128);
    write(&train.join("dog/p2.jpg"), &jpeg(&p2, 95));
    write(&train.join("dog/p2_copy.jpg"), &jpeg(&p2, 95));
    let smaller = image::imageops::resize(&p2, 115, 115, image::imageops::FilterType::Triangle);
    write(&train.join("dog/p2_small.jpg"), &jpeg(&smaller, 70));

    // exact across splits, and across classes
    let p3 = waves(3, 90, 90);
    save_png(&p3, &train.join("owl/p3.png"), CompressionType::Default);
    save_png(&p3, &test.join("owl/p3.png"), CompressionType::Best);
    let p4 = waves(4, 100, 70);
    save_png(&p4, &train.join("cat/p4.png"), CompressionType::Default);
    save_png(&p4, &train.join("dog/p4.png"), CompressionType::Default);

    // exact: a JPEG and the lossless PNG of its decoded pixels
    let p5 = jpeg(&waves(5, 64, 64), 80);
    write(&train.join("dog/p5.jpg"), &p5);
    let decoded = image::load_from_memory(&p5).unwrap().into_rgb8();
    save_png(&decoded, &train.join("dog/p5_from_jpeg.png"), CompressionType::Default);

    // unrelated pictures, a corrupt JPEG, a file that is not an image
    save_png(&waves(6, 96, 96), &train.join("cat/u1.png"), CompressionType::Default);
    write(&train.join("dog/u2.jpg"), &jpeg(&waves(7, 96, 96), 90));
    save_png(&waves(8, 96, 96), &test.join("cat/u3.png"), CompressionType::Default);
    write(&train.join("owl/broken.jpg"), b"\xff\xd8\xff\xe0 this is not really a jpeg");
    write(&train.join("cat/notes.txt"), b"scanned 2019");
    dir
}

/// The CSV rows the test dataset must give, in order.
const EXPECTED_ROWS: [[&str; 5]; 13] = [
    ["1", "near", "Training", "dog", "Training/dog/p2.jpg"],
    ["1", "near", "Training", "dog", "Training/dog/p2_copy.jpg"],
    ["1", "near", "Training", "dog", "Training/dog/p2_small.jpg"],
    ["2", "exact", "Testing", "owl", "Testing/owl/p3.png"],
    ["2", "exact", "Training", "owl", "Training/owl/p3.png"],
    ["3", "exact", "Training", "cat", "Training/cat/p1.png"],
    ["3", "exact", "Training", "cat", "Training/cat/p1_meta.png"],
    ["4", "exact", "Training", "cat", "Training/cat/p4.png"],
    ["4", "exact", "Training", "dog", "Training/dog/p4.png"],
    ["5", "exact", "Training", "dog", "Training/dog/p2.jpg"],
    ["5", "exact", "Training", "dog", "Training/dog/p2_copy.jpg"],
    ["6", "exact", "Training", "dog", "Training/dog/p5.jpg"],
    ["6", "exact", "Training", "dog", "Training/dog/p5_from_jpeg.png"],
];

fn members(found: &audit::Audit, group: &audit::Group) -> Vec<String> {
    group.members.iter().map(|&i| found.files[i].path.clone()).collect()
}

#[test]
fn library_finds_exact_and_near_groups_leakage_and_conflicts() {
    let dir = with_dataset();
    let found = audit::audit(&dir.path().join("data"), NEAR_THRESHOLD, &Progress::hidden()).unwrap();

    let groups: Vec<(usize, Kind, Vec<String>)> =
        found.groups.iter().map(|g| (g.id, g.kind, members(&found, g))).collect();
    let expected: Vec<(usize, Kind, Vec<String>)> = EXPECTED_ROWS
        .chunk_by(|a, b| a[0] == b[0])
        .map(|rows| {
            let kind = if rows[0][1] == "exact" { Kind::Exact } else { Kind::Near };
            (rows[0][0].parse().unwrap(), kind, rows.iter().map(|r| r[4].to_string()).collect())
        })
        .collect();
    assert_eq!(groups, expected);

    // the re-encoded copy is near, not exact
    let file = |path: &str| found.files.iter().find(|f| f.path == path).unwrap();
    let (original, small) = (file("Training/dog/p2.jpg"), file("Training/dog/p2_small.jpg"));
    assert_ne!(original.fingerprint.exact, small.fingerprint.exact);
    let d = original.fingerprint.perceptual.distance(&small.fingerprint.perceptual);
    assert!(d <= NEAR_THRESHOLD, "distance {d}");

    let spans: Vec<(bool, bool)> = found
        .groups
        .iter()
        .map(|g| {
            let span = found.span(g);
            (span.is_cross_split(), span.is_label_conflict())
        })
        .collect();
    assert_eq!(spans, [(false, false), (true, false), (false, false), (false, true), (false, false), (false, false)]);

    assert_eq!(found.unreadable.len(), 1);
    assert_eq!(found.unreadable[0].path, "Training/owl/broken.jpg");
    assert!(!found.unreadable[0].error.is_empty());
    assert_eq!(found.skipped, ["Training/cat/notes.txt"]);

    let summary = found.summary();
    assert_eq!(summary.images, 14);
    assert_eq!((summary.exact_groups, summary.exact_files), (5, 10));
    assert_eq!((summary.near_groups, summary.near_files), (1, 3));
    assert_eq!((summary.cross_split_groups, summary.label_conflict_groups), (1, 1));
    assert_eq!((summary.unreadable, summary.skipped), (1, 1));
    assert_eq!(summary.counts["Training"]["cat"], 4);
    assert_eq!(summary.counts["Training"]["owl"], 1, "the broken file is not counted");
    assert_eq!(summary.counts["Testing"]["owl"], 1);
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["cross_split_groups"], 1);

    // the test picture with a copy in Training leaks; the unrelated test picture does not
    let leaked =
        audit::leaked(&found.groups, |i| found.files[i].split == "Training", |i| found.files[i].split == "Testing");
    let leaked: Vec<&str> = leaked.iter().map(|&i| found.files[i].path.as_str()).collect();
    assert_eq!(leaked, ["Testing/owl/p3.png"]);
}

#[test]
fn cli_writes_csv_markdown_and_contact_sheets() {
    let dir = with_dataset();
    let printed = dir.brasa(["data", "audit", "data", "--out", "audit-out", "--quiet"]).succeeds().stdout;
    let out = dir.path().join("audit-out");
    assert_eq!(csv_header(&out.join("duplicates.csv")), ["group", "kind", "split", "class", "path"]);
    let rows = csv_rows(&out.join("duplicates.csv"));
    assert_eq!(rows, EXPECTED_ROWS.map(|row| row.map(String::from)));
    for id in 1..=6 {
        let sheet = out.join(format!("thumbs/group-{id}.jpg"));
        assert!(image::open(&sheet).is_ok(), "{} is a JPEG", sheet.display());
    }
    let markdown = std::fs::read_to_string(out.join("audit.md")).unwrap();
    for expected in [
        "exact-duplicate groups: 5 (10 files)",
        "near-duplicate groups: 1 (3 files",
        "more than one split (leakage): 1",
        "(label conflicts): 1",
        "unreadable image files: 1",
        "](thumbs/group-1.jpg)",
        "`Training/owl/broken.jpg`",
        "`Training/cat/notes.txt`",
        &format!("threshold: **{NEAR_THRESHOLD}** bits"),
    ] {
        assert!(markdown.contains(expected), "audit.md lacks {expected:?}:\n{markdown}");
    }
    assert!(printed.contains("exact-duplicate groups: 5 (10 files)"), "{printed}");
}

#[test]
fn a_folder_it_cannot_list_is_a_finding_and_a_second_audit_drops_stale_sheets() {
    let dir = with_dataset();
    dir.brasa(["data", "audit", "data", "--out", "audit-out", "--quiet"]).succeeds();
    let out = dir.path().join("audit-out");
    assert!(out.join("thumbs/group-6.jpg").exists());

    // one exact group fewer, and a link in a class folder back to that folder
    let train = dir.path().join("data/Training");
    std::fs::remove_file(train.join("dog/p5_from_jpeg.png")).unwrap();
    std::os::unix::fs::symlink(".", train.join("cat/again")).unwrap();
    let printed = dir.brasa(["data", "audit", "data", "--out", "audit-out", "--quiet"]).succeeds().stdout;
    assert!(printed.contains("folders that could not be listed (their images not audited): 1"), "{printed}");
    let markdown = std::fs::read_to_string(out.join("audit.md")).unwrap();
    assert!(markdown.contains("## Folders that could not be listed"), "{markdown}");
    assert!(markdown.contains("`Training/cat/again`: a link back to its ancestor"), "{markdown}");
    let sheets = std::fs::read_dir(out.join("thumbs")).unwrap().count();
    let groups = csv_rows(&out.join("duplicates.csv")).iter().map(|row| row[0].clone()).collect::<std::collections::BTreeSet<_>>();
    assert_eq!((sheets, groups.len()), (5, 5));
    for id in &groups {
        assert!(markdown.contains(&format!("](thumbs/group-{id}.jpg)")), "{markdown}");
    }

    // training data must be listed whole: the same loop is an error naming the folder
    let err = brasa::data::folder::scan(&train, &["cat".into(), "dog".into(), "owl".into()], true).unwrap().whole().unwrap_err();
    assert!(err.to_string().contains("cannot list") && err.to_string().contains("again"), "{err}");
}

#[test]
fn cli_prints_the_summary_without_out() {
    let dir = with_dataset();
    let printed = dir.brasa(["data", "audit", "data", "--quiet"]).succeeds().stdout;
    for expected in [
        "| owl | 1 | 1 | 2 |",
        "| **total** | 2 | 12 | 14 |",
        "near-duplicate groups: 1 (3 files",
        "label conflicts): 1",
    ] {
        assert!(printed.contains(expected), "stdout lacks {expected:?}:\n{printed}");
    }
    assert!(!dir.path().join("duplicates.csv").exists());
}

#[test]
fn cli_fails_on_a_missing_or_flat_root() {
    let dir = TestDir::new();
    let message = dir.brasa(["data", "audit", "no-such-folder"]).fails().stderr;
    assert!(message.contains("no-such-folder") && message.contains("does not exist"), "{message}");

    write(&dir.path().join("flat/1.png"), b"x");
    dir.brasa(["data", "audit", "flat"]).stderr_contains("no split folders").fails();
}
