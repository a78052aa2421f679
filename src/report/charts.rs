//! Charts as SVG, drawn with plotters from run-folder data only.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::run_dir::{EpochRow, StepRow};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 420;
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

type Chart2d<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The series legend, boxed, in the upper right corner.
fn draw_legend<'a, 'b: 'a>(chart: &mut Chart2d<'a, 'b>, name: &str) -> Result<()> {
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| chart_error(name, e))
}

/// Grouped bars: images per class (x) for each named part (one colour each).
pub fn class_distribution(title: &str, classes: &[String], parts: &[(&str, &[usize])]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_error("class distribution", e))?;
        let max = parts.iter().flat_map(|(_, counts)| counts.iter()).copied().max().unwrap_or(1).max(1);
        let n = classes.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, 0f64..max as f64 * 1.35)
            .map_err(|e| chart_error("class distribution", e))?;
        let labels = classes.to_vec();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let index = x.floor() as usize;
                let centre = (x - x.floor() - 0.5).abs() < 1e-6;
                if centre { labels.get(index).cloned().unwrap_or_default() } else { String::new() }
            })
            .y_desc("images")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| chart_error("class distribution", e))?;
        let width = 0.8 / parts.len().max(1) as f64;
        for (p, (name, counts)) in parts.iter().enumerate() {
            let color = PALETTE[p % PALETTE.len()];
            let bars = counts.iter().enumerate().map(|(c, &count)| {
                let left = c as f64 + 0.1 + p as f64 * width;
                Rectangle::new([(left, 0.0), (left + width * 0.95, count as f64)], color.filled())
            });
            chart
                .draw_series(bars)
                .map_err(|e| chart_error("class distribution", e))?
                .label(format!("{name} ({})", counts.iter().sum::<usize>()))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
            let texts = counts.iter().enumerate().map(|(c, &count)| {
                let centre = c as f64 + 0.1 + p as f64 * width + width * 0.45;
                Text::new(count.to_string(), (centre, count as f64 + max as f64 * 0.02), TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom)))
            });
            chart.draw_series(texts).map_err(|e| chart_error("class distribution", e))?;
        }
        draw_legend(&mut chart, "class distribution")?;
        root.present().map_err(|e| chart_error("class distribution", e))?;
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

/// A line chart of several named series of `(x, y)` points.
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[Series], y_range: Option<(f64, f64)>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_error(title, e))?;
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
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_min..x_max, y_min..y_max)
            .map_err(|e| chart_error(title, e))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&|y| format_tick(*y))
            .draw()
            .map_err(|e| chart_error(title, e))?;
        for (i, line) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = line.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            let style = if line.faint { color.mix(0.35).stroke_width(1) } else { color.stroke_width(2) };
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(|e| chart_error(title, e))?
                .label(line.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
            if !line.faint && pts.len() <= 60 {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| chart_error(title, e))?;
            }
        }
        draw_legend(&mut chart, title)?;
        root.present().map_err(|e| chart_error(title, e))?;
    }
    Ok(svg)
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

/// A confusion matrix: counts in each cell, shaded by the row-normalised rate.
pub fn confusion(title: &str, classes: &[String], matrix: &[Vec<usize>]) -> Result<String> {
    let n = classes.len().max(1);
    let cell = (360 / n as u32).clamp(40, 110);
    // label space from the longest class name (about 7 px per character at 12 px)
    let label_px = classes.iter().map(|c| c.chars().count() as u32 * 7 + 12).max().unwrap_or(40);
    let (left, top) = (label_px.max(110), 60u32);
    let (width, height) = (left + cell * n as u32 + 30, top + cell * n as u32 + label_px + 40);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_error(title, e))?;
        let draw_err = |e| chart_error(title, e);
        root.draw(&Text::new(title.to_string(), (left as i32, 20), ("sans-serif", 18))).map_err(draw_err)?;
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
                let style = TextStyle::from(("sans-serif", 14).into_font()).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                let label = format!("{count}\n{:.0}%", rate * 100.0);
                let centre = (x + cell as i32 / 2, y + cell as i32 / 2);
                for (k, line) in label.lines().enumerate() {
                    root.draw(&Text::new(line.to_string(), (centre.0, centre.1 - 8 + 16 * k as i32), style.clone()))
                        .map_err(draw_err)?;
                }
            }
        }
        let label_style = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, class) in classes.iter().enumerate() {
            let y = (top + i as u32 * cell + cell / 2) as i32;
            root.draw(&Text::new(class.clone(), (left as i32 - 6, y), label_style.clone())).map_err(draw_err)?;
            let x = (left + i as u32 * cell + cell / 2) as i32;
            let below = (top + n as u32 * cell + 8) as i32;
            let rotated = TextStyle::from(("sans-serif", 12).into_font().transform(FontTransform::Rotate90)).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(class.clone(), (x, below), rotated)).map_err(draw_err)?;
        }
        let axis = ("sans-serif", 13).into_font();
        root.draw(&Text::new("true class (rows)", (4, top as i32 - 20), axis.clone())).map_err(draw_err)?;
        root.draw(&Text::new("predicted class (columns)", (left as i32, height as i32 - 16), axis)).map_err(draw_err)?;
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
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_error(title, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo - pad_x)..(x_hi + pad_x), (y_lo - pad_y)..(y_hi + pad_y))
            .map_err(|e| chart_error(title, e))?;
        let x_format = |x: &f64| if log_x { format!("{:.1e}", 10f64.powf(*x)) } else { format_tick(*x) };
        chart
            .configure_mesh()
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
