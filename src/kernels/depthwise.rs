//! The gradients of a depthwise 2-D convolution (one 2-D filter per channel, no channel mixing, no
//! dilation), parallel over the CPU's cores: burn's generic backward runs one tiny convolution per
//! channel, one after the other. The forward stays flex's (it has a parallel depthwise path).

use rayon::prelude::*;


/// Shapes and options of one depthwise convolution, NCHW, weights `[channels, 1, kh, kw]`.
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
}

impl Geometry {
    /// Output positions `o` along one axis whose input `o·stride + k − pad` is inside the input.
    fn valid(&self, axis: usize, k: usize) -> std::ops::Range<usize> {
        let (stride, pad, input, output) = (self.stride[axis], self.padding[axis], self.input[axis], self.output[axis]);
        let start = if k >= pad { 0 } else { (pad - k).div_ceil(stride) };
        let end = if k >= input + pad { 0 } else { (input + pad - k).div_ceil(stride) }.min(output);
        start.min(end)..end
    }
}

/// ∂L/∂x from ∂L/∂y (`[batch, channels, out_h, out_w]`) and the weights.
pub fn input_grad(g: &Geometry, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    let [in_h, in_w] = g.input;
    let [out_h, out_w] = g.output;
    let [kh, kw] = g.kernel;
    let (plane_in, plane_out) = (in_h * in_w, out_h * out_w);
    let mut dx = vec![0.0f32; g.batch * g.channels * plane_in];
    dx.par_chunks_mut(plane_in).zip(dy.par_chunks(plane_out)).enumerate().for_each(|(plane, (dx, dy))| {
        let c = plane % g.channels;
        let w = &weight[c * kh * kw..(c + 1) * kh * kw];
        for i in 0..kh {
            let rows = g.valid(0, i);
            for j in 0..kw {
                let cols = g.valid(1, j);
                let wij = w[i * kw + j];
                for oh in rows.clone() {
                    let ih = oh * g.stride[0] + i - g.padding[0];
                    let dy_row = &dy[oh * out_w..(oh + 1) * out_w];
                    let dx_row = &mut dx[ih * in_w..(ih + 1) * in_w];
                    scatter_row(dx_row, dy_row, cols.clone(), g.stride[1], j, g.padding[1], wij);
                }
            }
        }
    });
    dx
}

#[inline(always)]
fn scatter_row(dx_row: &mut [f32], dy_row: &[f32], cols: std::ops::Range<usize>, stride: usize, j: usize, pad: usize, w: f32) {
    if stride == 1 {
        let shift = cols.start + j - pad;
        for (d, &g) in dx_row[shift..shift + cols.len()].iter_mut().zip(&dy_row[cols]) {
            *d += g * w;
        }
    } else {
        for ow in cols {
            dx_row[ow * stride + j - pad] += dy_row[ow] * w;
        }
    }
}

/// ∂L/∂w (`[channels, 1, kh, kw]`) from the input and ∂L/∂y. Each channel's sums run over batch,
/// rows and columns in one fixed order (columns in per-position partial sums), whatever the threads.
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let [in_h, in_w] = g.input;
    let [out_h, out_w] = g.output;
    let [kh, kw] = g.kernel;
    let (plane_in, plane_out) = (in_h * in_w, out_h * out_w);
    let per_channel: Vec<Vec<f32>> = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            let mut grad = vec![0.0f32; kh * kw];
            let mut partial = vec![0.0f32; out_w];
            for i in 0..kh {
                let rows = g.valid(0, i);
                for j in 0..kw {
                    let cols = g.valid(1, j);
                    partial.iter_mut().for_each(|p| *p = 0.0);
                    for b in 0..g.batch {
                        let plane = b * g.channels + c;
                        let x = &x[plane * plane_in..(plane + 1) * plane_in];
                        let dy = &dy[plane * plane_out..(plane + 1) * plane_out];
                        for oh in rows.clone() {
                            let ih = oh * g.stride[0] + i - g.padding[0];
                            gather_row(&mut partial, &dy[oh * out_w..(oh + 1) * out_w], &x[ih * in_w..(ih + 1) * in_w], cols.clone(), g.stride[1], j, g.padding[1]);
                        }
                    }
                    grad[i * kw + j] = super::simd::sum(&partial);
                }
            }
            grad
        })
        .collect();
    per_channel.concat()
}

#[inline(always)]
fn gather_row(partial: &mut [f32], dy_row: &[f32], x_row: &[f32], cols: std::ops::Range<usize>, stride: usize, j: usize, pad: usize) {
    if stride == 1 {
        let shift = cols.start + j - pad;
        let n = cols.len();
        for ((p, &g), &v) in partial[cols.clone()].iter_mut().zip(&dy_row[cols]).zip(&x_row[shift..shift + n]) {
            *p += g * v;
        }
    } else {
        for ow in cols {
            partial[ow] += dy_row[ow] * x_row[ow * stride + j - pad];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution written out, for the gradients by their definition.
    fn forward(g: &Geometry, x: &[f64], w: &[f64]) -> Vec<f64> {
        let [in_h, in_w] = g.input;
        let [out_h, out_w] = g.output;
        let [kh, kw] = g.kernel;
        let mut y = vec![0.0; g.batch * g.channels * out_h * out_w];
        for b in 0..g.batch {
            for c in 0..g.channels {
                for oh in 0..out_h {
                    for ow in 0..out_w {
                        let mut s = 0.0;
                        for i in 0..kh {
                            for j in 0..kw {
                                let ih = (oh * g.stride[0] + i) as isize - g.padding[0] as isize;
                                let iw = (ow * g.stride[1] + j) as isize - g.padding[1] as isize;
                                if ih >= 0 && iw >= 0 && (ih as usize) < in_h && (iw as usize) < in_w {
                                    s += x[((b * g.channels + c) * in_h + ih as usize) * in_w + iw as usize] * w[(c * kh + i) * kw + j];
                                }
                            }
                        }
                        y[((b * g.channels + c) * out_h + oh) * out_w + ow] = s;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn gradients_match_the_convolution_they_differentiate() {
        // (input, kernel, stride, padding): CvT's q (stride 1) and k/v (stride 2) projections, odd sizes.
        for (input, kernel, stride, padding) in [([7, 9], [3, 3], [1, 1], [1, 1]), ([8, 7], [3, 3], [2, 2], [1, 1]), ([5, 6], [2, 3], [1, 2], [0, 2])] {
            let out = |a: usize| (input[a] + 2 * padding[a] - kernel[a]) / stride[a] + 1;
            let g = Geometry { batch: 2, channels: 3, input, output: [out(0), out(1)], kernel, stride, padding };
            let nx = g.batch * g.channels * input[0] * input[1];
            let nw = g.channels * kernel[0] * kernel[1];
            let x: Vec<f32> = (0..nx).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let w: Vec<f32> = (0..nw).map(|i| ((i * 13 % 29) as f32 - 14.0) / 10.0).collect();
            let ny = g.batch * g.channels * g.output[0] * g.output[1];
            let dy: Vec<f32> = (0..ny).map(|i| ((i * 7 % 19) as f32 - 9.0) / 9.0).collect();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            // L = Σ dy·y is linear in x and in w: each gradient entry is L at a unit vector.
            let loss = |x: &[f64], w: &[f64]| forward(&g, x, w).iter().zip(&dy).map(|(y, &d)| y * d as f64).sum::<f64>();
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
}
