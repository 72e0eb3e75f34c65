"""The example CMS site. Loading its Celery app here, as Celery's Django guide does, makes
every process of the site (the demo, its web server, the worker) publish to the same broker.

The module is ``celery_app``, not ``celery``: a module named ``celery`` inside the
project hides the Celery package whenever the project's folder is on ``sys.path``.
"""

from .celery_app import app as celery_app

__all__ = ["celery_app"]
