-- Agent runs with tools: every step (a model reply, a tool result, an approval decision) is committed
-- here before the next one starts, so a run resumes after its last committed step on any worker.
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN
    ('queued', 'running', 'retrying', 'completed', 'failed', 'cancelled', 'dead', 'waiting_approval'));
ALTER TABLE tasks ADD COLUMN pending_approval jsonb;

CREATE TABLE agent_steps (
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('model', 'tool_result', 'approval')),
    data        jsonb NOT NULL,
    attempt     integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, seq)
);
