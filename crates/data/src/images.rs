//! Videos from image sequences: a folder of PNG/TIFF frames, or a multi-page TIFF.
//!
//! Frames are taken in natural name order (`f2.png` before `f10.png`; zero-padded names sort
//! the same either way). 8- and 16-bit integer samples are scaled to `[0, 1]` by the type's
//! maximum, float TIFF samples are kept as they are. RGB(A) frames are converted to luma
//! (Rec. 709 weights) with a warning; alpha channels are dropped. Image rows are axis 1
//! (spacing `dx`), columns axis 2 (spacing `dy`), as numpy reads an image.

use crate::video::{DataError, ErrorKind};
use std::path::{Path, PathBuf};

/// Decoded frames of one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageStack {
    /// `[T, rows, cols]`.
    pub shape: [usize; 3],
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

/// One decoded page: rows, cols, luma values, and whether it was colour.
struct Page {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
    colour: bool,
}

fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.2126 * r + 0.7152 * g + 0.0722 * b
}

fn to_gray(samples: Vec<f32>, channels: usize) -> Vec<f32> {
    match channels {
        1 => samples,
        2 => samples.chunks_exact(2).map(|c| c[0]).collect(),
        _ => samples
            .chunks_exact(channels)
            .map(|c| luma(c[0], c[1], c[2]))
            .collect(),
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
    let (values, channels): (Vec<f32>, usize) = match &img {
        D::ImageLuma8(b) => (b.as_raw().iter().map(|&v| v as f32 / 255.0).collect(), 1),
        D::ImageLumaA8(b) => (b.as_raw().iter().map(|&v| v as f32 / 255.0).collect(), 2),
        D::ImageRgb8(b) => (b.as_raw().iter().map(|&v| v as f32 / 255.0).collect(), 3),
        D::ImageRgba8(b) => (b.as_raw().iter().map(|&v| v as f32 / 255.0).collect(), 4),
        D::ImageLuma16(b) => (b.as_raw().iter().map(|&v| v as f32 / 65535.0).collect(), 1),
        D::ImageLumaA16(b) => (b.as_raw().iter().map(|&v| v as f32 / 65535.0).collect(), 2),
        D::ImageRgb16(b) => (b.as_raw().iter().map(|&v| v as f32 / 65535.0).collect(), 3),
        D::ImageRgba16(b) => (b.as_raw().iter().map(|&v| v as f32 / 65535.0).collect(), 4),
        D::ImageRgb32F(b) => (b.as_raw().clone(), 3),
        D::ImageRgba32F(b) => (b.as_raw().clone(), 4),
        other => (other.to_luma32f().into_raw(), 1),
    };
    Ok(Page {
        rows,
        cols,
        values: to_gray(values, channels),
        colour: channels >= 3,
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
        let values: Vec<f32> = match img {
            R::U8(v) => v.iter().map(|&x| x as f32 / 255.0).collect(),
            R::U16(v) => v.iter().map(|&x| x as f32 / 65535.0).collect(),
            R::U32(v) => v.iter().map(|&x| x as f32 / u32::MAX as f32).collect(),
            R::F32(v) => v,
            R::F64(v) => v.iter().map(|&x| x as f32).collect(),
            R::I8(v) => v.iter().map(|&x| x as f32 / 127.0).collect(),
            R::I16(v) => v.iter().map(|&x| x as f32 / 32767.0).collect(),
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
        pages.push(Page {
            rows,
            cols,
            values: to_gray(values, channels),
            colour: channels >= 3,
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

/// Read a folder of frames, or one (multi-page) TIFF, into a `[T, rows, cols]` stack.
pub fn read_image_stack(source: &Path) -> Result<ImageStack, DataError> {
    let files = if source.is_dir() {
        image_files(source)
    } else {
        vec![source.to_path_buf()]
    };
    if files.is_empty() {
        return Err(DataError::new(
            source,
            ErrorKind::NotFound("no PNG or TIFF frames found".into()),
        ));
    }
    let mut frames = Vec::new();
    let mut shape: Option<(usize, usize, PathBuf)> = None;
    let mut t = 0;
    let mut colour_files = 0;
    for f in &files {
        for (k, p) in read_file_pages(f)?.into_iter().enumerate() {
            match &shape {
                None => shape = Some((p.rows, p.cols, f.clone())),
                Some((r, c, first)) if (*r, *c) != (p.rows, p.cols) => {
                    let page = if k > 0 {
                        format!(" (page {k})")
                    } else {
                        String::new()
                    };
                    return Err(DataError::new(
                        f,
                        ErrorKind::Shape(format!(
                            "frame{page} is {}x{} (rows x cols) but {} is {r}x{c}; all frames must have one size",
                            p.rows,
                            p.cols,
                            first.display()
                        )),
                    ));
                }
                _ => {}
            }
            if p.colour {
                colour_files += 1;
            }
            frames.extend_from_slice(&p.values);
            t += 1;
        }
    }
    let (rows, cols, _) = shape.unwrap_or((0, 0, PathBuf::new()));
    let mut warnings = Vec::new();
    if colour_files > 0 {
        warnings.push(format!(
            "{}: {colour_files} colour frame(s) converted to grayscale luma (0.2126 R + 0.7152 G + 0.0722 B)",
            source.display()
        ));
    }
    Ok(ImageStack {
        shape: [t, rows, cols],
        frames,
        warnings,
    })
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
