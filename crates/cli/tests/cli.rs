//! End-to-end tests of the `safe-pit-cm` program: real processes, real files.

use safe_data::npy::encode_f32;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_safe-pit-cm"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run safe-pit-cm")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("safe-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small generated dataset (shared layout with the real one).
fn small_dataset(dir: &Path, seed: &str) -> Output {
    run(&[
        "generate",
        "--out",
        dir.to_str().unwrap(),
        "--n-sims",
        "2",
        "--nx",
        "32",
        "--ny",
        "24",
        "--n-steps",
        "1000",
        "--seed",
        seed,
    ])
}

fn write_sim(dir: &Path, shape: &[usize], data: &[f32], meta: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("field.npy"), encode_f32(shape, data)).unwrap();
    std::fs::write(dir.join("meta.json"), meta).unwrap();
}

const META: &str = r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.25, "process": "diffusion"}"#;

#[test]
fn stability_prints_the_paper_table() {
    let o = run(&["stability"]);
    assert!(o.status.success());
    let (out, _) = text(&o);
    assert!(out.contains("    1  0.2500       5.60       0.25  No"));
    assert!(out.contains("   50  0.0050       0.11      12.50  Yes"));
    let o = run(&["stability", "--dx", "-1"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn generate_is_reproducible_and_fit_recovers_alpha() {
    let d = tmpdir("gen");
    assert!(small_dataset(&d.join("a"), "3").status.success());
    assert!(small_dataset(&d.join("b"), "3").status.success());
    for sim in ["sim_000", "sim_001", "sim_002", "sim_003"] {
        for f in ["field.npy", "meta.json"] {
            assert_eq!(
                std::fs::read(d.join("a").join(sim).join(f)).unwrap(),
                std::fs::read(d.join("b").join(sim).join(f)).unwrap(),
                "{sim}/{f}"
            );
        }
    }
    let out = d.join("fit.json");
    let o = run(&[
        "fit",
        d.join("a").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["sims"].as_array().unwrap().len(), 4);
    assert!(v["metrics"]["all"]["mae"].as_f64().unwrap() < 1e-6);
    assert!(v["metrics"]["mobility"]["n"].as_u64().unwrap() == 2);
    // Refuses to overwrite results unless asked, and leaves them intact.
    let before = std::fs::read(&out).unwrap();
    let o = run(&[
        "fit",
        d.join("a").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("already exists"));
    assert_eq!(std::fs::read(&out).unwrap(), before);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_inputs_are_reported_by_file_and_the_rest_is_fitted() {
    let d = tmpdir("bad");
    assert!(small_dataset(&d.join("good"), "1").status.success());
    let bad = d.join("bad");
    let ok_frames: Vec<f32> = (0..3 * 8 * 8).map(|i| ((i * 7919) % 13) as f32).collect();
    // Not an npy at all.
    std::fs::create_dir_all(bad.join("garbage")).unwrap();
    std::fs::write(bad.join("garbage/field.npy"), b"hello, not numpy").unwrap();
    std::fs::write(bad.join("garbage/meta.json"), META).unwrap();
    // Truncated data.
    std::fs::create_dir_all(bad.join("truncated")).unwrap();
    let bytes = encode_f32(&[3, 8, 8], &ok_frames);
    std::fs::write(bad.join("truncated/field.npy"), &bytes[..bytes.len() - 10]).unwrap();
    std::fs::write(bad.join("truncated/meta.json"), META).unwrap();
    write_sim(&bad.join("rank2"), &[24, 8], &ok_frames, META);
    let mut nan = ok_frames.clone();
    nan[70] = f32::NAN;
    write_sim(&bad.join("nan"), &[3, 8, 8], &nan, META);
    write_sim(&bad.join("oneframe"), &[1, 8, 8], &ok_frames[..64], META);
    write_sim(&bad.join("constant"), &[3, 8, 8], &[0.5; 192], META);
    write_sim(
        &bad.join("nodx"),
        &[3, 8, 8],
        &ok_frames,
        r#"{"dy": 0.5, "dt_save": 0.25, "process": "diffusion"}"#,
    );
    write_sim(&bad.join("badjson"), &[3, 8, 8], &ok_frames, "{ not json");
    write_sim(
        &bad.join("contradiction"),
        &[3, 8, 8],
        &ok_frames,
        r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.25, "process": "mobility", "alpha": -0.3}"#,
    );
    std::fs::create_dir_all(bad.join("nofield")).unwrap();
    std::fs::write(bad.join("nofield/meta.json"), META).unwrap();
    let out = d.join("r.json");
    let o = run(&[
        "fit",
        d.join("good").to_str().unwrap(),
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for (name, needle) in [
        ("garbage/field.npy", "not an .npy file"),
        ("truncated/field.npy", "data bytes"),
        ("rank2/field.npy", "3-D array"),
        ("nan/field.npy", "non-finite"),
        ("oneframe/field.npy", "at least 2"),
        ("constant/field.npy", "constant"),
        ("nodx/meta.json", "missing 'dx'"),
        ("badjson/meta.json", "not valid JSON"),
        ("contradiction/meta.json", "contradictory"),
        ("nofield/field.npy", "missing"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no error for {name} in:\n{err}"));
        assert!(line.contains(needle), "{name}: {line}");
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        v["sims"].as_array().unwrap().len(),
        4,
        "the good videos are still fitted"
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), 10);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn zero_shot_recovers_alpha_and_explains() {
    let d = tmpdir("zs");
    assert!(small_dataset(&d.join("data"), "2").status.success());
    let out = d.join("zs.json");
    let ex = d.join("explain");
    let o = run(&[
        "zero-shot",
        d.join("data/sim_000").to_str().unwrap(),
        d.join("data/sim_002").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--explain",
        ex.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(v["metrics"]["all"]["mae"].as_f64().unwrap() < 1e-5, "{v}");
    assert_eq!(v["sims"][0]["recon_error"].as_f64(), Some(0.0));
    for f in [
        "per_frame.csv",
        "trajectory.csv",
        "fields.png",
        "per_frame_errors.png",
        "per_frame_errors.svg",
    ] {
        assert!(ex.join("sim_000").join(f).is_file(), "{f}");
    }
    // Same seed, same answer, bit for bit.
    let o2 = run(&[
        "zero-shot",
        d.join("data/sim_000").to_str().unwrap(),
        "--out",
        d.join("zs2.json").to_str().unwrap(),
    ]);
    assert!(o2.status.success());
    let v2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("zs2.json")).unwrap()).unwrap();
    assert_eq!(v["sims"][0]["alpha_hat"], v2["sims"][0]["alpha_hat"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn gamma_auto_undoes_a_camera_curve() {
    let d = tmpdir("gamma");
    assert!(small_dataset(&d.join("data"), "4").status.success());
    // The same video through a gamma 0.8 camera curve (floats, scaled to [0, 1]).
    let src = d.join("data/sim_000");
    let arr = safe_data::npy::read_npy(&src.join("field.npy")).unwrap();
    let (lo, hi) = arr
        .data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let cam: Vec<f32> = arr
        .data
        .iter()
        .map(|&x| ((x - lo) / (hi - lo)).powf(0.8))
        .collect();
    let meta = std::fs::read_to_string(src.join("meta.json")).unwrap();
    write_sim(&d.join("cam"), &arr.shape, &cam, &meta);
    let cam_dir = d.join("cam");
    let fit = |gamma: &str, out: &str| {
        let o = run(&[
            "fit",
            cam_dir.to_str().unwrap(),
            "--gamma",
            gamma,
            "--out",
            d.join(out).to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{:?}", text(&o));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(out)).unwrap()).unwrap();
        v["sims"][0].clone()
    };
    let (linear, auto) = (fit("1", "lin.json"), fit("auto", "auto.json"));
    let err = |s: &serde_json::Value| {
        (s["alpha_hat"].as_f64().unwrap() - s["alpha_true"].as_f64().unwrap()).abs()
    };
    assert!(
        (auto["gamma"].as_f64().unwrap() - 0.8).abs() < 0.01,
        "{auto}"
    );
    assert!(err(&auto) < 0.1 * err(&linear), "{auto} vs {linear}");
    // A noise level is in the video's units, which the gamma map changes: refused.
    let o = run(&[
        "fit",
        cam_dir.to_str().unwrap(),
        "--gamma",
        "auto",
        "--noise",
        "0.01",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("cannot be combined"), "{:?}", text(&o));
    // A gamma that is not a positive number is refused before any work.
    let o = run(&["fit", cam_dir.to_str().unwrap(), "--gamma", "0"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("invalid gamma"), "{:?}", text(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bench_codec_prints_its_timings_as_json() {
    let o = run(&[
        "bench", "codec", "--frames", "3", "--size", "16", "--runs", "3",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let mut r: Vec<f64> = runs.iter().map(|x| x.as_f64().unwrap()).collect();
    r.sort_by(f64::total_cmp);
    assert_eq!(v["median_s"].as_f64().unwrap(), r[1]);
    assert!(r[0] > 0.0);
    let o = run(&["bench", "codec", "--runs", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn infer_without_a_model_uses_the_shipped_one_and_says_so() {
    let dir = tmpdir("builtin");
    let data = dir.join("data");
    assert!(small_dataset(&data, "5").status.success());
    let out = dir.join("r.json");
    let o = run(&[
        "infer",
        data.join("sim_000").to_str().unwrap(),
        "--ttt-steps",
        "50",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(r["settings"]["model"], "builtin (universal)");
    let s = &r["sims"][0];
    let (a, t) = (
        s["alpha_hat"].as_f64().unwrap(),
        s["alpha_true"].as_f64().unwrap(),
    );
    // 50 Newton test-time steps reach the SAFE loss's minimum, which is the truth here.
    assert!((a - t).abs() < 1e-3 * t.abs(), "{a} vs {t}");
    let _ = std::fs::remove_dir_all(&dir);
}
