//! One conformance check for every form of the SAFE operator (the RustFFT pattern): the
//! planned operator against its literal reference, on non-square grids with `dx != dy`.

use super::reference::safe_reference;
use super::*;
use crate::grid::Grid;
use crate::laplacian::{Edge, laplacian_naive};
use rand::{Rng, SeedableRng};

fn random_field(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0.0..1.0)).collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The planned operator equals the literal reference for this form.
fn check_safe_operator(spec: OperatorSpec) {
    for &(nx, ny, dx, dy, a) in &[(9, 14, 0.5, 0.7, 0.4), (12, 7, 1.1, 0.6, 0.13)] {
        let g = Grid::new(nx, ny, dx, dy).unwrap();
        let u = random_field(g.len(), (nx * 31 + ny) as u64);
        let op = SafeOperator::new(g, spec, 0.25);
        let fast = op.apply(&u, a, 1);
        let slow = safe_reference(&u, &g, spec, a, 0.25);
        // Unstable sub-step counts amplify the field: compare relative to its size.
        let scale = slow.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let d = max_abs_diff(&fast, &slow);
        assert!(d <= 1e-11 * scale, "{spec} on {nx}x{ny}: {d:e}");
        // Two strides are the operator applied twice.
        let twice = op.apply(&op.apply(&u, a, 1), a, 1);
        let stride2 = op.apply(&u, a, 2);
        if !op.has_filter() {
            assert!(
                max_abs_diff(&twice, &stride2) <= 1e-11 * scale,
                "{spec} stride"
            );
        }
    }
}

#[test]
fn every_form_matches_its_reference() {
    for &boundary in Boundary::ALL {
        for &laplacian in Laplacian::ALL {
            for n_sub in [
                SubSteps::Finite(1),
                SubSteps::Finite(2),
                SubSteps::Finite(5),
                SubSteps::Finite(50),
                SubSteps::Infinite,
            ] {
                check_safe_operator(OperatorSpec {
                    boundary,
                    laplacian,
                    n_sub,
                });
            }
        }
    }
}

#[test]
fn exponential_form_is_the_limit_of_many_sub_steps() {
    let g = Grid::new(10, 14, 0.5, 0.9).unwrap();
    let u = random_field(g.len(), 5);
    for &boundary in Boundary::ALL {
        let op = |n| {
            SafeOperator::new(
                g,
                OperatorSpec {
                    boundary,
                    laplacian: Laplacian::FivePoint,
                    n_sub: n,
                },
                0.25,
            )
        };
        let exp = op(SubSteps::Infinite).apply(&u, 0.6, 1);
        let e1 = max_abs_diff(&op(SubSteps::Finite(1000)).apply(&u, 0.6, 1), &exp);
        let e2 = max_abs_diff(&op(SubSteps::Finite(100_000)).apply(&u, 0.6, 1), &exp);
        // Euler's error is O(dt_sub): 100x more sub-steps, ~100x closer.
        assert!(e2 < 1e-5 && e2 < e1 / 50.0, "{boundary}: {e1} {e2}");
    }
}

#[test]
fn exponential_form_matches_a_classical_rk4_integration() {
    // Independent oracle: RK4 on du/dt = a*lap(u) with the naive stencil and its edge rule.
    let g = Grid::new(8, 11, 0.5, 0.7).unwrap();
    let u0 = random_field(g.len(), 9);
    let (a, t_end, steps) = (0.45, 0.25, 400);
    let h = t_end / steps as f64;
    for boundary in [Boundary::Periodic, Boundary::ZeroFlux] {
        let edge = Edge::of(boundary);
        let f = |u: &[f64]| -> Vec<f64> {
            laplacian_naive(u, &g, edge).iter().map(|l| a * l).collect()
        };
        let mut u = u0.clone();
        for _ in 0..steps {
            let k1 = f(&u);
            let y2: Vec<f64> = u.iter().zip(&k1).map(|(x, k)| x + 0.5 * h * k).collect();
            let k2 = f(&y2);
            let y3: Vec<f64> = u.iter().zip(&k2).map(|(x, k)| x + 0.5 * h * k).collect();
            let k3 = f(&y3);
            let y4: Vec<f64> = u.iter().zip(&k3).map(|(x, k)| x + h * k).collect();
            let k4 = f(&y4);
            for i in 0..u.len() {
                u[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
            }
        }
        let spec = OperatorSpec {
            boundary,
            laplacian: Laplacian::FivePoint,
            n_sub: SubSteps::Infinite,
        };
        let exp = SafeOperator::new(g, spec, t_end).apply(&u0, a, 1);
        assert!(
            max_abs_diff(&u, &exp) < 1e-9,
            "{boundary}: {}",
            max_abs_diff(&u, &exp)
        );
    }
}

/// The defining property of an open window: deeper than the margins, the prediction from the
/// window alone equals the crop of the prediction on the whole (larger, periodic) sample.
#[test]
fn open_window_interior_is_independent_of_the_outside() {
    let big = Grid::new(72, 90, 0.5, 0.6).unwrap();
    // A smooth field with structure at several scales.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let noise: Vec<f64> = (0..big.len())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    for laplacian in [Laplacian::FivePoint, Laplacian::Continuum] {
        for n_sub in [SubSteps::Finite(20), SubSteps::Infinite] {
            let whole = OperatorSpec {
                boundary: Boundary::Periodic,
                laplacian,
                n_sub,
            };
            let smooth = SafeOperator::new(
                big,
                OperatorSpec {
                    n_sub: SubSteps::Infinite,
                    ..whole
                },
                1.0,
            )
            .apply(&noise, 0.5, 1);
            let a = 0.6;
            let truth = SafeOperator::new(big, whole, 0.25).apply(&smooth, a, 1);
            let (ox, oy, wx, wy) = (11, 17, 40, 52);
            let crop = |f: &[f64]| -> Vec<f64> {
                (0..wx)
                    .flat_map(|i| (0..wy).map(move |j| (i, j)))
                    .map(|(i, j)| f[(ox + i) * big.ny + oy + j])
                    .collect()
            };
            let win = Grid::new(wx, wy, 0.5, 0.6).unwrap();
            let open = SafeOperator::new(
                win,
                OperatorSpec {
                    boundary: Boundary::Open,
                    ..whole
                },
                0.25,
            );
            let pred = open.apply(&crop(&smooth), a, 1);
            let target = open.apply(&crop(&truth), 0.0, 1);
            let (mx, my) = open.margins(a, 1, KERNEL_TAIL);
            assert!(mx > 0 && my > 0 && mx < wx / 2 && my < wy / 2, "{mx} {my}");
            let mut worst: f64 = 0.0;
            let mut edge_worst: f64 = 0.0;
            for i in 0..wx {
                for j in 0..wy {
                    let d = (pred[i * wy + j] - target[i * wy + j]).abs();
                    if i >= mx && i < wx - mx && j >= my && j < wy - my {
                        worst = worst.max(d);
                    } else {
                        edge_worst = edge_worst.max(d);
                    }
                }
            }
            assert!(worst < 1e-9, "{laplacian}/{n_sub}: interior {worst:e}");
            // The test can fail: near the edge the mirror is wrong.
            assert!(
                edge_worst > 1e-4,
                "{laplacian}/{n_sub}: edge {edge_worst:e}"
            );
        }
    }
}
