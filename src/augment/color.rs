//! `ColorJitter`'s brightness, contrast and saturation, as PIL's `ImageEnhance` computes them
//! (torchvision's PIL path): each is `Image.blend(degenerate, image, factor)`, which truncates
//! toward zero and clips to 0..255.

use image::RgbImage;

/// `out = degenerate + factor * (pixel - degenerate)`, truncated and clipped like PIL's blend.
fn blend(degenerate: f32, pixel: u8, factor: f32) -> u8 {
    let value = degenerate + factor * (pixel as f32 - degenerate);
    if value <= 0.0 {
        0
    } else if value >= 255.0 {
        255
    } else {
        value as u8
    }
}

/// PIL's RGB → L conversion (ITU-R 601-2 luma in 16-bit fixed point).
fn luma(rgb: [u8; 3]) -> u8 {
    ((rgb[0] as u32 * 19595 + rgb[1] as u32 * 38470 + rgb[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

/// `ImageEnhance.Brightness`: blend with black.
pub fn brightness(image: &RgbImage, factor: f64) -> RgbImage {
    let factor = factor as f32;
    let mut out = image.clone();
    out.pixels_mut().for_each(|p| p.0 = p.0.map(|v| blend(0.0, v, factor)));
    out
}

/// `ImageEnhance.Contrast`: blend with a flat grey at the image's mean luma
/// (`int(mean + 0.5)`).
pub fn contrast(image: &RgbImage, factor: f64) -> RgbImage {
    let count = (image.width() as u64 * image.height() as u64).max(1);
    let sum: u64 = image.pixels().map(|p| luma(p.0) as u64).sum();
    let mean = (sum as f64 / count as f64 + 0.5).floor() as f32;
    let factor = factor as f32;
    let mut out = image.clone();
    out.pixels_mut().for_each(|p| p.0 = p.0.map(|v| blend(mean, v, factor)));
    out
}

/// `ImageEnhance.Color`: blend each pixel with its own grey.
pub fn saturation(image: &RgbImage, factor: f64) -> RgbImage {
    let factor = factor as f32;
    let mut out = image.clone();
    out.pixels_mut().for_each(|p| {
        let grey = luma(p.0) as f32;
        p.0 = p.0.map(|v| blend(grey, v, factor));
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RgbImage {
        RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 128]))
    }

    #[test]
    fn factor_one_is_identity() {
        let image = sample();
        assert_eq!(brightness(&image, 1.0), image);
        assert_eq!(contrast(&image, 1.0), image);
        assert_eq!(saturation(&image, 1.0), image);
    }

    #[test]
    fn brightness_scales_truncates_and_clips() {
        let image = RgbImage::from_pixel(1, 1, image::Rgb([10, 100, 250]));
        // 10 * 1.15 = 11.5 -> 11 (truncated); 250 * 1.15 -> clipped to 255
        assert_eq!(brightness(&image, 1.15).get_pixel(0, 0).0, [11, 115, 255]);
        assert_eq!(brightness(&image, 0.0).get_pixel(0, 0).0, [0, 0, 0]);
    }

    #[test]
    fn contrast_zero_gives_the_mean_grey() {
        let image = sample();
        let flat = contrast(&image, 0.0);
        let first = flat.get_pixel(0, 0).0;
        assert!(first[0] == first[1] && first[1] == first[2]);
        assert!(flat.pixels().all(|p| p.0 == first));
    }

    #[test]
    fn luma_matches_pil() {
        // PIL: Image.new("RGB", (1, 1), (255, 0, 0)).convert("L").getpixel((0, 0)) == 76
        assert_eq!(luma([255, 0, 0]), 76);
        assert_eq!(luma([0, 255, 0]), 150);
        assert_eq!(luma([0, 0, 255]), 29);
        assert_eq!(luma([255, 255, 255]), 255);
    }
}
