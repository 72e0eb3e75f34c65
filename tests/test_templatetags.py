"""The ``neuraldraft`` tag library: markup, escaping, placeholders and queries per template."""

from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.template import Context, Engine, RequestContext, Template, TemplateSyntaxError
from django.template.loader import render_to_string
from django.test import override_settings

from django_neuraldraft import resolver
from django_neuraldraft.models import ImageKey, Job
from tests.helpers import add_version, create_image_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cold_cache", "shared_cache")]

API_KEY = "ndsk_test_" + "T" * 32


@pytest.fixture
def shared_cache(settings):
    """Count queries as a site with a shared cache has them (see tests/test_resolver.py)."""
    settings.NEURALDRAFT = {"API_KEY": API_KEY, "SHARED_CACHE": True}


HERO = (
    '<img src="/media/neuraldraft/hero.background/first.png" width="1600" height="900" '
    'alt="Dunes at dawn"'
)

#: A page of three templates: a child, its parent and an include rendered three times.
PAGE = {
    "base.html": "{% load neuraldraft %}"
    '{% neuraldraft_image "site.logo" %}{% block body %}{% endblock %}',
    "page.html": '{% extends "base.html" %}{% load neuraldraft %}'
    '{% block body %}{% neuraldraft_image "page.hero" %}'
    '{% for n in "123" %}{% include "card.html" %}{% endfor %}'
    "{% endblock %}",
    "card.html": '{% load neuraldraft %}{% neuraldraft_url "card" %}',
}


@pytest.fixture
def hero():
    return create_image_key(
        "hero.background",
        file="neuraldraft/hero.background/first.png",
        alt_text="Dunes at dawn",
        dominant_color="#c08040",
    )


def render(source: str, **context) -> str:
    return Template("{% load neuraldraft %}" + source).render(Context(context))


def svg_of(html: str) -> str:
    """The SVG document inside the first ``data:image/svg+xml`` URL of ``html``."""
    return unquote(re.search(r"data:image/svg\+xml,([^\"]+)", html)[1])


class TestImageTag:
    def test_the_image_on_show_with_its_size_and_alt_text(self, hero):
        assert render('{% neuraldraft_image "hero.background" %}') == f"{HERO}>"

    def test_attributes_pass_through_in_order(self, hero):
        html = render(
            '{% neuraldraft_image "hero.background" class="hero wide" loading="lazy" '
            "data-slot=slot fetchpriority=priority %}",
            slot=3,
            priority="high",
        )

        assert (
            html == f'{HERO} class="hero wide" loading="lazy" data-slot="3" fetchpriority="high">'
        )

    def test_true_gives_a_bare_attribute_and_false_or_none_leaves_it_out(self, hero):
        html = render(
            '{% neuraldraft_image "hero.background" hidden=True draggable=False title=None %}'
        )

        assert html == f"{HERO} hidden>"

    def test_the_template_may_set_alt_width_and_height(self, hero):
        html = render(
            '{% neuraldraft_image "hero.background" alt="Sand" width=800 height="450" %}'
        )

        assert html == (
            '<img src="/media/neuraldraft/hero.background/first.png" '
            'alt="Sand" width="800" height="450">'
        )

    def test_hostile_alt_text_from_the_database_is_escaped(self):
        create_image_key("evil", file="evil.png", alt_text='"><script>alert(1)</script>')

        html = render('{% autoescape off %}{% neuraldraft_image "evil" %}{% endautoescape %}')

        assert 'alt="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">' in html
        assert "<script>" not in html

    def test_hostile_attribute_values_are_escaped(self, hero):
        html = render(
            '{% neuraldraft_image "hero.background" title=title %}', title='x" onerror="1'
        )

        assert html == f'{HERO} title="x&quot; onerror=&quot;1">'

    def test_the_key_may_be_a_variable(self, hero):
        assert render("{% neuraldraft_image page.image %}", page={"image": "hero.background"}) == (
            f"{HERO}>"
        )

    def test_the_key_may_be_image_data_resolved_in_the_view(self, hero, django_assert_num_queries):
        images = resolver.resolve_many(["hero.background"])

        with django_assert_num_queries(0):
            html = render("{% neuraldraft_image image %}", image=images["hero.background"])

        assert html == f"{HERO}>"

    @pytest.mark.parametrize(
        ("tag", "message"),
        [
            ("{% neuraldraft_image %}", "neuraldraft_image needs an image key"),
            ('{% neuraldraft_image "k" lazy %}', "takes attributes as name=value, not 'lazy'"),
            ('{% neuraldraft_image "k" src="x.png" %}', "sets src itself"),
            ('{% neuraldraft_image "k" on"x=1 %}', "is not an HTML attribute name"),
            ('{% neuraldraft_image "k" alt="a" alt="b" %}', "'alt' is given twice"),
        ],
    )
    def test_mistakes_are_reported_when_the_template_compiles(self, tag, message):
        with pytest.raises(TemplateSyntaxError, match=re.escape(message)):
            render(tag)


class TestUrlTag:
    def test_the_url_of_the_image_on_show(self, hero):
        assert render('{% neuraldraft_url "hero.background" %}') == (
            "/media/neuraldraft/hero.background/first.png"
        )

    def test_as_a_variable(self, hero):
        html = render(
            '{% neuraldraft_url key as url %}<div style="background-image: url({{ url }})">',
            key="hero.background",
        )

        assert html == (
            '<div style="background-image: url(/media/neuraldraft/hero.background/first.png)">'
        )

    def test_a_key_without_an_image_gives_the_placeholder(self):
        url = render('{% neuraldraft_url "nothing.here" %}')

        assert url.startswith("data:image/svg+xml,")

    @pytest.mark.parametrize("tag", ["{% neuraldraft_url %}", '{% neuraldraft_url "a" "b" %}'])
    def test_one_key(self, tag):
        with pytest.raises(TemplateSyntaxError, match="takes one image key"):
            render(tag)


class TestImageDataTag:
    def test_data_for_markup_of_your_own(self, hero):
        html = render(
            '{% neuraldraft_image_data "hero.background" as img %}'
            "{{ img.key }} {{ img.url }} {{ img.width }}x{{ img.height }} {{ img.alt }} "
            "{{ img.color }} {{ img.ready }}"
        )

        assert html == (
            "hero.background /media/neuraldraft/hero.background/first.png 1600x900 "
            "Dunes at dawn #c08040 True"
        )

    def test_a_key_without_an_image_gives_the_placeholder_and_says_so(self):
        create_image_key("card.one", aspect_ratio="1:1")

        html = render(
            '{% neuraldraft_image_data "card.one" as img %}'
            "{{ img.width }}x{{ img.height }} {{ img.status }} {{ img.ready }}"
        )

        assert html == "1024x1024 empty False"

    def test_as_is_required(self):
        with pytest.raises(TemplateSyntaxError, match='needs "as"'):
            render('{% neuraldraft_image_data "hero.background" %}')


class Shouting(dict):
    """A mapping of its own: Django reads it with ``[]``, and so must the tags."""

    def __getitem__(self, name):
        return super().__getitem__(name).upper()


class Prefixing(dict):
    def __getitem__(self, name):
        return "grid." + super().__getitem__(name)


class Subscriptable:
    """Django tries ``[]`` before attributes on anything whose type has ``__getitem__``."""

    title = "an attribute"

    def __getitem__(self, name):
        return "an item"


class CalledFirst:
    """Django calls what it finds before it looks further."""

    title = "an attribute of the callable"

    def __call__(self):
        return {"title": "what the call returns"}


class NotCalled:
    do_not_call_in_templates = True

    def __call__(self):
        return "called"

    def __str__(self):
        return "not called"


def altering():
    return "altered"


altering.alters_data = True


class Silent(Exception):
    silent_variable_failure = True


class Failing:
    @property
    def title(self):
        raise Silent


class Answering(Context):
    """A context class of its own, which answers every name itself."""

    def __getitem__(self, name):
        return {"title": "from the context"}


def render_in(source: str, context: Context, string_if_invalid: str = "") -> str:
    engine = Engine(
        libraries={"neuraldraft": "django_neuraldraft.templatetags.neuraldraft"},
        string_if_invalid=string_if_invalid,
    )
    return engine.from_string("{% load neuraldraft %}" + source).render(context)


def title_of(expression: str, string_if_invalid: str = "", **context) -> str:
    """What ``{% neuraldraft_image ... title=<expression> %}`` adds to the ``<img>``."""
    source = f'{{% neuraldraft_image "hero.background" title={expression} %}}'
    html = render_in(source, Context(context), string_if_invalid)
    assert html.startswith(HERO), html
    return html[len(HERO) : -1]


class TestVariables:
    """Tag arguments that are variables resolve as Django resolves ``{{ variable }}``."""

    @pytest.mark.parametrize(
        ("expression", "context", "title"),
        [
            ("card.title", {"card": {"title": "Dunes"}}, ' title="Dunes"'),
            ("card.title", {"card": SimpleNamespace(title="Dunes")}, ' title="Dunes"'),
            ("card.title", {"card": Shouting(title="Dunes")}, ' title="DUNES"'),
            ("card.title", {"card": Subscriptable()}, ' title="an item"'),
            ("card.title", {"card": {"title": lambda: "Called"}}, ' title="Called"'),
            ("card.title", {"card": {"title": NotCalled()}}, ' title="not called"'),
            ("card.title", {"card": {"title": altering}}, ' title=""'),
            ("card", {"card": lambda: "Called"}, ' title="Called"'),
            ("card.title", {"card": CalledFirst()}, ' title="what the call returns"'),
            (
                "page.card.title",
                {"page": {"card": CalledFirst()}},
                ' title="what the call returns"',
            ),
            ("page.card.title", {"page": {"card": lambda: {"title": "Dunes"}}}, ' title="Dunes"'),
            ("cards.0.title", {"cards": [{"title": "Dunes"}]}, ' title="Dunes"'),
            ("card.missing", {"card": {"title": "Dunes"}}, ' title=""'),
            ("nothing.title", {}, ' title=""'),
            ("card.title", {"card": Failing()}, ' title=""'),
            ("flag", {"flag": True}, " title"),
            ("None", {}, ""),
        ],
    )
    def test_as_django_resolves_them(self, hero, expression, context, title):
        assert title_of(expression, **context) == title

    @pytest.mark.parametrize(
        ("expression", "context", "title"),
        [
            ("card.missing", {"card": {"title": "Dunes"}}, ' title="INVALID card.missing"'),
            ("nothing.title", {}, ' title="INVALID nothing.title"'),
            ("card.title", {"card": {"title": altering}}, ' title="INVALID %s"'),
            ("card.title", {"card": Failing()}, ' title="INVALID %s"'),
        ],
    )
    def test_what_fails_gives_string_if_invalid(self, hero, expression, context, title):
        assert title_of(expression, "INVALID %s", **context) == title

    def test_an_attribute_error_of_a_property_is_raised(self, hero):
        class Broken:
            @property
            def title(self):
                raise AttributeError("broken")

        with pytest.raises(AttributeError, match="broken"):
            title_of("card.title", card=Broken())

    @pytest.mark.parametrize(
        ("inner", "title"), [({"title": "inner"}, "inner"), (Subscriptable(), "an item")]
    )
    def test_the_innermost_scope_wins(self, hero, inner, title):
        source = (
            '{% with card=inner %}{% neuraldraft_image "hero.background" title=card.title %}'
            "{% endwith %}"
        )

        html = render_in(source, Context({"card": {"title": "outer"}, "inner": inner}))

        assert html == f'{HERO} title="{title}">'

    def test_a_context_class_of_its_own_is_asked(self, hero):
        source = '{% neuraldraft_image "hero.background" title=card.title %}'

        html = render_in(source, Answering({"card": {"title": "Dunes"}}))

        assert html == f'{HERO} title="from the context">'

    def test_a_request_context(self, hero, rf):
        source = '{% neuraldraft_image "hero.background" title=card.title %}'

        html = render_in(source, RequestContext(rf.get("/"), {"card": {"title": "Dunes"}}))

        assert html == f'{HERO} title="Dunes">'

    @pytest.mark.parametrize(
        "card",
        [
            lambda n: SimpleNamespace(key=f"grid.{n}"),
            lambda n: SimpleNamespace(key=lambda: f"grid.{n}"),
            lambda n: Prefixing(key=str(n)),
        ],
        ids=["attribute", "method", "mapping"],
    )
    def test_keys_of_a_loop_cost_one_query_however_they_are_found(
        self, card, django_assert_num_queries
    ):
        for n in range(3):
            create_image_key(f"grid.{n}", file=f"grid.{n}.png")
        source = "{% for card in cards %}{% neuraldraft_url card.key %} {% endfor %}"

        with django_assert_num_queries(1):
            html = render_in(source, Context({"cards": [card(n) for n in range(3)]}))

        assert html.count("/media/grid.") == 3


class TestPlaceholders:
    @pytest.mark.parametrize(
        ("ratio", "width", "height"),
        [
            ("16:9", 1024, 576),
            ("9:16", 576, 1024),
            ("1:1", 1024, 1024),
            ("4:5", 819, 1024),
            ("4:3", 1024, 768),
            ("3:2", 1024, 683),
        ],
    )
    def test_an_svg_of_the_keys_aspect_ratio(self, ratio, width, height):
        create_image_key("card.one", aspect_ratio=ratio, alt_text="A card")

        html = render('{% neuraldraft_image "card.one" class="card" %}')

        across, down = ratio.split(":")
        assert html.endswith(f'" width="{width}" height="{height}" alt="A card" class="card">')
        assert f'viewBox="0 0 {across} {down}"' in svg_of(html)
        assert 'fill-opacity=".15"' in svg_of(html)

    @override_settings(NEURALDRAFT={"API_KEY": API_KEY, "DEFAULT_ASPECT_RATIO": "4:3"})
    def test_an_unknown_key_takes_the_default_aspect_ratio(self):
        html = render('{% neuraldraft_image "nothing.here" alt="" %}')

        assert 'width="1024" height="768"' in html
        assert 'viewBox="0 0 4 3"' in svg_of(html)

    def test_while_a_generation_runs_it_is_marked_and_filled_with_the_last_colour(self):
        image_key = create_image_key("card.one", aspect_ratio="1:1")
        add_version(image_key, "removed.png", dominant_color="#336699")
        Job.objects.create(image_key=image_key, idempotency_key="idem-1")

        html = render('{% neuraldraft_image "card.one" %}')

        assert html.endswith('" width="1024" height="1024" alt="" data-neuraldraft-pending>')
        assert 'fill="#336699"' in svg_of(html)

    def test_an_image_on_show_stays_while_a_new_one_is_generated(self, hero):
        Job.objects.create(image_key=hero, idempotency_key="idem-1")

        assert render('{% neuraldraft_image "hero.background" %}') == f"{HERO}>"

    @override_settings(NEURALDRAFT={"API_KEY": API_KEY, "PLACEHOLDER": ""})
    def test_an_empty_placeholder_renders_nothing(self):
        assert render('[{% neuraldraft_image "nothing.here" %}]') == "[]"
        assert render('[{% neuraldraft_url "nothing.here" %}]') == "[]"

    @pytest.mark.parametrize(
        ("placeholder", "url"),
        [
            ("https://cdn.example.com/none.png", "https://cdn.example.com/none.png"),
            ("/media/none.png", "/media/none.png"),
            ("img/none.svg", "/static/img/none.svg"),
        ],
    )
    def test_a_url_or_a_static_path(self, placeholder, url):
        with override_settings(NEURALDRAFT={"API_KEY": API_KEY, "PLACEHOLDER": placeholder}):
            html = render('{% neuraldraft_image "nothing.here" %}')

        assert html == f'<img src="{url}" width="1024" height="576" alt="">'

    @pytest.mark.parametrize(
        ("key", "reason"),
        [
            ("nothing.here", "there is no image key 'nothing.here'; create it"),
            ("card.one", "image key 'card.one' has no image yet; generate one"),
            ("Not A Key", "'Not A Key' is not a valid image key"),
        ],
    )
    def test_with_debug_a_comment_says_why(self, key, reason):
        create_image_key("card.one")

        with override_settings(DEBUG=True):
            html = render("{% neuraldraft_image key %}", key=key)

        assert html.startswith(f"<!-- neuraldraft: {reason}")
        assert "--><img src=" in html

    def test_without_debug_there_is_no_comment(self):
        assert render('{% neuraldraft_image "nothing.here" %}').startswith("<img ")

    @override_settings(DEBUG=True)
    def test_a_hostile_key_cannot_close_the_comment(self):
        html = render("{% neuraldraft_image key %}", key="--!><script>alert(1)</script>-->")

        assert html.count(">") == 2  # the end of the comment and of the <img>
        assert "<script>" not in html


class TestQueries:
    def test_fifty_tags_cost_one_query_cold_and_none_warm(self, django_assert_num_queries):
        for n in range(50):
            create_image_key(f"grid.{n}", file=f"grid/{n}.png")
        template = Template(
            "{% load neuraldraft %}"
            + "".join(f'{{% neuraldraft_image "grid.{n}" alt="" %}}' for n in range(50))
        )

        with django_assert_num_queries(1):
            cold = template.render(Context())
        with django_assert_num_queries(0):
            warm = template.render(Context())

        assert cold == warm
        assert cold.count('<img src="/media/grid/') == 50

    def test_variables_that_resolve_before_the_first_tag_join_the_batch(
        self, hero, django_assert_num_queries
    ):
        create_image_key("hero.side", file="side.png")
        source = (
            '{% neuraldraft_image "hero.background" %}'
            "{% neuraldraft_url page.side %}{% neuraldraft_image_data page.missing as x %}"
        )

        with django_assert_num_queries(1):
            html = render(source, page={"side": "hero.side"})

        assert html.endswith("/media/side.png")

    def test_keys_from_a_loop_cost_what_literal_keys_cost(self, hero, django_assert_num_queries):
        cards = [{"key": f"grid.{n}"} for n in range(30)]
        for card in cards[:20]:
            create_image_key(card["key"], file=f"{card['key']}.png")
        source = (
            '{% neuraldraft_image "hero.background" %}'
            "{% for card in cards %}{% neuraldraft_url card.key %} {% endfor %}"
        )

        with django_assert_num_queries(1):
            cold = render(source, cards=cards)
        with django_assert_num_queries(0):
            warm = render(source, cards=cards)

        assert cold == warm
        assert cold.count("/media/grid.") == 20

    def test_the_first_tag_inside_a_loop_fetches_the_whole_loop(self, django_assert_num_queries):
        for n in range(5):
            create_image_key(f"grid.{n}", file=f"grid.{n}.png")
        source = "{% for key in keys %}{% neuraldraft_url key %} {% endfor %}"

        with django_assert_num_queries(1):
            html = render(source, keys=[f"grid.{n}" for n in range(5)])

        assert html.count("/media/grid.") == 5

    def test_nested_loops_a_with_and_unpacking(self, django_assert_num_queries):
        for n in range(6):
            create_image_key(f"grid.{n}", file=f"grid.{n}.png")
        sections = [
            {"rows": [("a", f"grid.{n}") for n in range(3)]},
            {"rows": [("b", f"grid.{n}") for n in range(3, 6)]},
        ]
        source = (
            "{% with prefix='grid.' %}{% for section in sections %}"
            "{% for label, key in section.rows %}{% neuraldraft_url key %} {% endfor %}"
            "{% endfor %}{% endwith %}"
        )

        with django_assert_num_queries(1):
            html = render(source, sections=sections)

        assert html.count("/media/grid.") == 6

    def test_a_loop_over_a_name_set_during_the_render_costs_one_batch(
        self, hero, django_assert_num_queries
    ):
        for n in range(4):
            create_image_key(
                f"grid.{n}", file=f"grid.{n}.png", alt_text="even" if n % 2 else "odd"
            )
        cards = [{"key": f"grid.{n}", "kind": n % 2} for n in range(4)]
        source = (
            '{% neuraldraft_image "hero.background" %}'
            "{% regroup cards by kind as kinds %}{% for kind in kinds %}"
            "{% for card in kind.list %}{% neuraldraft_url card.key %} {% endfor %}{% endfor %}"
        )

        with django_assert_num_queries(2):
            html = render(source, cards=cards)

        assert html.count("/media/grid.") == 4

    def test_a_generator_is_never_iterated_twice(self, django_assert_num_queries):
        for n in range(3):
            create_image_key(f"grid.{n}", file=f"grid.{n}.png")
        source = "{% for key in keys %}{% neuraldraft_url key %} {% endfor %}"

        with django_assert_num_queries(3):
            html = render(source, keys=(f"grid.{n}" for n in range(3)))

        assert html.count("/media/grid.") == 3

    def test_a_queryset_the_loop_evaluates_anyway_is_evaluated_once(
        self, django_assert_num_queries
    ):
        for n in range(3):
            create_image_key(f"grid.{n}", file=f"grid.{n}.png")
        source = "{% for image_key in keys %}{% neuraldraft_url image_key.key %} {% endfor %}"

        with django_assert_num_queries(2):
            html = render(source, keys=ImageKey.objects.order_by("key"))
        with django_assert_num_queries(1):
            render(source, keys=ImageKey.objects.order_by("key"))

        assert html.count("/media/grid.") == 3

    def test_a_queryset_behind_an_if_is_left_for_the_template_to_evaluate(
        self, hero, django_assert_num_queries
    ):
        source = (
            '{% neuraldraft_image "hero.background" %}{% if show %}'
            "{% for image_key in keys %}{% neuraldraft_url image_key.key %}{% endfor %}{% endif %}"
        )

        with django_assert_num_queries(1):
            render(source, show=False, keys=ImageKey.objects.all())

    def test_a_view_hands_over_what_it_resolved(self, hero, django_assert_num_queries):
        images = resolver.resolve_many(["hero.background"])
        cards = [{"image": images["hero.background"]}] * 3

        with django_assert_num_queries(0):
            html = render(
                "{% for card in cards %}{% neuraldraft_picture card.image %}{% endfor %}",
                cards=cards,
            )

        assert html.count("<picture>") == 3

    @override_settings(
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", PAGE)]},
            }
        ]
    )
    def test_a_page_of_several_templates_costs_one_query(self, django_assert_num_queries):
        for key in ("site.logo", "page.hero", "card"):
            create_image_key(key, file=f"{key}.png")

        with django_assert_num_queries(1):
            cold = render_to_string("page.html")
        with django_assert_num_queries(0):
            warm = render_to_string("page.html")

        assert cold == warm
        assert warm.count("/media/card.png") == 3

    @override_settings(
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    "loaders": [
                        (
                            "django.template.loaders.locmem.Loader",
                            {
                                "list.html": "{% for card in cards %}"
                                '{% include "card.html" with key=card.key %}{% endfor %}',
                                "card.html": "{% load neuraldraft %}{% neuraldraft_url key %} ",
                            },
                        )
                    ]
                },
            }
        ]
    )
    def test_an_include_in_a_loop_costs_one_query(self, django_assert_num_queries):
        for n in range(4):
            create_image_key(f"grid.{n}", file=f"grid.{n}.png")

        with django_assert_num_queries(1):
            html = render_to_string(
                "list.html", {"cards": [{"key": f"grid.{n}"} for n in range(4)]}
            )

        assert html.count("/media/grid.") == 4


@override_settings(
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "page.html": "{% load neuraldraft %}{% neuraldraft_url 'page.hero' %} "
                            "{% include partial %}",
                            "partial.html": "{% load neuraldraft %}"
                            "{% for key in keys %}{% neuraldraft_url key %} {% endfor %}",
                        },
                    )
                ]
            },
        }
    ]
)
def test_a_template_included_by_a_variable_costs_one_batch_of_its_own(
    django_assert_num_queries,
):
    for key in ("page.hero", "grid.0", "grid.1", "grid.2"):
        create_image_key(key, file=f"{key}.png")
    context = {"partial": "partial.html", "keys": ["grid.0", "grid.1", "grid.2"]}

    with django_assert_num_queries(2):
        html = render_to_string("page.html", context)
    with django_assert_num_queries(0):
        render_to_string("page.html", context)

    assert html.count("/media/") == 4


def with_renditions(key: str, formats=("avif", "webp", "jpeg"), widths=(640, 1280)):
    """A key whose 1600x900 JPEG has renditions, their files saved to the test storage."""
    image_key = create_image_key(key, file=f"neuraldraft/{key}/full.jpg", alt_text="Dunes")
    version = image_key.current
    version.mime_type = "image/jpeg"
    version.renditions = []
    for kind in formats:
        for width in widths:
            name = f"neuraldraft/{key}/{width}w.{kind}"
            default_storage.delete(name)
            default_storage.save(name, ContentFile(b"x" * width))
            version.renditions.append(
                {
                    "width": width,
                    "height": width * 9 // 16,
                    "format": kind,
                    "name": name,
                    "bytes": width,
                }
            )
    version.save()
    return image_key


FULL = "/media/neuraldraft/hero.background/full.jpg"
JPEG_SRCSET = (
    "/media/neuraldraft/hero.background/640w.jpeg 640w, "
    "/media/neuraldraft/hero.background/1280w.jpeg 1280w, "
    f"{FULL} 1600w"
)


class TestSrcset:
    def test_sizes_adds_the_srcset_of_the_images_own_format(self):
        with_renditions("hero.background")

        html = render('{% neuraldraft_image "hero.background" sizes="100vw" loading="lazy" %}')

        assert html == (
            f'<img src="{FULL}" srcset="{JPEG_SRCSET}" sizes="100vw" width="1600" height="900" '
            'alt="Dunes" loading="lazy">'
        )

    def test_without_sizes_nothing_changes(self):
        with_renditions("hero.background")

        assert render('{% neuraldraft_image "hero.background" %}') == (
            f'<img src="{FULL}" width="1600" height="900" alt="Dunes">'
        )

    def test_default_sizes(self, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DEFAULT_SIZES": "50vw"}
        with_renditions("hero.background")

        html = render('{% neuraldraft_image "hero.background" %}')

        assert f'srcset="{JPEG_SRCSET}" sizes="50vw"' in html

    def test_an_image_without_renditions_has_no_srcset(self, hero):
        assert render('{% neuraldraft_image "hero.background" sizes="100vw" %}') == f"{HERO}>"

    def test_malformed_renditions_are_skipped(self):
        image_key = with_renditions("hero.background", formats=("jpeg",), widths=(640,))
        version = image_key.current
        version.renditions += [
            {"width": "wide", "format": "jpeg", "name": "x.jpeg"},
            {"width": 320, "format": "bmp", "name": "x.bmp"},
            {"width": 320, "format": "jpeg", "name": ""},
            "not a dict",
        ]
        version.save()

        html = render('{% neuraldraft_image "hero.background" sizes="100vw" %}')

        assert f'srcset="/media/neuraldraft/hero.background/640w.jpeg 640w, {FULL} 1600w"' in html


class TestPictureTag:
    def test_a_source_per_modern_format_and_the_img_fallback(self):
        with_renditions("hero.background")

        html = render(
            '{% neuraldraft_picture "hero.background" sizes="(min-width: 1024px) 50vw, 100vw" '
            'alt="The studio" loading="lazy" class="hero" %}'
        )

        sizes = 'sizes="(min-width: 1024px) 50vw, 100vw"'
        path = "/media/neuraldraft/hero.background"
        assert html == (
            "<picture>"
            f'<source type="image/avif" srcset="{path}/640w.avif 640w, {path}/1280w.avif 1280w" '
            f"{sizes}>"
            f'<source type="image/webp" srcset="{path}/640w.webp 640w, {path}/1280w.webp 1280w" '
            f"{sizes}>"
            f'<img src="{FULL}" srcset="{JPEG_SRCSET}" {sizes} width="1600" height="900" '
            'alt="The studio" loading="lazy" class="hero">'
            "</picture>"
        )

    def test_a_source_only_for_the_formats_that_exist(self):
        with_renditions("hero.background", formats=("webp", "jpeg"))

        html = render('{% neuraldraft_picture "hero.background" %}')

        assert 'type="image/avif"' not in html
        assert html.count("<source ") == 1
        assert "sizes=" not in html

    def test_without_renditions_the_img_alone(self, hero):
        assert render('{% neuraldraft_picture "hero.background" sizes="100vw" %}') == (
            f"<picture>{HERO}></picture>"
        )

    def test_hostile_values_are_escaped(self, hero):
        html = render(
            '{% neuraldraft_picture "hero.background" sizes=sizes title=title %}',
            sizes='100vw"><script>',
            title='x" onerror="1',
        )

        assert "<script>" not in html
        assert 'title="x&quot; onerror=&quot;1"' in html

    def test_a_key_without_an_image_gives_the_placeholder(self):
        html = render('{% neuraldraft_picture "nothing.here" alt="" %}')

        assert html.startswith('<picture><img src="data:image/svg+xml,')
        assert html.endswith('" width="1024" height="576" alt=""></picture>')

    @override_settings(NEURALDRAFT={"API_KEY": API_KEY, "PLACEHOLDER": ""})
    def test_an_empty_placeholder_renders_nothing(self):
        assert render('[{% neuraldraft_picture "nothing.here" %}]') == "[]"

    def test_fifty_pictures_cost_one_query_cold_and_none_warm(self, django_assert_num_queries):
        for n in range(50):
            with_renditions(f"grid.{n}", widths=(640,))
        template = Template(
            "{% load neuraldraft %}"
            + "".join(f'{{% neuraldraft_picture "grid.{n}" sizes="33vw" %}}' for n in range(50))
        )

        with django_assert_num_queries(1):
            cold = template.render(Context())
        with django_assert_num_queries(0):
            warm = template.render(Context())

        assert cold == warm
        assert cold.count('<source type="image/avif"') == 50

    @pytest.mark.parametrize(
        ("tag", "message"),
        [
            ("{% neuraldraft_picture %}", "neuraldraft_picture needs an image key"),
            ('{% neuraldraft_picture "k" src="x.png" %}', "sets src itself"),
        ],
    )
    def test_mistakes_are_reported_when_the_template_compiles(self, tag, message):
        with pytest.raises(TemplateSyntaxError, match=re.escape(message)):
            render(tag)
