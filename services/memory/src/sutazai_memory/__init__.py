"""Memory service: vectors, documents and the knowledge graph (Postgres schema ``memory``)."""
