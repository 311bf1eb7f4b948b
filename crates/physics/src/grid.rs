//! The periodic grid and the eigenvalues of its five-point Laplacian.

use std::f64::consts::PI;

/// A periodic `nx x ny` grid; axis 1 of a `[T, Nx, Ny]` video has spacing `dx`, axis 2 `dy`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub nx: usize,
    pub ny: usize,
    pub dx: f64,
    pub dy: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GridError {
    #[error("grid must be at least 3x3 for a five-point periodic stencil, got {nx}x{ny}")]
    TooSmall { nx: usize, ny: usize },
    #[error("grid spacing must be finite and > 0, got dx={dx}, dy={dy}")]
    BadSpacing { dx: f64, dy: f64 },
}

impl Grid {
    pub fn new(nx: usize, ny: usize, dx: f64, dy: f64) -> Result<Grid, GridError> {
        if nx < 3 || ny < 3 {
            return Err(GridError::TooSmall { nx, ny });
        }
        if !(dx.is_finite() && dy.is_finite() && dx > 0.0 && dy > 0.0) {
            return Err(GridError::BadSpacing { dx, dy });
        }
        Ok(Grid { nx, ny, dx, dy })
    }

    pub fn len(&self) -> usize {
        self.nx * self.ny
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `4/dx^2 + 4/dy^2`: the bound on the Laplacian's eigenvalue magnitudes used for the
    /// von Neumann condition (the paper's `8/(dx dy)` when `dx == dy`).
    pub fn lambda_max(&self) -> f64 {
        4.0 / (self.dx * self.dx) + 4.0 / (self.dy * self.dy)
    }

    /// `4 sin^2(pi k / nx) / dx^2` for `k = 0..nx`: the x part of the eigenvalue magnitude.
    pub fn mu_x(&self) -> Vec<f64> {
        mu_axis(self.nx, self.dx)
    }

    /// `4 sin^2(pi k / ny) / dy^2` for `k = 0..ny`.
    pub fn mu_y(&self) -> Vec<f64> {
        mu_axis(self.ny, self.dy)
    }
}

fn mu_axis(n: usize, h: f64) -> Vec<f64> {
    (0..n)
        .map(|k| {
            let s = (PI * k as f64 / n as f64).sin();
            4.0 * s * s / (h * h)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_max_of_paper_grid_is_32() {
        let g = Grid::new(128, 128, 0.5, 0.5).unwrap();
        assert_eq!(g.lambda_max(), 32.0);
        // The largest actual eigenvalue (k = N/2 on both axes) reaches the bound.
        let mx = g.mu_x()[64] + g.mu_y()[64];
        assert!((mx - 32.0).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_grids() {
        assert!(Grid::new(2, 8, 1.0, 1.0).is_err());
        assert!(Grid::new(8, 8, 0.0, 1.0).is_err());
        assert!(Grid::new(8, 8, 1.0, f64::NAN).is_err());
        assert!(Grid::new(8, 8, -1.0, 1.0).is_err());
    }
}
