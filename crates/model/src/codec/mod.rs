//! Encoder and decoder (paper section 2.3): `F = V + g(V)` and `V_hat = F + h(F)`.
//!
//! `g` is three 3x3 convolution blocks (1 -> c -> c -> c) with batch normalisation, ReLU,
//! circular padding (periodic boundaries) and skip connections where the channel counts
//! match, then a 1x1 projection to one channel whose weights and bias start at zero, so the
//! map is exactly the identity at initialisation. The decoder is the same module.
//!
//! On the CPU each block runs on the host kernels of [`kernels`] (naive oracle:
//! [`reference`]): in training as one custom autodiff op ([`op`]), in inference directly.
//! On other backends (GPU), and on an autodiff device with batch normalisation frozen, it
//! runs as burn tensor ops, which both host paths are tested against.

use crate::is_flex;
use burn::backend::Dispatch;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use op::{BlockSpec, CodecBackend};

/// Pad dims 2 and 3 of `[N, C, H, W]` periodically by `p` (burn has no circular padding).
pub fn circular_pad(x: Tensor<4>, p: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let x = Tensor::cat(
        vec![
            x.clone().slice_dim(2, h - p..h),
            x.clone(),
            x.slice_dim(2, 0..p),
        ],
        2,
    );
    Tensor::cat(
        vec![
            x.clone().slice_dim(3, w - p..w),
            x.clone(),
            x.slice_dim(3, 0..p),
        ],
        3,
    )
}

#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    norm: BatchNorm,
    skip: bool,
}

impl ConvBlock {
    pub fn new(c_in: usize, c_out: usize, dev: &Device) -> ConvBlock {
        ConvBlock {
            conv: Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(PaddingConfig2d::Valid)
                .init(dev),
            norm: BatchNormConfig::new(c_out).init(dev),
            skip: c_in == c_out,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.host_kernel_applies(&x) {
            self.forward_host(x)
        } else if is_flex(&x.device()) && !x.device().is_autodiff() {
            self.forward_host_inference(x)
        } else {
            self.forward_tensor_ops(x)
        }
    }

    /// Inference on the CPU backend (no graph to record; batch norm with the running
    /// statistics, as burn's `BatchNorm` does off an autodiff device): the host kernel.
    fn forward_host_inference(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, cin, h, w] = x.dims();
        let cout = self.norm.gamma.dims()[0];
        let dev = x.device();
        let host = |d: burn::tensor::TensorData| -> Vec<f32> {
            d.convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 after convert")
        };
        let b = match &self.conv.bias {
            Some(b) => host(b.val().into_data()),
            None => vec![0.0; cout],
        };
        let s = kernels::BlockShape { n, cin, cout, h, w };
        let y = kernels::block_forward_eval(
            &host(x.into_data()),
            &host(self.conv.weight.val().into_data()),
            &b,
            &host(self.norm.gamma.val().into_data()),
            &host(self.norm.beta.val().into_data()),
            &host(self.norm.running_mean.value().into_data()),
            &host(self.norm.running_var.value().into_data()),
            self.norm.epsilon,
            &s,
        );
        Tensor::from_data(burn::tensor::TensorData::new(y, [n, cout, h, w]), &dev)
    }

    /// Batch statistics (autodiff device, training flag: burn's own rule) on the CPU backend.
    fn host_kernel_applies(&self, x: &Tensor<4>) -> bool {
        let dev = x.device();
        is_flex(&dev) && dev.is_autodiff() && self.norm.training.is_enabled()
    }

    /// The block as one custom op; the running statistics are updated as `BatchNorm` does.
    fn forward_host(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.norm.gamma.dims()[0];
        let dev = x.device();
        let b = match &self.conv.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([c], &dev),
        };
        let (y, stats) = <Dispatch as CodecBackend>::conv_block(
            x.into_dispatch(),
            self.conv.weight.val().into_dispatch(),
            b.into_dispatch(),
            self.norm.gamma.val().into_dispatch(),
            self.norm.beta.val().into_dispatch(),
            BlockSpec {
                eps: self.norm.epsilon,
            },
        );
        let stats: Tensor<2> = Tensor::from_dispatch(stats);
        let m = self.norm.momentum;
        for (row, state) in [(0, &self.norm.running_mean), (1, &self.norm.running_var)] {
            let batch = stats.clone().slice_dim(0, row..row + 1).reshape([c]);
            let run = state.value_sync().to_device(&dev);
            state.update(
                run.mul_scalar(1.0 - m)
                    .add(batch.detach().mul_scalar(m))
                    .detach(),
            );
        }
        Tensor::from_dispatch(y)
    }

    /// The block in burn tensor ops (any backend, either batch-norm mode).
    pub fn forward_tensor_ops(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(
            self.norm
                .forward(self.conv.forward(circular_pad(x.clone(), 1))),
        );
        if self.skip { x + y } else { y }
    }
}

/// `X + proj(blocks(X))`: the encoder (`X = V`) and the decoder (`X = F`).
#[derive(Module, Debug)]
pub struct ResidualField {
    blocks: Vec<ConvBlock>,
    proj: Conv2d,
}

impl ResidualField {
    pub fn new(channels: usize, n_blocks: usize, dev: &Device) -> ResidualField {
        let blocks = (0..n_blocks)
            .map(|i| ConvBlock::new(if i == 0 { 1 } else { channels }, channels, dev))
            .collect();
        let proj = Conv2dConfig::new([channels, 1], [1, 1])
            .with_initializer(Initializer::Zeros)
            .init(dev);
        ResidualField { blocks, proj }
    }

    /// `[N, 1, H, W] -> [N, 1, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        for b in &self.blocks {
            h = b.forward(h);
        }
        x + self.proj.forward(h)
    }

    /// True while the projection is exactly zero, i.e. the module is exactly the identity.
    pub fn is_identity(&self) -> bool {
        let w: Vec<f32> = self
            .proj
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap_or_default();
        let b: Vec<f32> = self
            .proj
            .bias
            .as_ref()
            .map(|b| {
                b.val()
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        w.iter().chain(&b).all(|&x| x == 0.0)
    }

    /// Forward pass for a frozen module: skips the convolutions when the projection is zero
    /// (the output is then exactly the input; nothing is approximated).
    pub fn forward_frozen(&self, x: Tensor<4>) -> Tensor<4> {
        if self.is_identity() {
            x
        } else {
            self.forward(x)
        }
    }
}

pub mod kernels;
pub mod op;
pub mod reference;
#[cfg(test)]
mod tests;
