//! The report's plot: loss curves of the selection split (val, else test) per configuration
//! (mean over seeds, with the min–max band), and each configuration's selection loss. A
//! successive-halving search's trials are drawn to the rung where they stopped, its rungs as
//! dashed lines, each trial's rung in its label and what the search ranked it by (hollow) where it
//! has no selection loss. Where runs measured their generations at several temperatures, a
//! panel below draws each configuration's frontier: its share of new samples against the
//! judge's gap, one point per temperature.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::Report;

type Curves = BTreeMap<PathBuf, Vec<(usize, f64)>>;

/// (step, mean, min, max) of the selection loss over a configuration's runs.
type Band = Vec<(usize, f64, f64, f64)>;

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// The curves on the left, each configuration's selection loss on the right, the frontiers
/// below where there are any, as SVG in `path`.
pub fn draw(path: &Path, report: &Report, curves: &Curves) -> Drawn {
    let frontiers = report.rows.iter().any(|r| frontier(r).len() > 1);
    let height = if frontiers { 1000 } else { 500 };
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(500);
    let (left, right) = top.split_horizontally(700);
    draw_curves(&left, report, curves)?;
    draw_best(&right, report)?;
    if frontiers {
        draw_frontiers(&bottom, report)?;
    }
    root.present()?;
    Ok(())
}

/// (temperature, judge gap, new share) at each temperature, means over a row's runs.
type Frontier = Vec<(f64, f64, f64)>;

fn frontier(row: &super::Row) -> Frontier {
    let mean = |g: &super::Generated, name: &str| g.figures.get(name).map(|s| s.mean);
    (row.frontier.iter())
        .filter_map(|g| Some((g.temperature, mean(g, "judge_gap")?, mean(g, "new")?)))
        .collect()
}

/// One curve per configuration: the share of new samples against the judge's gap, a point per
/// temperature, labelled with it; the plausible band (gap within `PLAUSIBLE_GAP`) shaded.
fn draw_frontiers(area: &DrawingArea<SVGBackend, Shift>, report: &Report) -> Drawn {
    let curves: Vec<(usize, Frontier)> = (report.rows.iter().enumerate())
        .map(|(i, row)| (i, frontier(row)))
        .filter(|(_, points)| points.len() > 1)
        .collect();
    let gaps = curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (lo, hi) = gaps.fold(
        (-super::PLAUSIBLE_GAP, super::PLAUSIBLE_GAP),
        |(lo, hi), g| (lo.min(g), hi.max(g)),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(
            "the temperature frontier: new samples against how plausible they are (labels: T)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(lo - 0.05..hi + 0.05, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("judge gap: nats/char of the new samples minus the test items' (0: as plausible)")
        .y_desc("share of samples that are new")
        .draw()?;
    let band = [(-super::PLAUSIBLE_GAP, 0.0), (super::PLAUSIBLE_GAP, 1.0)];
    chart.draw_series(std::iter::once(Rectangle::new(
        band,
        GREEN.mix(0.08).filled(),
    )))?;
    for (i, points) in curves {
        let colour = Palette99::pick(i);
        let line = points.iter().map(|p| (p.1, p.2));
        chart
            .draw_series(LineSeries::new(line, colour.stroke_width(2)))?
            .label(label(report, i))
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 16, y)],
                    Palette99::pick(i).stroke_width(2),
                )
            });
        for &(t, gap, new) in &points {
            let text = Text::new(format!("{t}"), (gap, new), ("sans-serif", 12));
            chart.draw_series([Circle::new((gap, new), 3, colour.filled())])?;
            chart.draw_series(std::iter::once(text))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Per row of the report: step → (mean, min, max) over its runs.
fn bands(report: &Report, curves: &Curves) -> Vec<(String, Band)> {
    let band = |row: &super::Row| {
        let mut by_step: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        // A search's stopped trial has no finished run, but its curve up to its rung.
        let stopped = row.search.as_ref().map(|t| &t.run);
        let runs: BTreeSet<&PathBuf> = row.runs.iter().chain(stopped).collect();
        for run in runs {
            for &(step, loss) in curves.get(run).map(Vec::as_slice).unwrap_or_default() {
                by_step.entry(step).or_default().push(loss);
            }
        }
        by_step
            .into_iter()
            .map(|(step, losses)| {
                let mean = losses.iter().sum::<f64>() / losses.len() as f64;
                let min = losses.iter().copied().fold(f64::INFINITY, f64::min);
                let max = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (step, mean, min, max)
            })
            .collect()
    };
    let rows = report.rows.iter().enumerate();
    rows.map(|(i, row)| (label(report, i), band(row))).collect()
}

/// The loss axis from `lo` to `hi` with a margin, or 0 to 1 when there is nothing to show.
fn loss_range(lo: f64, hi: f64) -> std::ops::Range<f64> {
    match lo.is_finite() {
        true => lo - 0.02..hi + 0.02,
        false => 0.0..1.0,
    }
}

fn draw_curves(area: &DrawingArea<SVGBackend, Shift>, report: &Report, curves: &Curves) -> Drawn {
    let bands = bands(report, curves);
    let all = bands.iter().flat_map(|(_, p)| p.iter());
    let (max_step, lo, hi) = all.fold(
        (1, f64::INFINITY, f64::NEG_INFINITY),
        |(s, lo, hi), &(step, _, min, max)| (s.max(step), lo.min(min), hi.max(max)),
    );
    let caption = match report.searches.as_slice() {
        [search] => format!(
            "selection loss by step; the search: {} of {} steps",
            search.steps, search.full_grid_steps
        ),
        _ => "selection loss (nats/char) by step".into(),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0..max_step, loss_range(lo, hi))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (nats/char)")
        .draw()?;
    let rungs: BTreeSet<usize> = (report.searches.iter())
        .flat_map(|s| s.rungs.iter().map(|r| r.steps))
        .collect();
    for steps in rungs {
        let line = [(steps, lo - 0.02), (steps, hi + 0.02)];
        chart.draw_series(DashedLineSeries::new(line, 4, 4, BLACK.mix(0.4).into()))?;
    }
    for (i, (name, points)) in bands.iter().enumerate() {
        let colour = Palette99::pick(i);
        let band: Vec<(usize, f64)> = points
            .iter()
            .map(|p| (p.0, p.3))
            .chain(points.iter().rev().map(|p| (p.0, p.2)))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(band, colour.mix(0.15))))?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.1)),
                colour.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 16, y)],
                    Palette99::pick(i).stroke_width(2),
                )
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn draw_best(area: &DrawingArea<SVGBackend, Shift>, report: &Report) -> Drawn {
    let best: Vec<(usize, f64, f64)> = report
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, row)| row.selection_loss.map(|s| (i, s.mean, s.std)))
        .collect();
    let ranked_by_search: Vec<(usize, f64)> = (report.rows.iter().enumerate())
        .filter(|(_, row)| row.selection_loss.is_none())
        .filter_map(|(i, row)| Some((i, row.search.as_ref()?.rung_loss?)))
        .collect();
    let spans = best.iter().map(|&(_, m, s)| (m - s, m + s));
    let (lo, hi) = (spans.chain(ranked_by_search.iter().map(|&(_, l)| (l, l))))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (a, b)| {
            (lo.min(a), hi.max(b))
        });
    let caption = match ranked_by_search.is_empty() {
        true => "selection loss per configuration (mean ± std)",
        false => "selection loss per configuration (mean ± std; hollow: rung val)",
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(-1i32..report.rows.len() as i32, loss_range(lo, hi))?;
    chart
        .configure_mesh()
        .x_desc("row of the report")
        .y_desc("loss (nats/char)")
        .disable_x_mesh()
        .draw()?;
    for &(i, mean, std) in &best {
        let colour = Palette99::pick(i);
        let point = (i as i32, mean);
        chart.draw_series(std::iter::once(Circle::new(point, 5, colour.filled())))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(i as i32, mean - std), (i as i32, mean + std)],
            colour.stroke_width(2),
        )))?;
    }
    for &(i, loss) in &ranked_by_search {
        let circle = Circle::new((i as i32, loss), 5, Palette99::pick(i).stroke_width(2));
        chart.draw_series(std::iter::once(circle))?;
    }
    Ok(())
}

/// "row i: key=value, ..." from the keys the rows differ in.
fn label(report: &Report, i: usize) -> String {
    let row = &report.rows[i];
    let keys: Vec<String> = row
        .keys
        .iter()
        .map(|(k, v)| format!("{}={v}", super::text::short(k)))
        .collect();
    let rung = row.search.as_ref().map_or(String::new(), |t| {
        format!(" [rung {} {}]", t.rung, t.fate.name())
    });
    match keys.is_empty() {
        true => format!("{i}: {}{rung}", row.model_type),
        false => format!("{i}: {}{rung}", keys.join(", ")),
    }
}
