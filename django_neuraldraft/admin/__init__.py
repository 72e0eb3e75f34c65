"""The Django admin of django-neuraldraft: image keys, their images, the jobs behind them
and the webhook deliveries about them.

Each model's admin lives in a module of its own; importing this package
registers them with the default admin site.
"""

from . import imagekeys, jobs, webhooks

__all__ = ["imagekeys", "jobs", "webhooks"]
