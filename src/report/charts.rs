//! Charts as SVG, drawn with plotters from run-folder data only.
//!
//! Each chart is drawn at the size it is shown, so that its smallest text renders at
//! [`READABLE_PX`] or more (`tests/report_browser.rs` measures it in Chromium):
//!
//! - line charts and scatter plots ([`LINE_SIZE`]): two side by side on a desktop page, one across
//!   a 390 px phone (374 px of content, a scale of 0.85);
//! - class distributions ([`BARS_WIDTH`]): three side by side on a desktop page, horizontal bars
//!   so that long class names fit;
//! - confusion matrices: cells sized so that four classes fit a phone unscaled.
//!
//! An SVG inlined in the HTML report also gets a CSS `min-width` (see `report::inline_svg`), below
//! which its figure scrolls instead of shrinking the text further (galleries on a phone, a
//! confusion matrix of many classes).

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::run_dir::{EpochRow, StepRow};

/// The smallest text size, in CSS pixels as displayed, that every chart keeps.
pub const READABLE_PX: f64 = 11.0;
/// Line charts and scatter plots, without their legend (which goes below).
pub const LINE_SIZE: (u32, u32) = (440, 300);
/// A class-distribution chart, a third of the report's 1000 px column.
pub const BARS_WIDTH: u32 = 316;
/// The content width of a 390 px phone (the report's body padding is 8 px a side).
pub const PHONE_CONTENT: u32 = 374;
/// Text sizes in CSS pixels at a chart's natural size.
const TITLE_PX: f64 = 15.0;
const LABEL_PX: f64 = 13.5;
const SMALL_PX: f64 = 13.2;
/// Average advance of a character of the sans-serif fonts at 1 px (DejaVu Sans, Chromium's
/// default on Linux, is among the widest), to lay out labels before they are drawn.
const CHAR_EM: f64 = 0.6;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn chart_error(chart: &str, e: impl std::fmt::Display) -> Error {
    Error::Report(format!("cannot draw {chart}: {e}"))
}

/// A sans-serif font that renders at `px` CSS pixels: plotters' SVG backend writes a font of size
/// `s` as `font-size="s / 1.24"` (plotters-svg 0.3, `draw_text`).
fn font(px: f64) -> FontDesc<'static> {
    ("sans-serif", px * 1.24).into_font()
}

/// The width of `text` at `px`, estimated.
fn text_width(text: &str, px: f64) -> u32 {
    (text.chars().count() as f64 * px * CHAR_EM).ceil() as u32
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max.saturating_sub(1)).collect::<String>())
    }
}

/// A legend below a chart: a sample of each series' style and its name, flowed into rows.
struct Legend {
    entries: Vec<(String, ShapeStyle, bool)>,
}

const LEGEND_ROW: u32 = 20;
const LEGEND_SAMPLE: u32 = 22;

impl Legend {
    /// Where each entry goes in a row `width` wide: `(row, x)`.
    fn layout(&self, width: u32) -> Vec<(u32, u32)> {
        let (mut row, mut x) = (0, 8);
        self.entries
            .iter()
            .map(|(name, _, _)| {
                let wide = LEGEND_SAMPLE + 6 + text_width(name, SMALL_PX) + 16;
                if x > 8 && x + wide > width {
                    row += 1;
                    x = 8;
                }
                let at = (row, x);
                x += wide;
                at
            })
            .collect()
    }

    fn height(&self, width: u32) -> u32 {
        match self.layout(width).last() {
            Some((rows, _)) => (rows + 1) * LEGEND_ROW + 8,
            None => 0,
        }
    }

    fn draw(&self, area: &DrawingArea<SVGBackend, plotters::coord::Shift>, name: &str) -> Result<()> {
        let width = area.dim_in_pixel().0;
        for ((label, style, bar), (row, x)) in self.entries.iter().zip(self.layout(width)) {
            let y = (row * LEGEND_ROW + LEGEND_ROW / 2 + 4) as i32;
            let x = x as i32;
            if *bar {
                area.draw(&Rectangle::new([(x, y - 6), (x + LEGEND_SAMPLE as i32, y + 6)], *style)).map_err(|e| chart_error(name, e))?;
            } else {
                area.draw(&PathElement::new(vec![(x, y), (x + LEGEND_SAMPLE as i32, y)], *style)).map_err(|e| chart_error(name, e))?;
            }
            let text = TextStyle::from(font(SMALL_PX)).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&Text::new(label.clone(), (x + LEGEND_SAMPLE as i32 + 6, y), text)).map_err(|e| chart_error(name, e))?;
        }
        Ok(())
    }
}

/// Horizontal bars: images per class (one row each, class names on the left) for each named
/// part (one colour each; a legend when there are several).
pub fn class_distribution(title: &str, classes: &[String], parts: &[(&str, &[usize])]) -> Result<String> {
    const NAME: &str = "class distribution";
    let n = classes.len().max(1);
    let names: Vec<String> = classes.iter().map(|c| shorten(c, 20)).collect();
    let label_area = names.iter().map(|c| text_width(c, SMALL_PX)).max().unwrap_or(20) + 12;
    let row = 18 + 10 * parts.len().max(1) as u32;
    let legend = Legend {
        entries: if parts.len() > 1 {
            parts.iter().enumerate().map(|(p, (name, _))| (name.to_string(), PALETTE[p % PALETTE.len()].filled(), true)).collect()
        } else {
            Vec::new()
        },
    };
    let plot_height = 36 + row * n as u32 + 34;
    let (width, height) = (BARS_WIDTH, plot_height + legend.height(BARS_WIDTH));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_error(NAME, e))?;
        let (top, bottom) = root.split_vertically(plot_height);
        let max = parts.iter().flat_map(|(_, counts)| counts.iter()).copied().max().unwrap_or(1).max(1);
        // room right of the longest bar for its count
        let x_max = max as f64 * (1.0 + (text_width(&max.to_string(), SMALL_PX) as f64 + 10.0) / (width - label_area - 20) as f64);
        let mut chart = ChartBuilder::on(&top)
            .caption(title, font(TITLE_PX))
            .margin_left(4)
            .margin_right(12)
            .margin_top(4)
            .x_label_area_size(30)
            .y_label_area_size(label_area)
            .build_cartesian_2d(0f64..x_max, 0f64..n as f64)
            .map_err(|e| chart_error(NAME, e))?;
        let labels = names.clone();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_labels(4)
            .y_labels(n * 2 + 1)
            .label_style(font(SMALL_PX))
            .x_label_formatter(&|x| if *x <= max as f64 { format!("{x:.0}") } else { String::new() })
            .y_label_formatter(&|y| {
                // rows from the top: class 0 is drawn highest
                let index = y.floor() as usize;
                let centre = (y - y.floor() - 0.5).abs() < 1e-6;
                if centre { labels.get(n.saturating_sub(index + 1)).cloned().unwrap_or_default() } else { String::new() }
            })
            .draw()
            .map_err(|e| chart_error(NAME, e))?;
        let thickness = 0.8 / parts.len().max(1) as f64;
        for (p, (_, counts)) in parts.iter().enumerate() {
            let color = PALETTE[p % PALETTE.len()];
            let bottom_of = |c: usize| (n - 1 - c) as f64 + 0.9 - (p + 1) as f64 * thickness;
            let bars = counts.iter().enumerate().map(|(c, &count)| {
                let y = bottom_of(c);
                Rectangle::new([(0.0, y), (count as f64, y + thickness * 0.92)], color.filled())
            });
            chart.draw_series(bars).map_err(|e| chart_error(NAME, e))?;
            let texts = counts.iter().enumerate().map(|(c, &count)| {
                let y = bottom_of(c) + thickness * 0.46;
                let style = TextStyle::from(font(SMALL_PX)).pos(Pos::new(HPos::Left, VPos::Center));
                Text::new(count.to_string(), (count as f64 + max as f64 * 0.02, y), style)
            });
            chart.draw_series(texts).map_err(|e| chart_error(NAME, e))?;
        }
        legend.draw(&bottom, NAME)?;
        root.present().map_err(|e| chart_error(NAME, e))?;
    }
    Ok(svg)
}

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn thin and light, behind the others (e.g. per-step noise).
    pub faint: bool,
}

impl Series {
    pub fn new(name: &str, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.to_string(), points, faint: false }
    }

    pub fn faint(name: &str, points: Vec<(f64, f64)>) -> Self {
        Self { faint: true, ..Self::new(name, points) }
    }
}

/// A line chart of several named series of `(x, y)` points, its legend below.
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[Series], y_range: Option<(f64, f64)>) -> Result<String> {
    let (width, plot_height) = LINE_SIZE;
    let style_of = |i: usize, line: &Series| {
        let color = PALETTE[i % PALETTE.len()];
        if line.faint { color.mix(0.35).stroke_width(1) } else { color.stroke_width(2) }
    };
    let legend = Legend { entries: series.iter().enumerate().map(|(i, s)| (s.name.clone(), style_of(i, s), false)).collect() };
    let height = plot_height + legend.height(width);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_error(title, e))?;
        let (top, bottom) = root.split_vertically(plot_height);
        let points = || series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
        let x_max = points().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        let x_min = points().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let (x_min, x_max) = if x_min.is_finite() { (x_min, x_max.max(x_min + 1e-9)) } else { (0.0, 1.0) };
        let (y_min, y_max) = y_range.unwrap_or_else(|| {
            let lo = points().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let hi = points().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() {
                let pad = ((hi - lo) * 0.05).max(1e-9);
                (lo - pad, hi + pad)
            } else {
                (0.0, 1.0)
            }
        });
        let mut chart = axes(&top, title, (x_min..x_max, y_min..y_max))?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .label_style(font(SMALL_PX))
            .axis_desc_style(font(LABEL_PX))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| format_tick(*x))
            .y_label_formatter(&|y| format_tick(*y))
            .draw()
            .map_err(|e| chart_error(title, e))?;
        for (i, line) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = line.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            chart.draw_series(LineSeries::new(pts.clone(), style_of(i, line))).map_err(|e| chart_error(title, e))?;
            if !line.faint && pts.len() <= 60 {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| chart_error(title, e))?;
            }
        }
        legend.draw(&bottom, title)?;
        root.present().map_err(|e| chart_error(title, e))?;
    }
    Ok(svg)
}

/// The plotting area of a line chart or scatter plot, with its title.
fn axes<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    ChartBuilder::on(area)
        .caption(title, font(TITLE_PX))
        .margin(10)
        .x_label_area_size(44)
        .y_label_area_size(66)
        .build_cartesian_2d(x, y)
        .map_err(|e| chart_error(title, e))
}

fn format_tick(value: f64) -> String {
    if value == 0.0 {
        "0".into()
    } else if value.abs() < 1e-2 || value.abs() >= 1e4 {
        format!("{value:.1e}")
    } else {
        format!("{value:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Training and validation loss: per step (thin), per epoch (with markers).
pub fn loss_curves(epochs: &[EpochRow], steps: &[StepRow]) -> Result<String> {
    let steps_per_epoch = steps.iter().filter(|s| s.epoch == 1).count().max(1) as f64;
    let series = vec![
        Series::faint("train loss (per step)", steps.iter().map(|s| (s.step as f64 / steps_per_epoch, s.loss)).collect()),
        Series::new("train loss (epoch mean)", epochs.iter().map(|e| (e.epoch as f64, e.train_loss)).collect()),
        Series::new("validation loss", epochs.iter().map(|e| (e.epoch as f64, e.val_loss)).collect()),
    ];
    lines("Loss", "epoch", "cross-entropy", &series, None)
}

/// Validation accuracy, macro F1 and macro recall per epoch, with training accuracy.
pub fn metric_curves(epochs: &[EpochRow]) -> Result<String> {
    let per_epoch = |f: fn(&EpochRow) -> f64| epochs.iter().map(|e| (e.epoch as f64, f(e))).collect();
    let series = vec![
        Series::new("validation accuracy", per_epoch(|e| e.val_accuracy)),
        Series::new("validation macro F1", per_epoch(|e| e.val_macro_f1)),
        Series::new("validation macro recall", per_epoch(|e| e.val_macro_recall)),
        Series::new("train accuracy", per_epoch(|e| e.train_accuracy)),
    ];
    lines("Accuracy, F1 and recall", "epoch", "score", &series, Some((0.0, 1.0)))
}

/// The global gradient norm per step, before clipping.
pub fn grad_norm(steps: &[StepRow]) -> Result<String> {
    let series = vec![Series::new("gradient norm", steps.iter().map(|s| (s.step as f64, s.grad_norm)).collect())];
    lines("Gradient norm", "step", "L2 norm over all parameters", &series, None)
}

/// Learning rate per step.
pub fn learning_rate(steps: &[StepRow]) -> Result<String> {
    let series = vec![Series::new("learning rate", steps.iter().map(|s| (s.step as f64, s.lr)).collect())];
    lines("Learning rate", "step", "lr", &series, None)
}

/// A confusion matrix: counts in each cell, shaded by the row-normalised rate. Cells are sized so
/// that the matrix fits a phone's [`PHONE_CONTENT`] unscaled while they stay big enough for
/// their two lines (many classes make it wider; its figure then scrolls).
pub fn confusion(title: &str, classes: &[String], matrix: &[Vec<usize>]) -> Result<String> {
    let n = classes.len().max(1);
    let names: Vec<String> = classes.iter().map(|c| shorten(c, 24)).collect();
    let label_px = names.iter().map(|c| text_width(c, SMALL_PX)).max().unwrap_or(40) + 12;
    let left = label_px.max(60);
    let cell = (PHONE_CONTENT.saturating_sub(left + 12) / n as u32).clamp(46, 90);
    let top = 58u32;
    let width = (left + cell * n as u32 + 12).max(text_width(title, TITLE_PX) + 8);
    let height = top + cell * n as u32 + label_px + 34;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_error(title, e))?;
        let draw_err = |e| chart_error(title, e);
        root.draw(&Text::new(title.to_string(), (4, 8), font(TITLE_PX))).map_err(draw_err)?;
        for (r, row) in matrix.iter().enumerate() {
            let total: usize = row.iter().sum();
            for (c, &count) in row.iter().enumerate() {
                let rate = if total == 0 { 0.0 } else { count as f64 / total as f64 };
                let shade = (255.0 * (1.0 - 0.85 * rate)) as u8;
                let (x, y) = ((left + c as u32 * cell) as i32, (top + r as u32 * cell) as i32);
                root.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], RGBColor(shade, shade, 255).filled()))
                    .map_err(draw_err)?;
                root.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], BLACK.mix(0.2)))
                    .map_err(draw_err)?;
                let ink = if rate > 0.55 { WHITE } else { BLACK };
                let style = TextStyle::from(font(LABEL_PX)).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                let centre = (x + cell as i32 / 2, y + cell as i32 / 2);
                for (k, line) in [count.to_string(), format!("{:.0}%", rate * 100.0)].into_iter().enumerate() {
                    root.draw(&Text::new(line, (centre.0, centre.1 - 8 + 17 * k as i32), style.clone())).map_err(draw_err)?;
                }
            }
        }
        let label_style = TextStyle::from(font(SMALL_PX)).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, class) in names.iter().enumerate() {
            let y = (top + i as u32 * cell + cell / 2) as i32;
            root.draw(&Text::new(class.clone(), (left as i32 - 6, y), label_style.clone())).map_err(draw_err)?;
            let x = (left + i as u32 * cell + cell / 2) as i32;
            let below = (top + n as u32 * cell + 8) as i32;
            let rotated = TextStyle::from(font(SMALL_PX).transform(FontTransform::Rotate90)).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(class.clone(), (x, below), rotated)).map_err(draw_err)?;
        }
        let axis = font(SMALL_PX);
        root.draw(&Text::new("true class (rows)", (4, top as i32 - 22), axis.clone())).map_err(draw_err)?;
        root.draw(&Text::new("predicted class (columns)", (left as i32, height as i32 - 20), axis)).map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Points of `y` against `x` (markers joined in x order); `log_x` plots x on a log10 axis.
pub fn scatter(title: &str, x_desc: &str, y_desc: &str, points: &[(f64, f64)], log_x: bool) -> Result<String> {
    let mut points: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let project = |x: f64| if log_x { x.log10() } else { x };
    let xs: Vec<f64> = points.iter().map(|p| project(p.0)).collect();
    let (x_lo, x_hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let pad_x = ((x_hi - x_lo) * 0.08).max(1e-3);
    let (y_lo, y_hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let pad_y = ((y_hi - y_lo) * 0.15).max(0.01);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, LINE_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_error(title, e))?;
        let mut chart = axes(&root, title, ((x_lo - pad_x)..(x_hi + pad_x), (y_lo - pad_y)..(y_hi + pad_y)))?;
        let x_format = |x: &f64| if log_x { format!("{:.0e}", 10f64.powf(*x)) } else { format_tick(*x) };
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(6)
            .label_style(font(SMALL_PX))
            .axis_desc_style(font(LABEL_PX))
            .x_desc(if log_x { format!("{x_desc} (log scale)") } else { x_desc.to_string() })
            .y_desc(y_desc)
            .x_label_formatter(&x_format)
            .y_label_formatter(&|y| format_tick(*y))
            .draw()
            .map_err(|e| chart_error(title, e))?;
        let projected: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (project(x), y)).collect();
        chart
            .draw_series(LineSeries::new(projected.clone(), PALETTE[0].mix(0.5).stroke_width(1)))
            .map_err(|e| chart_error(title, e))?;
        chart
            .draw_series(projected.iter().map(|&p| Circle::new(p, 5, PALETTE[0].filled())))
            .map_err(|e| chart_error(title, e))?;
        root.present().map_err(|e| chart_error(title, e))?;
    }
    Ok(svg)
}
