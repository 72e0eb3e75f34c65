"""The example CMS site. Loading its Celery app here, as Celery's Django guide does, makes
every process of the site (runserver, the demo, the worker) publish to the same broker."""

from .celery import app as celery_app

__all__ = ["celery_app"]
