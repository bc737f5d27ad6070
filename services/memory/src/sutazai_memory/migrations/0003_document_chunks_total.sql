-- Ingestion progress as chunks done / total (the total is known once the text is split).
ALTER TABLE documents ADD COLUMN chunks_total integer NOT NULL DEFAULT 0;
