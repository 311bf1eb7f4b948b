//! The estimator's forward and backward pass fused into plain Rust loops: the fast path of
//! every optimisation that trains only the estimator on a fixed latent (zero-shot, training
//! phase 1, test-time training phase 1).
//!
//! Why: on 4x4 maps and 101 tokens burn's per-op cost dominates (~5.5 ms per step on two
//! cores, most of it in convolutions over tiny maps); this pass does the same arithmetic in
//! well under a millisecond. The [`Estimator`] module stays the definition and owns the
//! parameters (saving, Adam, training); its burn forward with burn's autodiff is the
//! reference, and tests bind values and gradients of the two.
//!
//! The pass takes the pooled frames as a constant: no gradient flows back to the latent.

use crate::estimator::Estimator;
use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

/// Run a method compiled for AVX2+FMA when the CPU has them (checked once, stored in
/// `avx2`), else the portable build of the same code.
macro_rules! simd {
    ($avx2:expr, $self:ident . $m:ident ( $($arg:expr),* )) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if $avx2 {
                // SAFETY: `avx2` is only true when the CPU reports AVX2 and FMA.
                unsafe { $self.avx2_call(|| $self.$m($($arg),*)) }
            } else {
                $self.$m($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = $avx2;
            $self.$m($($arg),*)
        }
    }};
}

fn host<const D: usize>(p: &Param<Tensor<D>>) -> Vec<f32> {
    p.val()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap_or_default()
}

fn host_opt(p: &Option<Param<Tensor<1>>>, n: usize) -> Vec<f32> {
    p.as_ref().map(host).unwrap_or_else(|| vec![0.0; n])
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Host copy of the estimator's parameters, in loop-friendly layouts.
pub struct HostEstimator {
    p: usize,
    c1: usize,
    d: usize,
    heads: usize,
    hidden: usize,
    /// `[k][c1]`, `k = kh*3 + kw`.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// `[k][c1][d]`.
    w2: Vec<f32>,
    b2: Vec<f32>,
    /// Linear weights `[in][out]` as burn stores them.
    wq: Vec<f32>,
    bq: Vec<f32>,
    wk: Vec<f32>,
    bk: Vec<f32>,
    wv: Vec<f32>,
    bv: Vec<f32>,
    wo: Vec<f32>,
    bo: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
    w3: Vec<f32>,
    b3: Vec<f32>,
    w4: Vec<f32>,
    b4: f32,
    /// Band projection `[2K][d]`, bias `[d]` (empty when the estimator has none).
    wb: Vec<f32>,
    bb: Vec<f32>,
    n_band: usize,
    /// Neighbour of output position `q` under kernel offset `k`, or `usize::MAX` (padding).
    nb: Vec<usize>,
    avx2: bool,
}

/// The estimator's parameters in burn's layouts, in a fixed order: conv1 (w, b), conv2,
/// query, key, value, output, layer norm (gamma, beta), head1, head2, and the band
/// projection when present. Missing biases are zeros.
#[derive(Clone, Debug)]
pub struct HostParams {
    pub tensors: Vec<Vec<f32>>,
    pool: usize,
    heads: usize,
    eps: f32,
}

impl HostParams {
    pub fn from_module(e: &Estimator) -> HostParams {
        let d = e.conv2.weight.shape()[0];
        let hidden = e.head1.weight.shape()[1];
        let c1 = e.conv1.weight.shape()[0];
        let a = &e.attn;
        let mut t = vec![
            host(&e.conv1.weight),
            host_opt(&e.conv1.bias, c1),
            host(&e.conv2.weight),
            host_opt(&e.conv2.bias, d),
            host(&a.query.weight),
            host_opt(&a.query.bias, d),
            host(&a.key.weight),
            host_opt(&a.key.bias, d),
            host(&a.value.weight),
            host_opt(&a.value.bias, d),
            host(&a.output.weight),
            host_opt(&a.output.bias, d),
            host(&e.norm.gamma),
            host_opt(&e.norm.beta, d),
            host(&e.head1.weight),
            host_opt(&e.head1.bias, hidden),
            host(&e.head2.weight),
            host_opt(&e.head2.bias, 1),
        ];
        if let Some(l) = &e.bands {
            t.push(host(&l.weight));
            t.push(host_opt(&l.bias, d));
        }
        HostParams {
            tensors: t,
            pool: e.pool_size(),
            heads: a.n_heads,
            eps: e.norm_epsilon() as f32,
        }
    }
}

/// Adam on host parameters, the same update as burn's (and PyTorch's) Adam:
/// `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
/// `p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
/// The estimator-only loops (zero-shot) keep their parameters here instead of paying burn's
/// per-tensor cost for ~20 small tensors every step; a test checks the trajectory against
/// burn's optimiser.
pub struct HostAdam {
    beta1: f32,
    beta2: f32,
    eps: f32,
    t: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl HostAdam {
    pub fn new(eps: f32) -> HostAdam {
        HostAdam {
            beta1: 0.9,
            beta2: 0.999,
            eps,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    pub fn step(&mut self, params: &mut HostParams, grads: HostGrads, lr: f64) {
        let g = grads.in_order(params.tensors.len() > 18);
        if self.m.is_empty() {
            self.m = g.iter().map(|x| vec![0f32; x.len()]).collect();
            self.v = self.m.clone();
        }
        self.t += 1;
        let c2 = (1.0 - self.beta2.powi(self.t)).sqrt();
        let factor = c2 / (1.0 - self.beta1.powi(self.t));
        let eps = self.eps * c2;
        let lr = lr as f32;
        for (((p, g), m), v) in params
            .tensors
            .iter_mut()
            .zip(&g)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            for (((pi, &gi), mi), vi) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *mi = *mi * self.beta1 + gi * (1.0 - self.beta1);
                *vi = *vi * self.beta2 + gi * gi * (1.0 - self.beta2);
                *pi -= lr * (*mi * factor) / (vi.sqrt() + eps);
            }
        }
    }
}

/// Gradients in the layouts of the burn parameters.
#[derive(Clone, Debug, Default)]
pub struct HostGrads {
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
    pub wq: Vec<f32>,
    pub bq: Vec<f32>,
    pub wk: Vec<f32>,
    pub bk: Vec<f32>,
    pub wv: Vec<f32>,
    pub bv: Vec<f32>,
    pub wo: Vec<f32>,
    pub bo: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub w3: Vec<f32>,
    pub b3: Vec<f32>,
    pub w4: Vec<f32>,
    pub b4: Vec<f32>,
    pub wb: Vec<f32>,
    pub bb: Vec<f32>,
}

/// Intermediate values the backward pass needs.
pub struct Cache {
    t: usize,
    pooled: Vec<f32>,
    bands: Vec<f32>,
    a1: Vec<f32>,
    /// im2col of the first convolution's ReLU, `[t*pp][9*c1]`.
    col: Vec<f32>,
    a2: Vec<f32>,
    z: Vec<f32>,
    /// Per-head `[h][t][dk]` projections.
    qh: Vec<f32>,
    /// Per-head transposed `[h][dk][t]` keys and values.
    kt: Vec<f32>,
    vt: Vec<f32>,
    attn: Vec<f32>,
    ctx: Vec<f32>,
    rhat: Vec<f32>,
    inv_std: Vec<f32>,
    m: Vec<f32>,
    u: Vec<f32>,
    o: f32,
}

/// Frames per parallel block of the frame-token convolutions.
const BLOCK: usize = 8;

/// How a row-major `[rows][cols]` buffer is read as a GEMM operand: as stored, or transposed.
#[derive(Clone, Copy)]
enum Layout {
    /// The operand is the buffer itself.
    Rows,
    /// The operand is the buffer's transpose.
    Cols,
}

/// `c = a b + beta c` with `a: [m][k]`, `b: [k][n]`, `c: [m][n]` row-major, each operand
/// read through its [`Layout`] (matrixmultiply's kernels pick AVX2/FMA at run time).
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    la: Layout,
    b: &[f32],
    lb: Layout,
    beta: f32,
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let (rsa, csa) = match la {
        Layout::Rows => (k as isize, 1),
        Layout::Cols => (1, m as isize),
    };
    let (rsb, csb) = match lb {
        Layout::Rows => (n as isize, 1),
        Layout::Cols => (1, k as isize),
    };
    // SAFETY: the assert above bounds every index the strides reach.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `y += a * x` (vectorises).
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Dot product with eight independent accumulators, so it vectorises despite float
/// non-associativity.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y[r][c] = b[c] + sum_i x[r][i] w[i][c]` for `x: [rows][n_in]`, `w: [n_in][n_out]`.
fn affine(x: &[f32], w: &[f32], b: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    let rows = x.len() / n_in;
    let mut y = Vec::with_capacity(rows * n_out);
    for _ in 0..rows {
        y.extend_from_slice(b);
    }
    gemm(
        rows,
        n_in,
        n_out,
        x,
        Layout::Rows,
        w,
        Layout::Rows,
        1.0,
        &mut y,
    );
    y
}

/// Backward of [`affine`]: accumulates `dw`, `db` and returns `dx`.
fn affine_back(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n_in: usize,
    n_out: usize,
    dw: &mut [f32],
    db: &mut [f32],
) -> Vec<f32> {
    let rows = x.len() / n_in;
    for dyr in dy.chunks_exact(n_out) {
        for (d, &g) in db.iter_mut().zip(dyr) {
            *d += g;
        }
    }
    gemm(
        n_in,
        rows,
        n_out,
        x,
        Layout::Cols,
        dy,
        Layout::Rows,
        1.0,
        dw,
    );
    let mut dx = vec![0f32; rows * n_in];
    gemm(
        rows,
        n_out,
        n_in,
        dy,
        Layout::Rows,
        w,
        Layout::Cols,
        0.0,
        &mut dx,
    );
    dx
}

impl HostEstimator {
    pub fn from_module(e: &Estimator) -> HostEstimator {
        HostEstimator::from_params(&HostParams::from_module(e))
    }

    /// Build the loop layouts from parameters in burn's layouts.
    pub fn from_params(hp: &HostParams) -> HostEstimator {
        let t = &hp.tensors;
        let p = hp.pool;
        let pp = p * p;
        let (w1b, w2b) = (&t[0], &t[2]); // [c1, 1, 3, 3], [d, c1, 3, 3]
        let c1 = w1b.len() / 9;
        let d = w2b.len() / (9 * c1);
        let mut w1 = vec![0f32; 9 * c1];
        for c in 0..c1 {
            for k in 0..9 {
                w1[k * c1 + c] = w1b[c * 9 + k];
            }
        }
        let mut w2 = vec![0f32; 9 * c1 * d];
        for co in 0..d {
            for ci in 0..c1 {
                for k in 0..9 {
                    let v = w2b[(co * c1 + ci) * 9 + k];
                    w2[(k * c1 + ci) * d + co] = v;
                }
            }
        }
        let mut nb = vec![usize::MAX; 9 * pp];
        for q in 0..pp {
            let (r, c) = ((q / p) as isize, (q % p) as isize);
            for k in 0..9 {
                let (ri, ci) = (r + (k / 3) as isize - 1, c + (k % 3) as isize - 1);
                if ri >= 0 && ci >= 0 && (ri as usize) < p && (ci as usize) < p {
                    nb[q * 9 + k] = ri as usize * p + ci as usize;
                }
            }
        }
        let hidden = t[14].len() / d;
        let has_bands = t.len() > 18;
        HostEstimator {
            p,
            c1,
            d,
            heads: hp.heads,
            hidden,
            w1,
            b1: t[1].clone(),
            w2,
            b2: t[3].clone(),
            wq: t[4].clone(),
            bq: t[5].clone(),
            wk: t[6].clone(),
            bk: t[7].clone(),
            wv: t[8].clone(),
            bv: t[9].clone(),
            wo: t[10].clone(),
            bo: t[11].clone(),
            gamma: t[12].clone(),
            beta: t[13].clone(),
            eps: hp.eps,
            w3: t[14].clone(),
            b3: t[15].clone(),
            w4: t[16].clone(),
            b4: t[17][0],
            wb: if has_bands { t[18].clone() } else { Vec::new() },
            bb: if has_bands { t[19].clone() } else { Vec::new() },
            n_band: if has_bands { t[18].len() / d } else { 0 },
            nb,
            avx2: has_avx2_fma(),
        }
    }

    /// Call `f` in a context compiled with AVX2 and FMA enabled; `f` is inlined into it.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_call<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }

    /// First convolution (1 -> c1) of one frame, then the im2col rows of its ReLU for the
    /// second: `a1: [pp][c1]` pre-activations, `col: [pp][9*c1]` (zeros at the padding).
    #[inline(always)]
    fn conv1_frame(&self, x: &[f32], a1: &mut [f32], col: &mut [f32]) {
        let (pp, c1) = (self.p * self.p, self.c1);
        for q in 0..pp {
            let out = &mut a1[q * c1..(q + 1) * c1];
            out.copy_from_slice(&self.b1);
            for k in 0..9 {
                let src = self.nb[q * 9 + k];
                if src != usize::MAX {
                    axpy(out, x[src], &self.w1[k * c1..(k + 1) * c1]);
                }
            }
        }
        for q in 0..pp {
            for k in 0..9 {
                let dst = &mut col[(q * 9 + k) * c1..(q * 9 + k + 1) * c1];
                match self.nb[q * 9 + k] {
                    usize::MAX => dst.fill(0.0),
                    src => {
                        for (o, &a) in dst.iter_mut().zip(&a1[src * c1..(src + 1) * c1]) {
                            *o = a.max(0.0);
                        }
                    }
                }
            }
        }
    }

    /// Backward of [`Self::conv1_frame`]: `dcol: [pp][9*c1]` scattered back to the first
    /// convolution's outputs, through its ReLU, into `acc`'s conv1 gradients.
    #[inline(always)]
    fn conv1_bwd_frame(&self, x: &[f32], a1: &[f32], dcol: &[f32], acc: &mut TokenGrads) {
        let (pp, c1) = (self.p * self.p, self.c1);
        let mut dh1 = vec![0f32; pp * c1];
        for q in 0..pp {
            for k in 0..9 {
                let src = self.nb[q * 9 + k];
                if src != usize::MAX {
                    let g = &dcol[(q * 9 + k) * c1..(q * 9 + k + 1) * c1];
                    for (d, &v) in dh1[src * c1..(src + 1) * c1].iter_mut().zip(g) {
                        *d += v;
                    }
                }
            }
        }
        for q in 0..pp {
            let dh = &mut dh1[q * c1..(q + 1) * c1];
            for (g, &a) in dh.iter_mut().zip(&a1[q * c1..(q + 1) * c1]) {
                if a <= 0.0 {
                    *g = 0.0;
                }
            }
            for (b, &g) in acc.b1.iter_mut().zip(dh.iter()) {
                *b += g;
            }
            for k in 0..9 {
                let src = self.nb[q * 9 + k];
                if src != usize::MAX {
                    axpy(&mut acc.w1[k * c1..(k + 1) * c1], x[src], dh);
                }
            }
        }
    }

    /// One attention head, forward: `qh: [t][dk]`, `kt, vt: [dk][t]` (transposed so every
    /// inner loop runs along time) to weights `attn: [t][t]` and context `ctx: [t][dk]`.
    #[inline(always)]
    fn head_fwd(
        &self,
        t: usize,
        qh: &[f32],
        kt: &[f32],
        vt: &[f32],
        attn: &mut [f32],
        ctx: &mut [f32],
    ) {
        let dk = self.d / self.heads;
        let scale = 1.0 / (dk as f32).sqrt();
        for i in 0..t {
            let row = &mut attn[i * t..(i + 1) * t];
            row.fill(0.0);
            for x in 0..dk {
                axpy(row, qh[i * dk + x] * scale, &kt[x * t..(x + 1) * t]);
            }
            let mx = row.iter().fold(f32::NEG_INFINITY, |m, &r| m.max(r));
            for r in row.iter_mut() {
                *r = exp_f32(*r - mx);
            }
            let inv = 1.0 / row.iter().sum::<f32>();
            for r in row.iter_mut() {
                *r *= inv;
            }
            for x in 0..dk {
                ctx[i * dk + x] = dot(row, &vt[x * t..(x + 1) * t]);
            }
        }
    }

    /// One attention head, backward: from `dctx: [t][dk]` to `dq: [t][dk]` and the
    /// transposed `dkt, dvt: [dk][t]`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn head_bwd(
        &self,
        t: usize,
        qh: &[f32],
        kt: &[f32],
        vt: &[f32],
        attn: &[f32],
        dctx: &[f32],
        dq: &mut [f32],
        dkt: &mut [f32],
        dvt: &mut [f32],
    ) {
        let dk = self.d / self.heads;
        let scale = 1.0 / (dk as f32).sqrt();
        let mut da = vec![0f32; t];
        for i in 0..t {
            let a = &attn[i * t..(i + 1) * t];
            let dci = &dctx[i * dk..(i + 1) * dk];
            da.fill(0.0);
            for x in 0..dk {
                axpy(&mut da, dci[x], &vt[x * t..(x + 1) * t]);
                axpy(&mut dvt[x * t..(x + 1) * t], dci[x], a);
            }
            let s = dot(&da, a);
            // ds = A (dA - s) * scale, reusing `da`.
            for (g, &aj) in da.iter_mut().zip(a) {
                *g = aj * (*g - s) * scale;
            }
            for x in 0..dk {
                dq[i * dk + x] = dot(&da, &kt[x * t..(x + 1) * t]);
                axpy(&mut dkt[x * t..(x + 1) * t], qh[i * dk + x], &da);
            }
        }
    }

    /// Band features per frame this estimator expects (0 = none).
    pub fn band_inputs(&self) -> usize {
        self.n_band
    }

    /// `|alpha|` of one video from its pooled frames `[t, p*p]` and, when the estimator
    /// takes them, its band features `[t, 2K]`.
    pub fn forward(&self, pooled: &[f32], bands: Option<&[f32]>, t: usize) -> (f32, Cache) {
        self.forward_reusing(pooled, bands, t, None)
    }

    /// [`Self::forward`] writing its largest buffers into those of a spent cache (a loop
    /// of steps; every value is overwritten, and zeroing ~1.4 MB a step was ~5% of it).
    pub fn forward_reusing(
        &self,
        pooled: &[f32],
        bands: Option<&[f32]>,
        t: usize,
        spent: Option<Cache>,
    ) -> (f32, Cache) {
        let (pp, c1, d) = (self.p * self.p, self.c1, self.d);
        assert_eq!(pooled.len(), t * pp, "pooled frames must be [t, p*p]");
        let mut spent = spent;
        let mut reuse = |pick: fn(&mut Cache) -> &mut Vec<f32>, n: usize| {
            let mut v = spent
                .as_mut()
                .map(|c| std::mem::take(pick(c)))
                .unwrap_or_default();
            v.resize(n, 0.0);
            v
        };
        // Frame tokens: conv1 per frame, conv2 as one GEMM per block of frames
        // (im2col [pp*BLOCK, 9*c1] x W2 [9*c1, d]), ReLU, mean over positions.
        let kc = 9 * c1;
        let mut a1 = reuse(|c| &mut c.a1, t * pp * c1);
        let mut col = reuse(|c| &mut c.col, t * pp * kc);
        let mut a2 = reuse(|c| &mut c.a2, t * pp * d);
        let mut z = reuse(|c| &mut c.z, t * d);
        let (h, dk) = (self.heads, d / self.heads);
        let mut attn = reuse(|c| &mut c.attn, h * t * t);
        a1.par_chunks_mut(BLOCK * pp * c1)
            .zip(col.par_chunks_mut(BLOCK * pp * kc))
            .zip(a2.par_chunks_mut(BLOCK * pp * d))
            .zip(z.par_chunks_mut(BLOCK * d))
            .zip(pooled.par_chunks(BLOCK * pp))
            .for_each(|((((a1, col), a2), z), x)| {
                let nf = x.len() / pp;
                for f in 0..nf {
                    simd!(
                        self.avx2,
                        self.conv1_frame(
                            &x[f * pp..(f + 1) * pp],
                            &mut a1[f * pp * c1..(f + 1) * pp * c1],
                            &mut col[f * pp * kc..(f + 1) * pp * kc]
                        )
                    );
                }
                for row in a2.chunks_exact_mut(d) {
                    row.copy_from_slice(&self.b2);
                }
                gemm(
                    nf * pp,
                    kc,
                    d,
                    col,
                    Layout::Rows,
                    &self.w2,
                    Layout::Rows,
                    1.0,
                    a2,
                );
                let inv = 1.0 / pp as f32;
                for (zf, af) in z.chunks_exact_mut(d).zip(a2.chunks_exact(pp * d)) {
                    zf.fill(0.0);
                    for aq in af.chunks_exact(d) {
                        for (zc, &a) in zf.iter_mut().zip(aq) {
                            *zc += a.max(0.0) * inv;
                        }
                    }
                }
            });
        let bands: Vec<f32> = match (self.n_band, bands) {
            (0, _) => Vec::new(),
            (nb, Some(f)) => {
                assert_eq!(f.len(), t * nb, "band features must be [t, {nb}]");
                let proj = affine(f, &self.wb, &self.bb, nb, d);
                for (zc, pc) in z.iter_mut().zip(&proj) {
                    *zc += pc;
                }
                f.to_vec()
            }
            (nb, None) => panic!("this estimator needs {nb} band features per frame"),
        };
        // Multi-head self-attention, heads in parallel on `[t][dk]` slices.
        let q = affine(&z, &self.wq, &self.bq, d, d);
        let k = affine(&z, &self.wk, &self.bk, d, d);
        let v = affine(&z, &self.wv, &self.bv, d, d);
        let qh = split_heads(&q, t, h, dk);
        let (kt, vt) = (split_heads_t(&k, t, h, dk), split_heads_t(&v, t, h, dk));
        let mut ctxh = vec![0f32; h * t * dk];
        attn.par_chunks_mut(t * t)
            .zip(ctxh.par_chunks_mut(t * dk))
            .enumerate()
            .for_each(|(hh, (at, cx))| {
                let r = hh * t * dk..(hh + 1) * t * dk;
                simd!(
                    self.avx2,
                    self.head_fwd(t, &qh[r.clone()], &kt[r.clone()], &vt[r], at, cx)
                )
            });
        let ctx = merge_heads(&ctxh, t, h, dk);
        let o = affine(&ctx, &self.wo, &self.bo, d, d);
        // Residual + layer norm, then the mean over time.
        let mut rhat = vec![0f32; t * d];
        let mut inv_std = vec![0f32; t];
        let mut m = vec![0f32; d];
        for i in 0..t {
            let r: Vec<f32> = (0..d).map(|c| z[i * d + c] + o[i * d + c]).collect();
            let mean = r.iter().sum::<f32>() / d as f32;
            let var = r.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / d as f32;
            let is = 1.0 / (var + self.eps).sqrt();
            inv_std[i] = is;
            for c in 0..d {
                let rh = (r[c] - mean) * is;
                rhat[i * d + c] = rh;
                m[c] += (rh * self.gamma[c] + self.beta[c]) / t as f32;
            }
        }
        // Head: Linear, ReLU, Linear, Softplus (threshold 20, as burn).
        let u = affine(&m, &self.w3, &self.b3, d, self.hidden);
        let out = self.b4
            + u.iter()
                .zip(&self.w4)
                .map(|(x, w)| x.max(0.0) * w)
                .sum::<f32>();
        let a = if out > 20.0 { out } else { out.exp().ln_1p() };
        let cache = Cache {
            t,
            pooled: pooled.to_vec(),
            bands,
            a1,
            col,
            a2,
            z,
            qh,
            kt,
            vt,
            attn,
            ctx,
            rhat,
            inv_std,
            m,
            u,
            o: out,
        };
        (a, cache)
    }

    /// Gradients of `da * |alpha|` w.r.t. every parameter, in burn layouts.
    pub fn backward(&self, c: &Cache, da: f32) -> HostGrads {
        let (t, pp, c1, d, hid) = (c.t, self.p * self.p, self.c1, self.d, self.hidden);
        let mut g = HostGrads {
            w3: vec![0.0; d * hid],
            b3: vec![0.0; hid],
            wq: vec![0.0; d * d],
            bq: vec![0.0; d],
            wk: vec![0.0; d * d],
            bk: vec![0.0; d],
            wv: vec![0.0; d * d],
            bv: vec![0.0; d],
            wo: vec![0.0; d * d],
            bo: vec![0.0; d],
            gamma: vec![0.0; d],
            beta: vec![0.0; d],
            ..Default::default()
        };
        // Softplus and the head.
        let dout = if c.o > 20.0 {
            da
        } else {
            da / (1.0 + (-c.o).exp())
        };
        g.b4 = vec![dout];
        g.w4 = c.u.iter().map(|x| x.max(0.0) * dout).collect();
        let du: Vec<f32> =
            c.u.iter()
                .zip(&self.w4)
                .map(|(u, w)| if *u > 0.0 { w * dout } else { 0.0 })
                .collect();
        let dm = affine_back(&c.m, &self.w3, &du, d, hid, &mut g.w3, &mut g.b3);
        // Mean over time and layer norm.
        let mut dr = vec![0f32; t * d];
        let mut drh = vec![0f32; d];
        for i in 0..t {
            let rh = &c.rhat[i * d..(i + 1) * d];
            for cc in 0..d {
                let dy = dm[cc] / t as f32;
                g.gamma[cc] += dy * rh[cc];
                g.beta[cc] += dy;
                drh[cc] = dy * self.gamma[cc];
            }
            let mean_drh = drh.iter().sum::<f32>() / d as f32;
            let mean_drh_rh = dot(&drh, rh) / d as f32;
            for cc in 0..d {
                dr[i * d + cc] = c.inv_std[i] * (drh[cc] - mean_drh - rh[cc] * mean_drh_rh);
            }
        }
        // Attention: output projection, then every head in parallel.
        let dctx = affine_back(&c.ctx, &self.wo, &dr, d, d, &mut g.wo, &mut g.bo);
        let (h, dk) = (self.heads, d / self.heads);
        let dctxh = split_heads(&dctx, t, h, dk);
        let mut dqh = vec![0f32; h * t * dk];
        let mut dkh = vec![0f32; h * t * dk];
        let mut dvh = vec![0f32; h * t * dk];
        dqh.par_chunks_mut(t * dk)
            .zip(dkh.par_chunks_mut(t * dk))
            .zip(dvh.par_chunks_mut(t * dk))
            .enumerate()
            .for_each(|(hh, ((dq, dkk), dv))| {
                let r = hh * t * dk..(hh + 1) * t * dk;
                let at = &c.attn[hh * t * t..(hh + 1) * t * t];
                simd!(
                    self.avx2,
                    self.head_bwd(
                        t,
                        &c.qh[r.clone()],
                        &c.kt[r.clone()],
                        &c.vt[r.clone()],
                        at,
                        &dctxh[r],
                        dq,
                        dkk,
                        dv
                    )
                )
            });
        let mut dz = dr;
        for (w, gw, gb, dy) in [
            (&self.wq, &mut g.wq, &mut g.bq, merge_heads(&dqh, t, h, dk)),
            (
                &self.wk,
                &mut g.wk,
                &mut g.bk,
                merge_heads_t(&dkh, t, h, dk),
            ),
            (
                &self.wv,
                &mut g.wv,
                &mut g.bv,
                merge_heads_t(&dvh, t, h, dk),
            ),
        ] {
            let back = affine_back(&c.z, w, &dy, d, d, gw, gb);
            for (a, b) in dz.iter_mut().zip(&back) {
                *a += b;
            }
        }
        if self.n_band > 0 {
            g.wb = vec![0f32; self.n_band * d];
            g.bb = vec![0f32; d];
            affine_back(
                &c.bands,
                &self.wb,
                &dz,
                self.n_band,
                d,
                &mut g.wb,
                &mut g.bb,
            );
        }
        // Frame tokens, per block of frames in parallel. Fixed blocks, summed in order:
        // the result does not depend on scheduling.
        let kc = 9 * c1;
        let inv = 1.0 / pp as f32;
        let blocks: Vec<TokenGrads> = c
            .a1
            .par_chunks(BLOCK * pp * c1)
            .zip(c.col.par_chunks(BLOCK * pp * kc))
            .zip(c.a2.par_chunks(BLOCK * pp * d))
            .zip(dz.par_chunks(BLOCK * d))
            .zip(c.pooled.par_chunks(BLOCK * pp))
            .map_init(
                || (Vec::new(), Vec::new()),
                |(da2, dcol), ((((a1, col), a2), dzb), xb)| {
                    let nf = dzb.len() / d;
                    let rows = nf * pp;
                    let mut acc = TokenGrads::zeros(c1, d);
                    // Through the mean over positions and conv2's ReLU (every value of the
                    // work buffers is written: `da2` here, `dcol` by a GEMM with beta 0).
                    da2.resize(rows * d, 0.0);
                    dcol.resize(rows * kc, 0.0);
                    for (r, (g, a)) in da2.chunks_exact_mut(d).zip(a2.chunks_exact(d)).enumerate() {
                        let dzf = &dzb[(r / pp) * d..(r / pp + 1) * d];
                        for ((gc, &ac), &dc) in g.iter_mut().zip(a).zip(dzf) {
                            *gc = if ac > 0.0 { dc * inv } else { 0.0 };
                        }
                        for (b, &gc) in acc.b2.iter_mut().zip(g.iter()) {
                            *b += gc;
                        }
                    }
                    // dW2 = col^T da2, dcol = da2 W2^T.
                    gemm(
                        kc,
                        rows,
                        d,
                        col,
                        Layout::Cols,
                        da2,
                        Layout::Rows,
                        0.0,
                        &mut acc.w2,
                    );
                    gemm(
                        rows,
                        d,
                        kc,
                        da2,
                        Layout::Rows,
                        &self.w2,
                        Layout::Cols,
                        0.0,
                        dcol,
                    );
                    for f in 0..nf {
                        simd!(
                            self.avx2,
                            self.conv1_bwd_frame(
                                &xb[f * pp..(f + 1) * pp],
                                &a1[f * pp * c1..(f + 1) * pp * c1],
                                &dcol[f * pp * kc..(f + 1) * pp * kc],
                                &mut acc
                            )
                        );
                    }
                    acc
                },
            )
            .collect();
        let tg = blocks
            .into_iter()
            .fold(TokenGrads::zeros(c1, d), TokenGrads::add);
        // Back to burn's conv layouts: [c1, 1, 3, 3] and [d, c1, 3, 3].
        g.w1 = vec![0f32; 9 * c1];
        for cc in 0..c1 {
            for k in 0..9 {
                g.w1[cc * 9 + k] = tg.w1[k * c1 + cc];
            }
        }
        g.b1 = tg.b1;
        g.w2 = vec![0f32; 9 * c1 * d];
        for co in 0..d {
            for ci in 0..c1 {
                for k in 0..9 {
                    g.w2[(co * c1 + ci) * 9 + k] = tg.w2[(k * c1 + ci) * d + co];
                }
            }
        }
        g.b2 = tg.b2;
        g
    }
}

/// Gradient accumulators of the frame-token convolutions (loop layouts).
struct TokenGrads {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl TokenGrads {
    fn zeros(c1: usize, d: usize) -> TokenGrads {
        TokenGrads {
            w1: vec![0.0; 9 * c1],
            b1: vec![0.0; c1],
            w2: vec![0.0; 9 * c1 * d],
            b2: vec![0.0; d],
        }
    }

    fn add(mut self, o: TokenGrads) -> TokenGrads {
        for (a, b) in [
            (&mut self.w1, &o.w1),
            (&mut self.b1, &o.b1),
            (&mut self.w2, &o.w2),
            (&mut self.b2, &o.b2),
        ] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self
    }
}

/// `[t][h*dk]` to `[h][t][dk]`.
fn split_heads(x: &[f32], t: usize, h: usize, dk: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for i in 0..t {
        for hh in 0..h {
            out[(hh * t + i) * dk..(hh * t + i + 1) * dk]
                .copy_from_slice(&x[i * h * dk + hh * dk..i * h * dk + (hh + 1) * dk]);
        }
    }
    out
}

/// `[t][h*dk]` to `[h][dk][t]`.
fn split_heads_t(x: &[f32], t: usize, h: usize, dk: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for i in 0..t {
        for hh in 0..h {
            for j in 0..dk {
                out[(hh * dk + j) * t + i] = x[i * h * dk + hh * dk + j];
            }
        }
    }
    out
}

/// `[h][dk][t]` to `[t][h*dk]`.
fn merge_heads_t(x: &[f32], t: usize, h: usize, dk: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for hh in 0..h {
        for j in 0..dk {
            for i in 0..t {
                out[i * h * dk + hh * dk + j] = x[(hh * dk + j) * t + i];
            }
        }
    }
    out
}

/// `exp(x)` for `x <= 0` (softmax after subtracting the row maximum), branch-free so a
/// loop over it vectorises: `2^n * p(r)` with `x = n ln2 + r`, `|r| <= ln2/2`, and a
/// degree-6 polynomial (relative error ~1e-7, like libm's `expf`).
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

/// `[h][t][dk]` to `[t][h*dk]`.
fn merge_heads(x: &[f32], t: usize, h: usize, dk: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for hh in 0..h {
        for i in 0..t {
            out[i * h * dk + hh * dk..i * h * dk + (hh + 1) * dk]
                .copy_from_slice(&x[(hh * t + i) * dk..(hh * t + i + 1) * dk]);
        }
    }
    out
}

fn put<const D: usize>(gp: &mut GradientsParams, p: &Param<Tensor<D>>, v: Vec<f32>, dev: &Device) {
    let shape = p.shape();
    gp.register::<D>(p.id, Tensor::from_data(TensorData::new(v, shape), dev));
}

fn put_opt(gp: &mut GradientsParams, p: &Option<Param<Tensor<1>>>, v: Vec<f32>, dev: &Device) {
    if let Some(p) = p {
        put(gp, p, v, dev);
    }
}

impl HostGrads {
    /// The gradients in [`HostParams`] order.
    pub fn in_order(self, bands: bool) -> Vec<Vec<f32>> {
        let mut v = vec![
            self.w1, self.b1, self.w2, self.b2, self.wq, self.bq, self.wk, self.bk, self.wv,
            self.bv, self.wo, self.bo, self.gamma, self.beta, self.w3, self.b3, self.w4, self.b4,
        ];
        if bands {
            v.push(self.wb);
            v.push(self.bb);
        }
        v
    }

    /// Every gradient, in one fixed order.
    pub fn slices(&self) -> [&[f32]; 20] {
        [
            &self.w1,
            &self.b1,
            &self.w2,
            &self.b2,
            &self.wq,
            &self.bq,
            &self.wk,
            &self.bk,
            &self.wv,
            &self.bv,
            &self.wo,
            &self.bo,
            &self.gamma,
            &self.beta,
            &self.w3,
            &self.b3,
            &self.w4,
            &self.b4,
            &self.wb,
            &self.bb,
        ]
    }

    /// Every gradient, mutable, in the order of [`Self::slices`].
    fn slices_mut(&mut self) -> [&mut Vec<f32>; 20] {
        [
            &mut self.w1,
            &mut self.b1,
            &mut self.w2,
            &mut self.b2,
            &mut self.wq,
            &mut self.bq,
            &mut self.wk,
            &mut self.bk,
            &mut self.wv,
            &mut self.bv,
            &mut self.wo,
            &mut self.bo,
            &mut self.gamma,
            &mut self.beta,
            &mut self.w3,
            &mut self.b3,
            &mut self.w4,
            &mut self.b4,
            &mut self.wb,
            &mut self.bb,
        ]
    }

    /// Every gradient times `k`.
    pub fn scaled(mut self, k: f32) -> HostGrads {
        for v in self.slices_mut() {
            v.iter_mut().for_each(|x| *x *= k);
        }
        self
    }

    /// Elementwise sum (gradients of several videos in one optimiser step).
    pub fn plus(mut self, o: HostGrads) -> HostGrads {
        for (a, b) in self.slices_mut().into_iter().zip(o.slices()) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self
    }

    /// Register every gradient under its parameter's id, ready for an optimiser step.
    pub fn into_params(self, e: &Estimator, dev: &Device) -> GradientsParams {
        let mut gp = GradientsParams::new();
        let a = &e.attn;
        put(&mut gp, &e.conv1.weight, self.w1, dev);
        put_opt(&mut gp, &e.conv1.bias, self.b1, dev);
        put(&mut gp, &e.conv2.weight, self.w2, dev);
        put_opt(&mut gp, &e.conv2.bias, self.b2, dev);
        put(&mut gp, &a.query.weight, self.wq, dev);
        put_opt(&mut gp, &a.query.bias, self.bq, dev);
        put(&mut gp, &a.key.weight, self.wk, dev);
        put_opt(&mut gp, &a.key.bias, self.bk, dev);
        put(&mut gp, &a.value.weight, self.wv, dev);
        put_opt(&mut gp, &a.value.bias, self.bv, dev);
        put(&mut gp, &a.output.weight, self.wo, dev);
        put_opt(&mut gp, &a.output.bias, self.bo, dev);
        put(&mut gp, &e.norm.gamma, self.gamma, dev);
        put_opt(&mut gp, &e.norm.beta, self.beta, dev);
        put(&mut gp, &e.head1.weight, self.w3, dev);
        put_opt(&mut gp, &e.head1.bias, self.b3, dev);
        put(&mut gp, &e.head2.weight, self.w4, dev);
        put_opt(&mut gp, &e.head2.bias, self.b4, dev);
        if let Some(l) = &e.bands {
            put(&mut gp, &l.weight, self.wb, dev);
            put_opt(&mut gp, &l.bias, self.bb, dev);
        }
        gp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn fast_exp_matches_libm() {
        let mut worst = 0f32;
        for i in 0..20000 {
            let x = -(i as f32) * 0.004;
            let (a, b) = (exp_f32(x), x.exp());
            worst = worst.max(((a - b) / b.max(f32::MIN_POSITIVE)).abs());
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-200.0) < 1e-37);
    }

    /// Values and gradients of the fused pass against burn's forward and autodiff.
    #[test]
    fn fused_pass_matches_burn_forward_and_autodiff() {
        let dev = Device::flex().autodiff();
        let t = 13;
        let (e, pooled, bands) = crate::model::with_burn_rng(&dev, 11, || {
            let e = Estimator::new(32, 4, 32, 4, 6, &dev);
            crate::model::initialise(&e);
            let pooled = Tensor::<4>::random([t, 1, 4, 4], Distribution::Normal(0.0, 1.0), &dev);
            let bands = Tensor::<2>::random([t, 6], Distribution::Normal(0.0, 1.0), &dev);
            (e, pooled, bands)
        });
        let pv: Vec<f32> = pooled.to_data().try_into_vec().unwrap();
        let bv: Vec<f32> = bands.to_data().try_into_vec().unwrap();
        let a_burn = e.forward_pooled(pooled.clone(), Some(bands), 1, t);
        let grads = a_burn.clone().mul_scalar(0.7).sum().backward();
        let gref = GradientsParams::from_grads(grads, &e);
        let a_burn: f32 = a_burn.into_scalar();
        let host = HostEstimator::from_module(&e);
        let (a, cache) = host.forward(&pv, Some(&bv), t);
        assert!(
            (a - a_burn).abs() < 1e-5 * (1.0 + a_burn.abs()),
            "{a} {a_burn}"
        );
        let gf = host.backward(&cache, 0.7).into_params(&e, &Device::flex());
        let check = |name: &str, id, n: usize, rank: usize| {
            let (x, y): (Vec<f32>, Vec<f32>) = match rank {
                1 => (
                    gf.get::<1>(id).unwrap().to_data().try_into_vec().unwrap(),
                    gref.get::<1>(id).unwrap().to_data().try_into_vec().unwrap(),
                ),
                2 => (
                    gf.get::<2>(id).unwrap().to_data().try_into_vec().unwrap(),
                    gref.get::<2>(id).unwrap().to_data().try_into_vec().unwrap(),
                ),
                _ => (
                    gf.get::<4>(id).unwrap().to_data().try_into_vec().unwrap(),
                    gref.get::<4>(id).unwrap().to_data().try_into_vec().unwrap(),
                ),
            };
            assert_eq!(x.len(), n, "{name}");
            let scale = y.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in x.iter().zip(&y).enumerate() {
                assert!(
                    (p - q).abs() <= 2e-4 * scale,
                    "{name}[{i}]: fused {p} burn {q}"
                );
            }
        };
        check("conv1.weight", e.conv1.weight.id, 16 * 9, 4);
        check("conv1.bias", e.conv1.bias.as_ref().unwrap().id, 16, 1);
        check("conv2.weight", e.conv2.weight.id, 32 * 16 * 9, 4);
        check("conv2.bias", e.conv2.bias.as_ref().unwrap().id, 32, 1);
        for (n, l) in [
            ("query", &e.attn.query),
            ("key", &e.attn.key),
            ("value", &e.attn.value),
            ("output", &e.attn.output),
        ] {
            check(n, l.weight.id, 32 * 32, 2);
            check(n, l.bias.as_ref().unwrap().id, 32, 1);
        }
        check("gamma", e.norm.gamma.id, 32, 1);
        check("beta", e.norm.beta.as_ref().unwrap().id, 32, 1);
        check("head1.weight", e.head1.weight.id, 32 * 32, 2);
        check("head1.bias", e.head1.bias.as_ref().unwrap().id, 32, 1);
        check("head2.weight", e.head2.weight.id, 32, 2);
        check("head2.bias", e.head2.bias.as_ref().unwrap().id, 1, 1);
        let l = e.bands.as_ref().unwrap();
        check("bands.weight", l.weight.id, 6 * 32, 2);
        check("bands.bias", l.bias.as_ref().unwrap().id, 32, 1);
    }

    /// A pass into a spent cache's buffers (of another, longer video) is the fresh pass,
    /// bit for bit, and the backward pass is linear in the loss's gradient (zero-shot runs
    /// it at 1 beside the loss and scales after).
    #[test]
    fn reused_buffers_and_a_scaled_unit_backward_give_the_fresh_pass() {
        let dev = Device::flex().autodiff();
        let e = crate::model::with_burn_rng(&dev, 5, || {
            let e = Estimator::new(32, 4, 32, 4, 6, &dev);
            crate::model::initialise(&e);
            e
        });
        let host = HostEstimator::from_module(&e);
        let wave = |n: usize, s: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.37 + s).sin()).collect()
        };
        let (p1, b1) = (wave(13 * 16, 0.0), wave(13 * 6, 0.5));
        let (p2, b2) = (wave(21 * 16, 1.0), wave(21 * 6, 1.5));
        let (a_fresh, c_fresh) = host.forward(&p1, Some(&b1), 13);
        let (_, spent) = host.forward(&p2, Some(&b2), 21);
        let (a_reused, c_reused) = host.forward_reusing(&p1, Some(&b1), 13, Some(spent));
        assert_eq!(a_fresh.to_bits(), a_reused.to_bits());
        let (g_fresh, g_reused) = (host.backward(&c_fresh, 0.7), host.backward(&c_reused, 0.7));
        for (x, y) in g_fresh.slices().iter().zip(g_reused.slices()) {
            assert_eq!(x, &y);
        }
        let unit = host.backward(&c_fresh, 1.0).scaled(0.7);
        for (x, y) in unit.slices().iter().zip(g_fresh.slices()) {
            for (p, q) in x.iter().zip(y.iter()) {
                assert!((p - q).abs() <= 1e-6 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
    }
}
