//! Resizing and centre cropping with torchvision's size rules and PIL's filters
//! (fast_image_resize's convolution filters reproduce Pillow's antialiased resampling).

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use image::RgbImage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    Nearest,
    Bilinear,
    Bicubic,
}

impl Interpolation {
    fn algorithm(self) -> ResizeAlg {
        match self {
            Self::Nearest => ResizeAlg::Nearest,
            Self::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            // PIL's BICUBIC is the Keys kernel with a = -0.5, i.e. Catmull-Rom.
            Self::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
        }
    }
}

/// Target of a resize, as torchvision's `Resize` understands its `size` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeTo {
    /// `Resize((h, w))`: exactly this size, aspect ratio not kept.
    Exact { height: u32, width: u32 },
    /// `Resize(n)`: the shorter edge becomes `n`, the longer keeps the aspect ratio.
    ShorterEdge(u32),
}

impl ResizeTo {
    /// Output `(height, width)` for an input of `(height, width)`, by torchvision's rule
    /// (`_compute_resized_output_size`: the long side is truncated, not rounded).
    pub fn output_size(self, height: u32, width: u32) -> (u32, u32) {
        match self {
            Self::Exact { height, width } => (height, width),
            Self::ShorterEdge(edge) => {
                if width <= height {
                    let long = (edge as u64 * height as u64 / width.max(1) as u64) as u32;
                    (long.max(1), edge)
                } else {
                    let long = (edge as u64 * width as u64 / height.max(1) as u64) as u32;
                    (edge, long.max(1))
                }
            }
        }
    }

    /// The output size when it does not depend on the input.
    pub fn fixed_size(self) -> Option<(u32, u32)> {
        match self {
            Self::Exact { height, width } => Some((height, width)),
            Self::ShorterEdge(_) => None,
        }
    }
}

/// Resizes `image` to `to`.
pub fn resize(image: &RgbImage, to: ResizeTo, interpolation: Interpolation) -> RgbImage {
    let (height, width) = to.output_size(image.height(), image.width());
    resize_region(image, (0, 0, image.width(), image.height()), (height, width), interpolation)
}

/// Crops `region` = (left, top, width, height) out of `image` and resizes it to `(height, width)`
/// (PIL's `img.resize(size, box=region)`).
///
/// Like PIL, the horizontal pass runs first and its result is rounded to 8 bits before the
/// vertical pass (fast_image_resize alone runs the vertical pass first for 8-bit images, which
/// moves bicubic results by up to 3 levels where the filter overshoots); the vertical pass
/// reads rows outside the box where the filter reaches them, as PIL does.
pub fn resize_region(
    image: &RgbImage,
    region: (u32, u32, u32, u32),
    (out_height, out_width): (u32, u32),
    interpolation: Interpolation,
) -> RgbImage {
    let (left, top, width, height) = region;
    let (image_width, image_height) = image.dimensions();
    // Horizontal: columns of the box → `out_width`, for every row of the image.
    let horizontal = if out_width != width {
        resize_pass(image, (left, 0, width, image_height), (out_width, image_height), interpolation)
    } else if (left, width) != (0, image_width) {
        image::imageops::crop_imm(image, left, 0, width, image_height).to_image()
    } else {
        image.clone()
    };
    // Vertical: rows of the box → `out_height`.
    if out_height != height {
        resize_pass(&horizontal, (0, top, out_width, height), (out_width, out_height), interpolation)
    } else if (top, height) != (0, image_height) {
        image::imageops::crop_imm(&horizontal, 0, top, out_width, height).to_image()
    } else {
        horizontal
    }
}

/// One fast_image_resize call that changes a single dimension (so it is a single pass).
fn resize_pass(
    image: &RgbImage,
    (left, top, width, height): (u32, u32, u32, u32),
    (out_width, out_height): (u32, u32),
    interpolation: Interpolation,
) -> RgbImage {
    let mut dst = Image::new(out_width, out_height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(interpolation.algorithm())
        .crop(left as f64, top as f64, width as f64, height as f64);
    Resizer::new()
        .resize(image, &mut dst, &options)
        .expect("source and destination are both RGB8 with non-zero sizes");
    RgbImage::from_raw(out_width, out_height, dst.into_vec()).expect("buffer has the right size")
}

/// torchvision's `CenterCrop((h, w))`: the crop offset rounds half to even, and an image
/// smaller than the crop is padded with zeros first.
pub fn center_crop(image: &RgbImage, (crop_height, crop_width): (u32, u32)) -> RgbImage {
    let (width, height) = image.dimensions();
    if (width, height) == (crop_width, crop_height) {
        return image.clone();
    }
    let top = crop_offset(height, crop_height);
    let left = crop_offset(width, crop_width);
    RgbImage::from_fn(crop_width, crop_height, |x, y| {
        let (sx, sy) = (x as i64 + left, y as i64 + top);
        if sx >= 0 && sy >= 0 && (sx as u32) < width && (sy as u32) < height {
            *image.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

/// Offset of a centred crop of `crop` pixels out of `size` (negative: padding), as torchvision
/// computes it: it pads `(crop - size) / 2` (floored) before, otherwise rounds half to even.
fn crop_offset(size: u32, crop: u32) -> i64 {
    if crop > size {
        -(((crop - size) / 2) as i64)
    } else {
        ((size - crop) as f64 / 2.0).round_ties_even() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, (x + y) as u8]))
    }

    #[test]
    fn shorter_edge_keeps_aspect_like_torchvision() {
        assert_eq!(ResizeTo::ShorterEdge(224).output_size(512, 512), (224, 224));
        // torchvision: int(224 * 640 / 480) = 298
        assert_eq!(ResizeTo::ShorterEdge(224).output_size(480, 640), (224, 298));
        assert_eq!(ResizeTo::ShorterEdge(224).output_size(640, 480), (298, 224));
    }

    #[test]
    fn resize_to_same_size_is_identity() {
        let image = gradient(20, 10);
        let to = ResizeTo::Exact { height: 10, width: 20 };
        assert_eq!(resize(&image, to, Interpolation::Bilinear), image);
    }

    #[test]
    fn resize_of_a_flat_image_stays_flat() {
        let image = RgbImage::from_pixel(37, 23, image::Rgb([10, 200, 99]));
        for interpolation in [Interpolation::Nearest, Interpolation::Bilinear, Interpolation::Bicubic] {
            let out = resize(&image, ResizeTo::Exact { height: 8, width: 11 }, interpolation);
            assert_eq!(out.dimensions(), (11, 8));
            assert!(out.pixels().all(|p| p.0 == [10, 200, 99]));
        }
    }

    #[test]
    fn center_crop_takes_the_middle_and_pads_when_too_small() {
        let image = gradient(10, 8);
        let crop = center_crop(&image, (4, 6));
        // offsets: top = round(2) = 2, left = round(2) = 2
        assert_eq!(crop.get_pixel(0, 0), image.get_pixel(2, 2));
        assert_eq!(crop.dimensions(), (6, 4));
        let padded = center_crop(&image, (10, 10));
        assert_eq!(padded.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(padded.get_pixel(5, 5), image.get_pixel(5, 4));
        // odd padding: torchvision pads 1 before and 2 after
        assert_eq!(crop_offset(7, 10), -1);
        // half-way offsets round to even: (9 - 4) / 2 = 2.5 -> 2
        assert_eq!(crop_offset(9, 4), 2);
    }
}
