"""SAFE-PIT-CM: recover a transport coefficient (diffusivity, mobility) from a video of a field.

The same Rust code as the ``safe-pit-cm`` command line, with a numpy API::

    import numpy as np, safe_pit_cm as spc
    est = spc.fit(frames, dx=0.5, dy=0.5, dt_save=0.25)    # frames: [T, Nx, Ny]
    print(est.alpha, est.stderr, est.process, est.warnings)

Conventions (docs/conventions.md): axis 1 has spacing ``dx``, axis 2 ``dy`` (image rows are
axis 1); ``alpha < 0`` is diffusion (the field smooths forward in time), ``alpha > 0``
mobility (it sharpens). In pixel and frame units (``dx = dy = dt_save = 1``) alpha is in
pixel^2 per frame. Options are spelled as the command line's flags; ``"auto"`` decides from
the data and records why in ``Estimate.decisions``.

Bad input raises ``ValueError`` (content, metadata, options) or ``OSError`` (missing or
unreadable files) with the command line's message. Calls release the GIL; Ctrl-C takes
effect when the current call returns (a fit takes milliseconds, zero-shot under a second).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._native import Video

__all__ = [
    "Estimate",
    "Model",
    "Video",
    "fit",
    "generate",
    "load",
    "load_all",
    "loss_curve",
    "residual",
    "video",
    "zero_shot",
]
__version__ = _native.version()


class Estimate:
    """One video's estimate: the record the command line writes to its ``--out`` JSON.

    ``alpha`` is signed (negative for diffusion); ``stderr`` covers noise and misfit (a
    sandwich estimate); ``misfit`` is the SAFE loss over what the measured noise alone would
    leave (about 1 for a right model); ``warnings`` say when not to trust the number.
    """

    __slots__ = ("_r",)

    def __init__(self, record: Dict[str, Any]):
        self._r = record

    @property
    def alpha(self) -> float:
        return self._r["alpha_hat"]

    @property
    def stderr(self) -> float:
        return self._r["stderr"]

    @property
    def process(self) -> str:
        return self._r["process"]

    @property
    def safe_loss(self) -> float:
        return self._r["safe_loss"]

    @property
    def misfit(self) -> Optional[float]:
        return self._r.get("misfit")

    @property
    def warnings(self) -> List[str]:
        return list(self._r.get("warnings", []))

    @property
    def seconds(self) -> float:
        return self._r["seconds"]

    @property
    def operator(self) -> Optional[str]:
        return self._r.get("operator")

    @property
    def decisions(self) -> List[Dict[str, Any]]:
        """What each ``auto`` option decided, and the evidence."""
        return list(self._r.get("decisions", []))

    @property
    def alpha_true(self) -> Optional[float]:
        return self._r.get("alpha_true")

    def to_dict(self) -> Dict[str, Any]:
        """The whole record (a copy), with every key the command line's JSON has."""
        return json.loads(json.dumps(self._r))

    def __repr__(self) -> str:
        w = f", {len(self.warnings)} warning(s)" if self.warnings else ""
        return (
            f"Estimate(alpha={self.alpha:.6g}, stderr={self.stderr:.2e}, "
            f"process='{self.process}', operator='{self.operator}'{w})"
        )


def _frames_array(frames: Any) -> np.ndarray:
    a = np.asarray(frames)
    if a.dtype.kind not in "fiu" or a.dtype.kind == "b":
        raise ValueError(
            f"frames must be a real numeric array, got dtype {a.dtype}"
        )
    if a.ndim not in (3, 4):
        raise ValueError(
            f"frames must have shape [T, Nx, Ny] (axis 1 spacing dx, axis 2 spacing dy) or [T, C, Nx, Ny] for a C-channel field, got shape {a.shape}"
        )
    # One conversion to the float32 C order the Rust video holds (a no-op for such arrays).
    return np.ascontiguousarray(a, dtype=np.float32)


def video(
    frames: Any,
    *,
    dx: Optional[float] = None,
    dy: Optional[float] = None,
    dt_save: Optional[float] = None,
    process: Optional[str] = None,
    alpha: Optional[float] = None,
    name: str = "<array>",
) -> Video:
    """A validated :class:`Video` from an array ``[T, Nx, Ny]`` of any real dtype and order
    (``[T, C, Nx, Ny]``: a C-channel field whose channels share alpha, paper 2.1).

    ``process`` states the direction (checked against the data, as ``meta.json``'s is);
    ``alpha`` is an optional signed ground truth, carried into the estimate's record.
    """
    a = _frames_array(frames)
    missing = [k for k, x in (("dx", dx), ("dy", dy), ("dt_save", dt_save)) if x is None]
    if missing:
        raise ValueError(
            f"{name}: missing {', '.join(missing)}: an array carries no metadata, so give them "
            "as keyword arguments (in pixel and frame units, dx = dy = dt_save = 1, alpha "
            "comes out in pixel^2 per frame)"
        )
    return _native.video_from_array(a, dx, dy, dt_save, process, alpha, name)


def load(
    path: Union[str, "os.PathLike[str]"],
    *,
    dx: Optional[float] = None,
    dy: Optional[float] = None,
    dt_save: Optional[float] = None,
    channels: str = "gray",
) -> Video:
    """Load one video as the command line does: a simulation folder (``field.npy`` +
    ``meta.json``), a ``.npy`` array, a multi-page TIFF or a folder of image frames.
    ``dx``/``dy``/``dt_save`` fill what the metadata lack. ``channels="separate"`` reads
    colour frames as a 3-channel field (red, green, blue sharing alpha) instead of refusing
    them. Raises if the path holds several videos (see :func:`load_all`)."""
    return _native.load(str(path), dx, dy, dt_save, channels)


def load_all(
    path: Union[str, "os.PathLike[str]"],
    *,
    dx: Optional[float] = None,
    dy: Optional[float] = None,
    dt_save: Optional[float] = None,
    channels: str = "gray",
) -> Tuple[List[Video], List[Tuple[str, str]], List[str]]:
    """Every video under ``path``: ``(videos, errors, warnings)``, where ``errors`` holds
    ``(path, message)`` for inputs that failed to load (the rest still load)."""
    return _native.load_all(str(path), dx, dy, dt_save, channels)


def _as_video(frames_or_video: Any, dx, dy, dt_save) -> Video:
    if isinstance(frames_or_video, Video):
        if any(x is not None for x in (dx, dy, dt_save)):
            raise ValueError(
                "dx, dy and dt_save come with a Video; give them only with an array"
            )
        return frames_or_video
    if isinstance(frames_or_video, (str, bytes)) or hasattr(frames_or_video, "__fspath__"):
        return load(frames_or_video, dx=dx, dy=dy, dt_save=dt_save)
    return video(frames_or_video, dx=dx, dy=dy, dt_save=dt_save)


def _options(
    process: str = "auto",
    n_sub: Union[int, str] = "auto",
    boundary: str = "auto",
    laplacian: str = "auto",
    noise: Union[str, float] = "auto",
    gamma: Union[str, float] = 1.0,
    strides: Optional[Sequence[int]] = None,
    frame_step: int = 1,
    alpha_range: Optional[Tuple[float, float]] = None,
) -> Dict[str, Any]:
    if isinstance(frame_step, bool) or not isinstance(frame_step, (int, np.integer)) or frame_step < 1:
        raise ValueError(f"frame_step must be an integer >= 1, got {frame_step!r}")
    return {
        "process": str(process),
        "n_sub": str(n_sub),
        "boundary": str(boundary),
        "laplacian": str(laplacian),
        "noise": str(noise),
        "gamma": repr(float(gamma)) if isinstance(gamma, (int, float)) else str(gamma),
        "strides": None if strides is None else [int(s) for s in strides],
        "frame_step": int(frame_step),
        "alpha_range": None
        if alpha_range is None
        else (float(alpha_range[0]), float(alpha_range[1])),
    }


def fit(
    frames: Any,
    *,
    dx: Optional[float] = None,
    dy: Optional[float] = None,
    dt_save: Optional[float] = None,
    process: str = "auto",
    n_sub: Union[int, str] = "auto",
    boundary: str = "auto",
    laplacian: str = "auto",
    noise: Union[str, float] = "auto",
    gamma: Union[str, float] = 1.0,
    strides: Optional[Sequence[int]] = None,
    frame_step: int = 1,
    alpha_range: Optional[Tuple[float, float]] = None,
) -> Estimate:
    """Direct SAFE fit: minimise the SAFE loss over ``|alpha|`` (``safe-pit-cm fit``).

    ``frames``: an array ``[T, Nx, Ny]`` (any real dtype, C or Fortran order; then ``dx``,
    ``dy``, ``dt_save`` are required), a :class:`Video`, or a path. A C-channel field
    ``[T, C, Nx, Ny]`` gives one joint estimate (each channel fitted, joined by inverse
    variance; per channel in ``Estimate.to_dict()["channels"]``); fit ``frames[:, c]``
    for one channel alone.
    ``process``: ``"auto"``, ``"diffusion"`` (smooths forward in time) or ``"mobility"``.
    ``n_sub``: Euler sub-steps per frame interval, ``"inf"`` (continuous time: real
    videos), or ``"auto"`` (the metadata's ``save_interval``, else ``"inf"``).
    ``boundary``: ``"auto"``, ``"periodic"``, ``"zero-flux"`` or ``"open"`` (a window onto a
    larger sample). ``laplacian``: ``"auto"``, ``"five-point"`` or ``"continuum"``.
    ``noise``: ``"auto"`` (estimated; no effect on clean data), ``"off"`` or a standard
    deviation. ``gamma``: the camera curve ``I = x^gamma`` to undo, or ``"auto"``.
    ``strides``: frame strides of the loss; ``frame_step``: use every k-th frame;
    ``alpha_range``: ``(lo, hi)`` bounds of the search for ``|alpha|``.
    """
    v = _as_video(frames, dx, dy, dt_save)
    o = _options(process, n_sub, boundary, laplacian, noise, gamma, strides, frame_step, alpha_range)
    return Estimate(json.loads(_native.fit(v, o)))


def zero_shot(
    frames: Any,
    *,
    dx: Optional[float] = None,
    dy: Optional[float] = None,
    dt_save: Optional[float] = None,
    steps: int = 200,
    lr: float = 5e-3,
    seed: int = 0,
    polish: int = 8,
    process: str = "auto",
    n_sub: Union[int, str] = "auto",
    boundary: str = "auto",
    laplacian: str = "auto",
    noise: Union[str, float] = "auto",
    gamma: Union[str, float] = 1.0,
    strides: Optional[Sequence[int]] = None,
    frame_step: int = 1,
    alpha_range: Optional[Tuple[float, float]] = None,
) -> Estimate:
    """The paper's zero-shot mode (``safe-pit-cm zero-shot``): a fresh model per video,
    ``steps`` Adam steps on the estimator at learning rate ``lr``, then ``polish`` Newton
    steps (0 = the paper's Adam alone). Other options as in :func:`fit`."""
    v = _as_video(frames, dx, dy, dt_save)
    o = _options(process, n_sub, boundary, laplacian, noise, gamma, strides, frame_step, alpha_range)
    return Estimate(
        json.loads(_native.zero_shot(v, o, int(steps), float(lr), int(seed), int(polish)))
    )


def loss_curve(
    frames: Any,
    alphas: Sequence[float],
    *,
    dx: Optional[float] = None,
    dy: Optional[float] = None,
    dt_save: Optional[float] = None,
    **options: Any,
) -> Dict[str, Any]:
    """The SAFE loss at each ``|alpha|`` in ``alphas``, with the operator and direction
    decided as :func:`fit` decides them: ``{"alpha": ..., "raw": ..., "corrected": ...,
    "operator": ...}`` (``raw`` is the paper's loss, ``corrected`` the noise-corrected one
    that :func:`fit` minimises). Options as in :func:`fit` (``gamma`` must be 1)."""
    v = _as_video(frames, dx, dy, dt_save)
    a = [float(x) for x in alphas]
    raw, corrected, op = _native.loss_curve(v, _options(**options), a)
    return {
        "alpha": np.asarray(a),
        "raw": np.asarray(raw),
        "corrected": np.asarray(corrected),
        "operator": op,
    }


def residual(
    frames: Any,
    alpha: float,
    t: int = 0,
    *,
    dx: Optional[float] = None,
    dy: Optional[float] = None,
    dt_save: Optional[float] = None,
    **options: Any,
) -> Tuple[np.ndarray, Tuple[int, int]]:
    """What the SAFE operator at ``|alpha|`` leaves unexplained of frame pair ``t`` (in the
    smoothing order: a mobility video is read backwards): ``(residual [Nx, Ny], (mx, my))``,
    where on an open window only pixels at least ``mx`` rows and ``my`` columns from the
    edge are predicted (the loss counts only those)."""
    v = _as_video(frames, dx, dy, dt_save)
    r, mx, my = _native.residual(v, _options(**options), abs(float(alpha)), int(t))
    return r, (mx, my)


class Model:
    """A model trained by ``safe-pit-cm train`` (its folder, or its ``model.bpk``)."""

    def __init__(self, native: "_native.Model"):
        self._m = native

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]", None] = None) -> "Model":
        """A model folder written by ``train`` (or its ``model.bpk``); no path: the shipped
        pretrained model, which serves any grid, frame interval and intensity scale."""
        if path is None:
            return cls(_native.Model.builtin())
        return cls(_native.Model.load(str(path)))

    @property
    def config(self) -> str:
        """The model's training configuration, as TOML."""
        return self._m.config

    def infer(
        self,
        frames: Any,
        *,
        ttt_steps: int = 0,
        dx: Optional[float] = None,
        dy: Optional[float] = None,
        dt_save: Optional[float] = None,
        process: str = "auto",
        n_sub: Union[int, str] = "auto",
        boundary: str = "auto",
        laplacian: str = "auto",
        noise: Union[str, float] = "auto",
        gamma: Union[str, float] = 1.0,
        strides: Optional[Sequence[int]] = None,
        frame_step: int = 1,
        alpha_range: Optional[Tuple[float, float]] = None,
    ) -> Estimate:
        """``safe-pit-cm infer``: one forward pass (``ttt_steps=0``) or test-time training.
        The error bar includes the distance from the SAFE loss's minimum."""
        v = _as_video(frames, dx, dy, dt_save)
        o = _options(process, n_sub, boundary, laplacian, noise, gamma, strides, frame_step, alpha_range)
        return Estimate(json.loads(self._m.infer(v, int(ttt_steps), o)))

    def __repr__(self) -> str:
        return repr(self._m)


def generate(
    out: Union[str, "os.PathLike[str]"],
    *,
    n_sims: int = 50,
    overwrite: bool = False,
    **settings: Any,
) -> str:
    """Write the paper's Appendix-A dataset (``safe-pit-cm generate``) into ``out``: ``n_sims``
    diffusion simulations and their time-reversed mobility twins. Any other setting of the
    command line by its field name: ``nx``, ``ny``, ``dx``, ``dy``, ``dt``, ``n_steps``,
    ``save_interval``, ``seed``, ``mobility``, ``physics`` ("euler"|"continuum"),
    ``boundary`` ("periodic"|"zero-flux"|"open"), ``camera`` (True for the default 12-bit
    camera). Returns the path of the dataset's manifest."""
    s = dict(settings)
    s["n_diffusion"] = int(n_sims)
    return _native.generate(str(out), json.dumps(s), bool(overwrite))


import os  # noqa: E402  (for the type hints above)
