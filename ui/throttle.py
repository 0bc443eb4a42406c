"""Slow down password guessing on gradio's /login, per client address.

A few wrong passwords are free; after that each one locks the address out for twice as long as
the one before (1 s, 2 s, 4 s, ... up to 5 minutes). While locked out, a login gets HTTP 429
with Retry-After and its password is not checked, so a guess cannot be confirmed early. A
correct password from an address that is not locked out goes straight through and clears its
record. Behind a reverse proxy every client shares the proxy's address, so they share a record.

    >>> demo.launch(auth=..., app_kwargs={"middleware": [login_throttle()]})
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from starlette.middleware import Middleware

FREE_FAILURES = 5
FIRST_LOCKOUT = 1.0  # seconds
LONGEST_LOCKOUT = 300.0
FORGET_AFTER = 900.0  # a record with no wrong password for this long is dropped
MAX_CLIENTS = 10_000  # records kept at most; the stalest go first


class LoginThrottle:
    """The bookkeeping, with no I/O: `wait`, then `attempt`, then `succeeded` if it was right."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._records: dict[str, tuple[int, float, float]] = {}  # client -> (failures, until, last)

    def wait(self, client: str) -> float:
        """Seconds before `client` may try a password again; 0 if it may now."""
        record = self._records.get(client)
        if record is None:
            return 0.0
        failures, until, last = record
        now = self.clock()
        if now - last > FORGET_AFTER:
            del self._records[client]
            return 0.0
        return max(0.0, until - now)

    def attempt(self, client: str) -> None:
        """Count an attempt as wrong before it is checked, so that many sent at once cannot
        all slip in before the first is counted; `succeeded` takes it back."""
        now = self.clock()
        failures, until, _ = self._records.get(client, (0, 0.0, now))
        failures += 1
        if failures >= FREE_FAILURES:
            lockout = FIRST_LOCKOUT * 2 ** min(failures - FREE_FAILURES, 30)
            until = now + min(lockout, LONGEST_LOCKOUT)
        self._records[client] = (failures, until, now)
        if len(self._records) > MAX_CLIENTS:
            stalest = min(self._records, key=lambda c: self._records[c][2])
            del self._records[stalest]

    def succeeded(self, client: str) -> None:
        self._records.pop(client, None)


class _ThrottleLogins:
    """ASGI middleware around the whole app; only POST .../login is looked at."""

    def __init__(self, app, throttle: LoginThrottle):
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope.get("method") != "POST" or not path.rstrip("/").endswith("/login"):
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown",))[0]
        wait = self.throttle.wait(client)
        if wait > 0:
            return await _too_many(send, math.ceil(wait))
        self.throttle.attempt(client)
        status = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status.get("code") == 200:
            self.throttle.succeeded(client)


async def _too_many(send, seconds: int) -> None:
    body = json.dumps(
        {"detail": f"too many wrong passwords from this address; try again in {seconds} s"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(seconds).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def login_throttle(throttle: LoginThrottle | None = None) -> Middleware:
    """The middleware to pass to gradio's launch(app_kwargs={"middleware": [...]})."""
    return Middleware(_ThrottleLogins, throttle=throttle or LoginThrottle())
