"""The Jinja2 extension: the same images as the Django tags, batched per template too."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.template.backends.jinja2 import Jinja2
from jinja2 import DictLoader, Environment, TemplateSyntaxError

from django_neuraldraft.jinja2 import NeuralDraftExtension
from tests.helpers import create_image_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cold_cache", "shared_cache")]

EXTENSION = "django_neuraldraft.jinja2.NeuralDraftExtension"


@pytest.fixture
def shared_cache(settings):
    """Count queries as a site with a shared cache has them (see tests/test_resolver.py)."""
    settings.NEURALDRAFT = {"API_KEY": "ndsk_test_" + "T" * 32, "SHARED_CACHE": True}


@pytest.fixture
def hero():
    return create_image_key(
        "hero.background", file="neuraldraft/hero.png", alt_text='Dunes & "dawn"'
    )


@pytest.fixture
def jinja():
    """Django's Jinja2 backend, autoescaping, with the extension."""
    backend = Jinja2(
        {"NAME": "jinja2", "DIRS": [], "APP_DIRS": False, "OPTIONS": {"extensions": [EXTENSION]}}
    )
    return lambda source, **context: backend.from_string(source).render(context)


class TestFunctions:
    def test_the_same_img_as_the_django_tag(self, hero, jinja):
        django = Template(
            '{% load neuraldraft %}{% neuraldraft_image "hero.background" class="hero" %}'
        ).render(Context())

        assert jinja('{{ neuraldraft_image("hero.background", class="hero") }}') == django
        assert django == (
            '<img src="/media/neuraldraft/hero.png" width="1600" height="900" '
            'alt="Dunes &amp; &quot;dawn&quot;" class="hero">'
        )

    def test_attributes_that_are_not_identifiers_and_bare_ones(self, hero, jinja):
        html = jinja(
            '{{ neuraldraft_image(key, hidden=true, **{"data-slot": slot}) }}',
            key="hero.background",
            slot='"3"',
        )

        assert html.endswith(' hidden data-slot="&quot;3&quot;">')

    def test_url_is_escaped_by_the_template_and_data_is_an_object(self, hero, jinja):
        html = jinja(
            '{{ neuraldraft_url("hero.background") }} '
            '{% set img = neuraldraft_image_data("hero.background") %}'
            "{{ img.width }}x{{ img.height }} {{ img.alt }}"
        )

        assert html == "/media/neuraldraft/hero.png 1600x900 Dunes &amp; &#34;dawn&#34;"

    def test_a_missing_image_gives_the_placeholder(self, jinja):
        html = jinja("{{ neuraldraft_image(page.missing_key) }}", page={})

        assert html.startswith('<img src="data:image/svg+xml,')
        assert html.endswith('" width="1024" height="576" alt="">')

    def test_the_same_picture_as_the_django_tag(self, jinja):
        from tests.test_templatetags import with_renditions

        with_renditions("hero.background")
        django = Template(
            '{% load neuraldraft %}{% neuraldraft_picture "hero.background" sizes="50vw" '
            'class="hero" %}'
        ).render(Context())

        html = jinja('{{ neuraldraft_picture("hero.background", sizes="50vw", class="hero") }}')

        assert html == django
        assert html.startswith('<picture><source type="image/avif" srcset="')

    def test_sizes_gives_the_image_a_srcset(self, jinja):
        from tests.test_templatetags import JPEG_SRCSET, with_renditions

        with_renditions("hero.background")

        html = jinja('{{ neuraldraft_image("hero.background", sizes="100vw") }}')

        assert f'srcset="{JPEG_SRCSET}" sizes="100vw"' in html

    def test_src_cannot_be_set(self, hero, jinja):
        with pytest.raises(ValueError, match="sets src itself"):
            jinja('{{ neuraldraft_image("hero.background", src="x.png") }}')


class TestBatching:
    def test_every_literal_key_of_the_template_in_one_query_and_none_warm(
        self, hero, jinja, django_assert_num_queries
    ):
        for n in range(20):
            create_image_key(f"grid.{n}", file=f"grid/{n}.png")
        source = "".join(f'{{{{ neuraldraft_image("grid.{n}", alt="") }}}}' for n in range(20))
        source += "{{ neuraldraft_url(key) }}"
        source += '{% for n in range(3) %}{{ neuraldraft_url("grid.1") }}{% endfor %}'

        with django_assert_num_queries(1):
            cold = jinja(source, key="grid.3")
        with django_assert_num_queries(0):
            warm = jinja(source, key="grid.3")

        assert cold == warm
        assert cold.count("/media/grid/") == 24

    def test_keys_from_a_loop_cost_one_query_cold_and_none_warm(
        self, hero, jinja, django_assert_num_queries
    ):
        for n in range(10):
            create_image_key(f"grid.{n}", file=f"grid/{n}.png")
        cards = [{"key": f"grid.{n}"} for n in range(10)]
        source = (
            '{{ neuraldraft_image("hero.background") }}'
            '{% for card in cards %}{{ neuraldraft_url(card["key"]) }} {% endfor %}'
            '{% for n in numbers if n > 4 %}{{ neuraldraft_image("grid." ~ n, alt=n) }}'
            "{% endfor %}"
        )

        with django_assert_num_queries(2):
            cold = jinja(source, cards=cards, numbers=range(10))
        with django_assert_num_queries(0):
            warm = jinja(source, cards=cards, numbers=range(10))

        assert cold == warm
        assert cold.count("/media/grid/") == 15

    def test_a_sequence_that_calls_a_function_is_not_evaluated_again(self, jinja):
        calls = []

        def cards():
            calls.append(1)
            return [{"key": f"grid.{n}"} for n in range(3)]

        jinja(
            '{% for card in cards() %}{{ neuraldraft_url(card["key"]) }}{% endfor %}',
            cards=cards,
        )

        assert len(calls) == 1

    def test_a_generator_is_never_iterated_twice(self, jinja, django_assert_num_queries):
        for n in range(3):
            create_image_key(f"grid.{n}", file=f"grid/{n}.png")
        source = "{% for key in keys %}{{ neuraldraft_url(key) }} {% endfor %}"

        with django_assert_num_queries(3):
            html = jinja(source, keys=(f"grid.{n}" for n in range(3)))

        assert html.count("/media/grid/") == 3

    def test_nested_loops_cost_one_query_per_inner_loop(self, jinja, django_assert_num_queries):
        for n in range(4):
            create_image_key(f"grid.{n}", file=f"grid/{n}.png")
        rows = [[f"grid.{n}" for n in range(2)], [f"grid.{n}" for n in range(2, 4)]]
        source = (
            "{% for row in rows %}{% for key in row %}"
            "{{ neuraldraft_picture(key, sizes='50vw') }}{% endfor %}{% endfor %}"
        )

        with django_assert_num_queries(2):
            html = jinja(source, rows=rows)

        assert html.count("/media/grid/") == 4

    @pytest.mark.parametrize(
        ("block", "queries"),
        [
            ('{{ neuraldraft_url("site.logo") }}', 1),
            ('{{ neuraldraft_url("site.logo") }}{{ neuraldraft_url("page.hero") }}', 2),
        ],
    )
    def test_a_child_and_its_parent_cost_one_query_each_and_share_what_they_found(
        self, block, queries, django_assert_num_queries
    ):
        for key in ("site.logo", "page.hero"):
            create_image_key(key, file=f"{key}.png")
        base = '{{ neuraldraft_url("site.logo") }}{% block body %}{% endblock %}'
        page = '{% extends "base.html" %}{% block body %}' + block + "{% endblock %}"
        environment = Environment(
            extensions=[NeuralDraftExtension],
            loader=DictLoader({"base.html": base, "page.html": page}),
        )

        with django_assert_num_queries(queries):
            html = environment.get_template("page.html").render()

        assert html.startswith("/media/site.logo.png/media/site.logo.png")

    @pytest.mark.parametrize(
        "call",
        [
            'neuraldraft_url("hero.background",)',
            'neuraldraft_url(*["hero.background"])',
            'neuraldraft_image(*["hero.background"], **{"class": "x"})',
            'neuraldraft_image("hero.background", alt=("a", "b")|join(neuraldraft_url("a.b")))',
        ],
    )
    def test_the_rewrite_keeps_every_call_syntax_valid(self, hero, call):
        environment = Environment(extensions=[NeuralDraftExtension])

        rendered = environment.from_string(
            f'{{{{ neuraldraft_url("other.key") }}}}{{{{ {call} }}}}'
        ).render()

        assert "/media/neuraldraft/hero.png" in rendered

    def test_methods_of_the_same_name_are_left_alone(self, hero):
        class Page:
            def neuraldraft_url(self, key, **kwargs):
                return f"{key}:{sorted(kwargs)}"

        environment = Environment(extensions=[NeuralDraftExtension])
        template = environment.from_string(
            '{{ neuraldraft_url("hero.background") }} {{ page.neuraldraft_url("x") }}'
        )

        assert template.render(page=Page()) == "/media/neuraldraft/hero.png x:[]"

    def test_an_unclosed_call_is_reported_by_jinja(self):
        environment = Environment(extensions=[NeuralDraftExtension])

        with pytest.raises(TemplateSyntaxError):
            environment.from_string('{{ neuraldraft_url("hero.background" }}')
