"""The template tags as Jinja2 functions: ``neuraldraft_image()``, ``_picture()``, ``_url()``...

Enable it in the Jinja2 backend's options::

    TEMPLATES = [{
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "OPTIONS": {"extensions": ["django_neuraldraft.jinja2.NeuralDraftExtension"]},
        ...
    }]

Like the Django tags, a template costs one batch however many images it shows.
A Jinja2 function cannot see the template that calls it, so while a template
compiles the extension adds the template's literal keys to each call, as the
hidden argument ``_neuraldraft_keys``. Compiled templates, bytecode caches
included, keep it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jinja2 import pass_context
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.runtime import Context
from markupsafe import Markup

from . import conf
from .rendering import (
    COMPUTED_ATTRIBUTES,
    attribute_html,
    for_display,
    img_html,
    picture_html,
    srcset_html,
    validate_attribute_name,
)
from .resolver import ImageData, RenderMemo

_BATCH_ARGUMENT = "_neuraldraft_keys"

#: Attribute of the render's EvalContext that holds its RenderMemo: one
#: EvalContext serves a template, its blocks and the templates it extends.
_MEMO = "neuraldraft_memo"

_OPENING = frozenset({"lparen", "lbracket", "lbrace"})
_CLOSING = frozenset({"rparen", "rbracket", "rbrace"})


def _image(context: Context, key: Any, batch: Iterable[str]) -> ImageData:
    eval_ctx = context.eval_ctx
    memo = getattr(eval_ctx, _MEMO, None)
    if memo is None:
        memo = RenderMemo()
        setattr(eval_ctx, _MEMO, memo)
    return memo.get(key, batch)


def _attributes(attrs: dict[str, Any]) -> str:
    for name in attrs:
        validate_attribute_name(name)
    return "".join(attribute_html(name, value) for name, value in attrs.items())


@pass_context
def neuraldraft_image(
    context: Context,
    key: Any,
    _neuraldraft_keys: Iterable[str] = (),
    sizes: Any = None,
    **attrs: Any,
) -> Markup:
    """``{{ neuraldraft_image("hero.background", alt="...", class="hero") }}``: an ``<img>``.

    Keyword arguments become attributes, as with the Django tag; for names
    that are not Python identifiers pass ``**{"data-id": 3}``. Raises
    ``ValueError`` for an attribute name that is not one, or for ``src``.
    With ``sizes`` (or ``DEFAULT_SIZES``) and renditions, adds ``srcset``.
    """
    attrs_html = _attributes(attrs)
    data = for_display(_image(context, key, _neuraldraft_keys))
    sizes = sizes or conf.default_sizes()
    responsive = srcset_html(data.srcset, sizes) if sizes else ""
    return Markup(img_html(data, attrs_html, COMPUTED_ATTRIBUTES.intersection(attrs), responsive))


@pass_context
def neuraldraft_picture(
    context: Context,
    key: Any,
    _neuraldraft_keys: Iterable[str] = (),
    sizes: Any = None,
    **attrs: Any,
) -> Markup:
    """``{{ neuraldraft_picture("hero.background", sizes="50vw", alt="...") }}``: a ``<picture>``.

    A ``<source>`` for AVIF and one for WebP when the image has them, then
    the ``<img>`` fallback with the other keyword arguments as attributes.
    """
    attrs_html = _attributes(attrs)
    data = for_display(_image(context, key, _neuraldraft_keys))
    return Markup(
        picture_html(
            data,
            attrs_html,
            COMPUTED_ATTRIBUTES.intersection(attrs),
            sizes or conf.default_sizes(),
        )
    )


@pass_context
def neuraldraft_url(context: Context, key: Any, _neuraldraft_keys: Iterable[str] = ()) -> str:
    """``{{ neuraldraft_url("hero.background") }}``: the URL of the image or its placeholder."""
    return for_display(_image(context, key, _neuraldraft_keys)).url


@pass_context
def neuraldraft_image_data(
    context: Context, key: Any, _neuraldraft_keys: Iterable[str] = ()
) -> ImageData:
    """``{% set img = neuraldraft_image_data("hero.background") %}``, for markup of your own."""
    return for_display(_image(context, key, _neuraldraft_keys))


_FUNCTIONS = {
    "neuraldraft_image": neuraldraft_image,
    "neuraldraft_picture": neuraldraft_picture,
    "neuraldraft_url": neuraldraft_url,
    "neuraldraft_image_data": neuraldraft_image_data,
}


class NeuralDraftExtension(Extension):
    """Adds the four functions to the environment and batches their keys per template."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.globals.update(_FUNCTIONS)

    def filter_stream(self, stream: TokenStream) -> Iterable[Token]:
        """Pass every call of our functions the literal keys of the whole template."""
        tokens = list(stream)
        calls = [index for index in range(len(tokens) - 1) if _is_call(tokens, index)]
        literals = [key for index in calls if (key := _literal_key(tokens, index)) is not None]
        if not literals:
            return tokens
        # From the last call back, so that inserting never moves a call still to do.
        for index in reversed(calls):
            position = _argument_position(tokens, index + 1)
            if position is not None:
                tokens[position:position] = _batch_argument(tokens, position, literals)
        return tokens


def _is_call(tokens: list[Token], index: int) -> bool:
    token = tokens[index]
    return (
        token.type == "name"
        and token.value in _FUNCTIONS
        and tokens[index + 1].type == "lparen"
        and (index == 0 or tokens[index - 1].type != "dot")
    )


def _literal_key(tokens: list[Token], index: int) -> str | None:
    """The key of a call whose first argument is a plain string literal, e.g. ``f("hero")``."""
    if index + 3 >= len(tokens) or tokens[index + 2].type != "string":
        return None
    return tokens[index + 2].value if tokens[index + 3].type in ("comma", "rparen") else None


def _argument_position(tokens: list[Token], opening: int) -> int | None:
    """Where a keyword argument may go in the call opened at ``opening``: before
    its ``**mapping`` if it has one (Jinja2 allows no keyword after it), else
    before its closing parenthesis. ``None`` for an unclosed call, which the
    parser then reports.
    """
    depth = 0
    for position in range(opening + 1, len(tokens)):
        kind = tokens[position].type
        if depth == 0 and kind in ("rparen", "pow"):
            return position
        if kind in _OPENING:
            depth += 1
        elif kind in _CLOSING:
            depth -= 1
    return None


def _batch_argument(tokens: list[Token], position: int, literals: list[str]) -> list[Token]:
    """The tokens of ``_neuraldraft_keys=("a", "b", )``, with the commas the call needs."""
    line = tokens[position].lineno
    inserted = [
        Token(line, "name", _BATCH_ARGUMENT),
        Token(line, "assign", "="),
        Token(line, "lparen", "("),
    ]
    for key in dict.fromkeys(literals):
        inserted += [Token(line, "string", key), Token(line, "comma", ",")]
    inserted.append(Token(line, "rparen", ")"))
    if tokens[position - 1].type not in ("comma", "lparen"):
        inserted.insert(0, Token(line, "comma", ","))
    if tokens[position].type == "pow":
        inserted.append(Token(line, "comma", ","))
    return inserted
