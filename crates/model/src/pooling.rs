//! The estimator's adaptive average pooling on the host, with the symmetries of the
//! periodic grid as training augmentation.
//!
//! A periodic shift, a reflection of either axis and (on square grids with `dx == dy`) a
//! transpose map a solution of the periodic heat equation to another one with the same
//! `alpha` and leave the SAFE loss of every `|alpha|` unchanged (they permute Fourier modes
//! of equal eigenvalue). They do change the 4x4 pooled view the estimator sees, so the 36
//! training videos of the paper protocol become many.

use rand::Rng;

/// A grid symmetry: shift, then reflections, then transpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Symmetry {
    pub shift: (usize, usize),
    pub flip_x: bool,
    pub flip_y: bool,
    pub transpose: bool,
}

impl Symmetry {
    pub const IDENTITY: Symmetry = Symmetry {
        shift: (0, 0),
        flip_x: false,
        flip_y: false,
        transpose: false,
    };

    /// A uniformly random symmetry of an `nx x ny` grid (transpose only when square and
    /// isotropic).
    pub fn random<R: Rng>(rng: &mut R, nx: usize, ny: usize, isotropic: bool) -> Symmetry {
        Symmetry {
            shift: (rng.random_range(0..nx), rng.random_range(0..ny)),
            flip_x: rng.random(),
            flip_y: rng.random(),
            transpose: nx == ny && isotropic && rng.random(),
        }
    }

    /// Where source pixel `(i, j)` lands.
    fn map(&self, i: usize, j: usize, nx: usize, ny: usize) -> (usize, usize) {
        let (mut a, mut b) = ((i + self.shift.0) % nx, (j + self.shift.1) % ny);
        if self.flip_x {
            a = nx - 1 - a;
        }
        if self.flip_y {
            b = ny - 1 - b;
        }
        if self.transpose { (b, a) } else { (a, b) }
    }
}

/// Bins of adaptive pooling along one axis of length `n` into `p` outputs (PyTorch/burn:
/// `start = floor(k n / p)`, `end = ceil((k+1) n / p)`).
fn bins(n: usize, p: usize) -> Vec<(usize, usize)> {
    (0..p)
        .map(|k| ((k * n) / p, ((k + 1) * n).div_ceil(p)))
        .collect()
}

/// Pool frames `[t, nx, ny]` (after applying `sym`) to `[t, p*p]`. The identity (every
/// inference) sums each row's bins and adds them to the row's bins, frames in parallel;
/// other symmetries go through [`pool_frames_mapped`], the per-pixel reference.
pub fn pool_frames(
    frames: &[f32],
    t: usize,
    nx: usize,
    ny: usize,
    p: usize,
    sym: &Symmetry,
) -> Vec<f32> {
    if *sym != Symmetry::IDENTITY {
        return pool_frames_mapped(frames, t, nx, ny, p, sym);
    }
    use rayon::prelude::*;
    let n = nx * ny;
    assert_eq!(frames.len(), t * n);
    let (bx, by) = (bins(nx, p), bins(ny, p));
    let mut out = vec![0f32; t * p * p];
    out.par_chunks_mut(p * p)
        .zip(frames.par_chunks(n))
        .for_each(|(o, f)| {
            let mut acc = vec![0f64; p * p];
            let mut rs = vec![0f64; p];
            for (x, row) in f.chunks_exact(ny).enumerate() {
                for (r, &(s, e)) in rs.iter_mut().zip(&by) {
                    *r = row[s..e].iter().map(|&v| v as f64).sum();
                }
                for (k, &(s, e)) in bx.iter().enumerate() {
                    if s <= x && x < e {
                        for (a, r) in acc[k * p..(k + 1) * p].iter_mut().zip(&rs) {
                            *a += r;
                        }
                    }
                }
            }
            for (i, (d, a)) in o.iter_mut().zip(&acc).enumerate() {
                let (x, y) = (bx[i / p], by[i % p]);
                *d = (*a / ((x.1 - x.0) * (y.1 - y.0)) as f64) as f32;
            }
        });
    out
}

/// [`pool_frames`] pixel by pixel through the symmetry's map: the slow, obviously right way.
pub fn pool_frames_mapped(
    frames: &[f32],
    t: usize,
    nx: usize,
    ny: usize,
    p: usize,
    sym: &Symmetry,
) -> Vec<f32> {
    let n = nx * ny;
    assert_eq!(frames.len(), t * n);
    // Output grid is `nx x ny`, or `ny x nx` when transposed.
    let (ox, oy) = if sym.transpose { (ny, nx) } else { (nx, ny) };
    let (bx, by) = (bins(ox, p), bins(oy, p));
    // For each destination coordinate, the bins containing it (1 or 2 per axis).
    let of = |b: &[(usize, usize)], len: usize| -> Vec<Vec<usize>> {
        (0..len)
            .map(|x| {
                b.iter()
                    .enumerate()
                    .filter(|(_, (s, e))| *s <= x && x < *e)
                    .map(|(k, _)| k)
                    .collect()
            })
            .collect()
    };
    let (cx, cy) = (of(&bx, ox), of(&by, oy));
    let counts: Vec<f32> = (0..p * p)
        .map(|k| ((bx[k / p].1 - bx[k / p].0) * (by[k % p].1 - by[k % p].0)) as f32)
        .collect();
    // Destination of every source pixel, computed once.
    let dest: Vec<(usize, usize)> = (0..n).map(|s| sym.map(s / ny, s % ny, nx, ny)).collect();
    let mut out = vec![0f32; t * p * p];
    for (f, o) in frames.chunks_exact(n).zip(out.chunks_exact_mut(p * p)) {
        let mut acc = vec![0f64; p * p];
        for (s, &v) in f.iter().enumerate() {
            let (a, b) = dest[s];
            for &r in &cx[a] {
                for &c in &cy[b] {
                    acc[r * p + c] += v as f64;
                }
            }
        }
        for ((d, a), c) in o.iter_mut().zip(&acc).zip(&counts) {
            *d = (*a / *c as f64) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::AdaptiveAvgPool2dConfig;
    use burn::tensor::{Device, Distribution, Tensor};

    #[test]
    fn the_fast_identity_pooling_equals_the_per_pixel_one() {
        for (nx, ny, p) in [(37, 23, 4), (8, 8, 4), (5, 9, 4), (3, 2, 4), (128, 96, 4)] {
            let f: Vec<f32> = (0..3 * nx * ny)
                .map(|i| ((i * 7919) % 1013) as f32 / 97.0 - 5.0)
                .collect();
            let a = pool_frames(&f, 3, nx, ny, p, &Symmetry::IDENTITY);
            let b = pool_frames_mapped(&f, 3, nx, ny, p, &Symmetry::IDENTITY);
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                    "{nx}x{ny}: {x} {y}"
                );
            }
        }
    }

    #[test]
    fn identity_pooling_equals_burns_adaptive_pool() {
        let dev = Device::flex();
        for (nx, ny) in [(16, 16), (13, 10), (7, 9)] {
            let x = crate::model::with_burn_rng(&dev, 1, || {
                Tensor::<4>::random([3, 1, nx, ny], Distribution::Normal(0.0, 1.0), &dev)
            });
            let v: Vec<f32> = x.to_data().try_into_vec().unwrap();
            let want: Vec<f32> = AdaptiveAvgPool2dConfig::new([4, 4])
                .init()
                .forward(x)
                .into_data()
                .try_into_vec()
                .unwrap();
            let got = pool_frames(&v, 3, nx, ny, 4, &Symmetry::IDENTITY);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{nx}x{ny}: {a} {b}");
            }
        }
    }

    #[test]
    fn symmetries_permute_pixels_and_keep_the_mean() {
        let (nx, ny) = (8, 8);
        let v: Vec<f32> = (0..nx * ny).map(|k| k as f32).collect();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        for _ in 0..20 {
            let s = Symmetry::random(&mut rng, nx, ny, true);
            let mut seen = vec![false; nx * ny];
            for i in 0..nx {
                for j in 0..ny {
                    let (a, b) = s.map(i, j, nx, ny);
                    assert!(!seen[a * ny + b]);
                    seen[a * ny + b] = true;
                }
            }
            let p = pool_frames(&v, 1, nx, ny, 4, &s);
            let mean: f32 = p.iter().sum::<f32>() / 16.0;
            assert!((mean - 31.5).abs() < 1e-4);
        }
        // A shift by one pooling block rotates the pooled map.
        let s = Symmetry {
            shift: (2, 0),
            ..Symmetry::IDENTITY
        };
        let (a, b) = (
            pool_frames(&v, 1, nx, ny, 4, &Symmetry::IDENTITY),
            pool_frames(&v, 1, nx, ny, 4, &s),
        );
        assert_eq!(&a[0..4], &b[4..8]);
    }
}
