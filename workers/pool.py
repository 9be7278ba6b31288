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

    def __init__(self, app, count, name_prefix="baogong", max_restarts=10):
        self.app = app
        self.count = count
        self.name_prefix = name_prefix
        self.max_restarts = max_restarts
        self.restarts = 0
        self.processes = []
        self.dead_names = set()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _environment(self):
        holder = redis_holder(self.app)
        holder.conn.ping()  # start the bundled server first, so its socket can be handed on
        env = dict(os.environ)
        env["REDIS_URL"] = holder.url
        env["DATABASE_URL"] = self.app.config["SQLALCHEMY_DATABASE_URI"]
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def _spawn(self, env):
        name = f"{self.name_prefix}-{os.getpid()}-{time.time_ns()}"
        process = subprocess.Popen(
            [sys.executable, "-m", "workers", "--name", name], cwd=ROOT, env=env
        )
        process.worker_name = name
        self.processes.append(process)
        return process

    def start(self):
        env = self._environment()
        for _ in range(self.count):
            self._spawn(env)
        log.info("workers: %d started", self.count)

    def alive(self):
        return [p for p in self.processes if p.poll() is None]

    def revive(self):
        """Replace workers that died; returns the names of those that just died.

        All the dead are kept in `dead_names`, for the reconciler.

        Raises RuntimeError when workers keep dying, rather than restarting forever.
        """
        dead = [p for p in self.processes if p.poll() is not None]
        if not dead:
            return set()
        if self.restarts + len(dead) > self.max_restarts:
            raise RuntimeError(f"workers died {self.restarts + len(dead)} times; giving up")
        env = self._environment()
        for process in dead:
            log.warning(
                "workers: %s ended with code %s, starting a replacement",
                process.worker_name,
                process.returncode,
            )
            self.dead_names.add(process.worker_name)
            self.processes.remove(process)
            self._spawn(env)
            self.restarts += 1
        return {p.worker_name for p in dead}

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
