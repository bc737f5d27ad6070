CREATE TABLE tasks (
    id               uuid PRIMARY KEY,
    owner_id         text NOT NULL,
    task_type        text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}',
    priority         integer NOT NULL DEFAULT 0,
    agent_id         text,
    status           text NOT NULL CHECK (status IN
                         ('queued', 'running', 'retrying', 'completed', 'failed', 'cancelled', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    timeout_s        integer NOT NULL DEFAULT 300,
    result           jsonb,
    error            text,
    idempotency_key  text,
    parent_id        uuid REFERENCES tasks (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_id, idempotency_key)
);
CREATE INDEX tasks_owner_created ON tasks (owner_id, created_at DESC);
CREATE INDEX tasks_status ON tasks (status) WHERE status IN ('queued', 'running', 'retrying', 'dead');
CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;
