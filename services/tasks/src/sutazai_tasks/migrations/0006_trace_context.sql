-- The OpenTelemetry trace a task was created in (hex), and the span that created it: every dispatch of the
-- task (the first, the sweeper's re-send, a replay, an approval) carries them as a W3C traceparent header, so
-- the worker's span joins the creator's trace. NULL: created while tracing was off.
ALTER TABLE tasks
    ADD COLUMN trace_id text,
    ADD COLUMN span_id text;
