"""Many videos on many machines: one Dask task per input path.

    from dask.distributed import Client
    from safe_pit_cm.dask import fit_many
    client = Client("tcp://scheduler:8786")          # or LocalCluster(), or dask-jobqueue
    table = fit_many(paths, client=client, method="fit", n_sub="inf")

Each task loads its path on the worker (files are never shipped from the client) and
returns one row per video found there (a folder of simulations gives several). A video
that fails becomes a row with its ``error``; the rest of the run is unaffected. Columns are
the keys of the command line's JSON records, plus ``error``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from typing import Any, Dict, Iterable, List, Optional

from . import _native, _options

# The estimating options, as `safe_pit_cm._options` names them (one list, not two).
_OPTION_KEYS = tuple(inspect.signature(_options).parameters)


@functools.lru_cache(maxsize=4)
def _model(path: Optional[str]) -> "_native.Model":
    # Loaded once per worker process, not once per video; None: the shipped model.
    return _native.Model.builtin() if path is None else _native.Model.load(path)


def run_path(
    path: str,
    method: str = "fit",
    options: Optional[Dict[str, Any]] = None,
    model: Optional[str] = None,
    ttt_steps: int = 0,
    steps: int = 200,
    lr: float = 5e-3,
    seed: int = 0,
    polish: int = 8,
    dx: Optional[float] = None,
    dy: Optional[float] = None,
    dt_save: Optional[float] = None,
) -> List[Dict[str, Any]]:
    """Every video under ``path`` by ``method``, as result rows (never raises for a bad
    video: its row carries ``error``). This is the task each Dask worker runs."""
    o = _options(**(options or {}))
    rows: List[Dict[str, Any]] = []
    try:
        videos, errors, _warnings = _native.load_all(str(path), dx, dy, dt_save)
    except Exception as e:  # a path that cannot even be listed
        return [{"path": str(path), "error": str(e)}]
    if not videos and not errors:
        errors = [(str(path), "no videos found here")]
    for v in videos:
        try:
            if method == "fit":
                rec = _native.fit(v, o)
            elif method == "zero-shot":
                rec = _native.zero_shot(v, o, steps, lr, seed, polish)
            elif method == "infer":
                rec = _model(None if model is None else str(model)).infer(v, ttt_steps, o)
            else:
                raise ValueError(
                    f"unknown method '{method}' (fit, zero-shot or infer)"
                )
            row = json.loads(rec)
            row["error"] = None
        except Exception as e:
            row = {"path": v.source, "error": str(e)}
        rows.append(row)
    for p, e in errors:
        rows.append({"path": p, "error": e})
    return rows


def fit_many(
    paths: Iterable[Any],
    client: Any = None,
    method: str = "fit",
    *,
    model: Optional[str] = None,
    ttt_steps: int = 0,
    steps: int = 200,
    lr: float = 5e-3,
    seed: int = 0,
    polish: int = 8,
    dx: Optional[float] = None,
    dy: Optional[float] = None,
    dt_save: Optional[float] = None,
    **options: Any,
):
    """Estimate every video under ``paths`` on a ``dask.distributed`` client, one task per
    path; returns a pandas DataFrame, one row per video, in the order of ``paths``.

    ``client``: a ``dask.distributed.Client``; None uses the current default client if
    there is one, else runs serially in this process. ``method``: ``"fit"``,
    ``"zero-shot"`` or ``"infer"`` (with ``model``, a path every worker can read; none: the
    shipped pretrained model).
    ``options``: as for :func:`safe_pit_cm.fit` (``n_sub="inf"``, ``boundary=...``).
    """
    import pandas as pd

    unknown = set(options) - set(_OPTION_KEYS)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    if method not in ("fit", "zero-shot", "infer"):
        raise ValueError(f"unknown method '{method}' (fit, zero-shot or infer)")
    paths = [os.fspath(p) for p in paths]
    kw = dict(
        method=method,
        options=options,
        model=None if model is None else os.fspath(model),
        ttt_steps=ttt_steps,
        steps=steps,
        lr=lr,
        seed=seed,
        polish=polish,
        dx=dx,
        dy=dy,
        dt_save=dt_save,
    )
    if client is None:
        try:
            from dask.distributed import get_client

            client = get_client()
        except (ImportError, ValueError):
            client = None
    if client is None:
        results = [run_path(p, **kw) for p in paths]
    else:
        futures = client.map(run_path, paths, pure=False, **kw)
        results = client.gather(futures)
    rows = [r for per_path in results for r in per_path]
    return pd.DataFrame(rows)
