"""Finding the image keys a project's templates name, in every configured template engine.

Templates are tokenized, never rendered or compiled: a scan runs no template
code, loads no tag library and needs no context. Only a key written as a plain
string literal (``{% neuraldraft_image "hero.background" %}``,
``{{ neuraldraft_url("hero.background") }}``) can be known ahead of time; a key
from a variable is reported as such.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.template import engines
from django.template.backends.django import DjangoTemplates
from django.template.base import Lexer, TokenType
from django.utils.text import unescape_string_literal

from .keys import is_valid_image_key
from .models import ImageKey

_QUOTED = re.compile(r"""^(?:"[^"\\]*(?:\\.[^"\\]*)*"|'[^'\\]*(?:\\.[^'\\]*)*')$""", re.S)

#: Files larger than this are not templates anyone writes by hand; they are skipped.
_MAX_TEMPLATE_BYTES = 2 * 1024 * 1024


#: The tags (and Jinja2 functions of the same names) that take an image key first;
#: ``neuraldraft_picture`` arrives with responsive renditions (#10).
KNOWN_TAGS = frozenset(
    {"neuraldraft_image", "neuraldraft_url", "neuraldraft_image_data", "neuraldraft_picture"}
)


def tag_names() -> frozenset[str]:
    """:data:`KNOWN_TAGS` and every tag of the ``neuraldraft`` library; each takes a key first.

    Read from the library too, so a tag added to it is scanned for without a
    change here.
    """
    from .templatetags.neuraldraft import register

    return KNOWN_TAGS | frozenset(register.tags)


@dataclass(frozen=True)
class Use:
    """One tag or function call in a template. ``key`` is ``None`` when not a literal."""

    key: str | None
    tag: str
    template: str
    line: int
    engine: str

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "tag": self.tag,
            "template": self.template,
            "line": self.line,
            "engine": self.engine,
        }


@dataclass
class ScanReport:
    """What the templates name compared with the image keys in the database.

    ``missing``: valid literal keys with no ``ImageKey`` row; ``unused``: rows
    no template names literally (a key given by a variable may still use them);
    ``invalid``: literal keys that are not valid keys; ``dynamic``: uses whose
    key is a variable; ``unreadable``: templates that could not be read, with why.
    """

    uses: list[Use]
    missing: list[str]
    unused: list[str]
    invalid: list[Use]
    dynamic: list[Use]
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def keys(self) -> dict[str, list[Use]]:
        found: dict[str, list[Use]] = {}
        for use in self.uses:
            if use.key is not None and use not in self.invalid:
                found.setdefault(use.key, []).append(use)
        return dict(sorted(found.items()))


def scan() -> ScanReport:
    """Scan every template of every engine in ``settings.TEMPLATES`` and compare with the slots."""
    names = tag_names()
    uses: list[Use] = []
    unreadable: list[tuple[str, str]] = []
    for engine in engines.all():
        for template, source in _sources(engine, unreadable):
            try:
                uses.extend(_uses(engine, names, template, source))
            except Exception as err:  # a syntax error of the engine's own kind, whatever it is
                unreadable.append((template, f"{type(err).__name__}: {err}"))
    invalid = [use for use in uses if use.key is not None and not is_valid_image_key(use.key)]
    literal = {use.key for use in uses if use.key is not None and use not in invalid}
    slots = set(ImageKey.objects.values_list("key", flat=True))
    return ScanReport(
        uses=uses,
        missing=sorted(literal - slots),
        unused=sorted(slots - literal),
        invalid=invalid,
        dynamic=[use for use in uses if use.key is None],
        unreadable=unreadable,
    )


def create_missing(report: ScanReport) -> list[ImageKey]:
    """Create an empty slot (no prompt, so nothing is spent) for each missing key."""
    return [ImageKey.objects.get_or_create(key=key)[0] for key in report.missing]


def _sources(engine: Any, unreadable: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """``(name, source)`` of every template ``engine`` can load, each file once."""
    if isinstance(engine, DjangoTemplates):
        dirs, in_memory = _django_loader_dirs(engine.engine.template_loaders)
        yield from sorted(in_memory.items())
        charset = engine.engine.file_charset
    else:
        dirs = list(engine.template_dirs)
        loader = getattr(getattr(engine, "env", None), "loader", None)
        dirs.extend(getattr(loader, "searchpath", []))
        charset = "utf-8"
    seen: set[Path] = set()
    for directory in dirs:
        for path in _files(Path(directory)):
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            try:
                if path.stat().st_size > _MAX_TEMPLATE_BYTES:
                    continue
                yield str(path), path.read_text(encoding=charset)
            except (OSError, UnicodeDecodeError) as err:
                unreadable.append((str(path), f"{type(err).__name__}: {err}"))


def _django_loader_dirs(loaders: Iterable[Any]) -> tuple[list[str], dict[str, str]]:
    dirs: list[str] = []
    in_memory: dict[str, str] = {}
    for loader in loaders:
        if hasattr(loader, "loaders"):
            inner_dirs, inner_memory = _django_loader_dirs(loader.loaders)
            dirs.extend(inner_dirs)
            in_memory.update(inner_memory)
        elif isinstance(getattr(loader, "templates_dict", None), dict):
            in_memory.update(loader.templates_dict)
        elif hasattr(loader, "get_dirs"):
            dirs.extend(str(directory) for directory in loader.get_dirs())
    return dirs, in_memory


def _files(directory: Path) -> Iterator[Path]:
    if not directory.is_dir():
        return
    for root, subdirs, files in os.walk(directory):
        subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root, name)


def _uses(engine: Any, names: frozenset[str], template: str, source: str) -> list[Use]:
    if isinstance(engine, DjangoTemplates):
        return list(_django_uses(engine.name, names, template, source))
    env = getattr(engine, "env", None)
    if env is not None and hasattr(env, "lexer"):
        return list(_jinja2_uses(engine.name, env, names, template, source))
    return []


def _django_uses(engine: str, names: frozenset[str], template: str, source: str) -> Iterator[Use]:
    in_comment = False
    for token in Lexer(source).tokenize():
        if token.token_type != TokenType.BLOCK:
            continue
        bits = token.split_contents()
        if not bits:
            continue
        # A {% comment %} block is text to the parser, though the lexer sees tags in it.
        if in_comment or bits[0] == "comment":
            in_comment = bits[0] != "endcomment"
            continue
        if bits[0] not in names:
            continue
        key = _django_literal(bits[1]) if len(bits) > 1 else None
        yield Use(key, bits[0], template, token.lineno or 0, engine)


def _django_literal(bit: str) -> str | None:
    """The value of a plain quoted string; ``None`` for variables, filters or ``_("...")``."""
    if not _QUOTED.match(bit):
        return None
    return unescape_string_literal(bit)


def _jinja2_uses(
    engine: str, env: Any, names: frozenset[str], template: str, source: str
) -> Iterator[Use]:
    tokens = list(env.lexer.tokenize(source, name=template))
    for index, token in enumerate(tokens[:-1]):
        if token.type != "name" or token.value not in names:
            continue
        if tokens[index + 1].type != "lparen" or (index and tokens[index - 1].type == "dot"):
            continue
        argument = tokens[index + 2 : index + 6]
        if argument[:2] and argument[0].test("name:key") and argument[1].type == "assign":
            argument = argument[2:]
        argument = argument[:2]
        literal = (
            len(argument) == 2
            and argument[0].type == "string"
            and argument[1].type in ("comma", "rparen")
        )
        yield Use(
            argument[0].value if literal else None, token.value, template, token.lineno, engine
        )
