"""The knowledge graph: one interface (``base.GraphStore``), two backends: PostgreSQL tables with
recursive queries (``postgres``, the default) and Neo4j through the official driver (``neo4j_store``)."""
