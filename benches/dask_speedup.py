"""Speed-up of safe_pit_cm.dask.fit_many from 1 to 2 Dask workers on this machine.

    python benches/dask_speedup.py [--videos 40] [--size 128] [--repeats 3]

Generates Appendix-A videos (101 frames of SIZE x SIZE) into a temporary folder, then runs
``fit_many`` with ``method="fit"`` and ``method="zero-shot"`` on a LocalCluster of 1 and of 2
worker processes, one thread each and ``RAYON_NUM_THREADS=1`` inside them, so that a worker
is one core, as on a cluster node slot. Prints JSON: median wall seconds per setting, the
speed-up, and that the two tables agree.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    # Before the workers start, so that they inherit it.
    os.environ["RAYON_NUM_THREADS"] = "1"

    import numpy as np
    from dask.distributed import Client, LocalCluster

    import safe_pit_cm as spc
    from safe_pit_cm.dask import fit_many

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sims"
        spc.generate(data, n_sims=args.videos // 2, nx=args.size, ny=args.size, seed=11)
        paths = sorted(p for p in data.iterdir() if p.name.startswith("sim_"))
        out = {"videos": len(paths), "size": args.size, "frames": 101, "results": {}}
        tables = {}
        for method, kw in (("fit", {}), ("zero-shot", {})):
            for workers in (1, 2):
                with LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                ) as cluster, Client(cluster) as client:
                    fit_many(paths[:workers], client=client, method=method, **kw)  # warm
                    runs = []
                    for _ in range(args.repeats):
                        t = time.perf_counter()
                        table = fit_many(paths, client=client, method=method, **kw)
                        runs.append(time.perf_counter() - t)
                tables[(method, workers)] = table
                out["results"][f"{method}/{workers}"] = {
                    "median_s": statistics.median(runs),
                    "runs": runs,
                }
            one = out["results"][f"{method}/1"]["median_s"]
            two = out["results"][f"{method}/2"]["median_s"]
            out["results"][f"{method}/speedup"] = one / two
            a = tables[(method, 1)]["alpha_hat"].to_numpy()
            b = tables[(method, 2)]["alpha_hat"].to_numpy()
            out["results"][f"{method}/tables_equal"] = bool(np.array_equal(a, b))
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
