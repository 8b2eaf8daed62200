//! Account pages: the one-time password reset link (`/reset-password?token=…`, anonymous) and
//! the signed-in user's own password change (`/account/password`).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use maud::{Markup, html};

use super::html::{page, page_on};
use crate::auth::extract::PageCaller;
use crate::auth::password_reset::{self, ResetError};
use crate::auth::session::{AUTH_COOKIE, CSRF_FIELD, LOGIN_CSRF_COOKIE, REFRESH_COOKIE, cookie, is_https, secrets_equal, set_cookie};
use crate::auth::users_api::{change_own_password, set_password};
use crate::auth::{password, tokens};
use crate::state::AppState;
use crate::web::envelope::ApiError;
use crate::web::forms::{Fields, field, forbidden_csrf, problems_html};

// ---------- reset link ----------

fn reset_page(csrf: &str, token: &str, problems: &[String]) -> String {
    let body = html! {
        div class="card login" {
            h1 { "Choose a new password" }
            (problems_html(problems))
            form method="post" action="/reset-password" {
                input type="hidden" name="_csrf" value=(csrf);
                input type="hidden" name="token" value=(token);
                label for="newPassword" { "New password" }
                input id="newPassword" name="newPassword" type="password" autocomplete="new-password" required minlength="8";
                (password_hint())
                p { button type="submit" id="reset-password" { "Set password" } }
            }
        }
    };
    page("Reset password", None, "", body, "")
}

/// The password rule under a new-password field.
pub(crate) fn password_hint() -> Markup {
    html! { p class="hint" { "At least 8 characters, with a letter and a digit." } }
}

fn invalid_link() -> Response {
    let body = html! { div class="card" { h1 { "Reset password" } (problems_html(&[ResetError::InvalidToken.to_string()])) } };
    (StatusCode::NOT_FOUND, Html(page("Reset password", None, "", body, ""))).into_response()
}

/// The reset form with a fresh double-submit CSRF cookie (the login form's).
fn reset_form_response(status: StatusCode, headers: &HeaderMap, token: &str, problems: &[String]) -> Response {
    let csrf = tokens::random_token();
    let mut response = (status, Html(reset_page(&csrf, token, problems))).into_response();
    response.headers_mut().append(SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, is_https(headers)));
    response
}

/// `GET /reset-password?token=…`: the form, if the link is still valid.
pub async fn reset_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let token = q.get("token").map(String::as_str).unwrap_or("");
    match password_reset::user_of(&state.db, token).await {
        Ok(Some(_)) => reset_form_response(StatusCode::OK, &headers, token, &[]),
        Ok(None) => invalid_link(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /reset-password`: sets the new password, uses the link up and ends every session of the
/// user; then the login page.
pub async fn reset(State(state): State<AppState>, headers: HeaderMap, Form(f): Fields) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !secrets_equal(field(&f, CSRF_FIELD), &expected) {
        return forbidden_csrf();
    }
    let token = field(&f, "token");
    let new = field(&f, "newPassword");
    if let Some(w) = password::weakness(new) {
        return match password_reset::user_of(&state.db, token).await {
            Ok(Some(_)) => reset_form_response(StatusCode::BAD_REQUEST, &headers, token, &[format!("The new password {w}.")]),
            Ok(None) => invalid_link(),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    let user_id = match password_reset::consume(&state.db, token).await {
        Ok(id) => id,
        Err(ResetError::InvalidToken) => return invalid_link(),
        Err(ResetError::Database(e)) => return ApiError::from(e).into_response(),
    };
    if let Err(e) = set_password(&state, &user_id, new.to_string()).await {
        return ApiError::from(e).into_response();
    }
    tracing::info!(user_id = %user_id, "password reset through a one-time link; every session ended");
    let secure = is_https(&headers);
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure));
    r
}

// ---------- own password ----------

/// The page on this node: a jobs node's header has no links to the pages only web nodes serve.
fn password_page(identity: &crate::auth::Identity, problems: &[String], done: bool, web: bool) -> String {
    let body = html! {
        div class="card login" {
            h1 { "Change password" }
            @if done {
                div class="notice" id="password-changed" { "Your password has been changed; your other sessions have ended." }
            }
            (problems_html(problems))
            form method="post" action="/account/password" {
                input type="hidden" name="_csrf" value=(identity.csrf.as_deref().unwrap_or(""));
                label for="password" { "Current password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                label for="newPassword" { "New password" }
                input id="newPassword" name="newPassword" type="password" autocomplete="new-password" required minlength="8";
                (password_hint())
                p { button type="submit" id="change-password" { "Change password" } }
            }
        }
    };
    page_on("Change password", Some(identity), "", body, "", web)
}

/// `GET /account/password`.
pub async fn password_form(
    State(state): State<AppState>,
    PageCaller(identity): PageCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    Html(password_page(&identity, &[], q.contains_key("changed"), state.role.serves_web())).into_response()
}

/// `POST /account/password`: the API's password change; the browser gets the new session's
/// cookies (every other session has ended).
pub async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageCaller(identity): PageCaller,
    Form(f): Fields,
) -> Response {
    let expected = identity.csrf.as_deref().unwrap_or("");
    if expected.is_empty() || !secrets_equal(field(&f, CSRF_FIELD), expected) {
        return forbidden_csrf();
    }
    let session_csrf = tokens::random_token();
    match change_own_password(
        &state,
        &identity,
        field(&f, "password").to_string(),
        field(&f, "newPassword").to_string(),
        Some(session_csrf),
    )
    .await
    {
        Ok(issued) => {
            let secure = is_https(&headers);
            let mut r = Redirect::to("/account/password?changed=1").into_response();
            let h = r.headers_mut();
            h.append(SET_COOKIE, set_cookie(AUTH_COOKIE, &issued.token, state.jwt.lifetime_secs(), secure));
            h.append(SET_COOKIE, set_cookie(REFRESH_COOKIE, &issued.refresh_token, state.settings.jwt.refresh_days * 86_400, secure));
            r
        }
        Err(e) => {
            let messages: Vec<String> = e
                .messages
                .iter()
                .map(|m| m.replace("'newPassword'", "The new password").replace("'password'", "The current password"))
                .collect();
            let mut r = (e.status, Html(password_page(&identity, &messages, false, state.role.serves_web()))).into_response();
            if e.status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
            }
            r
        }
    }
}
