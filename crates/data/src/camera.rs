//! A camera between the sample and the file: point-spread blur, black level, shot noise,
//! read noise and quantisation to a bit depth. Used by `generate --camera` to make the
//! videos a microscope or thermal camera records, and by the robustness studies.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// One camera. Intensities map affinely to electrons (the field's range to
/// `[background_fraction, 1] * peak_electrons`), Poisson shot noise, gain to ADU, a black
/// level, Gaussian read noise, rounding and clipping to `bits`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Camera {
    /// Gaussian point-spread function, standard deviation in pixels (0 = sharp).
    pub psf_sigma: f64,
    /// Electrons at the brightest point of the scene (full-well-like scale).
    pub peak_electrons: f64,
    /// Electrons at the darkest point, as a fraction of the peak (a lit background).
    pub background_fraction: f64,
    /// Electrons per ADU.
    pub gain: f64,
    pub black_level: f64,
    /// Read noise, ADU (standard deviation).
    pub read_noise: f64,
    pub bits: u32,
}

impl Default for Camera {
    /// A 12-bit scientific camera: ~1% shot noise at the peak, a 1.2-pixel blur.
    fn default() -> Camera {
        Camera {
            psf_sigma: 1.2,
            peak_electrons: 10000.0,
            background_fraction: 0.1,
            gain: 3.0,
            black_level: 100.0,
            read_noise: 3.0,
            bits: 12,
        }
    }
}

impl Camera {
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.psf_sigma >= 0.0
            && self.peak_electrons > 0.0
            && (0.0..1.0).contains(&self.background_fraction)
            && self.gain > 0.0
            && self.black_level >= 0.0
            && self.read_noise >= 0.0
            && (1..=32).contains(&self.bits);
        if ok && self.psf_sigma.is_finite() && self.peak_electrons.is_finite() {
            Ok(())
        } else {
            Err(format!("invalid camera settings: {self:?}"))
        }
    }

    /// Record `frames` (`[T, nx, ny]`, already blurred with [`gaussian_blur`] if wanted):
    /// electrons, shot noise, ADU, read noise, rounding, clipping.
    pub fn record(&self, frames: &[f64], rng: &mut impl Rng) -> Vec<f64> {
        let (lo, hi) = frames
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let bg = self.background_fraction * self.peak_electrons;
        let top = ((1u64 << self.bits) - 1) as f64;
        frames
            .iter()
            .map(|&x| {
                let e = bg + (x - lo) / span * (self.peak_electrons - bg);
                let adu = self.black_level
                    + poisson(e, rng) as f64 / self.gain
                    + self.read_noise * gauss(rng);
                adu.round().clamp(0.0, top)
            })
            .collect()
    }
}

/// A standard normal draw (Box-Muller).
pub fn gauss(rng: &mut impl Rng) -> f64 {
    let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Poisson draw of mean `lambda`: multiplication of uniforms below 30, Hormann's
/// transformed rejection (PTRS) above.
pub fn poisson(lambda: f64, rng: &mut impl Rng) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let l = (-lambda).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= rng.random::<f64>();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
    let slam = lambda.sqrt();
    let loglam = lambda.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let invalpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.random::<f64>() - 0.5;
        let v = rng.random::<f64>();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        let lg = ln_gamma(k + 1.0);
        if (v * invalpha / (a / (us * us) + b)).ln() <= -lambda + k * loglam - lg {
            return k as u64;
        }
    }
}

/// `ln Gamma(x)` by Stirling's series (x >= 1; error < 1e-10 for x >= 8, exact sums below).
fn ln_gamma(x: f64) -> f64 {
    if x < 8.0 {
        let mut p = 1.0;
        let mut y = x;
        while y < 8.0 {
            p *= y;
            y += 1.0;
        }
        return ln_gamma(y) - p.ln();
    }
    let z = 1.0 / (x * x);
    (x - 0.5) * x.ln() - x
        + 0.5 * (2.0 * std::f64::consts::PI).ln()
        + (1.0 / x) * (1.0 / 12.0 - z * (1.0 / 360.0 - z * (1.0 / 1260.0 - z / 1680.0)))
}

/// Gaussian blur of standard deviation `sigma` pixels along both axes of each `nx x ny`
/// frame, with the frame wrapping around (`wrap`) or mirrored at its edges. The kernel is
/// the sampled Gaussian cut at 5 sigma and normalised: a convolution, so it commutes with
/// the heat flow (a blurred solution is a solution).
pub fn gaussian_blur(frames: &mut [f64], nx: usize, ny: usize, sigma: f64, wrap: bool) {
    if sigma <= 0.0 {
        return;
    }
    let r = (5.0 * sigma).ceil() as isize;
    let mut k: Vec<f64> = (-r..=r)
        .map(|j| (-(j * j) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let fold = |i: isize, n: usize| -> usize {
        let n = n as isize;
        if wrap {
            i.rem_euclid(n) as usize
        } else {
            let p = i.rem_euclid(2 * n);
            (if p < n { p } else { 2 * n - 1 - p }) as usize
        }
    };
    let mut tmp = vec![0.0; nx.max(ny)];
    for f in frames.chunks_exact_mut(nx * ny) {
        for row in f.chunks_exact_mut(ny) {
            for j in 0..ny {
                tmp[j] = (-r..=r)
                    .map(|d| k[(d + r) as usize] * row[fold(j as isize + d, ny)])
                    .sum();
            }
            row.copy_from_slice(&tmp[..ny]);
        }
        for j in 0..ny {
            for i in 0..nx {
                tmp[i] = (-r..=r)
                    .map(|d| k[(d + r) as usize] * f[fold(i as isize + d, nx) * ny + j])
                    .sum();
            }
            for i in 0..nx {
                f[i * ny + j] = tmp[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn poisson_has_its_mean_and_variance() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for lambda in [3.0, 29.0, 31.0, 500.0, 12000.0] {
            let n = 40000;
            let x: Vec<f64> = (0..n).map(|_| poisson(lambda, &mut rng) as f64).collect();
            let m = x.iter().sum::<f64>() / n as f64;
            let v = x.iter().map(|y| (y - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            assert!(
                (m - lambda).abs() < 4.0 * (lambda / n as f64).sqrt(),
                "{lambda}: mean {m}"
            );
            assert!((v / lambda - 1.0).abs() < 0.05, "{lambda}: var {v}");
        }
    }

    #[test]
    fn blur_keeps_the_mean_and_commutes_with_shifts() {
        let (nx, ny) = (16, 12);
        let mut f: Vec<f64> = (0..nx * ny).map(|i| ((i * 7919) % 97) as f64).collect();
        let m0 = f.iter().sum::<f64>();
        let mut g = f.clone();
        gaussian_blur(&mut f, nx, ny, 1.3, true);
        assert!((f.iter().sum::<f64>() - m0).abs() < 1e-9 * m0);
        // Shift by one row then blur == blur then shift (periodic).
        let shift =
            |v: &[f64]| -> Vec<f64> { (0..nx * ny).map(|i| v[(i + ny) % (nx * ny)]).collect() };
        let mut sg = shift(&g);
        gaussian_blur(&mut sg, nx, ny, 1.3, true);
        gaussian_blur(&mut g, nx, ny, 1.3, true);
        let gs = shift(&g);
        for (a, b) in sg.iter().zip(&gs) {
            assert!((a - b).abs() < 1e-9);
        }
    }
}
