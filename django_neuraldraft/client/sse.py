"""An incremental ``text/event-stream`` parser that turns job stream bytes into JobEvents.

It follows the WHATWG "event stream interpretation" rules rather than
``requests.Response.iter_lines``, which splits a ``\\r\\n`` that straddles two
chunks into two line ends and so dispatches events early.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator

from ._response import parse_json
from .errors import MalformedResponseError
from .types import JobEvent

_LINE_END = re.compile(r"\r\n|\r|\n")
#: Longest line, and most data in one event, read from a stream: an event of
#: the API is well under 1 KB, and a server that never ends a line or an event
#: must not make the parser hold more.
MAX_EVENT_CHARS = 64 * 1024


class EventStreamParser:
    """Feed it bytes as they arrive; it returns the events that became complete.

    An event is complete at its blank line; data lines are joined with ``\\n``;
    lines starting with ``:`` (the server's ``: ping``) are comments; the last
    ``id:`` seen is carried on every later event, as ``Last-Event-ID`` needs.
    Each event's data must be a JSON object, else MalformedResponseError.
    """

    def __init__(self, secret: str = "") -> None:
        #: The API key, masked wherever an event's data repeats it.
        self._secret = secret
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self.last_event_id: str | None = None

    def feed(self, chunk: bytes) -> list[JobEvent]:
        """Parse ``chunk`` and return the events it completed, in order."""
        text = self._pending + self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        # A final "\r" may be the first half of a "\r\n" still in flight.
        held = "\r" if text.endswith("\r") else ""
        lines = _LINE_END.split(text[: len(text) - len(held)])
        self._pending = lines.pop() + held
        if len(self._pending) > MAX_EVENT_CHARS:
            raise MalformedResponseError(
                f"A stream line is longer than {MAX_EVENT_CHARS} characters."
            )
        return self._process(lines)

    def close(self) -> list[JobEvent]:
        """End of stream: a held ``\\r`` ends its line; an unfinished event is dropped."""
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        lines = _LINE_END.split(text)
        lines.pop()
        return self._process(lines)

    def _process(self, lines: list[str]) -> list[JobEvent]:
        events = []
        for line in lines:
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                self._field(name, value)
        return events

    def _field(self, name: str, value: str) -> None:
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > MAX_EVENT_CHARS:
                raise MalformedResponseError(
                    f"A stream event holds more than {MAX_EVENT_CHARS} characters of data."
                )
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value or None

    def _dispatch(self) -> JobEvent | None:
        event, self._event = self._event or "message", ""
        if not self._data:
            return None
        text, self._data, self._size = "\n".join(self._data), [], 0
        try:
            data = parse_json(text.encode(), self._secret)
        except ValueError as err:
            raise MalformedResponseError(
                f"Stream event {event!r:.100} data is not JSON ({err}): {text[:100]!r}"
            ) from None
        if not isinstance(data, dict):
            raise MalformedResponseError(f"Stream event {event!r} data is not a JSON object.")
        return JobEvent(event=event, data=data, id=self.last_event_id)


def iter_events(chunks: Iterable[bytes], secret: str = "") -> Iterator[JobEvent]:
    """Yield the events of a whole stream given as byte chunks of any size."""
    parser = EventStreamParser(secret)
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()
