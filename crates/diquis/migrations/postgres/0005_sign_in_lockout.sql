-- Identity's lockout, shared by every process: failed sign-ins in a row per account (tenant and
-- email, hashed; accounts that do not exist are counted too, so that a lockout reveals nothing),
-- and until when the account is locked. Times in milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS sign_in_failures (
    account TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    locked_until BIGINT,
    last_failure BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sign_in_failures_last ON sign_in_failures (last_failure);
