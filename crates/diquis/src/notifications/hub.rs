//! The notification hub, wire-named like .NET Diquis's
//! `Diquis.Infrastructure.Hubs.NotificationHub` so both fleets share Redis channels. It has no
//! client-callable methods: on connect it greets the caller with `Connected` and puts root
//! administrators into the [`ROOT_GROUP`] group that tenant events are sent to.

use std::sync::Arc;

use signalr::{Hub, HubCallContext, HubError, HubLifetimeManager, HubOptions, HubService};
use signalr_connections::HttpConnectionOptions;

use super::event::{CONNECTED_MESSAGE, target};
use super::publisher::ROOT_GROUP;
use crate::auth::hub::{HubAuthenticator, user_is_root_admin};
use crate::auth::revocation::Revocations;
use crate::config::HubTimeouts;

/// The hub's name on the Redis backplane (channel `{prefix}{name}:…`).
pub const HUB_NAME: &str = "Diquis.Infrastructure.Hubs.NotificationHub";
/// Where the hub is mapped.
pub const HUB_PATH: &str = "/hubs/notifications";

/// Builds the hub; its connections are registered with `revocations`, which closes them when
/// their user, session or tenant is revoked.
pub fn notification_hub(revocations: Revocations) -> Hub {
    let on_close = revocations.clone();
    Hub::builder(HUB_NAME)
        .on_connected(move |ctx: HubCallContext| {
            let revocations = revocations.clone();
            async move {
                metrics::counter!("diquis_hub_connections_total").increment(1);
                metrics::gauge!("diquis_hub_connections").increment(1.0);
                if !revocations.register(ctx.context().clone()).await {
                    // Revoked since the connect check: already closed.
                    return Ok(());
                }
                let is_root = ctx.context().user().is_some_and(user_is_root_admin);
                if is_root {
                    ctx.groups().add_to_group(ctx.connection_id(), ROOT_GROUP).await?;
                }
                ctx.clients().caller().send(target::CONNECTED, (CONNECTED_MESSAGE,)).await?;
                tracing::debug!(connection = ctx.connection_id(), user = ctx.context().user_identifier().unwrap_or(""), "hub connected");
                Ok::<_, HubError>(())
            }
        })
        .on_disconnected(move |ctx, error| {
            on_close.unregister(ctx.connection_id());
            async move {
                metrics::gauge!("diquis_hub_connections").decrement(1.0);
                tracing::debug!(connection = ctx.connection_id(), error = error.as_deref().unwrap_or(""), "hub disconnected");
            }
        })
        .build()
}

/// The hub service with `lifetime` (in-process or Redis), `revocations` (whose connections it
/// closes) and the `SignalR:*` timeouts.
pub fn notification_service(lifetime: Arc<dyn HubLifetimeManager>, revocations: Revocations, timeouts: HubTimeouts) -> HubService {
    let options = HubOptions::default()
        .lifetime_manager(lifetime)
        .handshake_timeout(timeouts.handshake)
        .keep_alive_interval(timeouts.keep_alive)
        .client_timeout_interval(timeouts.client_timeout);
    HubService::new(notification_hub(revocations), options)
}

/// Connection options of the hub endpoint: authentication required (401 without a token or
/// session cookie). CORS is applied by the application around every route.
pub fn connection_options(authenticator: HubAuthenticator) -> HttpConnectionOptions {
    HttpConnectionOptions { authenticator: Some(Arc::new(authenticator)), require_authentication: true, ..HttpConnectionOptions::default() }
}
