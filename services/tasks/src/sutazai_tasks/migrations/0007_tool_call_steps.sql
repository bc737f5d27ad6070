-- A `tool_call` step is committed just before a tool runs: a run resumed after a crash knows which call
-- was started without a recorded result (it may have taken effect) and tells the model instead of running
-- a tool with side effects a second time.
ALTER TABLE agent_steps DROP CONSTRAINT IF EXISTS agent_steps_kind_check;
ALTER TABLE agent_steps ADD CONSTRAINT agent_steps_kind_check
    CHECK (kind IN ('model', 'tool_call', 'tool_result', 'approval'));
