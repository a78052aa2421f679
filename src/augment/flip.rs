//! `RandomHorizontalFlip` and `RandomVerticalFlip`: mirror with probability `p`.

use image::RgbImage;

pub fn horizontal(image: &RgbImage) -> RgbImage {
    image::imageops::flip_horizontal(image)
}

pub fn vertical(image: &RgbImage) -> RgbImage {
    image::imageops::flip_vertical(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_mirror_and_undo_themselves() {
        let image = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let h = horizontal(&image);
        assert_eq!(h.get_pixel(0, 0), image.get_pixel(4, 0));
        assert_eq!(horizontal(&h), image);
        let v = vertical(&image);
        assert_eq!(v.get_pixel(0, 0), image.get_pixel(0, 2));
        assert_eq!(vertical(&v), image);
    }
}
