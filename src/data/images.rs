//! Decoding: image files read as 8-bit RGB, and the recipes that turn a decoded image into each
//! form a run needs (the clean model input, the augmentation source); [`decode_all`] decodes a
//! list in parallel and keeps the forms in memory.
//!
//! A file that cannot be decoded is an error naming it, never a skipped item.

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use crate::dedup::Fingerprint;
use crate::augment::{Interpolation, ResizeTo, resize};
use crate::data::Item;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// What to do to a decoded image before keeping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    pub resize: Option<(ResizeTo, Interpolation)>,
    pub center_crop: Option<(u32, u32)>,
}

impl Recipe {
    /// `(width, height)` of the recipe's output for an image stored at `(width, height)`.
    pub fn output_size(&self, (width, height): (u32, u32)) -> (u32, u32) {
        if let Some((crop_height, crop_width)) = self.center_crop {
            return (crop_width, crop_height);
        }
        match self.resize {
            Some((to, _)) => {
                let (h, w) = to.output_size(height, width);
                (w, h)
            }
            None => (width, height),
        }
    }

    /// In words, e.g. "resize to 224x224 (bilinear), centre crop 224x224" or "as stored".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((to, interpolation)) = self.resize {
            let to = match to {
                ResizeTo::Exact { height, width } => format!("{height}x{width}"),
                ResizeTo::ShorterEdge(edge) => format!("shorter edge {edge}"),
            };
            parts.push(format!("resize to {to} ({})", format!("{interpolation:?}").to_lowercase()));
        }
        if let Some((height, width)) = self.center_crop {
            parts.push(format!("centre crop {height}x{width}"));
        }
        if parts.is_empty() { "as stored".into() } else { parts.join(", ") }
    }

    pub fn apply(&self, image: RgbImage) -> RgbImage {
        let image = match self.resize {
            Some((to, interpolation)) => resize::resize(&image, to, interpolation),
            None => image,
        };
        match self.center_crop {
            Some(size) => resize::center_crop(&image, size),
            None => image,
        }
    }
}

/// Decoded images, one list per recipe, in item order, and each file's original size and
/// fingerprint (for finding duplicates).
#[derive(Debug, Default)]
pub struct Decoded {
    pub per_recipe: Vec<Vec<RgbImage>>,
    /// `(width, height)` of each file as stored.
    pub original_sizes: Vec<(u32, u32)>,
    /// Of the image as decoded, before any recipe.
    pub fingerprints: Vec<Fingerprint>,
    /// The files that could not be read, in item order; the lists above hold the others only.
    pub unreadable: Vec<Unreadable>,
}

/// A file that cannot be read as an image: its index among the items decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub index: usize,
    pub path: std::path::PathBuf,
    pub message: String,
}

impl Unreadable {
    /// `error` as the unreadable item `index` when it says a file is not a readable image;
    /// any other error (a full disk writing the cache …) is given back, as it is not the file's.
    pub fn from_error(index: usize, error: Error) -> std::result::Result<Self, Error> {
        match error {
            // one line per file in lists and logs (decoders' messages may span several)
            Error::Image { path, message } => Ok(Self { index, path, message: message.split_whitespace().collect::<Vec<_>>().join(" ") }),
            other => Err(other),
        }
    }
}

/// Reads one image file as 8-bit RGB.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::Image { path: path.to_path_buf(), message: e.to_string() })?;
    decode_bytes(path, &bytes)
}

/// Decodes the bytes of the image file at `path` (named in errors) as 8-bit RGB, its format
/// guessed from the bytes.
pub fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    let image_error = |message: String| Error::Image { path: path.to_path_buf(), message };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes));
    // as `ImageReader::open` does: the extension's format unless the bytes say otherwise
    if let Ok(format) = image::ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let reader = reader.with_guessed_format().map_err(|e| image_error(e.to_string()))?;
    let image = reader.decode().map_err(|e| image_error(e.to_string()))?;
    Ok(image.into_rgb8())
}

/// Decodes `items` in parallel and applies each recipe to every image.
pub fn decode_all(items: &[Item], recipes: &[Recipe], progress: &Progress, what: &str) -> Result<Decoded> {
    let bar = progress.bar(items.len() as u64, what);
    type OneFile = (Vec<RgbImage>, (u32, u32), Fingerprint);
    let results: Vec<Result<OneFile>> = items
        .par_iter()
        .map(|item| {
            let image = read_rgb(&item.path)?;
            let size = image.dimensions();
            let fingerprint = crate::dedup::fingerprint(&image);
            let forms = recipes.iter().map(|recipe| recipe.apply(image.clone())).collect();
            bar.inc(1);
            Ok((forms, size, fingerprint))
        })
        .collect();
    bar.finish_and_clear();

    let mut decoded = Decoded { per_recipe: vec![Vec::with_capacity(items.len()); recipes.len()], ..Default::default() };
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok((forms, size, fingerprint)) => {
                for (list, form) in decoded.per_recipe.iter_mut().zip(forms) {
                    list.push(form);
                }
                decoded.original_sizes.push(size);
                decoded.fingerprints.push(fingerprint);
            }
            Err(e) => decoded.unreadable.push(Unreadable::from_error(index, e)?),
        }
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_are_listed_by_index_and_the_others_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.png");
        RgbImage::from_pixel(8, 6, image::Rgb([1, 2, 3])).save(&good).unwrap();
        let bad = dir.path().join("bad.jpg");
        std::fs::write(&bad, b"not a jpeg").unwrap();
        let items = vec![Item { path: good.clone(), label: 0 }, Item { path: bad.clone(), label: 1 }];
        let recipe = Recipe { resize: Some((ResizeTo::Exact { height: 4, width: 4 }, Interpolation::Bilinear)), center_crop: None };
        let decoded = decode_all(&items, &[recipe], &Progress::hidden(), "test").unwrap();
        assert_eq!(decoded.per_recipe[0].len(), 1, "only the readable file");
        assert_eq!(decoded.unreadable.len(), 1);
        assert_eq!((decoded.unreadable[0].index, &decoded.unreadable[0].path), (1, &bad));

        let decoded = decode_all(&items[..1], &[recipe, Recipe { resize: None, center_crop: None }], &Progress::hidden(), "test").unwrap();
        assert_eq!(decoded.per_recipe[0][0].dimensions(), (4, 4));
        assert_eq!(decoded.per_recipe[1][0].dimensions(), (8, 6));
        assert_eq!(decoded.original_sizes, [(8, 6)]);
    }
}
