"""Client test fixtures: a client on the sandbox, a second local server, a sleep recorder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_neuraldraft.client import NeuralDraftClient

from .local_http import LocalServer, serve


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    with serve() as server:
        yield server


class SleepRecorder:
    """Stands in for ``time.sleep`` on a client: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def client(sandbox, api_key, sleeps) -> Iterator[NeuralDraftClient]:
    """A client on the sandbox whose backoff waits are recorded, not slept."""
    with NeuralDraftClient(api_key=api_key, base_url=sandbox.base_url, timeout=(2, 5)) as client:
        client._sleep = sleeps
        yield client
