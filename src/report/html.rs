//! `report --html`: the report as one page that opens from disk in any browser and needs nothing
//! else: each group's ranked table (sortable by any column, the top row and its ties marked),
//! the plot (curves with the seeds' bands, the ranking with its confidence intervals, the
//! frontier), the ranked figure against each setting the rows differ in and, where they differ
//! in several, parallel coordinates; a search's rungs; the legend; and each configuration's last
//! samples, marked. Its only code sorts the tables; its Content-Security-Policy allows no
//! request at all, so that the page cannot reach the network.

use std::fmt::Write;

use plotters::prelude::*;

use super::parallel::Axis;
use super::plot::figure;
use super::{Report, Row, plot, text};

type Made = Result<String, Box<dyn std::error::Error>>;

/// The whole page.
pub fn page(report: &Report, curves: &plot::Curves, train: &plot::Curves) -> Made {
    let mut out = String::from(HEAD);
    out.push_str("<h1>makemore report</h1>\n");
    tables(&mut out, report);
    let legend = text::legend(report);
    let _ = write!(
        out,
        "<h2>What the columns mean</h2>\n<pre class=\"legend\">{}</pre>\n",
        escape(&legend)
    );
    let _ = write!(
        out,
        "<h2>Curves and ranking</h2>\n{}\n",
        plot::svg(report, curves)?
    );
    out.push_str("<h2>Train against val</h2>\n");
    for panel in super::fit::svgs(report, curves, train)? {
        let _ = writeln!(out, "{panel}");
    }
    settings(&mut out, report)?;
    searches(&mut out, report);
    gallery(&mut out, report);
    out.push_str(SCRIPT);
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>makemore report</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
div.wide { overflow-x: auto; max-width: 100%; }
svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 1em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }
th:hover { background: #e4e4e4; }
tr.top td { font-weight: bold; }
tr.tie td { background: #fff6d5; }
pre.legend { font-size: 12px; white-space: pre-wrap; max-width: 110em; }
.samples { display: flex; flex-wrap: wrap; gap: 1em; }
.samples section { border: 1px solid #ddd; padding: 0.5em 1em; min-width: 14em; }
.samples ul { list-style: none; padding: 0; margin: 0; font-family: monospace; }
li.new::after { content: " new"; color: #2a7; font-size: 11px; }
li.in-train::after { content: " in train"; color: #c33; font-size: 11px; }
li.held-out::after { content: " held-out hit"; color: #36c; font-size: 11px; }
</style>
</head>
<body>
"#;

/// Sorts a table by the column whose heading is clicked (numbers as numbers, "-" last); a
/// second click reverses. A link to `page.html#sort=test` opens it sorted by that column
/// (`#sort=-test`: descending). `data-ready` tells a test the script ran.
const SCRIPT: &str = r#"<script>
for (const table of document.querySelectorAll("table.ranked")) {
  table.querySelectorAll("th").forEach((th, column) => {
    th.addEventListener("click", () => {
      const body = table.tBodies[0];
      const up = th.dataset.order !== "up";
      th.dataset.order = up ? "up" : "down";
      const key = (row) => {
        const text = row.cells[column].textContent.trim();
        const number = parseFloat(text.replace(/^[^0-9.-]*/, ""));
        return text === "-" ? null : (isNaN(number) ? text : number);
      };
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        if (x === null || y === null) return (x === null) - (y === null);
        const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return up ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
}
const asked = decodeURIComponent(location.hash).match(/^#sort=(-?)(.+)$/);
if (asked) {
  for (const th of document.querySelectorAll("table.ranked th")) {
    if (th.textContent === asked[2]) {
      th.click();
      if (asked[1]) th.click();
    }
  }
}
document.body.dataset.ready = "yes";
</script>
"#;

pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Each group's table: the report's own cells, its rows in the ranking's order.
fn tables(out: &mut String, report: &Report) {
    let (header, cells) = text::cells(report);
    for group in &report.groups {
        let rows: Vec<(usize, &Row)> = (report.rows.iter().enumerate())
            .filter(|(_, r)| r.group == group.id)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<h2>{}</h2>",
            escape(&text::group_title(report, group))
        );
        out.push_str("<div class=\"wide\"><table class=\"ranked\">\n<thead><tr>");
        for title in &header {
            let _ = write!(out, "<th>{}</th>", escape(title));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for (place, (i, row)) in rows.iter().enumerate() {
            let class = match (place, row.tied_with_top) {
                (0, _) => "top",
                (_, Some(true)) => "tie",
                _ => "",
            };
            let _ = write!(out, "<tr class=\"{class}\" data-rank=\"{}\">", place + 1);
            for cell in &cells[*i] {
                let _ = write!(out, "<td>{}</td>", escape(cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table></div>\n");
    }
}

/// A search's rungs: steps, trials, how many were promoted.
fn searches(out: &mut String, report: &Report) {
    for search in &report.searches {
        let _ = writeln!(
            out,
            "<h2>Search {}</h2>",
            escape(&search.dir.display().to_string())
        );
        out.push_str("<table><thead><tr><th>rung</th><th>steps</th><th>trials</th><th>promoted</th><th>complete</th></tr></thead><tbody>\n");
        for (i, rung) in search.rungs.iter().enumerate() {
            let _ = writeln!(
                out,
                "<tr><td>{i}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rung.steps, rung.trials, rung.promoted, rung.complete
            );
        }
        let winner = search.winner.as_deref().unwrap_or("not yet");
        let _ = writeln!(
            out,
            "</tbody></table>\n<p>winner: {}; {} training steps, against {} for the full grid</p>",
            escape(winner),
            search.steps,
            search.full_grid_steps
        );
    }
}

/// Each configuration's last samples (its first run's), marked as samples.txt marks them, under
/// its name in the plot's legend.
fn gallery(out: &mut String, report: &Report) {
    out.push_str("<h2>Samples</h2>\n<div class=\"samples\">\n");
    for group in &report.groups {
        let strip = plot::Strip::new(report, group);
        for (place, row) in strip.rows.iter().enumerate() {
            let run = row.runs.first().or(row.search.as_ref().map(|t| &t.run));
            let Some(run) = run else { continue };
            let name = plot::label(&strip, row, place, usize::MAX);
            let _ = write!(
                out,
                "<section data-group=\"{}\"><h3>{}</h3>\n<ul>",
                row.group,
                escape(&name)
            );
            for (item, mark) in crate::rundir::last_samples(run) {
                let class = match mark.as_str() {
                    "new" | "in-train" => mark.as_str(),
                    _ => "held-out",
                };
                let _ = write!(out, "<li class=\"{class}\">{}</li>", escape(&item));
            }
            out.push_str("</ul></section>\n");
        }
    }
    out.push_str("</div>\n");
}

/// The ranked figure against each setting the rows differ in, then parallel coordinates.
fn settings(out: &mut String, report: &Report) -> Result<(), Box<dyn std::error::Error>> {
    let keys: Vec<&String> = report.columns.iter().collect();
    if keys.is_empty() {
        return Ok(());
    }
    let _ = writeln!(
        out,
        "<h2>{} against each setting</h2>",
        escape(report.rank_by.describe())
    );
    out.push_str(
        "<p>dot: a configuration's mean over seeds, bar: its 95% CI; hollow: a trial the search \
         stopped, at its rung val</p>\n",
    );
    for key in &keys {
        out.push_str(&scatter(report, key)?);
    }
    if keys.len() > 1 {
        out.push_str(
            "<h2>Parallel coordinates</h2>\n<p>a line per configuration through its settings to its \
             ranked figure; colour: that figure, dark the best, yellow the worst</p>\n",
        );
        for chart in super::parallel::svgs(report)? {
            let _ = writeln!(out, "{chart}");
        }
    }
    Ok(())
}

/// A row's place on a setting's axis, its figure, the CI's half-width, its group, hollow.
type Point = (f64, f64, f64, usize, bool);

/// One setting: each row's ranked figure (its mean, the 95% CI as a bar; hollow: a stopped
/// trial's rung val) at the row's value, coloured by its group.
fn scatter(report: &Report, key: &str) -> Made {
    let axis = Axis::of(report, key);
    let points: Vec<Point> = (report.rows.iter())
        .filter_map(|r| {
            let (mean, ci, hollow) = figure(r)?;
            let x = axis.position(r.keys.get(key)?)?;
            Some((x, mean, ci.unwrap_or(0.0), r.group, hollow))
        })
        .collect();
    let fold = |f: fn(&Point) -> (f64, f64)| {
        points
            .iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (lo, hi)| {
                (a.min(lo), b.max(hi))
            })
    };
    let (x_lo, x_hi) = fold(|p| (p.0, p.0));
    let (y_lo, y_hi) = fold(|p| (p.1 - p.2, p.1 + p.2));
    // A tenth of the span each side; a tenth of the value where all are one.
    let pad = |lo: f64, hi: f64| match hi - lo {
        span if span > 0.0 => span * 0.1,
        _ => (lo.abs() * 0.1).max(1e-3),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (420, 300)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_desc = match axis.log {
            true => format!("{key} (logarithmic)"),
            false => key.to_string(),
        };
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(
                x_lo - pad(x_lo, x_hi)..x_hi + pad(x_lo, x_hi),
                y_lo - pad(y_lo, y_hi) * 0.2..y_hi + pad(y_lo, y_hi) * 0.2,
            )?;
        let categories = (!axis.numeric).then_some(&axis.values);
        let label = |x: &f64| match categories {
            Some(values) if (x - x.round()).abs() < 1e-9 => {
                values.get(x.round() as usize).cloned().unwrap_or_default()
            }
            Some(_) => String::new(),
            None if axis.log => super::parallel::significant(10f64.powf(*x)),
            None => super::parallel::significant(*x),
        };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("ranked figure")
            .x_label_formatter(&label)
            .draw()?;
        for &(x, mean, ci, group, hollow) in &points {
            let colour = Palette99::pick(group);
            chart.draw_series([PathElement::new(
                vec![(x, mean - ci), (x, mean + ci)],
                colour.stroke_width(2),
            )])?;
            let style = if hollow {
                colour.stroke_width(1)
            } else {
                colour.filled()
            };
            chart.draw_series([Circle::new((x, mean), 4, style)])?;
        }
        root.present()?;
    }
    Ok(svg)
}
