#!/usr/bin/env python3
"""Score our program's estimates on the independent videos, per video kind.

    python check.py DIR --results results.json

results.json: {"sims": [{"path": ..., "alpha_true": ..., "alpha_hat": ..., "stderr": ...}, ...]}.
Truth and kind come from each video's meta.json (found at `path`, or at DIR/`path`); a
results alpha_true that disagrees with meta.json is reported. Per kind: n, MAE, max error,
R^2 within each regime (diffusion / mobility; R^2 over both regimes is flattered by the sign
split) and stderr coverage, the fraction with |alpha_hat - alpha| <= 2 stderr.
"""
import argparse
import glob
import json
import os

import numpy as np


def find_meta(path, root):
    for p in (path, os.path.join(root, path)):
        if os.path.isfile(os.path.join(p, "meta.json")):
            return os.path.realpath(p), json.load(open(os.path.join(p, "meta.json")))
    return None, None


def r2(t, h):
    if len(t) < 2 or np.var(t) == 0:
        return float("nan")
    return 1 - np.sum((h - t) ** 2) / np.sum((t - t.mean()) ** 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--results", required=True)
    a = ap.parse_args()
    sims = json.load(open(a.results))["sims"]
    rows, seen = {}, set()
    for s in sims:
        path, meta = find_meta(s["path"], a.dir)
        if meta is None:
            print(f"warning: no meta.json for {s['path']} (skipped)")
            continue
        seen.add(path)
        truth = meta["alpha"]
        if s.get("alpha_true") is not None and abs(s["alpha_true"] - truth) > 1e-6 * max(1, abs(truth)):
            print(f"warning: {s['path']}: alpha_true {s['alpha_true']} but meta.json says {truth}")
        if s.get("alpha_hat") is None:
            print(f"warning: {s['path']}: no alpha_hat (counted as missing)")
            continue
        se = s.get("stderr")
        rows.setdefault(meta.get("kind", "?"), []).append(
            (truth, s["alpha_hat"], np.nan if se is None else se, meta["process"]))
    on_disk = {os.path.realpath(os.path.dirname(f))
               for f in glob.glob(os.path.join(a.dir, "**", "meta.json"), recursive=True)}
    if on_disk - seen:
        print(f"note: {len(on_disk - seen)} videos under {a.dir} have no result")

    print(f"\n{'kind':20s} {'n':>4s} {'MAE':>9s} {'max_err':>9s} {'R2_diff':>9s} {'R2_mob':>9s} {'cover2se':>9s}")
    everything = []
    for kind in sorted(rows) + ["ALL"]:
        rs = everything if kind == "ALL" else rows[kind]
        if kind != "ALL":
            everything += rs
        t = np.array([r[0] for r in rs]); h = np.array([r[1] for r in rs])
        se = np.array([r[2] for r in rs]); proc = np.array([r[3] for r in rs])
        err = np.abs(h - t)
        r2d = r2(t[proc == "diffusion"], h[proc == "diffusion"])
        r2m = r2(t[proc == "mobility"], h[proc == "mobility"])
        ok = np.isfinite(se)
        cov = f"{np.mean(err[ok] <= 2 * se[ok]):9.2f}" if ok.any() else f"{'n/a':>9s}"
        print(f"{kind:20s} {len(rs):4d} {err.mean():9.2e} {err.max():9.2e} {r2d:9.6f} {r2m:9.6f} {cov}")


if __name__ == "__main__":
    main()
