-- The first admin's password hash of a tenant being provisioned: kept here, in the application
-- database, instead of in the ProvisionTenant job's payload (which the jobs dashboard shows and
-- the job storage keeps), and deleted in the transaction that creates the admin user.
CREATE TABLE IF NOT EXISTS pending_admin_passwords (
    tenant_id TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);
