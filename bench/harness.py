"""A throwaway rai installation for benchmarks: private redis-server, temp config, an account, a rai-server
(subprocess, on a free port: the only thing the client talks to) and, unless told not to, a raid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOCKET = os.environ.get("DOCKER_HOST", "unix:///run/podman/podman.sock")
IMAGE = "localhost/rai-test:latest"


def installed_python(env: dict[str, str], cache: Path) -> dict[str, str]:
    """`env` for a client run as an installed rai runs: its modules byte-compiled (pip compiles a package's
    modules when it installs it). Where PYTHONDONTWRITEBYTECODE is set (this environment sets it), every run
    would compile rai's own modules again, ~20 ms of each start; their bytecode goes to `cache` instead
    (PYTHONPYCACHEPREFIX: the checkout gets no __pycache__ folders)."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Installation:
    def __init__(self, workers: int = 2, raid: bool = True, role: str = "admin"):
        self.tmp = Path(tempfile.mkdtemp(prefix="rai-bench-"))
        self.port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server_port = free_port()
        self.server_url = f"http://127.0.0.1:{self.server_port}"
        self.raid: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        try:
            self._wait_redis()
            self.config_path = self.tmp / "cfg.yml"
            self.config_path.write_text(yaml.safe_dump({
                "pubsub": {"url": self.url, "start_local": False},
                "broker": {"queue": "rai_bench"},
                "store": {"path": str(self.tmp / "store")},
                "database": {"path": str(self.tmp / "rai.db")},
                "docker": {"base_url": SOCKET, "image": IMAGE},
                "raid": {"node": "bench", "heartbeat_interval": 1, "work_dir": str(self.tmp / "work")},
                "server": {"listen": f"127.0.0.1:{self.server_port}", "url": self.server_url},
            }))
            self.env = {**os.environ, "RAI_CONFIG": str(self.config_path), "RAI_DATA_DIR": str(self.tmp / "data")}
            self.profile = self.tmp / "bench.profile"
            subprocess.run([sys.executable, "-c", "from keygen.cli import main; main()", "add", "--username",
                            "bench", "--email", "bench@example.edu", "--role", role, "--output", str(self.profile)],
                           env=self.env, check=True, capture_output=True)
            from rai.backends import Backends
            from rai.config import load_config

            self.backends = Backends(load_config(self.config_path))
            self.server = self._start_server()
            if raid:
                self.raid = subprocess.Popen([sys.executable, "-c", "from raid.cli import main; main()",
                                              "--workers", str(workers)], env=self.env,
                                             stdout=open(self.tmp / "raid.log", "w"), stderr=subprocess.STDOUT)
                deadline = time.monotonic() + 30
                while not any(n.heartbeat for n in self.backends.live.nodes()):
                    if time.monotonic() > deadline or self.raid.poll() is not None:
                        raise SystemExit("raid did not start:\n" + (self.tmp / "raid.log").read_text()[-2000:])
                    time.sleep(0.1)
        except BaseException:
            self.close()
            raise

    def _start_server(self) -> subprocess.Popen:
        """`python -m raiserver` on its own port (a process of its own, so its memory can be read); waits for
        its /healthz."""
        import httpx

        log = self.tmp / "rai-server.log"
        proc = subprocess.Popen([sys.executable, "-m", "raiserver", "--config", str(self.config_path), "--listen",
                                 f"127.0.0.1:{self.server_port}"], env=self.env, cwd=ROOT,
                                stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.server_url + "/healthz", timeout=1).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("rai-server did not start:\n" + log.read_text()[-2000:])
            time.sleep(0.05)

    def _wait_redis(self) -> None:
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def client(self):
        """A `rai.client.core.Client` as a student has it: the server's URL and the profile, nothing else."""
        from rai.client.core import Client
        from rai.client.profile import load_profile
        from rai.config import Config

        return Client(Config.model_validate({"server": {"url": self.server_url}}), load_profile(self.profile))

    def project(self, commands: list[str], name: str = "proj") -> Path:
        d = self.tmp / name
        d.mkdir(exist_ok=True)
        (d / "rai_build.yml").write_text(yaml.safe_dump({"rai": {"image": IMAGE}, "commands": {"build": commands}}))
        (d / "README").write_text("bench\n")
        return d

    def close(self) -> None:
        for proc in (self.raid, self.server):
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.redis.terminate()
        self.redis.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


def docker_client():
    import docker

    return docker.DockerClient(base_url=SOCKET)


def ulimits():
    import docker

    return [docker.types.Ulimit(name="nofile", soft=1024, hard=1024),
            docker.types.Ulimit(name="nproc", soft=4096, hard=4096)]
