#!/usr/bin/env python
"""Django's command-line utility for the example site."""

import os
import sys

if __name__ == "__main__":
    # Python puts this script's folder first on sys.path, where the project's own
    # modules would hide top-level packages of the same name; the repository root,
    # where ``example_project`` is a package, goes there instead.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
