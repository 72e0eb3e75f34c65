"""Django app configuration: registers the system checks and the image cache's invalidation."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NeuralDraftConfig(AppConfig):
    name = "django_neuraldraft"
    label = "neuraldraft"
    verbose_name = _("Neural Draft images")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from . import resolver
        from .checks import ALL_CHECKS, DATABASE_CHECKS

        for check in ALL_CHECKS:
            checks.register(check, "neuraldraft")
        for check in DATABASE_CHECKS:
            checks.register(check, "neuraldraft", checks.Tags.database)
        resolver.connect_signals()
