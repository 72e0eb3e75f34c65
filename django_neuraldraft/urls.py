"""URLs of the app: include them under a prefix, e.g. ``path("neuraldraft/", include(...))``."""

from django.urls import path

from . import views

app_name = "neuraldraft"

urlpatterns = [
    path("webhook/", views.webhook, name="webhook"),
]
