"""``neuraldraft_apply``: images as code from TOML; a plan, its cost, and idempotence."""

from __future__ import annotations

import json
import signal
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management.base import CommandError

from django_neuraldraft import manifest, services
from django_neuraldraft.models import ImageKey, ImageVersion, Job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]

IMAGES = """\
# The site's images.
[images."home.hero"]
prompt = "A quiet harbour at dawn"
style = "photorealistic"
aspect_ratio = "16:9"
alt_text = "Boats in a harbour"

[images."team.photo"]
prompt = "Four people at a desk"
aspect_ratio = "4:3"

[images."footer.logo"]
alt_text = "Our logo"
"""


class TerminalInput(StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def images_toml(tmp_path):
    path = tmp_path / "images.toml"
    path.write_text(IMAGES)
    return path


def apply_json(run, path, *args: str) -> dict:
    return json.loads(run("neuraldraft_apply", str(path), "--json", *args))


def test_dry_run_prints_the_plan_and_changes_nothing(run, images_toml, sandbox):
    output = run("neuraldraft_apply", str(images_toml), "--dry-run")

    assert "home.hero    create, generate" in output
    assert "footer.logo  create - no prompt: nothing to generate" in output
    assert "Plan: 3 to create, 0 to update, 2 to generate (80 credits), 0 unchanged." in output
    assert not ImageKey.objects.exists()
    assert sandbox.requests == []


def test_json_shape(run, images_toml):
    data = apply_json(run, images_toml, "--dry-run")

    assert data["generations"] == 2
    assert data["credits"] == 80
    assert data["applied"] is False
    hero = data["steps"][0]
    assert hero == {
        "key": "home.hero",
        "actions": ["create", "generate"],
        "changes": {
            "prompt": {"from": "", "to": "A quiet harbour at dawn"},
            "style": {"from": "", "to": "photorealistic"},
            "aspect_ratio": {"from": "", "to": "16:9"},
            "alt_text": {"from": "", "to": "Boats in a harbour"},
        },
        "note": "",
    }


def test_apply_is_idempotent(run, images_toml, sandbox):
    first = apply_json(run, images_toml, "--yes")

    assert first["applied"] is True
    hero = ImageKey.objects.get(key="home.hero")
    assert (hero.prompt, hero.style, hero.aspect_ratio, hero.alt_text) == (
        "A quiet harbour at dawn",
        "photorealistic",
        "16:9",
        "Boats in a harbour",
    )
    assert Job.objects.count() == 2
    in_flight = apply_json(run, images_toml, "--yes")
    assert [step["actions"] for step in in_flight["steps"]] == [["unchanged"]] * 3
    assert in_flight["steps"][0]["note"] == "being generated"
    assert in_flight["applied"] is False

    run("neuraldraft_refresh", "--all")
    for job in Job.objects.all():
        sandbox.finish_job(job.remote_id)
    run("neuraldraft_refresh", "--all")
    assert ImageKey.objects.filter(current__isnull=False).count() == 2
    done = apply_json(run, images_toml, "--yes")
    assert [step["actions"] for step in done["steps"]] == [["unchanged"]] * 3
    assert Job.objects.count() == 2


def test_a_changed_prompt_regenerates_and_an_alt_text_does_not(run, tmp_path, make_image):
    make_image("home.hero", prompt="A harbour", aspect_ratio="16:9")
    make_image("team.photo", prompt="Four people", aspect_ratio="4:3")
    path = tmp_path / "images.toml"
    path.write_text(
        '[images."home.hero"]\nprompt = "A harbour at dusk"\n\n'
        '[images."team.photo"]\nprompt = "Four people"\naspect_ratio = "4:3"\nalt_text = "Team"\n'
    )

    data = apply_json(run, path, "--yes")

    assert [step["actions"] for step in data["steps"]] == [["update", "generate"], ["update"]]
    assert data["credits"] == 40
    assert ImageKey.objects.get(key="home.hero").jobs.in_flight().exists()
    assert not ImageKey.objects.get(key="team.photo").jobs.in_flight().exists()


def test_a_changed_default_style_counts_as_a_change(run, tmp_path, make_image, settings):
    make_image("home.hero", prompt="A harbour")
    path = tmp_path / "images.toml"
    path.write_text('[images."home.hero"]\nprompt = "A harbour"\n')
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DEFAULT_STYLE": "watercolour"}

    data = apply_json(run, path, "--dry-run")

    assert data["steps"][0]["actions"] == ["generate"]


def test_asks_on_a_terminal(run, images_toml, monkeypatch):
    monkeypatch.setattr("sys.stdin", TerminalInput("n\n"))
    with pytest.raises(CommandError, match="Nothing applied"):
        run("neuraldraft_apply", str(images_toml))
    assert not ImageKey.objects.exists()

    monkeypatch.setattr("sys.stdin", TerminalInput("y\n"))
    assert "Applied; 2 generation(s) queued." in run("neuraldraft_apply", str(images_toml))


class InterruptedInput(TerminalInput):
    """A terminal on which the user presses Ctrl-C at the question."""

    def readline(self, *args) -> str:
        raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("stdin", "returncode"), [(TerminalInput(""), 1), (InterruptedInput(""), 130)]
)
def test_ctrl_d_or_ctrl_c_at_the_question_applies_nothing(
    run, images_toml, monkeypatch, stdin, returncode
):
    monkeypatch.setattr("sys.stdin", stdin)

    with pytest.raises(CommandError, match="Nothing applied") as raised:
        run("neuraldraft_apply", str(images_toml))

    assert raised.value.returncode == returncode
    assert not ImageKey.objects.exists()


def test_without_a_terminal_spending_needs_yes(run, images_toml, monkeypatch):
    monkeypatch.setattr("sys.stdin", StringIO(""))

    with pytest.raises(CommandError, match="pass --yes"):
        run("neuraldraft_apply", str(images_toml))

    assert not ImageKey.objects.exists()


def test_the_daily_budget_is_checked_before_anything_changes(run, images_toml, settings):
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 50}

    with pytest.raises(CommandError, match="costs 80 credits and 50 are left"):
        run("neuraldraft_apply", str(images_toml), "--yes")

    assert not ImageKey.objects.exists()


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ('[images."home.hero"]\nprompt = \n', ["2: Invalid value"]),
        (
            '[images."home.hero"]\nprompt = "x"\naspect_ratio = "2:1"\n\n'
            '[images."Bad Key"]\nprompt = "y"\n',
            ["3: home.hero: aspect_ratio:", "5: Bad Key: key:"],
        ),
        ('[images."home.hero"]\nprompt = "x"\nsize = "big"\n', ["3: Unknown field 'size'"]),
        ('[images."home.hero"]\nprompt = 3\n', ["2: home.hero: prompt must be a string"]),
        (
            "[images.home.hero]\nprompt = 'x'\n",
            ["1: images.home.hero is a table: quote keys that contain dots"],
        ),
        ('[pages]\nx = 1\n[images."a"]\nprompt = "x"\n', ["1: Unknown table 'pages'"]),
        ("# nothing\n", [" No image keys"]),
        (
            '[images."home.hero"]\nprompt = 3\naspect_ratio = "2:1"\n',
            ["2: home.hero: prompt must be a string", "3: home.hero: aspect_ratio: Value '2:1'"],
        ),
        (
            '[images."home.hero"]\nprompt = "x"\nprompt = "y"\n',
            ["3: Cannot overwrite a value"],
        ),
        (
            '[images."home.hero"]\nprompt = "x"\n[images."home.hero"]\nstyle = "y"\n',
            ["3: Cannot declare ('images', 'home.hero') twice"],
        ),
        (
            '[images."home.hero"]\nprompt = "x"\n\n[images."team.photo"]\nprompt = "caf\xe9"\n',
            ["5: Byte 0xe9 is not UTF-8; save the file as UTF-8."],
        ),
    ],
)
def test_bad_files_get_errors_with_line_numbers(run, tmp_path, text, errors):
    path = tmp_path / "images.toml"
    path.write_bytes(text.encode("latin-1"))

    with pytest.raises(CommandError) as raised:
        run("neuraldraft_apply", str(path), "--yes")

    for error in errors:
        assert f"{path}:{error}" in str(raised.value)
    assert not ImageKey.objects.exists()


def test_a_missing_file(run, tmp_path):
    with pytest.raises(CommandError, match="Cannot read the file: No such file or directory"):
        run("neuraldraft_apply", str(tmp_path / "nothing.toml"))


def test_a_file_over_the_size_limit_is_refused_unread(run, tmp_path):
    path = tmp_path / "images.toml"
    path.write_text(IMAGES + "#" * manifest.MAX_BYTES)

    with pytest.raises(CommandError, match="split it and apply each part"):
        run("neuraldraft_apply", str(path), "--yes")

    assert not ImageKey.objects.exists()


def test_a_byte_order_mark_is_allowed(run, tmp_path):
    path = tmp_path / "images.toml"
    path.write_text(IMAGES, encoding="utf-8-sig")

    assert "3 to create" in run("neuraldraft_apply", str(path), "--dry-run")


def test_a_file_with_thousands_of_problems_shows_the_first_ones(run, tmp_path):
    path = tmp_path / "images.toml"
    path.write_text("".join(f"name{i} = 1\n" for i in range(3000)) + IMAGES)

    with pytest.raises(CommandError) as raised:
        run("neuraldraft_apply", str(path), "--yes")

    lines = str(raised.value).splitlines()
    assert (
        lines[0]
        == f"{path}:1: Unknown table 'name0'; the file holds [images.\"<key>\"] tables only."
    )
    assert lines[19].startswith(f"{path}:20: Unknown table 'name19'")
    assert lines[20:] == ["... and 2980 more problem(s)."]


def test_notes_explain_why_a_key_is_not_generated(run, tmp_path, make_image):
    services.generate("home.hero", prompt="A harbour")
    make_image("team.photo", prompt="Four people")
    ImageVersion.objects.filter(image_key__key="team.photo").update(prompt="")
    path = tmp_path / "images.toml"
    path.write_text(
        '[images."home.hero"]\nprompt = "A harbour at dusk"\n\n'
        '[images."team.photo"]\nprompt = "Five people"\n'
    )

    steps = apply_json(run, path, "--dry-run")["steps"]

    assert [step["actions"] for step in steps] == [["update"], ["update"]]
    assert steps[0]["note"].startswith("a generation from other settings is running")
    assert steps[1]["note"].startswith("the image on show has no recorded prompt")


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_is_reported_after_the_changes(run, images_toml, broker_down):
    with pytest.raises(CommandError, match="neuraldraft_refresh to send them now"):
        run("neuraldraft_apply", str(images_toml), "--yes")

    assert ImageKey.objects.count() == 3
    assert Job.objects.filter(remote_id__isnull=True).count() == 2
    again = run("neuraldraft_apply", str(images_toml), "--yes")
    assert "Plan: 0 to create, 0 to update, 0 to generate (0 credits), 3 unchanged." in again


def test_the_plan_compares_with_what_a_generation_sends(settings, sandbox):
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DEFAULT_STYLE": "watercolour"}
    image_key = ImageKey.objects.create(key="home.hero", prompt=" A harbour ")

    job = services.request_generation(image_key)

    assert services.generation_params(image_key, None, None, None) == job.params
    assert job.params["style"] == "watercolour"


@contextmanager
def ends_within(seconds: int):
    """Stop a run that hangs (the regex engine checks signals); not a measurement: the
    fixed code takes milliseconds here, the quadratic one minutes."""

    def expire(signum, frame):
        raise AssertionError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_long_line_like_an_unclosed_table_header_is_read_in_one_pass(run, tmp_path):
    """A multi-line prompt may hold ``[images.aaaa…`` without ``]``: finding the lines of
    tables backtracked on it, quadratically (2 s at 40,000 characters, minutes at the
    size the command accepts)."""
    line = "[images." + "a" * 400_000
    path = tmp_path / "images.toml"
    path.write_text(f'[images."home.hero"]\nprompt = """\n{line}\n"""\n')
    assert path.stat().st_size < manifest.MAX_BYTES

    with ends_within(10), pytest.raises(CommandError, match="prompt"):
        run("neuraldraft_apply", str(path), "--dry-run")

    assert not ImageKey.objects.exists()


@pytest.mark.parametrize(
    "toml",
    [
        '[images."home.hero"]\nprompt = "x"\n[images]\n'
        '"\\u001b[2J\\u001b[31mx\\nforged: ok" = 5\n',
        '[images."home.hero"]\n"\\u001b]0;owned\\u0007" = {a = 1}\n',
        '[images."\\u001b[2Jbad\\nforged line"]\nprompt = 5\n',
    ],
    ids=["key-not-a-table", "field-is-a-table", "field-not-a-string"],
)
def test_problems_print_the_files_keys_as_plain_text(run, tmp_path, toml):
    """A key of the file is text from outside: its escapes and line breaks must neither
    drive the terminal nor forge a line of output (docs/commands.rst)."""
    path = tmp_path / "images.toml"
    path.write_text(toml)

    with pytest.raises(CommandError) as raised:
        run("neuraldraft_apply", str(path), "--dry-run")

    message = str(raised.value)
    assert "\x1b" not in message and "\x07" not in message
    assert all(line.startswith(str(path)) for line in message.splitlines()), message
    assert not ImageKey.objects.exists()
