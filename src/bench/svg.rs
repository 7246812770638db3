//! `bench mux --svg`: the chart as a stand-alone SVG image, written by
//! hand (SVG is XML text: lines, circles and labels at coordinates).

use super::mux::{Point, PointResult, FD_SETSIZE, SERVERS};
use super::report::figures;

/// A line chart as a stand-alone SVG image: idle connections across (one
/// column per count), server CPU per round trip up, one line per server.
pub fn mux_svg(points: &[Point], conns: u32) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 440.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 170.0;
    const TOP: f64 = 60.0;
    const BOTTOM: f64 = 70.0;
    const COLOURS: [&str; 3] = ["#d62728", "#1f77b4", "#2ca02c"];
    let mut idle_counts: Vec<u32> = points.iter().map(|point| point.idle).collect();
    idle_counts.sort_unstable();
    idle_counts.dedup();
    let most = points
        .iter()
        .filter_map(|point| figures(point)?.cpu_us)
        .fold(0.0f64, f64::max);
    let top_value = nice_ceiling(most);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |idle: u32| {
        let index = idle_counts.iter().position(|&i| i == idle).unwrap_or(0) as f64;
        let columns = (idle_counts.len().max(2) - 1) as f64;
        LEFT + plot_w * index / columns
    };
    let y_of = |value: f64| TOP + plot_h * (1.0 - value / top_value);

    let mut svg = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"13\">\n"
    );
    svg.push_str(&format!(
        "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n"
    ));
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"28\" font-size=\"16\" text-anchor=\"middle\">Server CPU per echo round trip, {conns} active connections (lower is cheaper)</text>\n",
        LEFT + plot_w / 2.0
    ));
    // Horizontal grid lines with their values.
    for step in 0..=4 {
        let value = top_value * f64::from(step) / 4.0;
        let y = y_of(value);
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{value:.1}</text>\n",
            LEFT + plot_w,
            LEFT - 8.0,
            y + 4.0
        ));
    }
    for &idle in &idle_counts {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{idle}</text>\n",
            x_of(idle),
            TOP + plot_h + 20.0
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">idle connections</text>\n",
        LEFT + plot_w / 2.0,
        HEIGHT - 20.0
    ));
    svg.push_str(&format!(
        "<text transform=\"translate(22 {:.1}) rotate(-90)\" text-anchor=\"middle\">µs of server CPU per round trip</text>\n",
        TOP + plot_h / 2.0
    ));
    svg.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"black\"/>\n<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n",
        TOP + plot_h,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    ));
    // One line per server; a point that was not measured ends the line.
    for (index, server) in SERVERS.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let measured: Vec<(f64, f64)> = points
            .iter()
            .filter(|point| point.server == *server)
            .filter_map(|point| Some((x_of(point.idle), y_of(figures(point)?.cpu_us?))))
            .collect();
        if measured.len() > 1 {
            let path: Vec<String> = measured
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            svg.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\"/>\n",
                path.join(" ")
            ));
        }
        for (x, y) in &measured {
            svg.push_str(&format!(
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{colour}\"/>\n"
            ));
        }
        let legend_y = TOP + 20.0 + 24.0 * index as f64;
        let legend_x = LEFT + plot_w + 20.0;
        svg.push_str(&format!(
            "<line x1=\"{legend_x:.1}\" y1=\"{legend_y:.1}\" x2=\"{:.1}\" y2=\"{legend_y:.1}\" stroke=\"{colour}\" stroke-width=\"2.5\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{server}</text>\n",
            legend_x + 24.0,
            legend_x + 32.0,
            legend_y + 4.0
        ));
    }
    if points
        .iter()
        .any(|point| matches!(point.result, PointResult::NotPossible))
    {
        svg.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\">select-demo stops at</text>\n<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\">FD_SETSIZE ({FD_SETSIZE})</text>\n",
            TOP + 100.0,
            TOP + 115.0,
            x = LEFT + plot_w + 20.0,
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// A round top for the y axis: 1, 2 or 5 times a power of ten, at least
/// `value` (and at least 1).
fn nice_ceiling(value: f64) -> f64 {
    let value = value.max(1.0);
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|candidate| *candidate >= value)
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_y_axis_ends_at_a_round_number() {
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(13.0), 20.0);
        assert_eq!(nice_ceiling(0.2), 1.0);
        assert_eq!(nice_ceiling(45.0), 50.0);
    }
}
