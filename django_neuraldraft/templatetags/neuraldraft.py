"""The ``neuraldraft`` tag library: images by key, as ``<img>`` tags, URLs or data.

``{% load neuraldraft %}`` gives ``neuraldraft_image``, ``neuraldraft_url`` and
``neuraldraft_image_data``. The first of them rendered in a template resolves
every key the template names in one batch (one cache round trip, at most one
query), and the page's other templates reuse what it found.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django import template
from django.template.base import FilterExpression, Node, Parser, Token, Variable
from django.template.context import Context
from django.utils.html import conditional_escape

from ..rendering import (
    COMPUTED_ATTRIBUTES,
    attribute_html,
    for_display,
    img_html,
    validate_attribute_name,
)
from ..resolver import ImageData, RenderMemo

register = template.Library()

#: Where a render keeps its RenderMemo: the render context's bottom dict, which
#: lives as long as the whole render, includes and parents included (Django's
#: own IncludeNode keeps its template cache there too).
_MEMO = "neuraldraft.memo"

#: Where a template's TemplateKeys live while it is parsed (``Parser.extra_data``).
_EXTRA_DATA = "neuraldraft"

_NOT_CONSTANT = object()


class TemplateKeys:
    """The image keys one template names, gathered while it is parsed.

    ``literals`` are fetched with the template's first image; ``expressions``
    (keys given as variables) are tried against the context at that moment
    and fetched too when they already resolve, e.g. ``page.hero_key``. A loop
    variable does not resolve yet and is looked up when its tag renders.
    """

    def __init__(self) -> None:
        self.literals: list[str] = []
        self.expressions: list[FilterExpression] = []

    def batch(self, context: Context) -> Iterator[str]:
        yield from self.literals
        for expression in self.expressions:
            try:
                value = expression.resolve(context, ignore_failures=True)
            except Exception:
                # Only a guess ahead of time, e.g. for a tag inside an {% if %}
                # that guards this very error; the tag itself reports it if it runs.
                continue
            if isinstance(value, str):
                yield value


def _constant(expression: FilterExpression) -> Any:
    """The value of ``expression`` if it needs no context (a plain literal), else _NOT_CONSTANT."""
    if expression.filters:
        return _NOT_CONSTANT
    var = expression.var
    if isinstance(var, Variable):
        return var.literal if var.lookups is None and not var.translate else _NOT_CONSTANT
    # A translated literal is a lazy string, to be resolved in each render's language.
    return var if isinstance(var, str) else _NOT_CONSTANT


class ImageKeyNode(Node):
    """A tag that renders something of one image key."""

    def __init__(self, key: FilterExpression, keys: TemplateKeys, asvar: str | None = None):
        self.key = key
        self.asvar = asvar
        literal = _constant(key)
        self.literal = None if literal is _NOT_CONSTANT else str(literal)
        if self.literal is None:
            keys.expressions.append(key)
        else:
            keys.literals.append(self.literal)
        self.keys = keys

    def image(self, context: Context) -> ImageData:
        key = self.literal if self.literal is not None else self.key.resolve(context)
        # Shared by every template of one render; django-stubs types its values as strings.
        shared: dict[Any, Any] = context.render_context.dicts[0]
        memo = shared.get(_MEMO)
        if memo is None:
            memo = shared[_MEMO] = RenderMemo()
        return memo.get(key, self.keys.batch(context))


class ImageNode(ImageKeyNode):
    def __init__(
        self, key: FilterExpression, keys: TemplateKeys, attrs: list[tuple[str, FilterExpression]]
    ):
        super().__init__(key, keys)
        self.overridden = COMPUTED_ATTRIBUTES.intersection(name for name, _value in attrs)
        self.parts: list[str | tuple[str, FilterExpression]] = []
        for name, expression in attrs:
            value = _constant(expression)
            self.parts.append(
                (name, expression) if value is _NOT_CONSTANT else attribute_html(name, value)
            )
        # Literal attributes are escaped once, here; only variables are resolved per render.
        literals = [part for part in self.parts if isinstance(part, str)]
        self.attrs_html = "".join(literals) if len(literals) == len(self.parts) else None

    def render(self, context: Context) -> str:
        attrs_html = self.attrs_html
        if attrs_html is None:
            attrs_html = "".join(
                part
                if isinstance(part, str)
                else attribute_html(part[0], part[1].resolve(context))
                for part in self.parts
            )
        return img_html(for_display(self.image(context)), attrs_html, self.overridden)


class UrlNode(ImageKeyNode):
    def render(self, context: Context) -> str:
        url = for_display(self.image(context)).url
        if self.asvar:
            context[self.asvar] = url
            return ""
        return conditional_escape(url) if context.autoescape else url


class ImageDataNode(ImageKeyNode):
    asvar: str

    def render(self, context: Context) -> str:
        context[self.asvar] = for_display(self.image(context))
        return ""


def _template_keys(parser: Parser) -> TemplateKeys:
    keys = parser.extra_data.get(_EXTRA_DATA)
    if keys is None:
        keys = parser.extra_data[_EXTRA_DATA] = TemplateKeys()
    return keys


def _split_as(bits: list[str]) -> tuple[list[str], str | None]:
    if len(bits) >= 2 and bits[-2] == "as":
        return bits[:-2], bits[-1]
    return bits, None


@register.tag("neuraldraft_image")
def neuraldraft_image(parser: Parser, token: Token) -> ImageNode:
    """``{% neuraldraft_image "hero.background" alt="..." class="hero" loading="lazy" %}``

    Renders ``<img src width height alt ...>`` from the key's image on show,
    or the placeholder. Every ``name=value`` after the key becomes an
    attribute, escaped; ``alt``, ``width`` and ``height`` replace the
    computed ones, ``True`` gives a bare attribute and ``False``/``None`` none.
    """
    tag, *bits = token.split_contents()
    if not bits:
        raise template.TemplateSyntaxError(f'{tag} needs an image key: {{% {tag} "hero.image" %}}')
    attrs: list[tuple[str, FilterExpression]] = []
    for bit in bits[1:]:
        name, equals, value = bit.partition("=")
        if not equals or not value:
            raise template.TemplateSyntaxError(
                f"{tag} takes attributes as name=value, not {bit!r}."
            )
        try:
            validate_attribute_name(name)
        except ValueError as err:
            raise template.TemplateSyntaxError(f"{tag}: {err}") from err
        if name in (seen for seen, _value in attrs):
            raise template.TemplateSyntaxError(f"{tag}: the attribute {name!r} is given twice.")
        attrs.append((name, parser.compile_filter(value)))
    return ImageNode(parser.compile_filter(bits[0]), _template_keys(parser), attrs)


@register.tag("neuraldraft_url")
def neuraldraft_url(parser: Parser, token: Token) -> UrlNode:
    """``{% neuraldraft_url "hero.background" %}`` or ``{% neuraldraft_url key as url %}``

    The URL of the key's image on show, or of its placeholder.
    """
    (tag, *bits), asvar = _split_as(token.split_contents())
    if len(bits) != 1:
        raise template.TemplateSyntaxError(
            f'{tag} takes one image key: {{% {tag} "hero.image" %}} or {{% {tag} key as url %}}'
        )
    return UrlNode(parser.compile_filter(bits[0]), _template_keys(parser), asvar)


@register.tag("neuraldraft_image_data")
def neuraldraft_image_data(parser: Parser, token: Token) -> ImageDataNode:
    """``{% neuraldraft_image_data "hero.background" as img %}``

    Sets ``img`` to the key's :class:`~django_neuraldraft.resolver.ImageData`
    (``url``, ``width``, ``height``, ``alt``, ``key``, ``color``, ``status``,
    ``ready``), placeholder included, for markup of your own.
    """
    (tag, *bits), asvar = _split_as(token.split_contents())
    if len(bits) != 1 or asvar is None:
        raise template.TemplateSyntaxError(f'{tag} needs "as": {{% {tag} "hero.image" as img %}}')
    return ImageDataNode(parser.compile_filter(bits[0]), _template_keys(parser), asvar)
