//! `GET /api/notifications?after=<id>`: the events a client missed while it was away.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};

use super::outbox::{self, MissedNotification};
use crate::auth::extract::Caller;
use crate::state::AppState;
use crate::web::envelope::{ApiError, Envelope};

/// Lists notifications with an id above `after` (default 0) that the caller may see: all of them
/// for root administrators (or with `Notifications:BroadcastToAll`), else the ones it asked for.
pub async fn missed(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Envelope<Vec<MissedNotification>>>, ApiError> {
    let after = match query.iter().find(|(k, _)| k.eq_ignore_ascii_case("after")).map(|(_, v)| v.trim()) {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => return Err(ApiError::validation(vec![format!("'after' must be a notification id (a whole number ≥ 0); '{v}' is not.")])),
        },
    };
    let everything = caller.identity.is_root_admin() || state.settings.broadcast_to_all;
    let rows = outbox::visible_after(&state.db, after, &caller.identity.user_name, everything).await?;
    Ok(Json(Envelope::ok(rows, vec![])))
}
