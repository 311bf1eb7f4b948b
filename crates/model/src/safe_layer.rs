//! The SAFE layer: the SAFE operator as a burn autodiff op (paper section 2.4).
//!
//! `safe_propagate(F, a)` maps a batch of latent frames `F: [N, H, W]` with one `|alpha|` per
//! frame `a: [N]` to `P = S(a) F`, the frames one frame interval later in the stable
//! (smoothing) direction. `N_sub` and the grid are fixed hyper-parameters, never part of the
//! graph.
//!
//! Two implementations with one meaning:
//! - on the CPU (flex) backend a custom autodiff op whose forward and backward are the Rust
//!   kernels of `safe_physics::batch` (stencil or spectral), ~50x faster than tensor ops;
//! - on any other backend (GPU), [`safe_propagate_tensor_ops`]: the literal sub-steps written
//!   with `roll`, differentiated by burn itself. It is also the reference the custom op is
//!   tested against, and both are tested against the physics core.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};
use safe_physics::batch::{BatchOp, Kernel};
use safe_physics::{Grid, SubSteps};

/// Fixed settings of the SAFE layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SafeSpec {
    pub dx: f64,
    pub dy: f64,
    pub dt_save: f64,
    pub n_sub: SubSteps,
    pub kernel: Kernel,
}

fn n_sub_code(n: SubSteps) -> usize {
    match n {
        SubSteps::Finite(k) => k as usize,
        SubSteps::Infinite => 0,
    }
}

fn batch_op(
    shape: &[usize],
    dx: f64,
    dy: f64,
    dt_save: f64,
    n_sub: usize,
    stencil: bool,
) -> BatchOp {
    assert_eq!(shape.len(), 3, "SAFE layer input must be [N, H, W]");
    let grid = Grid::new(shape[1], shape[2], dx, dy).expect("SAFE layer grid");
    let n = if n_sub == 0 {
        SubSteps::Infinite
    } else {
        SubSteps::Finite(n_sub as u32)
    };
    BatchOp::new(
        grid,
        dt_save,
        n,
        if stencil {
            Kernel::Stencil
        } else {
            Kernel::Spectral
        },
    )
}

/// The op on every backend we route: flex directly, autodiff with our backward.
#[backend_extension(Flex, Autodiff)]
pub trait SafeBackend: Backend {
    /// `P = S(a) F` for `F: [N, H, W]`, `a: [N]`; `n_sub == 0` means infinitely many sub-steps.
    fn safe_propagate(
        f: FloatTensor<Self>,
        a: FloatTensor<Self>,
        dx: f64,
        dy: f64,
        dt_save: f64,
        n_sub: usize,
        stencil: bool,
    ) -> FloatTensor<Self>;
}

/// The vector-Jacobian product on the inner (non-autodiff) backend.
pub trait SafeVjp: Backend {
    #[allow(clippy::too_many_arguments)]
    fn safe_vjp(
        f: FloatTensor<Self>,
        a: FloatTensor<Self>,
        g: FloatTensor<Self>,
        dx: f64,
        dy: f64,
        dt_save: f64,
        n_sub: usize,
        stencil: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

fn flex_f32(t: FlexTensor) -> FlexTensor {
    if t.dtype() != DType::F32 {
        FlexTensor::from_data(t.into_data().convert::<f32>())
    } else if t.as_slice::<f32>().is_none() {
        t.to_contiguous()
    } else {
        t
    }
}

fn slice_of(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 after flex_f32")
}

impl SafeBackend for Flex {
    fn safe_propagate(
        f: FlexTensor,
        a: FlexTensor,
        dx: f64,
        dy: f64,
        dt_save: f64,
        n_sub: usize,
        stencil: bool,
    ) -> FlexTensor {
        let shape = f.shape();
        let (f, a) = (flex_f32(f), flex_f32(a));
        let op = batch_op(shape.as_slice(), dx, dy, dt_save, n_sub, stencil);
        let out = op.forward(slice_of(&f), slice_of(&a));
        FlexTensor::from_data(TensorData::new(out, shape))
    }
}

impl SafeVjp for Flex {
    fn safe_vjp(
        f: FlexTensor,
        a: FlexTensor,
        g: FlexTensor,
        dx: f64,
        dy: f64,
        dt_save: f64,
        n_sub: usize,
        stencil: bool,
    ) -> (FlexTensor, FlexTensor) {
        let (fs, as_) = (f.shape(), a.shape());
        let (f, a, g) = (flex_f32(f), flex_f32(a), flex_f32(g));
        let op = batch_op(fs.as_slice(), dx, dy, dt_save, n_sub, stencil);
        let (gf, ga) = op.vjp(slice_of(&f), slice_of(&a), slice_of(&g));
        (
            FlexTensor::from_data(TensorData::new(gf, fs)),
            FlexTensor::from_data(TensorData::new(ga, as_)),
        )
    }
}

impl<B: Backend + SafeBackend + SafeVjp, C: CheckpointStrategy> SafeBackend for Autodiff<B, C> {
    fn safe_propagate(
        f: FloatTensor<Self>,
        a: FloatTensor<Self>,
        dx: f64,
        dy: f64,
        dt_save: f64,
        n_sub: usize,
        stencil: bool,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SafeBwd;

        impl<B: Backend + SafeVjp> Backward<B, 2> for SafeBwd {
            type State = (FloatTensor<B>, FloatTensor<B>, f64, f64, f64, usize, bool);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let (f, a, dx, dy, dt_save, n_sub, stencil) = ops.state;
                let [node_f, node_a] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (gf, ga) = B::safe_vjp(f, a, g, dx, dy, dt_save, n_sub, stencil);
                if let Some(node) = node_f {
                    grads.register::<B>(node.id, gf);
                }
                if let Some(node) = node_a {
                    grads.register::<B>(node.id, ga);
                }
            }
        }

        let (f_p, f_guard) = f.into_parts();
        let (a_p, a_guard) = a.into_parts();
        match SafeBwd
            .prepare::<C>([f_guard, a_guard])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out =
                    B::safe_propagate(f_p.clone(), a_p.clone(), dx, dy, dt_save, n_sub, stencil);
                prep.finish((f_p, a_p, dx, dy, dt_save, n_sub, stencil), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::safe_propagate(f_p, a_p, dx, dy, dt_save, n_sub, stencil))
            }
        }
    }
}

fn is_flex(t: &Tensor<3>) -> bool {
    matches!(
        t.device().without_autodiff().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}

/// The SAFE layer: `P = S(a) F` for `F: [N, H, W]` and `a: [N]` (one `|alpha|` per frame).
/// Uses the custom op on the CPU backend and [`safe_propagate_tensor_ops`] elsewhere.
pub fn safe_propagate(f: Tensor<3>, a: Tensor<1>, spec: &SafeSpec) -> Tensor<3> {
    if is_flex(&f) {
        Tensor::from_dispatch(<Dispatch as SafeBackend>::safe_propagate(
            f.into_dispatch(),
            a.into_dispatch(),
            spec.dx,
            spec.dy,
            spec.dt_save,
            n_sub_code(spec.n_sub),
            spec.kernel == Kernel::Stencil,
        ))
    } else {
        safe_propagate_tensor_ops(f, a, spec)
    }
}

/// Backend-generic SAFE operator: `N_sub` literal forward-Euler sub-steps of the periodic
/// five-point Laplacian with tensor ops; burn differentiates it. `N_sub = inf` is not
/// representable as sub-steps and panics here (use the CPU op).
pub fn safe_propagate_tensor_ops(f: Tensor<3>, a: Tensor<1>, spec: &SafeSpec) -> Tensor<3> {
    let n = match spec.n_sub {
        SubSteps::Finite(n) => n,
        SubSteps::Infinite => panic!("N_sub = inf needs the spectral CPU kernel"),
    };
    let h = spec.dt_save / n as f64;
    let [b, _, _] = f.dims();
    let a3 = a.reshape([b, 1, 1]);
    let kx = a3.clone().mul_scalar(h / (spec.dx * spec.dx));
    let ky = a3.mul_scalar(h / (spec.dy * spec.dy));
    let mut p = f;
    for _ in 0..n {
        let two_p = p.clone().mul_scalar(2.0);
        let dxx = p.clone().roll_dim(1, 1) + p.clone().roll_dim(-1, 1) - two_p.clone();
        let dyy = p.clone().roll_dim(1, 2) + p.clone().roll_dim(-1, 2) - two_p;
        p = p + kx.clone() * dxx + ky.clone() * dyy;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use safe_physics::operator::SpectralSafe;

    fn data(n: usize, h: usize, w: usize, seed: u64) -> Vec<f32> {
        // Simple deterministic pseudo-random values (no rand dependency in this crate).
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n * h * w)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    fn spec(n_sub: SubSteps, kernel: Kernel) -> SafeSpec {
        SafeSpec {
            dx: 0.5,
            dy: 0.7,
            dt_save: 0.25,
            n_sub,
            kernel,
        }
    }

    #[test]
    fn custom_op_matches_physics_core_and_tensor_ops() {
        let dev = Device::flex();
        let (n, h, w) = (3, 10, 12);
        let fv = data(n, h, w, 1);
        let av = vec![0.15f32, 0.4, 0.7];
        let grid = Grid::new(h, w, 0.5, 0.7).unwrap();
        let phys = SpectralSafe::new(grid);
        for ns in [1u32, 5, 50] {
            let reference: Vec<f64> = (0..n)
                .flat_map(|k| {
                    phys.apply(
                        &fv[k * h * w..(k + 1) * h * w],
                        av[k] as f64,
                        0.25,
                        SubSteps::Finite(ns),
                    )
                })
                .collect();
            let f = Tensor::<3>::from_data(TensorData::new(fv.clone(), [n, h, w]), &dev);
            let a = Tensor::<1>::from_data(TensorData::new(av.clone(), [n]), &dev);
            for kernel in [Kernel::Stencil, Kernel::Spectral] {
                let p: Vec<f32> =
                    safe_propagate(f.clone(), a.clone(), &spec(SubSteps::Finite(ns), kernel))
                        .into_data()
                        .try_into_vec()
                        .unwrap();
                let scale = reference.iter().fold(1f64, |m, x| m.max(x.abs()));
                for (x, y) in p.iter().zip(&reference) {
                    assert!(
                        (*x as f64 - y).abs() < 1e-5 * scale,
                        "{kernel:?} n_sub={ns}"
                    );
                }
            }
            let t: Vec<f32> = safe_propagate_tensor_ops(
                f.clone(),
                a.clone(),
                &spec(SubSteps::Finite(ns), Kernel::Stencil),
            )
            .into_data()
            .try_into_vec()
            .unwrap();
            let scale = reference.iter().fold(1f64, |m, x| m.max(x.abs()));
            for (x, y) in t.iter().zip(&reference) {
                assert!(
                    (*x as f64 - y).abs() < 1e-5 * scale,
                    "tensor ops n_sub={ns}"
                );
            }
        }
    }

    /// Gradients of `L = sum(P * G)` w.r.t. F and a from the custom op, from burn's own
    /// autodiff of the tensor-op version, and from central finite differences.
    #[test]
    fn custom_op_gradients_match_autodiff_and_finite_differences() {
        let dev = Device::flex().autodiff();
        let (n, h, w) = (2, 8, 9);
        let fv = data(n, h, w, 2);
        let gv = data(n, h, w, 3);
        let av = vec![0.3f32, 0.55];
        let loss_grads = |kernel: Option<Kernel>, ns: SubSteps| -> (Vec<f32>, Vec<f32>) {
            let f =
                Tensor::<3>::from_data(TensorData::new(fv.clone(), [n, h, w]), &dev).require_grad();
            let a = Tensor::<1>::from_data(TensorData::new(av.clone(), [n]), &dev).require_grad();
            let g = Tensor::<3>::from_data(TensorData::new(gv.clone(), [n, h, w]), &dev);
            let p = match kernel {
                Some(k) => safe_propagate(f.clone(), a.clone(), &spec(ns, k)),
                None => safe_propagate_tensor_ops(f.clone(), a.clone(), &spec(ns, Kernel::Stencil)),
            };
            let grads = (p * g).sum().backward();
            (
                f.grad(&grads).unwrap().into_data().try_into_vec().unwrap(),
                a.grad(&grads).unwrap().into_data().try_into_vec().unwrap(),
            )
        };
        for ns in [SubSteps::Finite(3), SubSteps::Finite(20)] {
            let (gf_ref, ga_ref) = loss_grads(None, ns);
            for k in [Kernel::Stencil, Kernel::Spectral] {
                let (gf, ga) = loss_grads(Some(k), ns);
                for (x, y) in gf.iter().zip(&gf_ref) {
                    assert!((x - y).abs() < 1e-4, "{k:?} {ns}: dF {x} {y}");
                }
                for (x, y) in ga.iter().zip(&ga_ref) {
                    assert!(
                        (x - y).abs() < 1e-3 * (1.0 + y.abs()),
                        "{k:?} {ns}: da {x} {y}"
                    );
                }
            }
        }
        // Finite differences in a (f64 physics operator) for the infinite sub-step case.
        let (_, ga) = loss_grads(Some(Kernel::Spectral), SubSteps::Infinite);
        let grid = Grid::new(h, w, 0.5, 0.7).unwrap();
        let phys = SpectralSafe::new(grid);
        for k in 0..n {
            let l = |a: f64| -> f64 {
                phys.apply(&fv[k * h * w..(k + 1) * h * w], a, 0.25, SubSteps::Infinite)
                    .iter()
                    .zip(&gv[k * h * w..(k + 1) * h * w])
                    .map(|(p, g)| p * *g as f64)
                    .sum()
            };
            let fd = (l(av[k] as f64 + 1e-4) - l(av[k] as f64 - 1e-4)) / 2e-4;
            assert!(
                (fd - ga[k] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "inf da: {fd} {}",
                ga[k]
            );
        }
    }
}
