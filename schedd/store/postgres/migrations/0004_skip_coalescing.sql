-- Consecutive skips of one schedule share one row: `fires` counts them, `due_at` is the
-- due time of the first and `last_due_at` that of the last; `created_at` and `ended_at`
-- are when the first and the last were handled.
ALTER TABLE runs ADD COLUMN last_due_at double precision;
-- Active maintenance and build schedules per org, counted against the org's quota.
CREATE INDEX schedules_org_active ON schedules(org_id, family) WHERE active = 1;
