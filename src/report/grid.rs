//! The reference notebook's `plot_predictions`: a grid of test images, each captioned with its
//! true and predicted class, drawn from the original files as one self-contained SVG.

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
const CAPTION: u32 = 36;

/// A seeded choice of `count` predictions drawn as a grid; `Err` names an image that could not
/// be read (e.g. the dataset moved since the run).
pub fn prediction_grid(rows: &[PredictionRow], classes: &[String], count: usize, seed: u64) -> Result<String, String> {
    let count = count.min(rows.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked: Vec<usize> = sample(&mut rng, rows.len(), count).into_vec();
    picked.sort_unstable();
    let columns = COLUMNS.min(count.max(1));
    let grid_rows = count.div_ceil(columns);
    let (cell_w, cell_h) = (THUMB + 44, THUMB + CAPTION + 8);
    let (width, height) = (cell_w * columns as u32, cell_h * grid_rows as u32);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (k, &index) in picked.iter().enumerate() {
        let row = &rows[index];
        let image = read_rgb(row.path.as_ref()).map_err(|e| e.to_string())?;
        let thumb = resize::resize(&image, ResizeTo::Exact { height: THUMB, width: THUMB }, Interpolation::Bilinear);
        let mut jpeg = Vec::new();
        thumb.write_with_encoder(JpegEncoder::new_with_quality(Cursor::new(&mut jpeg), 85)).map_err(|e| e.to_string())?;
        let data = base64::engine::general_purpose::STANDARD.encode(&jpeg);
        let (x, y) = ((k % columns) as u32 * cell_w + 8, (k / columns) as u32 * cell_h + 4);
        let correct = row.label == row.prediction;
        let color = if correct { "#1a7f37" } else { "#cf222e" };
        svg.push_str(&format!(
            "<image x=\"{x}\" y=\"{y}\" width=\"{THUMB}\" height=\"{THUMB}\" href=\"data:image/jpeg;base64,{data}\"/>\n\
             <text x=\"{x}\" y=\"{}\">true: {}</text>\n<text x=\"{x}\" y=\"{}\" fill=\"{color}\">pred: {}</text>\n",
            y + THUMB + 14,
            escape(&classes[row.label]),
            y + THUMB + 28,
            escape(&classes[row.prediction]),
        ));
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
