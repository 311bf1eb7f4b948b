//! Appendix A.1: Voronoi initial conditions with tanh interfaces and a rough boundary.
//!
//! `u = 0.5 * (1 + tanh((d2 - d1 + xi) / w))` with `d1`, `d2` the periodic (minimum-image)
//! distances to the nearest and second-nearest grain centre, in physical units.
//!
//! The paper leaves the roughness field `xi` open. Ours is a smooth, periodic Gaussian random
//! field: white noise low-pass filtered in Fourier space by `exp(-(k*l)^2/2)` (correlation
//! length `l`, physical units), then scaled to standard deviation `amplitude`. It shifts each
//! interface by about `xi/2`, so boundaries wander smoothly along their length.

use crate::fft2::{C64, Fft2};
use crate::grid::Grid;
use rand::Rng;
use std::f64::consts::PI;

/// The roughness field's default standard deviation (physical units).
pub const DEFAULT_ROUGHNESS_AMPLITUDE: f64 = 1.0;
/// The roughness field's default correlation length (physical units).
pub const DEFAULT_ROUGHNESS_LENGTH: f64 = 3.0;

/// Smooth periodic Gaussian random field with the given standard deviation and correlation
/// length. An amplitude of 0 gives an exactly zero field.
pub fn roughness_field<R: Rng>(grid: &Grid, amplitude: f64, length: f64, rng: &mut R) -> Vec<f64> {
    let n = grid.len();
    let mut noise: Vec<f64> = (0..n).map(|_| standard_normal(rng)).collect();
    if amplitude == 0.0 {
        return vec![0.0; n];
    }
    let fft = Fft2::new(grid.nx, grid.ny);
    let mut s = fft.scratch();
    let mut spec = vec![C64::default(); fft.spec_len()];
    fft.forward(&noise, &mut spec, &mut s);
    let (lx, ly) = (grid.nx as f64 * grid.dx, grid.ny as f64 * grid.dy);
    for ky in 0..fft.nyh() {
        let wy = 2.0 * PI * ky as f64 / ly;
        for kx in 0..grid.nx {
            let kxs = if kx <= grid.nx / 2 {
                kx as f64
            } else {
                kx as f64 - grid.nx as f64
            };
            let wx = 2.0 * PI * kxs / lx;
            let k2 = wx * wx + wy * wy;
            spec[ky * grid.nx + kx] *= (-0.5 * k2 * length * length).exp();
        }
    }
    spec[0] = C64::default();
    fft.inverse(&mut spec, &mut noise, &mut s);
    let std = (noise.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
    if std > 0.0 {
        noise.iter_mut().for_each(|x| *x *= amplitude / std);
    }
    noise
}

/// Box-Muller; keeps the generator free of extra distribution crates.
fn standard_normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// Grain centres placed uniformly on the periodic domain (physical coordinates).
pub fn grain_centres<R: Rng>(grid: &Grid, n_grains: usize, rng: &mut R) -> Vec<(f64, f64)> {
    let (lx, ly) = (grid.nx as f64 * grid.dx, grid.ny as f64 * grid.dy);
    (0..n_grains)
        .map(|_| (rng.random::<f64>() * lx, rng.random::<f64>() * ly))
        .collect()
}

/// Eq. (13) on the grid, for the given centres and roughness field.
pub fn voronoi_field(grid: &Grid, centres: &[(f64, f64)], width: f64, xi: &[f64]) -> Vec<f64> {
    assert!(
        centres.len() >= 2,
        "a Voronoi field needs at least two grains"
    );
    assert_eq!(xi.len(), grid.len());
    let (lx, ly) = (grid.nx as f64 * grid.dx, grid.ny as f64 * grid.dy);
    let mut u = vec![0.0; grid.len()];
    for i in 0..grid.nx {
        let x = i as f64 * grid.dx;
        for j in 0..grid.ny {
            let y = j as f64 * grid.dy;
            let (mut d1, mut d2) = (f64::INFINITY, f64::INFINITY);
            for &(cx, cy) in centres {
                let mut ddx = (x - cx).abs();
                ddx = ddx.min(lx - ddx);
                let mut ddy = (y - cy).abs();
                ddy = ddy.min(ly - ddy);
                let d = (ddx * ddx + ddy * ddy).sqrt();
                if d < d1 {
                    d2 = d1;
                    d1 = d;
                } else if d < d2 {
                    d2 = d;
                }
            }
            let k = i * grid.ny + j;
            u[k] = 0.5 * (1.0 + ((d2 - d1 + xi[k]) / width).tanh());
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn field_is_near_one_inside_and_half_on_boundaries() {
        let g = Grid::new(64, 48, 0.5, 0.5).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let c = grain_centres(&g, 12, &mut rng);
        let xi = vec![0.0; g.len()];
        let u = voronoi_field(&g, &c, 2.5, &xi);
        assert!(u.iter().all(|&v| (0.5..1.0).contains(&v)));
        // Grain interiors approach 1, boundaries sit near 0.5.
        assert!(u.iter().cloned().fold(0.0, f64::max) > 0.95);
        assert!(u.iter().cloned().fold(1.0, f64::min) < 0.55);
        // Periodic: the field has no seam (neighbours across the edge are close).
        for j in 0..g.ny {
            assert!((u[j] - u[(g.nx - 1) * g.ny + j]).abs() < 0.2);
        }
    }

    #[test]
    fn roughness_has_the_requested_std_and_is_smooth() {
        let g = Grid::new(64, 64, 0.5, 0.5).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let xi = roughness_field(&g, 1.0, 3.0, &mut rng);
        let std = (xi.iter().map(|x| x * x).sum::<f64>() / xi.len() as f64).sqrt();
        assert!((std - 1.0).abs() < 1e-9);
        // Neighbouring points are strongly correlated at a 6-pixel correlation length.
        let d: f64 = (0..g.len() - 1)
            .map(|k| (xi[k + 1] - xi[k]).powi(2))
            .sum::<f64>()
            / g.len() as f64;
        assert!(d < 0.05, "{d}");
    }
}
