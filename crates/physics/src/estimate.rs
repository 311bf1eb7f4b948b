//! From frames to an honest estimate: decide what the user left to `auto` (direction,
//! boundary, discretisation, frame strides), fit `|alpha|`, and say how far to trust it.
//!
//! Every command that estimates (`fit`, `zero-shot`, `infer`, the Python package) goes
//! through [`prepare`] for its decisions, so they agree on the operator.

use crate::Process;
use crate::grid::Grid;
use crate::loss::fit::{FitError, FitOptions, FitResult, fit_alpha};
use crate::loss::noise::{NoiseMode, NoiseModel};
use crate::loss::spectra::VideoSpectra;
use crate::loss::window::{WindowLoss, coarse_fit, fit_window};
use crate::loss::{LossPoint, SafeLossCurve};
use crate::operator::{
    Boundary, Choice, KERNEL_TAIL, Laplacian, OperatorSpec, SafeOperator, SubSteps,
};
use crate::select::{EdgeStats, edge_residual_ratio};
use rayon::prelude::*;
use serde_json::{Value, json};

/// What the caller fixed and what it left to the data.
#[derive(Clone, Debug, PartialEq)]
pub struct EstimateOptions {
    pub boundary: Choice<Boundary>,
    pub laplacian: Choice<Laplacian>,
    pub n_sub: SubSteps,
    /// `--process`: fixed by the user, or decided from the data.
    pub process: Choice<Process>,
    /// The process the metadata states (checked against the data, never trusted blindly).
    pub stated_process: Option<Process>,
    /// The paper's protocol: the process is known (given with the data), so a fixed process
    /// is used even where the data seem to say otherwise (e.g. with unstable sub-steps).
    pub process_known: bool,
    /// Frame strides of the loss; `None` decides from the noise.
    pub strides: Option<Vec<usize>>,
    pub noise: NoiseMode,
    pub alpha_range: Option<(f64, f64)>,
}

impl Default for EstimateOptions {
    fn default() -> Self {
        EstimateOptions {
            boundary: Choice::Auto,
            laplacian: Choice::Auto,
            n_sub: SubSteps::Finite(50),
            process: Choice::Auto,
            stated_process: None,
            process_known: false,
            strides: None,
            noise: NoiseMode::Auto,
            alpha_range: None,
        }
    }
}

/// One decision and its evidence, as printed and recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub what: &'static str,
    pub value: String,
    pub auto: bool,
    pub why: String,
}

/// The operator and loss settings a video's estimate uses.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub process: Process,
    pub spec: OperatorSpec,
    pub strides: Vec<usize>,
    pub noise: NoiseModel,
    /// Kernel mass allowed past the mask of an open window.
    pub tol: f64,
    /// Expected noise share of the frame-to-frame change (NaN where not measured).
    pub noise_share: f64,
    pub decisions: Vec<Decision>,
    pub warnings: Vec<String>,
    /// `|alpha|` of the alternative discretisation when the data could not tell the two
    /// apart (its spread joins the error bar).
    pub ambiguous_alt: Option<(Laplacian, f64)>,
    /// The fit of the chosen operator, when deciding already made it.
    pub fit: Option<FitResult>,
    /// That fit's loss curve (so the spectra are not computed twice).
    pub curve: Option<std::sync::Arc<SafeLossCurve>>,
    /// Corrected loss relative to the change of the other discretisation (diagnostics).
    pub alt_unexplained: Option<(Laplacian, f64)>,
    /// An open window's loss and basin as deciding left them (the fit polishes them).
    pub window: Option<std::sync::Arc<std::sync::Mutex<(WindowLoss, crate::loss::window::Coarse)>>>,
}

impl Prepared {
    /// The SAFE loss deciding built for the chosen operator (of the frames in their stable
    /// order and own units), taken out, when it built one.
    pub fn take_loss(&mut self) -> Option<SafeLoss> {
        if let Some(cell) = self.window.take() {
            let (w, _) = std::sync::Arc::try_unwrap(cell).ok()?.into_inner().ok()?;
            return Some(SafeLoss::Window(Box::new(w)));
        }
        let c = self.curve.take().filter(|_| self.fit.is_some())?;
        Some(SafeLoss::Curve(Box::new(
            std::sync::Arc::try_unwrap(c).unwrap_or_else(|c| (*c).clone()),
        )))
    }

    /// Settings fixed by the caller, nothing decided (training, tests, the paper's protocol).
    pub fn fixed(
        process: Process,
        spec: OperatorSpec,
        strides: Vec<usize>,
        noise: NoiseModel,
    ) -> Prepared {
        Prepared {
            process,
            spec,
            strides,
            noise,
            tol: KERNEL_TAIL,
            noise_share: f64::NAN,
            decisions: Vec::new(),
            warnings: Vec::new(),
            ambiguous_alt: None,
            fit: None,
            curve: None,
            alt_unexplained: None,
            window: None,
        }
    }
}

/// A finished estimate.
#[derive(Clone, Debug)]
pub struct Estimate {
    pub prepared: Prepared,
    pub fit: FitResult,
    /// The error bar reported: the sandwich, widened by an undecidable model choice.
    pub stderr: f64,
    /// Raw SAFE loss over what noise alone would leave (about 1 for a right model).
    pub misfit: f64,
    /// Share of the frame-to-frame change the operator leaves unexplained.
    pub unexplained: f64,
    /// The error bar's share from the noise variance's uncertainty.
    pub noise_term: f64,
    /// The independent weak-form estimate of the signed `alpha` (NaN where it fails).
    pub weak_form: f64,
    pub warnings: Vec<String>,
    /// The SAFE loss the fit minimised (its strides, noise model and masks), for callers
    /// that refine another estimate on exactly the same objective.
    pub loss: Option<FitLoss>,
}

/// The loss a fit minimised, shared (it can be large) and opaque in debug output.
#[derive(Clone)]
pub struct FitLoss(pub std::sync::Arc<SafeLoss>);

impl std::fmt::Debug for FitLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FitLoss(..)")
    }
}

impl Estimate {
    pub fn alpha(&self) -> f64 {
        self.prepared.process.sign() * self.fit.alpha_abs
    }

    /// The decisions, evidence and diagnostics as JSON fields of a result.
    pub fn record(&self) -> Value {
        let p = &self.prepared;
        json!({
            "operator": p.spec.to_string(),
            "boundary": p.spec.boundary.to_string(),
            "laplacian": p.spec.laplacian.to_string(),
            "n_sub": p.spec.n_sub.to_string(),
            "strides": p.strides,
            "decisions": p.decisions.iter().map(|d| json!({
                "what": d.what, "value": d.value, "auto": d.auto, "why": d.why,
            })).collect::<Vec<_>>(),
            "noise_std": p.noise.std(),
            "noise_rho": p.noise.rho_at(1),
            "misfit": finite_or_null(self.misfit),
            "unexplained": finite_or_null(self.unexplained),
            "stderr_sandwich": finite_or_null(self.fit.stderr),
            "stderr_noise_model": finite_or_null(self.noise_term),
            "weak_form_alpha": finite_or_null(self.weak_form),
            "search_range": [self.fit.range.0, self.fit.range.1],
        })
    }
}

fn finite_or_null(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// Stage timings on stderr when `SAFE_PROFILE` is set (where an estimate's time goes).
pub struct Stages {
    t0: std::time::Instant,
    on: bool,
}

impl Stages {
    pub fn start() -> Stages {
        Stages {
            t0: std::time::Instant::now(),
            on: std::env::var_os("SAFE_PROFILE").is_some(),
        }
    }

    pub fn mark(&self, what: &str) {
        if self.on {
            eprintln!(
                "[profile] {what}: {:.1} ms",
                self.t0.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

/// Relative uncertainty of a measured noise variance: the top-band estimate agreed with the
/// camera model's true variance to 0.3-1% on independent camera videos.
pub const NOISE_VAR_UNCERTAINTY: f64 = 0.01;

/// Relative precision the error bar never undercuts (see [`finish`]).
pub const PRECISION_FLOOR: f64 = 1e-5;

/// Disagreement `|ln(fit / weak form)|` beyond which the fit is second-guessed. The weak
/// form assumes the continuum and no noise model; its own error on universal draws of
/// five-point physics or 8-bit videos was at most a few percent where the fit was right.
pub const CROSS_CHECK_LN: f64 = 0.1;

/// Misfit (raw loss over the noise floor) above which a warning names likely causes.
pub const MISFIT_WARN: f64 = 10.0;

/// Misfit below which the measured noise is more than the operator leaves: a right noise
/// model cannot exceed the residual it is part of, so its correction (and the error bar
/// built on it) is not to be trusted.
pub const MISFIT_LOW: f64 = 0.2;
/// A direction is clear when the other explains the change this many times worse.
pub const DIRECTION_RATIO: f64 = 4.0;
/// Edge residual over interior residual above which a periodic or sealed model is rejected.
pub const EDGE_RATIO: f64 = 4.0;
/// Misfit below which a periodic or sealed fit is not second-guessed from its edges.
pub const BOUNDARY_MISFIT: f64 = 10.0;
/// Noise share of the frame-to-frame change above which the loss adds longer strides.
pub const STRIDE_NOISE_SHARE: f64 = 1e-3;
/// Frame-to-frame noise correlation above which the noise is rounding that repeats (8-bit
/// frames measured 0.10-0.28, cameras with shot noise below 0.005) and longer strides stay out.
pub const REPEATING_NOISE_RHO: f64 = 0.05;

/// The frames in the order the operator runs for `process` (mobility reversed).
pub fn canonical<'a, T>(frames: &[&'a [T]], process: Process) -> Vec<&'a [T]> {
    let mut v = frames.to_vec();
    if process.needs_time_reversal() {
        v.reverse();
    }
    v
}

/// A SAFE loss of one latent video: closed form where the operator is diagonal, masked
/// pixels on open windows.
pub enum SafeLoss {
    Curve(Box<SafeLossCurve>),
    Window(Box<WindowLoss>),
}

impl SafeLoss {
    /// Build the loss of `frames` (in the operator's order) for `prep`'s operator.
    pub fn build<T: Copy + Into<f64> + Sync>(
        frames: &[&[T]],
        grid: &Grid,
        dt_save: f64,
        prep: &Prepared,
        scale: f64,
    ) -> SafeLoss {
        let noise = prep.noise.scaled(scale);
        if prep.spec.boundary == Boundary::Open {
            let w = WindowLoss::new(frames, grid, prep.spec, dt_save, &prep.strides)
                .with_noise(noise, prep.tol);
            SafeLoss::Window(Box::new(w))
        } else {
            let v = VideoSpectra::compute(frames, grid, prep.spec.boundary);
            let op = SafeOperator::new(*grid, prep.spec, dt_save);
            SafeLoss::Curve(Box::new(
                SafeLossCurve::new(&v, &op, &prep.strides).with_noise(noise),
            ))
        }
    }

    /// The loss of the frames times `k` (a change of intensity units; an offset does not
    /// change the loss).
    pub fn rescale(&mut self, k: f64) {
        match self {
            SafeLoss::Curve(c) => c.rescale(k),
            SafeLoss::Window(w) => w.rescale(k),
        }
    }

    /// Loss and derivatives on every frame pair.
    pub fn eval(&self, a: f64) -> LossPoint {
        match self {
            SafeLoss::Curve(c) => c.eval(a),
            SafeLoss::Window(w) => w.eval(a, 2),
        }
    }

    /// `d|alpha|/d ln(noise variance)` at the minimum `a` (curvature `d2` there).
    pub fn noise_sensitivity(&self, a: f64, d2: f64) -> f64 {
        match self {
            SafeLoss::Curve(c) => c.noise_sensitivity(a),
            SafeLoss::Window(w) => w.noise_sensitivity(a, d2),
        }
    }

    /// The raw (paper's) loss.
    pub fn raw_loss(&self, a: f64) -> f64 {
        match self {
            SafeLoss::Curve(c) => c.raw_loss(a),
            SafeLoss::Window(w) => w.eval_pairs(a, &w.all_pairs(), 0, false).raw,
        }
    }

    pub fn fit(&mut self, opts: &FitOptions) -> Result<FitResult, FitError> {
        match self {
            SafeLoss::Curve(c) => fit_alpha(c, opts),
            SafeLoss::Window(w) => fit_window(w, opts),
        }
    }

    pub fn stderr(&self, a: f64) -> f64 {
        match self {
            SafeLoss::Curve(c) => c.stderr(a),
            SafeLoss::Window(w) => w.stderr_at(a).0,
        }
    }
}

/// Decide everything `opts` left open for `frames` (recorded time order).
pub fn prepare<T: Copy + Into<f64> + Sync>(
    frames: &[&[T]],
    grid: &Grid,
    dt_save: f64,
    opts: &EstimateOptions,
) -> Result<Prepared, String> {
    if frames.len() < 2 {
        return Err(FitError::TooFewFrames(frames.len()).to_string());
    }
    let stages = Stages::start();
    let change_per_pair = mean_square_change(frames);
    if change_per_pair <= 0.0 {
        return Err("the video does not change between frames: alpha is unidentifiable".into());
    }
    let mut decisions = Vec::new();
    let mut warnings = Vec::new();
    // Boundary candidate from the edges; confirmed by the residual below.
    let edges = EdgeStats::of(frames, grid);
    let (mut boundary, boundary_why) = match opts.boundary {
        Choice::Fixed(b) => (b, "given".to_string()),
        Choice::Auto => {
            let why = format!(
                "seam/inner difference {:.2}, {:.2}; wall/inner {:.2}, {:.2}",
                edges.seam.0, edges.seam.1, edges.wall.0, edges.wall.1
            );
            if edges.looks_periodic() {
                (Boundary::Periodic, format!("wraps smoothly ({why})"))
            } else if edges.looks_sealed() {
                (
                    Boundary::ZeroFlux,
                    format!("no gradient at the walls ({why})"),
                )
            } else {
                (
                    Boundary::Open,
                    format!("neither wraps nor is sealed ({why})"),
                )
            }
        }
    };
    // Spectra in the boundary's basis (cosine for open windows: noise and direction proxy).
    let basis_boundary = if boundary == Boundary::Periodic {
        Boundary::Periodic
    } else {
        Boundary::ZeroFlux
    };
    stages.mark("edges");
    let fwd = VideoSpectra::compute(frames, grid, basis_boundary);
    stages.mark("spectra");
    let lags = [1usize, 2, 4, 8, 16];
    let noise = opts.noise.model(&fwd, 1.0, &lags);
    // Strides: the paper's pairs unless noise is a visible share of the change.
    let share = if change_per_pair > 0.0 {
        2.0 * noise.var * (1.0 - noise.rho_at(1)) / change_per_pair
    } else {
        0.0
    };
    let tol = if boundary == Boundary::Open {
        KERNEL_TAIL.max(1e-3 * share.sqrt())
    } else {
        KERNEL_TAIL
    };
    let rho1 = noise.rho_at(1);
    let (mut strides, strides_why) = match &opts.strides {
        Some(s) => (s.clone(), "given".to_string()),
        // Rounding error repeats between frames where the field moves less than a grey
        // level, so its correlation follows the field's speed, not one number per lag; the
        // correction of longer strides then biases |alpha| (measured on independent 8-bit
        // videos: mean error +0.7 stderr with strides 1-8, -0.05 with stride 1).
        None if share > STRIDE_NOISE_SHARE && rho1 > REPEATING_NOISE_RHO => (
            vec![1],
            format!(
                "noise is {share:.1e} of the frame-to-frame change, but it repeats between frames (correlation {rho1:.2}: rounding of slowly moving values), so only stride 1 is corrected reliably"
            ),
        ),
        None if share > STRIDE_NOISE_SHARE => (
            // Stride 16 joined 1-8 after 40 independent camera videos: MAE 3.9e-4 -> 3.6e-4,
            // coverage of two error bars 88% -> 98%.
            [1usize, 2, 4, 8, 16]
                .into_iter()
                .filter(|&h| 3 * h < frames.len())
                .collect(),
            format!("noise is {:.1e} of the frame-to-frame change", share),
        ),
        None => (
            vec![1],
            format!("noise is {:.1e} of the frame-to-frame change", share),
        ),
    };
    if strides.is_empty() {
        strides = vec![1];
    }
    let range_of = |op: &SafeOperator, noisy: bool| {
        crate::loss::fit::check_range(
            opts.alpha_range,
            crate::loss::fit::default_range(dt_save, op.lambda_max(), op.spec.n_sub, noisy),
        )
    };
    // Candidate discretisations.
    let lap_candidates: Vec<Laplacian> = match opts.laplacian {
        Choice::Fixed(l) => vec![l],
        Choice::Auto => vec![Laplacian::FivePoint, Laplacian::Continuum],
    };
    // Direction: the closed-form curve in both directions (on open windows, of the mirrored
    // window: the boundary error is alike both ways, the wrong direction is not).
    let proxy_spec = |l| OperatorSpec {
        boundary: basis_boundary,
        laplacian: l,
        n_sub: opts.n_sub,
    };
    let op0 = SafeOperator::new(*grid, proxy_spec(lap_candidates[0]), dt_save);
    let curve_fwd = SafeLossCurve::new(&fwd, &op0, &strides).with_noise(noise.clone());
    let curve_rev = curve_fwd.reversed();
    // (unexplained share at the optimum, optimum at the lower edge of the range, where)
    let rel = |c: &SafeLossCurve| -> (f64, bool, f64) {
        let range = match range_of(&op0, c.noise_active()) {
            Ok(r) => r,
            Err(_) => return (f64::NAN, false, f64::NAN),
        };
        // A log scan (two points a decade) is evidence enough: the wrong direction's best
        // is the identity at the lower edge, all change unexplained.
        let npts = ((range.1 / range.0).log10() * 2.0).ceil() as usize + 1;
        let scan: Vec<(f64, f64)> = (0..npts)
            .into_par_iter()
            .map(|i| {
                let a = range.0 * (range.1 / range.0).powf(i as f64 / (npts - 1) as f64);
                (a, c.loss_at(a))
            })
            .collect();
        let best = scan
            .iter()
            .enumerate()
            .filter(|(_, x)| x.1.is_finite())
            .min_by(|x, y| x.1.1.total_cmp(&y.1.1));
        match best {
            Some((i, &(a, l))) => {
                let ch = c.change_energy();
                let u = if ch > 0.0 { l.max(0.0) / ch } else { f64::NAN };
                (u, i == 0, a)
            }
            None => (f64::NAN, false, f64::NAN),
        }
    };
    stages.mark("curve");
    let ((rf, lo_f, af), (rr, lo_r, ar)) = (rel(&curve_fwd), rel(&curve_rev));
    stages.mark("direction");
    // Smoothing a sharper frame cannot produce the earlier one: the wrong direction's best
    // operator is the identity (optimum at the range's lower edge, all change unexplained).
    let rejected = |u: f64, at_lo: bool| at_lo || u > 0.98;
    let supported = |u: f64, at_lo: bool| !at_lo && u < 0.9;
    let data_dir = if !(rf.is_finite() && rr.is_finite()) {
        None
    } else if supported(rf, lo_f) && rejected(rr, lo_r) || rr > DIRECTION_RATIO * rf.max(1e-300) {
        Some(Process::Diffusion)
    } else if supported(rr, lo_r) && rejected(rf, lo_f) || rf > DIRECTION_RATIO * rr.max(1e-300) {
        Some(Process::Mobility)
    } else {
        None
    };
    let evidence = format!(
        "unexplained share of the change: {:.2e} smoothing forward in time, {:.2e} backward",
        rf, rr
    );
    let process = match (opts.process, data_dir) {
        (Choice::Fixed(p), Some(d)) if p != d && !opts.process_known => {
            return Err(format!(
                "--process {p} contradicts the data: the video {} over time ({evidence}); a SAFE fit in the {p} direction would sit at a bound. Use --process {d} or auto",
                if d == Process::Diffusion {
                    "smooths"
                } else {
                    "sharpens"
                },
            ));
        }
        (Choice::Fixed(p), _) => {
            decisions.push(Decision {
                what: "process",
                value: p.to_string(),
                auto: false,
                why: format!("given; {evidence}"),
            });
            p
        }
        (Choice::Auto, Some(d)) => {
            if let Some(s) = opts.stated_process
                && s != d
            {
                warnings.push(format!(
                    "the metadata says '{s}' but the video {} over time ({evidence}); using {d}. If the frames are in the wrong order or the label is wrong, fix it; --process {s} forces it",
                    if d == Process::Diffusion { "smooths" } else { "sharpens" },
                ));
            }
            decisions.push(Decision {
                what: "process",
                value: d.to_string(),
                auto: true,
                why: evidence.clone(),
            });
            d
        }
        (Choice::Auto, None) => match opts.stated_process {
            Some(s) => {
                warnings.push(format!(
                    "the direction of the process cannot be told from the data ({evidence}); using '{s}' from the metadata"
                ));
                decisions.push(Decision {
                    what: "process",
                    value: s.to_string(),
                    auto: false,
                    why: format!("metadata; data undecided: {evidence}"),
                });
                s
            }
            None => {
                return Err(format!(
                    "cannot tell from the data whether this video smooths (diffusion) or sharpens (mobility) ({evidence}); give --process"
                ));
            }
        },
    };
    let curve_dir = if process == Process::Diffusion {
        curve_fwd
    } else {
        curve_rev
    };
    // Where the (mirrored, whole-frame) curve has its minimum: on an open window within a
    // factor of a few of the answer, a hint for the masked fit's scan.
    let proxy_a = if process == Process::Diffusion {
        af
    } else {
        ar
    };
    let canon = canonical(frames, process);
    // Discretisation (and the boundary's confirmation) from fits in the chosen direction.
    let mut ambiguous_alt = None;
    let mut cached = None;
    let mut cached_curve = None;
    let mut alt_unexplained = None;
    let laplacian;
    if boundary != Boundary::Open {
        let spec_of = |l| OperatorSpec {
            boundary,
            laplacian: l,
            n_sub: opts.n_sub,
        };
        let mut curves = Vec::new();
        let fits: Vec<(Laplacian, Result<FitResult, FitError>)> = lap_candidates
            .iter()
            .map(|&l| {
                let op = SafeOperator::new(*grid, spec_of(l), dt_save);
                let c = curve_dir.with_operator(&op);
                let r = fit_alpha(
                    &c,
                    &FitOptions {
                        alpha_range: opts.alpha_range,
                        ..Default::default()
                    },
                );
                curves.push((l, c));
                (l, r)
            })
            .collect();
        let n_eff = (grid.len() * canon.len().saturating_sub(1)).max(1) as f64;
        let (best, why, alt) = pick_by_loss(&fits, n_eff);
        laplacian = best;
        ambiguous_alt = alt;
        cached = fits
            .iter()
            .find(|f| f.0 == best)
            .and_then(|f| f.1.clone().ok());
        cached_curve = curves
            .into_iter()
            .find(|c| c.0 == best)
            .map(|c| std::sync::Arc::new(c.1));
        alt_unexplained = fits.iter().find(|f| f.0 != best).and_then(|f| {
            f.1.as_ref()
                .ok()
                .map(|r| (f.0, r.corrected_loss / r.change_energy))
        });
        if opts.laplacian == Choice::Auto {
            decisions.push(Decision {
                what: "laplacian",
                value: laplacian.to_string(),
                auto: true,
                why,
            });
        }
        // Confirm a periodic or sealed boundary: its residual must not pile up at the edges.
        if opts.boundary == Choice::Auto
            && let Some((_, Ok(r))) = fits.iter().find(|f| f.0 == laplacian)
        {
            let reversed;
            let spectra = if process == Process::Diffusion {
                &fwd
            } else {
                reversed = VideoSpectra::compute(&canon, grid, basis_boundary);
                &reversed
            };
            let op = SafeOperator::new(*grid, spec_of(laplacian), dt_save);
            let open = SafeOperator::new(
                *grid,
                OperatorSpec {
                    boundary: Boundary::Open,
                    ..spec_of(laplacian)
                },
                dt_save,
            );
            let (mx, my) = open.margins(r.alpha_abs, 1, KERNEL_TAIL);
            let ratio = edge_residual_ratio(spectra, &op, r.alpha_abs, mx.max(my).max(2), 6);
            // A model that explains the video down to its noise has no boundary error worth
            // the name; where the residual is rounding, its edge/inner ratio is noise.
            let explained = misfit_of(r) < BOUNDARY_MISFIT;
            if ratio > EDGE_RATIO && !explained {
                decisions.push(Decision {
                    what: "boundary",
                    value: Boundary::Open.to_string(),
                    auto: true,
                    why: format!("{boundary_why}, but a {boundary} model leaves {ratio:.1}x more residual along the edges than inside"),
                });
                boundary = Boundary::Open;
                cached = None;
                cached_curve = None;
            } else {
                decisions.push(Decision {
                    what: "boundary",
                    value: boundary.to_string(),
                    auto: true,
                    why: if explained && ratio > EDGE_RATIO {
                        format!(
                            "{boundary_why}; the residual is at the noise floor (misfit {:.2}), so its edge/inner ratio {ratio:.2} is noise",
                            misfit_of(r)
                        )
                    } else {
                        format!("{boundary_why}; edge/inner residual {ratio:.2}")
                    },
                });
            }
        } else if opts.boundary != Choice::Auto {
            decisions.push(Decision {
                what: "boundary",
                value: boundary.to_string(),
                auto: false,
                why: boundary_why.clone(),
            });
        }
    } else {
        decisions.push(Decision {
            what: "boundary",
            value: boundary.to_string(),
            auto: opts.boundary == Choice::Auto,
            why: boundary_why.clone(),
        });
        laplacian = Laplacian::Continuum; // decided below
    }
    let mut prep = Prepared {
        process,
        spec: OperatorSpec {
            boundary,
            laplacian,
            n_sub: opts.n_sub,
        },
        strides: strides.clone(),
        noise,
        tol,
        noise_share: share,
        decisions,
        warnings,
        ambiguous_alt,
        curve: cached_curve.filter(|_| cached.is_some()),
        fit: cached,
        alt_unexplained,
        window: None,
    };
    if boundary == Boundary::Open {
        // Discretisation on open windows: the basins of both on a few frame pairs decide
        // (clean data decide decisively; under noise the continuum stays unless beaten).
        // The cosine coefficients computed above serve both: no transform is repeated.
        let raw: Vec<&[crate::fft2::C64]> = {
            let mut v: Vec<&[crate::fft2::C64]> = (0..fwd.n_frames).map(|t| fwd.frame(t)).collect();
            if process.needs_time_reversal() {
                v.reverse();
            }
            v
        };
        let mut scored = Vec::new();
        let mut kept = Vec::new();
        let mut hint = Some((proxy_a, 8.0));
        // Under noise a few frame pairs cannot tell the stencils apart on a window, and an
        // open window of five-point physics is a simulation (clean): keep the continuum.
        let noisy = share > STRIDE_NOISE_SHARE;
        let candidates: Vec<Laplacian> = if noisy && opts.laplacian == Choice::Auto {
            vec![Laplacian::Continuum]
        } else {
            // The continuum first: where it leaves less than the noise alone would, no
            // stencil can explain the video better and the five-point fit is skipped.
            let mut c = lap_candidates.clone();
            c.sort_by_key(|&l| l != Laplacian::Continuum);
            c
        };
        let mut below_floor = None;
        for &l in &candidates {
            if below_floor.is_some() {
                break;
            }
            let spec = OperatorSpec {
                boundary,
                laplacian: l,
                n_sub: opts.n_sub,
            };
            let mut w = WindowLoss::from_spectra(&canon, &raw, grid, spec, dt_save, &prep.strides)
                .with_noise(prep.noise.clone(), prep.tol);
            stages.mark("window loss");
            let c = coarse_fit(
                &mut w,
                &FitOptions {
                    alpha_range: opts.alpha_range,
                    ..Default::default()
                },
                hint,
            );
            stages.mark("coarse fit");
            // The other discretisation's minimum lies within a few percent of this one's.
            if let Ok(c) = &c {
                hint = Some((c.a0, 1.5));
            }
            if let Ok(c) = &c
                && l == Laplacian::Continuum
                && candidates.len() > 1
                && misfit_of(&c.fit) < 1.0
            {
                below_floor = Some(misfit_of(&c.fit));
            }
            scored.push((l, c.as_ref().map(|c| c.fit.clone()).map_err(|e| e.clone())));
            kept.push((l, w, c.ok()));
        }
        let (best, why, alt) = pick_by_loss(&scored, 0.0);
        prep.spec.laplacian = best;
        prep.ambiguous_alt = alt;
        prep.alt_unexplained = scored.iter().find(|f| f.0 != best).and_then(|f| {
            f.1.as_ref()
                .ok()
                .map(|r| (f.0, r.corrected_loss / r.change_energy))
        });
        if lap_candidates.len() > 1 {
            let why = if candidates.len() == 1 {
                format!(
                    "noise is {share:.1e} of the frame-to-frame change: on an open window it hides the stencil's difference; continuum is the physics of a real sample"
                )
            } else if let Some(m) = below_floor {
                format!(
                    "the continuum leaves {m:.2} of what the noise alone would (misfit < 1): no stencil can explain the video better, so five-point was not fitted"
                )
            } else {
                why
            };
            prep.decisions.push(Decision {
                what: "laplacian",
                value: best.to_string(),
                auto: true,
                why,
            });
        }
        if let Some((_, w, Some(c))) = kept.into_iter().find(|k| k.0 == best) {
            prep.window = Some(std::sync::Arc::new(std::sync::Mutex::new((w, c))));
        }
    }
    stages.mark("decisions");
    prep.decisions.push(Decision {
        what: "strides",
        value: format!("{:?}", prep.strides),
        auto: opts.strides.is_none(),
        why: strides_why,
    });
    Ok(prep)
}

/// Mean over frame pairs of the mean square frame-to-frame change (pairs in parallel, their
/// means summed in order: the result does not depend on the thread count).
fn mean_square_change<T: Copy + Into<f64> + Sync>(frames: &[&[T]]) -> f64 {
    let pairs = frames.len().saturating_sub(1);
    if pairs == 0 {
        return 0.0;
    }
    let n = frames[0].len() as f64;
    let per_pair: Vec<f64> = frames
        .par_windows(2)
        .map(|w| sum_sq_of(w[0], w[1], |x, y| y - x) / n)
        .collect();
    per_pair.iter().sum::<f64>() / pairs as f64
}

/// `sum term(a_i, b_i)^2` in eight running sums (one running sum is a chain of dependent
/// adds that cannot vectorise).
fn sum_sq_of<T: Copy + Into<f64>>(a: &[T], b: &[T], term: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| term(x.into(), y.into()).powi(2))
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let d = term(x[k].into(), y[k].into());
            acc[k] += d * d;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Raw loss over the noise floor of a fit (infinite when there is no measurable noise).
pub fn misfit_of(r: &FitResult) -> f64 {
    if r.noise_floor > 0.0 {
        r.safe_loss / r.noise_floor
    } else if r.safe_loss > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// The discretisation: the continuum (the physics of a real sample) unless the five-point
/// stencil explains the video better by more than the scatter of the misfit (raw loss over
/// what the noise explains); on noise-free data, the lower loss. Misfits, not corrected
/// losses, are compared on noisy data: the corrected losses differ mostly by how well each
/// correction guessed the noise.
fn pick_by_loss(
    fits: &[(Laplacian, Result<FitResult, FitError>)],
    _n_eff: f64,
) -> (Laplacian, String, Option<(Laplacian, f64)>) {
    let ok: Vec<(Laplacian, &FitResult)> = fits
        .iter()
        .filter_map(|(l, r)| r.as_ref().ok().filter(|r| !r.at_bound).map(|r| (*l, r)))
        .collect();
    let find = |l| ok.iter().find(|x| x.0 == l).map(|x| x.1);
    match (find(Laplacian::Continuum), find(Laplacian::FivePoint)) {
        (None, None) => (
            fits[0].0,
            "no discretisation fitted inside the search range".into(),
            None,
        ),
        (Some(_), None) => (
            Laplacian::Continuum,
            "the only one that fitted (continuum)".into(),
            None,
        ),
        (None, Some(_)) => (
            Laplacian::FivePoint,
            "the only one that fitted (five-point)".into(),
            None,
        ),
        (Some(c), Some(f)) => {
            let (mc, mf) = (misfit_of(c), misfit_of(f));
            // The misfit's statistical scatter (chi-square of n_eff samples).
            let s = 3.0 * (2.0 / c.n_eff.min(f.n_eff).max(1.0)).sqrt();
            let why = format!(
                "raw SAFE loss over the noise floor {mc:.4e} (continuum) vs {mf:.4e} (five-point), scatter {s:.1e}; corrected loss {:.3e} vs {:.3e}",
                c.corrected_loss, f.corrected_loss
            );
            let noiseless = !(mc.is_finite() && mf.is_finite()) || mc.min(mf) > 1e3;
            let five = if noiseless {
                f.corrected_loss < c.corrected_loss
            } else {
                mc - mf > s
            };
            if five {
                (Laplacian::FivePoint, why, None)
            } else if !noiseless && (mc - mf).abs() <= s {
                (
                    Laplacian::Continuum,
                    format!("{why}: both explain the video to its noise; continuum is the default"),
                    None,
                )
            } else {
                (Laplacian::Continuum, why, None)
            }
        }
    }
}

/// Estimate `|alpha|` (and the process's direction) of one video given in recorded time
/// order. An estimate at the edge of the search range is an error, never a number.
pub fn estimate<T: Copy + Into<f64> + Sync>(
    frames: &[&[T]],
    grid: &Grid,
    dt_save: f64,
    opts: &EstimateOptions,
) -> Result<Estimate, String> {
    let stages = Stages::start();
    // The weak form's second opinion needs only the frames: it runs beside the decisions,
    // filling the cores where those are serial.
    let (prep, weak) = rayon::join(
        || prepare(frames, grid, dt_save, opts),
        || weak_form_of(frames, grid, dt_save),
    );
    let prep = prep?;
    stages.mark("prepare");
    let e = estimate_prepared(frames, grid, dt_save, opts, prep, Some(weak), &stages)?;
    Ok(without_implausible_noise(frames, grid, dt_save, opts, e))
}

/// A noise estimate larger than the residual it is part of is not noise (grid-scale
/// structure the video does not smooth away, or rounding that repeats between frames), and
/// its correction moves the minimum: refit without it and let the error bar reach the
/// corrected fit. Measured on a clean drawn video (seed 4242 #52: sharp grains,
/// von Neumann number 0.02 per frame): corrected 1.3e-4 off at 10 error bars, uncorrected
/// 1e-8.
fn without_implausible_noise<T: Copy + Into<f64> + Sync>(
    frames: &[&[T]],
    grid: &Grid,
    dt_save: f64,
    opts: &EstimateOptions,
    e: Estimate,
) -> Estimate {
    // Only where the correction is a visible share of the change: on clean videos the
    // "noise" is float rounding, a misfit below 1 is common and the correction moves nothing.
    let noise = &e.prepared.noise;
    let share = e.prepared.noise_share;
    if opts.noise != NoiseMode::Auto
        || e.misfit >= MISFIT_LOW
        || noise.var <= 0.0
        || share.is_nan()
        || share <= STRIDE_NOISE_SHARE
    {
        return e;
    }
    let p = &e.prepared;
    // The direction stands; boundary, stencil and strides are decided again, since the
    // wrong noise model also weighed on them.
    let off = EstimateOptions {
        process: Choice::Fixed(p.process),
        process_known: true,
        noise: NoiseMode::Off,
        ..opts.clone()
    };
    let Ok(mut o) = prepare(frames, grid, dt_save, &off).and_then(|q| {
        estimate_prepared(
            frames,
            grid,
            dt_save,
            &off,
            q,
            Some(e.weak_form),
            &Stages::start(),
        )
    }) else {
        return e;
    };
    let gap = (o.fit.alpha_abs - e.fit.alpha_abs).abs();
    o.stderr = o.stderr.max(gap);
    o.prepared.decisions.push(Decision {
        what: "noise",
        value: "off".into(),
        auto: true,
        why: format!(
            "the measured noise (std {:.2e}) would leave {:.1e}x more loss than the operator leaves: it is structure the video does not smooth away, not noise; the corrected fit gave |alpha| {:.6e}, and the error bar reaches it",
            p.noise.std(),
            1.0 / e.misfit.max(1e-300),
            e.fit.alpha_abs
        ),
    });
    // The first fit's judgements of its own value no longer apply; its preparation's do.
    let mut warnings = e.prepared.warnings.clone();
    warnings.push(format!(
        "the SAFE loss is {:.1e} of what the measured noise alone would leave: the noise estimate is too high (structure at the grid scale that the video does not smooth away, or noise correlated between frames), so the fit was redone without the noise correction ({:.6e} -> {:.6e}) and the error bar covers both; if the video is noisy, neither may be right",
        e.misfit,
        e.fit.alpha_abs,
        o.fit.alpha_abs
    ));
    for w in o.warnings.drain(..) {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    o.warnings = warnings;
    o
}

/// The fit and its judgement once `prepare` has decided the operator and direction (for
/// callers that need the decisions first, such as the trained model's inference).
pub fn fit_prepared<T: Copy + Into<f64> + Sync>(
    frames: &[&[T]],
    grid: &Grid,
    dt_save: f64,
    opts: &EstimateOptions,
    prep: Prepared,
) -> Result<Estimate, String> {
    estimate_prepared(frames, grid, dt_save, opts, prep, None, &Stages::start())
}

fn estimate_prepared<T: Copy + Into<f64> + Sync>(
    frames: &[&[T]],
    grid: &Grid,
    dt_save: f64,
    opts: &EstimateOptions,
    mut prep: Prepared,
    weak_form: Option<f64>,
    stages: &Stages,
) -> Result<Estimate, String> {
    // An open window decided on its basin already: polish that loss.
    if let Some(cell) = prep.window.take()
        && let Ok(m) = std::sync::Arc::try_unwrap(cell)
        && let Ok((mut w, c)) = m.into_inner()
    {
        let fit = crate::loss::window::polish_fit(&mut w, &c);
        stages.mark("polish");
        prep.strides = w.strides.clone();
        let loss = SafeLoss::Window(Box::new(w));
        let e = finish(frames, grid, dt_save, opts, prep, &loss, fit, weak_form);
        stages.mark("finish");
        return e.map(|e| Estimate {
            loss: Some(FitLoss(std::sync::Arc::new(loss))),
            ..e
        });
    }
    let canon = canonical(frames, prep.process);
    let mut loss = match prep.curve.take() {
        Some(c) if prep.fit.is_some() => SafeLoss::Curve(Box::new(
            std::sync::Arc::try_unwrap(c).unwrap_or_else(|c| (*c).clone()),
        )),
        _ => SafeLoss::build(&canon, grid, dt_save, &prep, 1.0),
    };
    stages.mark("loss");
    let fit = match prep.fit.clone() {
        Some(f) => f,
        None => loss
            .fit(&FitOptions {
                alpha_range: opts.alpha_range,
                ..Default::default()
            })
            .map_err(|e| e.to_string())?,
    };
    stages.mark("fit");
    let e = finish(frames, grid, dt_save, opts, prep, &loss, fit, weak_form);
    stages.mark("finish");
    e.map(|e| Estimate {
        loss: Some(FitLoss(std::sync::Arc::new(loss))),
        ..e
    })
}

/// Judge a fit: bounds, misfit against the noise floor and its likely causes, the error bar.
/// `weak_form` is the second opinion when already computed.
#[allow(clippy::too_many_arguments)]
pub fn finish<T: Copy + Into<f64> + Sync>(
    frames: &[&[T]],
    grid: &Grid,
    dt_save: f64,
    opts: &EstimateOptions,
    prep: Prepared,
    loss: &SafeLoss,
    fit: FitResult,
    weak_form: Option<f64>,
) -> Result<Estimate, String> {
    if fit.at_bound {
        return Err(format!(
            "the SAFE loss is smallest at the edge of the search range (|alpha| = {:.3e}, range [{:.3e}, {:.3e}]): that is not an estimate. Likely causes: the wrong direction (--process), a frame interval or grid spacing off by orders of magnitude, or a video that does not change",
            fit.alpha_abs, fit.range.0, fit.range.1
        ));
    }
    let mut warnings = prep.warnings.clone();
    let misfit = if fit.noise_floor > 0.0 {
        fit.safe_loss / fit.noise_floor
    } else if fit.safe_loss > 0.0 {
        f64::INFINITY
    } else {
        1.0
    };
    let unexplained = if fit.change_energy > 0.0 {
        fit.corrected_loss.max(0.0) / fit.change_energy
    } else {
        f64::NAN
    };
    // Numbers below float rounding of the frames' own values are no misfit.
    let floor_rounding = rounding_floor(frames);
    if misfit > MISFIT_WARN && fit.safe_loss > 100.0 * floor_rounding {
        let causes = diagnose(frames, grid, dt_save, opts, &prep, loss, &fit);
        warnings.push(format!(
            "the {} operator leaves {:.1e} of the frame-to-frame change unexplained, {:.0}x what the measured noise would: the estimate may be biased. Likely causes: {}",
            prep.spec,
            unexplained,
            misfit.min(1e12),
            causes.join("; ")
        ));
    }
    if misfit < MISFIT_LOW && fit.safe_loss > 100.0 * floor_rounding {
        warnings.push(format!(
            "the SAFE loss is {misfit:.1e} of what the measured noise alone would leave: the noise estimate is too high (structure at the grid scale that the video does not smooth away, or noise correlated between frames), so the noise correction, this estimate and its error bar cannot be trusted; compare with --noise 0, or use a video with more change between frames"
        ));
    }
    // The sandwich sees noise and misfit that varies between scales or places; below it
    // lie the numerical approximations (float32 frames, the kernel mass beyond an open
    // window's mask, quadrature), worst measured 4.5e-6 of |alpha| on independent clean
    // videos: the error bar never claims more than PRECISION_FLOOR.
    let mut stderr = fit.stderr.hypot(PRECISION_FLOOR * fit.alpha_abs);
    // The noise correction subtracts a measured variance; on noise-dominated videos the
    // minimum moves with it. Its uncertainty (NOISE_VAR_UNCERTAINTY, relative) joins the
    // error bar through the measured sensitivity.
    let sens = loss.noise_sensitivity(fit.alpha_abs, fit.curvature);
    let noise_term = if sens.is_finite() {
        (sens * NOISE_VAR_UNCERTAINTY).abs()
    } else {
        0.0
    };
    stderr = stderr.hypot(noise_term);
    if let Some((l, a_alt)) = prep.ambiguous_alt {
        let d = 0.5 * (a_alt - fit.alpha_abs);
        stderr = (stderr * stderr + d * d).sqrt();
        warnings.push(format!(
            "the data do not tell the {} and {} Laplacians apart; the error bar includes half their difference (|alpha| {:.6} vs {:.6})",
            prep.spec.laplacian, l, fit.alpha_abs, a_alt
        ));
    }
    // A second opinion that shares none of the fit's assumptions about boundary, noise or
    // frame pairs: where the two disagree far beyond the error bar, one of them is wrong
    // and the software cannot tell which, so the bar covers both.
    let weak_form = weak_form.unwrap_or_else(|| weak_form_of(frames, grid, dt_save));
    let signed = prep.process.sign() * fit.alpha_abs;
    let gap = (weak_form - signed).abs();
    if weak_form * signed > 0.0
        && (signed / weak_form).ln().abs() > CROSS_CHECK_LN
        && gap > 2.0 * stderr
    {
        stderr = stderr.max(gap);
        warnings.push(format!(
            "an independent weak-form estimate (smooth test functions inside the video: no boundary, noise model or frame pairs assumed) gives alpha = {weak_form:.4e}, {:.0}% from this fit and far outside its error bar, which now reaches it. Likely causes: noise mistaken for structure or structure for noise, a wrong boundary, too few frames, an intensity curve (--gamma), or physics other than diffusion; the weak form in turn is biased where decay between frames is fast",
            100.0 * gap / weak_form.abs()
        ));
    }
    Ok(Estimate {
        prepared: prep,
        fit,
        stderr,
        misfit,
        unexplained,
        noise_term,
        weak_form,
        warnings,
        loss: None,
    })
}

/// The weak form's `alpha` with its default test functions (NaN where it has none): the
/// second opinion [`finish`] takes.
pub fn weak_form_of<T: Copy + Into<f64> + Sync>(frames: &[&[T]], grid: &Grid, dt_save: f64) -> f64 {
    crate::weak_form::weak_form_alpha(
        frames,
        grid.nx,
        grid.ny,
        grid.dx,
        grid.dy,
        dt_save,
        &crate::weak_form::WeakForm::default(),
    )
    .unwrap_or(f64::NAN)
}

/// Mean square float32 rounding of the frames (the loss floor of noise-free stored data).
fn rounding_floor<T: Copy + Into<f64> + Sync>(frames: &[&[T]]) -> f64 {
    let n: usize = frames.iter().map(|f| f.len()).sum();
    let per_frame: Vec<f64> = frames
        .par_iter()
        .map(|f| sum_sq_of(f, f, |x, _| x))
        .collect();
    let ms = per_frame.iter().sum::<f64>() / n.max(1) as f64;
    ms * (f32::EPSILON as f64).powi(2)
}

/// Name what most likely makes the operator explain the video badly, each with its evidence.
fn diagnose<T: Copy + Into<f64> + Sync>(
    frames: &[&[T]],
    grid: &Grid,
    dt_save: f64,
    opts: &EstimateOptions,
    prep: &Prepared,
    loss: &SafeLoss,
    fit: &FitResult,
) -> Vec<String> {
    let mut causes = Vec::new();
    let rel = fit.corrected_loss / fit.change_energy;
    let canon = canonical(frames, prep.process);
    let fopts = FitOptions {
        alpha_range: opts.alpha_range,
        ..Default::default()
    };
    let better = |r: &FitResult| {
        let x = r.corrected_loss / r.change_energy;
        (x < 0.1 * rel, rel / x.max(1e-300))
    };
    if let Some((l, x)) = prep.alt_unexplained
        && x < 0.1 * rel
    {
        causes.push(format!(
            "discretisation (--laplacian {l} explains the change {:.0}x better)",
            rel / x.max(1e-300)
        ));
    }
    if let SafeLoss::Curve(c) = loss {
        // Boundary: residual piling up along the edges.
        let v = VideoSpectra::compute(&canon, grid, prep.spec.boundary);
        let op = SafeOperator::new(*grid, prep.spec, dt_save);
        let ratio = edge_residual_ratio(&v, &op, fit.alpha_abs, 4, 6);
        if ratio > EDGE_RATIO {
            causes.push(format!(
                "boundary (the residual is {ratio:.0}x larger along the edges than inside: try --boundary open)"
            ));
        }
        // Sub-steps: the other kind of time integration.
        let other_n = match prep.spec.n_sub {
            SubSteps::Infinite => SubSteps::Finite(50),
            SubSteps::Finite(_) => SubSteps::Infinite,
        };
        let alt = c.with_operator(&SafeOperator::new(
            *grid,
            OperatorSpec {
                n_sub: other_n,
                ..prep.spec
            },
            dt_save,
        ));
        if let Ok(r) = fit_alpha(&alt, &fopts)
            && better(&r).0
        {
            causes.push(format!(
                "sub-steps (--n-sub {other_n} explains the change {:.0}x better)",
                better(&r).1
            ));
        }
        // Grid spacing: refit with dy/dx scaled (a typo such as 4 for 0.4 shows here).
        let misfit_at = |log_f: f64| -> f64 {
            let g2 = Grid {
                dy: grid.dy * 10f64.powf(log_f),
                ..*grid
            };
            let alt = c.with_operator(&SafeOperator::new(g2, prep.spec, dt_save));
            match fit_alpha(&alt, &fopts) {
                Ok(r) if !r.at_bound => r.corrected_loss / r.change_energy,
                _ => f64::INFINITY,
            }
        };
        // Quarter decades out to 100x either way, then a golden-section polish so the
        // suggested ratio is the one the data support, not the nearest grid point.
        let mut best = (rel, 0.0);
        for k in (-8..=8).filter(|&k| k != 0) {
            let x = misfit_at(k as f64 / 4.0);
            if x < best.0 {
                best = (x, k as f64 / 4.0);
            }
        }
        if best.1 != 0.0 {
            let phi = 0.5 * (5f64.sqrt() - 1.0);
            let (mut a, mut b) = (best.1 - 0.25, best.1 + 0.25);
            for _ in 0..14 {
                let (u, w) = (b - phi * (b - a), a + phi * (b - a));
                if misfit_at(u) < misfit_at(w) {
                    b = w;
                } else {
                    a = u;
                }
            }
            let m = 0.5 * (a + b);
            let x = misfit_at(m);
            if x < best.0 {
                best = (x, m);
            }
        }
        let best = (best.0, 10f64.powf(best.1));
        if best.0 < 0.1 * rel {
            causes.push(format!(
                "grid spacing (the change is explained {:.0}x better with dy/dx = {:.3} instead of {:.3}: check dx and dy)",
                rel / best.0.max(1e-300),
                grid.dy * best.1 / grid.dx,
                grid.dy / grid.dx
            ));
        }
        // Frame step: a few frame pairs much worse than the rest.
        let m: Vec<f64> = op
            .mu
            .iter()
            .map(|&mu| op.multiplier(mu, fit.alpha_abs, 1).0)
            .collect();
        let pairs = v.pair_losses(&m);
        if let Some(w) = worst_pairs(&pairs) {
            causes.push(w);
        }
    } else if let SafeLoss::Window(w) = loss
        && let Some(msg) = worst_pairs(&w.pair_losses(fit.alpha_abs))
    {
        causes.push(msg);
    }
    causes.push("a non-linear camera intensity curve (try --gamma auto)".into());
    causes.push(
        "physics beyond the heat equation (reaction, advection, a varying coefficient)".into(),
    );
    causes
}

/// Frame pairs whose loss is far above the median (dropped or duplicated frames).
fn worst_pairs(losses: &[f64]) -> Option<String> {
    if losses.len() < 5 {
        return None;
    }
    let mut s = losses.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let med = s[s.len() / 2];
    let bad: Vec<usize> = (0..losses.len())
        .filter(|&t| losses[t] > 20.0 * med.max(f64::MIN_POSITIVE))
        .collect();
    if bad.is_empty() || bad.len() * 4 > losses.len() {
        return None;
    }
    Some(format!(
        "frame step (frame pairs {:?} of the operator's order explain the change far worse than the rest: dropped, duplicated or re-exposed frames?)",
        &bad[..bad.len().min(8)]
    ))
}

#[cfg(test)]
mod sums {
    use super::*;

    #[test]
    fn unrolled_sums_match_the_plain_sums() {
        for len in [0usize, 1, 7, 8, 9, 100, 1003] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 53 % 97) as f32 - 40.0) * 0.021)
                .collect();
            let d: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| (y as f64 - x as f64).powi(2))
                .sum();
            let q: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum();
            let (fast_d, fast_q) = (sum_sq_of(&a, &b, |x, y| y - x), sum_sq_of(&a, &a, |x, _| x));
            assert!((fast_d - d).abs() <= 1e-12 * d.max(1e-300), "{len}");
            assert!((fast_q - q).abs() <= 1e-12 * q.max(1e-300), "{len}");
        }
        let frames: Vec<Vec<f32>> = (0..4).map(|t| vec![t as f32; 10]).collect();
        let f: Vec<&[f32]> = frames.iter().map(|v| v.as_slice()).collect();
        assert_eq!(mean_square_change(&f), 1.0);
    }
}
