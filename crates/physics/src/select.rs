//! Deciding from the data what the user may leave to `auto`: the boundary, the Laplacian's
//! discretisation and the direction of the process. Each decision keeps its evidence, which
//! the commands print and record.

use crate::fft2::C64;
use crate::grid::Grid;
use crate::loss::spectra::VideoSpectra;
use crate::operator::SafeOperator;

/// How the edges of a video look, per axis (1 and 2), averaged over frames, each as a ratio
/// to the mean square difference of neighbouring pixels inside the frame:
/// - `seam`: across the wrap-around seam (last row to first). A periodic field wraps as
///   smoothly as it varies inside (~1); a window onto a larger sample jumps (>> 1).
/// - `wall`: between the edge pixel and its inner neighbour. A sealed (zero-flux) sample has
///   no gradient at its walls (<< 1); an open window does (~1).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EdgeStats {
    pub seam: (f64, f64),
    pub wall: (f64, f64),
}

/// Seam ratio below which a video is taken as periodic.
pub const SEAM_PERIODIC: f64 = 4.0;
/// Wall ratio below which a video is taken as sealed.
pub const WALL_SEALED: f64 = 0.25;

impl EdgeStats {
    pub fn of<T: Copy + Into<f64>>(frames: &[&[T]], grid: &Grid) -> EdgeStats {
        let (nx, ny) = (grid.nx, grid.ny);
        // Per frame, then the median over frames: a sealed box's first frame may be any
        // field (the walls act from then on).
        // Up to ~25 frames spread over the video are plenty for a median.
        let step = (frames.len() / 25).max(1);
        let per: Vec<EdgeStats> = frames
            .iter()
            .step_by(step)
            .map(|f| Self::of_frame(f, nx, ny))
            .collect();
        let med = |f: &dyn Fn(&EdgeStats) -> f64| -> f64 {
            let mut v: Vec<f64> = per.iter().map(f).filter(|x| !x.is_nan()).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            if v.is_empty() {
                f64::NAN
            } else {
                v[v.len() / 2]
            }
        };
        EdgeStats {
            seam: (med(&|e| e.seam.0), med(&|e| e.seam.1)),
            wall: (med(&|e| e.wall.0), med(&|e| e.wall.1)),
        }
    }

    fn of_frame<T: Copy + Into<f64>>(f: &[T], nx: usize, ny: usize) -> EdgeStats {
        let (mut inner, mut seam, mut wall) = ([0.0f64; 2], [0.0f64; 2], [0.0f64; 2]);
        {
            let at = |i: usize, j: usize| -> f64 { f[i * ny + j].into() };
            for i in 0..nx {
                for j in 0..ny {
                    if i + 1 < nx {
                        inner[0] += (at(i + 1, j) - at(i, j)).powi(2);
                    }
                    if j + 1 < ny {
                        inner[1] += (at(i, j + 1) - at(i, j)).powi(2);
                    }
                }
            }
            for j in 0..ny {
                seam[0] += (at(0, j) - at(nx - 1, j)).powi(2);
                wall[0] +=
                    0.5 * ((at(1, j) - at(0, j)).powi(2) + (at(nx - 1, j) - at(nx - 2, j)).powi(2));
            }
            for i in 0..nx {
                seam[1] += (at(i, 0) - at(i, ny - 1)).powi(2);
                wall[1] +=
                    0.5 * ((at(i, 1) - at(i, 0)).powi(2) + (at(i, ny - 1) - at(i, ny - 2)).powi(2));
            }
        }
        // Per-difference means: inner has (n-1) differences per line, edges one per line.
        let mi = [inner[0] / (nx - 1) as f64, inner[1] / (ny - 1) as f64];
        let r = |x: f64, m: f64| if m > 0.0 { x / m } else { f64::INFINITY };
        EdgeStats {
            seam: (r(seam[0], mi[0]), r(seam[1], mi[1])),
            wall: (r(wall[0], mi[0]), r(wall[1], mi[1])),
        }
    }

    pub fn looks_periodic(&self) -> bool {
        self.seam.0 < SEAM_PERIODIC && self.seam.1 < SEAM_PERIODIC
    }

    pub fn looks_sealed(&self) -> bool {
        self.wall.0 < WALL_SEALED && self.wall.1 < WALL_SEALED
    }
}

/// Mean square residual of `op` at `|alpha| = a` in a band of `width` pixels along the
/// frame's edges, over the mean square residual deeper inside, on up to `max_pairs` frame
/// pairs spread over the video. Near 1 when the boundary model holds; >> 1 when the edges
/// are wrong (a periodic or sealed model of an open window).
pub fn edge_residual_ratio(
    v: &VideoSpectra,
    op: &SafeOperator,
    a: f64,
    width: usize,
    max_pairs: usize,
) -> f64 {
    let g = v.grid;
    let (nx, ny) = (g.nx, g.ny);
    let width = width.clamp(1, (nx.min(ny) / 4).max(1));
    let pairs = v.n_frames.saturating_sub(1);
    if pairs == 0 {
        return 1.0;
    }
    let k = max_pairs.min(pairs).max(1);
    let b = &op.basis;
    let mut s = b.scratch();
    let mut c = vec![C64::default(); b.n_coeffs()];
    let mut r = vec![0.0; g.len()];
    let (mut edge, mut ne, mut inner, mut ni) = (0.0, 0usize, 0.0, 0usize);
    for p in 0..k {
        let t = if k > 1 { p * (pairs - 1) / (k - 1) } else { 0 };
        let (x0, x1) = (v.frame(t), v.frame(t + 1));
        for (i, ci) in c.iter_mut().enumerate() {
            *ci = x0[i] * op.multiplier(op.mu[i], a, 1).0 - x1[i];
        }
        b.inverse(&mut c, &mut r, &mut s);
        for i in 0..nx {
            for j in 0..ny {
                let depth = i.min(nx - 1 - i).min(j).min(ny - 1 - j);
                let e = r[i * ny + j] * r[i * ny + j];
                if depth < width {
                    edge += e;
                    ne += 1;
                } else {
                    inner += e;
                    ni += 1;
                }
            }
        }
    }
    let (me, mi) = (edge / ne.max(1) as f64, inner / ni.max(1) as f64);
    if mi > 0.0 {
        me / mi
    } else if me > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::{Boundary, Laplacian, OperatorSpec, SubSteps};
    use crate::simulate::evolve_exact;
    use rand::{Rng, SeedableRng};

    fn smooth(grid: Grid, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let noise: Vec<f64> = (0..grid.len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let s = OperatorSpec {
            boundary: Boundary::Periodic,
            laplacian: Laplacian::Continuum,
            n_sub: SubSteps::Infinite,
        };
        SafeOperator::new(grid, s, 1.0).apply(&noise, 1.0, 1)
    }

    #[test]
    fn edge_statistics_tell_the_three_boundaries_apart() {
        let g = Grid::new(48, 40, 0.5, 0.5).unwrap();
        let periodic = smooth(g, 1);
        let big = Grid::new(96, 80, 0.5, 0.5).unwrap();
        let b = smooth(big, 2);
        let window: Vec<f64> = (0..48)
            .flat_map(|i| (0..40).map(move |j| (i, j)))
            .map(|(i, j)| b[(i + 20) * 80 + j + 13])
            .collect();
        let zf = OperatorSpec {
            boundary: Boundary::ZeroFlux,
            laplacian: Laplacian::Continuum,
            n_sub: SubSteps::Infinite,
        };
        let sealed = evolve_exact(&window, &g, zf, 1.0, 1.0, 2)[g.len()..].to_vec();
        let st = |f: &[f64]| EdgeStats::of(&[f], &g);
        assert!(
            st(&periodic).looks_periodic() && !st(&periodic).looks_sealed(),
            "{:?}",
            st(&periodic)
        );
        assert!(
            !st(&window).looks_periodic() && !st(&window).looks_sealed(),
            "{:?}",
            st(&window)
        );
        assert!(
            st(&sealed).looks_sealed() && !st(&sealed).looks_periodic(),
            "{:?}",
            st(&sealed)
        );
    }
}
