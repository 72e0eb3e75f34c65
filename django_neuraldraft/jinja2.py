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
hidden argument ``_neuraldraft_keys``, and to a call inside ``{% for %}`` whose
key is an expression, the loop's sequence, its variable and the expression's
source, as ``_neuraldraft_loop``: the first such call of a loop then resolves
the keys of every item at once, when the sequence can be iterated again at no
cost (a list, a QuerySet the loop has evaluated). Compiled templates, bytecode
caches included, keep both.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
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
    replayable,
    srcset_html,
    validate_attribute_name,
)
from .resolver import ImageData, RenderMemo

_BATCH_ARGUMENT = "_neuraldraft_keys"
_LOOP_ARGUMENT = "_neuraldraft_loop"

#: Attribute of the render's EvalContext that holds its RenderMemo: one
#: EvalContext serves a template, its blocks and the templates it extends.
_MEMO = "neuraldraft_memo"

_OPENING = frozenset({"lparen", "lbracket", "lbrace"})
#: The tokens of a sequence that is a plain lookup, cheap to evaluate again.
_LOOKUP = frozenset({"name", "dot", "lbracket", "rbracket", "string", "integer"})
_CLOSING = frozenset({"rparen", "rbracket", "rbrace"})


def _image(
    context: Context, key: Any, batch: Iterable[str], loop: tuple[Any, str, str] | None = None
) -> ImageData:
    eval_ctx = context.eval_ctx
    memo = getattr(eval_ctx, _MEMO, None)
    if memo is None:
        memo = RenderMemo()
        setattr(eval_ctx, _MEMO, memo)
    if loop is not None and not isinstance(key, ImageData) and memo.known(str(key)) is None:
        batch = [*batch, *_loop_keys(context.environment, *loop)]
    return memo.get(key, batch)


def _loop_keys(environment: Any, sequence: Any, target: str, source: str) -> list[str]:
    """The key ``source`` gives for each item of ``sequence`` bound to ``target``."""
    if not replayable(sequence):
        return []
    expression = _expression(environment, source)
    keys = []
    for item in sequence:
        try:
            key = expression(**{target: item})
        except Exception:
            # A guess ahead of the loop; the call itself reports any error.
            continue
        if isinstance(key, str):
            keys.append(key)
    return keys


@lru_cache(maxsize=1024)
def _expression(environment: Any, source: str) -> Any:
    return environment.compile_expression(source, undefined_to_none=True)


def _attributes(attrs: dict[str, Any]) -> str:
    for name in attrs:
        validate_attribute_name(name)
    return "".join(attribute_html(name, value) for name, value in attrs.items())


@pass_context
def neuraldraft_image(
    context: Context,
    key: Any,
    _neuraldraft_keys: Iterable[str] = (),
    _neuraldraft_loop: tuple[Any, str, str] | None = None,
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
    data = for_display(_image(context, key, _neuraldraft_keys, _neuraldraft_loop))
    sizes = sizes or conf.default_sizes()
    responsive = srcset_html(data.srcset, sizes) if sizes else ""
    return Markup(img_html(data, attrs_html, COMPUTED_ATTRIBUTES.intersection(attrs), responsive))


@pass_context
def neuraldraft_picture(
    context: Context,
    key: Any,
    _neuraldraft_keys: Iterable[str] = (),
    _neuraldraft_loop: tuple[Any, str, str] | None = None,
    sizes: Any = None,
    **attrs: Any,
) -> Markup:
    """``{{ neuraldraft_picture("hero.background", sizes="50vw", alt="...") }}``: a ``<picture>``.

    A ``<source>`` for AVIF and one for WebP when the image has them, then
    the ``<img>`` fallback with the other keyword arguments as attributes.
    """
    attrs_html = _attributes(attrs)
    data = for_display(_image(context, key, _neuraldraft_keys, _neuraldraft_loop))
    return Markup(
        picture_html(
            data,
            attrs_html,
            COMPUTED_ATTRIBUTES.intersection(attrs),
            sizes or conf.default_sizes(),
        )
    )


@pass_context
def neuraldraft_url(
    context: Context,
    key: Any,
    _neuraldraft_keys: Iterable[str] = (),
    _neuraldraft_loop: tuple[Any, str, str] | None = None,
) -> str:
    """``{{ neuraldraft_url("hero.background") }}``: the URL of the image or its placeholder."""
    return for_display(_image(context, key, _neuraldraft_keys, _neuraldraft_loop)).url


@pass_context
def neuraldraft_image_data(
    context: Context,
    key: Any,
    _neuraldraft_keys: Iterable[str] = (),
    _neuraldraft_loop: tuple[Any, str, str] | None = None,
) -> ImageData:
    """``{% set img = neuraldraft_image_data("hero.background") %}``, for markup of your own."""
    return for_display(_image(context, key, _neuraldraft_keys, _neuraldraft_loop))


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
        """Pass every call of our functions the literal keys of the whole template, and
        a call in a loop whose key is an expression the loop's sequence and that key."""
        tokens = list(stream)
        calls = [index for index in range(len(tokens) - 1) if _is_call(tokens, index)]
        literals = [key for index in calls if (key := _literal_key(tokens, index)) is not None]
        loops = _loops_around(tokens, calls)
        # From the last call back, so that inserting never moves a call still to do.
        for index in reversed(calls):
            hidden = []
            if literals:
                hidden.append(_keys_argument(tokens[index].lineno, literals))
            loop = loops.get(index)
            if loop is not None and _literal_key(tokens, index) is None:
                hidden.append(_loop_argument(tokens, index, *loop))
            position = _argument_position(tokens, index + 1)
            if position is not None and any(hidden):
                tokens[position:position] = _hidden_arguments(tokens, position, hidden)
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


def _keys_argument(line: int, literals: list[str]) -> list[Token]:
    """``_neuraldraft_keys=("a", "b", )``."""
    argument = [
        Token(line, "name", _BATCH_ARGUMENT),
        Token(line, "assign", "="),
        Token(line, "lparen", "("),
    ]
    for key in dict.fromkeys(literals):
        argument += [Token(line, "string", key), Token(line, "comma", ",")]
    argument.append(Token(line, "rparen", ")"))
    return argument


def _loops_around(tokens: list[Token], calls: list[int]) -> dict[int, tuple[str, list[Token]]]:
    """For each call inside ``{% for name in sequence %}`` (a single name), the innermost
    loop's name and the tokens of its sequence."""
    wanted = set(calls)
    found: dict[int, tuple[str, list[Token]]] = {}
    open_loops: list[tuple[str, list[Token]] | None] = []
    for index, token in enumerate(tokens):
        if index in wanted and open_loops and open_loops[-1] is not None:
            found[index] = open_loops[-1]
        if token.type not in ("block_begin", "linestatement_begin") or index + 1 >= len(tokens):
            continue
        command = tokens[index + 1]
        if command.type == "name" and command.value == "for":
            open_loops.append(_loop_header(tokens, index + 2))
        elif command.type == "name" and command.value == "endfor" and open_loops:
            open_loops.pop()
    return found


def _loop_header(tokens: list[Token], start: int) -> tuple[str, list[Token]] | None:
    """``(name, sequence tokens)`` of the ``for`` header at ``start``; ``None`` when it
    unpacks several names, which a key cannot be computed from ahead."""
    if start + 2 >= len(tokens) or tokens[start].type != "name":
        return None
    if tokens[start + 1].type != "name" or tokens[start + 1].value != "in":
        return None
    sequence = []
    depth = 0
    for token in tokens[start + 2 :]:
        if token.type in ("block_end", "linestatement_end"):
            break
        if depth == 0 and token.type == "name" and token.value in ("if", "recursive"):
            break
        depth += token.type in _OPENING
        depth -= token.type in _CLOSING
        sequence.append(token)
    # Only plain lookups (cards, page.cards, rows[0]): the sequence is evaluated again
    # at each call, so one that calls a function or a filter is left alone.
    if not sequence or any(token.type not in _LOOKUP for token in sequence):
        return None
    return tokens[start].value, sequence


def _loop_argument(
    tokens: list[Token], index: int, name: str, sequence: list[Token]
) -> list[Token]:
    """``_neuraldraft_loop=((sequence), "name", "source of the key")``, or ``[]`` when the
    key's expression cannot be written back as source (``*args``)."""
    key = []
    depth = 0
    for token in tokens[index + 2 :]:
        if depth == 0 and token.type in ("comma", "rparen"):
            break
        if depth == 0 and token.type in ("mul", "pow", "assign"):
            return []
        depth += token.type in _OPENING
        depth -= token.type in _CLOSING
        key.append(token)
    if not key:
        return []
    source = " ".join(repr(t.value) if t.type == "string" else str(t.value) for t in key)
    line = tokens[index].lineno
    return [
        Token(line, "name", _LOOP_ARGUMENT),
        Token(line, "assign", "="),
        Token(line, "lparen", "("),
        Token(line, "lparen", "("),
        *(Token(line, token.type, token.value) for token in sequence),
        Token(line, "rparen", ")"),
        Token(line, "comma", ","),
        Token(line, "string", name),
        Token(line, "comma", ","),
        Token(line, "string", source),
        Token(line, "rparen", ")"),
    ]


def _hidden_arguments(
    tokens: list[Token], position: int, hidden: list[list[Token]]
) -> list[Token]:
    """The hidden keyword arguments, with the commas the call needs around them."""
    line = tokens[position].lineno
    inserted: list[Token] = []
    for argument in filter(None, hidden):
        if inserted:
            inserted.append(Token(line, "comma", ","))
        inserted += argument
    if tokens[position - 1].type not in ("comma", "lparen"):
        inserted.insert(0, Token(line, "comma", ","))
    if tokens[position].type == "pow":
        inserted.append(Token(line, "comma", ","))
    return inserted
