//! Real videos in, bad input out: image sequences, intensity maps, every bad-input class of
//! `docs/bad-input.md`, and resumption after `kill -9`.

use safe_data::npy::{encode_f32, read_npy};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_safe-pit-cm"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run safe-pit-cm")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("safe-rob-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One generated diffusion simulation (and its mobility twin) of `nx x ny`, `steps` steps.
fn generate(dir: &Path, nx: usize, steps: usize, seed: u64) {
    let o = run(&[
        "generate",
        "--out",
        s(dir),
        "--n-sims",
        "1",
        "--nx",
        &nx.to_string(),
        "--ny",
        &nx.to_string(),
        "--n-steps",
        &steps.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn fit_alpha(args: &[&str]) -> f64 {
    let out = std::env::temp_dir().join(format!(
        "safe-rob-fit-{}-{}.json",
        std::process::id(),
        rand_suffix()
    ));
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--out", s(&out), "--overwrite"]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    v["sims"][0]["alpha_hat"].as_f64().unwrap()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn frames_of(sim: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = read_npy(&sim.join("field.npy")).unwrap();
    (a.shape, a.data)
}

/// Write frames as PNGs (8 or 16 bit, gray or RGB), intensities mapped to the full range.
fn write_pngs(dir: &Path, shape: &[usize], data: &[f32], bits: u32, rgb: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let (t, h, w) = (shape[0], shape[1], shape[2]);
    let (lo, hi) = data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let max = ((1u32 << bits) - 1) as f32;
    for k in 0..t {
        let q: Vec<u32> = data[k * h * w..(k + 1) * h * w]
            .iter()
            .map(|&x| ((x - lo) / (hi - lo) * max).round() as u32)
            .collect();
        let path = dir.join(format!("frame_{k}.png"));
        match (bits, rgb) {
            (8, false) => {
                image::GrayImage::from_raw(w as u32, h as u32, q.iter().map(|&x| x as u8).collect())
                    .unwrap()
                    .save(&path)
                    .unwrap()
            }
            (8, true) => image::RgbImage::from_raw(
                w as u32,
                h as u32,
                q.iter().flat_map(|&x| [x as u8; 3]).collect(),
            )
            .unwrap()
            .save(&path)
            .unwrap(),
            _ => image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(
                w as u32,
                h as u32,
                q.iter().map(|&x| x as u16).collect(),
            )
            .unwrap()
            .save(&path)
            .unwrap(),
        }
    }
}

const PHYS: [&str; 8] = [
    "--dx",
    "0.5",
    "--dy",
    "0.5",
    "--dt-save",
    "0.25",
    "--process",
    "diffusion",
];

/// The generator's sub-steps: image frames carry no save_interval, so `--n-sub auto` would
/// take the exact exponential (right for real videos, not for these Euler ones).
const NSUB: [&str; 2] = ["--n-sub", "50"];

#[test]
fn image_sequences_recover_alpha_like_the_float_original() {
    let d = tmpdir("img");
    generate(&d.join("data"), 64, 2000, 5);
    let sim = d.join("data/sim_000");
    let (shape, data) = frames_of(&sim);
    let a_float = fit_alpha(&["fit", s(&sim), "--n-sub", "50"]);
    // 8-bit gray PNG frames (names sort naturally: frame_2 before frame_10).
    let (png8, png16, rgb, imported) = (
        d.join("png8"),
        d.join("png16"),
        d.join("rgb"),
        d.join("imported"),
    );
    write_pngs(&png8, &shape, &data, 8, false);
    let mut args = vec!["fit", s(&png8)];
    args.extend(PHYS);
    args.extend(NSUB);
    let a8 = fit_alpha(&args);
    assert!(
        ((a8 - a_float) / a_float).abs() < 0.005,
        "8-bit: {a8} vs {a_float}"
    );
    // 16-bit: indistinguishable.
    write_pngs(&png16, &shape, &data, 16, false);
    let mut args = vec!["fit", s(&png16)];
    args.extend(PHYS);
    args.extend(NSUB);
    let a16 = fit_alpha(&args);
    assert!(
        ((a16 - a_float) / a_float).abs() < 1e-4,
        "16-bit: {a16} vs {a_float}"
    );
    // Gray stored as RGB: read as gray, same answer.
    write_pngs(&rgb, &shape, &data, 8, true);
    let mut args = vec!["fit", s(&rgb)];
    args.extend(PHYS);
    args.extend(NSUB);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let a_rgb = fit_alpha(&args);
    assert!((a_rgb - a8).abs() < 1e-6 * a8.abs(), "{a_rgb} vs {a8}");
    // A multi-page TIFF of the same 8-bit frames.
    let tif = d.join("stack.tif");
    {
        let f = std::fs::File::create(&tif).unwrap();
        let mut enc = tiff::encoder::TiffEncoder::new(f).unwrap();
        for k in 0..shape[0] {
            let img = image::open(d.join("png8").join(format!("frame_{k}.png")))
                .unwrap()
                .to_luma8();
            enc.write_image::<tiff::encoder::colortype::Gray8>(
                shape[2] as u32,
                shape[1] as u32,
                img.as_raw(),
            )
            .unwrap();
        }
    }
    let mut args = vec!["fit", s(&tif)];
    args.extend(PHYS);
    args.extend(NSUB);
    let a_tif = fit_alpha(&args);
    assert_eq!(a_tif, a8);
    // import: the sequence becomes a simulation folder that fits identically.
    let mut args = vec!["import", s(&png8), "--out", s(&imported), "--alpha", "-0.3"];
    args.extend(PHYS);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fit_alpha(&["fit", s(&imported), "--n-sub", "50"]), a8);
    // import never overwrites unless asked.
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_linear_intensity_map_does_not_change_alpha() {
    let d = tmpdir("lin");
    generate(&d.join("data"), 48, 1500, 8);
    let sim = d.join("data/sim_000");
    let (shape, data) = frames_of(&sim);
    let mapped: Vec<f32> = data.iter().map(|&x| 3.7 * x + 12.0).collect();
    let m = d.join("mapped");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("field.npy"), encode_f32(&shape, &mapped)).unwrap();
    std::fs::copy(sim.join("meta.json"), m.join("meta.json")).unwrap();
    let (a, b) = (fit_alpha(&["fit", s(&sim)]), fit_alpha(&["fit", s(&m)]));
    assert!((a - b).abs() < 1e-6 * a.abs(), "fit: {a} vs {b}");
    let (a, b) = (
        fit_alpha(&["zero-shot", s(&sim)]),
        fit_alpha(&["zero-shot", s(&m)]),
    );
    assert!((a - b).abs() < 1e-5 * a.abs(), "zero-shot: {a} vs {b}");
    std::fs::remove_dir_all(&d).unwrap();
}

const META: &str = r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.25, "process": "diffusion"}"#;

fn sim(dir: &Path, shape: &[usize], data: &[f32], meta: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("field.npy"), encode_f32(shape, data)).unwrap();
    if let Some(m) = meta {
        std::fs::write(dir.join("meta.json"), m).unwrap();
    }
}

fn npy_with_header(dir: &Path, header: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    std::fs::write(dir.join("field.npy"), v).unwrap();
    std::fs::write(dir.join("meta.json"), META).unwrap();
}

/// Every row of `docs/bad-input.md`: the error names the file and the problem, the exit
/// code is 1, and the good video of the same run is still fitted.
#[test]
fn every_bad_input_class_is_reported_and_the_rest_processed() {
    let d = tmpdir("table");
    let ok: Vec<f32> = (0..3 * 8 * 8).map(|i| ((i * 7919) % 13) as f32).collect();
    let b = d.join("bad");
    // (folder, expected file in the message, expected words)
    let mut cases: Vec<(&str, &str, &str)> = Vec::new();
    std::fs::create_dir_all(b.join("garbage")).unwrap();
    std::fs::write(b.join("garbage/field.npy"), b"definitely not numpy").unwrap();
    std::fs::write(b.join("garbage/meta.json"), META).unwrap();
    cases.push(("garbage", "field.npy", "not an .npy file"));
    let bytes = encode_f32(&[3, 8, 8], &ok);
    std::fs::create_dir_all(b.join("truncated")).unwrap();
    std::fs::write(b.join("truncated/field.npy"), &bytes[..bytes.len() - 7]).unwrap();
    std::fs::write(b.join("truncated/meta.json"), META).unwrap();
    cases.push(("truncated", "field.npy", "data bytes"));
    npy_with_header(
        &b.join("badheader"),
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 8, 8)",
        &[0; 768],
    );
    cases.push(("badheader", "field.npy", "malformed .npy header"));
    npy_with_header(
        &b.join("complex"),
        "{'descr': '<c8', 'fortran_order': False, 'shape': (3, 8, 8), }",
        &[0; 1536],
    );
    cases.push(("complex", "field.npy", "unsupported dtype '<c8'"));
    npy_with_header(
        &b.join("strings"),
        "{'descr': '<U4', 'fortran_order': False, 'shape': (3,), }",
        &[0; 48],
    );
    cases.push(("strings", "field.npy", "unsupported dtype"));
    npy_with_header(
        &b.join("enormous"),
        "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }",
        &[0; 16],
    );
    cases.push(("enormous", "field.npy", "declares shape"));
    npy_with_header(
        &b.join("overflow"),
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
        &[0; 16],
    );
    cases.push(("overflow", "field.npy", "too large to address"));
    sim(&b.join("rank2"), &[24, 8], &ok, Some(META));
    cases.push(("rank2", "field.npy", "3-D array"));
    let mut nan = ok.clone();
    nan[100] = f32::NAN;
    sim(&b.join("nan"), &[3, 8, 8], &nan, Some(META));
    cases.push(("nan", "field.npy", "non-finite value (NaN) at (4, 4)"));
    let mut inf = ok.clone();
    inf[5] = f32::INFINITY;
    sim(&b.join("inf"), &[3, 8, 8], &inf, Some(META));
    cases.push(("inf", "field.npy", "non-finite value (inf)"));
    sim(&b.join("oneframe"), &[1, 8, 8], &ok[..64], Some(META));
    cases.push(("oneframe", "field.npy", "at least 2 are needed"));
    sim(&b.join("tiny"), &[3, 2, 32], &ok[..192], Some(META));
    cases.push(("tiny", "field.npy", "at least 3x3"));
    sim(&b.join("constant"), &[3, 8, 8], &[1.5; 192], Some(META));
    cases.push(("constant", "field.npy", "constant"));
    sim(&b.join("nometa"), &[3, 8, 8], &ok, None);
    cases.push(("nometa", "meta.json", "no meta.json, and missing"));
    sim(&b.join("badjson"), &[3, 8, 8], &ok, Some("{\"dx\": 0.5,"));
    cases.push(("badjson", "meta.json", "not valid JSON"));
    sim(
        &b.join("wrongtype"),
        &[3, 8, 8],
        &ok,
        Some(r#"{"dx": "half", "dy": 0.5, "dt_save": 0.25, "process": "diffusion"}"#),
    );
    cases.push(("wrongtype", "meta.json", "'dx' must be a number"));
    sim(
        &b.join("negdx"),
        &[3, 8, 8],
        &ok,
        Some(r#"{"dx": -0.5, "dy": 0.5, "dt_save": 0.25, "process": "diffusion"}"#),
    );
    cases.push(("negdx", "meta.json", "'dx' must be finite and > 0"));
    sim(
        &b.join("zerodt"),
        &[3, 8, 8],
        &ok,
        Some(r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0, "process": "diffusion"}"#),
    );
    cases.push(("zerodt", "meta.json", "'dt_save' must be finite and > 0"));
    sim(
        &b.join("sign"),
        &[3, 8, 8],
        &ok,
        Some(r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.25, "process": "mobility", "alpha": -0.2}"#),
    );
    cases.push(("sign", "meta.json", "contradictory metadata: alpha"));
    sim(
        &b.join("dtsave"),
        &[3, 8, 8],
        &ok,
        Some(
            r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.3, "dt": 0.005, "save_interval": 50, "process": "diffusion"}"#,
        ),
    );
    cases.push(("dtsave", "meta.json", "contradictory metadata: dt_save"));
    sim(
        &b.join("shape"),
        &[3, 8, 8],
        &ok,
        Some(r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.25, "process": "diffusion", "nx": 16}"#),
    );
    cases.push(("shape", "meta.json", "contradictory metadata: 'nx'"));
    sim(
        &b.join("nospacing"),
        &[3, 8, 8],
        &ok,
        Some(r#"{"dt_save": 0.25, "process": "diffusion"}"#),
    );
    cases.push(("nospacing", "meta.json", "missing 'dx' (--dx), 'dy' (--dy)"));
    std::fs::create_dir_all(b.join("nofield")).unwrap();
    std::fs::write(b.join("nofield/meta.json"), META).unwrap();
    cases.push(("nofield", "field.npy", "field.npy is missing"));
    // Image frames of different sizes.
    let im = b.join("sizes");
    std::fs::create_dir_all(&im).unwrap();
    image::GrayImage::from_pixel(8, 8, image::Luma([10]))
        .save(im.join("a0.png"))
        .unwrap();
    image::GrayImage::from_pixel(8, 7, image::Luma([20]))
        .save(im.join("a1.png"))
        .unwrap();
    std::fs::write(im.join("meta.json"), META).unwrap();
    cases.push(("sizes", "a1.png", "all frames must have one size"));
    let im = b.join("corruptpng");
    std::fs::create_dir_all(&im).unwrap();
    std::fs::write(im.join("f0.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
    for k in 1..3 {
        image::GrayImage::from_pixel(8, 8, image::Luma([10 * k]))
            .save(im.join(format!("f{k}.png")))
            .unwrap();
    }
    std::fs::write(im.join("meta.json"), META).unwrap();
    cases.push(("corruptpng", "f0.png", "cannot decode image"));

    let good = d.join("good");
    generate(&good, 24, 500, 1);
    let out = d.join("r.json");
    let o = run(&[
        "fit",
        s(&good.join("sim_000")),
        s(&b),
        s(&d.join("does-not-exist")),
        "--out",
        s(&out),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for (folder, file, words) in &cases {
        let needle = format!("{folder}/{file}");
        let line = err
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no error naming {needle} in:\n{err}"));
        assert!(
            line.contains(words),
            "{needle}: expected '{words}' in: {line}"
        );
    }
    assert!(
        err.contains("does-not-exist: no such file or folder"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        v["sims"].as_array().unwrap().len(),
        1,
        "the good video is still fitted"
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), cases.len() + 1);
    // A folder with nothing usable in it.
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let o = run(&["fit", s(&d.join("empty"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no videos found here"),
        "{}",
        stderr(&o)
    );
    // A flag contradicting meta.json.
    let o = run(&["fit", s(&good.join("sim_000")), "--dx", "0.7"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("'dx' is 0.5 in meta.json but 0.7 on the command line"),
        "{}",
        stderr(&o)
    );
    // Nothing is left half-written next to the outputs.
    let debris: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(debris.is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_corrupt_or_mismatched_model_is_a_clear_error() {
    let d = tmpdir("model");
    generate(&d.join("data"), 24, 500, 2);
    std::fs::create_dir_all(d.join("m")).unwrap();
    std::fs::write(d.join("m/config.toml"), "profile = \"cpu\"\n").unwrap();
    std::fs::write(d.join("m/model.bpk"), b"not a burnpack file").unwrap();
    let o = run(&[
        "infer",
        "--model",
        s(&d.join("m")),
        s(&d.join("data/sim_000")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("model.bpk") && stderr(&o).contains("cannot load model"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// Start a command, SIGKILL it once `ready` holds (or after `max`), and wait for it.
fn kill_when(args: &[&str], ready: impl Fn() -> bool, max: Duration) -> bool {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false; // finished before we could kill it
        }
        if ready() || t0.elapsed() > max {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file under `dir` with its modification time.
fn stage_files(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p, e.metadata().unwrap().modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn count_entries(dir: &Path, pred: impl Fn(&str) -> bool) -> usize {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter(|e| pred(&e.file_name().to_string_lossy()))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn generate_resumes_after_kill_9_and_matches_an_uninterrupted_run() {
    let d = tmpdir("killgen");
    let args = |out: &Path| {
        vec![
            "generate".to_string(),
            "--out".into(),
            s(out).into(),
            "--n-sims".into(),
            "60".into(),
            "--nx".into(),
            "48".into(),
            "--ny".into(),
            "48".into(),
            "--n-steps".into(),
            "2000".into(),
            "--solver".into(),
            "stencil".into(),
        ]
    };
    let a = d.join("a");
    let aa = args(&a);
    let killed = kill_when(
        &aa.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
        || count_entries(&a, |n| n.starts_with("sim_")) >= 10,
        Duration::from_secs(60),
    );
    assert!(killed, "generation finished before it could be interrupted");
    assert!(!a.join("manifest.json").exists());
    // Rerun completes; every file equals an uninterrupted run's.
    let o = bin().args(&aa).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let b = d.join("b");
    assert!(bin().args(args(&b)).output().unwrap().status.success());
    for i in 0..120 {
        let n = format!("sim_{i:03}");
        for f in ["field.npy", "meta.json"] {
            assert_eq!(
                std::fs::read(a.join(&n).join(f)).unwrap(),
                std::fs::read(b.join(&n).join(f)).unwrap(),
                "{n}/{f}"
            );
        }
    }
    assert_eq!(count_entries(&a, |n| n.contains(".tmp-")), 0);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn train_resumes_after_kill_9_losing_at_most_one_epoch() {
    let d = tmpdir("killtrain");
    let o = run(&[
        "generate",
        "--out",
        s(&d.join("data")),
        "--n-sims",
        "10",
        "--nx",
        "32",
        "--ny",
        "32",
        "--n-steps",
        "1000",
    ]);
    assert!(o.status.success());
    let cfg = d.join("c.toml");
    std::fs::write(
        &cfg,
        "profile = \"cpu\"\n[train]\nepochs = 8\nphase1_fraction = 0.75\n",
    )
    .unwrap();
    let m = d.join("model");
    let data = d.join("data");
    let args = [
        "train",
        "--data",
        s(&data),
        "--out",
        s(&m),
        "--config",
        s(&cfg),
    ];
    let done_epochs = || {
        std::fs::read_to_string(m.join("LATEST"))
            .ok()
            .and_then(|l| std::fs::read_to_string(m.join(l.trim()).join("state.json")).ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["epochs_done"].as_u64())
            .unwrap_or(0)
    };
    let killed = kill_when(&args, || done_epochs() >= 3, Duration::from_secs(120));
    assert!(killed, "training finished before it could be interrupted");
    let at_kill = done_epochs();
    assert!(at_kill >= 3);
    // Without --resume the run refuses to start over.
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--resume"));
    let mut resume = args.to_vec();
    resume.push("--resume");
    let o = run(&resume);
    assert!(o.status.success(), "{}", stderr(&o));
    let hist = std::fs::read_to_string(m.join("history.csv")).unwrap();
    let epochs: Vec<&str> = hist
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        epochs,
        (0..8)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        "each epoch exactly once"
    );
    assert!(m.join("model.bpk").is_file());
    assert_eq!(count_entries(&m, |n| n.contains(".tmp-")), 0);
    // Resuming a finished run says so and trains nothing.
    let o = run(&resume);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(said.contains("already finished (8 epochs"), "{said}");
    // A different configuration cannot be resumed into the same run, and the message
    // names what differs.
    std::fs::write(&cfg, "profile = \"cpu\"\n[train]\nepochs = 9\n").unwrap();
    let o = run(&resume);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("train.epochs: 8 vs 9"), "{err}");
    assert!(err.contains("train.phase1_fraction: 0.75 vs 0.5"), "{err}");
    assert!(err.contains("--overwrite"), "{err}");
    // The model infers from the folder and from the file `train` printed.
    for model in [m.clone(), m.join("model.bpk")] {
        let o = run(&[
            "infer",
            "--model",
            s(&model),
            s(&d.join("data/sim_008")),
            "--ttt-steps",
            "5",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn reproduce_resumes_after_kill_9_and_reuses_finished_stages() {
    let d = tmpdir("killrep");
    let out = d.join("r");
    let args = ["reproduce", "--out", s(&out), "--profile", "smoke"];
    let killed = kill_when(
        &args,
        || count_entries(&out.join("stages"), |n| n.starts_with("zeroshot")) >= 2,
        Duration::from_secs(120),
    );
    assert!(killed, "reproduce finished before it could be interrupted");
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("Table 3") && report.contains("| 50 | 0.0050 | 0.11 | 12.50 | Yes |"),
        "{report}"
    );
    let first: Value =
        serde_json::from_slice(&std::fs::read(out.join("tables/results.json")).unwrap()).unwrap();
    // A rerun reuses everything (no stage result is written again) and reports the same
    // numbers.
    let stages_before = stage_files(&out.join("stages"));
    assert!(!stages_before.is_empty());
    let o = run(&args);
    assert!(o.status.success());
    let after = stage_files(&out.join("stages"));
    let mut rewritten: Vec<_> = after
        .iter()
        .filter(|f| !stages_before.contains(f))
        .filter(|f| !f.0.ends_with("settings.json"))
        .filter_map(|f| f.0.parent().map(|p| p.to_path_buf()))
        .collect();
    rewritten.dedup();
    assert!(
        rewritten.is_empty(),
        "stage results written again: {rewritten:?}"
    );
    let second: Value =
        serde_json::from_slice(&std::fs::read(out.join("tables/results.json")).unwrap()).unwrap();
    assert_eq!(first["zero_shot_nsub"], second["zero_shot_nsub"]);
    assert_eq!(first["trained_ttt50"], second["trained_ttt50"]);
    for f in [
        "figures/fig3b_zero_shot.png",
        "figures/fig7_nsub_mae.svg",
        "figures/fig8_frame_step_r2.png",
        "tables/table3_nsub.csv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
