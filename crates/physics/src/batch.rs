//! The SAFE operator over a batch of frames, with its vector-Jacobian product: the CPU
//! kernels behind the neural SAFE layer (`safe-model`'s custom autodiff op).
//!
//! `P[n] = S(a[n]) F[n]` for every frame `n`, each with its own `|alpha|`. Because `S` is
//! symmetric, the gradients of a scalar loss with upstream gradient `G = dL/dP` are
//! `dL/dF[n] = S(a[n]) G[n]` and `dL/da[n] = <G[n], S'(a[n]) F[n]>`, with
//! `S' = N h L (I + a h L)^(N-1)` for the stencil and `m'_k` per mode for the spectral form.
//! Two kernels compute the same map: [`Kernel::Stencil`] (sub-steps, f32) and
//! [`Kernel::Spectral`] (FFT, f64 inside, any `N_sub` including infinity).

use crate::fft2::C64;
use crate::grid::Grid;
use crate::laplacian::{Edge, euler_step, laplacian};
use crate::operator::{Laplacian, OperatorSpec, SafeOperator, SubSteps};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Stencil,
    Spectral,
}

impl std::str::FromStr for Kernel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "stencil" => Ok(Kernel::Stencil),
            "spectral" => Ok(Kernel::Spectral),
            _ => Err(format!("unknown SAFE kernel '{s}' (stencil or spectral)")),
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kernel::Stencil => "stencil",
            Kernel::Spectral => "spectral",
        })
    }
}

/// Everything the batch kernels need besides the data.
#[derive(Clone)]
pub struct BatchOp {
    pub op: SafeOperator,
    pub kernel: Kernel,
}

/// `(dt_sub, N_sub)` when the literal stencil can run this operator (five-point, finite
/// sub-steps, no low-pass).
fn stencil_steps(spec: OperatorSpec, dt_save: f64) -> Option<(f64, u32)> {
    match (spec.laplacian, spec.n_sub) {
        (Laplacian::FivePoint, SubSteps::Finite(n)) if SafeOperator::filter_order(spec) == 0 => {
            Some((dt_save / n as f64, n))
        }
        _ => None,
    }
}

impl BatchOp {
    /// The stencil kernel exists only for the five-point operator with finite sub-steps;
    /// every other form runs spectrally.
    pub fn new(grid: Grid, spec: OperatorSpec, dt_save: f64, kernel: Kernel) -> BatchOp {
        let kernel = if stencil_steps(spec, dt_save).is_none() {
            Kernel::Spectral
        } else {
            kernel
        };
        BatchOp {
            op: SafeOperator::new(grid, spec, dt_save),
            kernel,
        }
    }

    pub fn grid(&self) -> &Grid {
        &self.op.grid
    }

    fn edge(&self) -> Edge {
        Edge::of(self.op.spec.boundary)
    }

    fn check(&self, f: &[f32], a: &[f32]) -> usize {
        let g = self.grid();
        let n = g.len();
        assert_eq!(
            f.len() % n,
            0,
            "batch is not a whole number of {}x{} frames",
            g.nx,
            g.ny
        );
        assert_eq!(f.len() / n, a.len(), "one |alpha| per frame");
        n
    }

    /// `P[n] = Phi S(a[n]) F[n]`.
    pub fn forward(&self, f: &[f32], a: &[f32]) -> Vec<f32> {
        let n = self.check(f, a);
        let mut out = vec![0f32; f.len()];
        let (g, edge) = (*self.grid(), self.edge());
        match (self.kernel, stencil_steps(self.op.spec, self.op.dt_save)) {
            (Kernel::Stencil, Some((h, ns))) => {
                out.par_chunks_mut(n)
                    .zip(f.par_chunks(n))
                    .zip(a.par_iter())
                    .for_each_init(
                        || vec![0f32; n],
                        |tmp, ((o, x), &ak)| substeps(x, o, tmp, &g, ak as f64 * h, ns, edge),
                    );
            }
            _ => {
                let b = &self.op.basis;
                out.par_chunks_mut(n)
                    .zip(f.par_chunks(n))
                    .zip(a.par_iter())
                    .for_each_init(
                        || {
                            (
                                b.scratch(),
                                vec![C64::default(); b.n_coeffs()],
                                vec![0f64; n],
                            )
                        },
                        |(s, spec, buf), ((o, x), &ak)| {
                            b.forward(x, spec, s);
                            self.op.apply_coeffs(spec, ak as f64, 1);
                            b.inverse(spec, buf, s);
                            for (d, &v) in o.iter_mut().zip(buf.iter()) {
                                *d = v as f32;
                            }
                        },
                    );
            }
        }
        out
    }

    /// Vector-Jacobian product: `(dL/dF, dL/da)` from `G = dL/dP`. `Phi S` is symmetric
    /// (orthonormal bases, symmetric stencils), so `dL/dF = Phi S G`.
    pub fn vjp(&self, f: &[f32], a: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let n = self.check(f, a);
        assert_eq!(g.len(), f.len());
        let mut gf = vec![0f32; f.len()];
        let mut ga = vec![0f32; a.len()];
        let (grid, edge) = (*self.grid(), self.edge());
        match (self.kernel, stencil_steps(self.op.spec, self.op.dt_save)) {
            (Kernel::Stencil, Some((h, ns))) => {
                gf.par_chunks_mut(n)
                    .zip(ga.par_iter_mut())
                    .zip(f.par_chunks(n).zip(g.par_chunks(n)).zip(a.par_iter()))
                    .for_each_init(
                        || (vec![0f32; n], vec![0f32; n], vec![0f32; n]),
                        |(t1, t2, t3), ((gfo, gao), ((x, gx), &ak))| {
                            let ak = ak as f64;
                            substeps(gx, gfo, t1, &grid, ak * h, ns, edge);
                            // dL/da = N h <G, L P_{N-1}>, P_{N-1} = N-1 sub-steps of F.
                            substeps(x, t2, t1, &grid, ak * h, ns - 1, edge);
                            laplacian(t2, t3, &grid, edge);
                            let dot: f64 = gx
                                .iter()
                                .zip(t3.iter())
                                .map(|(&p, &q)| p as f64 * q as f64)
                                .sum();
                            *gao = (ns as f64 * h * dot) as f32;
                        },
                    );
            }
            _ => {
                let b = &self.op.basis;
                let nx = grid.nx;
                let norm = b.norm();
                gf.par_chunks_mut(n)
                    .zip(ga.par_iter_mut())
                    .zip(f.par_chunks(n).zip(g.par_chunks(n)).zip(a.par_iter()))
                    .for_each_init(
                        || {
                            (
                                b.scratch(),
                                vec![C64::default(); b.n_coeffs()],
                                vec![C64::default(); b.n_coeffs()],
                                vec![0f64; n],
                            )
                        },
                        |(s, fs, gs, buf), ((gfo, gao), ((x, gx), &ak))| {
                            let ak = ak as f64;
                            b.forward(x, fs, s);
                            b.forward(gx, gs, s);
                            // <G, Phi S' F> by Parseval.
                            let mut dot = 0.0;
                            for ky in 0..b.rows() {
                                let w = b.multiplicity(ky);
                                for kx in 0..nx {
                                    let i = ky * nx + kx;
                                    let (_, d1, _) = self.op.multiplier(self.op.mu[i], ak, 1);
                                    dot += w
                                        * self.op.filter[i]
                                        * d1
                                        * (gs[i].re * fs[i].re + gs[i].im * fs[i].im);
                                }
                            }
                            *gao = (dot * norm) as f32;
                            self.op.apply_coeffs(gs, ak, 1);
                            b.inverse(gs, buf, s);
                            for (d, &v) in gfo.iter_mut().zip(buf.iter()) {
                                *d = v as f32;
                            }
                        },
                    );
            }
        }
        (gf, ga)
    }
}

/// `k` forward-Euler sub-steps of size `ah = |alpha| dt_sub` from `x` into `out`.
fn substeps(x: &[f32], out: &mut [f32], tmp: &mut [f32], g: &Grid, ah: f64, k: u32, edge: Edge) {
    let kx = (ah / (g.dx * g.dx)) as f32;
    let ky = (ah / (g.dy * g.dy)) as f32;
    // Alternate buffers so the last sub-step lands in `out`.
    let (mut src, mut dst): (&mut [f32], &mut [f32]) = if k % 2 == 1 {
        tmp.copy_from_slice(x);
        (tmp, out)
    } else {
        out.copy_from_slice(x);
        (out, tmp)
    };
    for _ in 0..k {
        euler_step(src, dst, g.nx, g.ny, kx, ky, edge);
        std::mem::swap(&mut src, &mut dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::Boundary;
    use rand::{Rng, SeedableRng};

    fn setup(seed: u64) -> (Grid, Vec<f32>, Vec<f32>, Vec<f32>) {
        let g = Grid::new(12, 10, 0.5, 0.7).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let f: Vec<f32> = (0..3 * g.len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let gr: Vec<f32> = (0..3 * g.len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        (g, f, vec![0.2, 0.45, 0.7], gr)
    }

    fn spec(boundary: Boundary, laplacian: Laplacian, n_sub: SubSteps) -> OperatorSpec {
        OperatorSpec {
            boundary,
            laplacian,
            n_sub,
        }
    }

    #[test]
    fn kernels_agree_on_forward_and_vjp() {
        let (g, f, a, gr) = setup(1);
        for boundary in [Boundary::Periodic, Boundary::ZeroFlux, Boundary::Open] {
            for ns in [1, 2, 5, 50] {
                let sp = spec(boundary, Laplacian::FivePoint, SubSteps::Finite(ns));
                let st = BatchOp::new(g, sp, 0.25, Kernel::Stencil);
                let fo = BatchOp::new(g, sp, 0.25, Kernel::Spectral);
                assert_eq!(st.kernel, Kernel::Stencil);
                let (p1, p2) = (st.forward(&f, &a), fo.forward(&f, &a));
                let scale = p1.iter().fold(1f32, |m, x| m.max(x.abs()));
                for (x, y) in p1.iter().zip(&p2) {
                    assert!((x - y).abs() <= 2e-5 * scale, "{sp}: {x} {y}");
                }
                let ((gf1, ga1), (gf2, ga2)) = (st.vjp(&f, &a, &gr), fo.vjp(&f, &a, &gr));
                let scale = gf1.iter().fold(1f32, |m, x| m.max(x.abs()));
                for (x, y) in gf1.iter().zip(&gf2) {
                    assert!((x - y).abs() <= 2e-5 * scale, "{sp}");
                }
                for (x, y) in ga1.iter().zip(&ga2) {
                    assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{sp}: {x} {y}");
                }
            }
        }
    }

    /// Every differentiable form: `L = <G, P(F, a)>` against central differences of the
    /// f64 operator (one gradient test per form, the burn pattern).
    #[test]
    fn vjp_matches_finite_differences_for_every_form() {
        let (g, f, a, gr) = setup(2);
        for &boundary in Boundary::ALL {
            for &laplacian in Laplacian::ALL {
                for (n_sub, kernel) in [
                    (SubSteps::Finite(5), Kernel::Stencil),
                    (SubSteps::Finite(50), Kernel::Spectral),
                    (SubSteps::Infinite, Kernel::Spectral),
                ] {
                    let sp = spec(boundary, laplacian, n_sub);
                    let op = BatchOp::new(g, sp, 0.25, kernel);
                    let (gf, ga) = op.vjp(&f, &a, &gr);
                    let n = g.len();
                    let reference = SafeOperator::new(g, sp, 0.25);
                    let loss = |ff: &[f32], k: usize, ak: f64| -> f64 {
                        let x: Vec<f64> =
                            ff[k * n..(k + 1) * n].iter().map(|&v| v as f64).collect();
                        let p = reference.apply(&x, ak, 1);
                        p.iter()
                            .zip(&gr[k * n..(k + 1) * n])
                            .map(|(x, y)| x * *y as f64)
                            .sum()
                    };
                    for k in 0..3 {
                        let h = 1e-4;
                        let fd = (loss(&f, k, a[k] as f64 + h) - loss(&f, k, a[k] as f64 - h))
                            / (2.0 * h);
                        assert!(
                            (fd - ga[k] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                            "{sp} da[{k}]: {fd} {}",
                            ga[k]
                        );
                        for idx in [0, 17, n - 1] {
                            let (mut fp, mut fm) = (f.clone(), f.clone());
                            fp[k * n + idx] += 1e-2;
                            fm[k * n + idx] -= 1e-2;
                            let fd = (loss(&fp, k, a[k] as f64) - loss(&fm, k, a[k] as f64)) / 2e-2;
                            assert!(
                                (fd - gf[k * n + idx] as f64).abs() < 1e-3,
                                "{sp} dF: {fd} {}",
                                gf[k * n + idx]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn stencil_kernel_matches_the_literal_reference() {
        let (g, f, a, _) = setup(3);
        for boundary in [Boundary::Periodic, Boundary::ZeroFlux] {
            let sp = spec(boundary, Laplacian::FivePoint, SubSteps::Finite(7));
            let p = BatchOp::new(g, sp, 0.25, Kernel::Stencil).forward(&f, &a);
            let n = g.len();
            for k in 0..3 {
                let x: Vec<f64> = f[k * n..(k + 1) * n].iter().map(|&v| v as f64).collect();
                let want =
                    crate::operator::reference::safe_reference(&x, &g, sp, a[k] as f64, 0.25);
                for (x, y) in p[k * n..(k + 1) * n].iter().zip(&want) {
                    assert!((*x as f64 - y).abs() < 1e-5);
                }
            }
        }
    }
}
