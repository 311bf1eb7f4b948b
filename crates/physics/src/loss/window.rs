//! The SAFE loss of an open window: nothing is assumed outside the field of view.
//!
//! The operator runs on the mirrored window (the zero-flux operator, exact in the cosine
//! basis), and the loss counts only pixels deeper than the kernel's reach, where the mirror
//! cannot matter: `L_h(a) = mean_{t, x in I_h} (Phi S(a)^h F_t - Phi F_t+h)(x)^2`. The mask
//! makes the loss non-diagonal, so each evaluation transforms the predictions back to pixels;
//! the fit therefore locates the basin on a few frame pairs and polishes with exact Newton
//! steps on all of them ([`fit_window`]). Measured on crops of exact Fourier evolutions of a
//! larger sample (independent data): |alpha| error ~1e-10.

use super::curve::LossPoint;
use super::fit::{FitError, FitOptions, FitResult, check_range, default_range, minimise_1d_split};
use super::noise::NoiseModel;
use crate::basis::Basis;
use crate::dct2::{Dct2, Dct2PairScratch, Dct2Scratch};
use crate::fft2::C64;
use crate::grid::Grid;
use crate::operator::symbol::grid_multipliers;
use crate::operator::{Boundary, KERNEL_TAIL, OperatorSpec, SafeOperator, SubSteps};
use rayon::prelude::*;
use std::sync::Mutex;

/// Stride-1 frame pairs used to locate the basin before the all-pairs polish.
const COARSE_PAIRS: usize = 4;

/// The open-window SAFE loss of one video.
pub struct WindowLoss {
    pub op: SafeOperator,
    /// The same operator on the grid the transforms run at ([`transform_len`] per axis):
    /// the window, extended by its mirror image where its own length is slow to transform.
    padded: SafeOperator,
    pub strides: Vec<usize>,
    pub n_frames: usize,
    /// `Phi F_t` in pixels, `[T, nx*ny]`.
    target: Vec<f64>,
    /// Cosine coefficients of `Phi F_t` on the transform grid, `[T, py*px]` (transposed).
    coeffs: Vec<f64>,
    /// Interior depth per stride, `(along axis 1, along axis 2)`.
    pub margins: Vec<(usize, usize)>,
    /// Per stride: `|alpha|` on a log grid and the largest depth needed up to it (the
    /// kernel's reach is not monotone in `|alpha|`; its envelope is).
    reach: Vec<Vec<(f64, (usize, usize))>>,
    /// `|alpha|` the margins were sized for.
    pub margin_alpha: f64,
    /// Kernel mass allowed past the mask.
    pub tol: f64,
    pub noise: NoiseModel,
    /// Side of the square pixel blocks of the sandwich error bar.
    pub block: usize,
    /// Per pixel, the mean square of a high-pass of the frames where it is smallest: how
    /// the noise variance varies over the window (shot noise follows the intensity). Kept
    /// as its summed-area table (`[nx + 1, ny + 1]`), so any interior's mean is four reads.
    noise_sat: Vec<f64>,
    /// Quadrature of the white-noise terms over the continuous frequency square: per node
    /// `(Phi^2, weight)` on the cosine grid extended to `theta = pi` (trapezoid rule; an
    /// interior pixel sees the unbounded kernel, not the mirrored basis's trace), row major.
    quad: Vec<(f64, f64)>,
    /// The nodes' eigenvalues along each axis (`mu = mu_x + mu_y`).
    quad_mu: (Vec<f64>, Vec<f64>),
    /// Per-axis `Phi^2 w` of the quadrature (`quad` is their outer product).
    quad_fw: (Vec<f64>, Vec<f64>),
    /// Work buffers of finished evaluations, lent to the next (an evaluation needs ~0.7 MB
    /// per thread; allocating and zeroing them afresh cost a tenth of a zero-shot run).
    pool: Mutex<Vec<Workspace>>,
}

/// Where the polish's full Newton steps start ([`WindowLoss::ready_polish`]).
pub struct PolishStart {
    /// The frame pairs they evaluate.
    pub pairs: Vec<(usize, usize)>,
    /// The change at `|alpha| = 0` (raw, noise-corrected) under their masks.
    pub change: (f64, f64),
    pub a: f64,
    /// Evaluations the approach spent.
    pub evaluations: usize,
    /// Effectively independent residual samples of those pairs.
    pub n_eff: f64,
}

/// One thread's buffers for [`WindowLoss::eval_pairs`].
struct Workspace {
    pair: Dct2PairScratch,
    single: Dct2Scratch,
    /// One field's coefficients for the single transform of an odd field out.
    buf: Vec<f64>,
    /// Prediction and derivatives of two frame pairs, `[pair][k]` flattened.
    fields: Vec<Vec<f64>>,
}

/// A [`Workspace`] on loan from the pool, returned when dropped.
struct Lease<'a> {
    pool: &'a Mutex<Vec<Workspace>>,
    ws: Option<Workspace>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (Some(ws), Ok(mut pool)) = (self.ws.take(), self.pool.lock()) {
            pool.push(ws);
        }
    }
}

impl std::fmt::Debug for WindowLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowLoss")
            .field("op", &self.op.spec)
            .field("strides", &self.strides)
            .field("margins", &self.margins)
            .field("noise", &self.noise)
            .finish()
    }
}

/// One evaluation: the loss and, per pixel block, its share of `dL/da` and (order 2) of
/// `d2L/da2` (sandwich).
#[derive(Clone, Debug, Default)]
pub struct WindowEval {
    pub point: LossPoint,
    pub raw: f64,
    /// `d raw / da` and `d2 raw / da2` (before the noise correction).
    pub raw_d1: f64,
    pub raw_d2: f64,
    pub block_d1: Vec<f64>,
    pub block_d2: Vec<f64>,
}

impl WindowEval {
    /// Sandwich standard error over the pixel blocks (infinite where the loss is not convex
    /// or no blocks were summed).
    pub fn sandwich(&self) -> f64 {
        self.sandwich_at(0.0)
    }

    /// The sandwich at `a + da`, each block's share of `dL/da` carried there by its share of
    /// the curvature: after a Newton step the shares sum to zero again, and the error bar is
    /// the minimum's (to second order in `da`) without another evaluation. Needs the blocks'
    /// curvature (order 2); without it, or for `da = 0`, the sandwich at `a`.
    pub fn sandwich_at(&self, da: f64) -> f64 {
        if da != 0.0 && self.block_d2.len() != self.block_d1.len() {
            return self.sandwich();
        }
        let s2: f64 = if da != 0.0 {
            self.block_d1
                .iter()
                .zip(&self.block_d2)
                .map(|(g, h)| (g + h * da).powi(2))
                .sum()
        } else {
            self.block_d1.iter().map(|x| x * x).sum()
        };
        if self.point.d2 > 0.0 && !self.block_d1.is_empty() {
            s2.sqrt() / self.point.d2
        } else {
            f64::INFINITY
        }
    }

    /// The raw and the noise-corrected loss carried to `a + da` by their quadratic models
    /// (an order-2 evaluation; see [`last_step`] for how far that is trusted).
    pub fn losses_at(&self, da: f64) -> (f64, f64) {
        let q = |l: f64, d1: f64, d2: f64| l + da * (d1 + 0.5 * d2 * da);
        (
            q(self.raw, self.raw_d1, self.raw_d2),
            q(self.point.loss, self.point.d1, self.point.d2),
        )
    }
}

impl WindowLoss {
    /// `frames` in the order the operator runs; `spec.boundary` must be open.
    pub fn new<T: Copy + Into<f64> + Sync>(
        frames: &[&[T]],
        grid: &Grid,
        spec: OperatorSpec,
        dt_save: f64,
        strides: &[usize],
    ) -> WindowLoss {
        Self::build(frames, None, grid, spec, dt_save, strides)
    }

    /// [`WindowLoss::new`] reusing the frames' cosine coefficients `raw` (unfiltered, in the
    /// same order as `frames`): the low-pass is a multiplier there, so no transform runs
    /// (unless the window runs on an extended grid, [`transform_len`], where `raw` does not
    /// apply and the extended frames are transformed).
    pub fn from_spectra<T: Copy + Into<f64> + Sync>(
        frames: &[&[T]],
        raw: &[&[C64]],
        grid: &Grid,
        spec: OperatorSpec,
        dt_save: f64,
        strides: &[usize],
    ) -> WindowLoss {
        Self::build(frames, Some(raw), grid, spec, dt_save, strides)
    }

    fn build<T: Copy + Into<f64> + Sync>(
        frames: &[&[T]],
        raw: Option<&[&[C64]]>,
        grid: &Grid,
        spec: OperatorSpec,
        dt_save: f64,
        strides: &[usize],
    ) -> WindowLoss {
        assert_eq!(spec.boundary, Boundary::Open);
        let op = SafeOperator::new(*grid, spec, dt_save);
        let (px, py) = (transform_len(grid.nx), transform_len(grid.ny));
        let padded = if (px, py) == (grid.nx, grid.ny) {
            op.clone()
        } else {
            let g = Grid {
                nx: px,
                ny: py,
                ..*grid
            };
            SafeOperator::new(g, spec, dt_save)
        };
        let (n, np) = (grid.len(), px * py);
        let q = SafeOperator::filter_order(spec);
        let dct = dct_of(&padded);
        let mut target = vec![0.0; frames.len() * n];
        let mut coeffs = vec![0.0; frames.len() * np];
        let (fold_x, fold_y) = (mirror_index(grid.nx, px), mirror_index(grid.ny, py));
        target
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(t, tg)| binomial_mirror(frames[t], tg, grid.nx, grid.ny, q));
        match raw {
            Some(r) if np == n => coeffs.par_chunks_mut(n).enumerate().for_each(|(t, c)| {
                for ((ci, x), f) in c.iter_mut().zip(r[t].iter()).zip(&op.filter) {
                    *ci = x.re * f;
                }
            }),
            _ if np == n => coeffs
                .par_chunks_mut(n)
                .zip(target.par_chunks(n))
                .for_each_init(|| dct.scratch(), |s, (c, tg)| dct.forward(tg, c, s)),
            // The raw frames extended, two per transform, the low-pass a multiplier there
            // (the operator on the extended grid, literally).
            _ => coeffs.par_chunks_mut(2 * np).enumerate().for_each_init(
                || (dct.pair_scratch(), vec![0.0; np], vec![0.0; np]),
                |(ps, ea, eb), (k, c)| {
                    let extend = |f: &[T], e: &mut [f64]| {
                        for (row, &si) in e.chunks_exact_mut(py).zip(&fold_x) {
                            let src = &f[si * grid.ny..(si + 1) * grid.ny];
                            for (x, &sj) in row.iter_mut().zip(&fold_y) {
                                *x = src[sj].into();
                            }
                        }
                    };
                    extend(frames[2 * k], ea);
                    let both = c.len() == 2 * np;
                    if both {
                        extend(frames[2 * k + 1], eb);
                    }
                    let b: &[f64] = if both { eb } else { ea };
                    let w = &padded.filter;
                    dct.forward_pair(ea, b, ps, |i, x, y| {
                        c[i] = x * w[i];
                        if both {
                            c[np + i] = y * w[i];
                        }
                    });
                },
            ),
        }
        let strides: Vec<usize> = strides
            .iter()
            .copied()
            .filter(|&h| h >= 1 && h < frames.len())
            .collect();
        let strides = if strides.is_empty() { vec![1] } else { strides };
        let block = ((grid.nx.min(grid.ny) as f64 / 6.0).round() as usize).clamp(4, 32);
        let noise_sat = summed_area(&high_pass_map(frames, grid.nx, grid.ny), grid.nx, grid.ny);
        let (quad, quad_mu, quad_fw) = {
            let axis = |n: usize, h: f64| -> Vec<(f64, f64, f64)> {
                (0..=n)
                    .map(|p| {
                        let th = std::f64::consts::PI * p as f64 / n as f64;
                        let w = if p == 0 || p == n { 0.5 } else { 1.0 } / n as f64;
                        (
                            crate::operator::axis_mu(spec.laplacian, th, h),
                            crate::operator::binomial(q, th).powi(2),
                            w,
                        )
                    })
                    .collect()
            };
            let (ax, ay) = (axis(grid.nx, grid.dx), axis(grid.ny, grid.dy));
            let nodes = ay
                .iter()
                .flat_map(|&(_, fy, wy)| ax.iter().map(move |&(_, fx, wx)| (fx * fy, wx * wy)))
                .collect();
            let mu = |v: &[(f64, f64, f64)]| v.iter().map(|x| x.0).collect();
            let fw = |v: &[(f64, f64, f64)]| v.iter().map(|x| x.1 * x.2).collect();
            (nodes, (mu(&ax), mu(&ay)), (fw(&ax), fw(&ay)))
        };
        let mut w = WindowLoss {
            op,
            padded,
            margins: vec![(0, 0); strides.len()],
            reach: Vec::new(),
            strides,
            n_frames: frames.len(),
            target,
            coeffs,
            margin_alpha: 0.0,
            tol: KERNEL_TAIL,
            noise: NoiseModel::default(),
            block,
            noise_sat,
            quad,
            quad_mu,
            quad_fw,
            pool: Mutex::new(Vec::new()),
        };
        w.build_reach();
        w.set_margins(0.0);
        w
    }

    /// The envelope of the kernel's reach per stride, on a log grid of `|alpha|` (factor
    /// sqrt 2) from a von Neumann number of 1e-6 per frame interval up to where the reach
    /// passes half the window (no fit goes there: a third is the limit).
    fn build_reach(&mut self) {
        let s0 = self.op.dt_save * self.op.lambda_max();
        let (lo, hi) = (1e-6 / s0, 1e4 / s0);
        let n = ((hi / lo).log2() * 2.0).ceil() as usize + 1;
        let g = self.op.grid;
        self.reach = self
            .strides
            .iter()
            .map(|&h| {
                let mut env = (0usize, 0usize);
                let mut t = Vec::new();
                for i in 0..n {
                    let a = lo * 2f64.powf(i as f64 / 2.0);
                    let (x, y) = self.op.margins(a, h, self.tol);
                    env = (env.0.max(x), env.1.max(y));
                    t.push((a, env));
                    if 2 * env.0 >= g.nx || 2 * env.1 >= g.ny {
                        break;
                    }
                }
                t
            })
            .collect();
    }

    fn reach_at(&self, si: usize, a: f64) -> (usize, usize) {
        let t = &self.reach[si];
        t.iter()
            .find(|(x, _)| *x >= a)
            .or(t.last())
            .map(|&(_, m)| m)
            .unwrap_or((0, 0))
    }

    pub fn with_noise(mut self, noise: NoiseModel, tol: f64) -> WindowLoss {
        self.noise = noise;
        if tol != self.tol {
            self.tol = tol;
            self.build_reach();
        }
        let a = self.margin_alpha;
        self.set_margins(a);
        self
    }

    /// The loss of the frames times `k`: targets and coefficients are linear in them, the
    /// noise variance quadratic (the noise map only weighs places against each other).
    pub fn rescale(&mut self, k: f64) {
        self.target.iter_mut().for_each(|x| *x *= k);
        self.coeffs.iter_mut().for_each(|x| *x *= k);
        self.noise.var *= k * k;
    }

    /// Size the masks for `|alpha| <= a_max`.
    pub fn set_margins(&mut self, a_max: f64) {
        self.margin_alpha = a_max;
        self.margins = (0..self.strides.len())
            .map(|si| self.reach_at(si, a_max))
            .collect();
    }

    /// Whether every stride keeps at least a third of each axis inside its mask.
    pub fn margins_fit(&self) -> bool {
        self.margins.iter().all(|&m| self.fits(m))
    }

    fn fits(&self, (mx, my): (usize, usize)) -> bool {
        let g = self.op.grid;
        3 * mx <= g.nx && 3 * my <= g.ny
    }

    /// The largest `|alpha|` in `[lo, hi]` whose stride-1 margins keep a third of each axis.
    pub fn identifiable_max(&self, lo: f64, hi: f64) -> Option<f64> {
        if !self.fits(self.reach_at(0, lo)) {
            return None;
        }
        let best = self.reach[0]
            .iter()
            .take_while(|(_, m)| self.fits(*m))
            .map(|&(a, _)| a)
            .last()
            .unwrap_or(lo);
        Some(best.clamp(lo, hi))
    }

    pub fn pairs(&self, stride_index: usize) -> usize {
        self.n_frames - self.strides[stride_index]
    }

    pub fn all_pairs(&self) -> Vec<(usize, usize)> {
        (0..self.strides.len())
            .flat_map(|si| (0..self.pairs(si)).map(move |t| (si, t)))
            .collect()
    }

    fn coarse_pairs(&self) -> Vec<(usize, usize)> {
        let n = self.pairs(0);
        let k = COARSE_PAIRS.min(n);
        let mut v: Vec<(usize, usize)> = (0..k)
            .map(|i| (0, if k > 1 { i * (n - 1) / (k - 1) } else { 0 }))
            .collect();
        v.dedup();
        v
    }

    fn lease(&self) -> Lease<'_> {
        let ws = self.pool.lock().ok().and_then(|mut p| p.pop());
        let ws = ws.unwrap_or_else(|| {
            let dct = dct_of(&self.padded);
            let n = dct.len();
            Workspace {
                pair: dct.pair_scratch(),
                single: dct.scratch(),
                buf: vec![0.0; n],
                fields: vec![vec![0.0; n]; 6],
            }
        });
        Lease {
            pool: &self.pool,
            ws: Some(ws),
        }
    }

    /// Noise-corrected loss over `pairs` (each stride's pairs averaged, strides averaged),
    /// with derivatives up to `order` (0: value; 1: first and Gauss-Newton; 2: second) and,
    /// when `blocks`, each pixel block's share of the first derivative.
    pub fn eval_pairs(
        &self,
        a: f64,
        pairs: &[(usize, usize)],
        order: u8,
        blocks: bool,
    ) -> WindowEval {
        let g = self.op.grid;
        let (nx, ny, n) = (g.nx, g.ny, g.len());
        // Coefficients and predictions live on the transform grid (rows of `py`).
        let (py, np) = (self.padded.grid.ny, self.padded.grid.len());
        let dct = dct_of(&self.padded);
        let ns = self.strides.len();
        // Pairs per stride in this evaluation, for the averages.
        let mut count = vec![0usize; ns];
        for &(si, _) in pairs {
            count[si] += 1;
        }
        let active: Vec<usize> = (0..ns).filter(|&si| count[si] > 0).collect();
        let ws = 1.0 / active.len().max(1) as f64;
        // Per stride: the multiplier and its derivatives per stored coefficient.
        let mult: Vec<Option<StrideMultiplier>> = self
            .strides
            .iter()
            .enumerate()
            .map(|(si, &h)| {
                (count[si] > 0).then(|| {
                    StrideMultiplier::new(
                        &self.padded,
                        a,
                        self.op.dt_save * h as f64,
                        self.op.spec.n_sub.times(h),
                        order >= 1,
                    )
                })
            })
            .collect();
        let px = dct.nx;
        // Row `q` of pair `(si, t)`'s `k`-th field's coefficients.
        let fill = |(si, t): (usize, usize), k: usize, q: usize, out: &mut [f64]| {
            let c = &self.coeffs[t * np + q * px..t * np + (q + 1) * px];
            if let Some(m) = &mult[si] {
                m.row(k, q, c, &self.padded.mu_x, &self.padded.mu_y, out);
            }
        };
        let (bx, by) = (nx.div_ceil(self.block), ny.div_ceil(self.block));
        let nb = if blocks { bx * by } else { 0 };
        let nb2 = if order >= 2 { nb } else { 0 };
        let zero = || (LossPoint::default(), 0.0, vec![0.0; nb], vec![0.0; nb2]);
        // Each pair's share in parallel, then summed in pair order: the same bits whatever
        // the thread count (a parallel reduce's tree follows work stealing).
        // One frame pair's share, from its prediction and derivative fields (`None`: the
        // identity at a = 0, the prediction is the frame itself).
        let share = |(si, t): (usize, usize), f: Option<&[Vec<f64>]>| {
            let mut acc = zero();
            let h = self.strides[si];
            let (mx, my) = self.margins[si];
            // Row `i` of the prediction (pixels, or the transform grid's rows).
            let (pred, stride) = match f {
                Some(f) => (&f[0][..], py),
                None => (&self.target[t * n..(t + 1) * n], ny),
            };
            let npix = ((nx - 2 * mx) * (ny - 2 * my)) as f64;
            let w = ws / (count[si] as f64 * npix);
            let tgt = &self.target[(t + h) * n..(t + h + 1) * n];
            let (mut l, mut d1, mut gn, mut d2) = (0.0, 0.0, 0.0, 0.0);
            // Which sums this evaluation needs (the identity at a = 0 has no derivatives).
            let order = if f.is_some() { order.min(2) } else { 0 };
            for i in mx..nx - mx {
                let (row, prow, frow) = (i * ny, i * stride, i * py);
                let bi = (i / self.block) * by;
                // Each row in segments of one pixel block: the blocks' shares are added
                // once per segment, not per pixel.
                let mut j0 = my;
                while j0 < ny - my {
                    let bj = j0 / self.block;
                    let j1 = ((bj + 1) * self.block).min(ny - my);
                    let (p, t) = (&pred[prow + j0..prow + j1], &tgt[row + j0..row + j1]);
                    let [sl, s1, sg, s2] = match (f, order) {
                        (Some(f), 2) => segment_sums::<2>(
                            p,
                            t,
                            &f[1][frow + j0..frow + j1],
                            &f[2][frow + j0..frow + j1],
                        ),
                        (Some(f), 1) => segment_sums::<1>(p, t, &f[1][frow + j0..frow + j1], &[]),
                        _ => segment_sums::<0>(p, t, &[], &[]),
                    };
                    l += sl;
                    d1 += s1;
                    gn += sg;
                    d2 += s2;
                    if blocks && order >= 1 {
                        acc.2[bi + bj] += 2.0 * w * s1;
                        if order >= 2 {
                            acc.3[bi + bj] += 2.0 * w * (sg + s2);
                        }
                    }
                    j0 = j1;
                }
            }
            acc.0.loss += w * l;
            acc.0.d1 += 2.0 * w * d1;
            acc.0.gauss_newton += 2.0 * w * gn;
            acc.0.d2 += 2.0 * w * (gn + d2);
            acc.1 += w * l;
            acc
        };
        // Frame pairs two at a time: their fields (prediction and derivatives) go through
        // the inverse transform two per packed transform, on the rows the masks keep.
        let nk = order.min(2) as usize + 1;
        let per_pair: Vec<(LossPoint, f64, Vec<f64>, Vec<f64>)> = pairs
            .par_chunks(2)
            .map_init(
                || self.lease(),
                |lease, chunk| {
                    let Workspace {
                        pair: s,
                        single: s1,
                        buf: b0,
                        fields,
                    } = lease
                        .ws
                        .as_mut()
                        .expect("a lease holds its workspace until dropped");
                    if a == 0.0 && order == 0 {
                        return chunk.iter().map(|&p| share(p, None)).collect::<Vec<_>>();
                    }
                    let rows = |(si, _): (usize, usize)| {
                        let mx = self.margins[si].0;
                        mx..nx - mx
                    };
                    // Field `c * nk + k` is pair `c`'s `k`-th; jobs take them in order.
                    let jobs: Vec<usize> = (0..chunk.len() * nk).collect();
                    for job in jobs.chunks(2) {
                        let (j0, p0) = (job[0], chunk[job[0] / nk]);
                        match job.get(1) {
                            Some(&j1) => {
                                let p1 = chunk[j1 / nk];
                                let (r0, r1) = (rows(p0), rows(p1));
                                let r = r0.start.min(r1.start)..r0.end.max(r1.end);
                                let (lo, hi) = fields.split_at_mut(j1);
                                dct.inverse_pair_with(
                                    |q, ra, rb| {
                                        fill(p0, j0 % nk, q, ra);
                                        fill(p1, j1 % nk, q, rb);
                                    },
                                    true,
                                    &mut lo[j0],
                                    &mut hi[0],
                                    r,
                                    s,
                                );
                            }
                            None => {
                                for (q, row) in b0.chunks_exact_mut(px).enumerate() {
                                    fill(p0, j0 % nk, q, row);
                                }
                                dct.inverse_rows(b0, &mut fields[j0], rows(p0), s1)
                            }
                        }
                    }
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(c, &p)| share(p, Some(&fields[c * nk..(c + 1) * nk])))
                        .collect::<Vec<_>>()
                },
            )
            .flatten_iter()
            .collect();
        let (mut point, raw, mut bd1, mut bd2) = per_pair.into_iter().fold(zero(), |mut x, y| {
            x.0 += y.0;
            x.1 += y.1;
            for (p, q) in x.2.iter_mut().zip(&y.2) {
                *p += q;
            }
            for (p, q) in x.3.iter_mut().zip(&y.3) {
                *p += q;
            }
            x
        });
        let (raw_d1, raw_d2) = (point.d1, point.d2);
        // Expected noise share per interior pixel: var * int Phi^2 (m^2 - 2 rho m + 1) over
        // the frequency square, with var the noise over that stride's interior.
        if self.noise.var > 0.0 {
            let mut shares = Vec::new();
            for &si in &active {
                let h = self.strides[si];
                let rho = self.noise.rho_at(h);
                let (c, c1, c2) = self.noise_terms(a, h, rho);
                let k = ws * self.interior_var(si);
                point.loss -= k * c;
                point.d1 -= k * c1;
                point.d2 -= k * c2;
                shares.push((si, k * c1, k * c2));
            }
            if blocks && order >= 1 {
                // Each block carries the correction's derivative in proportion to its pixels.
                for (si, c1, c2) in shares {
                    let (mx, my) = self.margins[si];
                    let npix = ((nx - 2 * mx) * (ny - 2 * my)) as f64;
                    for i in mx..nx - mx {
                        for j in my..ny - my {
                            let b = (i / self.block) * by + j / self.block;
                            bd1[b] -= c1 / npix;
                            if let Some(x) = bd2.get_mut(b) {
                                *x -= c2 / npix;
                            }
                        }
                    }
                }
            }
        }
        if !blocks {
            bd1.clear();
            bd2.clear();
        }
        WindowEval {
            point,
            raw,
            raw_d1,
            raw_d2,
            block_d1: bd1,
            block_d2: bd2,
        }
    }

    pub fn eval(&self, a: f64, order: u8) -> LossPoint {
        self.eval_pairs(a, &self.all_pairs(), order, false).point
    }

    /// Sandwich standard error over pixel blocks at `a`, with each block summed over all
    /// frame pairs and strides (covers noise correlated in time and misfit that varies in
    /// space).
    pub fn stderr_at(&self, a: f64) -> (f64, WindowEval) {
        let e = self.eval_pairs(a, &self.all_pairs(), 2, true);
        (e.sandwich(), e)
    }

    /// Loss at `|alpha| = 0` (all the change), noise-corrected.
    pub fn change_energy(&self) -> f64 {
        self.change_at_zero().1
    }

    /// The loss at `|alpha| = 0` (raw, noise-corrected) straight from the pixels: the
    /// operator is the identity there, so no transform is needed.
    pub fn change_at_zero(&self) -> (f64, f64) {
        let g = self.op.grid;
        let (nx, ny, n) = (g.nx, g.ny, g.len());
        let ns = self.strides.len() as f64;
        let mut raw = 0.0;
        let mut corr = 0.0;
        for (si, &h) in self.strides.iter().enumerate() {
            let (mx, my) = self.margins[si];
            let pairs = self.pairs(si);
            // Collected, then summed in order: the same bits whatever the thread count.
            let per_pair: Vec<f64> = (0..pairs)
                .into_par_iter()
                .map(|t| {
                    let (a, b) = (
                        &self.target[t * n..(t + 1) * n],
                        &self.target[(t + h) * n..(t + h + 1) * n],
                    );
                    let mut acc = 0.0;
                    for i in mx..nx - mx {
                        for j in my..ny - my {
                            acc += (b[i * ny + j] - a[i * ny + j]).powi(2);
                        }
                    }
                    acc
                })
                .collect();
            let s: f64 = per_pair.iter().sum();
            let npix = ((nx - 2 * mx) * (ny - 2 * my)) as f64;
            let l = s / (pairs.max(1) as f64 * npix) / ns;
            raw += l;
            let c = if self.noise.var > 0.0 {
                self.interior_var(si) * self.noise_terms(0.0, h, self.noise.rho_at(h)).0 / ns
            } else {
                0.0
            };
            corr += l - c;
        }
        (raw, corr)
    }

    /// The raw loss a perfect model would leave: the noise's expected share at `a`.
    pub fn noise_floor(&self, a: f64) -> f64 {
        if self.noise.var <= 0.0 {
            return 0.0;
        }
        let f: f64 = (0..self.strides.len())
            .map(|si| {
                let h = self.strides[si];
                self.interior_var(si) * self.noise_terms(a, h, self.noise.rho_at(h)).0
            })
            .sum();
        f / self.strides.len() as f64
    }

    /// How far the minimum moves per unit relative error in the noise variance, given the
    /// loss's curvature `d2` there (from the last evaluation).
    pub fn noise_sensitivity(&self, a: f64, d2: f64) -> f64 {
        if self.noise.var <= 0.0 {
            return 0.0;
        }
        let p = LossPoint {
            d2,
            ..Default::default()
        };
        let dc: f64 = (0..self.strides.len())
            .map(|si| {
                let h = self.strides[si];
                self.interior_var(si) * self.noise_terms(a, h, self.noise.rho_at(h)).1
            })
            .sum::<f64>()
            / self.strides.len() as f64;
        if p.d2 > 0.0 { dc / p.d2 } else { f64::INFINITY }
    }

    /// `int Phi^2 (m^2 - 2 rho m + 1)` over the frequency square and its first two
    /// derivatives in `a`, for stride `h`.
    fn noise_terms(&self, a: f64, h: usize, rho: f64) -> (f64, f64, f64) {
        match self.op.spec.n_sub.times(h) {
            SubSteps::Infinite => self.noise_terms_separable(a, h, rho),
            SubSteps::Finite(_) => self.noise_terms_on_grid(a, h, rho),
        }
    }

    /// [`Self::noise_terms`] with `N_sub = inf`: the quadrature is a product of per-axis
    /// rules and the multiplier of per-axis exponentials, so the integral is sums of products
    /// of per-axis sums (`nx + ny` terms instead of `nx ny`; a test binds it to the grid).
    pub(crate) fn noise_terms_separable(&self, a: f64, h: usize, rho: f64) -> (f64, f64, f64) {
        let s = self.op.dt_save * h as f64;
        // Per axis, sum of fw mu^k g for g in (1, e, e^2), k in (0, 1, 2), e = exp(-s a mu).
        let sums = |mu: &[f64], fw: &[f64]| -> [[f64; 3]; 3] {
            let mut out = [[0.0; 3]; 3];
            for (&u, &w) in mu.iter().zip(fw) {
                let e = (-(s * u) * a).exp();
                let g = [w, w * e, w * e * e];
                for (k, o) in out.iter_mut().enumerate() {
                    let uk = u.powi(k as i32);
                    for (x, &gi) in o.iter_mut().zip(&g) {
                        *x += uk * gi;
                    }
                }
            }
            out
        };
        let x = sums(&self.quad_mu.0, &self.quad_fw.0);
        let y = sums(&self.quad_mu.1, &self.quad_fw.1);
        // int (mu_x + mu_y)^k g over the square, g the product of its axis factors.
        let t = |k: usize, g: usize| match k {
            0 => x[0][g] * y[0][g],
            1 => x[1][g] * y[0][g] + x[0][g] * y[1][g],
            _ => x[2][g] * y[0][g] + 2.0 * x[1][g] * y[1][g] + x[0][g] * y[2][g],
        };
        // m = e_x e_y, m1 = -s mu m, m2 = s^2 mu^2 m; m m1 = -s mu m^2, m1^2 = m m2.
        let c = t(0, 2) - 2.0 * rho * t(0, 1) + t(0, 0);
        let c1 = 2.0 * (-s * t(1, 2) + rho * s * t(1, 1));
        let c2 = 2.0 * s * s * (2.0 * t(2, 2) - rho * t(2, 1));
        (c, c1, c2)
    }

    /// [`Self::noise_terms`] summed mode by mode (any `N_sub`; the reference of the
    /// separable form).
    pub(crate) fn noise_terms_on_grid(&self, a: f64, h: usize, rho: f64) -> (f64, f64, f64) {
        let len = self.quad.len();
        let (mut m, mut m1, mut m2) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        grid_multipliers(
            &self.quad_mu.0,
            &self.quad_mu.1,
            a,
            self.op.dt_save * h as f64,
            self.op.spec.n_sub.times(h),
            &mut m,
            &mut m1,
            &mut m2,
        );
        let (mut c, mut c1, mut c2) = (0.0, 0.0, 0.0);
        for (k, &(f2, wq)) in self.quad.iter().enumerate() {
            let (m, m1, m2) = (m[k], m1[k], m2[k]);
            let w = f2 * wq;
            c += w * (m * m - 2.0 * rho * m + 1.0);
            c1 += w * 2.0 * (m - rho) * m1;
            c2 += w * 2.0 * (m1 * m1 + (m - rho) * m2);
        }
        (c, c1, c2)
    }

    /// The noise variance over stride `si`'s interior: the estimate for the whole frame,
    /// scaled by how the high-pass power of the interior compares with the frame's.
    pub fn interior_var(&self, si: usize) -> f64 {
        let g = self.op.grid;
        let (nx, ny) = (g.nx, g.ny);
        let (mx, my) = self.margins[si];
        let at = |i: usize, j: usize| self.noise_sat[i * (ny + 1) + j];
        let mean = |x0: usize, x1: usize, y0: usize, y1: usize| -> f64 {
            if x1 <= x0 || y1 <= y0 {
                return 0.0;
            }
            let s = at(x1, y1) - at(x0, y1) - at(x1, y0) + at(x0, y0);
            s / ((x1 - x0) * (y1 - y0)) as f64
        };
        let whole = mean(1, nx - 1, 1, ny - 1);
        let inner = mean(mx.max(1), nx - mx.max(1), my.max(1), ny - my.max(1));
        if whole > 0.0 && inner > 0.0 {
            self.noise.var * inner / whole
        } else {
            self.noise.var
        }
    }

    /// From a start far from the minimum (a coarse fit on a few pairs, or Adam's answer),
    /// Newton steps on a spread subset of `pairs` until a step is within 1e-3 relative, when
    /// `pairs` are many (a noisy video's every pair and stride): a thirty-second of them
    /// while steps are above 1e-2 (each costs a thirty-second of a full evaluation), then an
    /// eighth; the full Newton steps then start within the subset's error bar (one fewer of
    /// them). Returns the start and the evaluations spent.
    pub fn approach(&self, pairs: &[(usize, usize)], a0: f64) -> (f64, usize) {
        const SUBSET: usize = 8;
        if pairs.len() < 8 * SUBSET || a0.is_nan() || a0 <= 0.0 {
            return (a0, 0);
        }
        let mut a = a0;
        let mut evaluations = 0;
        // (every k-th pair, steps allowed, relative step that ends the stage)
        for (k, tries, tol) in [(4 * SUBSET, 6, 1e-2), (SUBSET, 4, 1e-3)] {
            let sub: Vec<(usize, usize)> = pairs.iter().copied().step_by(k).collect();
            for _ in 0..tries {
                let p = self.eval_pairs(a, &sub, 2, false).point;
                evaluations += 1;
                let curv = if p.d2 > 0.0 { p.d2 } else { p.gauss_newton };
                if curv.is_nan() || curv <= 0.0 {
                    return (a, evaluations);
                }
                let step = (p.d1 / curv).clamp(-0.5 * a, 0.5 * a);
                a -= step;
                if step.abs() <= tol * a {
                    break;
                }
            }
        }
        (a, evaluations)
    }

    /// [`Self::for_polish`] at `a0`, then [`Self::approach`]; where the masks and strides
    /// sized for 1.5 a0 differ from those for where the approach arrived, sized again for
    /// it (from every stride, so none stays dropped for a far start). The masks then follow
    /// the answer, not the start: fit (starting from its coarse search) and zero-shot (from
    /// wherever Adam stopped) evaluate the same pixels.
    pub fn ready_polish(&mut self, a0: f64, hi: f64) -> PolishStart {
        let every = (self.strides.clone(), self.reach.clone());
        let (mut pairs, mut change) = self.for_polish(a0, hi);
        let (a, evaluations) = self.approach(&pairs, a0);
        if a.is_finite() {
            let sized = (self.strides.clone(), self.margins.clone());
            (self.strides, self.reach) = every;
            self.size_for_polish(a, hi);
            if (&self.strides, &self.margins) != (&sized.0, &sized.1) {
                (pairs, change) = self.polish_pairs();
            }
        }
        let used = pairs.iter().filter(|p| p.0 == 0).count().max(1);
        PolishStart {
            n_eff: self.n_eff() * used as f64 / self.pairs(0).max(1) as f64,
            pairs,
            change,
            a,
            evaluations,
        }
    }

    /// Ready the loss for Newton steps from `a0` ([`Self::size_for_polish`]). Returns the
    /// frame pairs to evaluate and the change at `|alpha| = 0` ([`Self::polish_pairs`]).
    pub fn for_polish(&mut self, a0: f64, hi: f64) -> (Vec<(usize, usize)>, (f64, f64)) {
        self.size_for_polish(a0, hi);
        self.polish_pairs()
    }

    /// Masks for the basin of `a0` (with room to move, at most `hi`); strides whose reach
    /// would leave less than a third of the window dropped.
    fn size_for_polish(&mut self, a0: f64, hi: f64) {
        self.set_margins((1.5 * a0).min(hi));
        if !self.margins_fit() {
            let keep: Vec<usize> = (0..self.strides.len())
                .filter(|&si| si == 0 || self.fits(self.margins[si]))
                .collect();
            self.strides = keep.iter().map(|&si| self.strides[si]).collect();
            self.reach = keep.iter().map(|&si| self.reach[si].clone()).collect();
            self.set_margins((1.5 * a0).min(hi));
        }
    }

    /// The frame pairs the polish evaluates under the current masks (a spread subset on
    /// clean videos, where every pair agrees) and the change at `|alpha| = 0` (raw,
    /// noise-corrected).
    fn polish_pairs(&self) -> (Vec<(usize, usize)>, (f64, f64)) {
        let (raw0, corr0) = self.change_at_zero();
        let share = if raw0 > 0.0 {
            (raw0 - corr0) / raw0
        } else {
            0.0
        };
        let pairs = if share < CLEAN_SHARE {
            (0..self.strides.len())
                .flat_map(|si| {
                    let n = self.pairs(si);
                    let k = CLEAN_PAIRS.min(n);
                    (0..k).map(move |i| (si, if k > 1 { i * (n - 1) / (k - 1) } else { 0 }))
                })
                .collect()
        } else {
            self.all_pairs()
        };
        (pairs, (raw0, corr0))
    }

    /// Effectively independent residual samples: interior pixels times pairs, times the
    /// low-pass's participation ratio `(mean Phi^2)^2 / mean Phi^4`.
    pub fn n_eff(&self) -> f64 {
        let (mut s2, mut s4, mut sw) = (0.0, 0.0, 0.0);
        for &(f2, w) in &self.quad {
            s2 += w * f2;
            s4 += w * f2 * f2;
            sw += w;
        }
        let pr = if s4 > 0.0 {
            (s2 / sw).powi(2) / (s4 / sw)
        } else {
            1.0
        };
        let g = self.op.grid;
        let (mx, my) = self.margins[0];
        ((g.nx - 2 * mx) * (g.ny - 2 * my)) as f64 * self.pairs(0) as f64 * pr
    }

    /// Per stride-1 pair: the raw loss at `a` (for naming which pairs fail).
    pub fn pair_losses(&self, a: f64) -> Vec<f64> {
        (0..self.pairs(0))
            .map(|t| self.eval_pairs(a, &[(0, t)], 0, false).raw)
            .collect()
    }
}

/// The binomial low-pass of order `q` along both axes with the half-sample mirror (exactly
/// the cosine-basis multiplier `cos^(2q)(theta/2)`), into `out` in `f64`.
pub fn binomial_mirror<T: Copy + Into<f64>>(
    u: &[T],
    out: &mut [f64],
    nx: usize,
    ny: usize,
    q: u32,
) {
    if q == 0 {
        for (o, &x) in out.iter_mut().zip(u) {
            *o = x.into();
        }
        return;
    }
    // The 2q+1 taps C(2q, j) / 4^q.
    let r = q as usize;
    let mut taps = vec![1.0f64];
    for _ in 0..2 * r {
        let mut next = vec![0.0; taps.len() + 1];
        for (k, &v) in taps.iter().enumerate() {
            next[k] += 0.5 * v;
            next[k + 1] += 0.5 * v;
        }
        taps = next;
    }
    // Source index of every padded position `i - r` under the mirror, computed once: a
    // division per tap per edge pixel cost more than the whole filter.
    let fold_table = |n: usize| -> Vec<usize> {
        let m = n as isize;
        (0..n + 2 * r)
            .map(|i| {
                let p = (i as isize - r as isize).rem_euclid(2 * m);
                (if p < m { p } else { 2 * m - 1 - p }) as usize
            })
            .collect()
    };
    let (fold_x, fold_y) = (fold_table(nx), fold_table(ny));
    // Along axis 2: each row padded with its mirror image, then the taps.
    let mut pad = vec![0.0; ny + 2 * r];
    let mut rows = vec![0.0; nx * ny];
    for (row, o) in u.chunks_exact(ny).zip(rows.chunks_exact_mut(ny)) {
        for (p, &s) in pad.iter_mut().zip(&fold_y) {
            *p = row[s].into();
        }
        let lines: Vec<&[f64]> = (0..taps.len()).map(|k| &pad[k..k + ny]).collect();
        fir(o, &taps, &lines);
    }
    // Along axis 1: the taps over whole rows.
    for (i, o) in out.chunks_exact_mut(ny).enumerate() {
        let lines: Vec<&[f64]> = (0..taps.len())
            .map(|k| &rows[fold_x[i + k] * ny..(fold_x[i + k] + 1) * ny])
            .collect();
        fir(o, &taps, &lines);
    }
}

/// `out[j] = sum_k taps[k] * lines[k][j]` for symmetric taps (`taps[k] == taps[K-1-k]`,
/// odd `K`), each mirrored pair of lines added before its one multiply; eight outputs at a
/// time in registers (one store per output instead of one per tap).
fn fir(out: &mut [f64], taps: &[f64], lines: &[&[f64]]) {
    const W: usize = 8;
    let (n, k) = (out.len(), taps.len());
    let r = k / 2;
    let mut j = 0;
    while j + W <= n {
        let mid: &[f64; W] = lines[r][j..j + W].try_into().expect("W values");
        let mut acc = [0.0f64; W];
        for (a, &v) in acc.iter_mut().zip(mid) {
            *a = taps[r] * v;
        }
        for i in 0..r {
            let lo: &[f64; W] = lines[i][j..j + W].try_into().expect("W values");
            let hi: &[f64; W] = lines[k - 1 - i][j..j + W].try_into().expect("W values");
            for ((a, &x), &y) in acc.iter_mut().zip(lo).zip(hi) {
                *a += taps[i] * (x + y);
            }
        }
        out[j..j + W].copy_from_slice(&acc);
        j += W;
    }
    for (jj, o) in out.iter_mut().enumerate().skip(j) {
        let mut a = taps[r] * lines[r][jj];
        for i in 0..r {
            a += taps[i] * (lines[i][jj] + lines[k - 1 - i][jj]);
        }
        *o = a;
    }
}

/// Summed-area table of an `nx x ny` map: entry `[i, j]` of the `[nx + 1, ny + 1]` result is
/// the sum of the map over rows `< i` and columns `< j`.
fn summed_area(map: &[f64], nx: usize, ny: usize) -> Vec<f64> {
    let w = ny + 1;
    let mut sat = vec![0.0; (nx + 1) * w];
    for i in 0..nx {
        let mut row = 0.0;
        for j in 0..ny {
            row += map[i * ny + j];
            sat[(i + 1) * w + j + 1] = sat[i * w + j + 1] + row;
        }
    }
    sat
}

/// Per pixel, the mean over the frames where it is smallest (within 25% of the minimum) of
/// the squared checkerboard high-pass `[1,-2,1] x [1,-2,1]`, which passes white noise and
/// almost no smooth signal; zero on the edge pixels.
pub(crate) fn high_pass_map<T: Copy + Into<f64> + Sync>(
    frames: &[&[T]],
    nx: usize,
    ny: usize,
) -> Vec<f64> {
    let hp = |f: &[T], i: usize, j: usize| -> f64 {
        let at = |a: usize, b: usize| -> f64 { f[a * ny + b].into() };
        let col = |b: usize| at(i - 1, b) - 2.0 * at(i, b) + at(i + 1, b);
        col(j - 1) - 2.0 * col(j) + col(j + 1)
    };
    // Per frame on every third row (the selection only needs the ranking).
    let power: Vec<f64> = frames
        .par_iter()
        .map(|f| {
            let mut s = 0.0;
            for i in (1..nx - 1).step_by(3) {
                for j in 1..ny - 1 {
                    s += hp(f, i, j).powi(2);
                }
            }
            s
        })
        .collect();
    let min = power.iter().cloned().fold(f64::INFINITY, f64::min);
    let sel: Vec<usize> = (0..frames.len())
        .filter(|&t| power[t] <= 1.25 * min)
        .collect();
    // Rows in parallel; each pixel still sums its frames in order.
    let mut map = vec![0.0; nx * ny];
    map.par_chunks_mut(ny)
        .enumerate()
        .filter(|(i, _)| *i >= 1 && *i + 1 < nx)
        .for_each(|(i, row)| {
            for &t in &sel {
                for (j, x) in row.iter_mut().enumerate().take(ny - 1).skip(1) {
                    *x += hp(frames[t], i, j).powi(2) / sel.len() as f64;
                }
            }
        });
    map
}

/// The length an open window's transforms run at along an axis of `n` pixels: `n` if its
/// only prime factors are 2, 3, 5 and 7, else the next such length. Pixels past the window
/// are its mirror image; the mask keeps the loss to pixels the outside cannot reach (to the
/// kernel's tail), so the extension changes no estimate, while a length with a large prime
/// factor (131, 133 = 7 x 19, 149) costs each transform 1.5-2.5x.
pub fn transform_len(n: usize) -> usize {
    let smooth = |mut m: usize| {
        for p in [2, 3, 5, 7] {
            while m.is_multiple_of(p) {
                m /= p;
            }
        }
        m == 1
    };
    (n.max(1)..).find(|&m| smooth(m)).unwrap_or(n)
}

/// Source index of each of `len >= n` positions under the half-sample mirror of `n`.
fn mirror_index(n: usize, len: usize) -> Vec<usize> {
    (0..len)
        .map(|i| {
            let p = i % (2 * n);
            if p < n { p } else { 2 * n - 1 - p }
        })
        .collect()
}

/// A row segment's residual sums `[sum r^2, sum r p1, sum p1^2, sum r p2]` (`r = p - t`)
/// up to `ORDER` (the rest 0), in four lanes: one accumulator per sum was a chain of
/// dependent additions, a quarter of an evaluation's time on a camera window.
#[inline(always)]
fn segment_sums<const ORDER: usize>(p: &[f64], t: &[f64], f1: &[f64], f2: &[f64]) -> [f64; 4] {
    const L: usize = 4;
    // Unused fields stand in as `p` (same length; never read into a sum).
    let f1 = if ORDER >= 1 { f1 } else { p };
    let f2 = if ORDER >= 2 { f2 } else { p };
    let mut acc = [[0.0f64; L]; 4];
    let add = |acc: &mut [[f64; L]; 4], l: usize, p: f64, t: f64, a: f64, b: f64| {
        let r = p - t;
        acc[0][l] += r * r;
        if ORDER >= 1 {
            acc[1][l] += r * a;
            acc[2][l] += a * a;
        }
        if ORDER >= 2 {
            acc[3][l] += r * b;
        }
    };
    let (pc, tc, ac, bc) = (
        p.chunks_exact(L),
        t.chunks_exact(L),
        f1.chunks_exact(L),
        f2.chunks_exact(L),
    );
    let tails = (
        pc.remainder(),
        tc.remainder(),
        ac.remainder(),
        bc.remainder(),
    );
    for (((p, t), a), b) in pc.zip(tc).zip(ac).zip(bc) {
        for l in 0..L {
            add(&mut acc, l, p[l], t[l], a[l], b[l]);
        }
    }
    let (p, t, a, b) = tails;
    for l in 0..p.len() {
        add(&mut acc, l, p[l], t[l], a[l], b[l]);
    }
    acc.map(|a| (a[0] + a[1]) + (a[2] + a[3]))
}

/// One stride's multiplier `m(mu)` and its derivatives in `|alpha|` at every stored
/// coefficient. With `N_sub = inf` it is a product of per-axis exponentials, made row by
/// row where the transform reads it (no table of its own); a finite `N_sub` keeps tables.
pub(crate) enum StrideMultiplier {
    Table([Vec<f64>; 3]),
    /// `exp(-dt_h a mu)` per axis and the step `dt_h` (the same arithmetic as
    /// [`grid_multipliers`], so the same bits).
    Axes {
        ex: Vec<f64>,
        ey: Vec<f64>,
        dt_h: f64,
    },
}

impl StrideMultiplier {
    pub(crate) fn new(
        op: &SafeOperator,
        a: f64,
        dt_h: f64,
        n: SubSteps,
        derivs: bool,
    ) -> StrideMultiplier {
        let (mu_x, mu_y) = (&op.mu_x, &op.mu_y);
        match n {
            SubSteps::Infinite => {
                let e = |mu: &[f64]| mu.iter().map(|&u| (-(dt_h * u) * a).exp()).collect();
                StrideMultiplier::Axes {
                    ex: e(mu_x),
                    ey: e(mu_y),
                    dt_h,
                }
            }
            SubSteps::Finite(_) => {
                let np = mu_x.len() * mu_y.len();
                let nd = if derivs { np } else { 0 };
                let [mut m0, mut m1, mut m2] = [vec![0.0; np], vec![0.0; nd], vec![0.0; nd]];
                grid_multipliers(mu_x, mu_y, a, dt_h, n, &mut m0, &mut m1, &mut m2);
                StrideMultiplier::Table([m0, m1, m2])
            }
        }
    }

    /// Row `q` of coefficients `c` times the `k`-th derivative of the multiplier, into `out`.
    #[inline(always)]
    pub(crate) fn row(
        &self,
        k: usize,
        q: usize,
        c: &[f64],
        mu_x: &[f64],
        mu_y: &[f64],
        out: &mut [f64],
    ) {
        let n = c.len();
        match self {
            StrideMultiplier::Table(m) => {
                for ((o, &c), &m) in out.iter_mut().zip(c).zip(&m[k][q * n..(q + 1) * n]) {
                    *o = c * m;
                }
            }
            StrideMultiplier::Axes { ex, ey, dt_h } => {
                let (ey, my) = (ey[q], mu_y[q]);
                let it = out.iter_mut().zip(c).zip(ex).zip(mu_x);
                match k {
                    0 => it.for_each(|(((o, &c), &x), _)| *o = c * (x * ey)),
                    1 => it.for_each(|(((o, &c), &x), &mx)| {
                        let k = dt_h * (mx + my);
                        *o = c * (-k * (x * ey));
                    }),
                    _ => it.for_each(|(((o, &c), &x), &mx)| {
                        let k = dt_h * (mx + my);
                        *o = c * (k * k * (x * ey));
                    }),
                }
            }
        }
    }
}

fn dct_of(op: &SafeOperator) -> &Dct2 {
    match &op.basis {
        Basis::Cosine(d) => d,
        Basis::Fourier(_) => unreachable!("open windows use the cosine basis"),
    }
}

/// The basin of an open window's loss, found on a few frame pairs.
#[derive(Clone, Debug)]
pub struct Coarse {
    pub a0: f64,
    /// The search range, its top capped where the operator's reach leaves a third of the
    /// window.
    pub range: (f64, f64),
    pub at_bound: bool,
    pub evaluations: usize,
    /// The fit on the coarse pairs alone (for choosing between operators cheaply).
    pub fit: FitResult,
}

/// Noise share of the frame-to-frame change below which the polish uses a subset of the
/// frame pairs: on clean data every pair gives the same answer.
const CLEAN_SHARE: f64 = 1e-6;
/// Frame pairs per stride in the polish of a clean video.
const CLEAN_PAIRS: usize = 16;

/// Locate the basin: a scan and safeguarded Newton on a few stride-1 frame pairs, with the
/// masks sized for the largest identifiable `|alpha|`. A `hint` (a factor `spread` from
/// the answer at worst) narrows the scan; a minimum on the narrowed scan's edge rescans
/// the whole range.
pub fn coarse_fit(
    w: &mut WindowLoss,
    opts: &FitOptions,
    hint: Option<(f64, f64)>,
) -> Result<Coarse, FitError> {
    if w.n_frames < 2 {
        return Err(FitError::TooFewFrames(w.n_frames));
    }
    let noisy = w.noise.var > 0.0;
    let range = check_range(
        opts.alpha_range,
        default_range(w.op.dt_save, w.op.lambda_max(), w.op.spec.n_sub, noisy),
    )?;
    let hi = w
        .identifiable_max(range.0, range.1)
        .ok_or(FitError::WindowTooSmall)?;
    w.set_margins(hi);
    let coarse = w.coarse_pairs();
    let c0 = w.eval_pairs(0.0, &coarse, 0, false);
    if c0.raw.is_nan() || c0.raw <= 0.0 {
        return Err(FitError::NoStructure);
    }
    let f = |a: f64| w.eval_pairs(a, &coarse, 2, false).point;
    // The scan needs the loss alone: one inverse transform per pair instead of three.
    let value = |a: f64| w.eval_pairs(a, &coarse, 0, false).point.loss;
    let slope = |a: f64| w.eval_pairs(a, &coarse, 1, false).point.d1;
    let narrowed = hint.and_then(|(h, spread)| {
        let (l, u) = ((h / spread).max(range.0), (h * spread).min(hi));
        if !(l < u && h.is_finite()) {
            return None;
        }
        let r = minimise_1d_split(&value, &slope, &f, l, u, 3, 4, 1e-7, false).ok()?;
        // On the narrowed range's own edge (not the true one): the hint was wrong.
        let edge = (r.1 && (r.0 - l).abs() <= 1e-3 * l && l > range.0)
            || (r.1 && (u - r.0).abs() <= 1e-3 * u && u < hi);
        (!edge).then_some(r)
    });
    let (a0, at_bound, evaluations) = match narrowed {
        Some(r) => r,
        None => minimise_1d_split(&value, &slope, &f, range.0, hi, 3, 9, 1e-7, false)?,
    };
    let e = w.eval_pairs(a0, &coarse, 0, false);
    let fit = FitResult {
        alpha_abs: a0,
        stderr: f64::NAN,
        safe_loss: e.raw.max(0.0),
        corrected_loss: e.point.loss,
        change_energy: c0.point.loss,
        noise_floor: w.noise_floor(a0),
        at_bound,
        range: (range.0, hi),
        evaluations,
        n_eff: w.n_eff() * coarse.len() as f64 / w.pairs(0).max(1) as f64,
        curvature: f64::NAN,
    };
    Ok(Coarse {
        a0,
        range: (range.0, hi),
        at_bound,
        evaluations,
        fit,
    })
}

/// From the basin to the minimum: exact Newton steps with masks sized for it, on every
/// frame pair and stride (a spread subset on clean videos, where every pair agrees).
pub fn polish_fit(w: &mut WindowLoss, c: &Coarse) -> FitResult {
    let (lo, hi) = c.range;
    let PolishStart {
        pairs,
        change: (_, corr0),
        mut a,
        mut evaluations,
        n_eff,
    } = w.ready_polish(c.a0, hi);
    evaluations += c.evaluations;
    let mut last = WindowEval::default();
    // How far the last Newton step moved from `last`, once it is the last.
    let mut carried = 0.0;
    for _ in 0..8 {
        last = w.eval_pairs(a, &pairs, 2, true);
        evaluations += 1;
        let p = last.point;
        let curv = if p.d2 > 0.0 { p.d2 } else { p.gauss_newton };
        if curv.is_nan() || curv <= 0.0 {
            break;
        }
        let step = (p.d1 / curv).clamp(-0.5 * a, 0.5 * a);
        a -= step;
        if step.abs() <= 1e-9 * a || last_step(-step, a, &last) {
            carried = -step;
            break;
        }
    }
    let stderr = last.sandwich_at(carried);
    let (raw, corrected) = last.losses_at(carried);
    let at_bound = c.at_bound || a <= lo * (1.0 + 1e-6) || a >= hi * (1.0 - 1e-6);
    FitResult {
        alpha_abs: a,
        stderr,
        safe_loss: raw.max(0.0),
        corrected_loss: corrected,
        change_energy: corr0,
        noise_floor: w.noise_floor(a),
        at_bound,
        range: (lo, hi),
        evaluations,
        n_eff,
        curvature: last.point.d2,
    }
}

/// Whether a Newton step that moved `|alpha|` by `da` to `a`, computed at evaluation `e`
/// (order 2, with blocks), can be the last. Newton leaves ~0.25 da^2/a (measured on camera
/// windows: the next step was 0.21-0.29 da^2/a); at most 2% of the error bar, far inside
/// it. (At 0.25%, a step of two error bars, as the approach on a subset of pairs leaves on
/// noisy windows, took one more evaluation over every pair: a seventh of a zero-shot run.)
/// The error bar and the losses are then read from `e` carried to `a`
/// ([`WindowEval::sandwich_at`], [`WindowEval::losses_at`]): their quadratic models are
/// trusted where `da` is within 1% of `a` (the curvature, not carried, moves by ~1.3 da/a:
/// the error bar within ~1.5%, against the sandwich's own sampling error of ~15%) and the
/// raw loss moves by at most 0.1% (on a clean video the loss at the minimum is rounding, so
/// the step must be tiny there).
/// Another evaluation over every pair would not move the answer (on a noisy window it costs
/// a third of the fit).
pub fn last_step(da: f64, a: f64, e: &WindowEval) -> bool {
    let moved = e.raw_d1 * da + 0.5 * e.raw_d2 * da * da;
    e.point.d2 > 0.0
        && da.abs() <= 0.01 * a
        && 0.25 * da * da / a <= 0.02 * e.sandwich_at(da)
        && moved.abs() <= 1e-3 * e.raw.abs()
}

/// Fit `|alpha|` of an open window: [`coarse_fit`], then [`polish_fit`].
pub fn fit_window(w: &mut WindowLoss, opts: &FitOptions) -> Result<FitResult, FitError> {
    let c = coarse_fit(w, opts, None)?;
    Ok(polish_fit(w, &c))
}
