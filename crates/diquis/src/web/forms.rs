//! What every HTML form handler needs: its fields, the session's CSRF check, and the box of
//! problems above a form.

use std::collections::HashMap;

use axum::Form;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use maud::{Markup, html};

use crate::auth::Identity;
use crate::auth::session::{CSRF_FIELD, secrets_equal};

/// A posted form's fields.
pub type Fields = Form<HashMap<String, String>>;

/// The value of field `name` (empty when absent).
pub fn field<'a>(f: &'a HashMap<String, String>, name: &str) -> &'a str {
    f.get(name).map(String::as_str).unwrap_or("")
}

/// The problems as an alert box above a form; nothing when there are none.
pub fn problems_html(problems: &[String]) -> Markup {
    html! {
        @if !problems.is_empty() {
            div class="problems" role="alert" { ul { @for p in problems { li { (p) } } } }
        }
    }
}

/// Whether the form carries the signed-in session's CSRF token.
pub fn csrf_ok(identity: &Identity, fields: &HashMap<String, String>) -> bool {
    let expected = identity.csrf.as_deref().unwrap_or("");
    !expected.is_empty() && secrets_equal(field(fields, CSRF_FIELD), expected)
}

/// The answer to a form without the right CSRF token.
pub fn forbidden_csrf() -> Response {
    (StatusCode::FORBIDDEN, "The form's CSRF token is missing or wrong; reload the page and try again.").into_response()
}
