-- The job whose failure made the tenant Failed: its state in the job storage says whether it
-- will be tried again, when, and how many attempts are left.
ALTER TABLE tenants ADD COLUMN failed_job_id BIGINT;
