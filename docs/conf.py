"""Sphinx configuration: the docs build with ``tox -e docs`` (warnings are errors).

Django is set up with the test settings so that ``autodoc`` can import the
package and pull reference text from its docstrings.
"""

import os
import sys
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django_neuraldraft import __version__  # noqa: E402

project = "django-neuraldraft"
author = "django-neuraldraft maintainers"
release = version = __version__
extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
exclude_patterns = ["_build"]
html_theme = "alabaster"
