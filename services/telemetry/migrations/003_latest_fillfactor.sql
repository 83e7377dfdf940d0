-- The latest reading of each device is updated in place at every batch: room on each page
-- lets PostgreSQL update it without a new index entry (a HOT update).
ALTER TABLE latest_readings SET (fillfactor = 50);
