"""A real Ray cluster of two nodes on this machine, for tests, started and ended by process group.

Every node is a ``ray start --block`` in its own process group, so ending the group ends that node
and the workers it spawned, and nothing else: ``ray stop`` would kill every Ray process on the
machine, other people's included. A fresh ``--temp-dir`` per cluster keeps a stale
``ray_current_cluster`` file from pointing a driver at a dead cluster, and every port is picked free
so two test runs on one machine do not collide. Token authentication is switched off explicitly for
the nodes and the driver alike (Ray turns it on by itself once a token exists in ~/.ray).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
STARTED = "Ray runtime started."
REPO = Path(__file__).resolve().parents[1]
# The driver must use these too; PYTHONPATH stands in for "costbench installed on every node"
# (tests.fake_trials has to be importable by the workers).
ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass
class LocalCluster:
    address: str
    temp_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    start_seconds: float = 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster(nodes: int = 2, cpus_per_node: int = 1) -> LocalCluster:
    """A head node and ``nodes - 1`` workers on loopback; returns once all have started.

    All nodes are launched at once: a worker's ``ray start --address`` waits for the head's GCS,
    which saves a third of the start time.
    """
    began = time.monotonic()
    temp_dir = Path(tempfile.mkdtemp(prefix="cbray-"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    cluster = LocalCluster(address=f"127.0.0.1:{port}", temp_dir=temp_dir)
    head = ["--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false",
            f"--dashboard-port={free_port()}"]
    try:
        logs = [_launch_node(cluster, i, [*(head if i == 0 else [f"--address={cluster.address}"]),
                                          f"--num-cpus={cpus_per_node}", "--num-gpus=0"])
                for i in range(nodes)]
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(STARTED in log.read_text(errors="replace") for log in logs):
            dead = [i for i, process in enumerate(cluster.processes) if process.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = "\n".join(log.read_text(errors="replace")[-2000:] for log in logs)
                raise RuntimeError(f"ray nodes {dead or 'all'} did not start:\n{why}")
            time.sleep(0.2)
    except BaseException:
        stop_cluster(cluster)
        raise
    cluster.start_seconds = time.monotonic() - began
    return cluster


def _launch_node(cluster: LocalCluster, index: int, args: list[str]) -> Path:
    log = cluster.temp_dir / f"node{index}.log"
    ports = [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
             f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", *args, *ports,
               "--object-store-memory=100000000", "--include-log-monitor=false", "--disable-usage-stats",
               "--block"]
    with log.open("wb") as out:
        cluster.processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                                  env=node_env(), start_new_session=True))
    return log


def node_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **ENV, "PYTHONPATH": path}


def stop_cluster(cluster: LocalCluster) -> list[str]:
    """Kill every node's process group; returns the command lines of any process left behind."""
    for process in cluster.processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while (left := leftovers(cluster)) and time.monotonic() < deadline:
        time.sleep(0.2)
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    return left


def leftovers(cluster: LocalCluster) -> list[str]:
    """Live processes of the cluster: in a node's process group, or naming or writing into its temp dir.

    Ray workers take a process group of their own and retitle themselves ("ray::IDLE"), but their
    output goes to log files in the temp dir, so their open files give them away.
    """
    groups = {process.pid for process in cluster.processes}
    temp = str(cluster.temp_dir)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            outputs = [os.readlink(proc / "fd" / fd) for fd in ("1", "2") if (proc / "fd" / fd).exists()]
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, pgid = fields[0], int(fields[2])
        ours = pgid in groups or temp in cmdline or any(path.startswith(temp) for path in outputs)
        if state != "Z" and ours:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found
