//! Write universal draw SEED I as a simulation folder (field.npy + meta.json) so that any
//! command can be run on it: `cargo run --release -p safe-eval --example dump_draw -- 4242 13 /tmp/d13`.
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let d = safe_eval::universal::draw(a[0].parse().unwrap(), a[1].parse().unwrap()).unwrap();
    let v = d.video;
    let dir = std::path::Path::new(&a[2]);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("field.npy"),
        safe_data::npy::encode_f32(&[v.n_frames, v.grid.nx, v.grid.ny], &v.frames),
    )
    .unwrap();
    std::fs::write(
        dir.join("meta.json"),
        format!(
            r#"{{"dx":{},"dy":{},"dt_save":{},"alpha":{}}}"#,
            v.grid.dx,
            v.grid.dy,
            v.meta.dt_save,
            v.meta.alpha.unwrap()
        ),
    )
    .unwrap();
    println!("{}", d.kind);
}
