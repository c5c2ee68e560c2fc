//! The report page's train-against-val panel: for a group's best configurations, the estimates
//! of train (dashed) and of the selection split (solid) by step, each a mean over seeds with the
//! min–max band, in the plot's colours. The gap between a configuration's two curves is what it
//! learnt of its training items that does not carry over to held-out ones.

use plotters::prelude::*;

use super::Report;
use super::plot::{Band, Curves, Strip, bands, colour, label, range};

/// The most configurations a panel draws: two curves each, more would not read.
const SHOWN: usize = 6;
const WIDTH: u32 = 1100;
const HEIGHT: u32 = 380;

/// One panel per group, as an SVG document each.
pub fn svgs(
    report: &Report,
    selection: &Curves,
    train: &Curves,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let strips = (report.groups.iter())
        .map(|group| Strip::new(report, group))
        .filter(|strip| !strip.rows.is_empty());
    strips
        .map(|strip| panel(&strip, selection, train))
        .collect()
}

fn panel(
    strip: &Strip,
    selection: &Curves,
    train: &Curves,
) -> Result<String, Box<dyn std::error::Error>> {
    let shown = |curves| -> Vec<Band> { bands(strip, curves).into_iter().take(SHOWN).collect() };
    let (selection, train) = (shown(selection), shown(train));
    let points = selection.iter().chain(&train).flatten();
    let (max_step, lo, hi) = points.fold(
        (1, f64::INFINITY, f64::NEG_INFINITY),
        |(s, lo, hi), &(step, _, min, max)| (s.max(step), lo.min(min), hi.max(max)),
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_horizontally(WIDTH - 380);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&strip.title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0..max_step + max_step / 40 + 1, range(lo, hi, 0.05))?;
        chart
            .configure_mesh()
            .x_desc("step; solid: the selection split (val), dashed: train; shaded: min to max over seeds")
            .y_desc("loss (nats/char)")
            .draw()?;
        for (place, (held_out, fitted)) in selection.iter().zip(&train).enumerate() {
            for (band, dashed) in [(held_out, false), (fitted, true)] {
                let edge =
                    (band.iter().map(|p| (p.0, p.3))).chain(band.iter().rev().map(|p| (p.0, p.2)));
                chart.draw_series([Polygon::new(
                    edge.collect::<Vec<_>>(),
                    colour(place).mix(0.12),
                )])?;
                let line = band.iter().map(|p| (p.0, p.1));
                let style = colour(place).stroke_width(2);
                match dashed {
                    true => chart.draw_series(DashedLineSeries::new(line, 6, 4, style))?,
                    false => chart.draw_series(LineSeries::new(line, style))?,
                };
            }
        }
        for (place, row) in strip.rows.iter().take(SHOWN).enumerate() {
            let y = 40 + place as i32 * 20;
            let swatch =
                PathElement::new(vec![(8, y + 7), (30, y + 7)], colour(place).stroke_width(3));
            legend.draw(&swatch)?;
            let text = label(strip, row, place, 52);
            legend.draw(&Text::new(text, (36, y), ("sans-serif", 13)))?;
        }
        root.present()?;
    }
    Ok(svg)
}
