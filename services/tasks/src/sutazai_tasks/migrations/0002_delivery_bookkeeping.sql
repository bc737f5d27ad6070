-- completions: how many times a result was recorded (the guard in store.complete keeps it at 1).
-- replays: how many times an admin replayed the task (gives each replay its own message id).
ALTER TABLE tasks
    ADD COLUMN completions integer NOT NULL DEFAULT 0,
    ADD COLUMN replays integer NOT NULL DEFAULT 0;
CREATE INDEX tasks_queued_since ON tasks (created_at) WHERE status = 'queued';
