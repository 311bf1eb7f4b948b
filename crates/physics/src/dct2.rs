//! 2-D orthonormal type-II cosine transform of frames mirrored at their edges, beside a naive
//! oracle. It diagonalises every symmetric stencil under the half-sample mirror
//! `u[-1-i] = u[i]`: the zero-flux (and, with a mask, the open) SAFE operator.
//!
//! Coefficients are stored transposed, `[ny, nx]` (row `q` along axis 2, column `p` along
//! axis 1), like [`crate::fft2::Fft2`]'s spectra, so both passes run on contiguous rows.
//! Mode `(p, q)` has axis frequencies `theta_x = pi p / nx`, `theta_y = pi q / ny`.

use crate::fft2::C64;
use rustdct::{DctPlanner, TransformType2And3};
use rustfft::{Fft, FftPlanner};
use std::ops::Range;
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
    /// Complex DCT-III per axis for [`Dct2::inverse_pair`], paired DCT-II for
    /// [`Dct2::forward_pair`].
    packed: Arc<Packed>,
}

struct Packed {
    inv_x: ComplexDct3,
    inv_y: ComplexDct3,
    fwd_x: PairDct2,
    fwd_y: PairDct2,
}

/// `scale * e^{sign i pi k / (2N)}` for `k < N`: the twiddles of Makhoul's cosine transforms.
fn quarter_turns(n: usize, scale: f64, sign: f64) -> Vec<C64> {
    (0..n)
        .map(|k| {
            let t = std::f64::consts::PI * k as f64 / (2 * n) as f64;
            C64::new(scale * t.cos(), sign * scale * t.sin())
        })
        .collect()
}

/// Makhoul's reordering of a length-`n` line: element `i` sits at `i / 2` when even, at
/// `n - 1 - i / 2` when odd (the evens forwards, then the odds backwards). The DCT-II's FFT
/// reads its input in this order and the DCT-III's FFT writes its output in it.
#[inline(always)]
fn makhoul_index(n: usize, i: usize) -> usize {
    if i.is_multiple_of(2) {
        i / 2
    } else {
        n - 1 - i / 2
    }
}

/// The type-III cosine transform of complex input, `x_n = Z_0/2 + sum_k Z_k cos(pi k (2n+1)
/// / (2N))`, through one complex FFT of length `N` (Makhoul): `V_k = (Z_k - i Z_{N-k})
/// e^{i pi k / (2N)} / 2`, `v = sum_k V_k e^{2 pi i k m / N}`, `x_2m = v_m`,
/// `x_2m+1 = v_{N-1-m}`. The map is complex-linear and takes real input to real output, so
/// the real and imaginary parts carry two real transforms for the price of one.
struct ComplexDct3 {
    fft: Arc<dyn Fft<f64>>,
    twiddle: Vec<C64>,
}

impl ComplexDct3 {
    fn new(n: usize, planner: &mut FftPlanner<f64>) -> ComplexDct3 {
        let twiddle = quarter_turns(n, 0.5, 1.0);
        ComplexDct3 {
            fft: planner.plan_fft_inverse(n),
            twiddle,
        }
    }

    fn scratch_len(&self) -> usize {
        self.fft.get_inplace_scratch_len()
    }

    /// The FFT's input `V_k` for `z = (a + i b) s`, the scale `s` being `s0 * sy` for
    /// `k = 0` and `s1 * sy` otherwise (the orthonormal inverse's pre-scales, folded in
    /// here; an empty `b` is zero).
    #[inline(always)]
    fn twiddle(&self, a: &[f64], b: &[f64], s0: f64, s1: f64, sy: f64, v: &mut [C64]) {
        let tw = &self.twiddle;
        let s1 = s1 * sy;
        // Index k pairs with N - k, which runs backwards from N - 1.
        let (up, down) = (&a[1..], a[1..].iter().rev());
        if b.is_empty() {
            v[0] = tw[0] * (a[0] * s0 * sy);
            for (((o, &ak), &ar), &t) in v[1..].iter_mut().zip(up).zip(down).zip(&tw[1..]) {
                *o = C64::new(ak, -ar) * (t * s1);
            }
        } else {
            v[0] = C64::new(a[0], b[0]) * tw[0] * (s0 * sy);
            for ((((o, &ak), &ar), (&bk, &br)), &t) in v[1..]
                .iter_mut()
                .zip(up)
                .zip(down)
                .zip(b[1..].iter().zip(b[1..].iter().rev()))
                .zip(&tw[1..])
            {
                *o = C64::new(ak + br, bk - ar) * (t * s1);
            }
        }
    }

    /// The FFT's input `V_k = (Z_k - i Z_{N-k}) e^{i pi k / (2N)} / 2` for complex `z`.
    #[inline(always)]
    fn twiddle_complex(&self, z: &[C64], v: &mut [C64]) {
        v[0] = z[0] * self.twiddle[0];
        // Z_{N-k} runs backwards.
        for (((o, &a), &b), &w) in v[1..]
            .iter_mut()
            .zip(&z[1..])
            .zip(z[1..].iter().rev())
            .zip(&self.twiddle[1..])
        {
            *o = C64::new(a.re + b.im, a.im - b.re) * w;
        }
    }
}

/// The type-II cosine transform of two real sequences at once, `X_k = sum_n x_n cos(pi k
/// (2n+1) / (2N))` of the real and imaginary parts of `z`, through one complex FFT of length
/// `N` (Makhoul's permutation; the two spectra are separated by the FFT's symmetry,
/// `A_k = (Z_k + conj Z_{N-k}) / 2`, `B_k = (Z_k - conj Z_{N-k}) / 2i`).
struct PairDct2 {
    fft: Arc<dyn Fft<f64>>,
    /// `e^{-i pi k / (2N)}`
    twiddle: Vec<C64>,
}

impl PairDct2 {
    fn new(n: usize, planner: &mut FftPlanner<f64>) -> PairDct2 {
        let twiddle = quarter_turns(n, 1.0, -1.0);
        PairDct2 {
            fft: planner.plan_fft_forward(n),
            twiddle,
        }
    }

    fn scratch_len(&self) -> usize {
        self.fft.get_inplace_scratch_len()
    }

    /// The two spectra (`X_k(re) + i X_k(im)` at `out[k]`) from the FFT `v` of a line in
    /// Makhoul's order (see [`makhoul_index`]).
    #[inline(always)]
    fn split(&self, v: &[C64], out: &mut [C64]) {
        let n = v.len();
        // Z_{N-k} runs backwards (Z_0 pairs with itself).
        let mirror = std::iter::once(&v[0]).chain(v[1..].iter().rev());
        for (((o, &zk), &zr), &w) in out[..n].iter_mut().zip(v).zip(mirror).zip(&self.twiddle) {
            let zr = zr.conj();
            let (a, b) = ((zk + zr) * 0.5, (zk - zr) * 0.5);
            // Re(A w) and Re(B w / i) = Im(B w).
            *o = C64::new((a * w).re, (b * w).im);
        }
    }
}

/// Per-thread work buffers for [`Dct2::inverse_pair`].
pub struct Dct2PairScratch {
    zt: Vec<C64>,
    /// Batches of lines through the FFT.
    w: Vec<C64>,
    /// A few lines on their way through a transpose.
    block: Vec<C64>,
    fft: Vec<C64>,
    /// Two stored rows on their way into [`Dct2::inverse_pair_with`].
    lines: Vec<f64>,
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
        let mut fp = FftPlanner::<f64>::new();
        let (fwd_x, inv_x) = scales(nx);
        let (fwd_y, inv_y) = scales(ny);
        Dct2 {
            packed: Arc::new(Packed {
                inv_x: ComplexDct3::new(nx, &mut fp),
                inv_y: ComplexDct3::new(ny, &mut fp),
                fwd_x: PairDct2::new(nx, &mut fp),
                fwd_y: PairDct2::new(ny, &mut fp),
            }),
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
        self.inverse_rows(coeffs, frame, 0..self.nx, s);
    }

    /// [`Dct2::inverse`] filling only the frame rows `rows` (along axis 1).
    pub fn inverse_rows(
        &self,
        coeffs: &mut [f64],
        frame: &mut [f64],
        rows: Range<usize>,
        s: &mut Dct2Scratch,
    ) {
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
        for r in frame[rows.start * ny..rows.end * ny].chunks_exact_mut(ny) {
            self.row.process_dct3_with_scratch(r, &mut s.scratch);
        }
    }
}

impl Dct2 {
    pub fn pair_scratch(&self) -> Dct2PairScratch {
        let s = [
            self.packed.inv_x.scratch_len(),
            self.packed.inv_y.scratch_len(),
            self.packed.fwd_x.scratch_len(),
            self.packed.fwd_y.scratch_len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        Dct2PairScratch {
            zt: vec![C64::default(); self.len()],
            w: vec![C64::default(); self.len()],
            block: vec![C64::default(); 8 * self.nx.max(self.ny)],
            fft: vec![C64::default(); s],
            lines: vec![0.0; 2 * self.nx],
        }
    }

    /// [`Dct2::forward`] of two frames at once (one complex transform), each coefficient
    /// handed to `emit(index, coefficient of a, coefficient of b)` in the transposed layout.
    pub fn forward_pair<T: Copy + Into<f64>>(
        &self,
        frame_a: &[T],
        frame_b: &[T],
        s: &mut Dct2PairScratch,
        mut emit: impl FnMut(usize, f64, f64),
    ) {
        let (nx, ny) = (self.nx, self.ny);
        assert_eq!(frame_a.len(), nx * ny);
        assert_eq!(frame_b.len(), nx * ny);
        let (fx, fy) = (&self.packed.fwd_x, &self.packed.fwd_y);
        // Along axis 2: the frame rows in Makhoul's order, all through the FFT in one call.
        let w = &mut s.w[..nx * ny];
        for (i, v) in w.chunks_exact_mut(ny).enumerate() {
            let (ra, rb) = (
                &frame_a[i * ny..(i + 1) * ny],
                &frame_b[i * ny..(i + 1) * ny],
            );
            // Makhoul's order without a branch per element: even samples ascending into
            // the first half, odd ones descending into the second.
            let (lo, hi) = v.split_at_mut(ny.div_ceil(2));
            for (m, o) in lo.iter_mut().enumerate() {
                *o = C64::new(ra[2 * m].into(), rb[2 * m].into());
            }
            for (m, o) in hi.iter_mut().rev().enumerate() {
                *o = C64::new(ra[2 * m + 1].into(), rb[2 * m + 1].into());
            }
        }
        fy.fft.process_with_scratch(w, &mut s.fft);
        // Split into coefficients, transposed to `[ny, nx]` and already in Makhoul's order
        // for axis 1, in blocks of lines so the writes are contiguous.
        const LINES: usize = 8;
        let (zt, block) = (&mut s.zt, &mut s.block);
        for i0 in (0..nx).step_by(LINES) {
            let i1 = (i0 + LINES).min(nx);
            for (i, out) in (i0..i1).zip(block.chunks_exact_mut(ny)) {
                fy.split(&w[i * ny..(i + 1) * ny], out);
            }
            for q in 0..ny {
                for (i, line) in (i0..i1).zip(block.chunks_exact(ny)) {
                    zt[q * nx + makhoul_index(nx, i)] = line[q];
                }
            }
        }
        // Along axis 1, then the orthonormal scales.
        fx.fft.process_with_scratch(zt, &mut s.fft);
        let line_out = &mut s.block[..nx];
        for (q, line) in zt.chunks_exact(nx).enumerate() {
            let sy = self.fwd_y[q];
            fx.split(line, line_out);
            for (p, (&x, &sx)) in line_out.iter().zip(&self.fwd_x).enumerate() {
                let w = sx * sy;
                emit(q * nx + p, x.re * w, x.im * w);
            }
        }
    }

    /// [`Dct2::inverse`] of two coefficient arrays at once, packed as the real and
    /// imaginary parts of one complex transform, filling only the frame rows `rows` (along
    /// axis 1) of `frame_a` and `frame_b`. It costs about one [`Dct2::inverse`] where
    /// rustdct goes through a complex FFT (most lengths), two where it has a native
    /// power-of-two algorithm. `coeffs_b` may be empty (one transform; `frame_b` is then not
    /// written).
    pub fn inverse_pair(
        &self,
        coeffs_a: &[f64],
        coeffs_b: &[f64],
        frame_a: &mut [f64],
        frame_b: &mut [f64],
        rows: Range<usize>,
        s: &mut Dct2PairScratch,
    ) {
        let (nx, ny) = (self.nx, self.ny);
        assert_eq!(coeffs_a.len(), nx * ny);
        assert!(coeffs_b.is_empty() || coeffs_b.len() == nx * ny);
        let both = !coeffs_b.is_empty();
        self.inverse_pair_with(
            |q, a, b| {
                a.copy_from_slice(&coeffs_a[q * nx..(q + 1) * nx]);
                if both {
                    b.copy_from_slice(&coeffs_b[q * nx..(q + 1) * nx]);
                }
            },
            both,
            frame_a,
            frame_b,
            rows,
            s,
        );
    }

    /// [`Dct2::inverse_pair`] of coefficients made one stored row at a time: `fill(q, a, b)`
    /// writes row `q` (length `nx`) of both arrays (`b` only when `both`). The rows are
    /// made where the transform reads them (a multiplier applied on the way costs no pass
    /// over memory of its own).
    pub fn inverse_pair_with(
        &self,
        fill: impl Fn(usize, &mut [f64], &mut [f64]),
        both: bool,
        frame_a: &mut [f64],
        frame_b: &mut [f64],
        rows: Range<usize>,
        s: &mut Dct2PairScratch,
    ) {
        let (nx, ny) = (self.nx, self.ny);
        assert_eq!(frame_a.len(), nx * ny);
        assert!(!both || frame_b.len() == nx * ny);
        assert!(rows.end <= nx);
        let (px, py) = (&self.packed.inv_x, &self.packed.inv_y);
        // Along axis 1: every stored row `q` (over `p`) made and twiddled, then all of them
        // through the FFT in one call (rustfft runs a batch without per-line dispatch).
        let w = &mut s.w[..nx * ny];
        let (la, lb) = s.lines.split_at_mut(nx);
        let lb = if both { &mut lb[..nx] } else { &mut lb[..0] };
        for (q, v) in w.chunks_exact_mut(nx).enumerate() {
            fill(q, la, lb);
            px.twiddle(la, lb, self.inv_x[0], self.inv_x[1 % nx], self.inv_y[q], v);
        }
        px.fft.process_with_scratch(w, &mut s.fft);
        // Makhoul's output order undone while transposing to `[nx, ny]`, in blocks of
        // lines so the reads stay in cache and the writes are contiguous.
        const LINES: usize = 8;
        let zt = &mut s.zt;
        for q0 in (0..ny).step_by(LINES) {
            let q1 = (q0 + LINES).min(ny);
            for i in rows.clone() {
                let src = makhoul_index(nx, i);
                for (q, z) in (q0..q1).zip(&mut zt[i * ny + q0..i * ny + q1]) {
                    *z = w[q * nx + src];
                }
            }
        }
        // Along axis 2, only the rows wanted, split into the two real frames.
        let nr = rows.len();
        let w = &mut s.w[..nr * ny];
        for (i, v) in rows.clone().zip(w.chunks_exact_mut(ny)) {
            py.twiddle_complex(&zt[i * ny..(i + 1) * ny], v);
        }
        py.fft.process_with_scratch(w, &mut s.fft);
        // x_2m = v_m, x_2m+1 = v_{N-1-m} (for odd N the middle value is last).
        let h = ny / 2;
        for (i, v) in rows.zip(w.chunks_exact(ny)) {
            let row = i * ny..(i + 1) * ny;
            let (even, odd) = (&v[..h], v[ny - h..].iter().rev());
            if both {
                let (fa, fb) = (&mut frame_a[row.clone()], &mut frame_b[row]);
                for (((a, b), &e), &o) in fa
                    .chunks_exact_mut(2)
                    .zip(fb.chunks_exact_mut(2))
                    .zip(even)
                    .zip(odd)
                {
                    a[0] = e.re;
                    a[1] = o.re;
                    b[0] = e.im;
                    b[1] = o.im;
                }
                if ny % 2 == 1 {
                    fa[ny - 1] = v[h].re;
                    fb[ny - 1] = v[h].im;
                }
            } else {
                let fa = &mut frame_a[row];
                for ((a, &e), &o) in fa.chunks_exact_mut(2).zip(even).zip(odd) {
                    a[0] = e.re;
                    a[1] = o.re;
                }
                if ny % 2 == 1 {
                    fa[ny - 1] = v[h].re;
                }
            }
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

    /// Odd, even, prime and 1-long sides for the packed transforms.
    const PAIR_SIZES: &[(usize, usize)] = &[
        (1, 1),
        (2, 3),
        (3, 3),
        (4, 6),
        (7, 5),
        (8, 9),
        (16, 10),
        (12, 30),
        (19, 37),
    ];

    fn two_random(nx: usize, ny: usize) -> (Vec<f64>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((nx * 1000 + ny) as u64);
        let mut draw =
            || -> Vec<f64> { (0..nx * ny).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let a = draw();
        (a, draw())
    }

    /// The paired forward transform equals two plain ones.
    #[test]
    fn forward_pair_equals_two_forwards() {
        for &(nx, ny) in PAIR_SIZES {
            let (a, b) = two_random(nx, ny);
            let d = Dct2::new(nx, ny);
            let (mut s, mut ps) = (d.scratch(), d.pair_scratch());
            let (mut ca, mut cb) = (vec![0.0; nx * ny], vec![0.0; nx * ny]);
            d.forward(&a, &mut ca, &mut s);
            d.forward(&b, &mut cb, &mut s);
            let (mut pa, mut pb) = (vec![7.0; nx * ny], vec![7.0; nx * ny]);
            d.forward_pair(&a, &b, &mut ps, |k, x, y| {
                pa[k] = x;
                pb[k] = y;
            });
            for k in 0..nx * ny {
                assert!((pa[k] - ca[k]).abs() < 1e-12, "{nx}x{ny} a {k}");
                assert!((pb[k] - cb[k]).abs() < 1e-12, "{nx}x{ny} b {k}");
            }
        }
    }

    /// The packed inverse of two coefficient arrays equals two plain inverses (and the
    /// naive oracle's inverse: the plain one is bound to it above), on the rows asked for.
    #[test]
    fn inverse_pair_equals_two_inverses() {
        for &(nx, ny) in PAIR_SIZES {
            let (ca, cb) = two_random(nx, ny);
            let d = Dct2::new(nx, ny);
            let (mut s, mut ps) = (d.scratch(), d.pair_scratch());
            let (mut wa, mut wb) = (vec![0.0; nx * ny], vec![0.0; nx * ny]);
            d.inverse(&mut ca.clone(), &mut wa, &mut s);
            d.inverse(&mut cb.clone(), &mut wb, &mut s);
            let rows = nx / 3..nx - nx / 3;
            let (mut fa, mut fb) = (vec![7.0; nx * ny], vec![7.0; nx * ny]);
            d.inverse_pair(&ca, &cb, &mut fa, &mut fb, rows.clone(), &mut ps);
            let mut single = vec![7.0; nx * ny];
            d.inverse_pair(&cb, &[], &mut single, &mut [], 0..nx, &mut ps);
            for i in 0..nx {
                for j in 0..ny {
                    let k = i * ny + j;
                    assert!(
                        (single[k] - wb[k]).abs() < 1e-12,
                        "{nx}x{ny} single ({i},{j})"
                    );
                    if rows.contains(&i) {
                        assert!((fa[k] - wa[k]).abs() < 1e-12, "{nx}x{ny} a ({i},{j})");
                        assert!((fb[k] - wb[k]).abs() < 1e-12, "{nx}x{ny} b ({i},{j})");
                    } else {
                        assert_eq!((fa[k], fb[k]), (7.0, 7.0), "rows outside are not written");
                    }
                }
            }
        }
    }
}
