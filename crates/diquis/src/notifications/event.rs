//! The four tenant events and their payloads, as the .NET jobs process sends them
//! (`Diquis.Infrastructure.Services.SignalRNotificationService`), plus an `id`.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Hub method names (client targets).
pub mod target {
    /// A tenant was provisioned.
    pub const TENANT_CREATED: &str = "TenantCreated";
    /// Provisioning failed.
    pub const TENANT_CREATION_FAILED: &str = "TenantCreationFailed";
    /// A tenant was updated.
    pub const TENANT_UPDATED: &str = "TenantUpdated";
    /// An update failed.
    pub const TENANT_UPDATE_FAILED: &str = "TenantUpdateFailed";
    /// Sent to each new connection.
    pub const CONNECTED: &str = "Connected";
}

/// The `Connected` message text.
pub const CONNECTED_MESSAGE: &str = "Successfully connected to notification hub";

/// `DateTime.UtcNow.ToString("o")`: seven fractional digits and `Z`.
pub fn dotnet_round_trip(at: DateTime<Utc>) -> String {
    format!("{}.{:07}Z", at.format("%Y-%m-%dT%H:%M:%S"), at.timestamp_subsec_nanos() / 100)
}

/// `TenantCreated`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantCreated<'a> {
    /// `"success"`.
    pub r#type: &'a str,
    /// `Tenant '{name}' has been created successfully!`.
    pub message: String,
    /// The requesting user.
    pub user_id: &'a str,
    /// Tenant id.
    pub tenant_id: &'a str,
    /// Tenant name.
    pub tenant_name: &'a str,
    /// Round-trip timestamp.
    pub timestamp: String,
}

/// `TenantCreationFailed`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantCreationFailed<'a> {
    /// `"error"`.
    pub r#type: &'a str,
    /// `Failed to create tenant: {error}`.
    pub message: String,
    /// The requesting user.
    pub user_id: &'a str,
    /// Tenant id (an addition to the .NET payload, so the UI can find the row).
    pub tenant_id: &'a str,
    /// The error.
    pub error: &'a str,
    /// Round-trip timestamp.
    pub timestamp: String,
}

/// `TenantUpdated`.
pub type TenantUpdated<'a> = TenantCreated<'a>;

/// `TenantUpdateFailed`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantUpdateFailed<'a> {
    /// `"error"`.
    pub r#type: &'a str,
    /// `Failed to update tenant: {error}`.
    pub message: String,
    /// The requesting user.
    pub user_id: &'a str,
    /// Tenant id.
    pub tenant_id: &'a str,
    /// The error.
    pub error: &'a str,
    /// Round-trip timestamp.
    pub timestamp: String,
}

/// One event ready for the outbox: its target and payload JSON (without `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Hub target.
    pub target: &'static str,
    /// Payload JSON object.
    pub payload: String,
    /// The tenant it is about.
    pub tenant_id: String,
    /// The user who asked.
    pub user_id: String,
}

fn json(value: &impl Serialize) -> String {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

impl Event {
    /// `TenantCreated`.
    pub fn tenant_created(user_id: &str, tenant_id: &str, tenant_name: &str) -> Self {
        let p = TenantCreated {
            r#type: "success",
            message: format!("Tenant '{tenant_name}' has been created successfully!"),
            user_id,
            tenant_id,
            tenant_name,
            timestamp: dotnet_round_trip(Utc::now()),
        };
        Self::new(target::TENANT_CREATED, json(&p), tenant_id, user_id)
    }

    /// `TenantCreationFailed`.
    pub fn tenant_creation_failed(user_id: &str, tenant_id: &str, error: &str) -> Self {
        let p = TenantCreationFailed {
            r#type: "error",
            message: format!("Failed to create tenant: {error}"),
            user_id,
            tenant_id,
            error,
            timestamp: dotnet_round_trip(Utc::now()),
        };
        Self::new(target::TENANT_CREATION_FAILED, json(&p), tenant_id, user_id)
    }

    /// `TenantUpdated`.
    pub fn tenant_updated(user_id: &str, tenant_id: &str, tenant_name: &str) -> Self {
        let p = TenantUpdated {
            r#type: "success",
            message: format!("Tenant '{tenant_name}' has been updated successfully!"),
            user_id,
            tenant_id,
            tenant_name,
            timestamp: dotnet_round_trip(Utc::now()),
        };
        Self::new(target::TENANT_UPDATED, json(&p), tenant_id, user_id)
    }

    /// `TenantUpdateFailed`.
    pub fn tenant_update_failed(user_id: &str, tenant_id: &str, error: &str) -> Self {
        let p = TenantUpdateFailed {
            r#type: "error",
            message: format!("Failed to update tenant: {error}"),
            user_id,
            tenant_id,
            error,
            timestamp: dotnet_round_trip(Utc::now()),
        };
        Self::new(target::TENANT_UPDATE_FAILED, json(&p), tenant_id, user_id)
    }

    fn new(target: &'static str, payload: String, tenant_id: &str, user_id: &str) -> Self {
        Self { target, payload, tenant_id: tenant_id.to_string(), user_id: user_id.to_string() }
    }
}

/// The payload sent to clients: the stored JSON object with `"id": <id>` added.
pub fn with_id(payload: &str, id: i64) -> serde_json::Value {
    let mut value: serde_json::Value = serde_json::from_str(payload).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(map) = value.as_object_mut() {
        map.insert("id".into(), serde_json::Value::from(id));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_format_has_seven_digits() {
        let t = DateTime::parse_from_rfc3339("2025-11-27T07:33:59.123456789Z").unwrap().with_timezone(&Utc);
        assert_eq!(dotnet_round_trip(t), "2025-11-27T07:33:59.1234567Z");
        let t = DateTime::parse_from_rfc3339("2025-11-27T07:33:59Z").unwrap().with_timezone(&Utc);
        assert_eq!(dotnet_round_trip(t), "2025-11-27T07:33:59.0000000Z");
    }

    #[test]
    fn payloads_have_the_dotnet_fields() {
        let e = Event::tenant_created("admin@x.com.root", "acme", "Acme");
        let v = with_id(&e.payload, 7);
        assert_eq!(v["type"], "success");
        assert_eq!(v["message"], "Tenant 'Acme' has been created successfully!");
        assert_eq!(v["userId"], "admin@x.com.root");
        assert_eq!(v["tenantId"], "acme");
        assert_eq!(v["tenantName"], "Acme");
        assert_eq!(v["id"], 7);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let e = Event::tenant_update_failed("u", "acme", "boom");
        let v = with_id(&e.payload, 8);
        assert_eq!(v["message"], "Failed to update tenant: boom");
        assert_eq!(v["error"], "boom");
        assert_eq!(e.target, "TenantUpdateFailed");
        let e = Event::tenant_creation_failed("u", "acme", "boom");
        assert_eq!(with_id(&e.payload, 1)["message"], "Failed to create tenant: boom");
        let e = Event::tenant_updated("u", "acme", "Acme 2");
        assert_eq!(with_id(&e.payload, 1)["message"], "Tenant 'Acme 2' has been updated successfully!");
    }
}
