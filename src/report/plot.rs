//! The report's plot, one strip per group of comparable runs (same data and split): the loss
//! curves of the selection split per configuration (mean over seeds, the min–max band shaded),
//! a legend beside them, and the configurations in the ranking's order with the ranked figure's
//! 95% confidence interval and the ties with the top row marked as the table marks them. A
//! successive-halving search's trials are drawn to the rung where they stopped, its rungs as
//! dashed lines, each trial's rung in its label and what the search ranked it by (hollow) where
//! it has no ranked figure. Where runs measured their generations at several temperatures, a
//! panel below draws each configuration's frontier: its share of new samples against the
//! judge's gap, one point per temperature.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Report, Row};

pub(super) type Curves = BTreeMap<PathBuf, Vec<(usize, f64)>>;

/// (step, mean, min, max) of the selection loss over a configuration's runs.
pub(super) type Band = Vec<(usize, f64, f64, f64)>;

type Drawn = Result<(), Box<dyn std::error::Error>>;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const WIDTH: u32 = 1400;
/// The heights of a group's title, its curves and ranking, and its frontier panel.
const TITLE: u32 = 30;
const STRIP: u32 = 470;
const FRONTIER: u32 = 430;
/// The most characters of a configuration's name in the legend.
const LEGEND_CHARS: usize = 40;

/// A group's rows, in the ranking's order; a row's colour is its place here.
pub(super) struct Strip<'a> {
    pub(super) title: String,
    pub(super) rows: Vec<&'a Row>,
    /// The configuration keys its rows differ in, which name them.
    keys: Vec<&'a str>,
}

impl<'a> Strip<'a> {
    pub(super) fn new(report: &'a Report, group: &super::Group) -> Strip<'a> {
        let rows: Vec<&Row> = report.rows.iter().filter(|r| r.group == group.id).collect();
        let values = |key: &str| -> BTreeSet<Option<&String>> {
            rows.iter().map(|r| r.keys.get(key)).collect()
        };
        // The model's type first: it says the most.
        let mut keys: Vec<&str> = (report.columns.iter())
            .filter(|key| values(key).len() > 1)
            .map(String::as_str)
            .collect();
        keys.sort_by_key(|k| *k != "model.type");
        Strip {
            title: super::text::group_title(report, group),
            rows,
            keys,
        }
    }

    fn has_frontier(&self) -> bool {
        self.rows.iter().any(|r| frontier(r).len() > 1)
    }

    fn height(&self) -> u32 {
        TITLE + STRIP + if self.has_frontier() { FRONTIER } else { 0 }
    }
}

/// Every group's strip, one below the other, as SVG in `path`.
pub fn draw(path: &Path, report: &Report, curves: &Curves) -> Drawn {
    crate::files::write_atomic(path, svg(report, curves)?.as_bytes())?;
    Ok(())
}

/// Every group's strip, one below the other, as an SVG document.
pub fn svg(report: &Report, curves: &Curves) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = String::new();
    {
        let strips: Vec<Strip> = (report.groups.iter())
            .map(|group| Strip::new(report, group))
            .filter(|strip| !strip.rows.is_empty())
            .collect();
        let height = strips
            .iter()
            .map(Strip::height)
            .sum::<u32>()
            .max(TITLE + STRIP);
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut rest = root.clone();
        for strip in &strips {
            let (area, below) = rest.split_vertically(strip.height());
            draw_strip(&area, report, strip, curves)?;
            rest = below;
        }
        root.present()?;
    }
    Ok(out)
}

/// A group's title, its curves, the legend, its ranking and, where there is one, its frontier.
fn draw_strip(area: &Area, report: &Report, strip: &Strip, curves: &Curves) -> Drawn {
    let (title, body) = area.split_vertically(TITLE);
    title.draw(&Text::new(
        strip.title.clone(),
        (12, 8),
        ("sans-serif", 18).into_font().style(FontStyle::Bold),
    ))?;
    let (top, bottom) = body.split_vertically(STRIP);
    let (curves_area, rest) = top.split_horizontally(560);
    // As wide as its longest name (about 7 pixels a character), beside its colour.
    let names = (strip.rows.iter().enumerate()).map(|(p, r)| label(strip, r, p, LEGEND_CHARS));
    let widest = names.map(|n| n.chars().count()).max().unwrap_or(0);
    let (legend, ranking) = rest.split_horizontally(60 + 7 * widest as u32);
    draw_curves(&curves_area, report, strip, curves)?;
    draw_legend(&legend, strip)?;
    draw_ranking(&ranking, report, strip)?;
    if strip.has_frontier() {
        draw_frontiers(&bottom, strip)?;
    }
    Ok(())
}

pub(super) fn colour(place: usize) -> PaletteColor<Palette99> {
    Palette99::pick(place)
}

/// "2. n_embd=64, lr=0.001": the row's place in the ranking, its rung where it is a search's
/// trial, and the keys its strip's rows differ in (its model where they differ in none); at
/// most `width` characters.
pub(super) fn label(strip: &Strip, row: &Row, place: usize, width: usize) -> String {
    let value = |key: &str| row.keys.get(key).map_or("-", String::as_str).to_string();
    // The model's type says itself: "transformer", not "type=transformer".
    let keys: Vec<String> = (strip.keys.iter())
        .map(|&k| match k {
            "model.type" => value(k),
            _ => format!("{}={}", super::text::short(k), value(k)),
        })
        .collect();
    let rung = row.search.as_ref().map_or(String::new(), |t| {
        format!("[rung {} {}] ", t.rung, t.fate.name())
    });
    let name = match keys.is_empty() {
        true => row.model_type.clone(),
        false => keys.join(", "),
    };
    let full = format!("{}. {rung}{name}", place + 1);
    match full.chars().count() > width {
        true => full.chars().take(width - 1).chain(['…']).collect(),
        false => full,
    }
}

/// The colour of each configuration and its name, in the ranking's order, beside the curves.
fn draw_legend(area: &Area, strip: &Strip) -> Drawn {
    let line_height = 18;
    for (place, row) in strip.rows.iter().enumerate() {
        let y = 40 + place as i32 * line_height;
        if y > STRIP as i32 - 20 {
            let more = format!("… {} more", strip.rows.len() - place);
            area.draw(&Text::new(more, (8, y), ("sans-serif", 13)))?;
            break;
        }
        let swatch = PathElement::new(vec![(8, y + 7), (30, y + 7)], colour(place).stroke_width(3));
        area.draw(&swatch)?;
        let text = label(strip, row, place, LEGEND_CHARS);
        area.draw(&Text::new(text, (36, y), ("sans-serif", 13)))?;
    }
    Ok(())
}

/// Per row of the strip: step → (mean, min, max) over its runs.
pub(super) fn bands(strip: &Strip, curves: &Curves) -> Vec<Band> {
    let band = |row: &Row| {
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
    strip.rows.iter().map(|row| band(row)).collect()
}

/// The axis from `lo` to `hi` with a margin of `pad` of its span, or 0 to 1 when there is
/// nothing to show.
pub(super) fn range(lo: f64, hi: f64, pad: f64) -> std::ops::Range<f64> {
    let margin = ((hi - lo) * pad).max(1e-3);
    match lo.is_finite() && hi.is_finite() {
        true => lo - margin..hi + margin,
        false => 0.0..1.0,
    }
}

fn draw_curves(area: &Area, report: &Report, strip: &Strip, curves: &Curves) -> Drawn {
    let bands = bands(strip, curves);
    let all = bands.iter().flat_map(|p| p.iter());
    let (max_step, lo, hi) = all.fold(
        (1, f64::INFINITY, f64::NEG_INFINITY),
        |(s, lo, hi), &(step, _, min, max)| (s.max(step), lo.min(min), hi.max(max)),
    );
    let caption = match report.searches.as_slice() {
        [search] => format!(
            "selection loss by step (search: {} of {} steps)",
            search.steps, search.full_grid_steps
        ),
        _ => "selection loss by step".into(),
    };
    let y = range(lo, hi, 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(56)
        .build_cartesian_2d(0..max_step + max_step / 40 + 1, y.clone())?;
    chart
        .configure_mesh()
        .x_desc("step; line: mean over seeds, shaded: their min to max")
        .y_desc("loss (nats/char)")
        .draw()?;
    let rungs: BTreeSet<usize> = (report.searches.iter())
        .flat_map(|s| s.rungs.iter().map(|r| r.steps))
        .collect();
    for steps in rungs {
        let line = [(steps, y.start), (steps, y.end)];
        chart.draw_series(DashedLineSeries::new(line, 4, 4, BLACK.mix(0.4).into()))?;
    }
    for (place, points) in bands.iter().enumerate() {
        let band: Vec<(usize, f64)> = (points.iter().map(|p| (p.0, p.3)))
            .chain(points.iter().rev().map(|p| (p.0, p.2)))
            .collect();
        chart.draw_series([Polygon::new(band, colour(place).mix(0.15))])?;
        let line = points.iter().map(|p| (p.0, p.1));
        chart.draw_series(LineSeries::new(line, colour(place).stroke_width(2)))?;
        // A dot at each estimate, so that a curve of one estimate shows too.
        let dots = points
            .iter()
            .map(|p| Circle::new((p.0, p.1), 2, colour(place).filled()));
        chart.draw_series(dots)?;
    }
    Ok(())
}

/// What the ranking panel draws of a row: its ranked figure with the CI's half-width, or the
/// score a search ranked a stopped trial by (hollow), and how it compares with the top row.
struct Ranked {
    mean: f64,
    half_width: Option<f64>,
    hollow: bool,
    mark: String,
}

/// A row's ranked figure and its 95% CI's half-width (none for a row `--by` merged from several
/// configurations, as in the table), or for a trial a search stopped, what the search ranked it
/// by (and `true`: drawn hollow). Every chart of the report draws a row by this.
pub(super) fn figure(row: &Row) -> Option<(f64, Option<f64>, bool)> {
    match (row.ranked, row.search.as_ref().and_then(|t| t.rung_loss)) {
        (Some(stat), _) => Some((
            stat.mean,
            stat.ci95.filter(|_| row.configurations == 1),
            false,
        )),
        (None, Some(loss)) => Some((loss, None, true)),
        _ => None,
    }
}

fn ranked(place: usize, row: &Row) -> Option<Ranked> {
    let (mean, half_width, hollow) = figure(row)?;
    let mark = match (hollow, place, row.tied_with_top, row.p_vs_top) {
        (true, ..) => String::new(),
        (_, 0, _, _) => "top".into(),
        (_, _, Some(true), _) => super::text::fmt_vs_top(row),
        (_, _, Some(false), Some(p)) if p < 0.001 => "p<0.001".into(),
        (_, _, Some(false), Some(p)) => format!("p={p:.3}"),
        _ => String::new(),
    };
    Some(Ranked {
        mean,
        half_width,
        hollow,
        mark,
    })
}

/// The configurations top to bottom in the ranking's order, named on the axis: the ranked
/// figure's mean with its 95% CI as a bar, the top row's mean as a dashed line, each row's
/// comparison with the top row beside it (`tie p=…` as the table writes it).
fn draw_ranking(area: &Area, report: &Report, strip: &Strip) -> Drawn {
    let points: Vec<(usize, Ranked)> = (strip.rows.iter().enumerate())
        .filter_map(|(place, row)| Some((place, ranked(place, row)?)))
        .collect();
    let spans = points.iter().map(|(_, r)| {
        let h = r.half_width.unwrap_or(0.0);
        (r.mean - h, r.mean + h)
    });
    let (lo, hi) = spans.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (a, b)| {
        (lo.min(a), hi.max(b))
    });
    let n = strip.rows.len() as i32;
    let names: Vec<String> = (strip.rows.iter().enumerate())
        .map(|(place, row)| label(strip, row, place, 34))
        .collect();
    let x = range(lo, hi, 0.25);
    // About 6.5 pixels per character of the axis's 12-point labels.
    let widest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut chart = ChartBuilder::on(area)
        .caption(report.rank_by.describe(), ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(16 + (widest as f64 * 6.5) as u32)
        .build_cartesian_2d(x.clone(), (0..n).into_segmented())?;
    // Row `place` sits at n − 1 − place, so that the top row is drawn at the top.
    let at = |place: usize| SegmentValue::CenterOf(n - 1 - place as i32);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(strip.rows.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => (usize::try_from(n - 1 - i).ok())
                .and_then(|place| names.get(place).cloned())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(match points.iter().any(|(_, r)| r.hollow) {
            true => "dot: mean over seeds; bar: 95% CI (Student t); hollow: rung val",
            false => "dot: mean over seeds; bar: its 95% CI (Student t)",
        })
        .draw()?;
    if let Some((_, top)) = points.iter().find(|(place, _)| *place == 0) {
        let line = [(top.mean, at(n as usize - 1)), (top.mean, at(0))];
        chart.draw_series(DashedLineSeries::new(line, 3, 3, BLACK.mix(0.5).into()))?;
    }
    for (place, point) in &points {
        let style = colour(*place);
        if let Some(h) = point.half_width {
            let bar = vec![(point.mean - h, at(*place)), (point.mean + h, at(*place))];
            chart.draw_series([PathElement::new(bar, style.stroke_width(2))])?;
        }
        let dot = match point.hollow {
            true => Circle::new((point.mean, at(*place)), 5, style.stroke_width(2)),
            false => Circle::new((point.mean, at(*place)), 5, style.filled()),
        };
        chart.draw_series([dot])?;
        let right = point.mean + point.half_width.unwrap_or(0.0);
        // The mark just right of and above the bar's end, clear of the dot.
        let mark = Text::new(point.mark.clone(), (8, -14), ("sans-serif", 12));
        chart.draw_series([EmptyElement::at((right, at(*place))) + mark])?;
    }
    Ok(())
}

/// (temperature, judge gap, new share) at each temperature, means over a row's runs.
type Frontier = Vec<(f64, f64, f64)>;

fn frontier(row: &Row) -> Frontier {
    let mean = |g: &super::Generated, name: &str| g.figures.get(name).map(|s| s.mean);
    (row.frontier.iter())
        .filter_map(|g| Some((g.temperature, mean(g, "judge_gap")?, mean(g, "new")?)))
        .collect()
}

/// One curve per configuration (its legend's colour): the share of new samples against the
/// judge's gap, a point per temperature, labelled with it; the plausible band (gap within
/// `PLAUSIBLE_GAP`) shaded.
fn draw_frontiers(area: &Area, strip: &Strip) -> Drawn {
    let curves: Vec<(usize, Frontier)> = (strip.rows.iter().enumerate())
        .map(|(place, row)| (place, frontier(row)))
        .filter(|(_, points)| points.len() > 1)
        .collect();
    let gaps = curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (lo, hi) = gaps.fold(
        (-super::PLAUSIBLE_GAP, super::PLAUSIBLE_GAP),
        |(lo, hi), g| (lo.min(g), hi.max(g)),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(
            "the temperature frontier: new samples against how plausible they are \
             (labels: T; shaded: a gap within ±0.1, as plausible as held-out items)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(lo - 0.05..hi + 0.05, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("judge gap: nats/char of the new samples minus the test items' (0: as plausible)")
        .y_desc("share of samples that are new")
        .draw()?;
    let band = [(-super::PLAUSIBLE_GAP, 0.0), (super::PLAUSIBLE_GAP, 1.0)];
    chart.draw_series([Rectangle::new(band, GREEN.mix(0.08).filled())])?;
    for (place, points) in curves {
        let line = points.iter().map(|p| (p.1, p.2));
        chart.draw_series(LineSeries::new(line, colour(place).stroke_width(2)))?;
        for &(t, gap, new) in &points {
            chart.draw_series([Circle::new((gap, new), 3, colour(place).filled())])?;
            let label = Text::new(format!("{t}"), (6, -14), ("sans-serif", 12));
            chart.draw_series([EmptyElement::at((gap, new)) + label])?;
        }
    }
    Ok(())
}
