//! Synthetic pictures for the tests, all from one small deterministic generator ([`Rng`]), so
//! every machine writes the same files and no test needs a dataset.

use std::f32::consts::TAU;
use std::path::Path;

use image::{Rgb, RgbImage};

/// The classes of the image folders written here, in label order.
pub const CLASSES: [&str; 3] = ["cat", "dog", "owl"];

/// Knuth's MMIX linear congruential generator: a few lines, no dependency, the same numbers
/// everywhere. Good enough to make pictures that differ; not for statistics.
pub struct Rng(u64);

impl Rng {
    const MULTIPLIER: u64 = 6364136223846793005;
    const INCREMENT: u64 = 1442695040888963407;

    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(Self::MULTIPLIER).wrapping_add(Self::INCREMENT))
    }

    /// The next 31 random bits (the state's high bits: an LCG's low bits are weak).
    fn next_bits(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(Self::MULTIPLIER).wrapping_add(Self::INCREMENT);
        (self.0 >> 33) as u32
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        self.next_bits() as f32 / (1u64 << 31) as f32
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u32) -> u32 {
        self.next_bits() % n
    }
}

/// Writes `<root>/{train,test}/<class>/<class>_NNN.png`, `per_class` pictures per class and split,
/// each made by `picture(label, index within its class and split)`.
fn write_folder(root: &Path, train_per_class: usize, test_per_class: usize, mut picture: impl FnMut(usize, usize) -> RgbImage) {
    for (split, count) in [("train", train_per_class), ("test", test_per_class)] {
        for (label, class) in CLASSES.iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..count {
                picture(label, i).save(dir.join(format!("{class}_{i:03}.png"))).unwrap();
            }
        }
    }
}

/// An image folder (see [`write_folder`]) of pictures whose class shows in their colour and
/// stripe direction, so a model learns them in a few steps. `size` px high, `size` to `size + 2`
/// px wide. Being alike, a class's pictures are near duplicates of each other.
pub fn striped_folder(root: &Path, train_per_class: usize, test_per_class: usize, size: u32) {
    write_folder(root, train_per_class, test_per_class, |label, i| {
        RgbImage::from_fn(size + (i as u32 % 3), size, |x, y| {
            let stripe = match label {
                0 => x / 3 % 2,
                1 => y / 3 % 2,
                _ => (x + y) / 3 % 2,
            } as u8;
            let noise = ((x * 7 + y * 13 + i as u32 * 31) % 23) as u8;
            let mut pixel = [40 + noise, 40 + noise, 40 + noise];
            pixel[label] = 120 + stripe * 100 + noise;
            Rgb(pixel)
        })
    });
}

/// An image folder (see [`write_folder`]) of 32 px pictures of random 4×4 blocks tinted by class,
/// each unlike every other: no exact or near duplicates among them.
pub fn distinct_folder(root: &Path, train_per_class: usize, test_per_class: usize) {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    write_folder(root, train_per_class, test_per_class, |label, _| {
        let blocks: Vec<u8> = (0..64).map(|_| rng.below(200) as u8).collect();
        RgbImage::from_fn(32, 32, |x, y| {
            let v = blocks[(y / 4 * 8 + x / 4) as usize];
            let mut pixel = [v / 2, v / 2, v / 2];
            pixel[label] = v.saturating_add(55);
            Rgb(pixel)
        })
    });
}

/// A smooth picture of a few random low-frequency waves: each seed gives an unrelated one, and
/// it stays recognisable (a near duplicate) when resized or re-encoded.
pub fn waves(seed: u64, width: u32, height: u32) -> RgbImage {
    let mut rng = Rng::new(seed);
    let waves: Vec<[f32; 4]> =
        (0..5).map(|_| [1.0 + 3.0 * rng.unit(), 1.0 + 3.0 * rng.unit(), TAU * rng.unit(), 30.0 + 30.0 * rng.unit()]).collect();
    RgbImage::from_fn(width, height, |x, y| {
        let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
        let value: f32 =
            128.0 + waves.iter().map(|[fx, fy, phase, amp]| amp * (TAU * (fx * u + fy * v) + phase).cos()).sum::<f32>();
        let value = value.clamp(0.0, 255.0) as u8;
        Rgb([value, value / 2 + 60, 255 - value])
    })
}
