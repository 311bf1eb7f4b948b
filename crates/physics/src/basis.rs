//! The basis that diagonalises a boundary's operator: Fourier modes for a periodic field
//! ([`Fft2`]), mirrored cosine modes for zero-flux and open windows ([`Dct2`]). One
//! interface so the spectra, the loss curve and the batch kernels are written once.
//!
//! Both store coefficients transposed, index `i = ky * nx + kx`, as [`C64`] (the cosine
//! coefficients are real). `sum_x u_x^2 = norm() * sum_i multiplicity(i) * |X_i|^2`.

use crate::dct2::{Dct2, Dct2Scratch};
use crate::fft2::{C64, Fft2, Fft2Scratch};
use crate::operator::{Boundary, axis_theta};

#[derive(Clone)]
pub enum Basis {
    Fourier(Fft2),
    Cosine(Dct2),
}

pub enum BasisScratch {
    Fourier(Fft2Scratch),
    Cosine(Dct2Scratch, Vec<f64>),
}

impl Basis {
    pub fn for_boundary(boundary: Boundary, nx: usize, ny: usize) -> Basis {
        match boundary {
            Boundary::Periodic => Basis::Fourier(Fft2::new(nx, ny)),
            Boundary::ZeroFlux | Boundary::Open => Basis::Cosine(Dct2::new(nx, ny)),
        }
    }

    pub fn boundary_kind(&self) -> Boundary {
        match self {
            Basis::Fourier(_) => Boundary::Periodic,
            Basis::Cosine(_) => Boundary::ZeroFlux,
        }
    }

    pub fn nx(&self) -> usize {
        match self {
            Basis::Fourier(f) => f.nx,
            Basis::Cosine(d) => d.nx,
        }
    }

    pub fn ny(&self) -> usize {
        match self {
            Basis::Fourier(f) => f.ny,
            Basis::Cosine(d) => d.ny,
        }
    }

    /// Number of stored `ky` rows.
    pub fn rows(&self) -> usize {
        match self {
            Basis::Fourier(f) => f.nyh(),
            Basis::Cosine(d) => d.ny,
        }
    }

    pub fn n_coeffs(&self) -> usize {
        self.rows() * self.nx()
    }

    /// How many modes of the full basis stored row `ky` stands for.
    pub fn multiplicity(&self, ky: usize) -> f64 {
        match self {
            Basis::Fourier(f) => f.weight(ky),
            Basis::Cosine(_) => 1.0,
        }
    }

    /// Parseval factor: `sum_x u^2 = norm * sum_i multiplicity * |X_i|^2`.
    pub fn norm(&self) -> f64 {
        match self {
            Basis::Fourier(f) => 1.0 / (f.nx * f.ny) as f64,
            Basis::Cosine(_) => 1.0,
        }
    }

    pub fn theta_x(&self) -> Vec<f64> {
        axis_theta(self.boundary_kind(), self.nx())
    }

    /// Frequencies of the stored rows.
    pub fn theta_y(&self) -> Vec<f64> {
        let mut t = axis_theta(self.boundary_kind(), self.ny());
        t.truncate(self.rows());
        t
    }

    /// Index of `kx` after folding modes of equal eigenvalue (`kx` and `nx - kx` in Fourier).
    pub fn fold_x(&self, kx: usize) -> usize {
        match self {
            Basis::Fourier(f) => kx.min(f.nx - kx),
            Basis::Cosine(_) => kx,
        }
    }

    pub fn n_fold_x(&self) -> usize {
        match self {
            Basis::Fourier(f) => f.nx / 2 + 1,
            Basis::Cosine(d) => d.nx,
        }
    }

    pub fn scratch(&self) -> BasisScratch {
        match self {
            Basis::Fourier(f) => BasisScratch::Fourier(f.scratch()),
            Basis::Cosine(d) => BasisScratch::Cosine(d.scratch(), vec![0.0; d.len()]),
        }
    }

    pub fn forward<T: Copy + Into<f64>>(&self, frame: &[T], out: &mut [C64], s: &mut BasisScratch) {
        match (self, s) {
            (Basis::Fourier(f), BasisScratch::Fourier(s)) => f.forward(frame, out, s),
            (Basis::Cosine(d), BasisScratch::Cosine(s, buf)) => {
                d.forward(frame, buf, s);
                for (o, &v) in out.iter_mut().zip(buf.iter()) {
                    *o = C64::new(v, 0.0);
                }
            }
            _ => unreachable!("scratch of another basis"),
        }
    }

    /// Inverse of [`Basis::forward`]; destroys `coeffs`.
    pub fn inverse(&self, coeffs: &mut [C64], frame: &mut [f64], s: &mut BasisScratch) {
        match (self, s) {
            (Basis::Fourier(f), BasisScratch::Fourier(s)) => f.inverse(coeffs, frame, s),
            (Basis::Cosine(d), BasisScratch::Cosine(s, buf)) => {
                for (b, c) in buf.iter_mut().zip(coeffs.iter()) {
                    *b = c.re;
                }
                d.inverse(buf, frame, s);
            }
            _ => unreachable!("scratch of another basis"),
        }
    }
}
