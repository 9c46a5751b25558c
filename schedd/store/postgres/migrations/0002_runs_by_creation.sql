-- The operator view's 24-hour figures read runs by creation time across all schedules.
CREATE INDEX runs_created_at ON runs(created_at);
