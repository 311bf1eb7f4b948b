//! Videos from image sequences: a folder of PNG/TIFF frames, or a multi-page TIFF.
//!
//! Frames are taken in natural name order (`f2.png` before `f10.png`; zero-padded names sort
//! the same either way). 8- and 16-bit integer samples are scaled to `[0, 1]` by the type's
//! maximum, float TIFF samples are kept as they are. Gray stored as RGB(A) (equal channels)
//! reads as gray; frames whose channels differ (a false-colour map, a colour camera) are
//! refused: a colour map is not the field's intensity. Alpha channels are dropped. Image
//! rows are axis 1 (spacing `dx`), columns axis 2 (spacing `dy`), as numpy reads an image.
//! A frame of another size or bit depth than the rest of its sequence is skipped with a
//! warning. With [`ChannelMode::Separate`] (the user's `--channels separate`) colour frames
//! are read as a 3-channel field `[T, 3, rows, cols]` instead (paper 2.1, channel-wise).

use crate::error::{DataError, ErrorKind};
use std::path::{Path, PathBuf};

/// How colour frames are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChannelMode {
    /// One intensity: gray stored as RGB reads as gray, colour frames are refused.
    #[default]
    Gray,
    /// Red, green and blue are three channels of one field (all sharing alpha).
    Separate,
}

impl std::str::FromStr for ChannelMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gray" | "grey" => Ok(ChannelMode::Gray),
            "separate" => Ok(ChannelMode::Separate),
            _ => Err(format!("'{s}' is not a channel mode: use gray or separate")),
        }
    }
}

/// Decoded frames of one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageStack {
    /// `[T, rows, cols]`, or `[T, 3, rows, cols]` for colour read as channels.
    pub shape: Vec<usize>,
    pub frames: Vec<f32>,
    pub warnings: Vec<String>,
}

fn ext_lower(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn is_image_file(p: &Path) -> bool {
    matches!(ext_lower(p).as_str(), "png" | "tif" | "tiff") && p.is_file()
}

pub fn is_multipage_tiff_path(p: &Path) -> bool {
    matches!(ext_lower(p).as_str(), "tif" | "tiff")
}

/// The image files of a folder, in natural name order.
pub fn image_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| is_image_file(p))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| {
        natural_cmp(
            &a.file_name().unwrap_or_default().to_string_lossy(),
            &b.file_name().unwrap_or_default().to_string_lossy(),
        )
    });
    v
}

pub fn has_image_frames(dir: &Path) -> bool {
    !image_files(dir).is_empty()
}

/// Compare names so that digit runs compare by value: `f2 < f10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (trim_zeros(&x[..nx]), trim_zeros(&y[..ny]));
                let o = dx.len().cmp(&dy.len()).then_with(|| dx.cmp(dy));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let k = s.iter().take_while(|&&c| c == b'0').count();
    &s[k..]
}

/// One decoded page: rows, cols, gray values, the sample type, and how far its colour
/// channels differ (0 for gray).
struct Page {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
    depth: &'static str,
    colour_spread: f32,
    /// Red, green and blue planes `[3, rows, cols]` of a page with colour samples.
    rgb: Option<Vec<f32>>,
}

/// Colour channels differing by more than this share of the frame's range on more than
/// `COLOUR_PIXELS` of its pixels make a colour frame, not gray stored as RGB.
const COLOUR_SPREAD: f32 = 0.02;
const COLOUR_PIXELS: f64 = 0.01;

/// Gray values of interleaved samples, and the share of pixels whose colour channels differ
/// by more than [`COLOUR_SPREAD`] of the range (a colour map), for 3+ channels.
fn to_gray(samples: Vec<f32>, channels: usize) -> (Vec<f32>, f32, Option<Vec<f32>>) {
    match channels {
        1 => (samples, 0.0, None),
        2 => (samples.chunks_exact(2).map(|c| c[0]).collect(), 0.0, None),
        _ => {
            let (lo, hi) = samples
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            let tol = COLOUR_SPREAD * (hi - lo).max(f32::MIN_POSITIVE);
            let mut coloured = 0usize;
            let gray: Vec<f32> = samples
                .chunks_exact(channels)
                .map(|c| {
                    if (c[0] - c[1]).abs() > tol || (c[1] - c[2]).abs() > tol {
                        coloured += 1;
                    }
                    c[1]
                })
                .collect();
            let share = coloured as f32 / gray.len().max(1) as f32;
            let rgb = (0..3)
                .flat_map(|c| samples.chunks_exact(channels).map(move |px| px[c]))
                .collect();
            (gray, share, Some(rgb))
        }
    }
}

fn read_png(path: &Path) -> Result<Page, String> {
    use image::DynamicImage as D;
    let img = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| format!("cannot decode image: {e}"))?;
    let (cols, rows) = (img.width() as usize, img.height() as usize);
    let n8 = |v: &[u8]| v.iter().map(|&v| v as f32 / 255.0).collect::<Vec<f32>>();
    let n16 = |v: &[u16]| v.iter().map(|&v| v as f32 / 65535.0).collect::<Vec<f32>>();
    let (values, channels, depth): (Vec<f32>, usize, &'static str) = match &img {
        D::ImageLuma8(b) => (n8(b.as_raw()), 1, "8-bit"),
        D::ImageLumaA8(b) => (n8(b.as_raw()), 2, "8-bit"),
        D::ImageRgb8(b) => (n8(b.as_raw()), 3, "8-bit"),
        D::ImageRgba8(b) => (n8(b.as_raw()), 4, "8-bit"),
        D::ImageLuma16(b) => (n16(b.as_raw()), 1, "16-bit"),
        D::ImageLumaA16(b) => (n16(b.as_raw()), 2, "16-bit"),
        D::ImageRgb16(b) => (n16(b.as_raw()), 3, "16-bit"),
        D::ImageRgba16(b) => (n16(b.as_raw()), 4, "16-bit"),
        D::ImageRgb32F(b) => (b.as_raw().clone(), 3, "float"),
        D::ImageRgba32F(b) => (b.as_raw().clone(), 4, "float"),
        other => (other.to_luma32f().into_raw(), 1, "float"),
    };
    let (values, colour_spread, rgb) = to_gray(values, channels);
    Ok(Page {
        rows,
        cols,
        values,
        depth,
        colour_spread,
        rgb,
    })
}

fn read_tiff_pages(path: &Path) -> Result<Vec<Page>, String> {
    use tiff::ColorType as C;
    use tiff::decoder::{Decoder, DecodingResult as R};
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut dec =
        Decoder::new(std::io::BufReader::new(f)).map_err(|e| format!("cannot decode TIFF: {e}"))?;
    let mut pages = Vec::new();
    loop {
        let (cols, rows) = dec
            .dimensions()
            .map_err(|e| format!("cannot decode TIFF: {e}"))?;
        let ct = dec
            .colortype()
            .map_err(|e| format!("cannot decode TIFF: {e}"))?;
        let channels = match ct {
            C::Gray(_) => 1,
            C::GrayA(_) => 2,
            C::RGB(_) => 3,
            C::RGBA(_) => 4,
            other => {
                return Err(format!(
                    "unsupported TIFF colour type {other:?} (page {})",
                    pages.len()
                ));
            }
        };
        let img = dec
            .read_image()
            .map_err(|e| format!("cannot decode TIFF page {}: {e}", pages.len()))?;
        let (values, depth): (Vec<f32>, &'static str) = match img {
            R::U8(v) => (v.iter().map(|&x| x as f32 / 255.0).collect(), "8-bit"),
            R::U16(v) => (v.iter().map(|&x| x as f32 / 65535.0).collect(), "16-bit"),
            R::U32(v) => (
                v.iter().map(|&x| x as f32 / u32::MAX as f32).collect(),
                "32-bit",
            ),
            R::F32(v) => (v, "float"),
            R::F64(v) => (v.iter().map(|&x| x as f32).collect(), "float"),
            R::I8(v) => (
                v.iter().map(|&x| x as f32 / 127.0).collect(),
                "signed 8-bit",
            ),
            R::I16(v) => (
                v.iter().map(|&x| x as f32 / 32767.0).collect(),
                "signed 16-bit",
            ),
            _ => {
                return Err(format!(
                    "unsupported TIFF sample type (page {})",
                    pages.len()
                ));
            }
        };
        let (rows, cols) = (rows as usize, cols as usize);
        if values.len() != rows * cols * channels {
            return Err(format!(
                "TIFF page {} has {} samples for {rows}x{cols}x{channels}",
                pages.len(),
                values.len()
            ));
        }
        let (values, colour_spread, rgb) = to_gray(values, channels);
        pages.push(Page {
            rows,
            cols,
            values,
            depth,
            colour_spread,
            rgb,
        });
        if !dec.more_images() {
            break;
        }
        dec.next_image()
            .map_err(|e| format!("cannot decode TIFF page {}: {e}", pages.len()))?;
    }
    Ok(pages)
}

fn read_file_pages(path: &Path) -> Result<Vec<Page>, DataError> {
    let r = if is_multipage_tiff_path(path) {
        read_tiff_pages(path)
    } else {
        read_png(path).map(|p| vec![p])
    };
    r.map_err(|m| DataError::new(path, ErrorKind::Image(m)))
}

/// The number of pages of a TIFF (headers only), or `None` if it cannot be read.
pub fn tiff_page_count(path: &Path) -> Option<usize> {
    let f = std::fs::File::open(path).ok()?;
    let mut dec = tiff::decoder::Decoder::new(std::io::BufReader::new(f)).ok()?;
    let mut n = 1;
    while dec.more_images() {
        dec.next_image().ok()?;
        n += 1;
        if n > 1_000_000 {
            return None;
        }
    }
    Some(n)
}

/// Read frames from `files` (each a single image or a multi-page TIFF) into a
/// `[T, rows, cols]` stack; `label` names the video in messages. Frames whose size or sample
/// type differs from most of the sequence are skipped with a warning; colour frames are an
/// error unless `mode` reads them as channels.
pub fn read_frames(
    files: &[PathBuf],
    label: &Path,
    mode: ChannelMode,
) -> Result<ImageStack, DataError> {
    if files.is_empty() {
        return Err(DataError::new(
            label,
            ErrorKind::NotFound("no PNG or TIFF frames found".into()),
        ));
    }
    let mut pages: Vec<(PathBuf, usize, Page)> = Vec::new();
    for f in files {
        for (k, p) in read_file_pages(f)?.into_iter().enumerate() {
            if p.colour_spread as f64 > COLOUR_PIXELS && mode == ChannelMode::Gray {
                return Err(DataError::new(
                    f,
                    ErrorKind::Image(format!(
                        "colour frame: its red, green and blue channels differ on {:.0}% of the pixels (a false-colour map or a colour camera), so its brightness is not the field. Export the raw single-channel intensity (e.g. the measured quantity as 16-bit gray or a float TIFF, or field.npy), or, if red, green and blue are three fields that share alpha, read them as channels with --channels separate",
                        100.0 * p.colour_spread
                    )),
                ));
            }
            pages.push((f.clone(), k, p));
        }
    }
    // The sequence's size and sample type: those of most frames.
    let mut kinds: Vec<((usize, usize, &str), usize)> = Vec::new();
    for (_, _, p) in &pages {
        let key = (p.rows, p.cols, p.depth);
        match kinds.iter_mut().find(|k| k.0 == key) {
            Some(k) => k.1 += 1,
            None => kinds.push((key, 1)),
        }
    }
    // Ties go to the kind seen first, so the message names the later file.
    let &((rows, cols, depth), count) = kinds
        .iter()
        .rev()
        .max_by_key(|k| k.1)
        .expect("at least one page");
    let fits = |p: &Page| (p.rows, p.cols, p.depth) == (rows, cols, depth);
    // Only frames at either end may be dropped: a gap inside the sequence would silently
    // change the time between two frames.
    let first = pages.iter().position(|(_, _, p)| fits(p)).unwrap_or(0);
    let last = pages.iter().rposition(|(_, _, p)| fits(p)).unwrap_or(0);
    let odd = pages[first..=last].iter().find(|(_, _, p)| !fits(p));
    if 2 * count <= pages.len() || odd.is_some() {
        let (f, _, p) = odd
            .or_else(|| pages.iter().find(|(_, _, p)| !fits(p)))
            .expect("a frame that differs");
        let why = if odd.is_some() {
            "inside the sequence, where dropping it would change the time between frames"
        } else {
            "and no size is shared by most frames"
        };
        return Err(DataError::new(
            f,
            ErrorKind::Image(format!(
                "a {}x{} {} frame {why}; all frames must have one size and sample type (most are {rows}x{cols} {depth})",
                p.rows, p.cols, p.depth
            )),
        ));
    }
    let mut warnings = Vec::new();
    // Colour read as channels only where the frames are colour: gray stored as RGB would
    // give three copies of one field.
    let colour = mode == ChannelMode::Separate
        && pages
            .iter()
            .any(|(_, _, p)| p.colour_spread as f64 > COLOUR_PIXELS);
    if colour {
        if let Some((f, _, _)) = pages.iter().find(|(_, _, p)| fits(p) && p.rgb.is_none()) {
            return Err(DataError::new(
                f,
                ErrorKind::Image(
                    "a gray frame in a sequence of colour frames read as channels (--channels separate); all frames must be colour".into(),
                ),
            ));
        }
    } else if mode == ChannelMode::Separate {
        warnings.push(format!(
            "{}: --channels separate, but the frames are gray (their colour channels are equal): read as one channel",
            label.display()
        ));
    }
    let mut frames = Vec::new();
    let mut t = 0;
    for (f, k, p) in pages {
        if !fits(&p) {
            let page = if k > 0 {
                format!(" (page {k})")
            } else {
                String::new()
            };
            warnings.push(format!(
                "{}{page}: skipped: a {}x{} {} frame in a sequence of {rows}x{cols} {depth} frames",
                f.display(),
                p.rows,
                p.cols,
                p.depth
            ));
            continue;
        }
        match (&p.rgb, colour) {
            (Some(rgb), true) => frames.extend_from_slice(rgb),
            _ => frames.extend_from_slice(&p.values),
        }
        t += 1;
    }
    Ok(ImageStack {
        shape: if colour {
            vec![t, 3, rows, cols]
        } else {
            vec![t, rows, cols]
        },
        frames,
        warnings,
    })
}

/// Read a folder of frames (every image in it), or one multi-page TIFF.
pub fn read_image_stack(source: &Path) -> Result<ImageStack, DataError> {
    let files = if source.is_dir() {
        image_files(source)
    } else {
        vec![source.to_path_buf()]
    };
    read_frames(&files, source, ChannelMode::Gray)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["f10.png", "f2.png", "f1.png", "f02b.png", "g.png"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["f1.png", "f2.png", "f02b.png", "f10.png", "g.png"]);
    }
}
