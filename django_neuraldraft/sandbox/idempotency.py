"""The ``Idempotency-Key`` store: first answers kept for 24 h and replayed byte for byte."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django_neuraldraft.sandbox.messages import Request, Response

RETENTION_SECONDS = 24 * 60 * 60
KEY_MAX_LENGTH = 255


def fingerprint(request: Request) -> str:
    """What must match for a replay: method, path and the exact body bytes."""
    digest = hashlib.sha256(f"{request.method}\0{request.path}\0".encode())
    digest.update(request.body)
    return digest.hexdigest()


@dataclass
class Record:
    """One key's first request; ``response`` stays None while that request is in flight."""

    fingerprint: str
    created_at: float
    response: Response | None = None


@dataclass
class IdempotencyStore:
    """Records by key. Not locked: the store calls it under its own lock."""

    records: dict[str, Record] = field(default_factory=dict)

    def get(self, key: str, now: float) -> Record | None:
        record = self.records.get(key)
        if record is not None and now - record.created_at > RETENTION_SECONDS:
            del self.records[key]
            return None
        return record

    def reserve(self, key: str, request_fingerprint: str, now: float) -> None:
        self.records[key] = Record(request_fingerprint, now)

    def complete(self, key: str, response: Response) -> None:
        """Keep ``response`` for replays; only final answers (below 500) are kept."""
        record = self.records.get(key)
        if record is None:
            return
        if response.status >= 500:
            del self.records[key]
        else:
            record.response = Response(response.status, response.body, dict(response.headers))

    def release(self, key: str) -> None:
        """Forget an in-flight key whose request crashed, so a retry runs it again."""
        record = self.records.get(key)
        if record is not None and record.response is None:
            del self.records[key]
