//! The codec block's host kernels against the naive reference, and the reference's backward
//! against finite differences. (The burn custom op against burn's own autodiff of the module
//! written in tensor ops: `op.rs`.)

use super::kernels::{BlockShape, block_backward, block_forward, block_forward_eval};
use super::reference;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Case {
    s: BlockShape,
    x: Vec<f64>,
    w: Vec<f64>,
    b: Vec<f64>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    gy: Vec<f64>,
}

fn case(n: usize, cin: usize, cout: usize, h: usize, w: usize, seed: u64) -> Case {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut v = |k: usize, lo: f64, hi: f64| -> Vec<f64> {
        (0..k).map(|_| r.random_range(lo..hi)).collect()
    };
    let s = BlockShape { n, cin, cout, h, w };
    Case {
        x: v(n * cin * h * w, -1.0, 1.0),
        w: v(cout * cin * 9, -0.5, 0.5),
        b: v(cout, -0.2, 0.2),
        gamma: v(cout, 0.5, 1.5),
        beta: v(cout, -0.3, 0.3),
        gy: v(n * cout * h * w, -1.0, 1.0),
        s,
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn assert_close(fast: &[f32], slow: &[f64], tol: f64, what: &str) {
    assert_eq!(fast.len(), slow.len(), "{what}: length");
    let scale = slow.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (k, (&a, &b)) in fast.iter().zip(slow).enumerate() {
        assert!(
            (a as f64 - b).abs() <= tol * scale,
            "{what}[{k}]: fast {a} vs reference {b} (scale {scale})"
        );
    }
}

const EPS: f64 = 1e-5;

#[test]
fn kernels_match_the_naive_block() {
    // Both first blocks (1 -> c, no skip) and inner ones (c -> c, skip), non-square frames.
    for (k, &(n, cin, cout, h, w)) in [
        (3, 1, 4, 5, 7),
        (2, 4, 4, 6, 5),
        (2, 3, 5, 4, 9),
        (1, 16, 16, 8, 8),
    ]
    .iter()
    .enumerate()
    {
        let c = case(n, cin, cout, h, w, k as u64);
        let (y, saved) = block_forward(
            &f32s(&c.x),
            &f32s(&c.w),
            &f32s(&c.b),
            &f32s(&c.gamma),
            &f32s(&c.beta),
            EPS,
            &c.s,
        );
        assert_close(
            &saved.u,
            &reference::conv(&c.x, &c.w, &c.b, &c.s),
            1e-5,
            "u",
        );
        let (mean, var) = reference::stats(&reference::conv(&c.x, &c.w, &c.b, &c.s), &c.s);
        assert_close(&saved.mean, &mean, 1e-5, "mean");
        assert_close(&saved.var, &var, 1e-5, "var");
        let y_ref = reference::forward(&c.x, &c.w, &c.b, &c.gamma, &c.beta, EPS, &c.s);
        assert_close(&y, &y_ref, 1e-5, "y");
        let g = block_backward(
            &f32s(&c.x),
            &f32s(&c.w),
            &f32s(&c.gamma),
            &f32s(&c.beta),
            EPS,
            &saved,
            &f32s(&c.gy),
            &c.s,
        );
        let (gx, gw, gb, gg, gbe) =
            reference::backward(&c.x, &c.w, &c.b, &c.gamma, &c.beta, EPS, &c.gy, &c.s);
        assert_close(&g.x, &gx, 1e-4, "dx");
        assert_close(&g.w, &gw, 1e-4, "dw");
        assert_close(&g.gamma, &gg, 1e-4, "dgamma");
        assert_close(&g.beta, &gbe, 1e-4, "dbeta");
        // dL/db is zero up to rounding (the batch mean cancels the bias).
        let scale = gw.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(
            gb.iter().all(|v| v.abs() < 1e-9 * scale.max(1.0)),
            "reference db {gb:?}"
        );
        assert!(
            g.b.iter().all(|v| (v.abs() as f64) < 1e-4 * scale.max(1.0)),
            "db {:?}",
            g.b
        );
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let c = case(2, 3, 3, 4, 5, 11);
    let loss = |x: &[f64], w: &[f64], b: &[f64], g: &[f64], be: &[f64]| -> f64 {
        reference::forward(x, w, b, g, be, EPS, &c.s)
            .iter()
            .zip(&c.gy)
            .map(|(y, r)| y * r)
            .sum()
    };
    let (gx, gw, gb, gg, gbe) =
        reference::backward(&c.x, &c.w, &c.b, &c.gamma, &c.beta, EPS, &c.gy, &c.s);
    let h = 1e-6;
    let check = |which: usize, grad: &[f64]| {
        let base = [&c.x, &c.w, &c.b, &c.gamma, &c.beta];
        let n = base[which].len();
        for k in (0..n).step_by((n / 7).max(1)) {
            let mut p: Vec<Vec<f64>> = base.iter().map(|v| v.to_vec()).collect();
            let mut q = p.clone();
            p[which][k] += h;
            q[which][k] -= h;
            let fd = (loss(&p[0], &p[1], &p[2], &p[3], &p[4])
                - loss(&q[0], &q[1], &q[2], &q[3], &q[4]))
                / (2.0 * h);
            assert!(
                (fd - grad[k]).abs() <= 1e-6 * (1.0 + fd.abs()),
                "input {which} [{k}]: finite difference {fd} vs backward {}",
                grad[k]
            );
        }
    };
    for (which, grad) in [&gx, &gw, &gb, &gg, &gbe].into_iter().enumerate() {
        check(which, grad);
    }
}

#[test]
fn inference_kernel_matches_the_naive_block() {
    for (k, &(n, cin, cout, h, w)) in [(2, 1, 4, 5, 7), (3, 4, 4, 6, 5)].iter().enumerate() {
        let c = case(n, cin, cout, h, w, 20 + k as u64);
        let mean: Vec<f64> = (0..cout).map(|o| 0.1 * o as f64 - 0.2).collect();
        let var: Vec<f64> = (0..cout).map(|o| 0.5 + 0.3 * o as f64).collect();
        let y = block_forward_eval(
            &f32s(&c.x),
            &f32s(&c.w),
            &f32s(&c.b),
            &f32s(&c.gamma),
            &f32s(&c.beta),
            &f32s(&mean),
            &f32s(&var),
            EPS,
            &c.s,
        );
        let y_ref =
            reference::forward_eval(&c.x, &c.w, &c.b, &c.gamma, &c.beta, &mean, &var, EPS, &c.s);
        assert_close(&y, &y_ref, 1e-5, "y (inference)");
    }
}
