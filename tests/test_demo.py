"""``make demo`` keeps working: the example site, a worker and the sandbox, end to end."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_binds_every_image_and_renders_the_page(tmp_path):
    environment = {**os.environ, "NEURALDRAFT_DEMO_VAR": str(tmp_path / "var")}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", "example_project.demo", "--once", "--timeout", "45"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Rendered the home page with 4 images from local storage." in result.stdout
    page = (tmp_path / "var" / "home.html").read_text()
    assert "background-image: url('/media/neuraldraft/banner.retreat/" in page
