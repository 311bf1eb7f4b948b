//! The situations of issue 14, as a user meets them: several recordings in one folder, a
//! video in the wrong direction, colour frames, a stray image beside good videos, a grid
//! spacing typo, and the generate -> train -> infer hand-off typed as `train` prints it.
//! Each is also a row of `docs/bad-input.md`.

use safe_data::npy::read_npy;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safe-pit-cm"))
        .args(args)
        .output()
        .expect("run safe-pit-cm")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("safe-user-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `n` diffusion simulations and their mobility twins (2n folders).
fn generate(dir: &Path, n: usize, nx: usize, seed: u64) {
    let o = run(&[
        "generate",
        "--out",
        s(dir),
        "--n-sims",
        &n.to_string(),
        "--nx",
        &nx.to_string(),
        "--ny",
        &nx.to_string(),
        "--n-steps",
        "1000",
        "--seed",
        &seed.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Run and read the JSON results (whatever the exit code).
fn results(args: &[&str], json: &Path) -> (Output, Value) {
    let mut a = args.to_vec();
    a.extend(["--out", s(json), "--overwrite"]);
    let o = run(&a);
    let v = std::fs::read(json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    (o, v)
}

/// Frames scaled to `[0, max]` integers.
fn quantise(data: &[f32], max: f32) -> Vec<u16> {
    let (lo, hi) = data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    data.iter()
        .map(|&x| ((x - lo) / (hi - lo) * max).round() as u16)
        .collect()
}

fn write_tiff16(path: &Path, shape: &[usize], data: &[f32]) {
    let q = quantise(data, 65535.0);
    let f = std::fs::File::create(path).unwrap();
    let mut enc = tiff::encoder::TiffEncoder::new(f).unwrap();
    let n = shape[1] * shape[2];
    for k in 0..shape[0] {
        enc.write_image::<tiff::encoder::colortype::Gray16>(
            shape[2] as u32,
            shape[1] as u32,
            &q[k * n..(k + 1) * n],
        )
        .unwrap();
    }
}

fn write_pngs(dir: &Path, shape: &[usize], data: &[f32], bits: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let q = quantise(data, ((1u32 << bits) - 1) as f32);
    let (h, w) = (shape[1] as u32, shape[2] as u32);
    let n = shape[1] * shape[2];
    for k in 0..shape[0] {
        let px = &q[k * n..(k + 1) * n];
        let path = dir.join(format!("frame_{k:03}.png"));
        if bits == 8 {
            image::GrayImage::from_raw(w, h, px.iter().map(|&x| x as u8).collect())
                .unwrap()
                .save(path)
                .unwrap();
        } else {
            image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w, h, px.to_vec())
                .unwrap()
                .save(path)
                .unwrap();
        }
    }
}

const META: &str = r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.25, "process": "diffusion"}"#;

#[test]
fn two_tiff_stacks_in_one_folder_are_two_videos() {
    let d = tmpdir("stacks");
    generate(&d.join("a"), 1, 32, 1);
    generate(&d.join("b"), 1, 32, 2);
    let st = d.join("stacks");
    std::fs::create_dir_all(&st).unwrap();
    for (name, src) in [("a.tif", "a/sim_000"), ("b.tif", "b/sim_000")] {
        let f = read_npy(&d.join(src).join("field.npy")).unwrap();
        write_tiff16(&st.join(name), &f.shape, &f.data);
    }
    std::fs::write(st.join("meta.json"), META).unwrap();
    let json = d.join("r.json");
    let (o, all) = results(&["fit", s(&st), "--n-sub", "50"], &json);
    assert!(o.status.success(), "{}", stderr(&o));
    let sims = all["sims"].as_array().unwrap();
    assert_eq!(sims.len(), 2, "{all}");
    for name in ["a.tif", "b.tif"] {
        let (o, one) = results(&["fit", s(&st.join(name)), "--n-sub", "50"], &json);
        assert!(o.status.success(), "{}", stderr(&o));
        let alone = one["sims"][0]["alpha_hat"].as_f64().unwrap();
        let together = sims
            .iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no result for {name}: {all}"))["alpha_hat"]
            .as_f64()
            .unwrap();
        assert_eq!(alone, together, "{name}");
    }
    // The two recordings differ, so a stitched video could not have matched both.
    assert!(
        (sims[0]["alpha_hat"].as_f64().unwrap() - sims[1]["alpha_hat"].as_f64().unwrap()).abs()
            > 1e-3
    );
    // import follows the same rule: one recording per simulation folder.
    let o = run(&["import", s(&st), "--out", s(&d.join("imp"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("2 separate videos"), "{}", stderr(&o));
    let o = run(&["import", s(&st.join("b.tif")), "--out", s(&d.join("imp"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_video_against_its_direction_never_gives_a_silent_bound() {
    let d = tmpdir("dir");
    generate(&d.join("g"), 1, 32, 3);
    let sim = d.join("g/sim_000");
    let json = d.join("r.json");
    // --process mobility on a smoothing video: an error naming the direction.
    let (o, v) = results(&["fit", s(&sim), "--process", "mobility"], &json);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(v["sims"].as_array().unwrap().is_empty(), "{v}");
    assert!(
        stderr(&o).contains("contradicts the data"),
        "{}",
        stderr(&o)
    );
    // Frames in reverse order, still labelled diffusion: the data decide, and say so.
    let f = read_npy(&sim.join("field.npy")).unwrap();
    let n = f.shape[1] * f.shape[2];
    let rev: Vec<f32> = (0..f.shape[0])
        .rev()
        .flat_map(|k| f.data[k * n..(k + 1) * n].to_vec())
        .collect();
    let r = d.join("reversed");
    std::fs::create_dir_all(&r).unwrap();
    std::fs::write(
        r.join("field.npy"),
        safe_data::npy::encode_f32(&f.shape, &rev),
    )
    .unwrap();
    std::fs::copy(sim.join("meta.json"), r.join("meta.json")).unwrap();
    let (o, v) = results(&["fit", s(&r)], &json);
    let truth = -v["sims"][0]["alpha_true"].as_f64().unwrap();
    let a = v["sims"][0]["alpha_hat"].as_f64().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!((a - truth).abs() < 1e-3 * truth.abs(), "{a} vs {truth}");
    let w = v["sims"][0]["warnings"].to_string();
    assert!(w.contains("says 'diffusion' but the video sharpens"), "{w}");
    assert!(stdout(&o).contains("WARNING"), "{}", stdout(&o));
    // Forcing the label: an error, not alpha at the bound.
    let (o, _) = results(&["fit", s(&r), "--process", "diffusion"], &json);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("contradicts the data"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// Matplotlib's jet, piecewise linear.
fn jet(x: f32) -> [u8; 3] {
    let c = |v: f32| (255.0 * v.clamp(0.0, 1.0)).round() as u8;
    [
        c(1.5 - (4.0 * x - 3.0).abs()),
        c(1.5 - (4.0 * x - 2.0).abs()),
        c(1.5 - (4.0 * x - 1.0).abs()),
    ]
}

#[test]
fn colour_mapped_frames_are_refused_and_gray_rgb_is_not() {
    let d = tmpdir("colour");
    generate(&d.join("g"), 1, 32, 4);
    let f = read_npy(&d.join("g/sim_000/field.npy")).unwrap();
    let q = quantise(&f.data, 1.0 * 1000.0);
    let n = f.shape[1] * f.shape[2];
    let (jetd, grey) = (d.join("jet"), d.join("grey"));
    for (dir, colour) in [(&jetd, true), (&grey, false)] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("meta.json"), META).unwrap();
        for k in 0..f.shape[0] {
            let px: Vec<u8> = q[k * n..(k + 1) * n]
                .iter()
                .flat_map(|&x| {
                    let v = x as f32 / 1000.0;
                    if colour {
                        jet(v)
                    } else {
                        [(255.0 * v).round() as u8; 3]
                    }
                })
                .collect();
            image::RgbImage::from_raw(f.shape[2] as u32, f.shape[1] as u32, px)
                .unwrap()
                .save(dir.join(format!("f_{k:02}.png")))
                .unwrap();
        }
    }
    let json = d.join("r.json");
    let (o, v) = results(&["fit", s(&jetd)], &json);
    assert_eq!(o.status.code(), Some(1));
    assert!(v["sims"].as_array().unwrap().is_empty());
    let err = stderr(&o);
    assert!(
        err.contains("colour frame") && err.contains("f_00.png"),
        "{err}"
    );
    let (o, v) = results(&["fit", s(&grey), "--n-sub", "50"], &json);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(v["sims"].as_array().unwrap().len(), 1);
    // import refuses colour the same way, and writes nothing.
    let o = run(&["import", s(&jetd), "--out", s(&d.join("imp"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!d.join("imp").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_stray_image_beside_good_videos_is_skipped_with_a_warning() {
    let d = tmpdir("stray");
    let data = d.join("data");
    generate(&data, 2, 24, 5);
    image::GrayImage::from_pixel(16, 16, image::Luma([128]))
        .save(data.join("thumbnail.png"))
        .unwrap();
    let json = d.join("r.json");
    let (o, v) = results(&["fit", s(&data)], &json);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(v["sims"].as_array().unwrap().len(), 4, "{v}");
    let err = stderr(&o);
    assert!(
        err.lines().any(|l| l.starts_with("warning:")
            && l.contains("thumbnail.png")
            && l.contains("skipped")),
        "{err}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_grid_spacing_typo_warns_in_the_table_and_the_json() {
    let d = tmpdir("typo");
    generate(&d.join("g"), 1, 32, 6);
    let v = d.join("v");
    std::fs::create_dir_all(&v).unwrap();
    std::fs::copy(d.join("g/sim_000/field.npy"), v.join("field.npy")).unwrap();
    std::fs::write(
        v.join("meta.json"),
        r#"{"dt_save": 0.25, "process": "diffusion"}"#,
    )
    .unwrap();
    let json = d.join("r.json");
    // The true spacing is 0.5 x 0.5; 4 typed for 0.5.
    let (o, r) = results(
        &["fit", s(&v), "--dx", "0.5", "--dy", "4", "--n-sub", "50"],
        &json,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("WARNING"), "{table}");
    let sim = &r["sims"][0];
    assert!(sim["misfit"].as_f64().unwrap() > 100.0, "{sim}");
    let w = sim["warnings"].to_string();
    assert!(w.contains("check dx and dy"), "{w}");
    // The suggested ratio is the true one, 1, within the search's resolution.
    let ratio: f64 = w
        .split("dy/dx = ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{w}"));
    assert!((ratio - 1.0).abs() < 0.05, "{ratio}: {w}");
    // The right spacing: no warning.
    let (o, r) = results(
        &["fit", s(&v), "--dx", "0.5", "--dy", "0.5", "--n-sub", "50"],
        &json,
    );
    assert!(o.status.success());
    assert_eq!(r["sims"][0]["warnings"], serde_json::json!([]), "{r}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The hand-off as people type it: `--print-config` alone, `train`, then `infer --model`
/// with exactly the path `train` printed; a second `train` refuses, `--overwrite` replaces;
/// amortised `infer` on float, 16-bit and 8-bit copies reports error bars that cover the
/// truth.
#[test]
fn generate_train_infer_as_a_user_types_it() {
    let d = tmpdir("e2e");
    let o = run(&["train", "--print-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("[train]"));
    let data = d.join("data");
    generate(&data, 6, 32, 7);
    let m = d.join("model");
    let train = ["train", "--data", s(&data), "--out", s(&m), "--epochs", "2"];
    let o = run(&train);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = stdout(&o);
    let printed = said
        .trim()
        .rsplit("model in ")
        .next()
        .unwrap_or_else(|| panic!("{said}"))
        .trim()
        .to_string();
    assert!(stderr(&o).contains("epoch   2/2 phase 2"), "{}", stderr(&o));
    // Again without a flag: refused; --overwrite: replaced.
    let o = run(&train);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
    let mut again = train.to_vec();
    again.push("--overwrite");
    let o = run(&again);
    assert!(o.status.success(), "{}", stderr(&o));
    // A diffusion test video, as float, 16-bit and 8-bit frames.
    let sim = data.join("sim_005");
    let f = read_npy(&sim.join("field.npy")).unwrap();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(sim.join("meta.json")).unwrap()).unwrap();
    let truth = meta["alpha"].as_f64().unwrap();
    let (p16, p8) = (d.join("p16"), d.join("p8"));
    write_pngs(&p16, &f.shape, &f.data, 16);
    write_pngs(&p8, &f.shape, &f.data, 8);
    let frame_meta = serde_json::json!({
        "dx": meta["dx"], "dy": meta["dy"], "dt_save": meta["dt_save"],
        "process": meta["process"],
    });
    for p in [&p16, &p8] {
        std::fs::write(p.join("meta.json"), frame_meta.to_string()).unwrap();
    }
    let json = d.join("r.json");
    for video in [&sim, &p16, &p8] {
        let (o, r) = results(
            &["infer", "--model", &printed, s(video), "--n-sub", "50"],
            &json,
        );
        assert!(o.status.success(), "{}: {}", video.display(), stderr(&o));
        let a = r["sims"][0]["alpha_hat"].as_f64().unwrap();
        let se = r["sims"][0]["stderr"].as_f64().unwrap();
        assert!(
            (a - truth).abs() <= 3.0 * se,
            "{}: {a} +- {se} vs {truth}",
            video.display()
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Issue 15: a C-channel field `[T, C, Nx, Ny]` is one video whose channels share alpha
/// (paper 2.1); `--per-channel` gives each channel its own row.
#[test]
fn a_vector_field_is_one_video_and_per_channel_gives_each_channel() {
    let d = tmpdir("vector");
    generate(&d.join("g"), 1, 32, 4);
    let sim = d.join("g/sim_000");
    let f = read_npy(&sim.join("field.npy")).unwrap();
    let (t, n) = (f.shape[0], f.shape[1]);
    let len = n * n;
    // Channels: the field, its transpose (dx = dy) and its negative plus an offset; each
    // evolves by the same operator with the same alpha, the third adds no information.
    let mut data = Vec::with_capacity(3 * f.data.len());
    for k in 0..t {
        let fr = &f.data[k * len..(k + 1) * len];
        data.extend_from_slice(fr);
        data.extend((0..len).map(|p| fr[(p % n) * n + p / n]));
        data.extend(fr.iter().map(|x| 2.0 - x));
    }
    let vec_dir = d.join("vector");
    std::fs::create_dir_all(&vec_dir).unwrap();
    std::fs::write(
        vec_dir.join("field.npy"),
        safe_data::npy::encode_f32(&[t, 3, n, n], &data),
    )
    .unwrap();
    std::fs::copy(sim.join("meta.json"), vec_dir.join("meta.json")).unwrap();
    let json = d.join("r.json");
    let (o, one) = results(&["fit", s(&sim)], &json);
    assert!(o.status.success(), "{}", stderr(&o));
    let alone = one["sims"][0]["alpha_hat"].as_f64().unwrap();
    let truth = one["sims"][0]["alpha_true"].as_f64().unwrap();
    let (o, joint) = results(&["fit", s(&vec_dir)], &json);
    assert!(o.status.success(), "{}", stderr(&o));
    let sims = joint["sims"].as_array().unwrap();
    assert_eq!(sims.len(), 1, "{joint}");
    assert!(
        (sims[0]["alpha_hat"].as_f64().unwrap() - truth).abs() < 1e-6,
        "{joint}"
    );
    // The negative repeats channel 0: it is counted once, and the user is told.
    assert_eq!(sims[0]["channels"].as_array().unwrap().len(), 2, "{joint}");
    assert!(
        sims[0]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("channel 2 repeats channel 0")),
        "{joint}"
    );
    let (o, per) = results(&["fit", s(&vec_dir), "--per-channel"], &json);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = per["sims"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{per}");
    assert!(
        rows[1]["path"]
            .as_str()
            .unwrap()
            .ends_with("[channel 1 of 3]")
    );
    // Channel 0 is the scalar video, fitted as it is alone.
    assert_eq!(rows[0]["alpha_hat"].as_f64().unwrap(), alone);
    // Zero-shot takes the vector field too.
    let (o, zs) = results(&["zero-shot", s(&vec_dir), "--steps", "50"], &json);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        (zs["sims"][0]["alpha_hat"].as_f64().unwrap() - truth).abs() < 1e-5,
        "{zs}"
    );
    // A wrong rank names the layouts it accepts.
    std::fs::write(
        vec_dir.join("field.npy"),
        safe_data::npy::encode_f32(&[t, 1, 3, n, n / 3], &data[..t * 3 * n * (n / 3)]),
    )
    .unwrap();
    let o = run(&["fit", s(&vec_dir)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("[T, C, Nx, Ny]"), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

/// Issue 15: colour frames whose red, green and blue are three fields sharing alpha are
/// refused by default and read as a 3-channel field with `--channels separate`.
#[test]
fn colour_frames_as_channels_when_asked() {
    let d = tmpdir("rgbchannels");
    generate(&d.join("g"), 1, 32, 6);
    let f = read_npy(&d.join("g/sim_000/field.npy")).unwrap();
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("g/sim_000/meta.json")).unwrap())
            .unwrap();
    let truth = truth["alpha"].as_f64().unwrap();
    let (t, n) = (f.shape[0], f.shape[1]);
    let len = n * n;
    let q = quantise(&f.data, 65535.0);
    let frames = d.join("rgb");
    std::fs::create_dir_all(&frames).unwrap();
    for k in 0..t {
        let fr = &q[k * len..(k + 1) * len];
        // Red: the field; green: its transpose; blue: it mirrored (dx = dy, periodic).
        let px: Vec<u16> = (0..len)
            .flat_map(|p| {
                let (i, j) = (p / n, p % n);
                [fr[p], fr[j * n + i], fr[i * n + (n - 1 - j)]]
            })
            .collect();
        image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_raw(n as u32, n as u32, px)
            .unwrap()
            .save(frames.join(format!("frame_{k:03}.png")))
            .unwrap();
    }
    std::fs::write(frames.join("meta.json"), META).unwrap();
    let o = run(&["fit", s(&frames)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--channels separate"), "{}", stderr(&o));
    let json = d.join("r.json");
    let (o, r) = results(
        &["fit", s(&frames), "--channels", "separate", "--n-sub", "50"],
        &json,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sim = &r["sims"][0];
    assert_eq!(sim["channels"].as_array().unwrap().len(), 3, "{r}");
    assert!(
        (sim["alpha_hat"].as_f64().unwrap() - truth).abs() < 1e-4,
        "{r}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
