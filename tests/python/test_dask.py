"""fit_many on a 2-worker LocalCluster returns the serial results, row for row."""

import numpy as np
import pytest

import safe_pit_cm as spc

distributed = pytest.importorskip("dask.distributed")
pd = pytest.importorskip("pandas")

from safe_pit_cm.dask import fit_many  # noqa: E402


def test_fit_many_on_two_workers_equals_serial(dataset, tmp_path):
    paths = sorted(p for p in dataset.iterdir() if p.name.startswith("sim_"))
    assert len(paths) == 40
    # One bad path among them: a row with its error, the rest unaffected.
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "field.npy").write_bytes(b"junk")
    (tmp_path / "bad" / "meta.json").write_text('{"dx": 1, "dy": 1, "dt_save": 1}')
    inputs = paths + [tmp_path / "bad"]
    serial = fit_many(inputs, client=None)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        parallel = fit_many(inputs, client=client)
    assert len(serial) == len(parallel) == 41
    assert list(serial["path"]) == list(parallel["path"])
    ok = serial["error"].isna()
    assert ok.sum() == 40
    assert "not an .npy file" in serial.loc[~ok, "error"].iloc[0]
    np.testing.assert_array_equal(
        serial.loc[ok, "alpha_hat"].to_numpy(), parallel.loc[ok, "alpha_hat"].to_numpy()
    )
    np.testing.assert_array_equal(
        serial.loc[ok, "stderr"].to_numpy(), parallel.loc[ok, "stderr"].to_numpy()
    )
    # And equal to one call at a time.
    e = spc.fit(paths[7])
    row = serial[serial["path"] == str(paths[7])].iloc[0]
    assert row["alpha_hat"] == e.alpha
    # Every fit is close to the truth: the table is usable as it comes.
    err = (serial.loc[ok, "alpha_hat"] - serial.loc[ok, "alpha_true"]).abs()
    assert err.max() < 1e-6


def test_fit_many_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="unknown method"):
        fit_many(["x"], method="guess")
    with pytest.raises(TypeError, match="unknown option"):
        fit_many(["x"], bondary="open")
