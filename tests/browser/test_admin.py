"""An editor's whole workflow in a real browser: create, generate, watch, regenerate, roll back."""

from __future__ import annotations

import pytest

from django_neuraldraft.models import ImageKey
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Milliseconds Playwright waits for anything: a whole generation fits well inside.
WAIT_MS = 60_000

#: Records every progress value the page shows, and survives only as long as the page:
#: a reload would lose it, which is how the test knows there was none.
WATCH_PROGRESS = """() => {
  window.ndSeen = [];
  const record = () => document.querySelectorAll(".nd-panel progress").forEach(
    (bar) => window.ndSeen.push(Number(bar.value)));
  record();
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true});
}"""


def image_src(page) -> str | None:
    return page.eval_on_selector(
        ".nd-panel .nd-image", "box => box.querySelector('img')?.getAttribute('src') || null"
    )


def generate(page, prompt: str | None = None) -> None:
    page.click("#content-main .object-tools a.nd-generate")
    if prompt is not None:
        page.fill("textarea[name=prompt]", prompt)
    page.click("input[type=submit].default")
    page.wait_for_selector(".nd-panel [data-nd-state=generating]")


def wait_for_new_image(page, previous: str | None, versions: int) -> str:
    """Wait until the page, without a reload, shows the new image and the history row it made."""
    page.wait_for_function(
        """([previous, versions]) => {
          const img = document.querySelector(".nd-panel .nd-image img");
          return img && img.getAttribute("src") !== previous
            && document.querySelector(".nd-panel [data-nd-state=ready]")
            && document.querySelectorAll("tr.nd-version").length === versions;
        }""",
        arg=[previous, versions],
        timeout=WAIT_MS,
    )
    return image_src(page)


def object_tools(page) -> list[str]:
    """The buttons' labels as written (innerText would give the CSS's upper case)."""
    texts = page.locator("#content-main .object-tools li").all_text_contents()
    return [text.strip() for text in texts if text.strip()]


def test_an_editor_generates_watches_regenerates_and_rolls_back(site, chromium, artifacts):
    base_url, worker = site
    context = chromium.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()

    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "editor")
    page.fill("#id_password", "secret")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    page.goto("/admin/neuraldraft/imagekey/add/")
    page.fill("#id_key", "hero.background")
    page.fill("#id_prompt", "A yoga studio by the harbour at dawn")
    page.select_option("#id_aspect_ratio", "16:9")
    page.click("input[name=_continue]")
    page.wait_for_selector(".nd-panel")
    assert image_src(page) is None

    generate(page)
    assert object_tools(page)[:3] == ["Generate", "Upload an image instead", "Cancel"]
    page.evaluate(WATCH_PROGRESS)
    first = wait_for_new_image(page, None, versions=1)
    seen = page.evaluate("window.ndSeen")
    assert seen is not None, "the page was reloaded"
    assert len(set(seen)) >= 2, f"the progress bar never moved: {seen}"
    assert first.startswith("/media/neuraldraft/hero.background/")
    # The buttons follow the new state: an image is on show, nothing runs.
    page.wait_for_function(
        "() => document.querySelector('#content-main a.nd-generate').textContent === 'Regenerate'"
    )
    assert "Cancel" not in object_tools(page)
    page.screenshot(path=str(artifacts / "admin-change-page.png"), full_page=True)

    generate(page, prompt="A yoga studio by the harbour at dusk, lanterns lit")
    page.evaluate(WATCH_PROGRESS)
    second = wait_for_new_image(page, first, versions=2)
    assert second != first
    assert page.evaluate("window.ndSeen") is not None, "the page was reloaded"
    assert "Cancel" not in object_tools(page)

    page.locator("tr.nd-version", has=page.locator(f"img[src='{first}']")).get_by_role(
        "button", name="Use this version"
    ).click()
    page.wait_for_selector("ul.messagelist li.success")
    assert image_src(page) == first
    image_key = wait_for(
        lambda: ImageKey.objects.select_related("current").get(key="hero.background"),
        timeout=5,
        describe="the key",
        workers=(worker,),
    )
    assert image_key.current.file.url == first

    page.goto("/")
    assert page.get_attribute("header img", "src") == first

    page.goto("/admin/neuraldraft/imagekey/")
    page.wait_for_selector(f".nd-thumb img[src='{first}']")
    page.screenshot(path=str(artifacts / "admin-change-list.png"), full_page=True)

    long_key = ImageKey.objects.create(key=".".join(["a" * 40, "b" * 40, "c" * 40]))
    page.reload()
    # A 122-character key wraps in its cell instead of pushing its status out of sight.
    assert page.evaluate(
        """id => document.querySelector(`[data-nd-status="${id}"]`).getBoundingClientRect().right
          <= document.querySelector("#changelist .results").getBoundingClientRect().right""",
        long_key.pk,
    )
    context.close()
