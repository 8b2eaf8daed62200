//! The first admin's password hash while its tenant is being provisioned, kept in the
//! application database (`pending_admin_passwords`) rather than in the job's payload: written in
//! the tenant's create transaction, read and deleted by the provisioning job in the transaction
//! that creates the user.

use crate::db::Tx;

/// Keeps `hash` for `tenant_id` (replacing an earlier one).
pub async fn store(tx: &mut Tx, tenant_id: &str, hash: &str) -> Result<(), sqlx::Error> {
    tx.query(
        "INSERT INTO pending_admin_passwords (tenant_id, password_hash) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET password_hash = excluded.password_hash",
    )
    .bind(tenant_id)
    .bind(hash)
    .execute()
    .await?;
    Ok(())
}

/// The hash kept for `tenant_id`, if any.
pub async fn find(tx: &mut Tx, tenant_id: &str) -> Result<Option<String>, sqlx::Error> {
    tx.query_scalar("SELECT password_hash FROM pending_admin_passwords WHERE tenant_id = $1").bind(tenant_id).fetch_optional().await
}

/// Deletes the hash kept for `tenant_id` (the admin user holds it now).
pub async fn forget(tx: &mut Tx, tenant_id: &str) -> Result<(), sqlx::Error> {
    tx.query("DELETE FROM pending_admin_passwords WHERE tenant_id = $1").bind(tenant_id).execute().await?;
    Ok(())
}
