//! `--plot FILE`: an SVG of the run, throughput per second (answers and
//! successes) above latency per second (p50 and p99).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::Report;

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
}

/// One line of a chart: its label, colour and points (second, value).
struct Line {
    label: &'static str,
    colour: RGBColor,
    points: Vec<(u64, f64)>,
}

/// Draws `report`'s timeline to `path` (SVG).
pub fn draw(report: &Report, path: &Path) -> Result<(), PlotError> {
    let error = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let (top, bottom) = root.split_vertically(350);
    let series = |label, colour, value: fn(&crate::report::Second) -> f64| Line {
        label,
        colour,
        points: report
            .timeline
            .iter()
            .map(|s| (s.second, value(s)))
            .collect(),
    };
    let seconds = report.timeline.len().max(1) as u64;
    chart(
        &top,
        "throughput (per second)",
        "answers/s",
        seconds,
        &[
            series("answers/s", BLUE, |s| s.requests as f64),
            series("successes/s", GREEN, |s| s.successes as f64),
            series("shed/s", MAGENTA, |s| s.shed as f64),
        ],
    )
    .map_err(|e| error(&e))?;
    chart(
        &bottom,
        "latency (ms)",
        "ms",
        seconds,
        &[
            series("p50", BLUE, |s| s.p50_ms),
            series("p99", RED, |s| s.p99_ms),
        ],
    )
    .map_err(|e| error(&e))?;
    root.present().map_err(|e| error(&e))?;
    Ok(())
}

fn chart(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    unit: &str,
    seconds: u64,
    lines: &[Line],
) -> Result<(), Box<dyn std::error::Error>> {
    let top = lines
        .iter()
        .flat_map(|line| line.points.iter().map(|(_, v)| *v))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0u64..seconds, 0.0..top * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc(unit)
        .draw()?;
    for line in lines {
        let colour = line.colour;
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), colour))?
            .label(line.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart.configure_series_labels().border_style(BLACK).draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::check_all;
    use crate::report::{Latency, Second};

    #[test]
    fn draws_an_svg_with_both_charts() {
        let second = |i: u64| Second {
            second: i,
            requests: 1000 * (i + 1),
            successes: if i == 0 { 500 } else { 0 },
            shed: 10,
            errors: 0,
            p50_ms: 1.0,
            p99_ms: 3.0,
        };
        let report = Report {
            target: "http://x:1/buy/ticket".into(),
            users: 10,
            connections: 1,
            rate: None,
            wall_seconds: 3.0,
            answered: 6000,
            requests_per_second: 2000.0,
            latency_ms: Latency {
                mean: 1.0,
                p50: 1.0,
                p90: 2.0,
                p99: 3.0,
                p999: 4.0,
                max: 5.0,
            },
            answers_by_code: Default::default(),
            latency_ms_by_code: Default::default(),
            answers_by_status: Default::default(),
            transport_errors: 0,
            nodes: Default::default(),
            successes: 0,
            central: None,
            checks: check_all(&[], None, false),
            timeline: (0..3).map(second).collect(),
        };
        let path = std::env::temp_dir().join(format!("spike-plot-{}.svg", std::process::id()));
        draw(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        for text in [
            "throughput (per second)",
            "latency (ms)",
            "successes/s",
            "shed/s",
            "p99",
        ] {
            assert!(svg.contains(text), "SVG lacks {text:?}");
        }
    }
}
