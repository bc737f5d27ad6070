"""Agent registry service: owns agent definitions (Postgres schema ``agents``)."""
