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
use crate::laplacian::laplacian;
use crate::operator::{SpectralSafe, SubSteps, multiplier, safe_stencil_into};
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

/// Everything the batch kernels need besides the data.
#[derive(Clone)]
pub struct BatchOp {
    pub grid: Grid,
    pub dt_save: f64,
    pub n_sub: SubSteps,
    pub kernel: Kernel,
    spectral: Option<SpectralSafe>,
}

impl BatchOp {
    /// The stencil kernel cannot represent `N_sub = inf`; that case always runs spectrally.
    pub fn new(grid: Grid, dt_save: f64, n_sub: SubSteps, kernel: Kernel) -> BatchOp {
        let kernel = if n_sub == SubSteps::Infinite {
            Kernel::Spectral
        } else {
            kernel
        };
        let spectral = (kernel == Kernel::Spectral).then(|| SpectralSafe::new(grid));
        BatchOp {
            grid,
            dt_save,
            n_sub,
            kernel,
            spectral,
        }
    }

    fn check(&self, f: &[f32], a: &[f32]) -> usize {
        let n = self.grid.len();
        assert_eq!(
            f.len() % n,
            0,
            "batch is not a whole number of {}x{} frames",
            self.grid.nx,
            self.grid.ny
        );
        assert_eq!(f.len() / n, a.len(), "one |alpha| per frame");
        n
    }

    /// `P[n] = S(a[n]) F[n]`.
    pub fn forward(&self, f: &[f32], a: &[f32]) -> Vec<f32> {
        let n = self.check(f, a);
        let mut out = vec![0f32; f.len()];
        match (self.kernel, self.n_sub) {
            (Kernel::Stencil, SubSteps::Finite(ns)) => {
                out.par_chunks_mut(n)
                    .zip(f.par_chunks(n))
                    .zip(a.par_iter())
                    .for_each_init(
                        || vec![0f32; n],
                        |tmp, ((o, x), &ak)| {
                            safe_stencil_into(x, o, tmp, &self.grid, ak as f64, self.dt_save, ns)
                        },
                    );
            }
            _ => {
                let sp = self.spectral.as_ref().expect("spectral plan");
                out.par_chunks_mut(n)
                    .zip(f.par_chunks(n))
                    .zip(a.par_iter())
                    .for_each_init(
                        || {
                            (
                                sp.fft.scratch(),
                                vec![C64::default(); sp.fft.spec_len()],
                                vec![0f64; n],
                            )
                        },
                        |(s, spec, buf), ((o, x), &ak)| {
                            sp.fft.forward(x, spec, s);
                            sp.apply_spectrum(spec, ak as f64, self.dt_save, self.n_sub);
                            sp.fft.inverse(spec, buf, s);
                            for (d, &v) in o.iter_mut().zip(buf.iter()) {
                                *d = v as f32;
                            }
                        },
                    );
            }
        }
        out
    }

    /// Vector-Jacobian product: `(dL/dF, dL/da)` from `G = dL/dP`.
    pub fn vjp(&self, f: &[f32], a: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let n = self.check(f, a);
        assert_eq!(g.len(), f.len());
        let mut gf = vec![0f32; f.len()];
        let mut ga = vec![0f32; a.len()];
        match (self.kernel, self.n_sub) {
            (Kernel::Stencil, SubSteps::Finite(ns)) => {
                let h = self.dt_save / ns as f64;
                gf.par_chunks_mut(n)
                    .zip(ga.par_iter_mut())
                    .zip(f.par_chunks(n).zip(g.par_chunks(n)).zip(a.par_iter()))
                    .for_each_init(
                        || (vec![0f32; n], vec![0f32; n], vec![0f32; n]),
                        |(t1, t2, t3), ((gfo, gao), ((x, gx), &ak))| {
                            let ak = ak as f64;
                            // dL/dF = S G (S is symmetric).
                            safe_stencil_into(gx, gfo, t1, &self.grid, ak, self.dt_save, ns);
                            // dL/da = N h <G, L P_{N-1}>, P_{N-1} = N-1 sub-steps of F.
                            if ns > 1 {
                                safe_stencil_into(
                                    x,
                                    t2,
                                    t1,
                                    &self.grid,
                                    ak,
                                    h * (ns - 1) as f64,
                                    ns - 1,
                                );
                            } else {
                                t2.copy_from_slice(x);
                            }
                            laplacian(t2, t3, &self.grid);
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
                let sp = self.spectral.as_ref().expect("spectral plan");
                let fft = &sp.fft;
                let nx = self.grid.nx;
                let norm = 1.0 / n as f64;
                gf.par_chunks_mut(n)
                    .zip(ga.par_iter_mut())
                    .zip(f.par_chunks(n).zip(g.par_chunks(n)).zip(a.par_iter()))
                    .for_each_init(
                        || {
                            (
                                fft.scratch(),
                                vec![C64::default(); fft.spec_len()],
                                vec![C64::default(); fft.spec_len()],
                                vec![0f64; n],
                            )
                        },
                        |(s, fs, gs, buf), ((gfo, gao), ((x, gx), &ak))| {
                            let ak = ak as f64;
                            fft.forward(x, fs, s);
                            fft.forward(gx, gs, s);
                            // <G, S' F> by Parseval over the half spectrum.
                            let mut dot = 0.0;
                            for ky in 0..fft.nyh() {
                                let w = fft.weight(ky);
                                for kx in 0..nx {
                                    let i = ky * nx + kx;
                                    let (_, d1, _) =
                                        multiplier(sp.mu[i], ak, self.dt_save, self.n_sub);
                                    dot += w * d1 * (gs[i].re * fs[i].re + gs[i].im * fs[i].im);
                                }
                            }
                            *gao = (dot * norm) as f32;
                            sp.apply_spectrum(gs, ak, self.dt_save, self.n_sub);
                            fft.inverse(gs, buf, s);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::laplacian::euler_step;
    use rand::{Rng, SeedableRng};

    /// Reference for the stencil kernel's `P_{N-1}`: plain sub-steps.
    fn substeps_naive(x: &[f32], grid: &Grid, a: f64, h: f64, k: u32) -> Vec<f32> {
        let mut p = x.to_vec();
        let mut q = x.to_vec();
        let kx = (h * a / (grid.dx * grid.dx)) as f32;
        let ky = (h * a / (grid.dy * grid.dy)) as f32;
        for _ in 0..k {
            euler_step(&p, &mut q, grid.nx, grid.ny, kx, ky);
            std::mem::swap(&mut p, &mut q);
        }
        p
    }

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

    #[test]
    fn kernels_agree_on_forward_and_vjp() {
        let (g, f, a, gr) = setup(1);
        for ns in [1, 2, 5, 50] {
            let st = BatchOp::new(g, 0.25, SubSteps::Finite(ns), Kernel::Stencil);
            let sp = BatchOp::new(g, 0.25, SubSteps::Finite(ns), Kernel::Spectral);
            let (p1, p2) = (st.forward(&f, &a), sp.forward(&f, &a));
            let scale = p1.iter().fold(1f32, |m, x| m.max(x.abs()));
            for (x, y) in p1.iter().zip(&p2) {
                assert!((x - y).abs() <= 2e-5 * scale, "n_sub={ns}: {x} {y}");
            }
            let ((gf1, ga1), (gf2, ga2)) = (st.vjp(&f, &a, &gr), sp.vjp(&f, &a, &gr));
            let scale = gf1.iter().fold(1f32, |m, x| m.max(x.abs()));
            for (x, y) in gf1.iter().zip(&gf2) {
                assert!((x - y).abs() <= 2e-5 * scale, "n_sub={ns}");
            }
            for (x, y) in ga1.iter().zip(&ga2) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                    "n_sub={ns}: {x} {y}"
                );
            }
        }
    }

    #[test]
    fn vjp_matches_finite_differences() {
        // L = <G, P(F, a)>; check dL/da and a few dL/dF entries against central differences
        // of the f64 spectral operator.
        let (g, f, a, gr) = setup(2);
        for (n_sub, kernel) in [
            (SubSteps::Finite(5), Kernel::Stencil),
            (SubSteps::Finite(50), Kernel::Spectral),
            (SubSteps::Infinite, Kernel::Spectral),
        ] {
            let op = BatchOp::new(g, 0.25, n_sub, kernel);
            let (gf, ga) = op.vjp(&f, &a, &gr);
            let n = g.len();
            let spec = SpectralSafe::new(g);
            let loss = |ff: &[f32], k: usize, ak: f64| -> f64 {
                let p = spec.apply(&ff[k * n..(k + 1) * n], ak, 0.25, n_sub);
                p.iter()
                    .zip(&gr[k * n..(k + 1) * n])
                    .map(|(x, y)| x * *y as f64)
                    .sum()
            };
            for k in 0..3 {
                let h = 1e-4;
                let fd = (loss(&f, k, a[k] as f64 + h) - loss(&f, k, a[k] as f64 - h)) / (2.0 * h);
                assert!(
                    (fd - ga[k] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                    "{n_sub} da[{k}]: {fd} {}",
                    ga[k]
                );
                for idx in [0, 17, n - 1] {
                    let (mut fp, mut fm) = (f.clone(), f.clone());
                    fp[k * n + idx] += 1e-2;
                    fm[k * n + idx] -= 1e-2;
                    let fd = (loss(&fp, k, a[k] as f64) - loss(&fm, k, a[k] as f64)) / 2e-2;
                    assert!(
                        (fd - gf[k * n + idx] as f64).abs() < 1e-3,
                        "{n_sub} dF: {fd} {}",
                        gf[k * n + idx]
                    );
                }
            }
        }
    }

    #[test]
    fn stencil_kernel_matches_plain_sub_steps() {
        let (g, f, a, _) = setup(3);
        let op = BatchOp::new(g, 0.25, SubSteps::Finite(7), Kernel::Stencil);
        let p = op.forward(&f, &a);
        let n = g.len();
        for k in 0..3 {
            let want = substeps_naive(&f[k * n..(k + 1) * n], &g, a[k] as f64, 0.25 / 7.0, 7);
            for (x, y) in p[k * n..(k + 1) * n].iter().zip(&want) {
                assert!((x - y).abs() < 1e-6);
            }
        }
    }
}
