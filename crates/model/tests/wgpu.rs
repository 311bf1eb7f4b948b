//! The GPU path (cargo feature `wgpu`) on whatever adapter wgpu finds: in CI, Mesa's
//! lavapipe, a software Vulkan device, so the path is proven without a GPU. Off the CPU
//! the SAFE layer runs as burn tensor ops (the literal five-point stencil with finite
//! sub-steps, `safe_propagate_tensor_ops`); it and the estimator must give what the CPU
//! backend's custom op and fused path give, forward and backward.
#![cfg(feature = "wgpu")]

use burn::tensor::{Device, Tensor, TensorData};
use safe_model::config::Config;
use safe_model::safe_layer::{SafeSpec, safe_propagate};
use safe_physics::batch::Kernel;
use safe_physics::{Boundary, Laplacian, OperatorSpec, SubSteps};

fn gpu() -> Device {
    Device::wgpu(Default::default())
}

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed * 977)
                % 1000) as f32
                / 500.0
                - 1.0
        })
        .collect()
}

/// A tensor's values on the host.
fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32], what: &str) {
    let scale = b.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "{what}[{i}]: gpu {x} cpu {y}"
        );
    }
}

#[test]
fn the_safe_layer_on_wgpu_matches_the_cpu_forward_and_backward() {
    let (n, h, w) = (2, 12, 10);
    let spec = SafeSpec {
        dx: 0.5,
        dy: 0.7,
        dt_save: 0.25,
        op: OperatorSpec {
            boundary: Boundary::Periodic,
            laplacian: Laplacian::FivePoint,
            n_sub: SubSteps::Finite(5),
        },
        kernel: Kernel::Stencil,
    };
    let run = |dev: &Device| -> [Vec<f32>; 3] {
        let f = Tensor::<3>::from_data(TensorData::new(data(n * h * w, 1), [n, h, w]), dev)
            .require_grad();
        let a =
            Tensor::<1>::from_data(TensorData::new(vec![0.2f32, 0.45], [n]), dev).require_grad();
        let g = Tensor::<3>::from_data(TensorData::new(data(n * h * w, 2), [n, h, w]), dev);
        let p = safe_propagate(f.clone(), a.clone(), &spec);
        let grads = (p.clone() * g).sum().backward();
        [
            host(p),
            host(f.grad(&grads).unwrap()),
            host(a.grad(&grads).unwrap()),
        ]
    };
    let cpu = run(&Device::flex().autodiff());
    let gpu = run(&gpu().autodiff());
    for (k, what) in ["output", "dL/dF", "dL/da"].iter().enumerate() {
        close(&gpu[k], &cpu[k], what);
    }
}

#[test]
fn the_shipped_estimator_on_wgpu_matches_the_cpu_forward_and_backward() {
    let config =
        Config::from_toml(include_str!("../../eval/models/universal/config.toml")).unwrap();
    let bytes = include_bytes!("../../eval/models/universal/model.bpk");
    let (t, p) = (7, config.model.pool);
    let k = config.model.bands * config.model.features_per_band();
    let run = |dev: &Device| -> [Vec<f32>; 2] {
        let m = safe_model::train::load_model_bytes(bytes, &config, dev).unwrap();
        let pooled = Tensor::<4>::from_data(TensorData::new(data(t * p * p, 3), [t, 1, p, p]), dev)
            .require_grad();
        let bands = Tensor::<2>::from_data(TensorData::new(data(t * k, 4), [t, k]), dev);
        let y = m
            .estimator
            .forward_pooled(pooled.clone(), Some(bands), 1, t);
        let grads = y.clone().sum().backward();
        [host(y), host(pooled.grad(&grads).unwrap())]
    };
    let cpu = run(&Device::flex().autodiff());
    let gpu = run(&gpu().autodiff());
    close(&gpu[0], &cpu[0], "|alpha|");
    close(&gpu[1], &cpu[1], "d|alpha|/d pooled");
}
