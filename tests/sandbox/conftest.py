"""Fixtures for the sandbox's own tests: API sessions, dedicated servers, a webhook receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_neuraldraft.sandbox import SandboxServer
from tests.sandbox.support import Api, WebhookReceiver


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[Api]:
    """An authenticated session on the shared sandbox (reset for each test)."""
    session = Api(sandbox)
    yield session
    session.close()


@pytest.fixture
def make_server() -> Iterator[Callable[..., SandboxServer]]:
    """Start extra sandboxes with their own options; all are stopped after the test."""
    servers: list[SandboxServer] = []

    def factory(**options: Any) -> SandboxServer:
        server = SandboxServer(**options).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def make_api(make_server: Callable[..., SandboxServer]) -> Iterator[Callable[..., Api]]:
    """``make_api(**options)``: a dedicated sandbox and an authenticated session on it."""
    sessions: list[Api] = []

    def factory(**options: Any) -> Api:
        session = Api(make_server(**options))
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        session.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    yield hook
    hook.close()
