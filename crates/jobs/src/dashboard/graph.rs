//! The overview's graphs as inline SVG (server-rendered: they show without JavaScript).

use std::fmt::Write as _;

use maud::{Markup, html};

use crate::model::Throughput;

/// Width and height of the drawing area, in SVG units.
const W: f64 = 800.0;
const H: f64 = 160.0;
const PAD_LEFT: f64 = 40.0;
const PAD_BOTTOM: f64 = 20.0;

/// A line graph of succeeded and failed jobs per bucket. `label` formats a bucket's time for
/// the axis; `id` is the element id (the live script swaps it by id).
pub fn line_graph(id: &str, title: &str, points: &[Throughput], label: impl Fn(&Throughput) -> String) -> Markup {
    let max = points.iter().map(|p| p.succeeded.max(p.failed)).max().unwrap_or(0).max(1);
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| PAD_LEFT + (W - PAD_LEFT) * i as f64 / n;
    let y = |v: i64| (H - PAD_BOTTOM) - (H - PAD_BOTTOM - 8.0) * v as f64 / max as f64;
    let line = |f: fn(&Throughput) -> i64| {
        points.iter().enumerate().fold(String::new(), |mut acc, (i, p)| {
            let _ = write!(acc, "{}{:.1},{:.1}", if i == 0 { "" } else { " " }, x(i), y(f(p)));
            acc
        })
    };
    let succeeded: i64 = points.iter().map(|p| p.succeeded).sum();
    let failed: i64 = points.iter().map(|p| p.failed).sum();
    let b = H - PAD_BOTTOM;
    let tx = PAD_LEFT - 4.0;
    // SVG elements are closed explicitly (`{}`): in foreign content an unclosed `<line>` would
    // take the next element as its child.
    html! {
        figure class="graph" id=(id) data-live {
            figcaption {
                (title) " "
                span class="legend ok" { "succeeded " b class="sum-succeeded" { (succeeded) } }
                " "
                span class="legend bad" { "failed " b class="sum-failed" { (failed) } }
            }
            svg viewBox={ "0 0 " (W) " " (H) } role="img" aria-label={ (title) ": " (succeeded) " succeeded, " (failed) " failed" } preserveAspectRatio="none" {
                line class="axis" x1=(PAD_LEFT) y1=(b) x2=(W) y2=(b) {}
                line class="axis" x1=(PAD_LEFT) y1="8" x2=(PAD_LEFT) y2=(b) {}
                text x=(tx) y="14" class="tick" text-anchor="end" { (max) }
                text x=(tx) y=(b) class="tick" text-anchor="end" { "0" }
                polyline class="line ok" points=(line(|p| p.succeeded)) {}
                polyline class="line bad" points=(line(|p| p.failed)) {}
                @if let (Some(first), Some(last)) = (points.first(), points.last()) {
                    text x=(PAD_LEFT) y=(H) class="tick" { (label(first)) }
                    text x=(W) y=(H) class="tick" text-anchor="end" { (label(last)) }
                }
            }
        }
    }
}
