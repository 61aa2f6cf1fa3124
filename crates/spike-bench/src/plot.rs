//! `--plot FILE`: an SVG of the run, throughput per second (answers and
//! successes) above latency per second (p50 and p99).

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
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
    let seconds = report.timeline.len().max(1) as u64;
    let max_rps = report
        .timeline
        .iter()
        .map(|s| s.requests)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut chart = ChartBuilder::on(&top)
        .caption("throughput (per second)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0u64..seconds, 0u64..max_rps + max_rps / 10)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc("answers/s")
        .draw()
        .map_err(|e| error(&e))?;
    chart
        .draw_series(LineSeries::new(
            report.timeline.iter().map(|s| (s.second, s.requests)),
            &BLUE,
        ))
        .map_err(|e| error(&e))?
        .label("answers/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            report.timeline.iter().map(|s| (s.second, s.successes)),
            &GREEN,
        ))
        .map_err(|e| error(&e))?
        .label("successes/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| error(&e))?;

    let max_ms = report.timeline.iter().map(|s| s.p99_ms).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&bottom)
        .caption("latency (ms)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0u64..seconds, 0.0..max_ms * 1.1)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc("ms")
        .draw()
        .map_err(|e| error(&e))?;
    chart
        .draw_series(LineSeries::new(
            report.timeline.iter().map(|s| (s.second, s.p50_ms)),
            &BLUE,
        ))
        .map_err(|e| error(&e))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            report.timeline.iter().map(|s| (s.second, s.p99_ms)),
            &RED,
        ))
        .map_err(|e| error(&e))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| error(&e))?;
    root.present().map_err(|e| error(&e))?;
    Ok(())
}
