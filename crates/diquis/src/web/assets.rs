//! Static files embedded in the binary: the npm-installed browser libraries (see build.rs) and
//! the UI's own script and stylesheet. Served with long-lived caching; nothing comes from a CDN.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

/// The official SignalR browser client (`@microsoft/signalr`, `dist/browser/signalr.min.js`).
pub const SIGNALR_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/signalr.min.js"));
const TOASTR_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/toastr.min.js"));
const TOASTR_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/toastr.min.css"));
const JQUERY_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/jquery.min.js"));
const DIQUIS_JS: &str = include_str!("../../web/static/diquis.js");
const TOASTR_ESCAPE_JS: &str = include_str!("../../web/static/toastr-escape.js");
const DIQUIS_CSS: &str = include_str!("../../web/static/diquis.css");
const FAVICON: &[u8] = include_bytes!("../../web/static/favicon.ico");

/// Where the SignalR client is served (replace the seed's CDN address with this).
pub const SIGNALR_PATH: &str = "/lib/signalr/signalr.min.js";

/// The script that makes toastr escape every message; pages load it right after toastr.
pub const TOASTR_ESCAPE_PATH: &str = "/js/toastr-escape.js";

fn serve(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=3600")], body)
}

/// The routes of every embedded file.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    Router::new()
        .route(SIGNALR_PATH, get(|| async { serve(SIGNALR_JS, JS) }))
        .route("/lib/toastr/toastr.min.js", get(|| async { serve(TOASTR_JS, JS) }))
        .route("/lib/toastr/toastr.min.css", get(|| async { serve(TOASTR_CSS, CSS) }))
        .route("/lib/jquery/jquery.min.js", get(|| async { serve(JQUERY_JS, JS) }))
        .route("/js/diquis.js", get(|| async { serve(DIQUIS_JS, JS) }))
        .route(TOASTR_ESCAPE_PATH, get(|| async { serve(TOASTR_ESCAPE_JS, JS) }))
        .route("/js/theme.js", get(|| async { serve(jobs::dashboard::assets::THEME_JS, JS) }))
        .route("/css/diquis.css", get(|| async { serve(DIQUIS_CSS, CSS) }))
        .route("/favicon.ico", get(|| async { ([(CONTENT_TYPE, "image/x-icon"), (CACHE_CONTROL, "public, max-age=86400")], FAVICON) }))
}
