//! Depthwise 2-D convolution (one 2-D filter per channel, no channel mixing, no bias, no
//! dilation) on tokens: `[batch, height·width, channels]` in and out, channels last. CvT's q/k/v
//! projections read the token sequence as it is, with none of the transposes to and from NCHW that
//! burn's convolution needs (they were a tenth of a cvt-tiny training step), and every loop runs
//! along the channels, contiguous here, so it vectorises.
//!
//! Forward and input gradient are parallel over rows of their output; the weight gradient sums
//! fixed blocks of rows and then the blocks in order. Every sum runs in an order set by the shapes
//! alone, so results do not depend on the number of threads.

use std::ops::Range;

use rayon::prelude::*;

use super::simd::{self, multiversion};
use super::split::{ELEMENTS_PER_TASK, filled, zeroed};

/// Shapes and options of one depthwise convolution; weights `[channels, 1, kh, kw]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub input: [usize; 2],
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Zero rows / columns before the first input row / column.
    pub padding: [usize; 2],
    /// Input tokens before the grid in each batch item (a class token), which the convolution
    /// neither reads nor passes a gradient to; the output has none.
    pub skip: usize,
}

impl Geometry {
    /// The geometry with its output size, `None` where the kernel does not fit the padded input
    /// or a stride is zero.
    pub fn new(batch: usize, channels: usize, input: [usize; 2], kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Option<Self> {
        let out = |a: usize| {
            let padded = input[a] + 2 * padding[a];
            (stride[a] > 0 && kernel[a] > 0 && padded >= kernel[a]).then(|| (padded - kernel[a]) / stride[a] + 1)
        };
        Some(Self { batch, channels, input, output: [out(0)?, out(1)?], kernel, stride, padding, skip: 0 })
    }

    /// The same convolution on inputs with `skip` tokens before the grid in each batch item.
    pub fn skipping(self, skip: usize) -> Self {
        Self { skip, ..self }
    }

    /// Values of one batch item's input, skipped tokens included.
    fn input_item_len(&self) -> usize {
        (self.skip + self.input[0] * self.input[1]) * self.channels
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.input_item_len()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.output[0] * self.output[1] * self.channels
    }

    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// Output positions `o` along one axis whose input `o·stride + k − pad` is inside the input.
    fn valid(&self, axis: usize, k: usize) -> Range<usize> {
        let (stride, pad, input, output) = (self.stride[axis], self.padding[axis], self.input[axis], self.output[axis]);
        let start = if k >= pad { 0 } else { (pad - k).div_ceil(stride) };
        let end = if k >= input + pad { 0 } else { (input + pad - k).div_ceil(stride) }.min(output);
        start.min(end)..end
    }

    /// The input row or column output `o` reads through tap `k` (inside the input for `o` in
    /// [`Self::valid`]).
    fn source(&self, axis: usize, o: usize, k: usize) -> usize {
        o * self.stride[axis] + k - self.padding[axis]
    }

    /// Output rows a task handles so it writes about [`ELEMENTS_PER_TASK`] values.
    fn rows_per_task(&self) -> usize {
        (ELEMENTS_PER_TASK / (self.output[1] * self.channels).max(1)).max(1)
    }
}

/// Weights `[channels, kh·kw]` → `[kh·kw, channels]`: one contiguous row of channels per tap.
fn taps_by_channel(g: &Geometry, weight: &[f32]) -> Vec<f32> {
    assert_eq!(weight.len(), g.channels * g.taps(), "depthwise conv: weights are not [channels, 1, kh, kw]");
    let mut out = vec![0.0f32; weight.len()];
    for (c, filter) in weight.chunks(g.taps()).enumerate() {
        for (tap, &w) in filter.iter().enumerate() {
            out[tap * g.channels + c] = w;
        }
    }
    out
}

/// The convolution of `x` (`[batch, in_h·in_w, channels]`) → `[batch, out_h·out_w, channels]`.
pub fn forward(g: &Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.input_len(), "depthwise conv: the input is not {g:?}");
    let w = taps_by_channel(g, weight);
    let row = g.output[1] * g.channels;
    let per_task = g.rows_per_task();
    filled(g.output_len(), |out| {
        out.par_chunks_mut(per_task * row).enumerate().for_each(|(task, rows)| {
            for (r, out_row) in rows.chunks_mut(row).enumerate() {
                let global = task * per_task + r;
                let (b, oh) = (global / g.output[0], global % g.output[0]);
                forward_row(g, batch_slice(g, x, b), &w, oh, zeroed(out_row));
            }
        });
    })
}

multiversion! {
    /// One output row: Σ over taps of the input pixel it reads times the tap, channel by channel.
    fn forward_row(g: &Geometry, x: &[f32], w: &[f32], oh: usize, out: &mut [f32]) {
        let (c, in_w, kw) = (g.channels, g.input[1], g.kernel[1]);
        for i in 0..g.kernel[0] {
            if !g.valid(0, i).contains(&oh) {
                continue;
            }
            let ih = g.source(0, oh, i);
            for j in 0..kw {
                let tap = &w[(i * kw + j) * c..][..c];
                for ow in g.valid(1, j) {
                    let pixel = &x[(ih * in_w + g.source(1, ow, j)) * c..][..c];
                    for ((o, &v), &t) in out[ow * c..][..c].iter_mut().zip(pixel).zip(tap) {
                        *o += v * t;
                    }
                }
            }
        }
    }
}

/// ∂L/∂x (`[batch, in_h·in_w, channels]`) from ∂L/∂y and the weights.
pub fn input_grad(g: &Geometry, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    assert_eq!(dy.len(), g.output_len(), "depthwise conv backward: the gradient is not {g:?}");
    let w = taps_by_channel(g, weight);
    let row = g.input[1] * g.channels;
    filled(g.input_len(), |dx| {
        dx.par_chunks_mut(g.input_item_len()).enumerate().for_each(|(b, item)| {
            let (skipped, grid) = item.split_at_mut(g.skip * g.channels);
            zeroed(skipped);
            grid.par_chunks_mut(row).enumerate().for_each(|(ih, dx_row)| {
                input_grad_row(g, batch_slice_out(g, dy, b), &w, ih, zeroed(dx_row));
            });
        });
    })
}

multiversion! {
    /// One input row's gradient: every (output pixel, tap) pair that read it, taps in order.
    fn input_grad_row(g: &Geometry, dy: &[f32], w: &[f32], ih: usize, dx: &mut [f32]) {
        let (c, out_w, kw) = (g.channels, g.output[1], g.kernel[1]);
        for i in 0..g.kernel[0] {
            // The output row that reads input row `ih` through tap row `i`, if any.
            let shifted = ih + g.padding[0];
            if shifted < i || !(shifted - i).is_multiple_of(g.stride[0]) || (shifted - i) / g.stride[0] >= g.output[0] {
                continue;
            }
            let oh = (shifted - i) / g.stride[0];
            for j in 0..kw {
                let tap = &w[(i * kw + j) * c..][..c];
                for ow in g.valid(1, j) {
                    let grad = &dy[(oh * out_w + ow) * c..][..c];
                    for ((d, &v), &t) in dx[g.source(1, ow, j) * c..][..c].iter_mut().zip(grad).zip(tap) {
                        *d += v * t;
                    }
                }
            }
        }
    }
}

/// ∂L/∂w (`[channels, 1, kh, kw]`) from the input and ∂L/∂y: each block of output rows sums
/// into its own `[kh·kw, channels]`, then the blocks are added in order.
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.input_len(), "depthwise conv backward: the input is not {g:?}");
    assert_eq!(dy.len(), g.output_len(), "depthwise conv backward: the gradient is not {g:?}");
    let row = g.output[1] * g.channels;
    let per_task = g.rows_per_task();
    let partials: Vec<Vec<f32>> = dy
        .par_chunks(per_task * row)
        .enumerate()
        .map(|(task, rows)| {
            let mut partial = vec![0.0f32; g.taps() * g.channels];
            for (r, dy_row) in rows.chunks(row).enumerate() {
                let global = task * per_task + r;
                let (b, oh) = (global / g.output[0], global % g.output[0]);
                weight_grad_row(g, batch_slice(g, x, b), dy_row, oh, &mut partial);
            }
            partial
        })
        .collect();
    let mut total = vec![0.0f32; g.taps() * g.channels];
    for partial in &partials {
        simd::add_into(&mut total, partial);
    }
    // [kh·kw, channels] → [channels, kh·kw]
    let mut out = vec![0.0f32; total.len()];
    for (tap, per_channel) in total.chunks(g.channels).enumerate() {
        for (c, &v) in per_channel.iter().enumerate() {
            out[c * g.taps() + tap] = v;
        }
    }
    out
}

multiversion! {
    /// Adds one output row's contribution to every tap's gradient.
    fn weight_grad_row(g: &Geometry, x: &[f32], dy: &[f32], oh: usize, dw: &mut [f32]) {
        let (c, in_w, kw) = (g.channels, g.input[1], g.kernel[1]);
        for i in 0..g.kernel[0] {
            if !g.valid(0, i).contains(&oh) {
                continue;
            }
            let ih = g.source(0, oh, i);
            for j in 0..kw {
                let tap = &mut dw[(i * kw + j) * c..][..c];
                for ow in g.valid(1, j) {
                    let pixel = &x[(ih * in_w + g.source(1, ow, j)) * c..][..c];
                    for ((d, &v), &grad) in tap.iter_mut().zip(pixel).zip(&dy[ow * c..][..c]) {
                        *d += v * grad;
                    }
                }
            }
        }
    }
}

/// Batch item `b`'s grid of input tokens.
fn batch_slice<'a>(g: &Geometry, x: &'a [f32], b: usize) -> &'a [f32] {
    &x[b * g.input_item_len() + g.skip * g.channels..][..g.input[0] * g.input[1] * g.channels]
}

fn batch_slice_out<'a>(g: &Geometry, y: &'a [f32], b: usize) -> &'a [f32] {
    let len = g.output[0] * g.output[1] * g.channels;
    &y[b * len..][..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution written out on NCHW-indexed values, for the gradients by their definition.
    fn reference(g: &Geometry, x: &[f64], w: &[f64]) -> Vec<f64> {
        let [in_h, in_w] = g.input;
        let [out_h, out_w] = g.output;
        let [kh, kw] = g.kernel;
        let c_n = g.channels;
        let mut y = vec![0.0; g.output_len()];
        for b in 0..g.batch {
            for c in 0..c_n {
                for oh in 0..out_h {
                    for ow in 0..out_w {
                        let mut s = 0.0;
                        for i in 0..kh {
                            for j in 0..kw {
                                let ih = (oh * g.stride[0] + i) as isize - g.padding[0] as isize;
                                let iw = (ow * g.stride[1] + j) as isize - g.padding[1] as isize;
                                if ih >= 0 && iw >= 0 && (ih as usize) < in_h && (iw as usize) < in_w {
                                    let token = b * (g.skip + in_h * in_w) + g.skip + ih as usize * in_w + iw as usize;
                                    s += x[token * c_n + c] * w[(c * kh + i) * kw + j];
                                }
                            }
                        }
                        y[((b * out_h + oh) * out_w + ow) * c_n + c] = s;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn forward_and_gradients_match_the_convolution_by_its_definition() {
        // (input, kernel, stride, padding): CvT's q (stride 1) and k/v (stride 2) projections, odd
        // sizes, a kernel wider than tall, channels not a multiple of the vector width, and a
        // class token before the grid.
        for (input, kernel, stride, padding, channels, skip) in [
            ([7, 9], [3, 3], [1, 1], [1, 1], 3, 0),
            ([8, 7], [3, 3], [2, 2], [1, 1], 19, 0),
            ([5, 6], [2, 3], [1, 2], [0, 2], 4, 0),
            ([3, 3], [3, 3], [2, 2], [1, 1], 2, 0),
            ([5, 4], [3, 3], [2, 2], [1, 1], 3, 1),
        ] {
            let g = Geometry::new(2, channels, input, kernel, stride, padding).unwrap().skipping(skip);
            let (nx, nw, ny) = (g.input_len(), g.channels * g.taps(), g.output_len());
            let x: Vec<f32> = (0..nx).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let w: Vec<f32> = (0..nw).map(|i| ((i * 13 % 29) as f32 - 14.0) / 10.0).collect();
            let dy: Vec<f32> = (0..ny).map(|i| ((i * 7 % 19) as f32 - 9.0) / 9.0).collect();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            let y = forward(&g, &x, &w);
            for (k, (&got, want)) in y.iter().zip(reference(&g, &x64, &w64)).enumerate() {
                assert!((got as f64 - want).abs() < 1e-5, "{g:?}: y[{k}]");
            }
            // L = Σ dy·y is linear in x and in w: each gradient entry is L at a unit vector.
            let loss = |x: &[f64], w: &[f64]| reference(&g, x, w).iter().zip(&dy).map(|(y, &d)| y * d as f64).sum::<f64>();
            let dx = input_grad(&g, &dy, &w);
            let dw = weight_grad(&g, &x, &dy);
            for k in 0..nx {
                let mut e = vec![0.0; nx];
                e[k] = 1.0;
                assert!((dx[k] as f64 - loss(&e, &w64)).abs() < 1e-5, "{g:?}: dx[{k}]");
            }
            for k in 0..nw {
                let mut e = vec![0.0; nw];
                e[k] = 1.0;
                assert!((dw[k] as f64 - loss(&x64, &e)).abs() < 1e-4, "{g:?}: dw[{k}]");
            }
        }
    }

    #[test]
    fn a_kernel_larger_than_the_padded_input_has_no_geometry() {
        assert_eq!(Geometry::new(1, 4, [2, 2], [5, 5], [1, 1], [1, 1]), None);
        assert_eq!(Geometry::new(1, 4, [4, 4], [3, 3], [0, 1], [1, 1]), None);
    }
}
