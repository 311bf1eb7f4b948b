//! Figures: field panels (the paper's Figs. 4-5), line and scatter plots (Figs. 3, 6-8).
//!
//! A font is embedded (DejaVu Sans, `assets/`), so figures render the same on a machine
//! without fonts. Every figure is drawn to a temporary file and renamed into place.

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static INIT: Once = Once::new();
const FAMILY: &str = "sans-serif";

fn init_font() {
    INIT.call_once(|| {
        // The embedded file is a valid TrueType font; failure would only mean no text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// A temporary sibling that keeps the extension (plotters picks the format from it).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    path.with_file_name(format!(".tmp-{}-{n}-{name}", std::process::id()))
}

fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

/// Perceptually ordered colour map (viridis anchors, linear in between).
pub fn viridis(t: f64) -> RGBColor {
    const A: [(f64, f64, f64); 6] = [
        (68.0, 1.0, 84.0),
        (65.0, 68.0, 135.0),
        (42.0, 120.0, 142.0),
        (34.0, 168.0, 132.0),
        (122.0, 209.0, 81.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * (A.len() - 1) as f64;
    let i = (t.floor() as usize).min(A.len() - 2);
    let f = t - i as f64;
    let (a, b) = (A[i], A[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// One field image in a grid figure.
pub struct Panel<'a> {
    pub title: String,
    /// `[nx, ny]`, row-major; drawn with axis 1 downwards, axis 2 to the right.
    pub data: &'a [f32],
    pub nx: usize,
    pub ny: usize,
    /// Colour range; `None` uses the panel's own min and max.
    pub range: Option<(f32, f32)>,
}

/// Compact number for titles: 3 significant digits, scientific when small or large.
pub fn short(x: f32) -> String {
    let a = x.abs();
    if a != 0.0 && !(1e-2..1e4).contains(&a) {
        format!("{x:.2e}")
    } else {
        format!("{x:.3}")
    }
}

fn draw_panel(area: &DrawingArea<BitMapBackend, Shift>, p: &Panel) -> Result<()> {
    let (lo, hi) = p.range.unwrap_or_else(|| {
        p.data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            })
    });
    let span = if hi > lo { (hi - lo) as f64 } else { 1.0 };
    let title = format!("{}  [{}, {}]", p.title, short(lo), short(hi));
    let area = area.titled(&title, (FAMILY, 15)).map_err(err)?;
    let (w, h) = area.dim_in_pixel();
    let bar = 14u32;
    let (img, cbar) = area.split_horizontally(w.saturating_sub(bar + 6));
    let (iw, ih) = img.dim_in_pixel();
    let side = iw.min(ih).max(1) as f64;
    let (sx, sy) = (side / p.ny as f64, side / p.nx as f64);
    for i in 0..p.nx {
        for j in 0..p.ny {
            let v = p.data[i * p.ny + j];
            let c = viridis((v - lo) as f64 / span);
            let (x0, y0) = ((j as f64 * sx) as i32, (i as f64 * sy) as i32);
            let (x1, y1) = (
                (((j + 1) as f64) * sx).ceil() as i32,
                (((i + 1) as f64) * sy).ceil() as i32,
            );
            img.draw(&Rectangle::new([(x0, y0), (x1, y1)], c.filled()))
                .map_err(err)?;
        }
    }
    // Colour bar: top = max, bottom = min.
    let bh = (side as u32).min(h) as i32;
    for y in 0..bh {
        let c = viridis(1.0 - y as f64 / (bh.max(2) - 1) as f64);
        cbar.draw(&Rectangle::new([(2, y), (bar as i32, y + 1)], c.filled()))
            .map_err(err)?;
    }
    Ok(())
}

/// A grid of field panels with a figure title; PNG only (fields are images).
pub fn field_grid(path: &Path, title: &str, rows: &[Vec<Panel>], panel_px: u32) -> Result<()> {
    init_font();
    let n_rows = rows.len().max(1);
    let n_cols = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
    let size = (
        n_cols as u32 * (panel_px + 24),
        n_rows as u32 * (panel_px + 28) + 40,
    );
    let tmp = temp_path(path);
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, (FAMILY, 20)).map_err(err)?;
        let cells = root.split_evenly((n_rows, n_cols));
        for (r, row) in rows.iter().enumerate() {
            for (c, p) in row.iter().enumerate() {
                draw_panel(&cells[r * n_cols + c], p)?;
            }
        }
        root.present().map_err(err)?;
    }
    commit(&tmp, path)
}

/// One curve (or point set) of a plot.
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    /// Draw markers at the points.
    pub markers: bool,
    /// Join the points with a line.
    pub line: bool,
}

/// An x-y plot.
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    /// Draw the diagonal `y = x` (predicted-vs-true plots).
    pub diagonal: bool,
}

pub const BLUE_DIFFUSION: RGBColor = RGBColor(31, 119, 180);
pub const RED_MOBILITY: RGBColor = RGBColor(214, 39, 40);
pub const GREY: RGBColor = RGBColor(110, 110, 110);

fn bounds(plot: &Plot) -> ((f64, f64), (f64, f64)) {
    let pts = plot
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| {
            x.is_finite() && y.is_finite() && (!plot.log_x || *x > 0.0) && (!plot.log_y || *y > 0.0)
        });
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    if plot.diagonal {
        let (lo, hi) = (x0.min(y0), x1.max(y1));
        (x0, x1, y0, y1) = (lo, hi, lo, hi);
    }
    let pad = |a: f64, b: f64, log: bool| {
        if log {
            (a / 1.5, b * 1.5)
        } else {
            let m = ((b - a) * 0.06).max(1e-12 * a.abs().max(1.0));
            (a - m, b + m)
        }
    };
    (pad(x0, x1, plot.log_x), pad(y0, y1, plot.log_y))
}

macro_rules! draw_with {
    ($chart:expr, $plot:expr, $xr:expr) => {{
        let chart = $chart;
        let plot = $plot;
        let n_series = plot.series.len();
        for (si, s) in plot.series.iter().enumerate() {
            let color = s.color;
            // Earlier series are drawn wider, so a later one lying exactly on top of an
            // earlier one leaves it visible as an outline.
            let width = 2 + 2 * (n_series - 1 - si) as u32;
            let radius = 4 + (n_series - 1 - si) as i32;
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| {
                    x.is_finite()
                        && y.is_finite()
                        && (!plot.log_x || *x > 0.0)
                        && (!plot.log_y || *y > 0.0)
                })
                .collect();
            let mut legend_done = false;
            if s.line && pts.len() > 1 {
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))
                    .map_err(err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
                    });
                legend_done = true;
            }
            if pts.is_empty() {
                // Keep the series in the legend even when nothing can be drawn.
                chart
                    .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                    .map_err(err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                continue;
            }
            if s.markers || !s.line {
                let anno = chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, radius, color.filled())))
                    .map_err(err)?;
                if !legend_done {
                    anno.label(s.name.clone())
                        .legend(move |(x, y)| Circle::new((x + 9, y), 4, color.filled()));
                }
            }
        }
        if plot.diagonal {
            let (a, b) = $xr;
            chart
                .draw_series(LineSeries::new(vec![(a, a), (b, b)], GREY.stroke_width(1)))
                .map_err(err)?
                .label("y = x")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], GREY.stroke_width(1)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 14))
            .draw()
            .map_err(err)?;
    }};
}

fn draw_plot<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, plot: &Plot) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let ((x0, x1), (y0, y1)) = bounds(plot);
    let mut cb = ChartBuilder::on(&root);
    cb.caption(&plot.title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75);
    // Four coordinate combinations (linear/log on each axis).
    match (plot.log_x, plot.log_y) {
        (false, false) => {
            let mut c = cb.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
            c.configure_mesh()
                .x_desc(&plot.x_label)
                .y_desc(&plot.y_label)
                .label_style((FAMILY, 13))
                .draw()
                .map_err(err)?;
            draw_with!(&mut c, plot, (x0, x1));
        }
        (false, true) => {
            let mut c = cb
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(err)?;
            c.configure_mesh()
                .x_desc(&plot.x_label)
                .y_desc(&plot.y_label)
                .y_label_formatter(&|v| format!("{v:.1e}"))
                .label_style((FAMILY, 13))
                .draw()
                .map_err(err)?;
            draw_with!(&mut c, plot, (x0, x1));
        }
        (true, false) => {
            let mut c = cb
                .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                .map_err(err)?;
            c.configure_mesh()
                .x_desc(&plot.x_label)
                .y_desc(&plot.y_label)
                .label_style((FAMILY, 13))
                .draw()
                .map_err(err)?;
            draw_with!(&mut c, plot, (x0, x1));
        }
        (true, true) => {
            let mut c = cb
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .map_err(err)?;
            c.configure_mesh()
                .x_desc(&plot.x_label)
                .y_desc(&plot.y_label)
                .y_label_formatter(&|v| format!("{v:.1e}"))
                .label_style((FAMILY, 13))
                .draw()
                .map_err(err)?;
            draw_with!(&mut c, plot, (x0, x1));
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Draw `plot` to `STEM.png` and `STEM.svg`.
pub fn save_plot(stem: &Path, plot: &Plot) -> Result<()> {
    init_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let size = (760, 520);
    let tmp = temp_path(&png);
    draw_plot(BitMapBackend::new(&tmp, size).into_drawing_area(), plot)?;
    commit(&tmp, &png)?;
    let tmp = temp_path(&svg);
    draw_plot(SVGBackend::new(&tmp, size).into_drawing_area(), plot)?;
    commit(&tmp, &svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_render_to_png_and_svg() {
        let dir = std::env::temp_dir().join(format!("safe-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plot = Plot {
            title: "test".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_x: false,
            log_y: true,
            series: vec![Series {
                name: "a".into(),
                color: BLUE_DIFFUSION,
                points: vec![(1.0, 1e-3), (2.0, 1e-5), (3.0, f64::NAN)],
                markers: true,
                line: true,
            }],
            diagonal: false,
        };
        save_plot(&dir.join("p"), &plot).unwrap();
        let png = std::fs::read(dir.join("p.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.join("p.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("test"));
        let data = vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
        let panel = Panel {
            title: "f".into(),
            data: &data,
            nx: 2,
            ny: 3,
            range: None,
        };
        field_grid(&dir.join("g.png"), "grid", &[vec![panel]], 120).unwrap();
        assert!(std::fs::metadata(dir.join("g.png")).unwrap().len() > 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
