//! The failover plot: every acknowledged write's latency over time, the kill marked, the
//! longest gap shaded. Plain SVG, written by hand: no plotting library for one chart.

use std::fmt::Write;

use super::failover::FailoverRun;

const W: f64 = 900.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;

/// The plot of one run, titled with the cluster's size.
pub fn failover(run: &FailoverRun, nodes: u32) -> String {
    let end = run
        .samples
        .last()
        .map_or(1.0, |s| s.at_s)
        .max(run.kill_at_s);
    let top_ms = run.samples.iter().map(|s| s.latency_ms).fold(1.0, f64::max);
    // A log scale: sub-millisecond writes and the one that waited out the election both show.
    let (lo, hi) = (0.1f64.log10(), (top_ms * 1.5).log10());
    let x = |t: f64| LEFT + (t / end) * (W - LEFT - RIGHT);
    let y = |ms: f64| {
        let v = ms.max(0.1).log10();
        H - BOTTOM - (v - lo) / (hi - lo) * (H - TOP - BOTTOM)
    };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="15">raftchat, {nodes} nodes: write latency while the leader ({}) is SIGKILLed; longest gap {:.0} ms</text>"#,
        run.killed, run.gap_ms
    );
    // The longest gap between acknowledged writes.
    if let Some(w) = run
        .samples
        .windows(2)
        .max_by(|a, b| (a[1].at_s - a[0].at_s).total_cmp(&(b[1].at_s - b[0].at_s)))
    {
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#fde2e2"/>"##,
            x(w[0].at_s),
            x(w[1].at_s) - x(w[0].at_s),
            H - TOP - BOTTOM
        );
    }
    // Axes, with gridlines at each power of ten.
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>"#,
        H - BOTTOM
    );
    let mut ms = 0.1;
    while ms <= top_ms * 1.5 {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4} ms</text>"##,
            y(ms),
            W - RIGHT,
            LEFT - 6.0,
            y(ms) + 4.0,
            ms
        );
        ms *= 10.0;
    }
    let step = if end > 8.0 { 2.0 } else { 1.0 };
    let mut t = 0.0;
    while t <= end {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:.0} s</text>"#,
            x(t),
            H - BOTTOM + 18.0
        );
        t += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">time since the writer started</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 8.0
    );
    // The kill.
    let _ = writeln!(
        svg,
        r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1}" stroke="#c00" stroke-width="2"/><text x="{2:.1}" y="{3}" fill="#c00">leader killed</text>"##,
        x(run.kill_at_s),
        H - BOTTOM,
        x(run.kill_at_s) + 5.0,
        TOP + 14.0
    );
    // Every acknowledged write.
    for s in &run.samples {
        let _ = writeln!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="#1f5fbf"/>"##,
            x(s.at_s),
            y(s.latency_ms)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::failover::Sample;

    #[test]
    fn the_plot_marks_the_kill_and_shows_every_write() {
        let run = FailoverRun {
            killed: "n2".into(),
            kill_at_s: 1.0,
            gap_ms: 450.0,
            samples: vec![
                Sample {
                    at_s: 0.5,
                    latency_ms: 0.4,
                },
                Sample {
                    at_s: 0.9,
                    latency_ms: 0.5,
                },
                Sample {
                    at_s: 1.35,
                    latency_ms: 440.0,
                },
                Sample {
                    at_s: 1.4,
                    latency_ms: 0.6,
                },
            ],
        };
        let svg = failover(&run, 3);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("leader killed"));
        assert!(svg.contains("longest gap 450 ms"));
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
