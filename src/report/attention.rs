//! Attention maps drawn over their images, as one self-contained SVG: for each image its
//! thumbnail and, beside it, the map (bilinearly upsampled, viridis-coloured) alpha-blended over
//! the grayscale thumbnail, captioned with the true and predicted class and the method.
//!
//! It only draws maps it is given ([`AttentionMap`], computed by `model::attention`, stored in `attention.json`); it never
//! runs a model. Each map is rescaled to [0, 1] by its own minimum and maximum here, at drawing
//! time ([`AttentionMap::normalized`]): colours compare places within an image, not images.

use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};

use super::grid::escape;
use crate::augment::{Interpolation, ResizeTo, resize};
use crate::data::images::read_rgb;
use crate::attention_map::{AttentionMap, CLS_ATTENTION, MEAN_ATTENTION, ROLLOUT};

const THUMB: u32 = 128;
const GAP: u32 = 4;
const COLUMNS: usize = 3;
const CAPTION: u32 = 44;
/// Opacity of the colour map over the grayscale image.
const ALPHA: f32 = 0.6;

/// One SVG of `(image file, true label, predicted label, map)` items, two `<image>` elements per
/// item (the thumbnail, then the overlay). `view` turns a decoded file into what the model saw
/// (the run's resize and centre crop), so the map lies over the right pixels. `Err` names an
/// image that could not be read or encoded, or a map whose values do not fill its grid.
pub fn overlay_svg(items: &[(&Path, &str, &str, &AttentionMap)], view: impl Fn(RgbImage) -> RgbImage) -> Result<String, String> {
    let columns = COLUMNS.min(items.len().max(1));
    let rows = items.len().div_ceil(columns);
    let (cell_w, cell_h) = (2 * THUMB + GAP + 20, THUMB + CAPTION + 8);
    let (width, height) = (cell_w * columns as u32, cell_h * rows as u32 + 18);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"8\" y=\"13\" fill=\"#57606a\">attention per image: least (dark) to most (yellow)</text>\n"
    );
    for (k, (path, truth, predicted, map)) in items.iter().enumerate() {
        if map.values.len() != map.height * map.width || map.values.is_empty() {
            return Err(format!(
                "the attention map of {} has {} values for a {}x{} grid",
                path.display(),
                map.values.len(),
                map.height,
                map.width
            ));
        }
        let image = view(read_rgb(path).map_err(|e| e.to_string())?);
        let thumb = resize::resize(&image, ResizeTo::Exact { height: THUMB, width: THUMB }, Interpolation::Bilinear);
        let overlay = blend(&thumb, &upsample(&map.normalized(), map.height, map.width, THUMB, THUMB));
        let (x, y) = ((k % columns) as u32 * cell_w + 8, (k / columns) as u32 * cell_h + 22);
        let color = if truth == predicted { "#1a7f37" } else { "#cf222e" };
        let method = match map.method.as_str() {
            ROLLOUT => "rollout",
            CLS_ATTENTION => "cls attention",
            MEAN_ATTENTION => "mean attention",
            other => other,
        };
        svg.push_str(&format!(
            "<image x=\"{x}\" y=\"{y}\" width=\"{THUMB}\" height=\"{THUMB}\" href=\"data:image/jpeg;base64,{}\"/>\n\
             <image x=\"{}\" y=\"{y}\" width=\"{THUMB}\" height=\"{THUMB}\" href=\"data:image/jpeg;base64,{}\"/>\n\
             <text x=\"{x}\" y=\"{}\">true: {}</text>\n<text x=\"{x}\" y=\"{}\" fill=\"{color}\">pred: {}</text>\n\
             <text x=\"{}\" y=\"{}\" fill=\"#57606a\">{} ({}x{})</text>\n",
            jpeg_base64(&thumb)?,
            x + THUMB + GAP,
            jpeg_base64(&overlay)?,
            y + THUMB + 14,
            escape(truth),
            y + THUMB + 28,
            escape(predicted),
            x + THUMB + GAP,
            y + THUMB + 14,
            escape(method),
            map.height,
            map.width,
        ));
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

fn jpeg_base64(image: &RgbImage) -> Result<String, String> {
    let mut jpeg = Vec::new();
    image.write_with_encoder(JpegEncoder::new_with_quality(Cursor::new(&mut jpeg), 85)).map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(&jpeg))
}

/// Bilinear upsampling of a row-major `height × width` grid to `out_h × out_w`, with pixel
/// centres aligned (PyTorch's `align_corners=False`; borders clamped), so each grid cell covers
/// its own patch of the image.
fn upsample(values: &[f32], height: usize, width: usize, out_h: u32, out_w: u32) -> Vec<f32> {
    let taps = |o: u32, out: u32, size: usize| {
        let src = ((o as f32 + 0.5) * size as f32 / out as f32 - 0.5).clamp(0.0, (size - 1) as f32);
        let low = src.floor() as usize;
        (low, (low + 1).min(size - 1), src - low as f32)
    };
    let mut out = Vec::with_capacity((out_h * out_w) as usize);
    for oy in 0..out_h {
        let (y0, y1, ty) = taps(oy, out_h, height);
        for ox in 0..out_w {
            let (x0, x1, tx) = taps(ox, out_w, width);
            let at = |y: usize, x: usize| values[y * width + x];
            let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
            let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
            out.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    out
}

/// `heat` (values in [0, 1], one per pixel) in viridis over the grayscale of `image`.
fn blend(image: &RgbImage, heat: &[f32]) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let [r, g, b] = image.get_pixel(x, y).0.map(f32::from);
        let gray = 0.299 * r + 0.587 * g + 0.114 * b;
        let t = heat[(y * image.width() + x) as usize].clamp(0.0, 1.0);
        let color = colorous::VIRIDIS.eval_continuous(t as f64);
        let mix = |c: u8| ((1.0 - ALPHA) * gray + ALPHA * c as f32).round().clamp(0.0, 255.0) as u8;
        Rgb([mix(color.r), mix(color.g), mix(color.b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_svg_with_two_images_per_item_and_escaped_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        RgbImage::from_fn(40, 30, |x, y| Rgb([(x * 6) as u8, (y * 8) as u8, 90])).save(&path).unwrap();
        let rollout = AttentionMap { height: 2, width: 2, values: vec![0.1, 0.2, 0.3, 0.4], method: ROLLOUT.into() };
        let cls = AttentionMap { height: 3, width: 2, values: vec![0.0, 0.1, 0.0, 0.5, 0.2, 0.2], method: CLS_ATTENTION.into() };
        let items = [(path.as_path(), "<b>&", "x", &rollout), (path.as_path(), "y", "y", &cls), (path.as_path(), "z", "<b>&", &rollout)];
        let svg = overlay_svg(&items, |i| i).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<image ").count(), 2 * items.len());
        assert_eq!(svg.matches("href=\"data:image/jpeg;base64,").count(), 2 * items.len());
        assert!(!svg.contains("<b>") && svg.matches("&lt;b&gt;&amp;").count() == 2, "labels escaped");
        assert!(svg.contains(">rollout (2x2)<") && svg.contains(">cls attention (3x2)<"));
        // every opened element closes: the SVG is well-formed as far as tags go
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());

        let broken = AttentionMap { values: vec![0.1], ..rollout.clone() };
        assert!(overlay_svg(&[(path.as_path(), "a", "a", &broken)], |i| i).unwrap_err().contains("1 values for a 2x2 grid"));
        let missing = dir.path().join("missing.png");
        assert!(overlay_svg(&[(missing.as_path(), "a", "a", &rollout)], |i| i).unwrap_err().contains("missing.png"));
    }

    #[test]
    fn upsampling_keeps_cell_values_at_their_centres_and_interpolates_between() {
        // 1x2 grid to 1x4: centres of the output pixels 0..3 map to -0.25, 0.25, 0.75, 1.25
        let out = upsample(&[0.0, 1.0], 1, 2, 1, 4);
        let expected = [0.0, 0.25, 0.75, 1.0];
        assert!(out.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{out:?}");
        let flat = upsample(&[0.5; 6], 2, 3, 7, 5);
        assert!(flat.iter().all(|v| (v - 0.5).abs() < 1e-6));
    }

    #[test]
    fn blending_colours_hot_spots_differently_from_cold_ones() {
        let gray = RgbImage::from_pixel(2, 1, Rgb([128, 128, 128]));
        let out = blend(&gray, &[0.0, 1.0]);
        let (cold, hot) = (out.get_pixel(0, 0).0, out.get_pixel(1, 0).0);
        assert!(cold[2] > cold[1], "viridis starts dark purple-blue: {cold:?}");
        assert!(hot[0] > cold[0] && hot[1] > cold[1], "and ends yellow: {hot:?}");
    }
}
