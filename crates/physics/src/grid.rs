//! The pixel grid of a video: its size and spacing (the operator owns everything else).

/// An `nx x ny` grid; axis 1 of a `[T, Nx, Ny]` video has spacing `dx`, axis 2 `dy`.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_grids() {
        assert!(Grid::new(2, 8, 1.0, 1.0).is_err());
        assert!(Grid::new(8, 8, 0.0, 1.0).is_err());
        assert!(Grid::new(8, 8, 1.0, f64::NAN).is_err());
        assert!(Grid::new(8, 8, -1.0, 1.0).is_err());
    }
}
