//! The dashboard's pages (GET).

use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode, Uri};
use axum::response::Html;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Dash, LayoutPage, NAV_STATES, PageError, base_path, cron_text, esc, graph, redact_payload, urlencode};
use crate::error::JobError;
use crate::model::{JobFilter, JobId, JobRecord, JobState};

/// What every page needs from its request.
pub(crate) struct Ctx {
    pub(crate) base: String,
    headers: HeaderMap,
    extensions: Extensions,
    csrf: String,
}

impl Ctx {
    fn new(dash: &Dash, original: &Uri, uri: &Uri, headers: HeaderMap, extensions: Extensions) -> Ctx {
        let csrf = match &dash.options.csrf {
            Some(g) => format!("<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">", esc(&g.token(&headers))),
            None => String::new(),
        };
        Ctx { base: base_path(&dash.options, original, uri), headers, extensions, csrf }
    }

    fn b(&self) -> String {
        esc(&self.base)
    }

    fn action(&self, path: &str, label: &str, class: &str) -> String {
        format!(
            "<form method=\"post\" action=\"{}{}\" class=\"inline\">{}<button type=\"submit\" class=\"{class}\">{}</button></form> ",
            self.b(),
            esc(path),
            self.csrf,
            esc(label)
        )
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
async fn render(dash: &Dash, ctx: &Ctx, title: &str, active: &str, body: &str) -> Result<Html<String>, PageError> {
    let counts = NavCounts::read(dash).await?;
    Ok(render_with(dash, ctx, &counts, title, active, body))
}

/// [`render`] with the navigation's counts already read.
fn render_with(dash: &Dash, ctx: &Ctx, counts: &NavCounts, title: &str, active: &str, body: &str) -> Html<String> {
    let b = ctx.b();
    let link = |href: &str, key: &str, label: &str, count: Option<i64>| {
        let current = if key.eq_ignore_ascii_case(active) { " aria-current=\"page\" class=\"current\"" } else { "" };
        let badge = count.map(|n| format!(" <span class=\"count count-{key}\">{n}</span>")).unwrap_or_default();
        format!("<a href=\"{b}{href}\"{current}>{}{badge}</a>", esc(label))
    };
    let mut nav = String::from("<nav class=\"jobs-nav\" id=\"jobs-nav\" data-live aria-label=\"Jobs\">");
    nav.push_str(&link("/", "overview", "Overview", None));
    for state in NAV_STATES {
        nav.push_str(&link(&format!("/state/{}", state.as_str()), state.as_str(), state.as_str(), Some(counts.state(state))));
    }
    nav.push_str(&link("/retries", "retries", "Retries", Some(counts.retries)));
    nav.push_str(&link("/recurring", "recurring", "Recurring", Some(counts.recurring as i64)));
    nav.push_str(&link("/servers", "servers", "Servers", Some(counts.servers as i64)));
    nav.push_str(&link("/queues", "queues", "Queues", None));
    nav.push_str("</nav>");
    let body = format!("<div class=\"jobs\">{nav}<h1>{}</h1>{body}</div>", esc(title));
    let mut head = format!(
        "<link rel=\"stylesheet\" href=\"{b}/dashboard.css\"><script src=\"{b}/theme.js\"></script><meta name=\"jobs-base\" content=\"{b}\">"
    );
    let mut scripts = String::new();
    if let Some(live) = &dash.options.live {
        let _ = write!(
            head,
            "<meta name=\"jobs-hub\" content=\"{}\"><meta name=\"jobs-hub-event\" content=\"{}\">",
            esc(&live.hub_url),
            esc(&live.event)
        );
        for s in &live.scripts {
            let _ = write!(scripts, "<script src=\"{}\"></script>", esc(s));
        }
    }
    let _ = write!(scripts, "<script src=\"{b}/dashboard.js\"></script>");
    let page = LayoutPage { title: &format!("{title} · Jobs"), head: &head, body: &body, scripts: &scripts };
    Html(match &dash.options.layout {
        Some(layout) => layout.render(&ctx.headers, &ctx.extensions, page),
        None => standalone(page),
    })
}

/// The page without an application layout.
fn standalone(page: LayoutPage<'_>) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title>{}</head><body><header class=\"top\"><span class=\"brand\">Jobs</span><span class=\"spacer\"></span>\
<button type=\"button\" id=\"theme-toggle\" class=\"secondary\" hidden>Theme</button></header><main>{}</main>{}</body></html>",
        esc(page.title),
        page.head,
        page.body,
        page.scripts
    )
}

pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "3 minutes ago" / "in 2 hours", with the exact time as a tooltip.
fn relative(t: DateTime<Utc>) -> String {
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
    format!("<time datetime=\"{}\" title=\"{}\">{text}</time>", t.to_rfc3339(), fmt_time(t))
}

fn badge(state: JobState) -> String {
    format!("<span class=\"state state-{s}\">{s}</span>", s = state.as_str())
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
    let b = ctx.b();
    let mut body = String::from("<section class=\"cards\" id=\"jobs-cards\" data-live>");
    for state in NAV_STATES {
        let n = counts.state(state);
        let _ = write!(
            body,
            "<a class=\"card stat stat-{s}\" href=\"{b}/state/{s}\"><span class=\"label\">{s}</span><span class=\"value\" id=\"total-{s}\">{n}</span></a>",
            s = state.as_str()
        );
    }
    body.push_str("</section>");
    body.push_str("<section class=\"card\">");
    body.push_str(&graph::line_graph("graph-realtime", "Realtime: jobs per second, last 5 minutes", &realtime, |p| {
        p.at.format("%H:%M:%S").to_string()
    }));
    body.push_str("</section><section class=\"card\">");
    body.push_str(&graph::line_graph("graph-history", "History: jobs per hour, last 7 days", &history, |p| {
        p.at.format("%a %H:00").to_string()
    }));
    body.push_str("</section>");
    Ok(render_with(&dash, &ctx, &counts, "Overview", "overview", &body))
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
    render(&dash, &ctx, &format!("{state} jobs"), state.as_str(), &body).await
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
    let mut body = String::from("<p class=\"muted\">Jobs that failed and wait for their next attempt.</p>");
    body.push_str(&job_list(&dash, &ctx, &filter, "/retries", &q).await?);
    render(&dash, &ctx, "Retries", "retries", &body).await
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
    let mut body = String::new();
    if let Some(link) = key_link(&dash, &key) {
        let _ = write!(body, "<p class=\"key-link\">{link}</p>");
    }
    body.push_str(&job_list(&dash, &ctx, &filter, &format!("/key/{}", urlencode(&key)), &q).await?);
    render(&dash, &ctx, &format!("Jobs of {key}"), "", &body).await
}

/// The application's link for a concurrency key (see [`super::KeyLink`]), if one matches.
fn key_link(dash: &Dash, key: &str) -> Option<String> {
    dash.options.key_links.iter().find_map(|l| {
        key.strip_prefix(l.prefix.as_str()).filter(|rest| !rest.is_empty()).map(|rest| {
            format!("<a href=\"{}\" class=\"app-link\">{} {}</a>", esc(&l.href.replace("{}", &urlencode(rest))), esc(&l.label), esc(rest))
        })
    })
}

/// A page of jobs with search, paging and bulk actions.
async fn job_list(dash: &Dash, ctx: &Ctx, filter: &JobFilter, path: &str, q: &ListQuery) -> Result<String, PageError> {
    let page_no = q.page.as_deref().and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).clamp(1, 1_000_000);
    let size = dash.options.page_size.clamp(1, 1000);
    let jobs = dash.store.list_filtered(filter, (page_no - 1) * size, size + 1).await?;
    let has_next = jobs.len() as i64 > size;
    let b = ctx.b();
    let search = filter.search.as_deref().unwrap_or("");
    let query_suffix = if search.is_empty() { String::new() } else { format!("&q={}", urlencode(search)) };
    let here = format!("{}{path}?page={page_no}{query_suffix}", ctx.base);
    let mut body = format!(
        "<form method=\"get\" action=\"{b}{path}\" class=\"search\" role=\"search\"><input type=\"search\" name=\"q\" value=\"{}\" \
placeholder=\"Job id, name or key (tenant:acme)\" aria-label=\"Search by job id, name or key\"><button type=\"submit\" class=\"secondary\">Search</button></form>",
        esc(search)
    );
    if !search.trim().is_empty() && search.trim().trim_start_matches('#').parse::<i64>().is_err() {
        let _ = write!(
            body,
            "<p class=\"muted\" id=\"search-window\">Text is searched in the newest {} jobs of this list; search an id for an older job.</p>",
            crate::model::TEXT_SEARCH_WINDOW
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{b}/bulk\" id=\"bulk-form\">{}<input type=\"hidden\" name=\"return\" value=\"{}\">\
<div class=\"bulk\"><button type=\"submit\" name=\"action\" value=\"requeue\" class=\"secondary\" id=\"bulk-requeue\">Requeue selected</button> \
<button type=\"submit\" name=\"action\" value=\"delete\" class=\"danger\" id=\"bulk-delete\">Delete selected</button></div>",
        ctx.csrf,
        esc(&here)
    );
    let _ = write!(
        body,
        "<table class=\"jobs-table\"><thead><tr><th class=\"check\"><input type=\"checkbox\" id=\"select-all\" aria-label=\"Select all\" hidden></th>\
<th>Id</th><th>Job</th><th>Queue</th><th>Attempt</th><th>{}</th><th>Updated</th><th>Last error</th></tr></thead><tbody id=\"job-rows\" data-live>",
        if filter.state == Some(JobState::Scheduled) { "Runs" } else { "Created" }
    );
    if jobs.is_empty() {
        body.push_str("<tr><td colspan=\"8\" class=\"muted\">No jobs.</td></tr>");
    }
    for j in jobs.iter().take(size as usize) {
        body.push_str(&row(ctx, j, filter.state.is_none(), filter.state == Some(JobState::Scheduled)));
    }
    body.push_str("</tbody></table></form><p class=\"pager\">");
    if page_no > 1 {
        let _ = write!(body, "<a href=\"{b}{path}?page={}{}\" rel=\"prev\">&larr; Previous</a> ", page_no - 1, esc(&query_suffix));
    }
    let _ = write!(body, "Page {page_no} ");
    if has_next {
        let _ = write!(body, "<a href=\"{b}{path}?page={}{}\" rel=\"next\">Next &rarr;</a>", page_no + 1, esc(&query_suffix));
    }
    body.push_str("</p>");
    Ok(body)
}

/// A job's row; `with_state` adds its state's badge (lists over every state), `scheduled` shows
/// when it runs instead of when it was created.
fn row(ctx: &Ctx, j: &JobRecord, with_state: bool, scheduled: bool) -> String {
    let err: String = j.last_error.as_deref().unwrap_or("").chars().take(160).collect();
    let when = if scheduled { relative(j.run_at) } else { relative(j.created_at) };
    let state = if with_state { format!("{} ", badge(j.state)) } else { String::new() };
    let progress = j.progress.map(|p| format!(" <progress max=\"100\" value=\"{p}\">{p}%</progress>")).unwrap_or_default();
    format!(
        "<tr id=\"job-{id}\"><td class=\"check\"><input type=\"checkbox\" name=\"ids\" value=\"{id}\" aria-label=\"Select job {id}\"></td>\
<td><a href=\"{b}/job/{id}\">#{id}</a></td><td>{state}{}{progress}</td><td>{}</td><td>{}</td><td>{when}</td><td>{}</td><td class=\"error\">{}</td></tr>",
        esc(&j.name),
        esc(&j.queue),
        j.attempt,
        relative(j.updated_at),
        esc(&err),
        b = ctx.b(),
        id = j.id,
    )
}

pub(crate) async fn recurring(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let b = ctx.b();
    let mut body = String::from(
        "<table><thead><tr><th>Id</th><th>Schedule</th><th>Job</th><th>Queue</th><th>Next run</th><th>Last run</th><th></th></tr></thead>\
<tbody id=\"recurring-rows\" data-live>",
    );
    let list = dash.store.recurring_jobs().await?;
    if list.is_empty() {
        body.push_str("<tr><td colspan=\"7\" class=\"muted\">No recurring jobs.</td></tr>");
    }
    for r in list {
        let words = cron_text::describe(&r.cron).unwrap_or_else(|| r.cron.clone());
        let last = match (r.last_run_at, r.last_job_id) {
            (Some(at), Some(id)) => format!("{} <a href=\"{b}/job/{id}\">#{id}</a>", relative(at)),
            (Some(at), None) => relative(at),
            _ => "never".to_owned(),
        };
        let next = if r.disabled { "<span class=\"state state-Deleted\">Disabled</span>".to_owned() } else { relative(r.next_run_at) };
        let id = urlencode(&r.id);
        let toggle = if r.disabled {
            ctx.action(&format!("/recurring/{id}/enable"), "Enable", "secondary")
        } else {
            ctx.action(&format!("/recurring/{id}/disable"), "Disable", "secondary")
        };
        let _ = write!(
            body,
            "<tr id=\"recurring-{}\"><td>{}</td><td>{}<br><code class=\"muted\">{}</code> <span class=\"muted\">{}</span></td><td>{}</td><td>{}</td>\
<td>{next}</td><td>{last}</td><td class=\"actions\">{}{toggle}{}</td></tr>",
            esc(&r.id),
            esc(&r.id),
            esc(&words),
            esc(&r.cron),
            esc(&r.timezone),
            esc(&r.name),
            esc(&r.queue),
            ctx.action(&format!("/recurring/{id}/trigger"), "Trigger now", ""),
            ctx.action(&format!("/recurring/{id}/delete"), "Delete", "danger"),
        );
    }
    body.push_str("</tbody></table>");
    render(&dash, &ctx, "Recurring jobs", "recurring", &body).await
}

pub(crate) async fn servers(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Html<String>, PageError> {
    let ctx = Ctx::new(&dash, &original, &uri, headers, extensions);
    let b = ctx.b();
    let running = dash.store.list_filtered(&JobFilter::state(JobState::Processing), 0, 1000).await?;
    let mut body = String::from(
        "<table><thead><tr><th>Server</th><th>Workers</th><th>Queues</th><th>Started</th><th>Last heartbeat</th><th>Running now</th></tr></thead>\
<tbody id=\"server-rows\" data-live>",
    );
    let servers = dash.store.servers().await?;
    if servers.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No job server is running.</td></tr>");
    }
    for s in servers {
        let now: Vec<String> = running
            .iter()
            .filter(|j| j.lease_owner.as_deref() == Some(s.id.as_str()))
            .map(|j| format!("<a href=\"{b}/job/{id}\">#{id}</a> {}", esc(&j.name), id = j.id))
            .collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.id),
            s.workers,
            esc(&s.queues.join(", ")),
            relative(s.started_at),
            relative(s.heartbeat_at),
            if now.is_empty() { "<span class=\"muted\">idle</span>".to_owned() } else { now.join("<br>") }
        );
    }
    body.push_str("</tbody></table>");
    render(&dash, &ctx, "Servers", "servers", &body).await
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
    let mut body =
        String::from("<table><thead><tr><th>Queue</th><th>Length</th><th>Processing</th></tr></thead><tbody id=\"queue-rows\" data-live>");
    if queues.is_empty() {
        body.push_str("<tr><td colspan=\"3\" class=\"muted\">No queues.</td></tr>");
    }
    for q in queues {
        let _ = write!(body, "<tr><td>{}</td><td class=\"queue-length\">{}</td><td>{}</td></tr>", esc(&q.name), q.enqueued, q.processing);
    }
    body.push_str("</tbody></table>");
    render(&dash, &ctx, "Queues", "queues", &body).await
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
    let b = ctx.b();
    let mut body = String::from("<div id=\"job-detail\" data-live>");
    let _ = write!(
        body,
        "<section class=\"card\"><table class=\"props\"><tr><th>State</th><td class=\"state-cell\">{}</td></tr><tr><th>Job</th><td>{}</td></tr>\
<tr><th>Queue</th><td>{}</td></tr><tr><th>Priority</th><td>{}</td></tr><tr><th>Attempt</th><td>{}{}</td></tr><tr><th>Progress</th><td>{}</td></tr>\
<tr><th>Created</th><td>{}</td></tr><tr><th>Run at</th><td>{}</td></tr>",
        badge(job.state),
        esc(&job.name),
        esc(&job.queue),
        job.priority,
        job.attempt,
        job.max_attempts.map(|m| format!(" of {m}")).unwrap_or_default(),
        job.progress.map(|p| format!("<progress max=\"100\" value=\"{p}\">{p}%</progress> {p}%")).unwrap_or_else(|| "-".to_owned()),
        fmt_time(job.created_at),
        fmt_time(job.run_at),
    );
    if let Some(owner) = &job.lease_owner {
        let _ = write!(
            body,
            "<tr><th>Lease</th><td>held by {} until {} (token {})</td></tr>",
            esc(owner),
            job.lease_expires_at.map(fmt_time).unwrap_or_default(),
            job.lease_token
        );
    }
    if let Some(p) = job.parent_id {
        let _ = write!(body, "<tr><th>Continuation of</th><td><a href=\"{b}/job/{p}\">#{p}</a></td></tr>");
    }
    if let Some(r) = &job.recurring_id {
        let _ = write!(body, "<tr><th>Recurring job</th><td><a href=\"{b}/recurring\">{}</a></td></tr>", esc(r));
    }
    if let Some(k) = &job.unique_key {
        let _ = write!(body, "<tr><th>Unique key</th><td>{}</td></tr>", esc(k));
    }
    if let Some(k) = &job.concurrency_key {
        let app = key_link(&dash, k).map(|l| format!(" &middot; {l}")).unwrap_or_default();
        let _ = write!(body, "<tr><th>Concurrency key</th><td><a href=\"{b}/key/{}\">{}</a>{app}</td></tr>", urlencode(k), esc(k));
    }
    body.push_str("</table><p class=\"actions\">");
    if job.state != JobState::Processing {
        body.push_str(&ctx.action(&format!("/job/{id}/retry"), "Requeue", ""));
    }
    if matches!(job.state, JobState::Enqueued | JobState::Scheduled | JobState::Awaiting | JobState::Processing) {
        body.push_str(&ctx.action(&format!("/job/{id}/cancel"), "Cancel", "secondary"));
    }
    if job.state != JobState::Deleted {
        body.push_str(&ctx.action(&format!("/job/{id}/delete"), "Delete", "danger"));
    }
    body.push_str("</p></section>");
    if let Some(e) = &job.last_error {
        let _ = write!(body, "<section class=\"card\"><h2>Error</h2><pre class=\"error\">{}</pre></section>", esc(e));
    }
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Arguments</h2><pre class=\"payload\">{}</pre></section>",
        esc(&redact_payload(&job.payload))
    );
    let continuations = dash.store.continuations(id).await?;
    if !continuations.is_empty() {
        body.push_str("<section class=\"card\"><h2>Continuations</h2><ul>");
        for c in continuations {
            let _ = write!(body, "<li><a href=\"{b}/job/{i}\">#{i}</a> {} {}</li>", esc(&c.name), badge(c.state), i = c.id);
        }
        body.push_str("</ul></section>");
    }
    body.push_str(
        "<section class=\"card\"><h2>History</h2><table><thead><tr><th>State</th><th>When</th><th>Server</th><th>Reason / error</th></tr></thead><tbody>",
    );
    for h in history.iter().rev() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><pre class=\"reason\">{}</pre></td></tr>",
            badge(h.state),
            fmt_time(h.at),
            esc(h.worker.as_deref().unwrap_or("")),
            esc(h.reason.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table></section><section class=\"card\"><h2>Log</h2>");
    if logs.is_empty() {
        body.push_str("<p class=\"muted\">No log lines.</p>");
    } else {
        body.push_str("<pre class=\"log\">");
        for l in &logs {
            let _ = writeln!(body, "{}  {}", fmt_time(l.at), esc(&l.line));
        }
        body.push_str("</pre>");
    }
    body.push_str("</section></div>");
    render(&dash, &ctx, &format!("Job #{id}"), job.state.as_str(), &body).await
}
