//! 2-D orthonormal type-II cosine transform of frames mirrored at their edges, beside a naive
//! oracle. It diagonalises every symmetric stencil under the half-sample mirror
//! `u[-1-i] = u[i]`: the zero-flux (and, with a mask, the open) SAFE operator.
//!
//! Coefficients are stored transposed, `[ny, nx]` (row `q` along axis 2, column `p` along
//! axis 1), like [`crate::fft2::Fft2`]'s spectra, so both passes run on contiguous rows.
//! Mode `(p, q)` has axis frequencies `theta_x = pi p / nx`, `theta_y = pi q / ny`.

use rustdct::{DctPlanner, TransformType2And3};
use std::sync::Arc;

#[derive(Clone)]
pub struct Dct2 {
    pub nx: usize,
    pub ny: usize,
    row: Arc<dyn TransformType2And3<f64>>,
    col: Arc<dyn TransformType2And3<f64>>,
    /// Orthonormal scale of coefficient `k` (`sqrt(1/n)` for `k = 0`, else `sqrt(2/n)`),
    /// and the pre-scale of the inverse.
    fwd_x: Vec<f64>,
    fwd_y: Vec<f64>,
    inv_x: Vec<f64>,
    inv_y: Vec<f64>,
}

/// Per-thread work buffers for [`Dct2`].
pub struct Dct2Scratch {
    buf: Vec<f64>,
    scratch: Vec<f64>,
}

fn scales(n: usize) -> (Vec<f64>, Vec<f64>) {
    let nf = n as f64;
    let fwd = (0..n)
        .map(|k| {
            if k == 0 {
                (1.0 / nf).sqrt()
            } else {
                (2.0 / nf).sqrt()
            }
        })
        .collect();
    // rustdct's DCT-III is `x_n = X_0/2 + sum_k X_k cos(..)`, the inverse of its DCT-II up
    // to n/2; folding the orthonormal scale in gives these pre-scales.
    let inv = (0..n)
        .map(|k| {
            if k == 0 {
                2.0 / nf.sqrt()
            } else {
                (2.0 / nf).sqrt()
            }
        })
        .collect();
    (fwd, inv)
}

impl Dct2 {
    pub fn new(nx: usize, ny: usize) -> Dct2 {
        let mut p = DctPlanner::<f64>::new();
        let (fwd_x, inv_x) = scales(nx);
        let (fwd_y, inv_y) = scales(ny);
        Dct2 {
            nx,
            ny,
            row: p.plan_dct2(ny),
            col: p.plan_dct2(nx),
            fwd_x,
            fwd_y,
            inv_x,
            inv_y,
        }
    }

    pub fn len(&self) -> usize {
        self.nx * self.ny
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn scratch(&self) -> Dct2Scratch {
        let s = self.row.get_scratch_len().max(self.col.get_scratch_len());
        Dct2Scratch {
            buf: vec![0.0; self.len()],
            scratch: vec![0.0; s],
        }
    }

    /// Orthonormal forward transform of one `nx x ny` frame into `out` (`[ny, nx]`).
    pub fn forward<T: Copy + Into<f64>>(&self, frame: &[T], out: &mut [f64], s: &mut Dct2Scratch) {
        let (nx, ny) = (self.nx, self.ny);
        assert_eq!(frame.len(), nx * ny);
        assert_eq!(out.len(), nx * ny);
        for (d, &x) in s.buf.iter_mut().zip(frame) {
            *d = x.into();
        }
        for r in s.buf.chunks_exact_mut(ny) {
            self.row.process_dct2_with_scratch(r, &mut s.scratch);
        }
        transpose::transpose(&s.buf, out, ny, nx);
        for (q, r) in out.chunks_exact_mut(nx).enumerate() {
            self.col.process_dct2_with_scratch(r, &mut s.scratch);
            let sy = self.fwd_y[q];
            for (v, &sx) in r.iter_mut().zip(&self.fwd_x) {
                *v *= sx * sy;
            }
        }
    }

    /// Inverse of [`Dct2::forward`] (`inverse(forward(u)) == u`). Destroys `coeffs`.
    pub fn inverse(&self, coeffs: &mut [f64], frame: &mut [f64], s: &mut Dct2Scratch) {
        let (nx, ny) = (self.nx, self.ny);
        assert_eq!(frame.len(), nx * ny);
        assert_eq!(coeffs.len(), nx * ny);
        for (q, r) in coeffs.chunks_exact_mut(nx).enumerate() {
            let sy = self.inv_y[q];
            for (v, &sx) in r.iter_mut().zip(&self.inv_x) {
                *v *= sx * sy;
            }
            self.col.process_dct3_with_scratch(r, &mut s.scratch);
        }
        transpose::transpose(coeffs, frame, nx, ny);
        for r in frame.chunks_exact_mut(ny) {
            self.row.process_dct3_with_scratch(r, &mut s.scratch);
        }
    }
}

/// Naive oracle: `Y[p, q] = sum_{i,j} c_p(i) c_q(j) u[i, j]` with the orthonormal DCT-II
/// basis `c_k(i) = s_k cos(pi k (2i + 1) / (2n))`, in `[nx, ny]` order.
pub fn dct2_naive(u: &[f64], nx: usize, ny: usize) -> Vec<f64> {
    let basis = |n: usize, k: usize, i: usize| {
        let s = if k == 0 {
            (1.0 / n as f64).sqrt()
        } else {
            (2.0 / n as f64).sqrt()
        };
        s * (std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2 * n) as f64).cos()
    };
    let mut out = vec![0.0; nx * ny];
    for p in 0..nx {
        for q in 0..ny {
            let mut acc = 0.0;
            for i in 0..nx {
                for j in 0..ny {
                    acc += basis(nx, p, i) * basis(ny, q, j) * u[i * ny + j];
                }
            }
            out[p * ny + q] = acc;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn forward_matches_naive_and_inverse_roundtrips() {
        for &(nx, ny) in &[(3, 3), (4, 6), (7, 5), (8, 9), (16, 10), (12, 30)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((nx * 100 + ny) as u64);
            let u: Vec<f64> = (0..nx * ny).map(|_| rng.random_range(-1.0..1.0)).collect();
            let d = Dct2::new(nx, ny);
            let mut s = d.scratch();
            let mut c = vec![0.0; nx * ny];
            d.forward(&u, &mut c, &mut s);
            let oracle = dct2_naive(&u, nx, ny);
            for q in 0..ny {
                for p in 0..nx {
                    let diff = c[q * nx + p] - oracle[p * ny + q];
                    assert!(diff.abs() < 1e-12, "{nx}x{ny} mode ({p},{q}): {diff}");
                }
            }
            // Orthonormal: Parseval without weights.
            let e0: f64 = u.iter().map(|x| x * x).sum();
            let e1: f64 = c.iter().map(|x| x * x).sum();
            assert!((e0 - e1).abs() < 1e-12 * e0);
            let mut back = vec![0.0; nx * ny];
            d.inverse(&mut c, &mut back, &mut s);
            for (a, b) in back.iter().zip(&u) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }
}
