"""Loopback stand-ins for SendGrid and Twilio, spoken to through the real SDKs.

Provider HTTP is faked at the network, never patched inside the SDK, so the tests
exercise the SDK's real request building, error classes and timeouts. Each fake is a
``ThreadingHTTPServer`` on ``127.0.0.1`` with an ephemeral port, checks what the real
API checks (auth, required fields) and answers in the real API's shape.

Common controls (see :class:`LoopbackFake`): ``.url``, ``.requests`` (what was
received), ``.accepted`` (how many sends succeeded), ``.fail_next(...)`` and
``.delay_next(...)`` to script trouble, ``.revoke_credentials()`` /
``.restore_credentials()`` to refuse our key for a while, ``reset()``. Use as a context manager::

    with SendGridFake() as sg:
        channel = SendGridEmailChannel(api_key=sg.api_key, host=sg.url, ...)

The servers are lean enough for a throughput benchmark (a few thousand requests/s):
HTTP/1.1 keep-alive, no logging, a big listen backlog, and ``record=False`` to stop
keeping every request.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self

__all__ = ["FakeResponse", "LoopbackFake", "RecordedRequest", "closed_port_url"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it.

    ``headers`` keys are lower-cased (HTTP header names are case-insensitive and the
    SDKs differ in how they spell them). ``body`` is the parsed body: JSON for SendGrid,
    a ``dict[str, str]`` of form fields for Twilio, ``None`` if it did not parse.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    raw: bytes

    def header(self, name: str) -> str | None:
        """Header value by case-insensitive name."""
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class FakeResponse:
    """What the fake will answer: status, headers and an already-encoded body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> FakeResponse:
        merged = {"Content-Type": "application/json"}
        merged.update(headers or {})
        return cls(status, merged, json.dumps(payload).encode())


def encode_body(body: Any) -> bytes:
    """Scripted bodies may be given as JSON-able data, text, or raw bytes."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    """Thread-per-connection server tuned for bursts and quiet about dropped clients."""

    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops SYNs under a concurrent benchmark, and a dropped
    # SYN costs the client a 1 s retransmit, which would swamp the measurement.
    request_queue_size = 1024

    def __init__(self, fake: LoopbackFake) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up before a delayed answer is expected in
        # these tests; anything else is a bug in the fake and should be seen.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, hands it to the fake, writes the answer. Nothing else."""

    protocol_version = "HTTP/1.1"  # keep-alive: requests.Session reuses connections
    timeout = 30  # idle keep-alive connections close instead of pinning a thread
    # Headers and body go out as separate writes; with Nagle on, the body waits for
    # the client's delayed ACK (~40 ms) on a kept-alive connection: 20 requests/s.
    disable_nagle_algorithm = True
    server: _Server
    _headers_buffer: list[bytes]  # set by send_response(); untyped in typeshed

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: a line per request would dominate a throughput run."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.fake._dispatch(self.command, path, query, headers, raw)
        if response is None:  # the fake is shutting down mid-delay
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        # One write for head and body (end_headers() would flush the head alone):
        # fewer syscalls and no small-segment stall on a kept-alive connection.
        self._headers_buffer.append(b"\r\n" + response.body)
        self.flush_headers()

    do_POST = _serve
    do_GET = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve


class LoopbackFake:
    """Base of the provider fakes: server lifecycle, recording, scripted faults and delays.

    Subclasses implement :meth:`handle` (the provider's real behaviour) and
    :meth:`_fault_response` (how that provider words an error). Everything shared
    between handler threads is guarded by one lock, held only for list operations.
    """

    provider: ClassVar[str] = "fake"

    def __init__(self, *, record: bool = True) -> None:
        self.record = record
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._faults: deque[FakeResponse] = deque()
        self._delays: deque[float] = deque()
        self._accepted = 0
        self._revoked = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.provider}-fake",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting connections and wake any handler sleeping in a delay."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use start() or with")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- observations ------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far (empty when ``record=False``)."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> int:
        """How many sends the fake accepted (2xx), counted even when not recording."""
        with self._lock:
            return self._accepted

    @property
    def last(self) -> RecordedRequest:
        """The most recent request; ``IndexError`` when there is none."""
        with self._lock:
            return self._requests[-1]

    # -- scripting ---------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` instead of handling them.

        ``body`` ``None`` gives the provider's usual error body for that status; a dict
        or list is sent as JSON, ``str``/``bytes`` as given. ``headers`` are added to
        (and override) the provider's defaults, e.g. ``{"Retry-After": "7"}``.
        """
        self._queue_fault(self._fault_response(status, headers or {}, body), count)

    def revoke_credentials(self) -> None:
        """Refuse our key from now on, as the provider does after a key is rotated or
        revoked (every request answered like a wrong key), until :meth:`restore_credentials`."""
        with self._lock:
            self._revoked = True

    def restore_credentials(self) -> None:
        """Accept the key again (the operator fixed the settings)."""
        with self._lock:
            self._revoked = False

    @property
    def credentials_revoked(self) -> bool:
        with self._lock:
            return self._revoked

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` answers back by ``seconds`` (to trip client timeouts)."""
        with self._lock:
            self._delays.extend([seconds] * count)

    def reset(self) -> None:
        """Forget recorded requests, the accepted count and any scripted trouble."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._delays.clear()
            self._accepted = 0
            self._revoked = False

    def _queue_fault(self, response: FakeResponse, count: int) -> None:
        with self._lock:
            self._faults.extend([response] * count)

    # -- provider behaviour (subclasses) -----------------------------------------------

    def handle(self, request: RecordedRequest) -> FakeResponse:
        raise NotImplementedError

    def _fault_response(self, status: int, headers: dict[str, str], body: Any) -> FakeResponse:
        merged = {"Content-Type": "application/json"}
        merged.update(headers)
        return FakeResponse(status, merged, encode_body(body))

    # -- called from handler threads ---------------------------------------------------

    def _dispatch(
        self, method: str, path: str, query: str, headers: dict[str, str], raw: bytes
    ) -> FakeResponse | None:
        request = RecordedRequest(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=self._parse(headers, raw),
            raw=raw,
        )
        with self._lock:
            if self.record:
                self._requests.append(request)
            delay = self._delays.popleft() if self._delays else 0.0
            fault = self._faults.popleft() if self._faults else None
        if delay > 0 and self._stopping.wait(delay):
            return None
        if fault is not None:
            return fault
        response = self.handle(request)
        if 200 <= response.status < 300:
            with self._lock:
                self._accepted += 1
        return response

    def _parse(self, headers: dict[str, str], raw: bytes) -> Any:
        return raw


def closed_port_url() -> str:
    """An ``http://127.0.0.1:PORT`` URL where nothing listens (connection refused).

    The port was just bound and released, so it is very unlikely to be reused during
    the test; this is how "the provider is down" looks from the client.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
