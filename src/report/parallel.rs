//! Parallel coordinates for the report's page, one chart per group of comparable runs: one
//! vertical axis per setting the rows differ in and one for the ranked figure, each row a line
//! through its values, coloured by its ranked figure (dark: the best, yellow: the worst) and the
//! best drawn last, so that the settings the best rows share line up on top. A trial a search
//! stopped stands at its rung val, as in the plot.

use plotters::prelude::*;

use std::collections::BTreeSet;

use super::plot::figure;
use super::{Report, Row};

/// Each group's chart (of its rows with a figure, where there are two or more) as SVG.
pub fn svgs(report: &Report) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let axes: Vec<Axis> = (report.columns.iter())
        .map(|k| Axis::of(report, k))
        .collect();
    let mut charts = Vec::new();
    for group in &report.groups {
        let rows = report.rows.iter().filter(|r| r.group == group.id);
        let lines: Vec<Vec<Option<f64>>> =
            rows.filter_map(|row| line(report, &axes, row)).collect();
        if lines.len() > 1 {
            let title = super::text::group_title(report, group);
            charts.push(chart(report, &axes, &title, lines)?);
        }
    }
    Ok(charts)
}

/// A row's place on each axis, its ranked figure last.
fn line(report: &Report, axes: &[Axis], row: &Row) -> Option<Vec<Option<f64>>> {
    let ranked = figure(row)?.0;
    let mut values: Vec<Option<f64>> = (report.columns.iter().zip(axes))
        .map(|(key, axis)| axis.position(row.keys.get(key)?))
        .collect();
    values.push(Some(ranked));
    Some(values)
}

fn chart(
    report: &Report,
    axes: &[Axis],
    title: &str,
    mut lines: Vec<Vec<Option<f64>>>,
) -> Result<String, Box<dyn std::error::Error>> {
    let count = report.columns.len() + 1;
    // Each axis from its lowest value (bottom) to its highest (top).
    let spans: Vec<(f64, f64)> = (0..count)
        .map(|i| {
            let column = lines.iter().filter_map(|v| v[i]);
            column.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            })
        })
        .collect();
    let scaled = |i: usize, x: f64| match spans[i].1 - spans[i].0 {
        d if d > 0.0 => (x - spans[i].0) / d,
        _ => 0.5,
    };
    // The worst first, so that the best are drawn over them.
    let figure = |v: &Vec<Option<f64>>| v[count - 1].unwrap_or(f64::NAN);
    lines.sort_by(|a, b| figure(b).total_cmp(&figure(a)));
    let mut svg = String::new();
    {
        let width = 160 * count as u32 + 80;
        let root = SVGBackend::with_string(&mut svg, (width, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(30)
            .build_cartesian_2d(-0.3..count as f64 - 0.7, -0.08..1.08)?;
        for (i, &(lo, hi)) in spans.iter().enumerate() {
            let x = i as f64;
            chart.draw_series([PathElement::new(vec![(x, 0.0), (x, 1.0)], BLACK)])?;
            let title = match report.columns.get(i) {
                Some(key) => key.clone(),
                None => "ranked figure".into(),
            };
            let (lo, hi) = (end_label(axes, i, lo), end_label(axes, i, hi));
            for (text, y) in [(title, -0.07), (lo, -0.02), (hi, 1.05)] {
                chart.draw_series([Text::new(text, (x - 0.25, y), ("sans-serif", 12))])?;
            }
        }
        for values in &lines {
            let points: Vec<(f64, f64)> = (values.iter().enumerate())
                .filter_map(|(i, v)| Some((i as f64, scaled(i, (*v)?))))
                .collect();
            let shade = ViridisRGB.get_color(scaled(count - 1, figure(values)) as f32);
            chart.draw_series([PathElement::new(points, shade.stroke_width(2))])?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// What an axis's end stands for: the setting's value (undoing the logarithm), or the figure.
fn end_label(axes: &[Axis], i: usize, position: f64) -> String {
    match axes.get(i) {
        Some(axis) if axis.log => significant(10f64.powf(position)),
        Some(axis) => (axis.values.get(position.round() as usize))
            .filter(|_| !axis.numeric)
            .cloned()
            .unwrap_or_else(|| format!("{position}")),
        None => format!("{position:.4}"),
    }
}

/// `x` to three significant digits, as short as it writes: 0.00316 and 20, not 3.162e-3 and
/// 20.000.
pub(super) fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let scale = 10f64.powi(2 - x.abs().log10().floor() as i32);
    // A whole number over a power of ten: the division rounds to the double nearest the decimal.
    match scale >= 1.0 {
        true => ((x * scale).round() / scale).to_string(),
        false => ((x * scale).round() * (1.0 / scale).round()).to_string(),
    }
}

/// A setting's values as positions on an axis: numbers as they are (their logarithm where they
/// span a factor of 10 or more, as learning rates do), anything else by its sorted place.
pub(super) struct Axis {
    pub(super) values: Vec<String>,
    pub(super) log: bool,
    pub(super) numeric: bool,
}

impl Axis {
    pub(super) fn of(report: &Report, key: &str) -> Axis {
        let values: BTreeSet<String> = (report.rows.iter())
            .filter_map(|r| r.keys.get(key).cloned())
            .collect();
        let numbers: Option<Vec<f64>> = values.iter().map(|v| v.parse().ok()).collect();
        let numeric = numbers.is_some();
        let numbers = numbers.unwrap_or_default();
        let (lo, hi) = numbers
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let log = numeric && lo > 0.0 && hi / lo >= 10.0;
        Axis {
            values: values.into_iter().collect(),
            log,
            numeric,
        }
    }

    /// Where `value` sits on the axis.
    pub(super) fn position(&self, value: &str) -> Option<f64> {
        match (self.numeric, value.parse::<f64>()) {
            (true, Ok(x)) if self.log => Some(x.log10()),
            (true, Ok(x)) => Some(x),
            _ => self
                .values
                .iter()
                .position(|v| v == value)
                .map(|i| i as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::significant;

    #[test]
    fn three_significant_digits_written_short() {
        let cases = [
            (0.001, "0.001"),
            (0.0031622776, "0.00316"),
            (20.0, "20"),
            (2.46781, "2.47"),
            (123456.0, "123000"),
            (-0.5, "-0.5"),
            (0.0, "0"),
        ];
        for (x, written) in cases {
            assert_eq!(significant(x), written, "{x}");
        }
    }
}
