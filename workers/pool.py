"""Real RQ workers as child processes, for the drill and the embedded demo."""

import logging
import os
import signal
import subprocess
import sys
import time

from app.queue import redis_holder

log = logging.getLogger(__name__)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerPool:
    """Start n workers sharing the app's database and Redis; stop them on exit or error."""

    def __init__(self, app, count, name_prefix="baogong"):
        self.app = app
        self.count = count
        self.name_prefix = name_prefix
        self.processes = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        holder = redis_holder(self.app)
        holder.conn  # start the bundled server first, so its socket can be handed on
        env = dict(os.environ)
        env["REDIS_URL"] = holder.url
        env["DATABASE_URL"] = self.app.config["SQLALCHEMY_DATABASE_URI"]
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        for i in range(self.count):
            name = f"{self.name_prefix}-{os.getpid()}-{i}-{time.time_ns()}"
            process = subprocess.Popen(
                [sys.executable, "-m", "workers", "--name", name], cwd=ROOT, env=env
            )
            self.processes.append(process)
        log.info("workers: %d started", self.count)

    def alive(self):
        return [p for p in self.processes if p.poll() is None]

    def stop(self, timeout=20):
        for process in self.alive():
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.wait(remaining)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.processes:
            log.info("workers: %d stopped", len(self.processes))
        self.processes = []
