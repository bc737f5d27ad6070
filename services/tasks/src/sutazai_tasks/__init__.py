"""Task service: the task lifecycle (Postgres schema ``tasks``, NATS JetStream stream ``TASKS``)."""
