//! The SAFE layer: the SAFE operator as a burn autodiff op (paper section 2.4).
//!
//! `safe_propagate(F, a)` maps a batch of latent frames `F: [N, H, W]` with one `|alpha|` per
//! frame `a: [N]` to `P = Phi S(a) F`, the frames one frame interval later in the stable
//! (smoothing) direction, for any operator of the family ([`OperatorSpec`]: boundary x
//! discretisation x sub-steps; `Phi` is the identity except on open continuum windows).
//! The operator, the grid and the frame interval are fixed hyper-parameters, never part of
//! the graph. With `a = 0` it returns `Phi F`: the target a prediction is compared with.
//!
//! Two implementations with one meaning:
//! - on the CPU (flex) backend a custom autodiff op whose forward and backward are the Rust
//!   kernels of `safe_physics::batch` (stencil or spectral), ~50x faster than tensor ops;
//! - on any other backend (GPU), [`safe_propagate_tensor_ops`]: the literal five-point
//!   sub-steps written with `roll` (periodic) or edge padding (mirror), differentiated by
//!   burn itself. It is also the reference the custom op is tested against, and both are
//!   tested against the physics core.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};
use safe_physics::batch::{BatchOp, Kernel};
use safe_physics::{Boundary, Grid, Laplacian, OperatorSpec, SubSteps};

/// Fixed settings of the SAFE layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SafeSpec {
    pub dx: f64,
    pub dy: f64,
    pub dt_save: f64,
    pub op: OperatorSpec,
    pub kernel: Kernel,
}

fn batch_op(shape: &[usize], s: &SafeSpec) -> BatchOp {
    assert_eq!(shape.len(), 3, "SAFE layer input must be [N, H, W]");
    let grid = Grid::new(shape[1], shape[2], s.dx, s.dy).expect("SAFE layer grid");
    BatchOp::new(grid, s.op, s.dt_save, s.kernel)
}

/// The op on every backend we route: flex directly, autodiff with our backward.
#[backend_extension(Flex, Autodiff)]
pub trait SafeBackend: Backend {
    /// `P = Phi S(a) F` for `F: [N, H, W]`, `a: [N]`.
    fn safe_propagate(
        f: FloatTensor<Self>,
        a: FloatTensor<Self>,
        spec: SafeSpec,
    ) -> FloatTensor<Self>;
}

/// The vector-Jacobian product on the inner (non-autodiff) backend.
pub trait SafeVjp: Backend {
    fn safe_vjp(
        f: FloatTensor<Self>,
        a: FloatTensor<Self>,
        g: FloatTensor<Self>,
        spec: SafeSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// A flex tensor as contiguous `f32` (the host kernels' input); also used by the codec op.
pub(crate) fn flex_f32(t: FlexTensor) -> FlexTensor {
    if t.dtype() != DType::F32 {
        FlexTensor::from_data(t.into_data().convert::<f32>())
    } else if t.as_slice::<f32>().is_none() {
        t.to_contiguous()
    } else {
        t
    }
}

pub(crate) fn slice_of(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 after flex_f32")
}

impl SafeBackend for Flex {
    fn safe_propagate(f: FlexTensor, a: FlexTensor, spec: SafeSpec) -> FlexTensor {
        let shape = f.shape();
        let (f, a) = (flex_f32(f), flex_f32(a));
        let op = batch_op(shape.as_slice(), &spec);
        let out = op.forward(slice_of(&f), slice_of(&a));
        FlexTensor::from_data(TensorData::new(out, shape))
    }
}

impl SafeVjp for Flex {
    fn safe_vjp(
        f: FlexTensor,
        a: FlexTensor,
        g: FlexTensor,
        spec: SafeSpec,
    ) -> (FlexTensor, FlexTensor) {
        let (fs, as_) = (f.shape(), a.shape());
        let (f, a, g) = (flex_f32(f), flex_f32(a), flex_f32(g));
        let op = batch_op(fs.as_slice(), &spec);
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
        spec: SafeSpec,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SafeBwd;

        impl<B: Backend + SafeVjp> Backward<B, 2> for SafeBwd {
            type State = (FloatTensor<B>, FloatTensor<B>, SafeSpec);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _ck: &mut Checkpointer,
            ) {
                let (f, a, spec) = ops.state;
                let [node_f, node_a] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (gf, ga) = B::safe_vjp(f, a, g, spec);
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
                let out = B::safe_propagate(f_p.clone(), a_p.clone(), spec);
                prep.finish((f_p, a_p, spec), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::safe_propagate(f_p, a_p, spec)),
        }
    }
}

/// The SAFE layer: `P = Phi S(a) F` for `F: [N, H, W]` and `a: [N]` (one `|alpha|` per
/// frame). Uses the custom op on the CPU backend and [`safe_propagate_tensor_ops`] elsewhere.
pub fn safe_propagate(f: Tensor<3>, a: Tensor<1>, spec: &SafeSpec) -> Tensor<3> {
    if crate::is_flex(&f.device()) {
        Tensor::from_dispatch(<Dispatch as SafeBackend>::safe_propagate(
            f.into_dispatch(),
            a.into_dispatch(),
            *spec,
        ))
    } else {
        safe_propagate_tensor_ops(f, a, spec)
    }
}

/// Whether [`safe_propagate_tensor_ops`] can represent this operator (the literal stencil:
/// five-point, finite sub-steps, no low-pass).
pub fn tensor_ops_supported(op: OperatorSpec) -> bool {
    op.laplacian == Laplacian::FivePoint && matches!(op.n_sub, SubSteps::Finite(_))
}

/// One second difference along `dim` with the boundary's edge rule.
fn second_difference(p: Tensor<3>, dim: usize, boundary: Boundary) -> Tensor<3> {
    let n = p.dims()[dim];
    let (prev, next) = match boundary {
        Boundary::Periodic => (p.clone().roll_dim(1, dim), p.clone().roll_dim(-1, dim)),
        // Half-sample mirror: the value beyond the edge repeats the edge pixel.
        Boundary::ZeroFlux | Boundary::Open => (
            Tensor::cat(
                vec![
                    p.clone().slice_dim(dim, 0..1),
                    p.clone().slice_dim(dim, 0..n - 1),
                ],
                dim,
            ),
            Tensor::cat(
                vec![
                    p.clone().slice_dim(dim, 1..n),
                    p.clone().slice_dim(dim, n - 1..n),
                ],
                dim,
            ),
        ),
    };
    prev + next - p.mul_scalar(2.0)
}

/// Backend-generic SAFE operator: `N_sub` literal forward-Euler sub-steps of the five-point
/// Laplacian with tensor ops; burn differentiates it. Other forms (continuum symbol,
/// `N_sub = inf`) have no stencil and panic here: check [`tensor_ops_supported`] first.
pub fn safe_propagate_tensor_ops(f: Tensor<3>, a: Tensor<1>, spec: &SafeSpec) -> Tensor<3> {
    assert!(
        tensor_ops_supported(spec.op),
        "the {} operator has no tensor-op form (it needs the spectral CPU kernel)",
        spec.op
    );
    let n = match spec.op.n_sub {
        SubSteps::Finite(n) => n,
        SubSteps::Infinite => unreachable!(),
    };
    let h = spec.dt_save / n as f64;
    let [b, _, _] = f.dims();
    let a3 = a.reshape([b, 1, 1]);
    let kx = a3.clone().mul_scalar(h / (spec.dx * spec.dx));
    let ky = a3.mul_scalar(h / (spec.dy * spec.dy));
    let mut p = f;
    for _ in 0..n {
        let dxx = second_difference(p.clone(), 1, spec.op.boundary);
        let dyy = second_difference(p.clone(), 2, spec.op.boundary);
        p = p + kx.clone() * dxx + ky.clone() * dyy;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use safe_physics::SafeOperator;

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

    fn spec(boundary: Boundary, laplacian: Laplacian, n_sub: SubSteps, kernel: Kernel) -> SafeSpec {
        SafeSpec {
            dx: 0.5,
            dy: 0.7,
            dt_save: 0.25,
            op: OperatorSpec {
                boundary,
                laplacian,
                n_sub,
            },
            kernel,
        }
    }

    /// Every form through the layer equals the physics core's operator, and the literal
    /// tensor-op form wherever it exists.
    #[test]
    fn custom_op_matches_physics_core_and_tensor_ops() {
        let dev = Device::flex();
        let (n, h, w) = (3, 10, 12);
        let fv = data(n, h, w, 1);
        let av = vec![0.15f32, 0.4, 0.7];
        let grid = Grid::new(h, w, 0.5, 0.7).unwrap();
        for &boundary in Boundary::ALL {
            for &laplacian in Laplacian::ALL {
                for ns in [
                    SubSteps::Finite(1),
                    SubSteps::Finite(5),
                    SubSteps::Finite(50),
                    SubSteps::Infinite,
                ] {
                    let s0 = spec(boundary, laplacian, ns, Kernel::Stencil);
                    let phys = SafeOperator::new(grid, s0.op, 0.25);
                    let reference: Vec<f64> = (0..n)
                        .flat_map(|k| phys.apply(&fv[k * h * w..(k + 1) * h * w], av[k] as f64, 1))
                        .collect();
                    let scale = reference.iter().fold(1f64, |m, x| m.max(x.abs()));
                    let f = Tensor::<3>::from_data(TensorData::new(fv.clone(), [n, h, w]), &dev);
                    let a = Tensor::<1>::from_data(TensorData::new(av.clone(), [n]), &dev);
                    for kernel in [Kernel::Stencil, Kernel::Spectral] {
                        let p: Vec<f32> =
                            safe_propagate(f.clone(), a.clone(), &SafeSpec { kernel, ..s0 })
                                .into_data()
                                .try_into_vec()
                                .unwrap();
                        for (x, y) in p.iter().zip(&reference) {
                            assert!((*x as f64 - y).abs() < 1e-5 * scale, "{kernel:?} {}", s0.op);
                        }
                    }
                    if tensor_ops_supported(s0.op) {
                        let t: Vec<f32> = safe_propagate_tensor_ops(f.clone(), a.clone(), &s0)
                            .into_data()
                            .try_into_vec()
                            .unwrap();
                        for (x, y) in t.iter().zip(&reference) {
                            assert!((*x as f64 - y).abs() < 1e-5 * scale, "tensor ops {}", s0.op);
                        }
                    }
                }
            }
        }
    }

    /// Gradients of `L = sum(P * G)` w.r.t. F and a from the custom op, from burn's own
    /// autodiff of the tensor-op version (where it exists), and from central finite
    /// differences of the physics core (every form).
    #[test]
    fn custom_op_gradients_match_autodiff_and_finite_differences() {
        let dev = Device::flex().autodiff();
        let (n, h, w) = (2, 8, 9);
        let fv = data(n, h, w, 2);
        let gv = data(n, h, w, 3);
        let av = vec![0.3f32, 0.55];
        let grid = Grid::new(h, w, 0.5, 0.7).unwrap();
        let loss_grads = |s: SafeSpec, tensor_ops: bool| -> (Vec<f32>, Vec<f32>) {
            let f =
                Tensor::<3>::from_data(TensorData::new(fv.clone(), [n, h, w]), &dev).require_grad();
            let a = Tensor::<1>::from_data(TensorData::new(av.clone(), [n]), &dev).require_grad();
            let g = Tensor::<3>::from_data(TensorData::new(gv.clone(), [n, h, w]), &dev);
            let p = if tensor_ops {
                safe_propagate_tensor_ops(f.clone(), a.clone(), &s)
            } else {
                safe_propagate(f.clone(), a.clone(), &s)
            };
            let grads = (p * g).sum().backward();
            (
                f.grad(&grads).unwrap().into_data().try_into_vec().unwrap(),
                a.grad(&grads).unwrap().into_data().try_into_vec().unwrap(),
            )
        };
        for &boundary in Boundary::ALL {
            for &laplacian in Laplacian::ALL {
                for ns in [
                    SubSteps::Finite(3),
                    SubSteps::Finite(20),
                    SubSteps::Infinite,
                ] {
                    let s0 = spec(boundary, laplacian, ns, Kernel::Spectral);
                    let (gf, ga) = loss_grads(s0, false);
                    if tensor_ops_supported(s0.op) {
                        let (gf_ref, ga_ref) = loss_grads(s0, true);
                        let (gf_st, ga_st) = loss_grads(
                            SafeSpec {
                                kernel: Kernel::Stencil,
                                ..s0
                            },
                            false,
                        );
                        for (got, want) in [(&gf, &gf_ref), (&gf_st, &gf_ref)] {
                            for (x, y) in got.iter().zip(want.iter()) {
                                assert!((x - y).abs() < 1e-4, "{}: dF {x} {y}", s0.op);
                            }
                        }
                        for (got, want) in [(&ga, &ga_ref), (&ga_st, &ga_ref)] {
                            for (x, y) in got.iter().zip(want.iter()) {
                                assert!(
                                    (x - y).abs() < 1e-3 * (1.0 + y.abs()),
                                    "{}: da {x} {y}",
                                    s0.op
                                );
                            }
                        }
                    }
                    let phys = SafeOperator::new(grid, s0.op, 0.25);
                    for k in 0..n {
                        let l = |a: f64| -> f64 {
                            phys.apply(&fv[k * h * w..(k + 1) * h * w], a, 1)
                                .iter()
                                .zip(&gv[k * h * w..(k + 1) * h * w])
                                .map(|(p, g)| p * *g as f64)
                                .sum()
                        };
                        let fd = (l(av[k] as f64 + 1e-4) - l(av[k] as f64 - 1e-4)) / 2e-4;
                        assert!(
                            (fd - ga[k] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                            "{} da: {fd} {}",
                            s0.op,
                            ga[k]
                        );
                    }
                }
            }
        }
    }
}
