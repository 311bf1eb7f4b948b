//! An estimate the software cannot trust must say so.

use safe_eval::fitting::EstimateSettings;
use safe_physics::Choice;

/// A drawn video (seed 4242, #13: sharp grains, 29 frames, von Neumann number 8e-3 per
/// frame, Gaussian noise) whose grid-scale structure barely smooths over the video: the
/// noise estimate takes that structure for noise (61x the frame-to-frame change) and the
/// corrected fit lands 53% low with an error bar 200x too small. The misfit (1.4e-3: less
/// loss than the measured noise alone would leave) exposes it, and the result must warn.
#[test]
fn a_noise_estimate_larger_than_the_residual_is_a_warning() {
    let d = safe_eval::universal::draw(4242, 13).unwrap();
    let s = EstimateSettings {
        process: Choice::Fixed(safe_physics::Process::Diffusion),
        ..Default::default()
    };
    let r =
        safe_eval::api::fit(&d.video, &s, safe_eval::intensity::GammaChoice::Fixed(1.0)).unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("of what the measured noise alone would leave")),
        "{:?}",
        r.warnings
    );
}
