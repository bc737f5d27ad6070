-- Memories: Postgres keeps the record (ownership, content, metadata, de-duplication, history); Qdrant
-- keeps the vectors and a copy of the payload for filtered search.
CREATE TABLE memories (
    id            uuid PRIMARY KEY,
    user_id       text NOT NULL,
    agent_id      text NOT NULL DEFAULT '',
    session_id    text NOT NULL DEFAULT '',
    run_id        text NOT NULL DEFAULT '',
    collection    text NOT NULL DEFAULT '',
    document_id   text NOT NULL DEFAULT '',
    content       text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    content_hash  text NOT NULL,
    vector_collection text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- the same content twice in one scope is one memory
    UNIQUE (user_id, agent_id, session_id, run_id, collection, content_hash)
);
CREATE INDEX memories_user_created ON memories (user_id, created_at DESC, id);

-- Every change of a memory, kept after the memory is deleted.
CREATE TABLE memory_history (
    id            bigserial PRIMARY KEY,
    memory_id     uuid NOT NULL,
    user_id       text NOT NULL,
    event         text NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_content   text,
    new_content   text,
    old_metadata  jsonb,
    new_metadata  jsonb,
    at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX memory_history_memory ON memory_history (memory_id, id);

ALTER TABLE documents
    ADD COLUMN status      text NOT NULL DEFAULT 'processing' CHECK (status IN ('processing', 'ready', 'failed')),
    ADD COLUMN error       text NOT NULL DEFAULT '',
    ADD COLUMN progress    real NOT NULL DEFAULT 0,
    ADD COLUMN sha256      text NOT NULL DEFAULT '',
    ADD COLUMN vector_collection text NOT NULL DEFAULT '',
    ADD COLUMN updated_at  timestamptz NOT NULL DEFAULT now();
CREATE INDEX documents_processing ON documents (status) WHERE status = 'processing';

-- The graph of 0001 was never used: entities and relations replace it.
DROP TABLE graph_edges;
DROP TABLE graph_nodes;

CREATE TABLE graph_entities (
    id          uuid PRIMARY KEY,
    user_id     text NOT NULL,
    agent_id    text NOT NULL DEFAULT '',
    session_id  text NOT NULL DEFAULT '',
    run_id      text NOT NULL DEFAULT '',
    name        text NOT NULL,
    type        text NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, agent_id, session_id, run_id, name, type)
);

CREATE TABLE graph_relations (
    id          uuid PRIMARY KEY,
    user_id     text NOT NULL,
    source_id   uuid NOT NULL REFERENCES graph_entities (id) ON DELETE CASCADE,
    target_id   uuid NOT NULL REFERENCES graph_entities (id) ON DELETE CASCADE,
    type        text NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}',
    valid_from  timestamptz,
    valid_to    timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from)
);
CREATE INDEX graph_relations_source ON graph_relations (source_id);
CREATE INDEX graph_relations_target ON graph_relations (target_id);
