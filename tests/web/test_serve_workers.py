"""`casework serve --workers N`: connections spread across the processes, TCP_NODELAY kept.

uvicorn's own ``--workers`` shares one listening socket handed from process to process:
the socket comes back saying protocol 0, so asyncio never set TCP_NODELAY on the
connections it accepted (each response then waited ~40 ms for a delayed ACK), and the
worker that woke first took every keep-alive connection. Here each worker binds its own
socket with SO_REUSEPORT and the kernel spreads the connections.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from casework.cli.ops import shared_listener
from casework.config import PROJECT_ROOT


def test_a_workers_socket_shares_the_port_and_its_connections_get_tcp_nodelay() -> None:
    first = shared_listener("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = shared_listener("127.0.0.1", port)  # a second worker binds the same port
    nodelay: list[int] = []

    async def run() -> None:
        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        servers = [await asyncio.start_server(connected, sock=s) for s in (first, second)]
        for _ in range(4):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.05)
            writer.close()
        for server in servers:
            server.close()

    asyncio.run(run())
    assert len(nodelay) == 4 and all(nodelay)


def _workers(pid: int) -> list[int]:
    """The web worker processes of ``pid`` (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_with_two_workers_spreads_keep_alive_connections_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "CASEWORK_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "CASEWORK_ENVIRONMENT": "test",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    command = [sys.executable, "-m", "casework.cli", "serve", "--no-scheduler"]
    command += ["--workers", "2", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    clients: list[httpx.Client] = []
    try:
        # Connections opened as soon as the service first answers, as a load balancer's
        # health check lets them in: the workers listen together (each waits for the
        # others before it listens), so none is left out while the first takes them all.
        deadline = time.monotonic() + 120
        while not _answers(base):
            assert proc.poll() is None, "casework serve exited:\n" + log.read_text()
            assert time.monotonic() < deadline, "the workers did not start within 120 s"
            time.sleep(0.05)
        time.sleep(0.2)  # the probe's own connection closed on the server's side too
        workers = _workers(proc.pid)
        assert len(workers) == 2
        before = {pid: _sockets(pid) for pid in workers}
        # Sixteen keep-alive connections, held open: each is some worker's socket.
        for _ in range(16):
            client = httpx.Client(base_url=base, timeout=5)
            assert client.get("/health").status_code == 200
            clients.append(client)
        gained = {pid: _sockets(pid) - before[pid] for pid in workers}
        assert sum(gained.values()) == 16
        assert all(n >= 1 for n in gained.values()), gained  # not all on one process
    finally:
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
