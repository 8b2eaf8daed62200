-- A separate job storage (ConnectionStrings:HangfireConnection naming another database).

-- The outbox of jobs: a request is written in the same transaction as the rows it is about,
-- then relayed into the job storage (keyed by request_id, so relaying twice makes one job) and
-- deleted.
CREATE TABLE IF NOT EXISTS job_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    concurrency_key TEXT,
    created_on TEXT NOT NULL
);

-- The job outcome a notification records: a job run again after its result was committed
-- (but before the job storage marked it done) finds it and writes no second notification.
ALTER TABLE notifications ADD COLUMN outcome_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS notifications_outcome_key ON notifications (outcome_key) WHERE outcome_key IS NOT NULL;
