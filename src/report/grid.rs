//! Image galleries drawn from the original files as self-contained SVGs (thumbnails inlined as
//! JPEG data URIs): the reference notebook's `plot_predictions` grid of test images with their
//! true and predicted class, and the most confident mistakes.

use std::io::Cursor;

use base64::Engine;
use image::codecs::jpeg::JpegEncoder;
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::augment::{Interpolation, ResizeTo, resize};
use crate::data::images::read_rgb;
use crate::run_dir::PredictionRow;

const THUMB: u32 = 128;
const COLUMNS: usize = 5;
const LINE: u32 = 14;
const GREEN: &str = "#1a7f37";
const RED: &str = "#cf222e";

/// One captioned image of a gallery.
pub struct Tile<'a> {
    pub path: &'a str,
    /// Caption lines and their colours.
    pub caption: Vec<(String, &'static str)>,
}

/// Draws `tiles` in rows of five; `Err` names an image that could not be read (e.g. the dataset
/// moved since the run).
pub fn gallery(tiles: &[Tile]) -> Result<String, String> {
    let columns = COLUMNS.min(tiles.len().max(1));
    let lines = tiles.iter().map(|t| t.caption.len()).max().unwrap_or(0) as u32;
    let grid_rows = tiles.len().div_ceil(columns);
    let (cell_w, cell_h) = (THUMB + 44, THUMB + lines * LINE + 12);
    let (width, height) = (cell_w * columns as u32, cell_h * grid_rows as u32);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (k, tile) in tiles.iter().enumerate() {
        let data = thumbnail_jpeg(tile.path)?;
        let (x, y) = ((k % columns) as u32 * cell_w + 8, (k / columns) as u32 * cell_h + 4);
        svg.push_str(&format!(
            "<image x=\"{x}\" y=\"{y}\" width=\"{THUMB}\" height=\"{THUMB}\" href=\"data:image/jpeg;base64,{data}\"/>\n"
        ));
        for (i, (text, color)) in tile.caption.iter().enumerate() {
            let line_y = y + THUMB + LINE * (i as u32 + 1);
            svg.push_str(&format!("<text x=\"{x}\" y=\"{line_y}\" fill=\"{color}\">{}</text>\n", escape(text)));
        }
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// The image at `path` as a `THUMB`² JPEG, base64-encoded.
pub fn thumbnail_jpeg(path: &str) -> Result<String, String> {
    let image = read_rgb(path.as_ref()).map_err(|e| e.to_string())?;
    let thumb = resize::resize(&image, ResizeTo::Exact { height: THUMB, width: THUMB }, Interpolation::Bilinear);
    let mut jpeg = Vec::new();
    thumb.write_with_encoder(JpegEncoder::new_with_quality(Cursor::new(&mut jpeg), 85)).map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(&jpeg))
}

/// A seeded choice of `count` predictions with their true and predicted class.
pub fn prediction_grid(rows: &[PredictionRow], classes: &[String], count: usize, seed: u64) -> Result<String, String> {
    let count = count.min(rows.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked: Vec<usize> = sample(&mut rng, rows.len(), count).into_vec();
    picked.sort_unstable();
    let tiles: Vec<Tile> = picked
        .iter()
        .map(|&i| {
            let row = &rows[i];
            let color = if row.label == row.prediction { GREEN } else { RED };
            Tile {
                path: &row.path,
                caption: vec![
                    (format!("true: {}", classes[row.label]), "#222"),
                    (format!("pred: {}", classes[row.prediction]), color),
                ],
            }
        })
        .collect();
    gallery(&tiles)
}

/// The wrong predictions, most confident first (ties by file order), at most `count`.
pub fn confident_mistakes(rows: &[PredictionRow], count: usize) -> Vec<&PredictionRow> {
    let mut wrong: Vec<&PredictionRow> = rows.iter().filter(|r| r.label != r.prediction).collect();
    wrong.sort_by(|a, b| confidence(b).total_cmp(&confidence(a)));
    wrong.truncate(count);
    wrong
}

/// The probability the model gave its own prediction.
pub fn confidence(row: &PredictionRow) -> f64 {
    row.probabilities.get(row.prediction).copied().unwrap_or(f32::NAN) as f64
}

/// A gallery of the most confident mistakes, captioned with the probability of the wrong class
/// and of the true one.
pub fn mistakes_gallery(mistakes: &[&PredictionRow], classes: &[String]) -> Result<String, String> {
    let tiles: Vec<Tile> = mistakes
        .iter()
        .map(|row| Tile {
            path: &row.path,
            caption: vec![
                (format!("true: {} ({:.2})", classes[row.label], row.probabilities[row.label]), "#222"),
                (format!("pred: {} ({:.2})", classes[row.prediction], confidence(row)), RED),
            ],
        })
        .collect();
    gallery(&tiles)
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
