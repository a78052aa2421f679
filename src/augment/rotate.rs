//! `RandomRotation` as torchvision does it on PIL images: `Image.rotate(angle, NEAREST,
//! expand=False, center=None, fillcolor=fill)` — counter-clockwise about the image centre,
//! same output size, corners filled.

use image::{Rgb, RgbImage};

/// Rotates `image` counter-clockwise by `degrees` about its centre (nearest neighbour).
///
/// PIL builds the inverse affine matrix with coefficients rounded to 15 decimals and samples
/// each output pixel's centre `(x + 0.5, y + 0.5)`, flooring the source coordinate.
pub fn rotate(image: &RgbImage, degrees: f64, fill: u8) -> RgbImage {
    let (width, height) = image.dimensions();
    let angle = -(degrees % 360.0).to_radians();
    let round15 = |v: f64| (v * 1e15).round() / 1e15;
    let (a, b) = (round15(angle.cos()), round15(angle.sin()));
    let (d, e) = (round15(-angle.sin()), round15(angle.cos()));
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let c = a * -cx + b * -cy + cx;
    let f = d * -cx + e * -cy + cy;
    RgbImage::from_fn(width, height, |x, y| {
        let (xo, yo) = (x as f64 + 0.5, y as f64 + 0.5);
        let xs = a * xo + b * yo + c;
        let ys = d * xo + e * yo + f;
        if xs >= 0.0 && ys >= 0.0 && (xs as u32) < width && (ys as u32) < height {
            *image.get_pixel(xs as u32, ys as u32)
        } else {
            Rgb([fill; 3])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 7]))
    }

    #[test]
    fn zero_degrees_is_identity() {
        let image = numbered(9, 6);
        assert_eq!(rotate(&image, 0.0, 0), image);
        assert_eq!(rotate(&image, 360.0, 0), image);
    }

    #[test]
    fn ninety_degrees_is_counter_clockwise() {
        let image = numbered(4, 4);
        let out = rotate(&image, 90.0, 0);
        // counter-clockwise: the top-right corner moves to the top-left.
        assert_eq!(out.get_pixel(0, 0), image.get_pixel(3, 0));
        assert_eq!(out.get_pixel(0, 3), image.get_pixel(0, 0));
        // four quarter turns give the image back
        let mut turned = image.clone();
        for _ in 0..4 {
            turned = rotate(&turned, 90.0, 0);
        }
        assert_eq!(turned, image);
    }

    #[test]
    fn corners_rotated_in_take_the_fill() {
        let image = RgbImage::from_pixel(20, 20, Rgb([255, 255, 255]));
        let out = rotate(&image, 45.0, 9);
        assert_eq!(out.get_pixel(0, 0).0, [9, 9, 9]);
        assert_eq!(out.get_pixel(10, 10).0, [255, 255, 255]);
    }
}
