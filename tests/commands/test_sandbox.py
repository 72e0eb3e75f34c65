"""``neuraldraft_sandbox``: its options are checked before anything listens."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def sandbox_command(*args: str) -> None:
    call_command("neuraldraft_sandbox", *args, stdout=StringIO(), stderr=StringIO())


def test_a_port_out_of_range_is_refused():
    with pytest.raises(CommandError, match=r"'99999' is not a port \(0 to 65535\)"):
        sandbox_command("--port", "99999")


def test_a_port_in_use_says_to_pick_another(sandbox_server):
    with pytest.raises(CommandError, match=r"Address already in use.*pick another --port"):
        sandbox_command("--port", str(sandbox_server.port))
