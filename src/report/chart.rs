//! Periodic complaints-analysis chart, rendered in memory as a PNG for
//! inlining in an email.
//!
//! The image is 900x560 px on a white background: a title, a stacked bar
//! chart of complaints per month by category, and a line chart of the share
//! of acknowledgements / responses sent on time per month.
//!
//! Rendering happens in two passes over one RGB buffer:
//! 1. `plotters` (bitmap backend) draws the axes, grid lines and bars and
//!    provides the data-to-pixel mapping;
//! 2. an overlay pass draws all text, the rate lines and their markers
//!    anti-aliased, with glyphs laid out by `ab_glyph` from an embedded
//!    DejaVu Sans. (plotters 0.3.7's own ab_glyph text path ignores glyph
//!    side bearings and truncates pen positions, which gives visibly uneven
//!    letter spacing, and its thick lines are not anti-aliased.)
//!
//! The same font is also registered with plotters (feature `ab_glyph`), once
//! per process, so that any text plotters itself draws never depends on
//! system fonts. Nothing here uses system fonts or font C libraries. The
//! buffer is encoded with the `png` crate.
//!
//! The input is treated leniently: `months` defines the x axis; missing
//! entries in `counts`, `ack_on_time` and `response_on_time` count as 0 /
//! "not measured", surplus entries are ignored, non-finite rates are ignored
//! and rates are clamped to 0..=1. Control characters in labels become spaces
//! and labels that do not fit are shortened with an ellipsis.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Data for one chart; filled by the caller.
pub struct ChartData {
    /// Title at the top, e.g. "Klachten 2026-10-01 t/m 2026-12-31".
    pub title: String,
    /// X labels, e.g. `["2026-10", "2026-11", "2026-12"]`; may be empty.
    pub months: Vec<String>,
    /// Legend names, e.g. `["coaching", "communicatie", "overig"]`.
    pub categories: Vec<String>,
    /// `counts[month_index][category_index]`.
    pub counts: Vec<Vec<usize>>,
    /// Per month, fraction 0.0..=1.0; `None` = nothing measured.
    pub ack_on_time: Vec<Option<f64>>,
    /// Per month, fraction 0.0..=1.0; `None` = nothing measured.
    pub response_on_time: Vec<Option<f64>>,
    /// Localised texts.
    pub labels: ChartLabels,
}

/// Localised texts (Dutch or English), supplied by the caller.
pub struct ChartLabels {
    /// Caption of the bar chart, e.g. "Klachten per maand per categorie".
    pub per_month: String,
    /// Caption of the line chart, e.g. "Op tijd (%)".
    pub on_time: String,
    /// Legend of the first line, e.g. "Ontvangstbevestiging (5 werkdagen)".
    pub acknowledgement: String,
    /// Legend of the second line, e.g. "Reactie (20 werkdagen)".
    pub response: String,
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;

/// Family name the embedded font is registered under with plotters;
/// "sans-serif" is also plotters' default family.
const FONT_FAMILY: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans.ttf"
));

// Layout, in pixels.
const SIDE: i32 = 24; // left/right page margin
const Y_LABEL_W: i32 = 50; // room for the y tick labels
const X_LABEL_H: i32 = 24; // room for the month labels under a plot
const TITLE_TOP: f32 = 14.0;
const PANEL1_TOP: i32 = 50;
const PANEL2_TOP: i32 = 320;
const PANEL_GAP: i32 = 12; // bottom padding of a panel
const LINE_H: i32 = 21; // one header line (caption / legend row)
const MAX_BAR_PX: f64 = 56.0;

const TITLE_SIZE: f32 = 22.0;
const CAPTION_SIZE: f32 = 16.0;
const LEGEND_SIZE: f32 = 14.0;
const TICK_SIZE: f32 = 13.0;
const VALUE_SIZE: f32 = 12.5;

const INK: RGBColor = RGBColor(33, 37, 41);
const MUTED: RGBColor = RGBColor(80, 80, 80);
const GRID: RGBColor = RGBColor(228, 228, 228);
const AXIS: RGBColor = RGBColor(150, 150, 150);
const ACK_COLOR: RGBColor = RGBColor(31, 119, 180);
const RESPONSE_COLOR: RGBColor = RGBColor(230, 120, 20);
/// Category colours (Tableau 10), repeated when there are more categories.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(89, 161, 79),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Renders the chart and returns the bytes of a 900x560 RGB PNG.
pub fn render_png(d: &ChartData) -> Result<Vec<u8>> {
    let font = font()?;
    let len = (WIDTH as usize) * (HEIGHT as usize) * 3;
    let mut pixels = vec![255u8; len];
    let mut ov = Overlay {
        font,
        ops: Vec::new(),
    };
    draw_chart(d, &mut pixels, &mut ov)?;
    ov.render(&mut pixels);
    encode_png(&pixels, WIDTH, HEIGHT)
}

/// The parsed embedded font. Parsing it and registering it with plotters
/// happen exactly once per process; later calls (from any thread) only read.
fn font() -> Result<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| {
        let parsed = FontRef::try_from_slice(FONT_BYTES).ok()?;
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).ok()?;
        Some(parsed)
    })
    .as_ref()
    .ok_or_else(|| anyhow!("chart: the embedded font could not be loaded"))
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64 * 1024);
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Balanced);
        let mut writer = enc.write_header().context("chart: PNG header")?;
        writer
            .write_image_data(rgb)
            .context("chart: PNG image data")?;
        writer.finish().context("chart: PNG trailer")?;
    }
    Ok(out)
}

/// Turns a plotters drawing error into an anyhow error.
fn de<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("chart: drawing failed: {e}")
}

/// Replaces control characters (newlines, tabs, ...) by spaces and trims.
fn clean(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.trim().to_string()
}

// ---------------------------------------------------------------------------
// Overlay: text, anti-aliased lines and markers, drawn after plotters.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum HAlign {
    Left,
    Center,
    Right,
}

#[derive(Clone, Copy, PartialEq)]
enum VAlign {
    /// `y` is the top of capital letters.
    Top,
    /// `y` is the middle of capital letters.
    Middle,
    /// `y` is the baseline.
    Baseline,
}

#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Square,
}

enum Op {
    Text {
        text: String,
        size: f32,
        color: RGBColor,
        x: f32,
        baseline: f32,
    },
    Stroke {
        points: Vec<(f32, f32)>,
        width: f32,
        color: RGBColor,
    },
    Marker {
        marker: Marker,
        center: (f32, f32),
        color: RGBColor,
    },
    Rect {
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
        color: RGBColor,
    },
}

struct Overlay {
    font: &'static FontRef<'static>,
    ops: Vec<Op>,
}

impl Overlay {
    fn text_width(&self, text: &str, size: f32) -> f32 {
        let sf = self.font.as_scaled(PxScale::from(size));
        let mut w = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let g = sf.glyph_id(c);
            if let Some(p) = prev {
                w += sf.kern(p, g);
            }
            w += sf.h_advance(g);
            prev = Some(g);
        }
        w
    }

    fn cap_height(&self, size: f32) -> f32 {
        let sf = self.font.as_scaled(PxScale::from(size));
        let units = self
            .font
            .outline(self.font.glyph_id('H'))
            .map(|o| (o.bounds.max.y - o.bounds.min.y).abs())
            .unwrap_or(0.73 * self.font.units_per_em().unwrap_or(2048.0));
        units * sf.v_scale_factor()
    }

    /// `text` cleaned and shortened with an ellipsis to at most `max_w` px.
    fn fit(&self, text: &str, size: f32, max_w: f32) -> String {
        let text = clean(text);
        let sf = self.font.as_scaled(PxScale::from(size));
        let room = max_w - self.text_width("…", size);
        let mut w = 0.0;
        let mut prev = None;
        // Byte index where the text must be cut to leave room for "…".
        let mut cut = 0;
        for (i, c) in text.char_indices() {
            let g = sf.glyph_id(c);
            if let Some(p) = prev {
                w += sf.kern(p, g);
            }
            w += sf.h_advance(g);
            prev = Some(g);
            if w <= room {
                cut = i + c.len_utf8();
            }
            if w > max_w {
                let kept = text[..cut].trim_end();
                return if kept.is_empty() {
                    String::new()
                } else {
                    format!("{kept}…")
                };
            }
        }
        text
    }

    /// Queues `text`; returns its width in pixels.
    fn text(
        &mut self,
        text: &str,
        size: f32,
        color: RGBColor,
        (x, y): (f32, f32),
        h: HAlign,
        v: VAlign,
    ) -> f32 {
        let w = self.text_width(text, size);
        if text.is_empty() {
            return 0.0;
        }
        let x = match h {
            HAlign::Left => x,
            HAlign::Center => x - w / 2.0,
            HAlign::Right => x - w,
        };
        let baseline = match v {
            VAlign::Top => y + self.cap_height(size),
            VAlign::Middle => y + self.cap_height(size) / 2.0,
            VAlign::Baseline => y,
        };
        self.ops.push(Op::Text {
            text: text.to_string(),
            size,
            color,
            x: x.round(),
            baseline: baseline.round(),
        });
        w
    }

    fn render(&self, buf: &mut [u8]) {
        for op in &self.ops {
            match op {
                Op::Text {
                    text,
                    size,
                    color,
                    x,
                    baseline,
                } => self.render_text(buf, text, *size, *color, *x, *baseline),
                Op::Stroke {
                    points,
                    width,
                    color,
                } => render_stroke(buf, points, *width, *color),
                Op::Marker {
                    marker,
                    center,
                    color,
                } => render_marker(buf, *marker, *center, *color),
                Op::Rect {
                    x0,
                    y0,
                    x1,
                    y1,
                    color,
                } => render_box(buf, (*x0, *y0), (*x1, *y1), *color),
            }
        }
    }

    fn render_text(&self, buf: &mut [u8], text: &str, size: f32, color: RGBColor, x: f32, y: f32) {
        let scale = PxScale::from(size);
        let sf = self.font.as_scaled(scale);
        let mut pen = x;
        let mut prev = None;
        for c in text.chars() {
            let id = sf.glyph_id(c);
            if let Some(p) = prev {
                pen += sf.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scale, point(pen, y));
            if let Some(outlined) = self.font.outline_glyph(glyph) {
                let b = outlined.px_bounds();
                let (bx, by) = (b.min.x as i32, b.min.y as i32);
                outlined.draw(|gx, gy, cov| {
                    let px = bx.saturating_add(gx as i32);
                    let py = by.saturating_add(gy as i32);
                    blend(buf, px, py, color, cov);
                });
            }
            pen += sf.h_advance(id);
            prev = Some(id);
        }
    }
}

/// Blends `color` with coverage `a` (0..=1) into pixel (x, y); ignores
/// pixels outside the image.
fn blend(buf: &mut [u8], x: i32, y: i32, color: RGBColor, a: f32) {
    if x < 0 || y < 0 || x >= WIDTH as i32 || y >= HEIGHT as i32 {
        return;
    }
    let a = a.clamp(0.0, 1.0);
    if a <= 0.0 {
        return;
    }
    let o = (y as usize * WIDTH as usize + x as usize) * 3;
    if let Some(px) = buf.get_mut(o..o + 3) {
        for (dst, src) in px.iter_mut().zip([color.0, color.1, color.2]) {
            let d = f32::from(*dst);
            *dst = (d + (f32::from(src) - d) * a).round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// Integer pixel window covering `lo..hi` (floats), clipped to the image.
fn span(lo: f32, hi: f32, max: u32) -> std::ops::Range<i32> {
    let a = (lo.floor() as i32).max(0);
    let b = (hi.ceil() as i32).min(max as i32);
    a..b.max(a)
}

fn dist_to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// Anti-aliased polyline with round joins; each pixel is blended once.
fn render_stroke(buf: &mut [u8], points: &[(f32, f32)], width: f32, color: RGBColor) {
    if points.len() < 2 || points.iter().any(|p| !p.0.is_finite() || !p.1.is_finite()) {
        return;
    }
    let hw = width / 2.0;
    let pad = hw + 1.0;
    let min_x = points.iter().map(|p| p.0).fold(f32::INFINITY, f32::min) - pad;
    let max_x = points.iter().map(|p| p.0).fold(f32::NEG_INFINITY, f32::max) + pad;
    let min_y = points.iter().map(|p| p.1).fold(f32::INFINITY, f32::min) - pad;
    let max_y = points.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max) + pad;
    let xs = span(min_x, max_x, WIDTH);
    let ys = span(min_y, max_y, HEIGHT);
    let bw = (xs.end - xs.start) as usize;
    let bh = (ys.end - ys.start) as usize;
    if bw == 0 || bh == 0 {
        return;
    }
    let mut cov = vec![0f32; bw * bh];
    for seg in points.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let sx = span(a.0.min(b.0) - pad, a.0.max(b.0) + pad, WIDTH);
        let sy = span(a.1.min(b.1) - pad, a.1.max(b.1) + pad, HEIGHT);
        for y in sy {
            for x in sx.clone() {
                let d = dist_to_segment((x as f32 + 0.5, y as f32 + 0.5), a, b);
                let c = (hw + 0.5 - d).clamp(0.0, 1.0);
                let i = (y - ys.start) as usize * bw + (x - xs.start) as usize;
                if let Some(slot) = cov.get_mut(i) {
                    *slot = slot.max(c);
                }
            }
        }
    }
    for y in ys.clone() {
        for x in xs.clone() {
            let i = (y - ys.start) as usize * bw + (x - xs.start) as usize;
            if let Some(&c) = cov.get(i) {
                blend(buf, x, y, color, c);
            }
        }
    }
}

fn render_disk(buf: &mut [u8], (cx, cy): (f32, f32), r: f32, color: RGBColor) {
    for y in span(cy - r - 1.0, cy + r + 1.0, HEIGHT) {
        for x in span(cx - r - 1.0, cx + r + 1.0, WIDTH) {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            blend(buf, x, y, color, r + 0.5 - d);
        }
    }
}

/// Anti-aliased filled axis-aligned box.
fn render_box(buf: &mut [u8], (x0, y0): (f32, f32), (x1, y1): (f32, f32), color: RGBColor) {
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let (hx, hy) = ((x1 - x0).abs() / 2.0, (y1 - y0).abs() / 2.0);
    for y in span(cy - hy - 1.0, cy + hy + 1.0, HEIGHT) {
        for x in span(cx - hx - 1.0, cx + hx + 1.0, WIDTH) {
            let ax = (hx + 0.5 - (x as f32 + 0.5 - cx).abs()).clamp(0.0, 1.0);
            let ay = (hy + 0.5 - (y as f32 + 0.5 - cy).abs()).clamp(0.0, 1.0);
            blend(buf, x, y, color, ax.min(ay));
        }
    }
}

/// Point marker with a white halo so that it stands out on lines and grid.
fn render_marker(buf: &mut [u8], marker: Marker, c: (f32, f32), color: RGBColor) {
    if !c.0.is_finite() || !c.1.is_finite() {
        return;
    }
    match marker {
        Marker::Circle => {
            render_disk(buf, c, 5.5, WHITE);
            render_disk(buf, c, 4.0, color);
        }
        Marker::Square => {
            render_box(buf, (c.0 - 5.0, c.1 - 5.0), (c.0 + 5.0, c.1 + 5.0), WHITE);
            render_box(buf, (c.0 - 3.6, c.1 - 3.6), (c.0 + 3.6, c.1 + 3.6), color);
        }
    }
}

// ---------------------------------------------------------------------------
// Axes
// ---------------------------------------------------------------------------

/// A linear f64 axis whose tick positions are chosen by us. (plotters'
/// `with_key_points` wrapper cannot take a label formatter on f64.)
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        let frac = if span > 0.0 && v.is_finite() {
            ((*v - self.lo) / span).clamp(-1.0, 2.0)
        } else {
            0.0
        };
        let len = f64::from(limit.1) - f64::from(limit.0);
        // Float-to-int casts saturate; no overflow possible.
        (f64::from(limit.0) + (len * frac + 1e-3).floor()) as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// X axis: one unit per month, months centred on integers, no plotters
/// ticks (the month labels are drawn by `month_labels`).
fn x_axis(n: usize) -> Axis {
    let n = n.max(1) as f64;
    Axis {
        lo: -0.5,
        hi: n - 0.5,
        ticks: Vec::new(),
    }
}

/// Integer tick step and top tick so that there are at most 5 steps.
fn count_ticks(max_total: usize) -> (f64, f64) {
    let m = max_total as f64;
    let mut magnitude = 1.0f64;
    let step = loop {
        if let Some(s) = [1.0, 2.0, 5.0]
            .iter()
            .map(|k| k * magnitude)
            .find(|s| (m / s).ceil() <= 5.0)
        {
            break s;
        }
        magnitude *= 10.0;
        if !magnitude.is_finite() {
            break m.max(1.0);
        }
    };
    let top = ((m / step).ceil() * step).max(step).max(1.0);
    (step, top)
}

/// Integer tick label that fits the y label strip even for absurd counts.
fn compact(v: f64) -> String {
    if v < 10_000.0 {
        format!("{v:.0}")
    } else if v < 10_000_000.0 {
        format!("{:.0}k", v / 1e3)
    } else if v < 10_000_000_000.0 {
        format!("{:.0}M", v / 1e6)
    } else {
        format!("{v:.0e}")
    }
}

/// The plot rectangle (absolute pixels) for a panel whose plot, including
/// the x label strip, spans `top..bottom` vertically.
fn plot_area<'a>(root: &Area<'a>, top: i32, bottom: i32) -> Area<'a> {
    let w = WIDTH as i32 - 2 * SIDE;
    let top = top.clamp(0, HEIGHT as i32 - 80);
    // Keep a minimal height even if the header grew (many legend rows).
    let h = (bottom - top).max(80);
    root.clone()
        .shrink((SIDE as u32, top as u32), (w as u32, h as u32))
}

/// Plots a mesh with horizontal grid lines only; tick labels are drawn by
/// the overlay so they use the same text renderer as everything else.
fn draw_mesh(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<Axis, Axis>>,
) -> Result<()> {
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(0)
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .set_all_tick_mark_size(4)
        .y_label_formatter(&|_| String::new())
        .x_label_formatter(&|_| String::new())
        .draw()
        .map_err(de)
}

fn y_tick_labels(
    ov: &mut Overlay,
    chart: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<Axis, Axis>>,
    ticks: &[f64],
    fmt: impl Fn(f64) -> String,
) {
    for &t in ticks {
        let (x, y) = chart.backend_coord(&(-0.5, t));
        ov.text(
            &fmt(t),
            TICK_SIZE,
            MUTED,
            (x as f32 - 8.0, y as f32 + 0.5),
            HAlign::Right,
            VAlign::Middle,
        );
    }
}

/// Month labels under a plot, thinned so they never overlap; the latest
/// month is always labelled.
fn month_labels(
    ov: &mut Overlay,
    chart: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<Axis, Axis>>,
    months: &[String],
    px_per_month: f64,
) {
    let n = months.len();
    if n == 0 {
        return;
    }
    let fitted: Vec<String> = months.iter().map(|m| ov.fit(m, TICK_SIZE, 110.0)).collect();
    let widest = fitted
        .iter()
        .map(|m| ov.text_width(m, TICK_SIZE))
        .fold(0.0f32, f32::max);
    let need = f64::from(widest) + 12.0;
    let step = if px_per_month > 0.0 {
        ((need / px_per_month).ceil().max(1.0) as usize).min(n)
    } else {
        n
    };
    for (i, label) in fitted.iter().enumerate() {
        if (n - 1 - i) % step != 0 {
            continue;
        }
        let (x, y) = chart.backend_coord(&(i as f64, 0.0));
        let (x, y) = (x as f32 + 0.5, y as f32 + 1.0);
        ov.ops.push(Op::Stroke {
            points: vec![(x, y), (x, y + 4.0)],
            width: 1.0,
            color: AXIS,
        });
        ov.text(
            label,
            TICK_SIZE,
            MUTED,
            (x, y + 8.0),
            HAlign::Center,
            VAlign::Top,
        );
    }
}

// ---------------------------------------------------------------------------
// Chart
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum LegendKind {
    Box,
    Line(Marker),
}

impl LegendKind {
    fn swatch_w(self) -> f32 {
        match self {
            LegendKind::Box => 12.0,
            LegendKind::Line(_) => 28.0,
        }
    }
}

struct LegendItem {
    label: String,
    color: RGBColor,
    kind: LegendKind,
}

fn draw_chart(d: &ChartData, pixels: &mut [u8], ov: &mut Overlay) -> Result<()> {
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(de)?;

    let page_w = (WIDTH as i32 - 2 * SIDE) as f32;
    let title = ov.fit(&d.title, TITLE_SIZE, page_w);
    ov.text(
        &title,
        TITLE_SIZE,
        INK,
        (WIDTH as f32 / 2.0, TITLE_TOP),
        HAlign::Center,
        VAlign::Top,
    );

    let months = &d.months;
    let n = months.len();

    // Panel 1: stacked bars.
    let bar_legend: Vec<LegendItem> = d
        .categories
        .iter()
        .enumerate()
        .map(|(j, c)| LegendItem {
            label: c.clone(),
            color: PALETTE[j % PALETTE.len()],
            kind: LegendKind::Box,
        })
        .collect();
    let plot1_top = draw_header(ov, &d.labels.per_month, &bar_legend, PANEL1_TOP);
    let totals: Vec<usize> = (0..n)
        .map(|i| (0..d.categories.len()).fold(0usize, |acc, j| acc.saturating_add(count(d, i, j))))
        .collect();
    draw_bars(&root, ov, d, &totals, (plot1_top, PANEL2_TOP - PANEL_GAP))?;

    // Panel 2: on-time rates.
    let line_legend = [
        LegendItem {
            label: d.labels.acknowledgement.clone(),
            color: ACK_COLOR,
            kind: LegendKind::Line(Marker::Circle),
        },
        LegendItem {
            label: d.labels.response.clone(),
            color: RESPONSE_COLOR,
            kind: LegendKind::Line(Marker::Square),
        },
    ];
    let plot2_top = draw_header(ov, &d.labels.on_time, &line_legend, PANEL2_TOP);
    draw_lines(&root, ov, d, (plot2_top, HEIGHT as i32 - PANEL_GAP))?;

    root.present().map_err(de)?;
    Ok(())
}

fn count(d: &ChartData, month: usize, category: usize) -> usize {
    d.counts
        .get(month)
        .and_then(|row| row.get(category))
        .copied()
        .unwrap_or(0)
}

/// Rate of month `i` as a percentage, or `None` when not measured.
fn rate(v: &[Option<f64>], i: usize) -> Option<f64> {
    v.get(i)
        .copied()
        .flatten()
        .filter(|r| r.is_finite())
        .map(|r| r.clamp(0.0, 1.0) * 100.0)
}

/// Queues a panel caption and its legend starting at `top`; returns the y
/// where the plot may start. Caption left and legend right-aligned on the
/// same line when everything fits, otherwise the legend wraps on rows below
/// (at most 3 rows; the number of items left out is shown as "(+N)").
fn draw_header(ov: &mut Overlay, caption: &str, items: &[LegendItem], top: i32) -> i32 {
    const ITEM_GAP: f32 = 20.0;
    const SWATCH_GAP: f32 = 6.0;
    const MAX_ROWS: usize = 3;
    let left = SIDE as f32;
    let right = (WIDTH as i32 - SIDE) as f32;
    let avail = right - left;
    let line_h = LINE_H as f32;
    let top = top as f32;

    let caption = ov.fit(caption, CAPTION_SIZE, avail);
    let cap_w = ov.text(
        &caption,
        CAPTION_SIZE,
        INK,
        (left, top + line_h / 2.0),
        HAlign::Left,
        VAlign::Middle,
    );

    // Measure the legend items (each shortened to fit a row on its own).
    let mut measured = Vec::with_capacity(items.len());
    for it in items {
        let sw = it.kind.swatch_w();
        let label = ov.fit(&it.label, LEGEND_SIZE, avail - sw - SWATCH_GAP - 60.0);
        let lw = ov.text_width(&label, LEGEND_SIZE);
        measured.push((it, label, sw + SWATCH_GAP + lw));
    }
    if measured.is_empty() {
        return (top + line_h) as i32 + 6;
    }
    let total: f32 =
        measured.iter().map(|m| m.2).sum::<f32>() + ITEM_GAP * (measured.len() - 1) as f32;

    // Rows of (x, item index).
    let mut rows: Vec<Vec<(f32, usize)>> = Vec::new();
    let first_row_top;
    if cap_w + 2.0 * ITEM_GAP + total <= avail {
        let mut x = right - total;
        let mut row = Vec::new();
        for (k, m) in measured.iter().enumerate() {
            row.push((x, k));
            x += m.2 + ITEM_GAP;
        }
        rows.push(row);
        first_row_top = top;
    } else {
        let mut x = left;
        let mut row = Vec::new();
        for (k, m) in measured.iter().enumerate() {
            if !row.is_empty() && x + m.2 > right {
                rows.push(std::mem::take(&mut row));
                x = left;
            }
            row.push((x, k));
            x += m.2 + ITEM_GAP;
        }
        if !row.is_empty() {
            rows.push(row);
        }
        first_row_top = top + line_h;
    }

    let shown = rows.len().min(MAX_ROWS);
    let hidden: usize = rows.iter().skip(MAX_ROWS).map(Vec::len).sum();
    for (ri, row) in rows.iter().take(shown).enumerate() {
        let yc = first_row_top + ri as f32 * line_h + line_h / 2.0;
        let mut row_end = left;
        for &(x, k) in row {
            let (it, label, w) = &measured[k];
            legend_swatch(ov, it, x, yc);
            let tx = x + it.kind.swatch_w() + SWATCH_GAP;
            ov.text(
                label,
                LEGEND_SIZE,
                MUTED,
                (tx, yc),
                HAlign::Left,
                VAlign::Middle,
            );
            row_end = x + w;
        }
        if ri + 1 == shown && hidden > 0 {
            let more = format!("(+{hidden})");
            ov.text(
                &more,
                LEGEND_SIZE,
                MUTED,
                ((row_end + ITEM_GAP).min(right - 40.0), yc),
                HAlign::Left,
                VAlign::Middle,
            );
        }
    }
    (first_row_top + shown as f32 * line_h) as i32 + 6
}

fn legend_swatch(ov: &mut Overlay, it: &LegendItem, x: f32, yc: f32) {
    match it.kind {
        LegendKind::Box => ov.ops.push(Op::Rect {
            x0: x,
            y0: yc - 6.0,
            x1: x + 12.0,
            y1: yc + 6.0,
            color: it.color,
        }),
        LegendKind::Line(marker) => {
            ov.ops.push(Op::Stroke {
                points: vec![(x + 1.0, yc), (x + 27.0, yc)],
                width: 2.5,
                color: it.color,
            });
            ov.ops.push(Op::Marker {
                marker,
                center: (x + 14.0, yc),
                color: it.color,
            });
        }
    }
}

fn draw_bars(
    root: &Area,
    ov: &mut Overlay,
    d: &ChartData,
    totals: &[usize],
    (top, bottom): (i32, i32),
) -> Result<()> {
    let n = d.months.len();
    let area = plot_area(root, top, bottom);
    let max_total = totals.iter().copied().max().unwrap_or(0);
    let (step, axis_top) = count_ticks(max_total);
    // Head room for the total printed above the highest bar.
    let y_max = axis_top.max(max_total as f64 * 1.12).max(1.0);
    let mut ticks = Vec::new();
    let mut t = 0.0;
    while t <= axis_top + step * 0.01 && ticks.len() < 50 {
        ticks.push(t);
        t += step;
    }

    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(X_LABEL_H)
        .y_label_area_size(Y_LABEL_W)
        .margin_top(2)
        .build_cartesian_2d(
            x_axis(n),
            Axis {
                lo: 0.0,
                hi: y_max,
                ticks: ticks.clone(),
            },
        )
        .map_err(de)?;
    draw_mesh(&mut chart)?;
    y_tick_labels(ov, &chart, &ticks, compact);

    let plot_w = f64::from(chart.plotting_area().dim_in_pixel().0);
    let px_per_month = plot_w / n.max(1) as f64;
    let half = (0.36f64).min(MAX_BAR_PX / 2.0 / px_per_month.max(1.0));

    let mut rects = Vec::new();
    for i in 0..n {
        let x = i as f64;
        let mut base = 0usize;
        for j in 0..d.categories.len() {
            let c = count(d, i, j);
            if c == 0 {
                continue;
            }
            let next = base.saturating_add(c);
            rects.push(Rectangle::new(
                [(x - half, base as f64), (x + half, next as f64)],
                PALETTE[j % PALETTE.len()].filled(),
            ));
            base = next;
        }
    }
    chart.draw_series(rects).map_err(de)?;

    // Totals above the bars, when they fit in a bar slot.
    for (i, total) in totals.iter().enumerate() {
        let s = total.to_string();
        if f64::from(ov.text_width(&s, VALUE_SIZE)) > px_per_month - 2.0 {
            continue;
        }
        let (x, y) = chart.backend_coord(&(i as f64, *total as f64));
        ov.text(
            &s,
            VALUE_SIZE,
            INK,
            (x as f32 + 0.5, y as f32 - 4.0),
            HAlign::Center,
            VAlign::Baseline,
        );
    }

    month_labels(ov, &chart, &d.months, px_per_month);
    Ok(())
}

fn draw_lines(
    root: &Area,
    ov: &mut Overlay,
    d: &ChartData,
    (top, bottom): (i32, i32),
) -> Result<()> {
    let n = d.months.len();
    let area = plot_area(root, top, bottom);
    let ticks = vec![0.0, 25.0, 50.0, 75.0, 100.0];
    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(X_LABEL_H)
        .y_label_area_size(Y_LABEL_W)
        .margin_top(6)
        .build_cartesian_2d(
            x_axis(n),
            Axis {
                lo: 0.0,
                hi: 100.0,
                ticks: ticks.clone(),
            },
        )
        .map_err(de)?;
    draw_mesh(&mut chart)?;
    y_tick_labels(ov, &chart, &ticks, |v| format!("{v:.0}%"));

    for (series, color, marker) in [
        (&d.ack_on_time, ACK_COLOR, Marker::Circle),
        (&d.response_on_time, RESPONSE_COLOR, Marker::Square),
    ] {
        // Runs of consecutive measured months; unmeasured months are gaps.
        let mut runs: Vec<Vec<(f32, f32)>> = Vec::new();
        let mut cur = Vec::new();
        for i in 0..n {
            match rate(series, i) {
                Some(p) => {
                    let (x, y) = chart.backend_coord(&(i as f64, p));
                    cur.push((x as f32 + 0.5, y as f32 + 0.5));
                }
                None if !cur.is_empty() => runs.push(std::mem::take(&mut cur)),
                None => {}
            }
        }
        if !cur.is_empty() {
            runs.push(cur);
        }
        for run in &runs {
            ov.ops.push(Op::Stroke {
                points: run.clone(),
                width: 2.5,
                color,
            });
        }
        for run in runs {
            for center in run {
                ov.ops.push(Op::Marker {
                    marker,
                    center,
                    color,
                });
            }
        }
    }

    let plot_w = f64::from(chart.plotting_area().dim_in_pixel().0);
    month_labels(ov, &chart, &d.months, plot_w / n.max(1) as f64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn labels() -> ChartLabels {
        ChartLabels {
            per_month: "Klachten per maand per categorie".into(),
            on_time: "Op tijd (%)".into(),
            acknowledgement: "Ontvangstbevestiging (5 werkdagen)".into(),
            response: "Reactie (20 werkdagen)".into(),
        }
    }

    fn categories() -> Vec<String> {
        ["coaching", "communicatie", "dienstverlening", "overig"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn realistic() -> ChartData {
        ChartData {
            title: "Klachten 2026-10-01 t/m 2026-12-31".into(),
            months: vec!["2026-10".into(), "2026-11".into(), "2026-12".into()],
            categories: categories(),
            counts: vec![vec![3, 5, 2, 1], vec![1, 7, 4, 0], vec![2, 3, 6, 2]],
            ack_on_time: vec![Some(1.0), Some(0.9166), Some(0.8461)],
            response_on_time: vec![Some(0.8181), None, Some(0.6923)],
            labels: labels(),
        }
    }

    fn empty() -> ChartData {
        ChartData {
            title: "Klachten 2027-01-01 t/m 2027-01-31".into(),
            months: Vec::new(),
            categories: categories(),
            counts: Vec::new(),
            ack_on_time: Vec::new(),
            response_on_time: Vec::new(),
            labels: labels(),
        }
    }

    fn two_years() -> ChartData {
        let mut months = Vec::new();
        let mut counts = Vec::new();
        let mut ack = Vec::new();
        let mut resp = Vec::new();
        for i in 0..24usize {
            months.push(format!("{}-{:02}", 2025 + i / 12, i % 12 + 1));
            counts.push(vec![i % 4, (i * 7) % 9, (i * 5) % 6, i % 3]);
            ack.push((i % 7 != 3).then(|| 0.6 + 0.4 * ((i * 13) % 10) as f64 / 10.0));
            resp.push((i % 5 != 1).then(|| 0.4 + 0.6 * ((i * 7) % 10) as f64 / 10.0));
        }
        ChartData {
            title: "Klachten 2025-01-01 t/m 2026-12-31".into(),
            months,
            categories: categories(),
            counts,
            ack_on_time: ack,
            response_on_time: resp,
            labels: labels(),
        }
    }

    /// Checks the signature, decodes, and returns (width, height, rgb).
    fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        assert!(png_bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]));
        let mut reader = png::Decoder::new(Cursor::new(png_bytes))
            .read_info()
            .expect("png header");
        let mut buf = vec![0u8; reader.output_buffer_size().expect("buffer size")];
        let info = reader.next_frame(&mut buf).expect("png frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn dark_pixels(
        px: &[u8],
        w: u32,
        xs: std::ops::Range<usize>,
        ys: std::ops::Range<usize>,
    ) -> usize {
        let mut dark = 0;
        for y in ys {
            for x in xs.clone() {
                let o = (y * w as usize + x) * 3;
                if px[o] < 100 && px[o + 1] < 100 && px[o + 2] < 100 {
                    dark += 1;
                }
            }
        }
        dark
    }

    fn check(d: &ChartData) -> Vec<u8> {
        let bytes = render_png(d).expect("render");
        let (w, h, px) = decode(&bytes);
        assert_eq!((w, h), (WIDTH, HEIGHT));
        let non_white = px.chunks_exact(3).filter(|p| p != &[255, 255, 255]).count();
        assert!(non_white > 5_000, "too few drawn pixels: {non_white}");
        // Title glyphs in the top band, caption glyphs at the left.
        let title = dark_pixels(&px, w, 250..650, 8..44);
        assert!(title > 150, "title not rendered: {title} dark pixels");
        let caption = dark_pixels(&px, w, 20..200, 50..72);
        assert!(caption > 80, "caption not rendered: {caption} dark pixels");
        bytes
    }

    /// Renders the three reference charts. Set `CHART_PNG_DIR` to a folder
    /// to also get them as sample.png, empty.png and 24months.png there, to
    /// look at (e.g. `CHART_PNG_DIR=/tmp cargo test chart`).
    #[test]
    fn renders_realistic_empty_and_two_years() {
        let out = std::env::var_os("CHART_PNG_DIR").map(std::path::PathBuf::from);
        for (name, data) in [
            ("sample.png", realistic()),
            ("empty.png", empty()),
            ("24months.png", two_years()),
        ] {
            let bytes = check(&data);
            if let Some(dir) = &out {
                std::fs::write(dir.join(name), &bytes).expect("write png");
            }
        }
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let long = "x".repeat(2_000);
        let d = ChartData {
            title: format!("{long}\n\tregel"),
            months: vec!["2026-01".into(), long.clone(), String::new()],
            categories: (0..40).map(|i| format!("{long}{i}")).collect(),
            counts: vec![vec![usize::MAX, usize::MAX, 1], vec![]],
            ack_on_time: vec![Some(f64::NAN), Some(7.0), Some(-1.0), Some(0.5)],
            response_on_time: vec![Some(f64::INFINITY)],
            labels: ChartLabels {
                per_month: long.clone(),
                on_time: String::new(),
                acknowledgement: long.clone(),
                response: "\u{0}".into(),
            },
        };
        let bytes = render_png(&d).expect("render");
        assert_eq!(decode(&bytes).0, WIDTH);

        // One month, all zero, no categories, empty title.
        let d = ChartData {
            title: String::new(),
            months: vec!["2026-10".into()],
            categories: Vec::new(),
            counts: vec![vec![0, 0]],
            ack_on_time: vec![None],
            response_on_time: vec![],
            labels: labels(),
        };
        let bytes = render_png(&d).expect("render");
        assert_eq!(decode(&bytes).1, HEIGHT);
    }

    #[test]
    fn renders_from_several_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| render_png(&realistic()).map(|b| b.len())))
            .collect();
        for h in handles {
            let len = h.join().expect("thread").expect("render");
            assert!(len > 1000);
        }
    }
}
