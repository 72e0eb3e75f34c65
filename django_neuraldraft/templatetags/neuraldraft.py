"""The ``neuraldraft`` tag library: images by key, as ``<img>``, ``<picture>``, URLs or data.

``{% load neuraldraft %}`` gives ``neuraldraft_image``, ``neuraldraft_picture``,
``neuraldraft_url`` and ``neuraldraft_image_data``. The first of them rendered in
a page resolves, in one batch (one cache round trip, at most one query), every
key the page will need: the literal keys of the page's templates (its parents
and includes named by constant strings) and the keys that its variables and
loops give (a :class:`Plan`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from django import template
from django.template.base import FilterExpression, Node, NodeList, Parser, Token, Variable
from django.template.context import Context, RequestContext
from django.template.defaulttags import ForNode, WithNode
from django.template.loader_tags import (
    BlockNode,
    ExtendsNode,
    IncludeNode,
    construct_relative_path,
)
from django.utils.html import conditional_escape

from .. import conf
from ..rendering import (
    COMPUTED_ATTRIBUTES,
    attribute_html,
    for_display,
    img_html,
    picture_html,
    replayable,
    srcset_html,
    validate_attribute_name,
)
from ..resolver import ImageData, RenderMemo

register = template.Library()

#: Where a render keeps its RenderMemo: the render context's bottom dict, which
#: lives as long as the whole render, includes and parents included (Django's
#: own IncludeNode keeps its template cache there too).
_MEMO = "neuraldraft.memo"

_NOT_CONSTANT = object()


def _constant(expression: FilterExpression) -> Any:
    """The value of ``expression`` if it needs no context (a plain literal), else _NOT_CONSTANT."""
    if expression.filters:
        return _NOT_CONSTANT
    var = expression.var
    if isinstance(var, Variable):
        return var.literal if var.lookups is None and not var.translate else _NOT_CONSTANT
    # A translated literal is a lazy string, to be resolved in each render's language.
    return var if isinstance(var, str) else _NOT_CONSTANT


#: Django's own contexts, whose ``context[name]`` is the top-down search of ``dicts``.
_PLAIN_CONTEXTS = frozenset({Context, RequestContext})

_NOT_FOUND = object()


class _Lookup:
    """A tag argument, resolved as Django resolves it, with a shortcut for a plain path of names.

    ``card.key`` or ``alt`` is most of what a page passes a tag, once per
    loop item. When each name is a ``dict`` key or an attribute of an object
    that is not subscriptable, and nothing on the way is callable, the value
    is what Django's lookup would find, at a fraction of its cost; anything
    else (a missing name, a callable, a list index, a mapping of another type,
    a context class of its own) goes through ``FilterExpression.resolve``.
    """

    __slots__ = ("expression", "first", "rest")

    def __init__(self, expression: FilterExpression) -> None:
        self.expression = expression
        path = _path_of(expression)
        #: The context variable (``card``), if the expression is a plain path of names.
        self.first = path[0] if path else None
        #: The names looked up on it, one after the other (``("key",)``).
        self.rest = path[1:]

    def resolve(self, context: Context, ignore_failures: bool = False) -> Any:
        """What ``FilterExpression.resolve`` gives; Django's own contexts are searched
        as ``context[name]`` searches them, any other may answer in its own way."""
        first = self.first
        if first is not None and type(context) in _PLAIN_CONTEXTS:
            for layer in reversed(context.dicts):
                if first in layer:
                    value = _follow(layer[first], self.rest)
                    if value is not _NOT_FOUND:
                        return value
                    break
        return self.expression.resolve(context, ignore_failures)

    def reads(self, names: list[str]) -> bool:
        """Whether the value is found on the one name that ``names`` binds (``card.key``)."""
        return self.first is not None and names == [self.first]

    def strings_on(self, items: Iterable[Any]) -> Iterator[str]:
        """The values that are strings, with only the first name (see :meth:`reads`) bound
        to each of ``items`` in turn; a lookup that fails gives nothing."""
        for item in items:
            value = _follow(item, self.rest)
            if value is _NOT_FOUND:
                value = _quietly(self.expression.var.resolve, {self.first: item})
            if isinstance(value, str):
                yield value


def _path_of(expression: FilterExpression) -> tuple[str, ...]:
    """The names ``expression`` looks up one after the other, or ``()`` when it does
    anything more: a filter or a translation changes the value, a literal has none."""
    var = expression.var
    if expression.filters or not isinstance(var, Variable) or var.translate:
        return ()
    return var.lookups or ()


def _follow(current: Any, names: tuple[str, ...]) -> Any:
    """``current`` looked up by ``names``, or _NOT_FOUND where Django's lookup might differ.

    An attribute that raises is left to Django's lookup, which reads it again and
    decides what the error means (``silent_variable_failure``, a missing name).
    """
    for name in names:
        if callable(current):
            return _NOT_FOUND
        if type(current) is dict:
            if name not in current:
                return _NOT_FOUND
            current = current[name]
        elif hasattr(type(current), "__getitem__"):
            return _NOT_FOUND
        else:
            try:
                current = getattr(current, name)
            except Exception:
                return _NOT_FOUND
    return _NOT_FOUND if callable(current) else current


class _Loop(NamedTuple):
    """``{% for <names> in <sequence> %}`` around a key."""

    names: list[str]
    sequence: FilterExpression


class _With(NamedTuple):
    """``{% with %}`` or ``{% include ... with ... [only] %}`` around a key."""

    values: dict[str, FilterExpression]
    isolated: bool = False


class _Planned(NamedTuple):
    """A key given as a variable, with what surrounds it, outermost first."""

    key: _Lookup
    scopes: tuple[_Loop | _With, ...]
    #: Behind an ``{% if %}`` or another tag that may not render it: then a
    #: QuerySet that nothing has evaluated yet is left alone.
    conditional: bool


class Plan:
    """Every key a template and the templates it names may need, found by walking its nodes.

    Built once per template object (the cached loader keeps them), used at
    each render: literal keys as they are, variable keys resolved in the
    render's context, looping over each enclosing ``{% for %}`` sequence that
    can be iterated twice at no cost (a list, a tuple, a QuerySet already
    evaluated, or one the loop is certain to evaluate anyway).
    """

    def __init__(self, root: template.Template) -> None:
        self.literals: list[str] = []
        self.expressions: list[_Planned] = []
        self.by_node: dict[ImageKeyNode, list[_Planned]] = {}
        self.templates: set[Any] = set()
        self._walk_template(root, (), False)

    def keys(self, context: Context) -> list[str]:
        keys = list(self.literals)
        for planned in self.expressions:
            keys.extend(_expand(planned.key, planned.scopes, planned.conditional, context))
        return keys

    def _walk_template(self, found: Any, scopes: tuple, conditional: bool) -> None:
        identity = template_identity(found)
        if identity in self.templates:
            return
        self.templates.add(identity)
        self._walk(found.nodelist, scopes, conditional, found.engine)

    def _walk(self, nodelist: NodeList, scopes: tuple, conditional: bool, engine: Any) -> None:
        for node in nodelist:
            if isinstance(node, ImageKeyNode):
                self._add(node, scopes, conditional)
            elif isinstance(node, ForNode):
                # django-stubs types these attributes more loosely than ForNode sets them.
                found: Any = node
                loop = _Loop(found.loopvars, found.sequence)
                self._walk(found.nodelist_loop, (*scopes, loop), conditional, engine)
                self._walk(found.nodelist_empty, scopes, True, engine)
            elif isinstance(node, WithNode):
                inner = (*scopes, _With(node.extra_context))
                self._walk(node.nodelist, inner, conditional, engine)
            elif isinstance(node, IncludeNode):
                self._include(node, scopes, conditional, engine)
            elif isinstance(node, ExtendsNode):
                self._walk(node.nodelist, scopes, conditional, engine)
                self._extend(node, scopes, engine)
            elif isinstance(node, BlockNode):
                self._walk(node.nodelist, scopes, conditional, engine)
            else:
                for attribute in node.child_nodelists:
                    child = getattr(node, attribute, None)
                    if child:
                        self._walk(child, scopes, True, engine)

    def _add(self, node: ImageKeyNode, scopes: tuple, conditional: bool) -> None:
        if node.literal is not None:
            self.literals.append(node.literal)
        else:
            planned = _Planned(node.key, scopes, conditional)
            self.expressions.append(planned)
            self.by_node.setdefault(node, []).append(planned)

    def _include(self, node: IncludeNode, scopes: tuple, conditional: bool, engine: Any) -> None:
        name = _constant(node.template)
        if not isinstance(name, str):
            return
        name = construct_relative_path(str(node.origin.template_name), name)
        included = _quietly(engine.get_template, name)
        if included is not None:
            scope = _With(node.extra_context, node.isolated_context)
            self._walk_template(included, (*scopes, scope), conditional)

    def _extend(self, node: ExtendsNode, scopes: tuple, engine: Any) -> None:
        parent_name: Any = node.parent_name
        name = _constant(parent_name)
        if not isinstance(name, str):
            return
        parent = _quietly(engine.find_template, name, None, [node.origin])
        if parent is not None:
            # The child may override any of the parent's blocks.
            self._walk_template(parent[0], scopes, True)


def template_identity(found: Any) -> Any:
    """What tells templates apart across loads: the file, or the object for a string template."""
    origin = found.origin
    return (origin.name, origin.template_name) if origin.loader is not None else id(found)


_plans: weakref.WeakKeyDictionary[Any, Plan] = weakref.WeakKeyDictionary()


def plan_of(found: Any) -> Plan:
    plan = _plans.get(found)
    if plan is None:
        plan = _plans[found] = Plan(found)
    return plan


def _quietly(call: Any, *args: Any) -> Any:
    """``call(*args)``, or ``None`` if it raises: a plan is a guess ahead of the render,
    which reports any error itself when it gets there."""
    try:
        return call(*args)
    except Exception:
        return None


def _resolve(expression: FilterExpression, context: Context) -> Any:
    return _quietly(expression.resolve, context, True)


def _is_name(expression: FilterExpression) -> str | None:
    """The context variable that ``expression`` reads as it is (``cards``), else ``None``."""
    var = expression.var
    if expression.filters or not isinstance(var, Variable) or var.lookups is None:
        return None
    return var.lookups[0] if len(var.lookups) == 1 else None


def _expand(
    key: _Lookup,
    scopes: tuple,
    conditional: bool,
    context: Context,
    bound: frozenset[str] = frozenset(),
) -> Iterator[str]:
    """The keys ``key`` gives in ``context`` inside ``scopes``."""
    if not scopes:
        value = _quietly(key.resolve, context, True)
        if isinstance(value, str):
            yield value
        return
    scope, inner = scopes[0], scopes[1:]
    if isinstance(scope, _With):
        values = {name: _resolve(value, context) for name, value in scope.values.items()}
        if scope.isolated:
            yield from _expand(key, inner, conditional, context.new(values), bound)
        else:
            with context.push(values):
                yield from _expand(key, inner, conditional, context, bound | set(values))
        return
    sequence = _resolve(scope.sequence, context)
    # The loop evaluates a QuerySet from the context itself: doing it first costs nothing,
    # unless the loop may not run at all, or its name is one a scope here has rebound.
    name = _is_name(scope.sequence)
    evaluate = not conditional and name is not None and name not in bound
    if not replayable(sequence, evaluate=evaluate):
        # Perhaps rendering is inside this loop already, with its names bound.
        yield from _expand(key, inner, conditional, context, bound)
        return
    names = scope.names
    if not inner and key.reads(names):
        # The common case, {% for card in cards %}...card.key: no context stack per item.
        yield from key.strings_on(sequence)
        return
    inner_bound = bound | set(names)
    with context.push():
        # As ForNode does: one dict on the stack, its values replaced for each item.
        values = context.dicts[-1]
        for item in sequence:
            if len(names) == 1:
                values[names[0]] = item
            else:
                try:
                    values.update(zip(names, item, strict=True))
                except (TypeError, ValueError):
                    continue
            yield from _expand(key, inner, conditional, context, inner_bound)


def _memo(context: Context) -> RenderMemo:
    # Shared by every template of one render; django-stubs types its values as strings.
    shared: dict[Any, Any] = context.render_context.dicts[0]
    memo = shared.get(_MEMO)
    if memo is None:
        memo = shared[_MEMO] = RenderMemo()
    return memo


class ImageKeyNode(Node):
    """A tag that renders something of one image key."""

    def __init__(self, key: FilterExpression, asvar: str | None = None):
        self.key = _Lookup(key)
        self.asvar = asvar
        literal = _constant(key)
        self.literal = None if literal is _NOT_CONSTANT else str(literal)

    def image(self, context: Context) -> ImageData:
        key = self.literal if self.literal is not None else self.key.resolve(context)
        if isinstance(key, ImageData):
            return key
        if not isinstance(key, str):
            key = str(key)
        memo = _memo(context)
        data = memo.known(key)
        if data is None:
            memo.fetch([key, *self._batch(key, memo, context)])
            data = memo.get(key)
        return data

    def _batch(self, key: str, memo: RenderMemo, context: Context) -> list[str]:
        """What to resolve with ``key``, a key this render has not met yet.

        First every key of the page, from the top template's plan; then, for
        a template that plan could not reach (``{% include name %}`` with a
        variable), every key of that template; then, for a loop whose sequence
        was not known before it ran, every key of that loop.
        """
        for found in (context.template, context.render_context.template):
            if found is None:
                continue
            identity = template_identity(found)
            if identity not in memo.planned:
                plan = plan_of(found)
                memo.planned.update(dict.fromkeys(plan.templates, plan))
                return plan.keys(context)
        return self._loop_batch(memo, context)

    def _loop_batch(self, memo: RenderMemo, context: Context) -> list[str]:
        for plan in dict.fromkeys(memo.planned.values()):
            for planned in plan.by_node.get(self, ()):
                for depth, scope in enumerate(planned.scopes):
                    if not isinstance(scope, _Loop):
                        continue
                    sequence = _resolve(scope.sequence, context)
                    replay = (id(self), depth, id(sequence))
                    if replay in memo.replayed or not replayable(sequence, evaluate=False):
                        continue
                    memo.replayed.add(replay)
                    scopes = planned.scopes[depth:]
                    return list(_expand(planned.key, scopes, True, context))
        return []


class ImageNode(ImageKeyNode):
    """``<img>``, with ``srcset`` when the image has renditions and ``sizes`` is known."""

    def __init__(self, key: FilterExpression, attrs: list[tuple[str, FilterExpression]]):
        super().__init__(key)
        sizes = [value for name, value in attrs if name == "sizes"]
        self.sizes = _Lookup(sizes[0]) if sizes else None
        attrs = [(name, value) for name, value in attrs if name != "sizes"]
        self.overridden = COMPUTED_ATTRIBUTES.intersection(name for name, _value in attrs)
        # Literal attributes are escaped once, here; only variables are resolved per render.
        self.variables, self.html_after = _attribute_parts(attrs)

    def attributes(self, context: Context) -> str:
        if not self.variables:
            return self.html_after
        html = ""
        for before, name, value in self.variables:
            html += before + attribute_html(name, value.resolve(context))
        return html + self.html_after

    def sizes_of(self, context: Context) -> Any:
        """The tag's ``sizes``, else ``DEFAULT_SIZES``; ``None`` when neither is set."""
        sizes = None if self.sizes is None else self.sizes.resolve(context)
        if sizes is None or sizes is False or sizes == "":
            return conf.default_sizes()
        return sizes

    def render(self, context: Context) -> str:
        data = for_display(self.image(context))
        sizes = self.sizes_of(context)
        responsive = srcset_html(data.srcset, sizes) if sizes else ""
        return img_html(data, self.attributes(context), self.overridden, responsive)


def _attribute_parts(
    attrs: list[tuple[str, FilterExpression]],
) -> tuple[list[tuple[str, str, _Lookup]], str]:
    """The attributes whose values are variables, each as (the HTML of the literal
    attributes before it, its name, its value); then the HTML of the literal ones after."""
    variables = []
    html = ""
    for name, expression in attrs:
        value = _constant(expression)
        if value is _NOT_CONSTANT:
            variables.append((html, name, _Lookup(expression)))
            html = ""
        else:
            html += attribute_html(name, value)
    return variables, html


class PictureNode(ImageNode):
    """``<picture>``: a ``<source>`` per modern format, then the ``<img>`` fallback."""

    def render(self, context: Context) -> str:
        data = for_display(self.image(context))
        return picture_html(
            data, self.attributes(context), self.overridden, self.sizes_of(context)
        )


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


def _split_as(bits: list[str]) -> tuple[list[str], str | None]:
    if len(bits) >= 2 and bits[-2] == "as":
        return bits[:-2], bits[-1]
    return bits, None


def _key_and_attributes(
    parser: Parser, token: Token
) -> tuple[FilterExpression, list[tuple[str, FilterExpression]]]:
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
    return parser.compile_filter(bits[0]), attrs


@register.tag("neuraldraft_image")
def neuraldraft_image(parser: Parser, token: Token) -> ImageNode:
    """``{% neuraldraft_image "hero.background" alt="..." class="hero" sizes="100vw" %}``

    Renders ``<img src width height alt ...>`` from the key's image on show,
    or the placeholder. Every ``name=value`` after the key becomes an
    attribute, escaped; ``alt``, ``width`` and ``height`` replace the
    computed ones, ``True`` gives a bare attribute and ``False``/``None`` none.
    With ``sizes`` (or ``DEFAULT_SIZES``) and renditions, it adds ``srcset``.
    """
    key, attrs = _key_and_attributes(parser, token)
    return ImageNode(key, attrs)


@register.tag("neuraldraft_picture")
def neuraldraft_picture(parser: Parser, token: Token) -> PictureNode:
    """``{% neuraldraft_picture "hero.background" sizes="(min-width: 1024px) 50vw, 100vw" %}``

    Renders ``<picture>`` with a ``<source>`` for AVIF and one for WebP (each
    when the image has renditions in that format), both with ``srcset`` and
    ``sizes``, and the ``<img>`` fallback with every attribute, as
    ``neuraldraft_image`` renders it.
    """
    key, attrs = _key_and_attributes(parser, token)
    return PictureNode(key, attrs)


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
    return UrlNode(parser.compile_filter(bits[0]), asvar)


@register.tag("neuraldraft_image_data")
def neuraldraft_image_data(parser: Parser, token: Token) -> ImageDataNode:
    """``{% neuraldraft_image_data "hero.background" as img %}``

    Sets ``img`` to the key's :class:`~django_neuraldraft.resolver.ImageData`
    (``url``, ``width``, ``height``, ``alt``, ``key``, ``color``, ``status``,
    ``ready``, ``srcset``, ``sources``), placeholder included, for markup of
    your own.
    """
    (tag, *bits), asvar = _split_as(token.split_contents())
    if len(bits) != 1 or asvar is None:
        raise template.TemplateSyntaxError(f'{tag} needs "as": {{% {tag} "hero.image" as img %}}')
    return ImageDataNode(parser.compile_filter(bits[0]), asvar)
