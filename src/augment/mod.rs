//! Training-time augmentation: a chain of ops with torchvision's semantics, applied to 8-bit RGB
//! images (the PIL path torchvision takes), seeded per image so that the same spec and seed
//! always give the same pixels, whatever the thread count.
//!
//! Augmentation never scales or normalises pixels: every image, augmented or clean, is turned
//! into a tensor by one function (`data::tensor`), which is what keeps the reference's 0–255 vs
//! 0–1 bug out.

pub mod color;
pub mod crop;
pub mod flip;
pub mod resize;
pub mod rotate;

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use resize::{Interpolation, ResizeTo};

/// One validated augmentation step.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Resize { to: ResizeTo, interpolation: Interpolation },
    /// Uniform angle in `degrees` (counter-clockwise), nearest neighbour, corners filled.
    Rotate { degrees: (f64, f64), fill: u8 },
    /// torchvision's `RandomResizedCrop` to `(height, width)`.
    ResizedCrop { size: (u32, u32), scale: (f64, f64), ratio: (f64, f64), interpolation: Interpolation },
    HorizontalFlip { p: f64 },
    VerticalFlip { p: f64 },
    /// Factor ranges; `None` leaves the property alone (torchvision's strength 0).
    ColorJitter {
        brightness: Option<(f64, f64)>,
        contrast: Option<(f64, f64)>,
        saturation: Option<(f64, f64)>,
    },
}

impl Op {
    /// `(height, width)` after this op for an input of `size`, `None` when it depends on the
    /// image (a shorter-edge resize of an image of unknown size).
    pub fn output_size(&self, size: Option<(u32, u32)>) -> Option<(u32, u32)> {
        match self {
            Op::Resize { to, .. } => match size {
                Some((h, w)) => Some(to.output_size(h, w)),
                None => to.fixed_size(),
            },
            Op::ResizedCrop { size, .. } => Some(*size),
            _ => size,
        }
    }

    /// Applies the op, drawing its random parameters from `rng`.
    pub fn apply(&self, image: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        match self {
            Op::Resize { to, interpolation } => resize::resize(image, *to, *interpolation),
            Op::Rotate { degrees, fill } => {
                let angle = uniform(rng, degrees.0, degrees.1);
                rotate::rotate(image, angle, *fill)
            }
            Op::ResizedCrop { size, scale, ratio, interpolation } => {
                let r = crop::random_region(image.height(), image.width(), *scale, *ratio, rng);
                resize::resize_region(image, (r.left, r.top, r.width, r.height), *size, *interpolation)
            }
            Op::HorizontalFlip { p } => {
                if rng.random::<f64>() < *p { flip::horizontal(image) } else { image.clone() }
            }
            Op::VerticalFlip { p } => {
                if rng.random::<f64>() < *p { flip::vertical(image) } else { image.clone() }
            }
            Op::ColorJitter { brightness, contrast, saturation } => {
                // torchvision draws a random order of the four adjustments, then each factor.
                let mut order = [0usize, 1, 2, 3];
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                let mut draw = |range: &Option<(f64, f64)>| range.map(|(lo, hi)| uniform(rng, lo, hi));
                let factors = [draw(brightness), draw(contrast), draw(saturation)];
                let mut out = image.clone();
                for step in order {
                    out = match (step, factors.get(step).copied().flatten()) {
                        (0, Some(f)) => color::brightness(&out, f),
                        (1, Some(f)) => color::contrast(&out, f),
                        (2, Some(f)) => color::saturation(&out, f),
                        _ => out,
                    };
                }
                out
            }
        }
    }
}

fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

/// An ordered list of ops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chain {
    pub ops: Vec<Op>,
}

impl Chain {
    /// The resize the chain starts with, if any: deterministic, so it can be done once when
    /// images are decoded and cached instead of on every draw.
    pub fn leading_resize(&self) -> Option<(ResizeTo, Interpolation)> {
        match self.ops.first() {
            Some(Op::Resize { to, interpolation }) => Some((*to, *interpolation)),
            _ => None,
        }
    }

    /// The ops after the leading resize.
    pub fn random_part(&self) -> &[Op] {
        let skip = usize::from(self.leading_resize().is_some());
        &self.ops[skip..]
    }

    /// Output size of the whole chain for an input of `size`.
    pub fn output_size(&self, size: Option<(u32, u32)>) -> Option<(u32, u32)> {
        self.ops.iter().fold(size, |size, op| op.output_size(size))
    }

    /// Runs `ops` on `image` with a generator seeded from `seed`.
    pub fn apply_ops(ops: &[Op], image: &RgbImage, seed: u64) -> RgbImage {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = image.clone();
        for op in ops {
            out = op.apply(&out, &mut rng);
        }
        out
    }
}

/// A well-mixed seed for one draw: `(base seed, stream, index)` → u64 (SplitMix64 steps), so
/// image `i` of copy `c` of epoch `e` always gets the same randomness.
pub fn draw_seed(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = seed;
    for part in [stream, index] {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_add(part);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RgbImage {
        RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, ((x ^ y) * 4) as u8]))
    }

    fn reference_chain() -> Chain {
        Chain {
            ops: vec![
                Op::Resize { to: ResizeTo::Exact { height: 32, width: 32 }, interpolation: Interpolation::Bilinear },
                Op::Rotate { degrees: (-15.0, 15.0), fill: 0 },
                Op::ResizedCrop {
                    size: (32, 32),
                    scale: (0.8, 1.0),
                    ratio: (0.75, 4.0 / 3.0),
                    interpolation: Interpolation::Bilinear,
                },
                Op::HorizontalFlip { p: 0.5 },
                Op::VerticalFlip { p: 0.5 },
                Op::ColorJitter { brightness: Some((0.8, 1.2)), contrast: Some((0.8, 1.2)), saturation: None },
            ],
        }
    }

    #[test]
    fn same_seed_same_pixels_other_seed_other_pixels() {
        let chain = reference_chain();
        let image = sample();
        let a = Chain::apply_ops(&chain.ops, &image, draw_seed(42, 0, 7));
        let b = Chain::apply_ops(&chain.ops, &image, draw_seed(42, 0, 7));
        let c = Chain::apply_ops(&chain.ops, &image, draw_seed(42, 0, 8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.dimensions(), (32, 32));
    }

    #[test]
    fn zero_strength_ops_are_identities() {
        let image = sample();
        let ops = vec![
            Op::Rotate { degrees: (0.0, 0.0), fill: 0 },
            Op::ResizedCrop { size: (30, 40), scale: (1.0, 1.0), ratio: (40.0 / 30.0, 40.0 / 30.0), interpolation: Interpolation::Bilinear },
            Op::HorizontalFlip { p: 0.0 },
            Op::VerticalFlip { p: 0.0 },
            Op::ColorJitter { brightness: None, contrast: None, saturation: None },
            Op::ColorJitter { brightness: Some((1.0, 1.0)), contrast: Some((1.0, 1.0)), saturation: Some((1.0, 1.0)) },
        ];
        for seed in 0..20 {
            assert_eq!(Chain::apply_ops(&ops, &image, seed), image, "seed {seed}");
        }
    }

    #[test]
    fn certain_flips_always_flip() {
        let image = sample();
        let out = Chain::apply_ops(&[Op::HorizontalFlip { p: 1.0 }, Op::VerticalFlip { p: 1.0 }], &image, 1);
        assert_eq!(out, flip::vertical(&flip::horizontal(&image)));
    }

    #[test]
    fn chain_size_is_known_statically() {
        let chain = reference_chain();
        assert_eq!(chain.output_size(None), Some((32, 32)));
        assert_eq!(chain.leading_resize().map(|(to, _)| to), Some(ResizeTo::Exact { height: 32, width: 32 }));
        assert_eq!(chain.random_part().len(), 5);
        let shorter = Chain { ops: vec![Op::Resize { to: ResizeTo::ShorterEdge(16), interpolation: Interpolation::Bilinear }] };
        assert_eq!(shorter.output_size(None), None);
        assert_eq!(shorter.output_size(Some((32, 64))), Some((16, 32)));
    }

    #[test]
    fn draw_seeds_differ_across_streams_and_indices() {
        let seeds: std::collections::HashSet<u64> =
            (0..10).flat_map(|s| (0..100).map(move |i| draw_seed(42, s, i))).collect();
        assert_eq!(seeds.len(), 1000);
    }
}
