"""The ``<img>`` and ``<picture>`` markup and placeholders that the tags and Jinja2 share."""

from __future__ import annotations

import re
from collections.abc import Collection, Container
from functools import lru_cache
from html import escape
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db.models import QuerySet
from django.templatetags.static import static
from django.utils.html import conditional_escape

from . import conf
from .resolver import ImageData, Status

#: What the HTML standard allows in an attribute name, minus anything that would need quoting.
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:.]*")

#: The attributes the tag computes, which a template may set itself instead.
COMPUTED_ATTRIBUTES = frozenset({"width", "height", "alt"})

#: The longer side of a placeholder, in pixels; the image that replaces it brings its own size.
_PLACEHOLDER_SIDE = 1024

_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")

_WHY = {
    Status.EMPTY: "image key {key} has no image yet; generate one in the admin.",
    Status.PENDING: "image key {key} has no image yet; a generation is running.",
    Status.UNKNOWN: "there is no image key {key}; create it in the admin or with generate().",
    Status.INVALID: "{key} is not a valid image key: use lowercase letters, digits, . - _",
}


def validate_attribute_name(name: str) -> None:
    """Raise ``ValueError`` unless a template may set the attribute ``name`` on the ``<img>``."""
    if not _ATTRIBUTE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an HTML attribute name.")
    if name == "src":
        raise ValueError("The image tag sets src itself; use neuraldraft_url for a custom tag.")


def attribute_html(name: str, value: Any) -> str:
    """Return `` name="value"``, escaped unless safe; as in Django's ``flatatt``,
    ``True`` gives a bare attribute and ``False`` or ``None`` leaves it out.
    """
    if type(value) is str:
        # The common case, without conditional_escape's checks: a plain str is never safe.
        return f' {name}="{escape(value)}"'
    if value is True:
        return f" {name}"
    if value is False or value is None:
        return ""
    return f' {name}="{conditional_escape(value)}"'


def for_display(data: ImageData) -> ImageData:
    """Return ``data`` when it has an image, else a copy that shows the placeholder.

    The copy keeps the status, alt text and colour; its URL is the
    placeholder's (``""`` when ``PLACEHOLDER`` is ``""``) and its size follows
    the key's aspect ratio, so the page does not shift when the image arrives.
    """
    if data.status == Status.READY:
        return data
    across, down = _ratio(data.aspect_ratio or conf.default_aspect_ratio())
    if across >= down:
        width, height = _PLACEHOLDER_SIDE, round(_PLACEHOLDER_SIDE * down / across)
    else:
        width, height = round(_PLACEHOLDER_SIDE * across / down), _PLACEHOLDER_SIDE
    return data._replace(
        url=_placeholder_url(across, down, data.color), width=width, height=height
    )


def _ratio(aspect_ratio: str) -> tuple[int, int]:
    """``(16, 9)`` for ``"16:9"``, and for anything that is not a ratio."""
    try:
        across, down = (int(term) for term in aspect_ratio.split(":"))
    except ValueError:
        return (16, 9)
    return (across, down) if across > 0 and down > 0 else (16, 9)


def _placeholder_url(across: int, down: int, color: str) -> str:
    configured = conf.placeholder()
    if configured is None:
        return _svg(across, down, color if _COLOR.fullmatch(color) else "")
    if not configured or configured.startswith(("http://", "https://", "/")):
        return configured
    # The rule of Django's forms.Media: anything else is a static file path.
    return static(configured)


@lru_cache(maxsize=256)
def _svg(across: int, down: int, color: str) -> str:
    """An SVG of the given proportions, filled with ``color`` or a faint grey, as a data URI."""
    fill = f'fill="{color}"' if color else 'fill="#808080" fill-opacity=".15"'
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {across} {down}" '
        f'preserveAspectRatio="none"><rect width="100%" height="100%" {fill}/></svg>'
    )
    # Fully percent-encoded: safe in an attribute, a srcset and a CSS url() alike.
    return "data:image/svg+xml," + quote(svg, safe="")


def img_html(
    data: ImageData,
    attrs_html: str = "",
    overridden: Container[str] = frozenset(),
    responsive_html: str = "",
) -> str:
    """Return the ``<img>`` for display ``data`` (see :func:`for_display`) as an HTML string.

    ``attrs_html`` holds the template's own attributes, already escaped;
    ``overridden`` names the computed attributes (:data:`COMPUTED_ATTRIBUTES`)
    among them, which are then left to the template; ``responsive_html`` is
    :func:`srcset_html` or ``""``. A placeholder is marked
    ``data-neuraldraft-pending`` while a generation runs and is preceded, with
    ``DEBUG = True``, by an HTML comment saying why there is no image.
    """
    ready = data.status == Status.READY
    html = f'<img src="{escape(data.url)}"{responsive_html if ready else ""}'
    if "width" not in overridden:
        html += f' width="{data.width}"'
    if "height" not in overridden:
        html += f' height="{data.height}"'
    if "alt" not in overridden:
        html += f' alt="{escape(data.alt)}"'
    if ready:
        return f"{html}{attrs_html}>"
    if data.status == Status.PENDING:
        html += " data-neuraldraft-pending"
    return debug_comment(data) + (f"{html}{attrs_html}>" if data.url else "")


def srcset_html(srcset: str, sizes: Any = None) -> str:
    """`` srcset="..." sizes="..."``, escaped; ``""`` when there is no ``srcset``."""
    if not srcset:
        return ""
    return _srcset_html(srcset, f' sizes="{conditional_escape(sizes)}"' if sizes else "")


@lru_cache(maxsize=4096)
def _srcset_html(srcset: str, sizes_html: str) -> str:
    # Escaped once per process: the same few hundred srcsets fill every page.
    return f' srcset="{escape(srcset)}"{sizes_html}'


@lru_cache(maxsize=4096)
def _sources_html(sources: tuple[tuple[str, str], ...], sizes_html: str) -> str:
    return "<picture>" + "".join(
        f'<source type="{mime_type}" srcset="{escape(srcset)}"{sizes_html}>'
        for mime_type, srcset in sources
    )


def picture_html(
    data: ImageData,
    attrs_html: str = "",
    overridden: Container[str] = frozenset(),
    sizes: Any = None,
) -> str:
    """Return ``<picture>`` with a ``<source>`` per modern format and the ``<img>`` fallback.

    The fallback carries the image's own format, its ``srcset`` and the
    template's attributes. A key without an image renders its placeholder
    ``<img>`` inside the ``<picture>``, or nothing when the placeholder is ``""``.
    """
    if data.status != Status.READY:
        img = img_html(data, attrs_html, overridden)
        return f"<picture>{img}</picture>" if data.url else img
    sizes_html = f' sizes="{conditional_escape(sizes)}"' if sizes else ""
    responsive = _srcset_html(data.srcset, sizes_html) if data.srcset else ""
    head = _sources_html(data.sources, sizes_html)
    return head + img_html(data, attrs_html, overridden, responsive) + "</picture>"


def debug_comment(data: ImageData) -> str:
    """With ``DEBUG = True``, an HTML comment saying why ``data`` has no image; else ``""``."""
    if not settings.DEBUG or data.status not in _WHY:
        return ""
    why = _WHY[data.status].format(key=repr(data.key))
    # Escaping turns any "-->" in a hostile key into "--&gt;", which cannot close the comment.
    return f"<!-- neuraldraft: {escape(why, quote=False)} -->"


def replayable(sequence: Any, *, evaluate: bool = False) -> bool:
    """Whether iterating ``sequence`` before (or beside) its loop costs nothing the loop does not.

    A collection, or a QuerySet already evaluated; an unevaluated QuerySet
    only with ``evaluate``, when the loop is certain to evaluate that very
    object. Never a generator or an iterator, which would be consumed.
    """
    if isinstance(sequence, QuerySet):
        return evaluate or sequence._result_cache is not None
    return isinstance(sequence, Collection)
