"""A password hasher for the sign-in tests that records every hash it checks.

It uses cheap argon2 parameters: the tests count checks and compare answers, they
do not measure argon2, and forty default-cost checks in parallel would dominate the
run. Installed with :func:`counting_hasher`, which also forgets the cached dummy
hash so refusals check one made with these parameters.
"""

from __future__ import annotations

import threading

import pytest
from argon2 import PasswordHasher

from casework import auth


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self._lock = threading.Lock()
        self.checked: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.checked.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


def install_counting_hasher(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> CountingHasher:
    """Swap the sign-in hasher for a counting one until the test ends."""
    hasher = CountingHasher()
    monkeypatch.setattr(auth, "_hasher", hasher)
    auth._dummy_hash.cache_clear()
    request.addfinalizer(auth._dummy_hash.cache_clear)
    return hasher
