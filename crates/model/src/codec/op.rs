//! One codec block in training mode (circular 3x3 convolution, batch normalisation with batch
//! statistics, ReLU, skip) as a burn autodiff op whose forward and backward are the host
//! kernels of [`super::kernels`]. Burn's own ops for the same block allocate and traverse a
//! `[frames, channels, h, w]` tensor a dozen times per pass; these kernels do it twice.
//! The op is routed for the CPU (flex) backend and autodiff over it; other backends run the
//! block as burn tensor ops ([`super::ConvBlock`]), which is also the reference it is tested
//! against.

use super::kernels::{BlockShape, Saved, block_backward, block_forward};
use crate::safe_layer::{flex_f32, slice_of};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::TensorData;
use std::sync::Arc;

/// Fixed settings of a block: batch normalisation's epsilon.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockSpec {
    pub eps: f64,
}

/// The op on every backend we route: flex directly, autodiff with our backward.
#[backend_extension(Flex, Autodiff)]
pub trait CodecBackend: Backend {
    /// `(y, stats)` for `x: [n, cin, h, w]`, `w: [cout, cin, 3, 3]`, `b`, `gamma`, `beta`:
    /// `[cout]`; `stats: [2, cout]` holds the batch mean and biased variance of the
    /// convolution's output (for the running statistics; not differentiated).
    fn conv_block(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        spec: BlockSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// Forward with what the backward needs, and the backward, on the inner backend.
pub trait CodecHost: Backend {
    type Saved: Clone + Send + std::fmt::Debug + 'static;
    fn conv_block_saved(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        spec: BlockSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, Self::Saved);
    /// Gradients `[x, w, b, gamma, beta]` given `dL/dy`.
    fn conv_block_vjp(saved: Self::Saved, gy: FloatTensor<Self>) -> [FloatTensor<Self>; 5];
}

/// The forward's inputs and intermediates, kept on the host for the backward.
pub struct FlexSaved {
    x: FlexTensor,
    w: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    saved: Saved,
    shape: BlockShape,
    spec: BlockSpec,
}

impl std::fmt::Debug for FlexSaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlexSaved")
            .field("shape", &self.shape)
            .field("spec", &self.spec)
            .finish()
    }
}

impl CodecHost for Flex {
    type Saved = Arc<FlexSaved>;

    fn conv_block_saved(
        x: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        spec: BlockSpec,
    ) -> (FlexTensor, FlexTensor, Arc<FlexSaved>) {
        let (x, w, b, gamma, beta) = (
            flex_f32(x),
            flex_f32(w),
            flex_f32(b),
            flex_f32(gamma),
            flex_f32(beta),
        );
        let (xs, ws) = (x.shape(), w.shape());
        assert!(
            xs.len() == 4 && ws.len() == 4 && ws[1] == xs[1] && ws[2] == 3 && ws[3] == 3,
            "codec block: input {xs:?} and weights {ws:?} must be [n, cin, h, w] and [cout, cin, 3, 3]"
        );
        let shape = BlockShape {
            n: xs[0],
            cin: xs[1],
            cout: ws[0],
            h: xs[2],
            w: xs[3],
        };
        let (y, saved) = block_forward(
            slice_of(&x),
            slice_of(&w),
            slice_of(&b),
            slice_of(&gamma),
            slice_of(&beta),
            spec.eps,
            &shape,
        );
        let stats: Vec<f32> = saved.mean.iter().chain(&saved.var).copied().collect();
        let y = FlexTensor::from_data(TensorData::new(y, [shape.n, shape.cout, shape.h, shape.w]));
        let stats = FlexTensor::from_data(TensorData::new(stats, [2, shape.cout]));
        let keep = Arc::new(FlexSaved {
            x,
            w,
            gamma,
            beta,
            saved,
            shape,
            spec,
        });
        (y, stats, keep)
    }

    fn conv_block_vjp(k: Arc<FlexSaved>, gy: FlexTensor) -> [FlexTensor; 5] {
        let gy = flex_f32(gy);
        let s = k.shape;
        let g = block_backward(
            slice_of(&k.x),
            slice_of(&k.w),
            slice_of(&k.gamma),
            slice_of(&k.beta),
            k.spec.eps,
            &k.saved,
            slice_of(&gy),
            &s,
        );
        let t = |v: Vec<f32>, shape: Vec<usize>| FlexTensor::from_data(TensorData::new(v, shape));
        [
            t(g.x, vec![s.n, s.cin, s.h, s.w]),
            t(g.w, vec![s.cout, s.cin, 3, 3]),
            t(g.b, vec![s.cout]),
            t(g.gamma, vec![s.cout]),
            t(g.beta, vec![s.cout]),
        ]
    }
}

impl CodecBackend for Flex {
    fn conv_block(
        x: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        spec: BlockSpec,
    ) -> (FlexTensor, FlexTensor) {
        let (y, stats, _) = Self::conv_block_saved(x, w, b, gamma, beta, spec);
        (y, stats)
    }
}

impl<B: Backend + CodecHost, C: CheckpointStrategy> CodecBackend for Autodiff<B, C> {
    fn conv_block(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        spec: BlockSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct BlockBwd;

        impl<B: Backend + CodecHost> Backward<B, 5> for BlockBwd {
            type State = B::Saved;

            fn backward(
                self,
                ops: Ops<Self::State, 5>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let g = grads.consume::<B>(&ops.node);
                let gs = B::conv_block_vjp(ops.state, g);
                for (node, grad) in ops.parents.into_iter().zip(gs) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let (xp, xg) = x.into_parts();
        let (wp, wg) = w.into_parts();
        let (bp, bg) = b.into_parts();
        let (gp, gg) = gamma.into_parts();
        let (ep, eg) = beta.into_parts();
        let (y, stats, saved) = B::conv_block_saved(xp, wp, bp, gp, ep, spec);
        let y = match BlockBwd
            .prepare::<C>([xg, wg, bg, gg, eg])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (y, <Self as AutodiffBackend>::from_inner(stats))
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConvBlock;
    use burn::module::Param;
    use burn::tensor::{Device, Tensor, TensorData};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(shape: &[usize], lo: f32, hi: f32, r: &mut ChaCha8Rng) -> TensorData {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| r.random_range(lo..hi)).collect();
        TensorData::new(v, shape.to_vec())
    }

    fn host(t: Tensor<1>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        let n = t.shape().num_elements();
        host(t.reshape([n]))
    }

    fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale,
                "{what}[{k}]: op {x} vs tensor ops {y}"
            );
        }
    }

    /// The custom op equals burn's autodiff of the same block in tensor ops: output, running
    /// statistics and the gradients of the input and every parameter.
    #[test]
    fn op_matches_burn_tensor_ops() {
        let dev = Device::flex().autodiff();
        for (seed, (n, cin, cout, h, w)) in
            [(2, 1, 4, 6, 5), (3, 4, 4, 5, 7)].into_iter().enumerate()
        {
            let mut r = ChaCha8Rng::seed_from_u64(seed as u64);
            let params = [
                random(&[cout, cin, 3, 3], -0.5, 0.5, &mut r),
                random(&[cout], -0.3, 0.3, &mut r),
                random(&[cout], 0.5, 1.5, &mut r),
                random(&[cout], -0.3, 0.3, &mut r),
            ];
            // A fresh block per path: clones share their running statistics.
            let block = || {
                let mut b = ConvBlock::new(cin, cout, &dev);
                let t = |k: usize| Tensor::<1>::from_data(params[k].clone(), &dev);
                b.conv.weight = Param::from_tensor(Tensor::from_data(params[0].clone(), &dev));
                b.conv.bias = Some(Param::from_tensor(t(1)));
                b.norm.gamma = Param::from_tensor(t(2));
                b.norm.beta = Param::from_tensor(t(3));
                b
            };
            let xd = random(&[n, cin, h, w], -1.0, 1.0, &mut r);
            let gy: Tensor<4> =
                Tensor::from_data(random(&[n, cout, h, w], -1.0, 1.0, &mut r), &dev);
            let run = |host_op: bool| {
                let b = block();
                let x: Tensor<4> = Tensor::from_data(xd.clone(), &dev).require_grad();
                assert!(b.host_kernel_applies(&x));
                let y = if host_op {
                    b.forward_host(x.clone())
                } else {
                    b.forward_tensor_ops(x.clone())
                };
                let grads = (y.clone() * gy.clone()).sum().backward();
                let g = |t: Option<Tensor<4>>| flat(t.expect("gradient"));
                let g1 = |t: Option<Tensor<1>>| host(t.expect("gradient"));
                vec![
                    flat(y),
                    g(x.grad(&grads)),
                    g(b.conv.weight.val().grad(&grads)),
                    g1(b.conv.bias.as_ref().unwrap().val().grad(&grads)),
                    g1(b.norm.gamma.val().grad(&grads)),
                    g1(b.norm.beta.val().grad(&grads)),
                    host(b.norm.running_mean.value_sync()),
                    host(b.norm.running_var.value_sync()),
                ]
            };
            let (op, ops) = (run(true), run(false));
            let names = [
                "y",
                "dx",
                "dw",
                "db",
                "dgamma",
                "dbeta",
                "running mean",
                "running var",
            ];
            for ((a, b), name) in op.iter().zip(&ops).zip(names) {
                // dL/db is rounding noise on both sides (the batch mean cancels the bias).
                let tol = if name == "db" { 1.0 } else { 2e-5 };
                close(a, b, tol, name);
            }
            let scale = ops[2].iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(
                op[3].iter().all(|v| v.abs() < 1e-4 * scale.max(1.0)),
                "db {:?}",
                op[3]
            );
        }
    }

    /// Off an autodiff device the block runs the inference host kernel (running statistics);
    /// it equals burn's tensor ops there.
    #[test]
    fn inference_matches_burn_tensor_ops() {
        let dev = Device::flex();
        let mut r = ChaCha8Rng::seed_from_u64(7);
        let (n, c, h, w) = (3, 4, 6, 5);
        let mut b = ConvBlock::new(c, c, &dev);
        b.conv.weight = Param::from_tensor(Tensor::from_data(
            random(&[c, c, 3, 3], -0.5, 0.5, &mut r),
            &dev,
        ));
        b.norm.gamma = Param::from_tensor(Tensor::from_data(random(&[c], 0.5, 1.5, &mut r), &dev));
        b.norm
            .running_mean
            .update(Tensor::from_data(random(&[c], -0.2, 0.2, &mut r), &dev));
        b.norm
            .running_var
            .update(Tensor::from_data(random(&[c], 0.5, 2.0, &mut r), &dev));
        let _ = b.norm.running_var.value_sync();
        let _ = b.norm.running_mean.value_sync();
        let x: Tensor<4> = Tensor::from_data(random(&[n, c, h, w], -1.0, 1.0, &mut r), &dev);
        let fast = flat(b.forward(x.clone()));
        let slow = flat(b.forward_tensor_ops(x));
        close(&fast, &slow, 1e-5, "inference y");
        let stats = host(b.norm.running_var.value());
        assert!(
            stats.iter().all(|&v| v != 1.0),
            "running statistics were set: {stats:?}"
        );
    }
}
