"""``neuraldraft_scan``: literal keys in Django and Jinja2 templates against the image keys."""

from __future__ import annotations

import json

import pytest

from django_neuraldraft.models import ImageKey
from django_neuraldraft.template_scan import tag_names

pytestmark = pytest.mark.django_db

DJANGO_PAGE = """{% load neuraldraft %}
<main>
  {% neuraldraft_image "hero.background" alt="Harbour" %}
  {% neuraldraft_url 'team.photo' as url %}
  {% neuraldraft_image_data page.key as img %}
  {% neuraldraft_image "Not A Key" %}
  {% neuraldraft_picture "news.banner" sizes="100vw" %}
  {% neuraldraft_image _("translated.key") %}
</main>
"""

JINJA2_PAGE = """<main>
{{ neuraldraft_image("hero.background", alt="Harbour") }}
{{ neuraldraft_url("footer.logo") }}
{{ neuraldraft_image(page.key) }}
{{ other.neuraldraft_url("not.ours") }}
</main>
"""


@pytest.fixture
def templates(tmp_path, settings):
    django_dir = tmp_path / "django" / "pages"
    jinja2_dir = tmp_path / "jinja2"
    django_dir.mkdir(parents=True)
    jinja2_dir.mkdir()
    (django_dir / "home.html").write_text(DJANGO_PAGE)
    (jinja2_dir / "home.jinja").write_text(JINJA2_PAGE)
    (jinja2_dir / "broken.jinja").write_text("{{ neuraldraft_url('x' }}")
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [tmp_path / "django"],
            "APP_DIRS": True,
        },
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "NAME": "snippets",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.cached.Loader",
                        [
                            (
                                "django.template.loaders.locmem.Loader",
                                {"snippet.html": '{% neuraldraft_url "sidebar.ad" %}'},
                            )
                        ],
                    )
                ]
            },
        },
        {
            "BACKEND": "django.template.backends.jinja2.Jinja2",
            "DIRS": [jinja2_dir],
            "OPTIONS": {"extensions": ["django_neuraldraft.jinja2.NeuralDraftExtension"]},
        },
    ]
    return tmp_path


def test_the_library_tags_are_scanned_for():
    assert {"neuraldraft_image", "neuraldraft_url", "neuraldraft_image_data"} <= tag_names()


def test_json_reports_keys_without_slots_and_slots_without_templates(run, templates):
    ImageKey.objects.create(key="hero.background")
    ImageKey.objects.create(key="old.banner")

    data = json.loads(run("neuraldraft_scan", "--json"))

    assert sorted(data["keys"]) == [
        "footer.logo",
        "hero.background",
        "news.banner",
        "sidebar.ad",
        "team.photo",
    ]
    home = str(templates / "django" / "pages" / "home.html")
    assert data["keys"]["team.photo"] == [
        {
            "key": "team.photo",
            "tag": "neuraldraft_url",
            "template": home,
            "line": 4,
            "engine": "django",
        }
    ]
    assert [use["engine"] for use in data["keys"]["hero.background"]] == ["django", "jinja2"]
    assert data["missing"] == ["footer.logo", "news.banner", "sidebar.ad", "team.photo"]
    assert data["unused"] == ["old.banner"]
    assert data["created"] == []
    assert [use["key"] for use in data["invalid"]] == ["Not A Key"]
    assert [(use["tag"], use["line"]) for use in data["dynamic"]] == [
        ("neuraldraft_image_data", 5),
        ("neuraldraft_image", 8),
        ("neuraldraft_image", 4),
    ]
    (unreadable,) = data["unreadable"]
    assert unreadable["template"].endswith("broken.jinja")


def test_create_adds_empty_slots_and_spends_nothing(run, templates, sandbox):
    output = run("neuraldraft_scan", "--create")

    assert set(ImageKey.objects.values_list("key", flat=True)) == {
        "footer.logo",
        "hero.background",
        "news.banner",
        "sidebar.ad",
        "team.photo",
    }
    assert not ImageKey.objects.exclude(prompt="").exists()
    assert "created: team.photo" in output
    assert sandbox.requests == []
    assert "no slot" not in run("neuraldraft_scan")


def test_text_report(run, templates):
    ImageKey.objects.create(key="old.banner")

    output = run("neuraldraft_scan")

    assert "no slot: team.photo (" in output
    assert "unused slot: old.banner" in output
    assert "invalid key 'Not A Key'" in output
    assert "Run with --create" in output


def test_commented_out_tags_are_not_uses_and_a_key_argument_is(run, tmp_path, settings):
    (tmp_path / "page.html").write_text(
        '{% comment "old" %}{% neuraldraft_image "old.banner" %}{% endcomment %}\n'
        '{% neuraldraft_image "hero.background" %}\n'
    )
    (tmp_path / "page.jinja").write_text(
        '{# {{ neuraldraft_url("old.logo") }} #}{{ neuraldraft_url(key="footer.logo") }}\n'
    )
    settings.TEMPLATES = [
        {"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [tmp_path]},
        {
            "BACKEND": "django.template.backends.jinja2.Jinja2",
            "DIRS": [tmp_path],
            "OPTIONS": {"extensions": ["django_neuraldraft.jinja2.NeuralDraftExtension"]},
        },
    ]

    data = json.loads(run("neuraldraft_scan", "--json"))

    assert data["missing"] == ["footer.logo", "hero.background"]
    assert data["dynamic"] == []
