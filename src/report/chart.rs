//! The analysis mail's chart (art. 10): complaints per month by category
//! (stacked bars) and the share of them whose acknowledgement (art. 5) and
//! response (art. 6) were on time (a line per term). [`render_png`] makes
//! the PNG to inline, [`alt_text`] the same figures in words for the `<img>`.
//!
//! The chart is an SVG written here as a string, rasterised by `resvg` (the
//! linebender SVG renderer, pure Rust): plain coordinates in, shaped and
//! anti-aliased text and lines out, which plotters' bitmap backend only gave
//! with a hand-made rasteriser on top. The one font is DejaVu Sans, embedded.
//!
//! Bad input is drawn, not refused: missing counts are 0, rates that are not
//! finite are "not measured", others are clamped to 0..=1; long labels are
//! cut at an estimated width (0.6 em a character, generous for DejaVu Sans).

use std::sync::OnceLock;

use anyhow::{Context, Result};
use resvg::{tiny_skia, usvg};

/// Data for one chart; filled by the caller.
pub struct ChartData {
    /// Legend names, e.g. `["coaching", "communicatie", ...]`.
    pub categories: Vec<String>,
    /// The x axis, oldest first.
    pub months: Vec<ChartMonth>,
    pub labels: ChartLabels,
}

/// One month of the x axis.
pub struct ChartMonth {
    /// E.g. "nov 2025": what follows the first space goes on a second line,
    /// shown where it changes (the year).
    pub label: String,
    /// Complaints per category, in the order of [`ChartData::categories`].
    pub counts: Vec<usize>,
    /// Per term (acknowledgement, response) the share on time, 0.0..=1.0.
    pub on_time: [Option<f64>; 2],
}

/// Localised texts (Dutch or English), supplied by the caller.
pub struct ChartLabels {
    /// Caption of the bars, at the top: "Klachten per maand per categorie, …".
    pub per_month: String,
    /// Caption of the lines, e.g. "Op tijd (%)".
    pub on_time: String,
    /// The terms' legend names, e.g. "Ontvangstbevestiging binnen 5 werkdagen".
    pub terms: [String; 2],
    /// Said where there is nothing to show, e.g. "Geen klachten".
    pub no_complaints: String,
    pub not_measured: String,
}

pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 600;
const LEFT: f64 = 64.0; // the plot area of both panels
const RIGHT: f64 = 876.0;
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const INK: &str = "#212529";
const MUTED: &str = "#5f6368";
/// Category colours (Tableau 10), repeated when there are more categories.
const PALETTE: [&str; 5] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"];
const TERM_COLORS: [&str; 2] = ["#1f5fa8", "#c2410c"];

/// A text style: size in pixels, SVG text-anchor, colour.
#[derive(Clone, Copy)]
struct Style(f64, &'static str, &'static str);
const CAPTION: Style = Style(19.0, "start", INK);
const LEGEND: Style = Style(15.0, "start", INK);
const TICK: Style = Style(14.0, "end", MUTED);
const MONTH: Style = Style(14.0, "middle", INK);
const YEAR: Style = Style(14.0, "middle", MUTED);
const NOTE: Style = Style(16.0, "middle", MUTED);

/// Renders the chart as the bytes of a WIDTH x HEIGHT PNG.
pub fn render_png(d: &ChartData) -> Result<Vec<u8>> {
    static OPTIONS: OnceLock<usvg::Options> = OnceLock::new();
    let opt = OPTIONS.get_or_init(|| {
        let mut opt = usvg::Options::default();
        opt.fontdb_mut().load_font_data(FONT_BYTES.to_vec());
        opt
    });
    let tree = usvg::Tree::from_str(&svg(d), opt).context("chart: SVG not understood")?;
    let mut pixmap = tiny_skia::Pixmap::new(WIDTH, HEIGHT).context("chart: no pixmap")?;
    resvg::render(&tree, Default::default(), &mut pixmap.as_mut());
    pixmap.encode_png().context("chart: PNG encoding")
}

/// The figures in words for the `<img>`'s alt text: per month the total
/// and its categories, then per term the months' on-time rates.
pub fn alt_text(d: &ChartData) -> String {
    let l = &d.labels;
    let month = |m: &ChartMonth| {
        let named = (d.categories.iter().zip(&m.counts)).filter(|(_, n)| **n > 0);
        let parts: Vec<_> = named.map(|(c, n)| format!("{c} {n}")).collect();
        match parts.len() {
            0 => format!("{} 0", m.label),
            _ => format!("{} {} ({})", m.label, total(d, m), parts.join(", ")),
        }
    };
    let months = d.months.iter().map(month).collect::<Vec<_>>().join("; ");
    let pct = |(m, r): (&String, f64)| format!("{m} {:.0}%", r * 100.0);
    let term = |k: usize| {
        let rated = (d.months.iter()).filter_map(|m| Some((&m.label, rate(m, k)?)));
        let rates: Vec<_> = rated.map(pct).collect();
        match rates.len() {
            0 => format!("{}: {}", l.terms[k], l.not_measured),
            _ => format!("{}: {}", l.terms[k], rates.join(", ")),
        }
    };
    let (per_month, on_time, ack, response) = (&l.per_month, &l.on_time, term(0), term(1));
    format!("{per_month}: {months}. {on_time}: {ack}; {response}.")
}

/// A month's counts of the categories shown.
fn counts<'a>(d: &ChartData, m: &'a ChartMonth) -> &'a [usize] {
    &m.counts[..m.counts.len().min(d.categories.len())]
}

fn total(d: &ChartData, m: &ChartMonth) -> usize {
    counts(d, m).iter().fold(0, |t, n| t.saturating_add(*n))
}

fn rate(m: &ChartMonth, term: usize) -> Option<f64> {
    let r = m.on_time.get(term).copied().flatten()?;
    r.is_finite().then(|| r.clamp(0.0, 1.0))
}

/// Control characters become spaces, runs of white space one space.
fn clean(s: &str) -> String {
    let s = s.replace(|c: char| c.is_control(), " ");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Top of the count axis and its step: 1, 2 or 5 times a power of ten, at
/// most five grid lines.
fn scale(max: usize) -> (f64, f64) {
    let max = (max as f64).max(1.0);
    let mag = 10f64.powf((max / 4.0).log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0].map(|m| (m * mag).max(1.0));
    let step = *steps.iter().find(|s| **s * 4.0 >= max).unwrap_or(&steps[3]);
    ((max / step).ceil() * step, step)
}

/// An SVG document being written, an element a call.
struct Svg(String);

impl Svg {
    /// Text, cleaned, cut to about `max_w` pixels and escaped.
    fn text(&mut self, (x, y): (f64, f64), Style(size, anchor, fill): Style, s: &str, max_w: f64) {
        let mut s = clean(s);
        let room = (max_w / (size * 0.6)).max(1.0) as usize;
        if s.chars().count() > room {
            s = s.chars().take(room - 1).collect::<String>() + "…";
        }
        let s = s.replace('&', "&amp;").replace('<', "&lt;");
        let a = format!(r#"font-size="{size}" text-anchor="{anchor}" fill="{fill}""#);
        self.0 += &format!(r#"<text x="{x:.0}" y="{y:.0}" {a}>{s}</text>"#);
    }

    fn rect(&mut self, (x, y): (f64, f64), w: f64, h: f64, fill: &str) {
        let (w, h) = (w.max(0.0), h.max(0.0));
        let xywh = format!(r#"x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}""#);
        self.0 += &format!(r#"<rect {xywh} fill="{fill}"/>"#);
    }

    /// A stroked path; `d` in SVG path syntax.
    fn path(&mut self, d: &str, stroke: &str, width: f64) {
        let style = format!(r#"stroke="{stroke}" stroke-width="{width}" stroke-linejoin="round""#);
        self.0 += &format!(r#"<path d="{d}" fill="none" {style}/>"#);
    }

    /// A horizontal line at `y` across the plot, labelled on the left.
    fn grid(&mut self, y: f64, label: &str) {
        self.path(&format!("M{LEFT} {y:.1}H{RIGHT}"), "#e6e6e6", 1.0);
        self.text((LEFT - 8.0, y + 5.0), TICK, label, LEFT - 12.0);
    }

    fn dot(&mut self, (x, y): (f64, f64), color: &str) {
        self.0 += &format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="4.5" fill="{color}"/>"#);
    }

    /// The categories' legend on one row at `y`: a colour and a name each,
    /// cut where it does not fit (the alt text names them all).
    fn legend(&mut self, y: f64, d: &ChartData) {
        let mut x = LEFT;
        for (name, color) in d.categories.iter().zip(PALETTE.iter().cycle()) {
            self.rect((x, y - 7.0), 14.0, 14.0, color);
            self.text((x + 20.0, y + 5.5), LEGEND, name, RIGHT - x - 20.0);
            x += 52.0 + clean(name).chars().count() as f64 * LEGEND.0 * 0.6;
        }
    }

    /// The x axis at `y` and the month labels under it.
    fn x_axis(&mut self, d: &ChartData, y: f64, slot: f64) {
        self.path(&format!("M{LEFT} {y}H{RIGHT}"), MUTED, 1.0);
        let mut last = None;
        for (i, m) in d.months.iter().enumerate() {
            let m = clean(&m.label);
            let (month, year) = m.split_once(' ').unwrap_or((&m, ""));
            let x = LEFT + slot * (i as f64 + 0.5);
            self.text((x, y + 20.0), MONTH, month, slot);
            if last != Some(year.to_string()) {
                self.text((x, y + 38.0), YEAR, year, slot);
            }
            last = Some(year.to_string());
        }
    }
}

/// The chart as an SVG document: the bars above the lines.
fn svg(d: &ChartData) -> String {
    let size = format!(r#"width="{WIDTH}" height="{HEIGHT}" font-family="DejaVu Sans""#);
    let xmlns = "http://www.w3.org/2000/svg";
    let mut o = Svg(format!(r#"<svg xmlns="{xmlns}" {size}>"#));
    o.rect((0.0, 0.0), f64::from(WIDTH), f64::from(HEIGHT), "white");
    let slot = (RIGHT - LEFT) / d.months.len().max(1) as f64;
    bars(&mut o, d, slot);
    lines(&mut o, d, slot);
    o.0 + "</svg>"
}

/// Complaints per month, stacked by category, with the total on top.
fn bars(o: &mut Svg, d: &ChartData, slot: f64) {
    let (top, bottom) = (78.0, 278.0);
    o.text((24.0, 32.0), CAPTION, &d.labels.per_month, 852.0);
    o.legend(56.0, d);
    let max = d.months.iter().map(|m| total(d, m)).max().unwrap_or(0);
    let (y_max, step) = scale(max);
    let y_of = |v: f64| bottom - v.min(y_max) / y_max * (bottom - top);
    for v in (0..).map(|k| k as f64 * step).take_while(|v| *v <= y_max) {
        o.grid(y_of(v), &format!("{v:.0}"));
    }
    let bar_w = (slot * 0.6).min(44.0);
    for (i, m) in d.months.iter().enumerate() {
        let x = LEFT + slot * (i as f64 + 0.5);
        let mut below = 0.0;
        for (n, color) in counts(d, m).iter().zip(PALETTE.iter().cycle()) {
            let (y0, y1) = (y_of(below + *n as f64), y_of(below));
            // The white pixel above each block keeps blocks apart.
            o.rect((x - bar_w / 2.0, y0 + 1.0), bar_w, y1 - y0 - 1.0, color);
            below += *n as f64;
        }
        if below > 0.0 {
            let total = total(d, m).to_string();
            o.text((x, y_of(below) - 7.0), MONTH, &total, slot);
        }
    }
    if max == 0 {
        let middle = ((LEFT + RIGHT) / 2.0, (top + bottom) / 2.0);
        o.text(middle, NOTE, &d.labels.no_complaints, 700.0);
    }
    o.x_axis(d, bottom, slot);
}

/// Per term the share on time: a line through months that follow each
/// other, a marker on each month, a gap where nothing was measured.
fn lines(o: &mut Svg, d: &ChartData, slot: f64) {
    let (top, bottom) = (418.0, 546.0);
    o.text((24.0, 352.0), CAPTION, &d.labels.on_time, 852.0);
    for (k, y) in [(0, 376.0), (1, 398.0)] {
        o.path(&format!("M{LEFT} {y}h22"), TERM_COLORS[k], 2.5);
        o.dot((LEFT + 11.0, y), TERM_COLORS[k]);
        let name = &d.labels.terms[k];
        o.text((LEFT + 30.0, y + 5.5), LEGEND, name, RIGHT - LEFT - 30.0);
    }
    let y_of = |r: f64| bottom - r * (bottom - top);
    for pct in [0, 25, 50, 75, 100] {
        o.grid(y_of(f64::from(pct) / 100.0), &format!("{pct}%"));
    }
    let at = |i: usize, r: f64| (LEFT + slot * (i as f64 + 0.5), y_of(r));
    for (k, color) in TERM_COLORS.into_iter().enumerate() {
        let points = (d.months.iter().enumerate()).filter_map(|(i, m)| Some((i, rate(m, k)?)));
        let mut path = String::new();
        for (i, r) in points.clone() {
            let joined = i > 0 && rate(&d.months[i - 1], k).is_some();
            let (x, y) = at(i, r);
            path += &format!("{}{x:.1} {y:.1}", if joined { 'L' } else { 'M' });
        }
        o.path(&path, color, 2.5);
        points.for_each(|(i, r)| o.dot(at(i, r), color));
    }
    if !(0..2).any(|k| d.months.iter().any(|m| rate(m, k).is_some())) {
        let middle = ((LEFT + RIGHT) / 2.0, (top + bottom) / 2.0 + 5.0);
        o.text(middle, NOTE, &d.labels.not_measured, 700.0);
    }
    o.x_axis(d, bottom, slot);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::{Category, Lang};
    use tiny_skia::Pixmap;

    /// Twelve months from November 2025; `counts`: four digits a month;
    /// rates in percent, -1 for nothing measured.
    fn year(counts: &str, ack: [i32; 12], response: [i32; 12]) -> ChartData {
        let names = "nov dec jan feb mrt apr mei jun jul aug sep okt".split(' ');
        let pct = |p: i32| (p >= 0).then(|| f64::from(p) / 100.0);
        let months = (names.zip(counts.split(' ')).enumerate())
            .map(|(i, (name, c))| ChartMonth {
                label: format!("{name} {}", if i < 2 { 2025 } else { 2026 }),
                counts: c.bytes().map(|b| usize::from(b - b'0')).collect(),
                on_time: [pct(ack[i]), pct(response[i])],
            })
            .collect();
        ChartData {
            categories: Category::ALL.iter().map(|c| c.as_str().into()).collect(),
            months,
            labels: crate::report::mail::chart_labels(Lang::Nl, 5, "oktober 2026"),
        }
    }

    /// Two months without complaints; the last responses not yet due.
    fn realistic() -> ChartData {
        let counts = "2100 0000 1210 3011 0100 2220 0000 1001 4120 1300 2011 1110";
        let ack = [100, -1, 75, 80, 100, 83, -1, 100, 86, 100, 75, 100];
        let response = [67, -1, 100, 60, 100, 50, -1, 100, 71, 75, -1, -1];
        year(counts, ack, response)
    }

    /// Renders, checks the PNG's size, and keeps it in `CHART_PNG_DIR` if
    /// set, to look at (`CHART_PNG_DIR=/tmp cargo test --lib report::chart`).
    fn render(d: &ChartData, name: &str) -> Pixmap {
        let png = render_png(d).expect("render");
        if let Some(dir) = std::env::var_os("CHART_PNG_DIR") {
            std::fs::write(std::path::Path::new(&dir).join(name), &png).expect("write");
        }
        let p = Pixmap::decode_png(&png).expect("a PNG");
        assert_eq!((p.width(), p.height()), (WIDTH, HEIGHT));
        p
    }

    /// How many pixels in rows `ys` are `like` that (RGBA, all opaque).
    fn count(p: &Pixmap, ys: std::ops::Range<usize>, like: impl Fn(&[u8]) -> bool) -> usize {
        let row = 4 * WIDTH as usize;
        let rows = &p.data()[ys.start * row..ys.end * row];
        rows.chunks(4).filter(|p| like(p)).count()
    }

    const DARK: fn(&[u8]) -> bool = |p| p[..3].iter().all(|&c| c < 100);

    fn colour(hex: &str) -> impl Fn(&[u8]) -> bool + '_ {
        |p| (0..3).all(|i| u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16) == Ok(p[i]))
    }

    #[test]
    fn a_year_of_complaints_shows_text_bars_in_every_category_colour_and_both_lines() {
        let px = render(&realistic(), "chart-sample.png");
        assert!(count(&px, 12..40, DARK) > 300, "the caption");
        assert!(count(&px, 282..320, DARK) > 300, "the month labels");
        for c in &PALETTE[..4] {
            assert!(count(&px, 78..278, colour(c)) > 400, "bars of {c}");
        }
        for c in TERM_COLORS {
            assert!(count(&px, 410..550, colour(c)) > 400, "line {c}");
        }
        let alt = alt_text(&realistic());
        let months = "nov 2025 3 (coaching 2, communicatie 1); dec 2025 0; jan 2026 4 (coaching 1";
        let ack = "(art. 5): nov 2025 100%, jan 2026 75%, feb 2026 80%, mrt 2026 100%, apr 2026";
        assert!(alt.contains(months) && alt.contains(ack), "{alt}");
        let response = "(art. 6): nov 2025 67%, jan 2026 100%, feb 2026 60%, mrt 2026 100%, \
            apr 2026 50%, jun 2026 100%, jul 2026 71%, aug 2026 75%.";
        assert!(alt.ends_with(response), "{alt}");
    }

    #[test]
    fn an_empty_year_has_axes_labels_and_notes_but_no_bars_or_lines() {
        let empty = year(&["0000"; 12].join(" "), [-1; 12], [-1; 12]);
        let px = render(&empty, "chart-empty.png");
        let coloured = |p: &[u8]| p[..3].iter().max().unwrap() - p[..3].iter().min().unwrap() > 60;
        assert_eq!(count(&px, 78..360, coloured), 0, "no bars");
        assert_eq!(count(&px, 410..HEIGHT as usize, coloured), 0, "no lines");
        assert!(count(&px, 160..195, |p| p[0] < 160) > 200, "the note");
        assert!(count(&px, 282..320, DARK) > 300, "the month labels");
        let alt = alt_text(&empty);
        let zeroes = alt.contains(": nov 2025 0; dec 2025 0; jan 2026 0; feb 2026 0; mrt");
        let nothing = alt.matches(": Nog niets gemeten").count() == 2;
        assert!(zeroes && nothing && alt.ends_with("gemeten."), "{alt}");
    }

    #[test]
    fn bad_input_gives_a_chart_not_a_panic() {
        let long = "x".repeat(2_000);
        let mut d = realistic();
        d.labels.per_month = format!("{long}\n\t<b>&amp;\u{0}");
        (d.months[1].label, d.months[2].label) = (long.clone(), String::new());
        (d.months[3].counts, d.months[4].counts) = (vec![usize::MAX, usize::MAX, 1], vec![]);
        d.months[5].on_time = [Some(f64::NAN), Some(f64::INFINITY)];
        d.months[6].on_time = [Some(7.0), Some(-1.0)];
        d.categories = (0..40).map(|i| format!("<{long}{i}>")).collect();
        d.labels.terms[0] = "\u{1b}[31m & \"".into();
        render(&d, "chart-bad.png");
        assert!(alt_text(&d).contains("; feb 2026 18446744073709551615 (<x"));
        (d.months, d.categories) = (Vec::new(), Vec::new());
        render(&d, "chart-nothing.png");
    }

    #[test]
    fn the_count_axis_steps_by_one_two_or_five() {
        let got = [0, 3, 7, 12, 45, 101].map(|max| format!("{:?}", scale(max)));
        let want = "(1.0, 1.0) (3.0, 1.0) (8.0, 2.0) (15.0, 5.0) (60.0, 20.0) (150.0, 50.0)";
        assert_eq!(got.join(" "), want);
    }
}
