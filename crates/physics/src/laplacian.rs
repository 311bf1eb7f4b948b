//! The five-point stencil: the fast kernel and its naive reference.
//!
//! `lap(u)[i,j] = (u[i+1,j] - 2u[i,j] + u[i-1,j]) / dx^2 + (u[i,j+1] - 2u[i,j] + u[i,j-1]) / dy^2`
//! (axis 1 spacing `dx`, axis 2 spacing `dy`). Indices beyond the edge either wrap
//! (periodic) or mirror at the half sample, `u[-1] = u[0]`, `u[n] = u[n-1]` (zero flux; the
//! open window runs the same mirror and masks what it reaches).

use crate::grid::Grid;
use std::ops::{Add, Mul, Sub};

/// The float types the kernels run in: `f64` for the physics, `f32` for the neural layer.
pub trait Real:
    Copy + Send + Sync + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + 'static
{
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Real for f64 {
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Real for f32 {
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// How the stencil reaches past the edge of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    Wrap,
    Mirror,
}

impl Edge {
    pub fn of(boundary: crate::operator::Boundary) -> Edge {
        match boundary {
            crate::operator::Boundary::Periodic => Edge::Wrap,
            _ => Edge::Mirror,
        }
    }
}

/// `dst = src + kx * dxx(src) + ky * dyy(src)` where `dxx`, `dyy` are the second
/// differences without the `1/h^2` factor. With `kx = dt_sub*|alpha|/dx^2` this is one
/// forward-Euler sub-step of the SAFE operator; it is the one hot loop of the physics.
///
/// `src` and `dst` are one `nx x ny` frame each, row-major (axis 2 contiguous).
pub fn euler_step<T: Real>(
    src: &[T],
    dst: &mut [T],
    nx: usize,
    ny: usize,
    kx: T,
    ky: T,
    edge: Edge,
) {
    assert_eq!(src.len(), nx * ny);
    assert_eq!(dst.len(), nx * ny);
    assert!(nx >= 3 && ny >= 3);
    let two = T::from_f64(2.0);
    let (first, last) = match edge {
        Edge::Wrap => ((nx - 1, ny - 1), (0, 0)),
        Edge::Mirror => ((0, 0), (nx - 1, ny - 1)),
    };
    for i in 0..nx {
        let im = if i == 0 { first.0 } else { i - 1 };
        let ip = if i + 1 == nx { last.0 } else { i + 1 };
        let up = &src[im * ny..(im + 1) * ny];
        let row = &src[i * ny..(i + 1) * ny];
        let down = &src[ip * ny..(ip + 1) * ny];
        let out = &mut dst[i * ny..(i + 1) * ny];
        let point = |j: usize, jm: usize, jp: usize| {
            let c = row[j];
            c + kx * (up[j] + down[j] - two * c) + ky * (row[jm] + row[jp] - two * c)
        };
        out[0] = point(0, first.1, 1);
        // Interior: shifted slices so the compiler can vectorise without index checks.
        let n = ny - 2;
        let (c, l, r) = (&row[1..1 + n], &row[0..n], &row[2..2 + n]);
        let (u, d) = (&up[1..1 + n], &down[1..1 + n]);
        for ((((o, &c), &l), &r), (&u, &d)) in out[1..1 + n]
            .iter_mut()
            .zip(c)
            .zip(l)
            .zip(r)
            .zip(u.iter().zip(d))
        {
            *o = c + kx * (u + d - two * c) + ky * (l + r - two * c);
        }
        out[ny - 1] = point(ny - 1, ny - 2, last.1);
    }
}

/// Fast Laplacian of one frame: [`euler_step`] with the identity part removed.
pub fn laplacian<T: Real>(u: &[T], out: &mut [T], grid: &Grid, edge: Edge) {
    let (nx, ny) = (grid.nx, grid.ny);
    euler_step(
        u,
        out,
        nx,
        ny,
        T::from_f64(1.0 / (grid.dx * grid.dx)),
        T::from_f64(1.0 / (grid.dy * grid.dy)),
        edge,
    );
    for (o, &x) in out.iter_mut().zip(u) {
        *o = *o - x;
    }
}

/// Naive reference: the defining formula, one point at a time, with the edge's index rule.
pub fn laplacian_naive(u: &[f64], grid: &Grid, edge: Edge) -> Vec<f64> {
    let (nx, ny) = (grid.nx as isize, grid.ny as isize);
    let fold = |i: isize, n: isize| match edge {
        Edge::Wrap => i.rem_euclid(n),
        Edge::Mirror => i.clamp(0, n - 1),
    };
    let at = |i: isize, j: isize| u[(fold(i, nx) * ny + fold(j, ny)) as usize];
    let mut out = vec![0.0; u.len()];
    for i in 0..nx {
        for j in 0..ny {
            let c = at(i, j);
            out[(i * ny + j) as usize] = (at(i + 1, j) - 2.0 * c + at(i - 1, j))
                / (grid.dx * grid.dx)
                + (at(i, j + 1) - 2.0 * c + at(i, j - 1)) / (grid.dy * grid.dy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_field(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    #[test]
    fn fast_matches_naive_on_non_square_grids() {
        for &(nx, ny, dx, dy) in &[
            (3, 3, 1.0, 1.0),
            (8, 8, 0.5, 0.5),
            (7, 12, 0.3, 0.9),
            (33, 5, 1.7, 0.25),
        ] {
            let g = Grid::new(nx, ny, dx, dy).unwrap();
            let u = random_field(nx * ny, (nx * 31 + ny) as u64);
            for edge in [Edge::Wrap, Edge::Mirror] {
                let mut fast = vec![0.0; u.len()];
                laplacian(&u, &mut fast, &g, edge);
                let slow = laplacian_naive(&u, &g, edge);
                let scale = 1.0 / (dx * dx) + 1.0 / (dy * dy);
                for (a, b) in fast.iter().zip(&slow) {
                    assert!(
                        (a - b).abs() <= 1e-13 * scale,
                        "{a} vs {b} on {nx}x{ny} {edge:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn laplacian_of_a_plane_wave_is_its_eigenvalue() {
        // cos(2 pi (kx i / nx + ky j / ny)) is an eigenvector with eigenvalue -mu.
        let g = Grid::new(12, 10, 0.7, 1.3).unwrap();
        let (kx, ky) = (3, 2);
        let u: Vec<f64> = (0..g.nx)
            .flat_map(|i| {
                (0..g.ny).map(move |j| {
                    (2.0 * std::f64::consts::PI
                        * (kx as f64 * i as f64 / 12.0 + ky as f64 * j as f64 / 10.0))
                        .cos()
                })
            })
            .collect();
        use crate::operator::{Laplacian, axis_mu};
        let th = |k: usize, n: usize| 2.0 * std::f64::consts::PI * k as f64 / n as f64;
        let mu = axis_mu(Laplacian::FivePoint, th(kx, 12), 0.7)
            + axis_mu(Laplacian::FivePoint, th(ky, 10), 1.3);
        let lap = laplacian_naive(&u, &g, Edge::Wrap);
        for (l, x) in lap.iter().zip(&u) {
            assert!((l + mu * x).abs() < 1e-12);
        }
    }

    #[test]
    fn mirrored_laplacian_of_a_cosine_mode_is_its_eigenvalue() {
        // cos(pi p (2i+1) / (2n)) is an eigenvector of the half-sample-mirrored stencil.
        use crate::operator::{Laplacian, axis_mu};
        use std::f64::consts::PI;
        let g = Grid::new(9, 7, 0.6, 1.1).unwrap();
        let (p, q) = (4, 3);
        let c =
            |k: usize, i: usize, n: usize| (PI * (k * (2 * i + 1)) as f64 / (2 * n) as f64).cos();
        let u: Vec<f64> = (0..9)
            .flat_map(|i| (0..7).map(move |j| c(p, i, 9) * c(q, j, 7)))
            .collect();
        let mu = axis_mu(Laplacian::FivePoint, PI * p as f64 / 9.0, 0.6)
            + axis_mu(Laplacian::FivePoint, PI * q as f64 / 7.0, 1.1);
        let lap = laplacian_naive(&u, &g, Edge::Mirror);
        for (l, x) in lap.iter().zip(&u) {
            assert!((l + mu * x).abs() < 1e-12);
        }
    }

    #[test]
    fn f32_kernel_tracks_f64() {
        let g = Grid::new(16, 9, 0.5, 0.8).unwrap();
        let u = random_field(g.len(), 7);
        let u32: Vec<f32> = u.iter().map(|&x| x as f32).collect();
        let mut out = vec![0f32; g.len()];
        laplacian(&u32, &mut out, &g, Edge::Mirror);
        let slow = laplacian_naive(&u, &g, Edge::Mirror);
        for (a, b) in out.iter().zip(&slow) {
            assert!((*a as f64 - b).abs() < 1e-4);
        }
    }
}
