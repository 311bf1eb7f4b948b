"""The numpy API: same numbers as the command line, clear errors, no crash."""

import json
import time

import numpy as np
import pytest

import safe_pit_cm as spc


def cli_records(cli, tmp_path, *args):
    out = tmp_path / "r.json"
    r = cli(*args, "--out", out, "--overwrite")
    assert r.returncode in (0, 1), r.stderr
    return json.loads(out.read_text())


def test_fit_of_an_array_equals_the_cli(cli, dataset, tmp_path):
    sim = dataset / "sim_003"
    frames = np.load(sim / "field.npy")
    meta = json.loads((sim / "meta.json").read_text())
    via_cli = cli_records(cli, tmp_path, "fit", sim)["sims"][0]
    # The same video as a numpy array with its metadata as arguments.
    e = spc.fit(
        frames,
        dx=meta["dx"],
        dy=meta["dy"],
        dt_save=meta["dt_save"],
        n_sub=meta["save_interval"],
    )
    assert e.alpha == via_cli["alpha_hat"]
    assert e.stderr == via_cli["stderr"]
    assert e.process == via_cli["process"]
    # Loaded from the folder, the record is the CLI's record.
    e = spc.fit(spc.load(sim))
    d = e.to_dict()
    for k in ("alpha_hat", "stderr", "safe_loss", "misfit", "operator", "decisions", "warnings"):
        assert d[k] == via_cli[k], k
    # Options reach the estimate as the flags do.
    via_cli = cli_records(cli, tmp_path, "fit", sim, "--n-sub", "inf", "--boundary", "open")
    e = spc.fit(sim, n_sub="inf", boundary="open")
    assert e.alpha == via_cli["sims"][0]["alpha_hat"]
    assert e.operator.startswith("open/")


def test_dtype_and_order_do_not_change_the_answer(dataset):
    sim = dataset / "sim_001"
    f32 = np.load(sim / "field.npy")
    kw = dict(dx=0.5, dy=0.5, dt_save=0.25, n_sub=50)
    a = spc.fit(f32, **kw).alpha
    assert spc.fit(np.asfortranarray(f32), **kw).alpha == a
    assert spc.fit(f32.astype(np.float64), **kw).alpha == a
    # A strided view (every other frame) equals fitting the copy.
    assert spc.fit(f32[::2], **kw).alpha == spc.fit(f32[::2].copy(), **kw).alpha


def test_a_vector_field_array_equals_the_cli(cli, dataset, tmp_path):
    """[T, C, Nx, Ny]: one joint estimate, the CLI's, as exact as a channel alone."""
    sim = dataset / "sim_002"
    f = np.load(sim / "field.npy")
    meta = json.loads((sim / "meta.json").read_text())
    vec = np.stack([f, f.transpose(0, 2, 1), 2.0 - f], axis=1)
    d = tmp_path / "vector"
    d.mkdir()
    np.save(d / "field.npy", vec)
    (d / "meta.json").write_text(json.dumps(meta))
    via_cli = cli_records(cli, tmp_path, "fit", d)["sims"][0]
    e = spc.fit(vec, dx=meta["dx"], dy=meta["dy"], dt_save=meta["dt_save"], n_sub=meta["save_interval"])
    assert e.alpha == via_cli["alpha_hat"]
    # The third channel repeats the first (a negative): counted once, with a warning.
    assert len(e.to_dict()["channels"]) == 2
    assert any("repeats channel 0" in w for w in e.warnings)
    assert abs(e.alpha - meta["alpha"]) < 1e-6
    v = spc.load(d)
    assert v.channels == 3 and v.shape == vec.shape
    np.testing.assert_array_equal(v.frames, vec)


def test_zero_shot_equals_the_cli(cli, dataset, tmp_path):
    sim = dataset / "sim_024"
    via_cli = cli_records(cli, tmp_path, "zero-shot", sim, "--steps", "60")["sims"][0]
    e = spc.zero_shot(spc.load(sim), steps=60)
    assert e.alpha == via_cli["alpha_hat"]
    assert e.process == "mobility" and e.alpha > 0


def test_load_reads_what_the_cli_reads(dataset, tmp_path):
    v = spc.load(dataset / "sim_000")
    assert v.shape == (21, 32, 32) and v.frames.dtype == np.float32
    assert (v.dx, v.dy, v.dt_save, v.process) == (0.5, 0.5, 0.25, "diffusion")
    assert v.alpha < 0
    # A folder of frames: 16-bit PNGs need `image`-free writing, so use a .npy stack.
    np.save(tmp_path / "movie.npy", v.frames)
    (tmp_path / "movie.json").write_text(json.dumps({"dx": 1, "dy": 1, "dt_save": 1}))
    w = spc.load(tmp_path / "movie.npy")
    assert w.shape == v.shape and w.process is None and w.alpha is None
    videos, errors, warnings = spc.load_all(dataset)
    assert len(videos) == 40 and errors == []
    with pytest.raises(ValueError, match="holds 40 videos"):
        spc.load(dataset)


def test_bad_input_raises_with_the_cli_message_and_the_interpreter_survives(dataset, tmp_path):
    f = np.load(dataset / "sim_000" / "field.npy")
    kw = dict(dx=0.5, dy=0.5, dt_save=0.25)
    bad = f.copy()
    bad[1, 4, 4] = np.nan
    with pytest.raises(ValueError, match=r"frame 1 has a non-finite value \(NaN\) at \(4, 4\)"):
        spc.fit(bad, **kw)
    with pytest.raises(ValueError, match=r"shape \[T, Nx, Ny\]"):
        spc.fit(f[0], **kw)
    with pytest.raises(ValueError, match="real numeric"):
        spc.fit(f.astype(np.complex64), **kw)
    with pytest.raises(ValueError, match="missing dx, dy, dt_save"):
        spc.fit(f)
    with pytest.raises(ValueError, match="at least 2 are needed"):
        spc.fit(f[:1], **kw)
    with pytest.raises(OSError, match="no such file or folder"):
        spc.load(tmp_path / "missing")
    with pytest.raises(OSError):
        spc.fit(tmp_path / "missing")
    with pytest.raises(ValueError, match="boundary = 'sideways'"):
        spc.fit(f, boundary="sideways", **kw)
    with pytest.raises(ValueError, match="contradicts the data"):
        spc.fit(f, process="mobility", **kw)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "field.npy").write_bytes(b"not numpy")
    (tmp_path / "broken" / "meta.json").write_text('{"dx": 1, "dy": 1, "dt_save": 1}')
    with pytest.raises(ValueError, match="not an .npy file"):
        spc.load(tmp_path / "broken")
    with pytest.raises(OSError):
        spc.Model.load(tmp_path / "no-model")
    # Still alive and still right.
    assert spc.fit(f, n_sub=50, **kw).alpha < 0


def test_per_call_overhead_is_small(dataset):
    v = spc.load(dataset / "sim_002")
    o = spc._options()
    spc.fit(v)
    n = 30
    t0 = time.perf_counter()
    for _ in range(n):
        spc.fit(v)
    python = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        spc._native.fit(v, o)
    native = (time.perf_counter() - t0) / n
    # The Python layer adds option handling and JSON decoding to the Rust call.
    assert python - native < 1e-3, (python, native)


def test_generate_refuses_unknown_settings(tmp_path):
    with pytest.raises(ValueError, match="unknown setting 'nxx'"):
        spc.generate(tmp_path / "g", n_sims=1, nxx=3)


def test_help_and_types_are_there():
    assert "SAFE loss" in spc.fit.__doc__
    assert "zero-shot" in spc.zero_shot.__doc__
    import importlib.resources as r

    files = {p.name for p in r.files("safe_pit_cm").iterdir()}
    assert "_native.pyi" in files and "py.typed" in files


def test_the_builtin_model_infers_out_of_the_box(dataset):
    # No training, no path: the shipped model, the same numbers as the CLI's `infer`.
    m = spc.Model.load()
    v = spc.load(dataset / "sim_002")
    est = m.infer(v)
    assert est.alpha < 0 and est.stderr > 0
    refined = m.infer(v, ttt_steps=50)
    assert abs(refined.alpha - refined.alpha_true) < 1e-3 * abs(refined.alpha_true)
