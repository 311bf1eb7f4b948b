//! Property-based fuzzing of everything that parses user files: the `.npy` reader, the
//! `meta.json` validator and the PNG/TIFF loaders. Each input must give a value or an
//! error, never a panic, never an allocation the file size does not justify.
//!
//! `FUZZ_CASES` sets the number of cases per property (CI uses the default below).

use proptest::prelude::*;
use safe_data::images::read_image_stack;
use safe_data::meta::{Meta, MetaOverrides};
use safe_data::npy::{decode, encode_f32};

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn valid_npy() -> Vec<u8> {
    let data: Vec<f32> = (0..2 * 4 * 5).map(|i| i as f32 * 0.25).collect();
    encode_f32(&[2, 4, 5], &data)
}

/// A valid PNG and a valid 2-page TIFF to mutate.
fn valid_images() -> (Vec<u8>, Vec<u8>) {
    let mut png = Vec::new();
    image::GrayImage::from_fn(6, 5, |x, y| image::Luma([(x * 30 + y * 7) as u8]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let mut tif = std::io::Cursor::new(Vec::new());
    {
        let mut enc = tiff::encoder::TiffEncoder::new(&mut tif).unwrap();
        for k in 0..2u8 {
            let px: Vec<u16> = (0..30u16).map(|i| i * 100 + k as u16).collect();
            enc.write_image::<tiff::encoder::colortype::Gray16>(6, 5, &px)
                .unwrap();
        }
    }
    (png, tif.into_inner())
}

/// Apply up to 8 random byte edits (overwrite, truncate, insert).
fn mutate(mut v: Vec<u8>, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(kind, pos, byte) in edits {
        if v.is_empty() {
            v.push(byte);
            continue;
        }
        let p = pos % v.len();
        match kind % 3 {
            0 => v[p] = byte,
            1 => v.truncate(p),
            _ => v.insert(p, byte),
        }
    }
    v
}

fn edits() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8)
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn npy_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn npy_with_random_magic_prefix_never_panics(tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend(tail);
        let _ = decode(&bytes);
    }

    #[test]
    fn npy_mutations_never_panic_and_stay_consistent(e in edits()) {
        let bytes = mutate(valid_npy(), &e);
        if let Ok(a) = decode(&bytes) {
            prop_assert_eq!(a.shape.iter().product::<usize>(), a.data.len());
        }
    }

    #[test]
    fn npy_random_headers_never_panic(header in "\\{[ -~]{0,120}\\}", data in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(data);
        let _ = decode(&bytes);
    }

    #[test]
    fn meta_random_text_never_panics(text in "[ -~]{0,200}") {
        let _ = Meta::parse(Some(&text), &MetaOverrides::default());
    }

    #[test]
    fn meta_random_objects_never_panic(
        dx in prop::option::of(prop_oneof![any::<f64>().prop_map(|x| x.to_string()), Just("\"x\"".to_string()), Just("null".to_string()), Just("[]".to_string())]),
        dt in prop::option::of(any::<f64>()),
        si in prop::option::of(any::<i64>()),
        alpha in prop::option::of(any::<f64>()),
        process in prop::option::of("[a-z]{0,10}"),
    ) {
        let mut parts = Vec::new();
        if let Some(d) = dx { parts.push(format!("\"dx\": {d}, \"dy\": {d}")); }
        if let Some(d) = dt { parts.push(format!("\"dt\": {d}")); }
        if let Some(s) = si { parts.push(format!("\"save_interval\": {s}")); }
        if let Some(a) = alpha { parts.push(format!("\"alpha\": {a}")); }
        if let Some(p) = process { parts.push(format!("\"process\": \"{p}\"")); }
        let text = format!("{{{}}}", parts.join(", "));
        if let Ok(m) = Meta::parse(Some(&text), &MetaOverrides::default()) {
            prop_assert!(m.dx > 0.0 && m.dy > 0.0 && m.dt_save > 0.0 && m.dt_save.is_finite());
        }
    }
}

proptest! {
    #![proptest_config(cases(400))]

    #[test]
    fn image_mutations_never_panic(e in edits(), which in 0u8..2) {
        let (png, tif) = valid_images();
        let dir = std::env::temp_dir().join(format!("safe-fuzz-img-{}-{}", std::process::id(), which));
        std::fs::create_dir_all(&dir).unwrap();
        let path = if which == 0 { dir.join("f.png") } else { dir.join("f.tif") };
        std::fs::write(&path, mutate(if which == 0 { png } else { tif }, &e)).unwrap();
        if let Ok(st) = read_image_stack(&path) {
            prop_assert_eq!(st.shape.iter().product::<usize>(), st.frames.len());
        }
    }
}
