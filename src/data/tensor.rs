//! The one place pixels become model input: 8-bit RGB → 0..1 → `(x - mean) / std`, channels
//! first. Clean and augmented images both pass through here, so they cannot be scaled
//! differently (the reference notebook fed clean images as 0..255 and augmented ones as 0..1).

use burn::tensor::{Device, Int, Tensor, TensorData};
use image::RgbImage;
use rayon::prelude::*;

/// Per-channel normalisation applied after scaling pixels to 0..1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    /// Writes `image` as `[3, height, width]` floats into `out`.
    pub fn write_chw(&self, image: &RgbImage, out: &mut [f32]) {
        let plane = (image.width() * image.height()) as usize;
        debug_assert_eq!(out.len(), 3 * plane);
        let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * self.std[c]));
        let shift: [f32; 3] = std::array::from_fn(|c| self.mean[c] / self.std[c]);
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = pixel.0[c] as f32 * scale[c] - shift[c];
            }
        }
    }

    /// A `[batch, 3, height, width]` tensor from same-sized images.
    pub fn batch(&self, images: &[&RgbImage], device: &Device) -> Tensor<4> {
        let (values, shape) = self.values(images);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// The values of [`Normalize::batch`]'s tensor and its shape, without making the tensor
    /// (so a worker thread can assemble batches for the training thread).
    pub fn values(&self, images: &[&RgbImage]) -> (Vec<f32>, [usize; 4]) {
        let (width, height) = images[0].dimensions();
        let per_image = 3 * (width * height) as usize;
        let mut values = vec![0f32; per_image * images.len()];
        values.par_chunks_exact_mut(per_image).zip(images).for_each(|(out, image)| {
            assert_eq!(image.dimensions(), (width, height), "a batch mixes image sizes");
            self.write_chw(image, out);
        });
        (values, [images.len(), 3, height as usize, width as usize])
    }
}

/// Label ids as an int tensor.
pub fn labels(labels: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(values, [labels.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_scaled_to_unit_range_before_normalising() {
        let image = RgbImage::from_fn(2, 1, |x, _| if x == 0 { image::Rgb([0, 255, 51]) } else { image::Rgb([255, 0, 102]) });
        let identity = Normalize { mean: [0.0; 3], std: [1.0; 3] };
        let mut out = vec![0.0; 6];
        identity.write_chw(&image, &mut out);
        let expected = [0.0, 1.0, 1.0, 0.0, 0.2, 0.4];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
        let half = Normalize { mean: [0.5; 3], std: [0.5; 3] };
        half.write_chw(&image, &mut out);
        assert!((out[0] + 1.0).abs() < 1e-6 && (out[1] - 1.0).abs() < 1e-6);
    }
}
