//! The dashboard's stylesheet and scripts, embedded (nothing is downloaded at run time).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

/// The dashboard's stylesheet: light and dark themes (`prefers-color-scheme`, or the
/// `data-theme` attribute of `<html>` set by [`THEME_JS`]).
pub const CSS: &str = include_str!("dashboard.css");
/// Live refresh of the page's `data-live` parts (hub signals, else every 5 s), bulk selection.
pub const JS: &str = include_str!("dashboard.js");
/// Applies the theme chosen with the `#theme-toggle` button (kept in `localStorage`) before the
/// page paints, and wires the button. Load it in `<head>`.
pub const THEME_JS: &str = include_str!("theme.js");

fn serve(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=300")], body)
}

pub(crate) async fn css() -> impl IntoResponse {
    serve(CSS, "text/css; charset=utf-8")
}

pub(crate) async fn js() -> impl IntoResponse {
    serve(JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn theme_js() -> impl IntoResponse {
    serve(THEME_JS, "text/javascript; charset=utf-8")
}
