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

/// The most pixels an image may have: twice Pillow's `Image.MAX_IMAGE_PIXELS`, where Pillow
/// raises `DecompressionBombError`.
const MAX_PIXELS: u64 = 2 * 89_478_485;
/// The most memory one decode may take: the largest image Pillow reads, at 16 bits per channel
/// with alpha, and room for a conversion.
const MAX_DECODE_BYTES: u64 = MAX_PIXELS * 8 * 2;

/// Decodes the bytes of the image file at `path` (named in errors) as 8-bit RGB, its format
/// guessed from the bytes.
pub fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    let image_error = |message: String| Error::Image { path: path.to_path_buf(), message };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes));
    // as `ImageReader::open` does: the extension's format unless the bytes say otherwise
    if let Ok(format) = image::ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let mut reader = reader.with_guessed_format().map_err(|e| image_error(e.to_string()))?;
    // Pillow's limit (it refuses more than twice `Image.MAX_IMAGE_PIXELS`), not the image crate's
    // 512 MiB per decode, which refused a 10000x7000 16-bit RGBA PNG that Pillow reads
    let probe = image::ImageReader::with_format(std::io::Cursor::new(bytes), reader.format().unwrap_or(image::ImageFormat::Png));
    if let Ok((width, height)) = probe.into_dimensions()
        && width as u64 * height as u64 > MAX_PIXELS
    {
        return Err(image_error(format!("{width}x{height} is {} pixels, more than the {MAX_PIXELS} Pillow reads (a decompression bomb, or an image far larger than any model input)", width as u64 * height as u64)));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    // the JPEG decoder fills what a cut-off file lacks with grey and says nothing (Pillow
    // refuses such a file: "image file is truncated")
    if reader.format() == Some(image::ImageFormat::Jpeg) && bytes.starts_with(&[0xFF, 0xD8]) && !jpeg_reaches_its_end(bytes) {
        // without its end marker: cut off, unless every scan's data is there (the strict
        // decoder then decodes it whole, as Pillow does)
        let strict = zune_core::options::DecoderOptions::default().set_strict_mode(true);
        if let Err(e) = zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), strict).decode() {
            return Err(image_error(format!("truncated JPEG: its {} bytes end before the image does ({e})", bytes.len())));
        }
    }
    let image = reader.decode().map_err(|e| image_error(e.to_string()))?;
    Ok(image.into_rgb8())
}

/// Whether a JPEG's bytes reach its end-of-image marker (EOI), following the marker segments
/// by their lengths and each scan's entropy-coded data to the marker after it (inside it a
/// 0xFF byte is followed by 0x00, a restart marker or another 0xFF). Bytes after the EOI (some
/// cameras append data) do not matter.
fn jpeg_reaches_its_end(bytes: &[u8]) -> bool {
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    let restart = |marker: u8| (0xD0..=0xD7).contains(&marker);
    let mut i = 2; // after the start-of-image marker
    loop {
        // the next marker: 0xFF, any fill bytes 0xFF, then its code
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else { return false };
        i += 1;
        match marker {
            EOI => return true,
            0x00 | 0x01 => {}
            m if restart(m) => {}
            _ => {
                let Some(length) = bytes.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else { return false };
                if length < 2 || i + length > bytes.len() {
                    return false;
                }
                i += length;
                if marker == SOS {
                    // entropy-coded data, up to the next marker
                    loop {
                        while i < bytes.len() && bytes[i] != 0xFF {
                            i += 1;
                        }
                        match bytes.get(i + 1) {
                            None => return false,
                            Some(0x00) => i += 2,
                            Some(&m) if restart(m) => i += 2,
                            Some(0xFF) => i += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
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
    fn a_cut_off_jpeg_is_unreadable_as_in_pillow_and_one_with_bytes_after_its_end_is_not() {
        let noise = RgbImage::from_fn(128, 96, |x, y| image::Rgb([(x * 37 + y * 11) as u8, (x * y) as u8, (x ^ y) as u8 * 5]));
        let mut jpeg = Vec::new();
        noise.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        let path = Path::new("x.jpg");
        let whole = decode_bytes(path, &jpeg).unwrap();
        assert_eq!(whole.dimensions(), (128, 96));
        for cut in [jpeg.len() / 3, jpeg.len() / 2, jpeg.len() * 9 / 10] {
            let message = decode_bytes(path, &jpeg[..cut]).unwrap_err().to_string();
            assert!(message.contains("truncated JPEG"), "cut at {cut} of {}: {message}", jpeg.len());
        }
        // only the end marker missing: every scan's data is there, and Pillow reads it too
        assert_eq!(decode_bytes(path, &jpeg[..jpeg.len() - 2]).unwrap(), whole);
        let mut appended = jpeg.clone();
        appended.extend_from_slice(b"\xff\x00trailing maker data");
        assert_eq!(decode_bytes(path, &appended).unwrap(), whole);
        // not a JPEG at all: the decoder's own error, not a truncation
        assert!(!decode_bytes(path, b"not a jpeg").unwrap_err().to_string().contains("truncated"));
    }

    #[test]
    fn an_image_larger_than_pillow_reads_is_refused_from_its_header() {
        // a PNG's signature, header chunk and no image data: 13400x13400 is just past Pillow's limit
        let png = |width: u32, height: u32| {
            let mut chunk = b"IHDR".to_vec();
            chunk.extend_from_slice(&width.to_be_bytes());
            chunk.extend_from_slice(&height.to_be_bytes());
            chunk.extend_from_slice(&[8, 0, 0, 0, 0]);
            let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
            bytes.extend_from_slice(&13u32.to_be_bytes());
            bytes.extend_from_slice(&chunk);
            bytes.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
            for empty in [b"IDAT", b"IEND"] {
                bytes.extend_from_slice(&0u32.to_be_bytes());
                bytes.extend_from_slice(empty);
                bytes.extend_from_slice(&crc32fast::hash(empty).to_be_bytes());
            }
            bytes
        };
        let message = decode_bytes(Path::new("big.png"), &png(13400, 13400)).unwrap_err().to_string();
        assert!(message.contains("179560000 pixels, more than the 178956970 Pillow reads"), "{message}");
        // within the limit, the (missing) image data is what fails
        let message = decode_bytes(Path::new("ok.png"), &png(13300, 13300)).unwrap_err().to_string();
        assert!(!message.contains("Pillow"), "{message}");
    }

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
