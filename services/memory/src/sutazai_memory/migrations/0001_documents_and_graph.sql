-- Documents (their chunks and vectors live in the vector store, keyed by document id).
CREATE TABLE documents (
    id            uuid PRIMARY KEY,
    owner_id      text NOT NULL,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    size          bigint NOT NULL CHECK (size >= 0),
    tags          text[] NOT NULL DEFAULT '{}',
    description   text NOT NULL DEFAULT '',
    content       bytea NOT NULL,
    chunks        integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_owner_created ON documents (owner_id, created_at DESC);

-- The knowledge graph when no Neo4j is configured.
CREATE TABLE graph_nodes (
    owner_id    text NOT NULL,
    id          text NOT NULL,
    label       text NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (owner_id, id)
);
CREATE TABLE graph_edges (
    owner_id    text NOT NULL,
    source_id   text NOT NULL,
    target_id   text NOT NULL,
    relation    text NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (owner_id, source_id, relation, target_id),
    FOREIGN KEY (owner_id, source_id) REFERENCES graph_nodes (owner_id, id) ON DELETE CASCADE,
    FOREIGN KEY (owner_id, target_id) REFERENCES graph_nodes (owner_id, id) ON DELETE CASCADE
);
CREATE INDEX graph_edges_target ON graph_edges (owner_id, target_id);
