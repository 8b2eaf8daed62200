//! The dashboard's pages (GET), as maud templates: every value is escaped unless it is
//! [`Markup`] built by another template (see docs/decisions/0016-html-templates.md).

use std::time::Duration;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode, Uri};
use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::{Dash, LayoutPage, NAV_STATES, PageError, base_path, cron_text, graph, redact_payload, urlencode};
use crate::error::JobError;
use crate::model::{JobFilter, JobId, JobRecord, JobState};

/// What every page needs from its request.
pub(crate) struct Ctx {
    pub(crate) base: String,
    headers: HeaderMap,
    extensions: Extensions,
    /// The CSRF token the action forms carry, when a [`super::CsrfGuard`] is configured.
    csrf: Option<String>,
}

impl Ctx {
    fn new(dash: &Dash, original: &Uri, uri: &Uri, headers: HeaderMap, extensions: Extensions) -> Ctx {
        let csrf = dash.options.csrf.as_ref().map(|g| g.token(&headers));
        Ctx { base: base_path(&dash.options, original, uri), headers, extensions, csrf }
    }

    /// The hidden CSRF field of an action form (nothing without a guard).
    fn csrf_field(&self) -> Markup {
        html! {
            @if let Some(token) = &self.csrf {
                input type="hidden" name="csrf_token" value=(token);
            }
        }
    }

    fn action(&self, path: &str, label: &str, class: &str) -> Markup {
        html! {
            form method="post" action={ (self.base) (path) } class="inline" {
                (self.csrf_field())
                button type="submit" class=(class) { (label) }
            }
            " "
        }
    }
}

/// The counts shown in the navigation, read once per page.
struct NavCounts {
    states: Vec<(JobState, i64)>,
    retries: i64,
    recurring: usize,
    servers: usize,
}

impl NavCounts {
    /// Reads the counts, the four queries at once (each on its own pooled connection).
    async fn read(dash: &Dash) -> Result<NavCounts, JobError> {
        let (states, retries, recurring, servers) =
            tokio::try_join!(dash.store.counts(), dash.store.count_retries(), dash.store.recurring_jobs(), dash.store.servers())?;
        Ok(NavCounts { states, retries, recurring: recurring.len(), servers: servers.len() })
    }

    fn state(&self, state: JobState) -> i64 {
        self.states.iter().find(|(s, _)| *s == state).map(|(_, n)| *n).unwrap_or(0)
    }
}

/// Renders a page: the dashboard's navigation (with live counts) and `body`, in the app's layout.
async fn render(dash: &Dash, ctx: &Ctx, title: &str, active: &str, body: Markup) -> Result<Html<String>, PageError> {
    let counts = NavCounts::read(dash).await?;
    Ok(render_with(dash, ctx, &counts, title, active, body))
}

/// [`render`] with the navigation's counts already read.
fn render_with(dash: &Dash, ctx: &Ctx, counts: &NavCounts, title: &str, active: &str, body: Markup) -> Html<String> {
    let b = &ctx.base;
    let link = |href: &str, key: &str, label: &str, count: Option<i64>| {
        let current = key.eq_ignore_ascii_case(active);
        html! {
            a href={ (b) (href) } aria-current=[current.then_some("page")] class=[current.then_some("current")] {
                (label)
                @if let Some(n) = count {
                    " " span class={ "count count-" (key) } { (n) }
                }
            }
        }
    };
    let body = html! {
        div class="jobs" {
            nav class="jobs-nav" id="jobs-nav" data-live aria-label="Jobs" {
                (link("/", "overview", "Overview", None))
                @for state in NAV_STATES {
                    (link(&format!("/state/{}", state.as_str()), state.as_str(), state.as_str(), Some(counts.state(state))))
                }
                (link("/retries", "retries", "Retries", Some(counts.retries)))
                (link("/recurring", "recurring", "Recurring", Some(counts.recurring as i64)))
                (link("/servers", "servers", "Servers", Some(counts.servers as i64)))
                (link("/queues", "queues", "Queues", None))
            }
            h1 { (title) }
            (body)
        }
    };
    let live = dash.options.live.as_ref();
    let head = html! {
        link rel="stylesheet" href={ (b) "/dashboard.css" };
        script src={ (b) "/theme.js" } {}
        meta name="jobs-base" content=(b);
        @if let Some(live) = live {
            meta name="jobs-hub" content=(live.hub_url);
            meta name="jobs-hub-event" content=(live.event);
        }
    };
    let scripts = html! {
        @if let Some(live) = live {
            @for s in &live.scripts {
                script src=(s) {}
            }
        }
        script src={ (b) "/dashboard.js" } {}
    };
    let page = LayoutPage { title: &format!("{title} · Jobs"), head: &head.0, body: &body.0, scripts: &scripts.0 };
    Html(match &dash.options.layout {
        Some(layout) => layout.render(&ctx.headers, &ctx.extensions, page),
        None => standalone(page),
    })
}

/// The page without an application layout.
fn standalone(page: LayoutPage<'_>) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title) }
                // Trusted: the layout's parts are markup rendered by this module's templates.
                (PreEscaped(page.head))
            }
            body {
                header class="top" {
                    span class="brand" { "Jobs" }
                    span class="spacer" {}
                    button type="button" id="theme-toggle" class="secondary" hidden { "Theme" }
                }
                main { (PreEscaped(page.body)) }
                (PreEscaped(page.scripts))
            }
        }
    }
    .into_string()
}

pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "3 minutes ago" / "in 2 hours", with the exact time as a tooltip.
fn relative(t: DateTime<Utc>) -> Markup {
    let secs = (Utc::now() - t).num_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let text = match n {
        0..=4 => "just now".to_owned(),
        5..=59 => format!("{n} s"),
        60..=3599 => format!("{} min", n / 60),
        3600..=86_399 => format!("{} h", n / 3600),
        _ => format!("{} d", n / 86_400),
    };
    let text = if text == "just now" {
        text
    } else if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    };
    html! { time datetime=(t.to_rfc3339()) title=(fmt_time(t)) { (text) } }
}

fn badge(state: JobState) -> Markup {
    html! { span class={ "state state-" (state.as_str()) } { (state.as_str()) } }
}

pub(crate) async fn overview(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let (counts, realtime, history) = tokio::try_join!(
        NavCounts::read(&dash),
        dash.store.throughput(Duration::from_secs(300), Duration::from_secs(1)),
        dash.store.finished_per_hour(7 * 24)
    )?;
    let b = &ctx.base;
    let body = html! {
        section class="cards" id="jobs-cards" data-live {
            @for state in NAV_STATES {
                @let s = state.as_str();
                a class={ "card stat stat-" (s) } href={ (b) "/state/" (s) } {
                    span class="label" { (s) }
                    span class="value" id={ "total-" (s) } { (counts.state(state)) }
                }
            }
        }
        section class="card" {
            (graph::line_graph("graph-realtime", "Realtime: jobs per second, last 5 minutes", &realtime, |p| p.at.format("%H:%M:%S").to_string()))
        }
        section class="card" {
            (graph::line_graph("graph-history", "History: jobs per hour, last 7 days", &history, |p| p.at.format("%a %H:00").to_string()))
        }
    };
    Ok(render_with(&dash, &ctx, &counts, "Overview", "overview", body))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    page: Option<String>,
    q: Option<String>,
}

pub(crate) async fn list_state(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    Path(state): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let state: JobState = state.parse().map_err(|e: crate::model::UnknownState| PageError(StatusCode::NOT_FOUND, e.to_string()))?;
    let filter = JobFilter { state: Some(state), search: q.q.clone(), ..JobFilter::default() };
    let body = job_list(&dash, &ctx, &filter, &format!("/state/{}", state.as_str()), &q).await?;
    render(&dash, &ctx, &format!("{state} jobs"), state.as_str(), body).await
}

pub(crate) async fn retries(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let filter = JobFilter { state: Some(JobState::Scheduled), retries_only: true, search: q.q.clone(), ..JobFilter::default() };
    let list = job_list(&dash, &ctx, &filter, "/retries", &q).await?;
    let body = html! {
        p class="muted" { "Jobs that failed and wait for their next attempt." }
        (list)
    };
    render(&dash, &ctx, "Retries", "retries", body).await
}

/// `GET /key/{key}`: every job with one concurrency key, in any state (in Diquis,
/// `tenant:<id>` is one tenant's jobs), with a link to the application's page for the key.
pub(crate) async fn by_key(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    Path(key): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let filter = JobFilter { key: Some(key.clone()), search: q.q.clone(), ..JobFilter::default() };
    let list = job_list(&dash, &ctx, &filter, &format!("/key/{}", urlencode(&key)), &q).await?;
    let body = html! {
        @if let Some(link) = key_link(&dash, &key) {
            p class="key-link" { (link) }
        }
        (list)
    };
    render(&dash, &ctx, &format!("Jobs of {key}"), "", body).await
}

/// The application's link for a concurrency key (see [`super::KeyLink`]), if one matches.
fn key_link(dash: &Dash, key: &str) -> Option<Markup> {
    dash.options.key_links.iter().find_map(|l| {
        key.strip_prefix(l.prefix.as_str()).filter(|rest| !rest.is_empty()).map(|rest| {
            html! { a href=(l.href.replace("{}", &urlencode(rest))) class="app-link" { (l.label) " " (rest) } }
        })
    })
}

/// A page of jobs with search, paging and bulk actions.
async fn job_list(dash: &Dash, ctx: &Ctx, filter: &JobFilter, path: &str, q: &ListQuery) -> Result<Markup, PageError> {
    let page_no = q.page.as_deref().and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).clamp(1, 1_000_000);
    let size = dash.options.page_size.clamp(1, 1000);
    let jobs = dash.store.list_filtered(filter, (page_no - 1) * size, size + 1).await?;
    let has_next = jobs.len() as i64 > size;
    let b = &ctx.base;
    let search = filter.search.as_deref().unwrap_or("");
    let query_suffix = if search.is_empty() { String::new() } else { format!("&q={}", urlencode(search)) };
    let scheduled = filter.state == Some(JobState::Scheduled);
    let text_search = !search.trim().is_empty() && search.trim().trim_start_matches('#').parse::<i64>().is_err();
    Ok(html! {
        form method="get" action={ (b) (path) } class="search" role="search" {
            input type="search" name="q" value=(search) placeholder="Job id, name or key (tenant:acme)" aria-label="Search by job id, name or key";
            button type="submit" class="secondary" { "Search" }
        }
        @if text_search {
            p class="muted" id="search-window" {
                "Text is searched in the newest " (crate::model::TEXT_SEARCH_WINDOW) " jobs of this list; search an id for an older job."
            }
        }
        form method="post" action={ (b) "/bulk" } id="bulk-form" {
            (ctx.csrf_field())
            input type="hidden" name="return" value={ (b) (path) "?page=" (page_no) (query_suffix) };
            div class="bulk" {
                button type="submit" name="action" value="requeue" class="secondary" id="bulk-requeue" { "Requeue selected" }
                " "
                button type="submit" name="action" value="delete" class="danger" id="bulk-delete" { "Delete selected" }
            }
            table class="jobs-table" {
                thead {
                    tr {
                        th class="check" { input type="checkbox" id="select-all" aria-label="Select all" hidden; }
                        th { "Id" } th { "Job" } th { "Queue" } th { "Attempt" }
                        th { @if scheduled { "Runs" } @else { "Created" } }
                        th { "Updated" } th { "Last error" }
                    }
                }
                tbody id="job-rows" data-live {
                    @if jobs.is_empty() {
                        tr { td colspan="8" class="muted" { "No jobs." } }
                    }
                    @for j in jobs.iter().take(size as usize) {
                        (row(ctx, j, filter.state.is_none(), scheduled))
                    }
                }
            }
        }
        p class="pager" {
            @if page_no > 1 {
                a href={ (b) (path) "?page=" (page_no - 1) (query_suffix) } rel="prev" { "← Previous" }
                " "
            }
            "Page " (page_no) " "
            @if has_next {
                a href={ (b) (path) "?page=" (page_no + 1) (query_suffix) } rel="next" { "Next →" }
            }
        }
    })
}

/// A job's row; `with_state` adds its state's badge (lists over every state), `scheduled` shows
/// when it runs instead of when it was created.
fn row(ctx: &Ctx, j: &JobRecord, with_state: bool, scheduled: bool) -> Markup {
    let err: String = j.last_error.as_deref().unwrap_or("").chars().take(160).collect();
    let id = j.id.to_string();
    html! {
        tr id={ "job-" (id) } {
            td class="check" { input type="checkbox" name="ids" value=(id) aria-label={ "Select job " (id) }; }
            td { a href={ (ctx.base) "/job/" (id) } { "#" (id) } }
            td {
                @if with_state { (badge(j.state)) " " }
                (j.name)
                @if let Some(p) = j.progress {
                    " " progress max="100" value=(p) { (p) "%" }
                }
            }
            td { (j.queue) }
            td { (j.attempt) }
            td { (relative(if scheduled { j.run_at } else { j.created_at })) }
            td { (relative(j.updated_at)) }
            td class="error" { (err) }
        }
    }
}

pub(crate) async fn recurring(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let b = &ctx.base;
    let list = dash.store.recurring_jobs().await?;
    let body = html! {
        table {
            thead { tr { th { "Id" } th { "Schedule" } th { "Job" } th { "Queue" } th { "Next run" } th { "Last run" } th {} } }
            tbody id="recurring-rows" data-live {
                @if list.is_empty() {
                    tr { td colspan="7" class="muted" { "No recurring jobs." } }
                }
                @for r in &list {
                    @let id = urlencode(&r.id);
                    tr id={ "recurring-" (r.id) } {
                        td { (r.id) }
                        td {
                            (cron_text::describe(&r.cron).unwrap_or_else(|| r.cron.clone()))
                            br;
                            code class="muted" { (r.cron) }
                            " "
                            span class="muted" { (r.timezone) }
                        }
                        td { (r.name) }
                        td { (r.queue) }
                        td {
                            @if r.disabled { span class="state state-Deleted" { "Disabled" } } @else { (relative(r.next_run_at)) }
                        }
                        td {
                            @match (r.last_run_at, r.last_job_id) {
                                (Some(at), Some(job)) => { (relative(at)) " " a href={ (b) "/job/" (maud::display(job)) } { "#" (maud::display(job)) } }
                                (Some(at), None) => { (relative(at)) }
                                _ => { "never" }
                            }
                        }
                        td class="actions" {
                            (ctx.action(&format!("/recurring/{id}/trigger"), "Trigger now", ""))
                            @if r.disabled {
                                (ctx.action(&format!("/recurring/{id}/enable"), "Enable", "secondary"))
                            } @else {
                                (ctx.action(&format!("/recurring/{id}/disable"), "Disable", "secondary"))
                            }
                            (ctx.action(&format!("/recurring/{id}/delete"), "Delete", "danger"))
                        }
                    }
                }
            }
        }
    };
    render(&dash, &ctx, "Recurring jobs", "recurring", body).await
}

pub(crate) async fn servers(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let b = &ctx.base;
    let running = dash.store.list_filtered(&JobFilter::state(JobState::Processing), 0, 1000).await?;
    let servers = dash.store.servers().await?;
    let body = html! {
        table {
            thead { tr { th { "Server" } th { "Workers" } th { "Queues" } th { "Started" } th { "Last heartbeat" } th { "Running now" } } }
            tbody id="server-rows" data-live {
                @if servers.is_empty() {
                    tr { td colspan="6" class="muted" { "No job server is running." } }
                }
                @for s in &servers {
                    @let now: Vec<&JobRecord> = running.iter().filter(|j| j.lease_owner.as_deref() == Some(s.id.as_str())).collect();
                    tr {
                        td { (s.id) }
                        td { (s.workers) }
                        td { (s.queues.join(", ")) }
                        td { (relative(s.started_at)) }
                        td { (relative(s.heartbeat_at)) }
                        td {
                            @if now.is_empty() { span class="muted" { "idle" } }
                            @for (i, j) in now.iter().enumerate() {
                                @if i > 0 { br; }
                                a href={ (b) "/job/" (maud::display(j.id)) } { "#" (maud::display(j.id)) } " " (j.name)
                            }
                        }
                    }
                }
            }
        }
    };
    render(&dash, &ctx, "Servers", "servers", body).await
}

pub(crate) async fn queues(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let mut queues = dash.store.queues().await?;
    for s in dash.store.servers().await? {
        for q in s.queues {
            if !queues.iter().any(|x| x.name == q) {
                queues.push(crate::model::QueueStats { name: q, enqueued: 0, processing: 0 });
            }
        }
    }
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let body = html! {
        table {
            thead { tr { th { "Queue" } th { "Length" } th { "Processing" } } }
            tbody id="queue-rows" data-live {
                @if queues.is_empty() {
                    tr { td colspan="3" class="muted" { "No queues." } }
                }
                @for q in &queues {
                    tr { td { (q.name) } td class="queue-length" { (q.enqueued) } td { (q.processing) } }
                }
            }
        }
    };
    render(&dash, &ctx, "Queues", "queues", body).await
}

pub(crate) async fn job_detail(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let id: JobId = id.trim_start_matches('#').parse().map_err(|_| PageError(StatusCode::NOT_FOUND, format!("no job {id:?}")))?;
    let job = dash.store.get(id).await?.ok_or(JobError::NotFound(id))?;
    let history = dash.store.history(id).await?;
    let logs = dash.store.logs(id).await?;
    let continuations = dash.store.continuations(id).await?;
    let b = &ctx.base;
    let job_href = |j: JobId| html! { a href={ (b) "/job/" (maud::display(j)) } { "#" (maud::display(j)) } };
    let body = html! {
        div id="job-detail" data-live {
            section class="card" {
                table class="props" {
                    tr { th { "State" } td class="state-cell" { (badge(job.state)) } }
                    tr { th { "Job" } td { (job.name) } }
                    tr { th { "Queue" } td { (job.queue) } }
                    tr { th { "Priority" } td { (job.priority) } }
                    tr { th { "Attempt" } td { (job.attempt) @if let Some(m) = job.max_attempts { " of " (m) } } }
                    tr {
                        th { "Progress" }
                        td {
                            @if let Some(p) = job.progress {
                                progress max="100" value=(p) { (p) "%" } " " (p) "%"
                            } @else {
                                "-"
                            }
                        }
                    }
                    tr { th { "Created" } td { (fmt_time(job.created_at)) } }
                    tr { th { "Run at" } td { (fmt_time(job.run_at)) } }
                    @if let Some(owner) = &job.lease_owner {
                        tr {
                            th { "Lease" }
                            td {
                                "held by " (owner) " until " (job.lease_expires_at.map(fmt_time).unwrap_or_default())
                                " (token " (job.lease_token) ")"
                            }
                        }
                    }
                    @if let Some(p) = job.parent_id {
                        tr { th { "Continuation of" } td { (job_href(p)) } }
                    }
                    @if let Some(r) = &job.recurring_id {
                        tr { th { "Recurring job" } td { a href={ (b) "/recurring" } { (r) } } }
                    }
                    @if let Some(k) = &job.unique_key {
                        tr { th { "Unique key" } td { (k) } }
                    }
                    @if let Some(k) = &job.concurrency_key {
                        tr {
                            th { "Concurrency key" }
                            td {
                                a href={ (b) "/key/" (urlencode(k)) } { (k) }
                                @if let Some(l) = key_link(&dash, k) { " · " (l) }
                            }
                        }
                    }
                }
                p class="actions" {
                    @if job.state != JobState::Processing {
                        (ctx.action(&format!("/job/{id}/retry"), "Requeue", ""))
                    }
                    @if matches!(job.state, JobState::Enqueued | JobState::Scheduled | JobState::Awaiting | JobState::Processing) {
                        (ctx.action(&format!("/job/{id}/cancel"), "Cancel", "secondary"))
                    }
                    @if job.state != JobState::Deleted {
                        (ctx.action(&format!("/job/{id}/delete"), "Delete", "danger"))
                    }
                }
            }
            @if let Some(e) = &job.last_error {
                section class="card" { h2 { "Error" } pre class="error" { (e) } }
            }
            section class="card" { h2 { "Arguments" } pre class="payload" { (redact_payload(&job.payload)) } }
            @if !continuations.is_empty() {
                section class="card" {
                    h2 { "Continuations" }
                    ul {
                        @for c in &continuations {
                            li { (job_href(c.id)) " " (c.name) " " (badge(c.state)) }
                        }
                    }
                }
            }
            section class="card" {
                h2 { "History" }
                table {
                    thead { tr { th { "State" } th { "When" } th { "Server" } th { "Reason / error" } } }
                    tbody {
                        @for h in history.iter().rev() {
                            tr {
                                td { (badge(h.state)) }
                                td { (fmt_time(h.at)) }
                                td { (h.worker.as_deref().unwrap_or("")) }
                                td { pre class="reason" { (h.reason.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                }
            }
            section class="card" {
                h2 { "Log" }
                @if logs.is_empty() {
                    p class="muted" { "No log lines." }
                } @else {
                    pre class="log" {
                        @for l in &logs { (fmt_time(l.at)) "  " (l.line) "\n" }
                    }
                }
            }
        }
    };
    render(&dash, &ctx, &format!("Job #{id}"), job.state.as_str(), body).await
}
