//! `RandomResizedCrop`: a random region of random area and aspect ratio, resized to a fixed
//! size. The region is drawn exactly as torchvision's `RandomResizedCrop.get_params` does it.

use rand::Rng;

/// A crop region in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub top: u32,
    pub left: u32,
    pub height: u32,
    pub width: u32,
}

/// Draws a region of `height` × `width` whose area fraction lies in `scale` and whose aspect
/// ratio (w/h) lies in `ratio` (log-uniform); after 10 failed tries, the centre crop with the
/// ratio clamped into range.
pub fn random_region(
    height: u32,
    width: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> Region {
    let area = height as f64 * width as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as i64;
        let h = (target_area / aspect).sqrt().round_ties_even() as i64;
        if 0 < w && w <= width as i64 && 0 < h && h <= height as i64 {
            let top = rng.random_range(0..=(height as i64 - h)) as u32;
            let left = rng.random_range(0..=(width as i64 - w)) as u32;
            return Region { top, left, height: h as u32, width: w as u32 };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (min_ratio, max_ratio) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (h, w) = if in_ratio < min_ratio {
        ((width as f64 / min_ratio).round_ties_even() as u32, width)
    } else if in_ratio > max_ratio {
        (height, (height as f64 * max_ratio).round_ties_even() as u32)
    } else {
        (height, width)
    };
    Region { top: (height - h) / 2, left: (width - w) / 2, height: h, width: w }
}

fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn regions_respect_scale_and_ratio_bounds() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..2000 {
            let r = random_region(224, 224, (0.8, 1.0), (3.0 / 4.0, 4.0 / 3.0), &mut rng);
            let fraction = (r.height * r.width) as f64 / (224.0 * 224.0);
            // sides are rounded to whole pixels, so allow one pixel row/column of slack
            assert!((0.8 - 2.0 / 224.0..=1.0).contains(&fraction), "{r:?}: area {fraction}");
            assert!(r.top + r.height <= 224 && r.left + r.width <= 224);
            let aspect = r.width as f64 / r.height as f64;
            assert!((0.75 - 0.01..=4.0 / 3.0 + 0.01).contains(&aspect), "{r:?}");
        }
    }

    #[test]
    fn full_scale_and_unit_ratio_takes_the_whole_image() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let r = random_region(50, 50, (1.0, 1.0), (1.0, 1.0), &mut rng);
        assert_eq!(r, Region { top: 0, left: 0, height: 50, width: 50 });
    }

    #[test]
    fn impossible_ratio_falls_back_to_a_clamped_centre_crop() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        // a 10:1 strip cannot hold 90 % of its area at ratio 1: centre crop at ratio 1
        let r = random_region(10, 100, (0.9, 1.0), (1.0, 1.0), &mut rng);
        assert_eq!(r, Region { top: 0, left: 45, height: 10, width: 10 });
    }
}
