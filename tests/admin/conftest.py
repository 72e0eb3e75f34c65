"""Staff users with and without the app's permissions, and clients logged in as them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from django_neuraldraft.models import ImageKey


def staff_user(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password="secret", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="neuraldraft", codename__in=codenames)
    )
    return user


@pytest.fixture
def editor(django_user_model):
    """Staff who may edit keys but neither spend credits nor cancel jobs."""
    return staff_user(django_user_model, "editor", "view_imagekey", "change_imagekey", "view_job")


@pytest.fixture
def producer(django_user_model):
    """Staff who may also generate, upload and cancel."""
    return staff_user(
        django_user_model,
        "producer",
        "view_imagekey",
        "change_imagekey",
        "view_job",
        "generate_image",
        "cancel_job",
    )


@pytest.fixture
def editor_client(editor) -> Client:
    client = Client()
    client.force_login(editor)
    return client


@pytest.fixture
def producer_client(producer) -> Client:
    client = Client()
    client.force_login(producer)
    return client


@pytest.fixture
def hero():
    return ImageKey.objects.create(
        key="hero.background", prompt="A quiet harbour at dawn", aspect_ratio="16:9"
    )
