"""A small ``multipart/form-data`` parser for uploads (stdlib ``cgi`` is gone in 3.13)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser

from django_neuraldraft.sandbox.problems import bad_request


@dataclass(frozen=True)
class Part:
    """One form field: text fields have ``filename`` None."""

    name: str
    data: bytes
    filename: str | None
    content_type: str | None

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _boundary(content_type: str) -> bytes:
    message = Message()
    message["Content-Type"] = content_type
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise bad_request("The multipart body has no boundary parameter.")
    return boundary.encode("latin-1")


def parse_form(body: bytes, content_type: str) -> dict[str, Part]:
    """Return the parts of ``body`` by field name (the last one wins on repeats).

    Raises the 400 ``bad_request`` problem for a body that is not multipart at
    all; missing fields are the caller's 422 to report.
    """
    delimiter = b"\r\n--" + _boundary(content_type)
    sections = (b"\r\n" + body).split(delimiter)
    if len(sections) < 2 or not sections[-1].startswith(b"--"):
        raise bad_request("The multipart body is malformed (no closing boundary).")
    parts: dict[str, Part] = {}
    for section in sections[1:-1]:
        head, separator, data = section.partition(b"\r\n\r\n")
        if not separator:
            raise bad_request("A multipart section has no header block.")
        headers = BytesHeaderParser().parsebytes(head.lstrip(b"\r\n"))
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise bad_request("A multipart section has no form field name.")
        filename = headers.get_param("filename", header="content-disposition")
        parts[name] = Part(
            name=name,
            data=data,
            filename=filename if isinstance(filename, str) else None,
            content_type=headers.get("Content-Type"),
        )
    return parts
