from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.settings import ServiceSettings, database_url_field, nats_url_field


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_TASKS_")

    grpc_port: int = Field(50052, ge=1, le=65535)
    metrics_port: int = Field(9103, ge=0, le=65535)
    database_url: str = database_url_field()
    nats_url: str = nats_url_field()
    # Prefixes every stream and subject; for deployments sharing a NATS server but not a database.
    namespace: str = Field("", pattern=r"^([A-Za-z0-9_-]{1,32})?$")
    # Re-dispatch queued tasks older than sweep_after_s, every sweep_interval_s.
    sweep_interval_s: float = Field(15.0, gt=0)
    sweep_after_s: float = Field(30.0, gt=0)
    # Queue depth (JetStream pending, tasks per state) sampled into Prometheus gauges every this many seconds.
    queue_sample_interval_s: float = Field(5.0, gt=0, le=300)
    # Workers (python -m sutazai_tasks worker)
    worker_batch: int = Field(100, ge=1, le=1000)
    worker_max_in_flight: int = Field(500, ge=1, le=20_000)
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    retry_base_s: float = Field(1.0, gt=0, le=60)
    # MCP servers (stdio commands, streamable-HTTP URLs) the tasks service holds; see mcp_client.py.
    mcp_servers_file: str = ""
    # Agent runs with tools: model calls at most when the definition has no max_steps, and each tool's deadline.
    agent_max_steps: int = Field(4, ge=1, le=50)
    tool_timeout_s: float = Field(30.0, gt=0, le=600)
    # true: each agent step's commit waits for PostgreSQL's WAL flush, so steps survive a PostgreSQL crash too;
    # false: asynchronous commit (a killed worker still loses nothing; steps.py says what a PostgreSQL crash can).
    agent_steps_flush: bool = False
    # Where workers reach the tasks service's McpService (the tasks gRPC server).
    tasks_addr: str = "127.0.0.1:50052"
    # Backpressure: a task whose model is at capacity waits up to admit_wait_s for a slot in the worker, then
    # goes back to JetStream for about busy_base_s (growing with its deliveries), without spending an attempt.
    worker_admit_wait_s: float = Field(2.0, gt=0, le=60)
    worker_busy_base_s: float = Field(1.0, gt=0, le=60)
    # The per-model limits come from chat (GetCapacity) every capacity_interval_s; until chat answers, and for
    # an agent whose model is not known yet, default_model_slots.
    worker_capacity_interval_s: float = Field(2.0, gt=0, le=300)
    worker_default_model_slots: int = Field(1, ge=1, le=1000)
    agents_addr: str = "127.0.0.1:50051"
    chat_addr: str = "127.0.0.1:50054"
    # Agents with `memory: true` recall the task user's memories from here (memory_context.py).
    memory_addr: str = "127.0.0.1:50055"
    memory_recall_limit: int = Field(5, ge=1, le=20)
    chat_timeout_s: float = Field(3600.0, gt=0)  # the default deadline of a worker's chat call
