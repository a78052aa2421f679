//! The pictures of the report: the test prediction grid, the most confident mistakes, attention
//! maps over test images, and contact sheets of the largest duplicate groups. Each is drawn from
//! the original image files; one that cannot be drawn becomes a note, never a failed report.

use std::path::Path;

use super::{Chart, attention, grid, leakage};
use crate::attention_map::{AttentionMap, MEAN_ATTENTION, ROLLOUT};
use crate::error::Result;
use crate::run_dir::{self, DuplicateRow, Meta, PredictionRow, RunDir};

/// Duplicate groups drawn in the audit section, and files shown per group.
const SHEET_GROUPS: usize = 4;
const SHEET_MEMBERS: usize = 5;

/// A picture, or why it is missing.
pub type Drawn = (Option<Chart>, Option<String>);

/// The galleries of the test predictions.
#[derive(Default)]
pub struct TestGalleries {
    pub grid: Drawn,
    pub mistakes: Drawn,
}

/// The prediction grid and the most confident mistakes among `predictions` (the test part).
pub fn test_galleries(predictions: &[PredictionRow], meta: &Meta) -> TestGalleries {
    let classes = &meta.classes;
    let mut found = TestGalleries::default();
    if meta.report.prediction_grid > 0 {
        found.grid = match grid::prediction_grid(predictions, classes, meta.report.prediction_grid, meta.seed) {
            Ok(svg) => (Some(Chart { title: "Test images: true and predicted class".into(), file: run_dir::chart("predictions_test"), svg }), None),
            Err(why) => (None, Some(format!("the prediction grid could not be drawn: {why}"))),
        };
    }
    if meta.report.mistakes > 0 {
        let wrong = grid::confident_mistakes(predictions, meta.report.mistakes);
        found.mistakes = if wrong.is_empty() {
            (None, Some("no test image is misclassified.".to_string()))
        } else {
            match grid::mistakes_gallery(&wrong, classes) {
                Ok(svg) => (Some(Chart { title: "Most confident mistakes (test)".into(), file: run_dir::chart("mistakes_test"), svg }), None),
                Err(why) => (None, Some(format!("the gallery could not be drawn: {why}"))),
            }
        };
    }
    found
}

/// Contact sheets of the largest duplicate groups, from the original files.
pub fn duplicate_sheet(rows: &[DuplicateRow], summary: &leakage::AuditSummary, data_root: &Path) -> Drawn {
    let paths: Vec<String> = rows.iter().map(|r| data_root.join(&r.path).display().to_string()).collect();
    let mut tiles = Vec::new();
    for line in summary.largest.iter().take(SHEET_GROUPS) {
        // one file of each part first, so a leak shows as train and test side by side
        let all: Vec<(&DuplicateRow, &String)> = rows.iter().zip(&paths).filter(|(r, _)| r.group == line.group).collect();
        let mut shown: Vec<usize> = Vec::new();
        for (i, (r, _)) in all.iter().enumerate() {
            if !shown.iter().any(|&j| all[j].0.split == r.split) {
                shown.push(i);
            }
        }
        shown.extend((0..all.len()).filter(|i| !shown.contains(i)).collect::<Vec<_>>());
        shown.truncate(SHEET_MEMBERS);
        shown.sort_unstable();
        tiles.extend(shown.into_iter().map(|i| all[i]).map(|(r, path)| grid::Tile {
            path,
            caption: vec![(format!("group {} ({})", r.group, r.kind), "#222"), (format!("{} · {}", r.split, r.class), "#57606a")],
        }));
    }
    if tiles.is_empty() {
        return (None, None);
    }
    match grid::gallery(&tiles) {
        Ok(svg) => (Some(Chart { title: "The largest duplicate groups".into(), file: run_dir::chart("duplicates"), svg }), None),
        Err(why) => (None, Some(format!("the duplicate groups could not be drawn: {why}"))),
    }
}

/// The attention maps of `attention.json` over what the model saw (the run's resize and centre
/// crop); nothing for a run without them.
pub fn attention_maps(run: &RunDir, meta: &Meta) -> Result<Drawn> {
    let Some(entries) = run.read_attention()? else { return Ok((None, None)) };
    let items: Vec<(&Path, &str, &str, &AttentionMap)> =
        entries.iter().map(|e| (Path::new(&e.path), e.label.as_str(), e.prediction.as_str(), &e.map)).collect();
    let recipe = meta.preprocess.as_ref().map(|p| p.recipe);
    let view = |image: image::RgbImage| match &recipe {
        Some(recipe) => recipe.apply(image),
        None => image,
    };
    Ok(match attention::overlay_svg(&items, view) {
        Ok(svg) => {
            let method = match entries.first().map(|e| e.map.method.as_str()) {
                Some(ROLLOUT) => "attention rollout",
                Some(MEAN_ATTENTION) => "last-layer attention each token receives",
                _ => "last-stage cls attention",
            };
            (Some(Chart { title: format!("Test images with their {method}"), file: run_dir::chart("attention_test"), svg }), None)
        }
        Err(why) => (None, Some(format!("the attention maps could not be drawn: {why}"))),
    })
}
