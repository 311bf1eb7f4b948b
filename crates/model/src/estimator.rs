//! The attention-based estimator of `|alpha|` (paper section 2.3).
//!
//! Per frame: adaptive average pool to 4x4, two 3x3 convolutions (1 -> d/2 -> d, ReLU),
//! global average pool -> `z_t` in R^d. Then multi-head self-attention over the T frame tokens
//! with a residual connection and layer normalisation, the mean over time, and a two-layer
//! MLP with Softplus giving `|alpha| > 0`. The sign comes from the known process type.
//!
//! The pooling has no parameters, so [`Estimator::pool`] is separate: a frozen latent is
//! pooled once and only the ~10k-parameter rest runs per optimisation step.

use burn::module::Module;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, softplus};
use burn::tensor::{Device, Tensor, TensorData};

#[derive(Module, Debug)]
pub struct Estimator {
    pool: AdaptiveAvgPool2d,
    pub(crate) conv1: Conv2d,
    pub(crate) conv2: Conv2d,
    pub(crate) attn: MultiHeadAttention,
    pub(crate) norm: LayerNorm,
    pub(crate) head1: Linear,
    pub(crate) head2: Linear,
    /// Projection of the spectral band features into the frame tokens (`None`: the
    /// paper's estimator). See [`crate::bands`].
    pub(crate) bands: Option<Linear>,
    /// Constant 0/1 matrix `[9*p*p, p*p]` taking a flattened `p x p` map to its nine
    /// zero-padded 3x3 neighbourhood shifts: the convolutions run as two matmuls each,
    /// which flex executes ~4x faster than its direct convolution on 4x4 maps.
    shifts: Tensor<2>,
    pool_size: usize,
    d_model: usize,
}

/// The neighbourhood-shift matrix of a `p x p` grid with zero padding (row `k*P + out`,
/// column `in`, `k = kh*3 + kw`, `in = out + (kh-1, kw-1)`).
fn shift_matrix(p: usize, dev: &Device) -> Tensor<2> {
    let pp = p * p;
    let mut m = vec![0f32; 9 * pp * pp];
    for kh in 0..3 {
        for kw in 0..3 {
            let k = kh * 3 + kw;
            for r in 0..p {
                for c in 0..p {
                    let (ri, ci) = (r as isize + kh as isize - 1, c as isize + kw as isize - 1);
                    if ri >= 0 && ci >= 0 && (ri as usize) < p && (ci as usize) < p {
                        m[(k * pp + r * p + c) * pp + ri as usize * p + ci as usize] = 1.0;
                    }
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(m, [9 * pp, pp]), dev)
}

/// A 3x3, padding-1 convolution of `x: [N, C, P]` (flattened `p x p` maps) written as
/// matmuls with the conv's own parameters; returns `[N, P, C_out]`.
fn conv3x3(x: Tensor<3>, conv: &Conv2d, shifts: &Tensor<2>) -> Tensor<3> {
    let [n, c, pp] = x.dims();
    let w = conv.weight.val();
    let [co, ci, _, _] = w.dims();
    debug_assert_eq!(ci, c);
    // [N, C, P] x [P, 9P] -> [N, C, 9, P] -> [N, P, C, 9] -> [N*P, C*9]
    // One 2-D matmul (a batched one runs N tiny gemms).
    let stacked = x.reshape([n * c, pp]).matmul(shifts.clone().transpose());
    let cols = stacked
        .reshape([n, c, 9, pp])
        .permute([0, 3, 1, 2])
        .reshape([n * pp, c * 9]);
    let mut y = cols.matmul(w.reshape([co, ci * 9]).transpose());
    if let Some(b) = &conv.bias {
        y = y + b.val().unsqueeze::<2>();
    }
    y.reshape([n, pp, co])
}

impl Estimator {
    /// `band_inputs` = band features per frame (`2K` or `3K` for `K` bands); 0 = the paper's.
    pub fn new(
        d_model: usize,
        heads: usize,
        hidden: usize,
        pool_size: usize,
        band_inputs: usize,
        dev: &Device,
    ) -> Estimator {
        let pad = PaddingConfig2d::Explicit(1, 1, 1, 1);
        Estimator {
            pool: AdaptiveAvgPool2dConfig::new([pool_size, pool_size]).init(),
            conv1: Conv2dConfig::new([1, d_model / 2], [3, 3])
                .with_padding(pad.clone())
                .init(dev),
            conv2: Conv2dConfig::new([d_model / 2, d_model], [3, 3])
                .with_padding(pad)
                .init(dev),
            attn: MultiHeadAttentionConfig::new(d_model, heads)
                .with_dropout(0.0)
                .init(dev),
            norm: LayerNormConfig::new(d_model).init(dev),
            head1: LinearConfig::new(d_model, hidden).init(dev),
            head2: LinearConfig::new(hidden, 1).init(dev),
            bands: (band_inputs > 0).then(|| LinearConfig::new(band_inputs, d_model).init(dev)),
            shifts: shift_matrix(pool_size, dev),
            pool_size,
            d_model,
        }
    }

    /// `[N, 1, H, W] -> [N, 1, p, p]` (no parameters).
    pub fn pool(&self, f: Tensor<4>) -> Tensor<4> {
        self.pool.forward(f)
    }

    /// Pooled frames of `b` videos of `t` frames each, `[b*t, 1, p, p]` (and their band
    /// features `[b*t, 2K]` when the estimator has a band projection), to `|alpha|`, `[b]`.
    pub fn forward_pooled(
        &self,
        pooled: Tensor<4>,
        bands: Option<Tensor<2>>,
        b: usize,
        t: usize,
    ) -> Tensor<1> {
        let mut z = self.frame_tokens(pooled);
        if let (Some(proj), Some(f)) = (&self.bands, bands) {
            z = z + proj.forward(f);
        }
        self.head(z.reshape([b, t, self.d_model]), b)
    }

    /// Number of band features per frame this estimator expects (0 = none).
    pub fn band_inputs(&self) -> usize {
        self.bands.as_ref().map(|l| l.weight.dims()[0]).unwrap_or(0)
    }

    /// Per-frame features `z_t`: `[N, 1, p, p] -> [N, d]`.
    pub fn frame_tokens(&self, pooled: Tensor<4>) -> Tensor<2> {
        let [n, _, p, _] = pooled.dims();
        let x = relu(conv3x3(
            pooled.reshape([n, 1, p * p]),
            &self.conv1,
            &self.shifts,
        ));
        let x = relu(conv3x3(x.swap_dims(1, 2), &self.conv2, &self.shifts));
        x.mean_dim(1).reshape([n, self.d_model])
    }

    /// The same per-frame features with burn's `Conv2d` (reference for [`Self::frame_tokens`]).
    pub fn frame_tokens_conv2d(&self, pooled: Tensor<4>) -> Tensor<2> {
        let [n, _, _, _] = pooled.dims();
        let x = relu(self.conv1.forward(pooled));
        let x = relu(self.conv2.forward(x));
        x.mean_dims(&[2, 3]).reshape([n, self.d_model])
    }

    /// Attention over time, mean, MLP head: `[b, t, d] -> [b]`.
    pub fn head(&self, z: Tensor<3>, b: usize) -> Tensor<1> {
        let ctx = self.attn.forward(MhaInput::self_attn(z.clone())).context;
        let z = self.norm.forward(z + ctx);
        let pooled_t: Tensor<2> = z.mean_dim(1).reshape([b, self.d_model]);
        let y = self.head2.forward(relu(self.head1.forward(pooled_t)));
        softplus(y, 1.0).reshape([b])
    }

    /// Epsilon of the layer norm (burn's default).
    pub fn norm_epsilon(&self) -> f64 {
        1e-5
    }

    pub fn pool_size(&self) -> usize {
        self.pool_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn matmul_convolutions_equal_burn_conv2d() {
        let dev = Device::flex();
        let (e, x) = crate::model::with_burn_rng(&dev, 3, || {
            let e = Estimator::new(32, 4, 32, 4, 0, &dev);
            crate::model::initialise(&e);
            (
                e,
                Tensor::<4>::random([7, 1, 4, 4], Distribution::Normal(0.0, 1.0), &dev),
            )
        });
        let a: Vec<f32> = e
            .frame_tokens(x.clone())
            .into_data()
            .try_into_vec()
            .unwrap();
        let b: Vec<f32> = e.frame_tokens_conv2d(x).into_data().try_into_vec().unwrap();
        assert_eq!(a.len(), 7 * 32);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{x} {y}");
        }
    }
}
