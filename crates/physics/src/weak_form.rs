//! The classical baseline: a weak-form (WSINDy-style) estimate of `alpha`.
//!
//! Smooth bumps `psi = phi(x) phi(y) chi(t)` with supports inside the video (nothing is
//! assumed at its edges) turn `du/dt = D lap u` into `-sum u d_t psi = D sum u lap psi` by
//! integration by parts; `D` follows by least squares over a grid of test functions. No
//! derivative of the data is taken, which makes it robust to noise and open windows; its
//! limits are the quadrature of the bumps and the continuum assumption. The sign comes out
//! with `D`: `alpha = -D` (diffusion smooths, mobility gives `D < 0`).

use rayon::prelude::*;

/// Test-function sizes: spatial half-width `mx` pixels, temporal half-width `mt` frames,
/// bump exponent `p` (`phi(s) = (1 - s^2)^p`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeakForm {
    pub mx: usize,
    pub mt: usize,
    pub p: i32,
}

impl Default for WeakForm {
    fn default() -> WeakForm {
        WeakForm {
            mx: 12,
            mt: 20,
            p: 6,
        }
    }
}

/// Rows `[phi, phi', phi'']` (physical derivatives) of bumps of half-width `m` samples
/// spaced `step` apart along an axis of `n` samples, spacing `h`.
fn bumps(n: usize, h: f64, m: usize, p: i32, step: usize) -> [Vec<Vec<f64>>; 3] {
    let (mut f, mut f1, mut f2) = (Vec::new(), Vec::new(), Vec::new());
    let mut c = m;
    while c + m < n {
        let (mut a, mut b, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for i in 0..n {
            let s = (i as f64 - c as f64) / m as f64;
            if s.abs() < 1.0 {
                let q = 1.0 - s * s;
                let mh = m as f64 * h;
                a[i] = q.powi(p);
                b[i] = -2.0 * p as f64 * s * q.powi(p - 1) / mh;
                d[i] = (-2.0 * p as f64 * q.powi(p - 1)
                    + 4.0 * (p * (p - 1)) as f64 * s * s * q.powi(p - 2))
                    / (mh * mh);
            }
        }
        f.push(a);
        f1.push(b);
        f2.push(d);
        c += step.max(1);
    }
    [f, f1, f2]
}

/// `alpha` of frames `[T, nx, ny]` (recorded order), signed.
pub fn weak_form_alpha<T: Copy + Into<f64> + Sync>(
    frames: &[&[T]],
    nx: usize,
    ny: usize,
    dx: f64,
    dy: f64,
    dt: f64,
    w: &WeakForm,
) -> Result<f64, String> {
    let t = frames.len();
    if t < 3 {
        return Err("the weak form needs at least 3 frames".into());
    }
    let (mt, mx, my) = (
        w.mt.min((t - 1) / 2),
        w.mx.min((nx - 1) / 2),
        w.mx.min((ny - 1) / 2),
    );
    if mt < 2 || mx < 2 || my < 2 {
        return Err("video too small for the weak form's test functions".into());
    }
    let n = nx * ny;
    let mean = frames
        .iter()
        .flat_map(|f| f.iter())
        .map(|&x| x.into())
        .sum::<f64>()
        / (t * n) as f64;
    let [ct, ct1, _] = bumps(t, dt, mt, w.p, mt / 2);
    let [px, _, px2] = bumps(nx, dx, mx, w.p, mx / 2);
    let [py, _, py2] = bumps(ny, dy, my, w.p, my / 2);
    if ct.is_empty() || px.is_empty() || py.is_empty() {
        return Err("video too small for the weak form's test functions".into());
    }
    // Time integrals against chi and chi' (the weights sum the mean out once rather than
    // per pixel). A tile of pixels at a time, all frames in order: the partial sums stay in
    // cache and each pixel's sum runs in the same order as a frame-by-frame pass.
    const TILE: usize = 1024;
    let integrate = |c: &Vec<f64>, c1: &Vec<f64>| -> (Vec<f64>, Vec<f64>) {
        let (mut u, mut u1) = (vec![0.0; n], vec![0.0; n]);
        let used: Vec<usize> = (0..t).filter(|&k| c[k] != 0.0 || c1[k] != 0.0).collect();
        let (mut sc, mut sc1) = (0.0, 0.0);
        for &k in &used {
            sc += c[k];
            sc1 += c1[k];
        }
        for (p0, (ut, u1t)) in u.chunks_mut(TILE).zip(u1.chunks_mut(TILE)).enumerate() {
            let p0 = p0 * TILE;
            for &k in &used {
                let (w, w1) = (c[k], c1[k]);
                let f = &frames[k][p0..p0 + ut.len()];
                for ((o, o1), &x) in ut.iter_mut().zip(u1t.iter_mut()).zip(f) {
                    let x: f64 = x.into();
                    *o += w * x;
                    *o1 += w1 * x;
                }
            }
        }
        u.iter_mut().for_each(|o| *o -= sc * mean);
        u1.iter_mut().for_each(|o| *o -= sc1 * mean);
        (u, u1)
    };
    // sum_{ij} A[i,j] fx[i] fy[j] for every pair of spatial bumps.
    let project = |a: &[f64], fx: &[Vec<f64>], fy: &[Vec<f64>]| -> Vec<f64> {
        let rows: Vec<Vec<f64>> = fx
            .iter()
            .map(|bx| {
                let mut r = vec![0.0; ny];
                for (i, &v) in bx.iter().enumerate() {
                    if v != 0.0 {
                        for (x, &y) in r.iter_mut().zip(&a[i * ny..(i + 1) * ny]) {
                            *x += v * y;
                        }
                    }
                }
                r
            })
            .collect();
        rows.iter()
            .flat_map(|r| {
                fy.iter()
                    .map(move |by| r.iter().zip(by).map(|(x, y)| x * y).sum::<f64>())
            })
            .collect()
    };
    let (gb, gg) = ct
        .par_iter()
        .zip(ct1.par_iter())
        .map(|(c, c1)| {
            let (u, u1) = integrate(c, c1);
            let b: Vec<f64> = project(&u1, &px, &py).into_iter().map(|x| -x).collect();
            let g: Vec<f64> = project(&u, &px2, &py)
                .iter()
                .zip(project(&u, &px, &py2))
                .map(|(x, y)| x + y)
                .collect();
            (
                g.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>(),
                g.iter().map(|x| x * x).sum::<f64>(),
            )
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    if gg.is_nan() || gg <= 0.0 {
        return Err("the video has no structure the weak form can see".into());
    }
    Ok(-gb / gg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::evolve_exact;
    use crate::{Boundary, Grid, Laplacian, OperatorSpec, SubSteps};

    #[test]
    fn recovers_alpha_on_a_window_of_continuous_physics_in_both_directions() {
        let big = Grid::new(160, 150, 0.5, 0.5).unwrap();
        let u0: Vec<f64> = (0..big.len())
            .map(|k| {
                let (i, j) = ((k / 150) as f64 / 160.0, (k % 150) as f64 / 150.0);
                use std::f64::consts::TAU;
                (TAU * 3.0 * i).sin() * (TAU * 2.0 * j).cos()
                    + 0.5 * (TAU * (5.0 * i + 4.0 * j)).cos()
            })
            .collect();
        let spec = OperatorSpec {
            boundary: Boundary::Periodic,
            laplacian: Laplacian::Continuum,
            n_sub: SubSteps::Infinite,
        };
        let all = evolve_exact(&u0, &big, spec, 0.3, 0.1, 61);
        let (wx, wy) = (70, 60);
        let win: Vec<f32> = all
            .chunks(big.len())
            .flat_map(|f| {
                (0..wx).flat_map(move |i| (0..wy).map(move |j| f[(i + 40) * 150 + j + 30] as f32))
            })
            .collect();
        let mut frames: Vec<&[f32]> = win.chunks_exact(wx * wy).collect();
        let a = weak_form_alpha(&frames, wx, wy, 0.5, 0.5, 0.1, &WeakForm::default()).unwrap();
        assert!((a + 0.3).abs() < 3e-3, "{a}");
        frames.reverse();
        let m = weak_form_alpha(&frames, wx, wy, 0.5, 0.5, 0.1, &WeakForm::default()).unwrap();
        assert!((m - 0.3).abs() < 3e-3, "{m}");
    }
}
