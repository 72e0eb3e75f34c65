"""The ``neuraldraft_*`` management commands; see docs/commands.rst."""
