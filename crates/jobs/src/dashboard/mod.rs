//! A server-rendered HTML dashboard in Hangfire's spirit, mountable in an axum app:
//!
//! ```no_run
//! # fn mount(store: jobs::JobStore) -> axum::Router {
//! // Add the application's own authentication layer around it.
//! axum::Router::new().nest("/jobs", jobs::dashboard::router(store))
//! # }
//! ```
//!
//! Pages: `/` (counts, a realtime graph of succeeded and failed jobs per second over the last
//! five minutes, a history graph per hour over a week), `/state/{state}?page=N&q=…` (jobs per
//! state, newest first, search by id or name, bulk Requeue and Delete), `/retries`,
//! `/recurring` (cron in words, next and last run, Trigger now, Disable, Delete), `/servers`,
//! `/queues` and `/job/{id}` (arguments with secrets redacted, state history, error, log lines,
//! continuations, Requeue, Cancel, Delete).
//!
//! Everything works without JavaScript; with it, `dashboard.js` refreshes the live parts of the
//! page (counts, graphs, rows) in place: on every signal of the hub given in
//! [`DashboardOptions::live`] (the application publishes [`crate::JobStore::subscribe_changes`]
//! there), else every few seconds. Light and dark themes follow `prefers-color-scheme`, with a
//! toggle kept in `localStorage`.
//!
//! **Protect it.** The mounting app must add its own authentication layer. Against CSRF the
//! actions refuse cross-site requests by `Sec-Fetch-Site` and `Origin`; for token-based
//! protection pass a [`CsrfGuard`] in [`DashboardOptions`].

mod actions;
pub mod assets;
pub mod cron_text;
mod graph;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::http::{Extensions, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::JobError;
use crate::model::JobState;
use crate::store::JobStore;

/// Issues and verifies CSRF tokens for the dashboard's action forms (e.g. a double-submit
/// cookie or a session-bound token). The token is sent as form field `csrf_token`.
pub trait CsrfGuard: Send + Sync + 'static {
    /// The token to embed in forms rendered for this request.
    fn token(&self, headers: &HeaderMap) -> String;
    /// Whether `token` is valid for this request.
    fn verify(&self, headers: &HeaderMap, token: &str) -> bool;
}

/// The parts of a dashboard page the layout places. `head`, `body` and `scripts` are markup the
/// dashboard's templates rendered (every value in them escaped): a layout inserts them as they
/// are, e.g. with `maud::PreEscaped`, and escapes `title` like any text.
#[derive(Debug, Clone, Copy)]
pub struct LayoutPage<'a> {
    /// The page title (plain text).
    pub title: &'a str,
    /// HTML for `<head>`: the dashboard's stylesheet, theme script and meta tags.
    pub head: &'a str,
    /// The page's HTML (the dashboard's own navigation included).
    pub body: &'a str,
    /// HTML for the end of `<body>`: the live script.
    pub scripts: &'a str,
}

/// Wraps dashboard pages in the application's own layout (header, navigation, sign-out), so the
/// dashboard looks like the rest of the app. The request's headers and extensions tell who asks
/// (e.g. an identity the app's authentication layer put there).
pub trait DashboardLayout: Send + Sync + 'static {
    /// The whole HTML document.
    fn render(&self, headers: &HeaderMap, extensions: &Extensions, page: LayoutPage<'_>) -> String;
}

/// Where live signals come from: a SignalR hub the page connects to (the official browser
/// client must be loaded by one of `scripts`).
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The hub's URL, e.g. `/hubs/notifications`.
    pub hub_url: String,
    /// The hub method invoked on the clients when jobs changed, e.g. `JobsChanged`.
    pub event: String,
    /// Script URLs to load before the dashboard's own (the SignalR client).
    pub scripts: Vec<String>,
}

/// Dashboard options.
#[derive(Clone)]
pub struct DashboardOptions {
    /// Token-based CSRF protection for the actions (in addition to the same-origin check).
    pub csrf: Option<Arc<dyn CsrfGuard>>,
    /// Jobs per list page (default 50).
    pub page_size: i64,
    /// The application's page layout; without one the dashboard renders its own plain header.
    pub layout: Option<Arc<dyn DashboardLayout>>,
    /// Live updates through a hub; without it the page refreshes its live parts every 5 seconds.
    pub live: Option<LiveOptions>,
    /// The path the dashboard is mounted at (e.g. `/jobs`); found from the request when unset.
    pub base_path: Option<String>,
    /// Links from a job's concurrency key to the application's page for it (tenant-aware
    /// dashboards: `tenant:acme` → the tenant's page).
    pub key_links: Vec<KeyLink>,
}

/// A link from concurrency keys with a prefix to an application page: the key's `tenant:acme`
/// with prefix `tenant:`, label `Tenant` and href `/tenants?id={}` shows "Tenant acme" linking
/// to `/tenants?id=acme`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLink {
    /// The key's prefix, e.g. `tenant:`.
    pub prefix: String,
    /// The word shown before the rest of the key, e.g. `Tenant`.
    pub label: String,
    /// The page's URL, `{}` replaced by the rest of the key (percent-encoded).
    pub href: String,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions { csrf: None, page_size: 50, layout: None, live: None, base_path: None, key_links: Vec::new() }
    }
}

#[derive(Clone)]
pub(crate) struct Dash {
    pub(crate) store: JobStore,
    pub(crate) options: DashboardOptions,
}

/// The dashboard router with default options.
pub fn router(store: JobStore) -> Router {
    router_with(store, DashboardOptions::default())
}

/// The dashboard router with options.
pub fn router_with(store: JobStore, options: DashboardOptions) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/state/{state}", get(pages::list_state))
        .route("/retries", get(pages::retries))
        .route("/key/{key}", get(pages::by_key))
        .route("/recurring", get(pages::recurring))
        .route("/servers", get(pages::servers))
        .route("/queues", get(pages::queues))
        .route("/job/{id}", get(pages::job_detail))
        .route("/job/{id}/{action}", post(actions::job_action))
        .route("/bulk", post(actions::bulk))
        .route("/recurring/{id}/trigger", post(actions::trigger_recurring))
        .route("/recurring/{id}/{action}", post(actions::recurring_action))
        .route("/dashboard.css", get(assets::css))
        .route("/dashboard.js", get(assets::js))
        .route("/theme.js", get(assets::theme_js))
        .with_state(Dash { store, options })
}

/// Errors shown as a page.
pub(crate) struct PageError(pub(crate) StatusCode, pub(crate) String);

impl From<JobError> for PageError {
    fn from(e: JobError) -> Self {
        let status = match e {
            JobError::NotFound(_) | JobError::RecurringNotFound(_) => StatusCode::NOT_FOUND,
            JobError::InvalidState { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        PageError(status, e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = maud::html! {
            (maud::DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Error · Jobs" } }
                body { h1 { "Error" } p class="error" { (self.1) } }
            }
        };
        (self.0, Html(body.into_string())).into_response()
    }
}

/// The mount prefix, e.g. `/jobs`, from the original and the nested request URIs.
pub(crate) fn base_path(options: &DashboardOptions, original: &Uri, inner: &Uri) -> String {
    if let Some(base) = &options.base_path {
        return base.trim_end_matches('/').to_owned();
    }
    let o = original.path();
    let i = inner.path();
    if i == "/" {
        o.trim_end_matches('/').to_owned()
    } else if o.len() >= i.len() && o[o.len() - i.len()..].eq_ignore_ascii_case(i) {
        o[..o.len() - i.len()].to_owned()
    } else {
        o.trim_end_matches('/').to_owned()
    }
}

/// Whether a payload key names a secret (password, hash, secret, token, key, credential), in any
/// case and naming style (`adminPasswordHash`, `api_key`, `refreshToken`).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "hash", "secret", "token", "key", "credential", "salt"].iter().any(|w| k.contains(w))
}

/// A job payload as the dashboard shows it: JSON with the value of every secret-looking key (at
/// any depth) replaced by `"[redacted]"`, pretty-printed, and any string that looks like a
/// password hash (`$argon2…`, `$2b$…`, `$scrypt$…`) redacted wherever it is. A payload that is
/// not JSON is shown as stored unless it contains such a hash.
pub fn redact_payload(payload: &str) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if is_secret_key(k) && !child.is_null() {
                        *child = serde_json::Value::String("[redacted]".into());
                    } else {
                        walk(child);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::String(s) if looks_like_hash(s) => *s = "[redacted]".into(),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(mut v) => {
            walk(&mut v);
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| "[redacted]".to_owned())
        }
        Err(_) if looks_like_hash(payload) => "[redacted]".to_owned(),
        Err(_) => payload.to_owned(),
    }
}

/// Whether text contains what looks like a password hash in PHC or modular crypt format.
fn looks_like_hash(s: &str) -> bool {
    ["$argon2", "$2a$", "$2b$", "$2y$", "$scrypt$", "$pbkdf2"].iter().any(|p| s.contains(p))
}

/// Percent-encodes a path segment or query value: everything but RFC 3986's unreserved
/// characters.
pub fn urlencode(s: &str) -> String {
    const NOT_UNRESERVED: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// All the states with their list pages, in navigation order (Hangfire's).
pub(crate) const NAV_STATES: [JobState; 7] = [
    JobState::Enqueued,
    JobState::Scheduled,
    JobState::Processing,
    JobState::Succeeded,
    JobState::Failed,
    JobState::Deleted,
    JobState::Awaiting,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_are_redacted_at_any_depth() {
        let shown = redact_payload(
            r#"{"tenantId":"acme","adminPasswordHash":"$argon2id$v=19$abc","nested":[{"api_key":"k1","name":"x"}],"refreshToken":null,"note":"$argon2id$v=19$zz"}"#,
        );
        assert!(!shown.contains("argon2") && !shown.contains("k1"), "{shown}");
        assert!(shown.contains("\"adminPasswordHash\": \"[redacted]\""), "{shown}");
        assert!(shown.contains("\"note\": \"[redacted]\""), "a hash under an innocent key: {shown}");
        assert!(shown.contains("\"tenantId\": \"acme\"") && shown.contains("\"name\": \"x\""), "{shown}");
        assert_eq!(redact_payload("not json"), "not json");
        assert_eq!(redact_payload("x $argon2id$v=19$abc"), "[redacted]");
    }

    #[test]
    fn the_base_path_is_found_in_any_case() {
        let o = DashboardOptions::default();
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(base_path(&o, &u("/jobs/"), &u("/")), "/jobs");
        assert_eq!(base_path(&o, &u("/JOBS/State/Failed"), &u("/state/Failed")), "/JOBS");
        let fixed = DashboardOptions { base_path: Some("/jobs/".into()), ..Default::default() };
        assert_eq!(base_path(&fixed, &u("/JOBS/"), &u("/")), "/jobs");
    }
}
