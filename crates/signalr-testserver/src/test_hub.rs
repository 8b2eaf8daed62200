//! `TestHub` (FunctionalTests/TestHub.cs) plus the multi-client helpers (`JoinGroup`,
//! `SendToAll`, `AddConnectionToGroup`, …) and `Counter`, a paced stream for stateful-reconnect tests.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use signalr::{ClientStream, Hub, HubCallContext, HubError};
use signalr_protocol::serde_helpers::{Binary, Timestamp};

/// The hub's name towards backplanes.
pub const TEST_HUB_NAME: &str = "SignalRTestServer.TestHub";

/// `CustomObject { Name, Value }` of the functional tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomObject {
    /// `Name`.
    #[serde(alias = "name")]
    pub name: String,
    /// `Value`.
    #[serde(alias = "value")]
    pub value: i32,
}

/// `ComplexObject { String, IntArray, ByteArray, Guid, DateTime }`: exactly these five keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComplexObject {
    /// `String`.
    #[serde(alias = "string")]
    pub string: Option<String>,
    /// `IntArray`.
    #[serde(alias = "intArray")]
    pub int_array: Option<Vec<i32>>,
    /// `ByteArray`: base64 in JSON, `bin` in MessagePack.
    #[serde(alias = "byteArray")]
    pub byte_array: Option<Binary>,
    /// `Guid`, as text.
    #[serde(alias = "guid")]
    pub guid: String,
    /// `DateTime`: ISO-8601 in JSON, timestamp extension in MessagePack.
    #[serde(alias = "dateTime")]
    pub date_time: Timestamp,
}

fn invalid_operation(message: &str) -> HubError {
    HubError::exception("InvalidOperationException", message)
}

/// Builds `TestHub`.
pub fn test_hub() -> Hub {
    Hub::builder(TEST_HUB_NAME)
        .method("Echo", |_ctx: HubCallContext, (message,): (String,)| async move { Ok::<_, HubError>(message) })
        .method("GetCallerConnectionId", |ctx: HubCallContext, (): ()| async move { Ok::<_, HubError>(ctx.connection_id().to_owned()) })
        .method("GetNumRedirects", |ctx: HubCallContext, (): ()| async move {
            Ok::<_, HubError>(ctx.context().query("numRedirects").and_then(|v| v.parse::<i32>().ok()).unwrap_or(0))
        })
        .method("ThrowException", |_ctx: HubCallContext, (message,): (String,)| async move { Err::<(), _>(invalid_operation(&message)) })
        .method("InvokeWithString", |ctx: HubCallContext, (message,): (String,)| async move {
            ctx.clients().caller().send("Message", (message,)).await
        })
        .method("SendCustomObject", |ctx: HubCallContext, (object,): (CustomObject,)| async move {
            ctx.clients().caller().send("CustomObject", (object,)).await
        })
        .stream("Stream", |_ctx: HubCallContext, (): ()| async move {
            Ok::<_, HubError>(stream::iter(["a", "b", "c"].map(|s| Ok::<_, HubError>(s.to_owned()))))
        })
        .stream("InfiniteStream", |ctx: HubCallContext, (): ()| async move {
            let token = ctx.cancellation_token();
            let clients = ctx.clients();
            tokio::spawn(async move {
                token.cancelled().await;
                let _ = clients.caller().send("StreamCanceled", ()).await;
            });
            Ok::<_, HubError>(stream::pending::<Result<String, HubError>>())
        })
        .method_with_streams("StreamingConcat", |_ctx: HubCallContext, (): (), (mut items,): (ClientStream<String>,)| async move {
            let mut text = String::new();
            while let Some(item) = items.next_item().await {
                text.push_str(&item?);
            }
            Ok::<_, HubError>(text)
        })
        .stream("EmptyStream", |_ctx: HubCallContext, (): ()| async move { Ok::<_, HubError>(stream::empty::<Result<i32, HubError>>()) })
        .stream("StreamThrowException", |_ctx: HubCallContext, (message,): (String,)| async move {
            Err::<stream::Empty<Result<String, HubError>>, _>(invalid_operation(&message))
        })
        .method(
            "GetActiveTransportName",
            |ctx: HubCallContext, (): ()| async move { Ok::<_, HubError>(ctx.context().transport().as_str()) },
        )
        .method("EchoComplexObject", |_ctx: HubCallContext, (object,): (ComplexObject,)| async move { Ok::<_, HubError>(object) })
        .method("SendComplexObject", |_ctx: HubCallContext, (): ()| async move {
            let date_time = chrono::DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z")
                .map_err(|e| HubError::exception("FormatException", e.to_string()))?
                .with_timezone(&chrono::Utc);
            Ok::<_, HubError>(ComplexObject {
                string: Some("hello world".to_owned()),
                int_array: Some(vec![1, 2, 3]),
                byte_array: Some(Binary(vec![1, 2, 3])),
                guid: "00010203-0405-0607-0706-050403020100".to_owned(),
                date_time: Timestamp(date_time),
            })
        })
        .method("GetContentTypeHeader", |ctx: HubCallContext, (): ()| async move {
            Ok::<_, HubError>(ctx.context().header("content-type").map(str::to_owned))
        })
        .method("GetHeader", |ctx: HubCallContext, (name,): (String,)| async move {
            Ok::<_, HubError>(ctx.context().header(&name).map(str::to_owned))
        })
        .method("GetCookie", |ctx: HubCallContext, (name,): (String,)| async move {
            Ok::<_, HubError>(ctx.context().cookie(&name).map(str::to_owned))
        })
        .method("JoinGroup", |ctx: HubCallContext, (group,): (String,)| async move {
            ctx.groups().add_to_group(ctx.connection_id(), &group).await
        })
        .method("LeaveGroup", |ctx: HubCallContext, (group,): (String,)| async move {
            ctx.groups().remove_from_group(ctx.connection_id(), &group).await
        })
        // Group changes of any connection, wherever it lives (through the backplane's group
        // commands and acks when it is on another node): for multi-node tests.
        .method("AddConnectionToGroup", |ctx: HubCallContext, (connection_id, group): (String, String)| async move {
            ctx.groups().add_to_group(&connection_id, &group).await
        })
        .method("RemoveConnectionFromGroup", |ctx: HubCallContext, (connection_id, group): (String, String)| async move {
            ctx.groups().remove_from_group(&connection_id, &group).await
        })
        .method(
            "SendToAll",
            |ctx: HubCallContext, (message,): (String,)| async move { ctx.clients().all().send("Message", (message,)).await },
        )
        .method("SendToOthers", |ctx: HubCallContext, (message,): (String,)| async move {
            ctx.clients().others().send("Message", (message,)).await
        })
        .method("SendToGroup", |ctx: HubCallContext, (group, message): (String, String)| async move {
            ctx.clients().group(group).send("Message", (message,)).await
        })
        .method("SendToOthersInGroup", |ctx: HubCallContext, (group, message): (String, String)| async move {
            ctx.clients().others_in_group(group).send("Message", (message,)).await
        })
        .method("SendToUser", |ctx: HubCallContext, (user, message): (String, String)| async move {
            ctx.clients().user(user).send("Message", (message,)).await
        })
        .method("SendToConnection", |ctx: HubCallContext, (connection_id, message): (String, String)| async move {
            ctx.clients().client(connection_id).send("Message", (message,)).await
        })
        .stream("Counter", |_ctx: HubCallContext, (count, interval_ms): (u32, u64)| async move {
            let interval = Duration::from_millis(interval_ms);
            Ok::<_, HubError>(stream::iter(1..=count).then(move |n| async move {
                if !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                Ok::<_, HubError>(n)
            }))
        })
        .build()
}

/// The claim type .NET uses for the user identifier.
pub const NAME_IDENTIFIER: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";

/// `HubWithAuthorization`: `Echo`, `GetUserNameIdentifier`, `GetUserClaim(type)`.
pub fn authorized_hub() -> Hub {
    Hub::builder("SignalRTestServer.HubWithAuthorization")
        .method("Echo", |_ctx: HubCallContext, (message,): (String,)| async move { Ok::<_, HubError>(message) })
        .method("GetUserNameIdentifier", |ctx: HubCallContext, (): ()| async move {
            Ok::<_, HubError>(ctx.context().user_identifier().map(str::to_owned))
        })
        .method("GetUserClaim", |ctx: HubCallContext, (claim_type,): (String,)| async move {
            Ok::<_, HubError>(ctx.context().claim(&claim_type).map(str::to_owned))
        })
        .build()
}
