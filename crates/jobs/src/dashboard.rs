//! A server-rendered HTML dashboard (no JavaScript, no CDN), mountable in an axum app:
//!
//! ```no_run
//! # fn mount(store: jobs::JobStore) -> axum::Router {
//! // Add the application's own authentication layer around it.
//! axum::Router::new().nest("/jobs", jobs::dashboard::router(store))
//! # }
//! ```
//!
//! Pages: `/` (counts per state, recurring jobs), `/state/{state}?page=N` (jobs per state),
//! `/job/{id}` (payload, history with when/which worker/error, log lines, progress).
//! Actions (POST forms): `/job/{id}/retry`, `/job/{id}/delete`, `/job/{id}/cancel`,
//! `/recurring/{id}/trigger`.
//!
//! **Protect it.** The mounting app must add its own authentication layer. Against CSRF the
//! actions refuse cross-site requests by `Sec-Fetch-Site` and `Origin`; for token-based
//! protection pass a [`CsrfGuard`] in [`DashboardOptions`].

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::error::JobError;
use crate::model::{JobId, JobState};
use crate::store::JobStore;

/// Issues and verifies CSRF tokens for the dashboard's action forms (e.g. a double-submit
/// cookie or a session-bound token). The token is sent as form field `csrf_token`.
pub trait CsrfGuard: Send + Sync + 'static {
    /// The token to embed in forms rendered for this request.
    fn token(&self, headers: &HeaderMap) -> String;
    /// Whether `token` is valid for this request.
    fn verify(&self, headers: &HeaderMap, token: &str) -> bool;
}

/// Dashboard options.
#[derive(Clone)]
pub struct DashboardOptions {
    /// Token-based CSRF protection for the actions (in addition to the same-origin check).
    pub csrf: Option<Arc<dyn CsrfGuard>>,
    /// Jobs per list page (default 50).
    pub page_size: i64,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions { csrf: None, page_size: 50 }
    }
}

#[derive(Clone)]
struct Dash {
    store: JobStore,
    options: DashboardOptions,
}

/// The dashboard router with default options.
pub fn router(store: JobStore) -> Router {
    router_with(store, DashboardOptions::default())
}

/// The dashboard router with options.
pub fn router_with(store: JobStore, options: DashboardOptions) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/state/{state}", get(list_state))
        .route("/job/{id}", get(job_detail))
        .route("/job/{id}/retry", post(retry_job))
        .route("/job/{id}/delete", post(delete_job))
        .route("/job/{id}/cancel", post(cancel_job))
        .route("/recurring/{id}/trigger", post(trigger_recurring))
        .with_state(Dash { store, options })
}

/// Errors shown as a page.
struct PageError(StatusCode, String);

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
        let body = page("Error", "", &format!("<p class=\"error\">{}</p>", esc(&self.1)));
        (self.0, Html(body)).into_response()
    }
}

/// The mount prefix, e.g. `/jobs`, from the original and the nested request URIs.
fn base_path(original: &Uri, inner: &Uri) -> String {
    let o = original.path();
    let i = inner.path();
    let base = if i != "/" && o.ends_with(i) { &o[..o.len() - i.len()] } else { o.trim_end_matches('/') };
    if i == "/" { o.trim_end_matches('/').to_owned() } else { base.to_owned() }
}

/// Whether a payload key names a secret (password, hash, secret, token, key, credential), in any
/// case and naming style (`adminPasswordHash`, `api_key`, `refreshToken`).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "hash", "secret", "token", "key", "credential", "salt"].iter().any(|w| k.contains(w))
}

/// A job payload as the dashboard shows it: JSON with the value of every secret-looking key (at
/// any depth) replaced by `"[redacted]"`, pretty-printed. A payload that is not JSON is shown as
/// stored (the dashboard has nothing to parse it by).
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
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(mut v) => {
            walk(&mut v);
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| payload.to_owned())
        }
        Err(_) => payload.to_owned(),
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, base: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · Jobs</title><style>\
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}table{{border-collapse:collapse;margin:.5rem 0}}\
td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}}pre{{background:#f5f5f5;padding:.5rem;white-space:pre-wrap}}\
.error{{color:#a00}}nav a{{margin-right:.75rem}}form{{display:inline}}</style></head><body>\
<nav><a href=\"{b}/\">Overview</a>{links}</nav><h1>{t}</h1>{body}</body></html>",
        t = esc(title),
        b = esc(base),
        links =
            JobState::ALL.iter().map(|s| format!("<a href=\"{}/state/{}\">{}</a>", esc(base), s.as_str(), s.as_str())).collect::<String>(),
    )
}

fn csrf_field(dash: &Dash, headers: &HeaderMap) -> String {
    match &dash.options.csrf {
        Some(g) => format!("<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">", esc(&g.token(headers))),
        None => String::new(),
    }
}

fn action_form(base: &str, path: &str, label: &str, csrf: &str) -> String {
    format!("<form method=\"post\" action=\"{}{}\">{csrf}<button type=\"submit\">{}</button></form> ", esc(base), esc(path), esc(label))
}

fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

async fn overview(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Html<String>, PageError> {
    let base = base_path(&original, &uri);
    let counts = dash.store.counts().await?;
    let mut body = String::from("<h2>Jobs per state</h2><table><tr><th>State</th><th>Count</th></tr>");
    for (state, n) in counts {
        let _ = write!(
            body,
            "<tr><td><a href=\"{}/state/{s}\">{s}</a></td><td class=\"count-{s}\">{n}</td></tr>",
            esc(&base),
            s = state.as_str()
        );
    }
    body.push_str("</table><h2>Recurring jobs</h2><table><tr><th>Id</th><th>Cron</th><th>Time zone</th><th>Job</th><th>Queue</th><th>Next run</th><th>Last job</th><th></th></tr>");
    let csrf = csrf_field(&dash, &headers);
    for r in dash.store.recurring_jobs().await? {
        let last = r.last_job_id.map(|id| format!("<a href=\"{}/job/{id}\">#{id}</a>", esc(&base))).unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{last}</td><td>{}</td></tr>",
            esc(&r.id),
            esc(&r.cron),
            esc(&r.timezone),
            esc(&r.name),
            esc(&r.queue),
            fmt_time(r.next_run_at),
            action_form(&base, &format!("/recurring/{}/trigger", urlencode(&r.id)), "Trigger now", &csrf),
        );
    }
    body.push_str("</table>");
    Ok(Html(page("Overview", &base, &body)))
}

/// Percent-encodes a path segment.
fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<i64>,
}

async fn list_state(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    Path(state): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Html<String>, PageError> {
    let base = base_path(&original, &uri);
    let state: JobState = state.parse().map_err(|e: crate::model::UnknownState| PageError(StatusCode::NOT_FOUND, e.to_string()))?;
    let page_no = q.page.unwrap_or(1).max(1);
    let size = dash.options.page_size.clamp(1, 1000);
    let jobs = dash.store.list(state, (page_no - 1) * size, size + 1).await?;
    let has_next = jobs.len() as i64 > size;
    let mut body = String::from(
        "<table><tr><th>Id</th><th>Name</th><th>Queue</th><th>Attempt</th><th>Progress</th><th>Run at</th><th>Updated</th><th>Last error</th></tr>",
    );
    for j in jobs.iter().take(size as usize) {
        let err: String = j.last_error.as_deref().unwrap_or("").chars().take(200).collect();
        let _ = write!(
            body,
            "<tr><td><a href=\"{b}/job/{id}\">#{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
            esc(&j.name),
            esc(&j.queue),
            j.attempt,
            j.progress.map(|p| format!("{p}%")).unwrap_or_default(),
            fmt_time(j.run_at),
            fmt_time(j.updated_at),
            esc(&err),
            b = esc(&base),
            id = j.id,
        );
    }
    body.push_str("</table><p>");
    if page_no > 1 {
        let _ = write!(body, "<a href=\"{}/state/{}?page={}\">&larr; Previous</a> ", esc(&base), state.as_str(), page_no - 1);
    }
    let _ = write!(body, "Page {page_no} ");
    if has_next {
        let _ = write!(body, "<a href=\"{}/state/{}?page={}\">Next &rarr;</a>", esc(&base), state.as_str(), page_no + 1);
    }
    body.push_str("</p>");
    Ok(Html(page(state.as_str(), &base, &body)))
}

async fn job_detail(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<JobId>,
) -> Result<Html<String>, PageError> {
    let base = base_path(&original, &uri);
    let job = dash.store.get(id).await?.ok_or(JobError::NotFound(id))?;
    let history = dash.store.history(id).await?;
    let logs = dash.store.logs(id).await?;
    let csrf = csrf_field(&dash, &headers);
    let mut body = String::new();
    let _ = write!(
        body,
        "<table><tr><th>State</th><td class=\"state\">{}</td></tr><tr><th>Name</th><td>{}</td></tr><tr><th>Queue</th><td>{}</td></tr>\
<tr><th>Priority</th><td>{}</td></tr><tr><th>Attempt</th><td>{}{}</td></tr><tr><th>Progress</th><td>{}</td></tr>\
<tr><th>Created</th><td>{}</td></tr><tr><th>Run at</th><td>{}</td></tr><tr><th>Lease</th><td>token {} {}</td></tr>",
        job.state,
        esc(&job.name),
        esc(&job.queue),
        job.priority,
        job.attempt,
        job.max_attempts.map(|m| format!(" of {m}")).unwrap_or_default(),
        job.progress.map(|p| format!("{p}%")).unwrap_or_else(|| "-".to_owned()),
        fmt_time(job.created_at),
        fmt_time(job.run_at),
        job.lease_token,
        job.lease_owner
            .as_deref()
            .map(|o| format!("held by {} until {}", esc(o), job.lease_expires_at.map(fmt_time).unwrap_or_default()))
            .unwrap_or_default(),
    );
    if let Some(p) = job.parent_id {
        let _ = write!(body, "<tr><th>Continuation of</th><td><a href=\"{}/job/{p}\">#{p}</a></td></tr>", esc(&base));
    }
    if let Some(r) = &job.recurring_id {
        let _ = write!(body, "<tr><th>Recurring job</th><td>{}</td></tr>", esc(r));
    }
    if let Some(k) = &job.unique_key {
        let _ = write!(body, "<tr><th>Unique key</th><td>{}</td></tr>", esc(k));
    }
    if let Some(k) = &job.concurrency_key {
        let _ = write!(body, "<tr><th>Concurrency key</th><td>{}</td></tr>", esc(k));
    }
    body.push_str("</table>");
    if let Some(e) = &job.last_error {
        let _ = write!(body, "<h2>Error</h2><pre class=\"error\">{}</pre>", esc(e));
    }
    let _ = write!(body, "<h2>Payload</h2><pre>{}</pre>", esc(&redact_payload(&job.payload)));
    body.push_str("<h2>Actions</h2><p>");
    if job.state != JobState::Processing {
        body.push_str(&action_form(&base, &format!("/job/{id}/retry"), "Requeue", &csrf));
    }
    if matches!(job.state, JobState::Enqueued | JobState::Scheduled | JobState::Awaiting | JobState::Processing) {
        body.push_str(&action_form(&base, &format!("/job/{id}/cancel"), "Cancel", &csrf));
    }
    if job.state != JobState::Deleted {
        body.push_str(&action_form(&base, &format!("/job/{id}/delete"), "Delete", &csrf));
    }
    body.push_str("</p><h2>History</h2><table><tr><th>State</th><th>When</th><th>Worker</th><th>Reason / error</th></tr>");
    for h in history.iter().rev() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            h.state,
            fmt_time(h.at),
            esc(h.worker.as_deref().unwrap_or("")),
            esc(h.reason.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</table><h2>Log</h2>");
    if logs.is_empty() {
        body.push_str("<p>No log lines.</p>");
    } else {
        body.push_str("<pre>");
        for l in &logs {
            let _ = writeln!(body, "{}  {}", fmt_time(l.at), esc(&l.line));
        }
        body.push_str("</pre>");
    }
    Ok(Html(page(&format!("Job #{id}"), &base, &body)))
}

#[derive(Deserialize, Default)]
struct ActionForm {
    csrf_token: Option<String>,
}

/// Refuses cross-site POSTs (`Sec-Fetch-Site`, `Origin` vs `Host`) and checks the CSRF token.
fn check_action(dash: &Dash, headers: &HeaderMap, form: &ActionForm) -> Result<(), PageError> {
    let forbidden = |why: &str| PageError(StatusCode::FORBIDDEN, format!("action refused: {why}"));
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(forbidden("cross-site request"));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        if origin == "null" || origin_host != host {
            return Err(forbidden("Origin does not match Host"));
        }
    }
    if let Some(guard) = &dash.options.csrf {
        let ok = form.csrf_token.as_deref().is_some_and(|t| guard.verify(headers, t));
        if !ok {
            return Err(forbidden("missing or invalid CSRF token"));
        }
    }
    Ok(())
}

async fn retry_job(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<JobId>,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_action(&dash, &headers, &form)?;
    dash.store.requeue(id).await?;
    Ok(Redirect::to(&format!("{}/job/{id}", base_path(&original, &uri))))
}

async fn delete_job(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<JobId>,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_action(&dash, &headers, &form)?;
    dash.store.delete(id).await?;
    Ok(Redirect::to(&format!("{}/job/{id}", base_path(&original, &uri))))
}

async fn cancel_job(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<JobId>,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_action(&dash, &headers, &form)?;
    dash.store.cancel(id).await?;
    Ok(Redirect::to(&format!("{}/job/{id}", base_path(&original, &uri))))
}

async fn trigger_recurring(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_action(&dash, &headers, &form)?;
    let job = dash.store.trigger_recurring(&id).await?;
    Ok(Redirect::to(&format!("{}/job/{job}", base_path(&original, &uri))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_are_redacted_at_any_depth() {
        let shown = redact_payload(
            r#"{"tenantId":"acme","adminPasswordHash":"$argon2id$v=19$abc","nested":[{"api_key":"k1","name":"x"}],"refreshToken":null}"#,
        );
        assert!(!shown.contains("argon2") && !shown.contains("k1"), "{shown}");
        assert!(shown.contains("\"adminPasswordHash\": \"[redacted]\""), "{shown}");
        assert!(shown.contains("\"tenantId\": \"acme\"") && shown.contains("\"name\": \"x\""), "{shown}");
        assert_eq!(redact_payload("not json"), "not json");
    }
}
