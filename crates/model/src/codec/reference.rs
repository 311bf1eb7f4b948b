//! Naive loops for one codec block in training mode, in `f64`: the oracle [`super::kernels`]
//! is tested against. Indices wrap with `rem_euclid` exactly as circular padding does; the
//! input gradient scatters each output's gradient back along the forward loop (the adjoint
//! written literally). The backward pass itself is checked by finite differences.

use super::kernels::BlockShape;

/// `u = conv3x3_circular(x, w) + b`, `[n, cout, h, w]`.
pub fn conv(x: &[f64], w: &[f64], b: &[f64], s: &BlockShape) -> Vec<f64> {
    let (h, wd) = (s.h as isize, s.w as isize);
    let mut u = vec![0.0; s.n * s.cout * s.hw()];
    for n in 0..s.n {
        for o in 0..s.cout {
            for i in 0..h {
                for j in 0..wd {
                    let mut acc = b[o];
                    for c in 0..s.cin {
                        for di in 0..3isize {
                            for dj in 0..3isize {
                                let (ii, jj) =
                                    ((i + di - 1).rem_euclid(h), (j + dj - 1).rem_euclid(wd));
                                acc += w[((o * s.cin + c) * 3 + di as usize) * 3 + dj as usize]
                                    * x[((n * s.cin + c) * s.h + ii as usize) * s.w + jj as usize];
                            }
                        }
                    }
                    u[((n * s.cout + o) * s.h + i as usize) * s.w + j as usize] = acc;
                }
            }
        }
    }
    u
}

/// Per channel: batch mean and biased variance of `[n, c, h, w]`.
pub fn stats(u: &[f64], s: &BlockShape) -> (Vec<f64>, Vec<f64>) {
    let m = (s.n * s.hw()) as f64;
    let plane = |n: usize, o: usize| &u[(n * s.cout + o) * s.hw()..(n * s.cout + o + 1) * s.hw()];
    let mean: Vec<f64> = (0..s.cout)
        .map(|o| (0..s.n).flat_map(|n| plane(n, o)).sum::<f64>() / m)
        .collect();
    let var = (0..s.cout)
        .map(|o| {
            (0..s.n)
                .flat_map(|n| plane(n, o))
                .map(|v| (v - mean[o]).powi(2))
                .sum::<f64>()
                / m
        })
        .collect();
    (mean, var)
}

/// The block's output `relu(gamma (u - mean)/sqrt(var + eps) + beta) (+ x)`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
    s: &BlockShape,
) -> Vec<f64> {
    let u = conv(x, w, b, s);
    let (mean, var) = stats(&u, s);
    let hw = s.hw();
    (0..u.len())
        .map(|k| {
            let o = (k / hw) % s.cout;
            let z = gamma[o] * (u[k] - mean[o]) / (var[o] + eps).sqrt() + beta[o];
            let skip = if s.skip() { x[k] } else { 0.0 };
            z.max(0.0) + skip
        })
        .collect()
}

/// Gradients `(x, w, b, gamma, beta)` of `sum(gy * forward(..))`.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn backward(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
    gy: &[f64],
    s: &BlockShape,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let u = conv(x, w, b, s);
    let (mean, var) = stats(&u, s);
    let (hw, m) = (s.hw(), (s.n * s.hw()) as f64);
    let ch = |k: usize| (k / hw) % s.cout;
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let xhat: Vec<f64> = (0..u.len())
        .map(|k| (u[k] - mean[ch(k)]) * inv[ch(k)])
        .collect();
    let gz: Vec<f64> = (0..u.len())
        .map(|k| {
            if gamma[ch(k)] * xhat[k] + beta[ch(k)] > 0.0 {
                gy[k]
            } else {
                0.0
            }
        })
        .collect();
    let (mut gbeta, mut ggamma) = (vec![0.0; s.cout], vec![0.0; s.cout]);
    for k in 0..u.len() {
        gbeta[ch(k)] += gz[k];
        ggamma[ch(k)] += gz[k] * xhat[k];
    }
    let du: Vec<f64> = (0..u.len())
        .map(|k| {
            let o = ch(k);
            gamma[o] * inv[o] * (gz[k] - gbeta[o] / m - xhat[k] * ggamma[o] / m)
        })
        .collect();
    let mut gb = vec![0.0; s.cout];
    for k in 0..u.len() {
        gb[ch(k)] += du[k];
    }
    let mut gx = if s.skip() {
        gy.to_vec()
    } else {
        vec![0.0; x.len()]
    };
    let mut gw = vec![0.0; w.len()];
    let (h, wd) = (s.h as isize, s.w as isize);
    for n in 0..s.n {
        for o in 0..s.cout {
            for i in 0..h {
                for j in 0..wd {
                    let d = du[((n * s.cout + o) * s.h + i as usize) * s.w + j as usize];
                    for c in 0..s.cin {
                        for di in 0..3isize {
                            for dj in 0..3isize {
                                let (ii, jj) =
                                    ((i + di - 1).rem_euclid(h), (j + dj - 1).rem_euclid(wd));
                                let xi = ((n * s.cin + c) * s.h + ii as usize) * s.w + jj as usize;
                                let wi = ((o * s.cin + c) * 3 + di as usize) * 3 + dj as usize;
                                gw[wi] += d * x[xi];
                                gx[xi] += d * w[wi];
                            }
                        }
                    }
                }
            }
        }
    }
    (gx, gw, gb, ggamma, gbeta)
}

/// The block in inference, with given batch-normalisation statistics.
#[allow(clippy::too_many_arguments)]
pub fn forward_eval(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    var: &[f64],
    eps: f64,
    s: &BlockShape,
) -> Vec<f64> {
    let u = conv(x, w, b, s);
    let hw = s.hw();
    (0..u.len())
        .map(|k| {
            let o = (k / hw) % s.cout;
            let z = gamma[o] * (u[k] - mean[o]) / (var[o] + eps).sqrt() + beta[o];
            z.max(0.0) + if s.skip() { x[k] } else { 0.0 }
        })
        .collect()
}
