//! Fingerprints of a decoded picture: an exact hash of its pixels and a perceptual hash that
//! survives re-encoding, resizing and changes of brightness (not crops: see [`NEAR_THRESHOLD`]).
//!
//! Works on images already decoded (`RgbImage`), so the run pipeline can fingerprint what it has
//! in memory; this module never reads a file.

use std::sync::LazyLock;

use image::RgbImage;
use image_hasher::{HashAlg, Hasher, HasherConfig};
use sha2::{Digest, Sha256};

/// Bits in a perceptual hash.
pub const PHASH_BITS: u32 = 256;

/// The largest Hamming distance between two perceptual hashes ([`Phash`], 256 bits) that still
/// counts as the same picture ("near duplicate").
///
/// Measured on the brain-MRI dataset (3264 JPEGs): re-encoding a picture as JPEG at quality 60,
/// resizing it to 75 % or to 256×256 moves its hash by at most 6 bits, and 99 % of 10 %-brighter
/// copies stay within 7. Every pair of distinct files at 9–12 bits (39 pairs) and samples below
/// looked, side by side, like the same slice re-encoded, resized or re-windowed; the first pair of
/// *different* (adjacent) slices of one scan is 13 bits apart, and most pairs from 17 bits on are
/// different slices. 10 keeps a margin below 13. The result is stable around it: 30 near groups
/// at 6 bits, 39 at 10, 46 at 16, then 114 at 24 as slices start to chain.
///
/// What it does not catch: crops. Cutting 1 % off each side already moves the hash by ~19 bits
/// (the median on this dataset), as far as an adjacent slice; a threshold loose enough for crops
/// would link different slices of one patient, so cropped copies are left out on purpose.
pub const NEAR_THRESHOLD: u32 = 10;

/// A 256-bit pHash: the picture in grey, shrunk to 32×32 (Lanczos3), the 16×16 lowest
/// frequencies of its DCT, one bit per coefficient for above or below their mean (Krawetz's
/// pHash at 16×16, `image_hasher`'s `Mean` with DCT preprocessing).
///
/// 64 bits (the usual 8×8 pHash) are too few for MRI slices: on the brain-MRI dataset most pairs
/// of distinct pictures within 2 bits of each other, and about one in ten at 0, are different
/// slices; the 16×16 block sees enough detail to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Phash(pub [u64; 4]);

impl Phash {
    /// Hamming distance (0..=256).
    pub fn distance(&self, other: &Self) -> u32 {
        self.0.iter().zip(other.0).map(|(a, b)| (a ^ b).count_ones()).sum()
    }
}

/// The two hashes of one decoded picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// The first 128 bits of SHA-256 over the width, height and RGB pixels: equal exactly when
    /// the decoded pictures are equal, whatever the file format, compression or metadata.
    pub exact: u128,
    /// Compare with [`Phash::distance`] against [`NEAR_THRESHOLD`].
    pub perceptual: Phash,
}

/// Both hashes of `image`.
pub fn fingerprint(image: &RgbImage) -> Fingerprint {
    Fingerprint { exact: exact_hash(image), perceptual: perceptual_hash(image) }
}

/// Whether two fingerprints are near duplicates under `threshold` (inclusive).
pub fn is_near(a: &Fingerprint, b: &Fingerprint, threshold: u32) -> bool {
    a.perceptual.distance(&b.perceptual) <= threshold
}

fn exact_hash(image: &RgbImage) -> u128 {
    let mut hasher = Sha256::new();
    // the size is hashed too: a 2×3 and a 3×2 picture can hold the same bytes
    hasher.update(image.width().to_le_bytes());
    hasher.update(image.height().to_le_bytes());
    hasher.update(image.as_raw());
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

static PHASH: LazyLock<Hasher<[u8; 32]>> = LazyLock::new(|| {
    HasherConfig::with_bytes_type::<[u8; 32]>().hash_size(16, 16).hash_alg(HashAlg::Mean).preproc_dct().to_hasher()
});

fn perceptual_hash(image: &RgbImage) -> Phash {
    let hash = PHASH.hash_image(image);
    let mut words = [0u64; 4];
    for (word, bytes) in words.iter_mut().zip(hash.as_bytes().chunks_exact(8)) {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(bytes);
        *word = u64::from_le_bytes(chunk);
    }
    Phash(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dark picture with a bright off-centre blob and some texture, like an MRI slice.
    fn slice(width: u32, height: u32, shift: f32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let (u, v) = (x as f32 / width as f32 - 0.45 - shift, y as f32 / height as f32 - 0.5);
            let inside = u * u / 0.12 + v * v / 0.16 < 1.0;
            let texture = ((u * 40.0).sin() * (v * 25.0).cos() * 40.0) as i32;
            let value = if inside { (150 + texture).clamp(0, 255) as u8 } else { 8 };
            image::Rgb([value, value, value])
        })
    }

    #[test]
    fn exact_hash_depends_on_pixels_and_size() {
        let a = slice(64, 48, 0.0);
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        let mut b = a.clone();
        b.put_pixel(3, 3, image::Rgb([9, 8, 8]));
        assert_ne!(fingerprint(&a).exact, fingerprint(&b).exact);
        let flat = |w, h| RgbImage::from_pixel(w, h, image::Rgb([5, 5, 5]));
        assert_ne!(fingerprint(&flat(2, 3)).exact, fingerprint(&flat(3, 2)).exact);
    }

    #[test]
    fn resized_copy_is_near_and_another_picture_is_not() {
        let a = slice(128, 128, 0.0);
        let resized = image::imageops::resize(&a, 100, 100, image::imageops::FilterType::Triangle);
        let near = fingerprint(&a).perceptual.distance(&fingerprint(&resized).perceptual);
        assert!(near <= NEAR_THRESHOLD, "resized copy at distance {near}");
        let other = slice(128, 128, 0.15);
        let far = fingerprint(&a).perceptual.distance(&fingerprint(&other).perceptual);
        assert!(far > NEAR_THRESHOLD, "another picture at distance {far}");
    }

    #[test]
    fn hamming_threshold_is_inclusive() {
        let with_bits = |exact: u128, bits: u32| {
            // spread the set bits over the words: distance counts all four
            let mut words = [0u64; 4];
            (0..bits).for_each(|bit| words[bit as usize % 4] |= 1 << (bit / 4));
            Fingerprint { exact, perceptual: Phash(words) }
        };
        let zero = with_bits(1, 0);
        let at = with_bits(2, NEAR_THRESHOLD);
        let past = with_bits(3, NEAR_THRESHOLD + 1);
        assert_eq!(zero.perceptual.distance(&at.perceptual), NEAR_THRESHOLD);
        assert!(is_near(&zero, &at, NEAR_THRESHOLD));
        assert!(!is_near(&zero, &past, NEAR_THRESHOLD));
        assert!(is_near(&zero, &past, NEAR_THRESHOLD + 1));
        assert_eq!(Phash([0; 4]).distance(&Phash([u64::MAX; 4])), PHASH_BITS);
    }
}
