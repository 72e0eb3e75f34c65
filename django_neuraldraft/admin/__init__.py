"""The Django admin of django-neuraldraft: image keys, their images, and the jobs behind them.

Each model's admin lives in a module of its own; importing this package
registers them with the default admin site.
"""

from . import imagekeys, jobs

__all__ = ["imagekeys", "jobs"]
