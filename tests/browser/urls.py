"""URLs of the browser tests: the admin, and a site page that shows hero.background."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import path

PAGE = (
    "{% load neuraldraft %}<!doctype html><html lang='en'><title>Harbour Yoga</title>"
    "<body><header>{% neuraldraft_image 'hero.background' %}</header></body></html>"
)


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(engines["django"].from_string(PAGE).render({}, request))


urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
]
