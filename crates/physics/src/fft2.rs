//! 2-D real FFT of periodic frames (realfft along axis 2, rustfft along axis 1), beside a
//! naive DFT oracle.
//!
//! Spectra are stored transposed, `[ny/2 + 1, nx]` (row `ky`, column `kx`), so both passes
//! run on contiguous memory. Only the half spectrum `ky <= ny/2` is kept; [`Fft2::weight`]
//! gives each stored mode's multiplicity for Parseval sums over the full spectrum.

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

pub type C64 = Complex<f64>;

#[derive(Clone)]
pub struct Fft2 {
    pub nx: usize,
    pub ny: usize,
    r2c: Arc<dyn RealToComplex<f64>>,
    c2r: Arc<dyn ComplexToReal<f64>>,
    col_fwd: Arc<dyn Fft<f64>>,
    col_inv: Arc<dyn Fft<f64>>,
}

/// Per-thread work buffers for [`Fft2`].
pub struct Fft2Scratch {
    row: Vec<f64>,
    /// Every row's half spectrum, `[nx, nyh]`, before the tiled transpose into `[nyh, nx]`
    /// (scattering each row into a column was a quarter of the forward transform).
    rows: Vec<C64>,
    real_scratch: Vec<C64>,
    col_scratch: Vec<C64>,
}

impl Fft2 {
    pub fn new(nx: usize, ny: usize) -> Fft2 {
        let mut rp = RealFftPlanner::<f64>::new();
        let mut cp = FftPlanner::<f64>::new();
        Fft2 {
            nx,
            ny,
            r2c: rp.plan_fft_forward(ny),
            c2r: rp.plan_fft_inverse(ny),
            col_fwd: cp.plan_fft_forward(nx),
            col_inv: cp.plan_fft_inverse(nx),
        }
    }

    /// Number of stored `ky` rows: `ny/2 + 1`.
    pub fn nyh(&self) -> usize {
        self.ny / 2 + 1
    }

    /// Length of one stored half spectrum.
    pub fn spec_len(&self) -> usize {
        self.nyh() * self.nx
    }

    /// Multiplicity of stored row `ky` in the full spectrum (1 for the self-conjugate rows).
    pub fn weight(&self, ky: usize) -> f64 {
        if ky == 0 || (self.ny.is_multiple_of(2) && ky == self.ny / 2) {
            1.0
        } else {
            2.0
        }
    }

    pub fn scratch(&self) -> Fft2Scratch {
        let s = self.r2c.get_scratch_len().max(self.c2r.get_scratch_len());
        let c = self
            .col_fwd
            .get_inplace_scratch_len()
            .max(self.col_inv.get_inplace_scratch_len());
        Fft2Scratch {
            row: vec![0.0; self.ny],
            rows: vec![C64::default(); self.spec_len()],
            real_scratch: vec![C64::default(); s],
            col_scratch: vec![C64::default(); c],
        }
    }

    /// Unnormalised forward transform of one `nx x ny` frame into `spec` (`[nyh, nx]`).
    pub fn forward<T: Copy + Into<f64>>(&self, frame: &[T], spec: &mut [C64], s: &mut Fft2Scratch) {
        let (nx, ny, nyh) = (self.nx, self.ny, self.nyh());
        assert_eq!(frame.len(), nx * ny);
        assert_eq!(spec.len(), nyh * nx);
        for (i, out) in s.rows.chunks_exact_mut(nyh).enumerate() {
            for (d, &x) in s.row.iter_mut().zip(&frame[i * ny..(i + 1) * ny]) {
                *d = x.into();
            }
            self.r2c
                .process_with_scratch(&mut s.row, out, &mut s.real_scratch)
                .expect("buffer sizes are fixed by the plan");
        }
        transpose::transpose(&s.rows, spec, nyh, nx);
        self.col_fwd.process_with_scratch(spec, &mut s.col_scratch);
    }

    /// Inverse of [`Fft2::forward`], normalised so `inverse(forward(u)) == u`. Destroys `spec`.
    pub fn inverse(&self, spec: &mut [C64], frame: &mut [f64], s: &mut Fft2Scratch) {
        let (nx, ny, nyh) = (self.nx, self.ny, self.nyh());
        assert_eq!(frame.len(), nx * ny);
        assert_eq!(spec.len(), nyh * nx);
        self.col_inv.process_with_scratch(spec, &mut s.col_scratch);
        let norm = 1.0 / (nx * ny) as f64;
        transpose::transpose(spec, &mut s.rows, nx, nyh);
        for (i, row_spec) in s.rows.chunks_exact_mut(nyh).enumerate() {
            // The self-conjugate modes are real up to rounding; realfft insists on exactly.
            row_spec[0].im = 0.0;
            if ny % 2 == 0 {
                row_spec[nyh - 1].im = 0.0;
            }
            self.c2r
                .process_with_scratch(row_spec, &mut s.row, &mut s.real_scratch)
                .expect("buffer sizes are fixed by the plan");
            for (d, &x) in frame[i * ny..(i + 1) * ny].iter_mut().zip(&s.row) {
                *d = x * norm;
            }
        }
    }
}

/// Naive oracle: `U[kx, ky] = sum_{i,j} u[i,j] exp(-2 pi i (kx i/nx + ky j/ny))`, full
/// spectrum in `[nx, ny]` order.
pub fn dft2_naive(u: &[f64], nx: usize, ny: usize) -> Vec<C64> {
    let mut out = vec![C64::default(); nx * ny];
    for kx in 0..nx {
        for ky in 0..ny {
            let mut acc = C64::default();
            for i in 0..nx {
                for j in 0..ny {
                    let ph = -2.0
                        * std::f64::consts::PI
                        * ((kx * i) as f64 / nx as f64 + (ky * j) as f64 / ny as f64);
                    acc += u[i * ny + j] * C64::new(ph.cos(), ph.sin());
                }
            }
            out[kx * ny + ky] = acc;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn forward_matches_naive_dft_and_inverse_roundtrips() {
        for &(nx, ny) in &[(3, 3), (4, 6), (7, 5), (8, 9), (16, 10)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((nx * 100 + ny) as u64);
            let u: Vec<f64> = (0..nx * ny).map(|_| rng.random_range(-1.0..1.0)).collect();
            let f = Fft2::new(nx, ny);
            let mut s = f.scratch();
            let mut spec = vec![C64::default(); f.spec_len()];
            f.forward(&u, &mut spec, &mut s);
            let oracle = dft2_naive(&u, nx, ny);
            for ky in 0..f.nyh() {
                for kx in 0..nx {
                    let d = spec[ky * nx + kx] - oracle[kx * ny + ky];
                    assert!(d.norm() < 1e-10, "{nx}x{ny} mode ({kx},{ky})");
                }
            }
            // Parseval with the half-spectrum weights.
            let energy: f64 = u.iter().map(|x| x * x).sum();
            let spec_energy: f64 = (0..f.nyh())
                .map(|ky| {
                    f.weight(ky) * (0..nx).map(|kx| spec[ky * nx + kx].norm_sqr()).sum::<f64>()
                })
                .sum();
            assert!((spec_energy / (nx * ny) as f64 - energy).abs() < 1e-10 * energy);
            let mut back = vec![0.0; nx * ny];
            f.inverse(&mut spec, &mut back, &mut s);
            for (a, b) in back.iter().zip(&u) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }
}
