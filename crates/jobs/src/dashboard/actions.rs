//! The dashboard's actions (POST forms): same-origin only, with the CSRF token when a
//! [`super::CsrfGuard`] is configured.

use axum::extract::{Form, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Redirect;

use super::{Dash, PageError, base_path, urlencode};
use crate::error::JobError;
use crate::model::JobId;

/// Refuses cross-site POSTs (`Sec-Fetch-Site`, `Origin` vs `Host`) and checks the CSRF token.
fn check_action(dash: &Dash, headers: &HeaderMap, fields: &[(String, String)]) -> Result<(), PageError> {
    let forbidden = |why: &str| PageError(StatusCode::FORBIDDEN, format!("action refused: {why}"));
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(forbidden("cross-site request"));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return Err(forbidden("Origin does not match Host"));
        }
    }
    if let Some(guard) = &dash.options.csrf {
        let token = field(fields, "csrf_token");
        if !token.is_some_and(|t| guard.verify(headers, t)) {
            return Err(forbidden("missing or invalid CSRF token"));
        }
    }
    Ok(())
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

type Fields = Form<Vec<(String, String)>>;

fn parse_id(id: &str) -> Result<JobId, PageError> {
    id.parse().map_err(|_| PageError(StatusCode::NOT_FOUND, format!("no job {id:?}")))
}

/// `retry` (requeue), `delete` or `cancel` one job, then back to its page.
pub(crate) async fn job_action(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Fields,
) -> Result<Redirect, PageError> {
    check_action(&dash, &headers, &form)?;
    let id = parse_id(&id)?;
    match action.to_ascii_lowercase().as_str() {
        "retry" => dash.store.requeue(id).await?,
        "delete" => dash.store.delete(id).await?,
        "cancel" => {
            dash.store.cancel(id).await?;
        }
        other => return Err(PageError(StatusCode::NOT_FOUND, format!("unknown action {other:?}"))),
    }
    Ok(Redirect::to(&format!("{}/job/{id}", base_path(&dash.options, &original, &uri))))
}

/// Requeues or deletes every selected job (`ids`, repeated), then goes back to the list
/// (`return`, a path under the dashboard). Jobs that cannot take the action (e.g. requeueing a
/// processing job) are skipped and counted in the `skipped` query parameter.
pub(crate) async fn bulk(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Fields,
) -> Result<Redirect, PageError> {
    check_action(&dash, &headers, &form)?;
    let base = base_path(&dash.options, &original, &uri);
    let action = field(&form, "action").unwrap_or("");
    if !matches!(action, "requeue" | "delete") {
        return Err(PageError(StatusCode::BAD_REQUEST, format!("unknown bulk action {action:?}: expected requeue or delete")));
    }
    let mut ids = Vec::new();
    for (k, v) in &form {
        if k == "ids" {
            ids.push(v.parse::<JobId>().map_err(|_| PageError(StatusCode::BAD_REQUEST, format!("not a job id: {v:?}")))?);
        }
    }
    if ids.len() > 1000 {
        return Err(PageError(StatusCode::BAD_REQUEST, "at most 1000 jobs at once".to_owned()));
    }
    let mut skipped = 0;
    for id in ids {
        let done = if action == "requeue" { dash.store.requeue(id).await } else { dash.store.delete(id).await };
        match done {
            Ok(()) => {}
            Err(JobError::NotFound(_) | JobError::InvalidState { .. }) => skipped += 1,
            Err(e) => return Err(e.into()),
        }
    }
    // Back to the page the form was on, if it is one of the dashboard's; else the overview.
    let back = field(&form, "return")
        .filter(|r| {
            let lower = r.to_ascii_lowercase();
            lower.starts_with(&format!("{}/", base.to_ascii_lowercase())) && !r.contains("//") && !r.contains('\\')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{base}/"));
    let back = if skipped > 0 { format!("{back}{}skipped={skipped}", if back.contains('?') { '&' } else { '?' }) } else { back };
    Ok(Redirect::to(&back))
}

pub(crate) async fn trigger_recurring(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Fields,
) -> Result<Redirect, PageError> {
    check_action(&dash, &headers, &form)?;
    let job = dash.store.trigger_recurring(&id).await?;
    Ok(Redirect::to(&format!("{}/job/{job}", base_path(&dash.options, &original, &uri))))
}

/// `disable`, `enable` or `delete` a recurring job, then back to the Recurring page.
pub(crate) async fn recurring_action(
    State(dash): State<Dash>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Fields,
) -> Result<Redirect, PageError> {
    check_action(&dash, &headers, &form)?;
    match action.to_ascii_lowercase().as_str() {
        "disable" => dash.store.set_recurring_disabled(&id, true).await?,
        "enable" => dash.store.set_recurring_disabled(&id, false).await?,
        "delete" => {
            if !dash.store.remove_recurring(&id).await? {
                return Err(JobError::RecurringNotFound(id).into());
            }
        }
        other => return Err(PageError(StatusCode::NOT_FOUND, format!("unknown action {other:?}"))),
    }
    Ok(Redirect::to(&format!("{}/recurring#recurring-{}", base_path(&dash.options, &original, &uri), urlencode(&id))))
}
