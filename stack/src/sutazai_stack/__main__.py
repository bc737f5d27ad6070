"""``python -m sutazai_stack run``: the whole platform on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from sutazai_stack import infra
from sutazai_stack.config import StackSettings
from sutazai_stack.infra import Resolved, StartError, _wait
from sutazai_stack.processes import ManagedProcess
from sutazai_stack.services import (
    GRPC_SERVICES,
    TASK_WORKERS,
    ServicePorts,
    assign_ports,
    gateway_answers,
    grpc_serving,
    instance_names,
    process_for,
    service_env,
    worker_for,
)

log = logging.getLogger("sutazai_stack")


class Stack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.started: list[ManagedProcess] = []  # in start order; stopped in reverse
        self.infra: dict[str, Resolved] = {}
        self.services: dict[str, ManagedProcess] = {}
        self.instances: dict[str, list[str]] = {}

    def start(self) -> str:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        for part in infra.PARTS:
            resolved = infra.resolve(part, self.settings, self.home)
            self.infra[part.name] = resolved
            if resolved.process:
                self.started.append(resolved.process)
            log.info("%s", resolved.describe())

        counts = self.settings.replica_counts(GRPC_SERVICES)
        ports = assign_ports(self.settings, counts)
        self.instances = {name: instance_names(name, counts[name]) for name in GRPC_SERVICES}
        for name in GRPC_SERVICES:
            for instance in self.instances[name]:
                env = service_env(name, ports, self.infra, self.settings, instance)
                process = process_for(name, env, self.home, instance)
                process.start()
                self.started.append(process)
                self.services[instance] = process
        for name in GRPC_SERVICES:
            for instance in self.instances[name]:
                port = ports[instance].port
                _wait(instance, lambda port=port: grpc_serving(port), self.settings.start_timeout_s,
                      self.services[instance])
                log.info("%-13s serving   127.0.0.1:%d", instance, port)

        tasks_env = service_env("tasks", ports, self.infra, self.settings)
        for index in range(1, TASK_WORKERS + 1):
            worker = worker_for(index, ports, tasks_env, self.home)
            worker.start()
            self.started.append(worker)
            self.services[worker.name] = worker
            ports[worker.name] = ServicePorts(0, 0)

        gateway = process_for("gateway", service_env("gateway", ports, self.infra, self.settings), self.home)
        gateway.start()
        self.started.append(gateway)
        self.services["gateway"] = gateway
        url = f"http://{self._client_host()}:{ports['gateway'].port}"
        _wait("gateway", lambda: gateway_answers(url), self.settings.start_timeout_s, gateway)
        self._write_state(url, ports)
        return url

    def _client_host(self) -> str:
        host = self.settings.gateway_host
        return "127.0.0.1" if host in ("0.0.0.0", "::") else host

    def _write_state(self, url: str, ports: dict) -> None:  # type: ignore[type-arg]
        state = {
            "gateway_url": url,
            "pid": os.getpid(),
            "services": {
                name: {"pid": p.pid, "port": ports[name].port, "metrics_port": ports[name].metrics,
                       "log": str(p.log_path), "service": p.service}
                for name, p in self.services.items()
            },
            "registry_bucket": self.settings.registry_bucket,
            "infra": {
                name: {"url": r.url, "origin": r.origin, "pid": r.process.pid if r.process else None}
                for name, r in self.infra.items()
            },
        }
        run_dir = self.home / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / "stack.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(run_dir / "stack.json")

    def watch(self, stop: threading.Event) -> None:
        """Report (once) any child that exits; the others keep running so the platform degrades, not dies."""
        reported: set[str] = set()
        while not stop.wait(1.0):
            for process in self.started:
                if process.name not in reported and not process.running():
                    reported.add(process.name)
                    code = process.proc.returncode if process.proc else None
                    log.warning("%s exited (code %s); the rest keep running. Its log: %s",
                                process.name, code, process.log_path)

    def stop(self) -> None:
        for process in reversed(self.started):
            process.stop(timeout_s=10.0)
        (self.home / "run" / "stack.json").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sutazai_stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the whole platform and keep it running until Ctrl-C")
    run.add_argument("--embedded", action="store_true", default=None,
                     help="ignore servers on the standard ports; start the embedded ones (SUTAZAI_EMBEDDED=1)")
    run.add_argument("--free-ports", action="store_true", default=None,
                     help="bind every port the stack opens on a free one (SUTAZAI_FREE_PORTS=1)")
    run.add_argument("--home", type=Path, default=None, help="data folder (SUTAZAI_HOME, default .sutazai)")
    run.add_argument("--replicas", default=None, metavar="agents=2,chat=2",
                     help="instances per service, each on its own ports (SUTAZAI_REPLICAS)")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in {"embedded": args.embedded, "free_ports": args.free_ports,
                                   "home": args.home, "replicas": args.replicas}.items() if v is not None}
    try:
        settings = StackSettings(**overrides)
        settings.replica_counts(GRPC_SERVICES)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stdout)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # While starting, a signal aborts the start (and stops what already started).
    signal.signal(signal.SIGTERM, interrupt)
    stack = Stack(settings)
    try:
        url = stack.start()
    except (StartError, OSError) as exc:
        log.error("could not start the platform: %s", exc)
        stack.stop()
        sys.exit(1)
    except BaseException:
        stack.stop()
        raise
    log.info("")
    log.info("SutazAI is running: %s  (API docs: %s/docs, health: %s/api/v1/health/detailed)", url, url, url)
    log.info("admin credentials (user, password, API key) are in %s", stack.home / "secrets.json")
    log.info('  e.g. curl -H "X-API-Key: <admin_api_key from that file>" %s/api/v1/auth/me', url)
    log.info("the key pair that signs identities between services is in %s", stack.home / "identity")
    log.info("logs in %s; Ctrl-C stops everything this command started", stack.home / "logs")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stack.watch(stop)
    finally:
        log.info("stopping ...")
        stack.stop()
        log.info("stopped")


if __name__ == "__main__":
    main()
