//! Coefficients of every frame of a video in the basis of a boundary.

use crate::basis::Basis;
use crate::fft2::C64;
use crate::grid::Grid;
use crate::operator::Boundary;
use rayon::prelude::*;

/// Every frame of a (canonically ordered) video transformed once, `[n_frames, n_coeffs]`.
pub struct VideoSpectra {
    pub grid: Grid,
    pub basis: Basis,
    pub n_frames: usize,
    pub coeffs: Vec<C64>,
}

impl VideoSpectra {
    /// Transform every frame, in parallel. `frames` are in the order the operator runs.
    pub fn compute<T: Copy + Into<f64> + Sync>(
        frames: &[&[T]],
        grid: &Grid,
        boundary: Boundary,
    ) -> VideoSpectra {
        let basis = Basis::for_boundary(boundary, grid.nx, grid.ny);
        let sl = basis.n_coeffs();
        let mut coeffs = vec![C64::default(); frames.len() * sl];
        match &basis {
            // Cosine coefficients are real: two frames share one complex transform.
            Basis::Cosine(d) => coeffs
                .par_chunks_mut(2 * sl)
                .zip(frames.par_chunks(2))
                .for_each_init(
                    || (d.pair_scratch(), d.scratch(), vec![0.0; sl]),
                    |(ps, s, buf), (out, pair)| {
                        if let [a, b] = pair {
                            let (oa, ob) = out.split_at_mut(sl);
                            d.forward_pair(a, b, ps, |k, x, y| {
                                oa[k] = C64::new(x, 0.0);
                                ob[k] = C64::new(y, 0.0);
                            });
                        } else {
                            d.forward(pair[0], buf, s);
                            for (o, &x) in out.iter_mut().zip(buf.iter()) {
                                *o = C64::new(x, 0.0);
                            }
                        }
                    },
                ),
            Basis::Fourier(_) => coeffs
                .par_chunks_mut(sl)
                .zip(frames.par_iter())
                .for_each_init(
                    || basis.scratch(),
                    |s, (out, frame)| basis.forward(frame, out, s),
                ),
        }
        VideoSpectra {
            grid: *grid,
            basis,
            n_frames: frames.len(),
            coeffs,
        }
    }

    pub fn frame(&self, t: usize) -> &[C64] {
        let sl = self.basis.n_coeffs();
        &self.coeffs[t * sl..(t + 1) * sl]
    }

    pub fn boundary_kind(&self) -> Boundary {
        self.basis.boundary_kind()
    }

    /// Per-frame-pair loss `mean_pixels (m F[t] - F[t+1])^2` for per-coefficient
    /// multipliers `m` (no grouping; for reports and the paper's Fig. 6).
    pub fn pair_losses(&self, m: &[f64]) -> Vec<f64> {
        let nx = self.basis.nx();
        let norm = self.basis.norm() / self.grid.len() as f64;
        (0..self.n_frames.saturating_sub(1))
            .into_par_iter()
            .map(|t| {
                let (x0, x1) = (self.frame(t), self.frame(t + 1));
                let mut acc = 0.0;
                for ky in 0..self.basis.rows() {
                    let r = ky * nx..(ky + 1) * nx;
                    let row: f64 = x0[r.clone()]
                        .iter()
                        .zip(&x1[r.clone()])
                        .zip(&m[r])
                        .map(|((&p, &q), &mk)| (p * mk - q).norm_sqr())
                        .sum();
                    acc += self.basis.multiplicity(ky) * row;
                }
                acc * norm
            })
            .collect()
    }
}
