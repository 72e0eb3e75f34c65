"""The image key admin: where editors generate, follow, review, publish and roll back images.

Every button is a POST form with CSRF, guarded by a permission, and calls one
function of :mod:`django_neuraldraft.services`; nothing here talks HTTP or
moves a job's state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _, gettext_lazy

from .. import conf, services
from ..choices import JobType
from ..exceptions import (
    BrokerUnavailableError,
    CreditBudgetExceededError,
    DownloadError,
    NeuralDraftError,
)
from ..models import ImageKey, ImageVersion
from ..services.publishing import UPLOAD_CREDITS
from . import bulk
from .errors import describe_error
from .forms import GenerateForm, ImageKeyForm, UploadForm
from .permissions import may_refresh
from .status import (
    FAILED,
    GENERATING,
    STATES,
    as_json,
    filter_by_state,
    state_of,
    status_badge,
    thumbnail,
    with_status,
)

#: Most keys one status request may ask about: a change list page holds at most this many.
MAX_STATUS_KEYS = 500
#: The largest primary key a database column holds (a signed 64-bit integer);
#: past it, a driver raises instead of finding nothing.
_LARGEST_ID = 2**63 - 1


class StatusFilter(admin.SimpleListFilter):
    title = gettext_lazy("status")
    parameter_name = "status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, Any]]:
        return list(STATES.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[ImageKey]) -> QuerySet[ImageKey]:
        value = self.value()
        return filter_by_state(queryset, value) if value else queryset


@admin.register(ImageKey)
class ImageKeyAdmin(admin.ModelAdmin):
    form = ImageKeyForm
    list_display = ["list_thumbnail", "key", "status", "aspect_ratio", "updated_at"]
    list_display_links = ["key"]
    list_filter = [StatusFilter, "aspect_ratio"]
    search_fields = ["key", "prompt", "alt_text"]
    list_per_page = 100
    actions = ["generate_selected", "delete_selected"]
    change_form_template = "admin/neuraldraft/imagekey/change_form.html"

    class Media:
        css = {"all": ["neuraldraft/admin.css"]}
        js = ["neuraldraft/admin.js"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ImageKey]:
        return with_status(super().get_queryset(request))

    def get_fieldsets(self, request: HttpRequest, obj: ImageKey | None = None) -> list:
        proposal = (obj is None or not obj.alt_text) and (
            self.has_add_permission(request)
            if obj is None
            else self.has_change_permission(request, obj)
        )
        text = ["alt_text", "use_proposed_alt_text"] if proposal else ["alt_text"]
        return [
            (None, {"fields": ["key", "prompt", "style", "aspect_ratio"]}),
            (gettext_lazy("Accessibility"), {"fields": text}),
        ]

    def has_generate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.generate_image")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.cancel_job")

    def has_refresh_permission(self, request: HttpRequest) -> bool:
        return may_refresh(request.user)

    @admin.display(description=gettext_lazy("image"))
    def list_thumbnail(self, obj: ImageKey) -> str:
        return thumbnail(obj)

    @admin.display(description=gettext_lazy("status"))
    def status(self, obj: ImageKey) -> str:
        return status_badge(obj, self._url("status"))

    @admin.action(
        description=gettext_lazy("Generate images for the selected keys"), permissions=["generate"]
    )
    def generate_selected(
        self, request: HttpRequest, queryset: QuerySet[ImageKey]
    ) -> HttpResponse | None:
        planned = bulk.plan(queryset)
        if request.POST.get("post") == "yes":
            bulk.run(self, request, planned)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Generate images for the selected keys"),
            "opts": self.opts,
            "plan": planned,
            "queryset": queryset,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(
            request, "admin/neuraldraft/imagekey/generate_selected.html", context
        )

    @admin.action(
        description=gettext_lazy("Delete selected %(verbose_name_plural)s"),
        permissions=["delete"],
    )
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[ImageKey]
    ) -> HttpResponse | None:
        """Django's bulk delete, refused while a selected key has a generation in flight."""
        try:
            services.check_deletable(queryset)
            return admin_actions.delete_selected(self, request, queryset)
        except ValidationError as err:
            self.message_user(request, describe_error(err), messages.ERROR)
            return None

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Django's delete, refused while the key has a generation in flight.

        Refused before the confirmation page, so no one confirms what cannot
        be done, and again by :func:`~django_neuraldraft.services.delete_keys`
        under the key's lock, for a generation started meanwhile.
        """
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not self.has_delete_permission(request, obj):
            return super().delete_view(request, object_id, extra_context)
        try:
            services.check_deletable([obj])
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as err:
            self.message_user(request, describe_error(err), messages.ERROR)
            return self._back_to(obj)

    def delete_model(self, request: HttpRequest, obj: ImageKey) -> None:
        """Delete the key with its versions, then their files (Django's would leave the files)."""
        services.delete_keys([obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ImageKey]) -> None:
        services.delete_keys(queryset)

    def get_urls(self) -> list:
        def view(function: Callable[..., HttpResponse], name: str, route: str) -> Any:
            return path(
                route,
                self.admin_site.admin_view(function),
                name=f"{self.opts.app_label}_{self.opts.model_name}_{name}",
            )

        return [
            view(self.status_view, "status", "status/"),
            view(self.generate_view, "generate", "<path:object_id>/generate/"),
            view(self.upload_view, "upload", "<path:object_id>/upload/"),
            view(self.cancel_view, "cancel", "<path:object_id>/cancel/"),
            view(self.refresh_view, "refresh", "<path:object_id>/refresh/"),
            view(
                self.rollback_view, "rollback", "<path:object_id>/versions/<int:version_id>/use/"
            ),
            view(
                self.publish_view, "publish", "<path:object_id>/versions/<int:version_id>/publish/"
            ),
            view(
                self.discard_view, "discard", "<path:object_id>/versions/<int:version_id>/discard/"
            ),
            *super().get_urls(),
        ]

    def _url(self, name: str, *args: Any) -> str:
        return reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{name}",
            args=args,
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_view_or_change_permission(request, obj):
            extra_context = {**(extra_context or {}), "nd": self._page_context(request, obj)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _page_context(self, request: HttpRequest, obj: ImageKey) -> dict[str, Any]:
        status = state_of(obj)
        versions = list(obj.versions.select_related("job", "created_by"))
        can_change = self.has_change_permission(request, obj)
        return {
            "image": thumbnail(obj, css_class="nd-image"),
            "badge": status_badge(obj, self._url("status")),
            "status": status,
            "candidates": [
                {
                    "version": version,
                    "publish_url": self._url("publish", obj.pk, version.pk),
                    "discard_url": self._url("discard", obj.pk, version.pk),
                }
                for version in versions
                if version.candidate
            ],
            "history": [
                {
                    "version": version,
                    "use_url": self._url("rollback", obj.pk, version.pk),
                    "job_url": version.job_id
                    and reverse(
                        f"{self.admin_site.name}:neuraldraft_job_change", args=[version.job_id]
                    ),
                }
                for version in versions
                if not version.candidate
            ],
            "failure": (
                obj.jobs.filter(type=JobType.IMAGE_GENERATE).order_by("-created_at", "-pk").first()
                if status.state == FAILED
                else None
            ),
            "can_generate": self.has_generate_permission(request) and can_change,
            "can_cancel": self.has_cancel_permission(request)
            and status.in_flight
            and not status.storing,
            "can_refresh": self.has_refresh_permission(request) and obj.jobs.exists(),
            "can_change": can_change,
            "generate_url": self._url("generate", obj.pk),
            "upload_url": self._url("upload", obj.pk),
            "cancel_url": self._url("cancel", obj.pk),
            "refresh_url": self._url("refresh", obj.pk),
        }

    def _get_key(self, request: HttpRequest, object_id: str) -> ImageKey:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("No image key with that id."))
        return obj

    def _back_to(self, obj: ImageKey) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change",
                args=[obj.pk],
            )
        )

    def _render(
        self, request: HttpRequest, template: str, obj: ImageKey, title: str, **context: Any
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/neuraldraft/imagekey/{template}",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.opts,
                "original": obj,
                "media": self.media,
                **context,
            },
        )

    def generate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the prefilled form with the cost; POST: save the key and ask for an image."""
        obj = self._get_key(request, object_id)
        if not (
            self.has_generate_permission(request) and self.has_change_permission(request, obj)
        ):
            raise PermissionDenied
        form = GenerateForm(request.POST or None, instance=obj)
        if request.method == "POST" and form.is_valid():
            running = obj.jobs.in_flight().first()
            try:
                with transaction.atomic():
                    obj = form.save()
                    job = services.request_generation(obj, requested_by=request.user)
            except ValidationError as err:
                form.add_error(None, err)
            except (CreditBudgetExceededError, NeuralDraftError) as err:
                self.message_user(request, describe_error(err), messages.ERROR)
            except BrokerUnavailableError as err:
                # Raised after the commit: the key and the job are saved.
                self.message_user(request, describe_error(err), messages.WARNING)
                return self._back_to(obj)
            else:
                if running is not None and running.pk == job.pk:
                    text = _("A generation of %(key)s is already running (job #%(job)d).")
                    level = messages.WARNING
                else:
                    text = _("Generation of %(key)s started (job #%(job)d, %(credits)d credits).")
                    level = messages.SUCCESS
                self.message_user(
                    request,
                    text % {"key": obj.key, "job": job.pk, "credits": job.credits},
                    level,
                )
                return self._back_to(obj)
        obj.refresh_from_db()
        return self._render(
            request,
            "generate.html",
            obj,
            _("Regenerate %(key)s") % {"key": obj.key}
            if obj.current_id
            else _("Generate %(key)s") % {"key": obj.key},
            form=form,
            cost=conf.credits_per_image(),
            budget_left=services.credits_left_today(),
            running=obj.jobs.in_flight().first(),
        )

    def upload_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the upload form; POST: check the file, register it, put it on show."""
        obj = self._get_key(request, object_id)
        if not (
            self.has_generate_permission(request) and self.has_change_permission(request, obj)
        ):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = services.upload(
                    obj, form.cleaned_data["file"], requested_by=request.user
                )
            except DownloadError as err:
                form.add_error("file", describe_error(err))
            except (CreditBudgetExceededError, NeuralDraftError) as err:
                self.message_user(request, describe_error(err), messages.ERROR)
            else:
                self.message_user(
                    request,
                    _("%(key)s now shows the uploaded image (%(width)d by %(height)d pixels).")
                    % {"key": obj.key, "width": version.width, "height": version.height},
                    messages.SUCCESS,
                )
                return self._back_to(obj)
        return self._render(
            request,
            "upload.html",
            obj,
            _("Upload an image for %(key)s") % {"key": obj.key},
            form=form,
            cost=UPLOAD_CREDITS,
            budget_left=services.credits_left_today(),
        )

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._post_only(request, object_id, self.has_cancel_permission, self._cancel)

    def refresh_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._post_only(request, object_id, self.has_refresh_permission, self._refresh)

    def _post_only(
        self,
        request: HttpRequest,
        object_id: str,
        allowed: Callable[[HttpRequest], bool],
        act: Callable[[HttpRequest, ImageKey], None],
    ) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._get_key(request, object_id)
        if not allowed(request):
            raise PermissionDenied
        try:
            act(request, obj)
        except (ValidationError, NeuralDraftError) as err:
            self.message_user(request, describe_error(err), messages.ERROR)
        return self._back_to(obj)

    def _cancel(self, request: HttpRequest, obj: ImageKey) -> None:
        job = obj.jobs.in_flight().first()
        if job is None:
            self.message_user(
                request, _("No generation of %(key)s is running.") % {"key": obj.key}
            )
            return
        job = services.cancel(job)
        self.message_user(
            request,
            _("Job #%(job)d of %(key)s is %(status)s.")
            % {"job": job.pk, "key": obj.key, "status": job.get_status_display()},
        )

    def _refresh(self, request: HttpRequest, obj: ImageKey) -> None:
        job = obj.jobs.order_by("-created_at", "-pk").first()
        if job is None:
            self.message_user(request, _("%(key)s has no job to refresh.") % {"key": obj.key})
            return
        if not job.remote_id:
            self.message_user(request, _("Job #%(job)d is not sent yet.") % {"job": job.pk})
            return
        outcome = services.poll_once(job)
        job = outcome.job
        text = _("Job #%(job)d: %(status)s, %(progress)d%%.") % {
            "job": job.pk,
            "status": job.get_status_display(),
            "progress": job.progress,
        }
        if outcome.version is not None:
            text += " " + _("Its image is stored.")
        self.message_user(request, text)

    def rollback_view(self, request: HttpRequest, object_id: str, version_id: int) -> HttpResponse:
        return self._version_action(
            request,
            object_id,
            version_id,
            services.rollback,
            _("%(key)s shows version #%(version)d again."),
        )

    def publish_view(self, request: HttpRequest, object_id: str, version_id: int) -> HttpResponse:
        return self._version_action(
            request,
            object_id,
            version_id,
            lambda obj, version: services.publish(version),
            _("%(key)s now shows version #%(version)d."),
        )

    def discard_view(self, request: HttpRequest, object_id: str, version_id: int) -> HttpResponse:
        """GET: what discarding the candidate deletes, to confirm; POST: discard it.

        A discarded image cannot be had back, and its credits are spent, so the
        button asks first, as Django's own delete does.
        """
        if request.method == "GET":
            obj = self._get_key(request, object_id)
            if not self.has_change_permission(request, obj):
                raise PermissionDenied
            version = obj.versions.filter(pk=version_id, candidate=True).first()
            if version is None:
                self.message_user(
                    request, _("That image is no longer awaiting review."), messages.WARNING
                )
                return self._back_to(obj)
            title = _("Discard candidate #%(version)d of %(key)s?") % {
                "version": version.pk,
                "key": obj.key,
            }
            return self._render(request, "discard.html", obj, title, version=version)
        return self._version_action(
            request,
            object_id,
            version_id,
            lambda obj, version: services.discard(version),
            _("Candidate #%(version)d of %(key)s was discarded."),
        )

    def _version_action(
        self,
        request: HttpRequest,
        object_id: str,
        version_id: int,
        act: Callable[[ImageKey, ImageVersion], Any],
        done: str,
    ) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._get_key(request, object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        version = obj.versions.filter(pk=version_id).first()
        if version is None:
            raise Http404(_("No such version of this key."))
        try:
            act(obj, version)
        except ValidationError as err:
            self.message_user(request, describe_error(err), messages.ERROR)
        else:
            self.message_user(
                request, done % {"key": obj.key, "version": version.pk}, messages.SUCCESS
            )
        return self._back_to(obj)

    def status_view(self, request: HttpRequest) -> JsonResponse:
        """The status of the keys named by ``?id=``, for the live-update script; one query."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            ids = {int(value) for value in request.GET.getlist("id")}
        except ValueError:
            ids = {0}
        if not all(1 <= pk <= _LARGEST_ID for pk in ids):
            return JsonResponse({"error": _("id must be a key's id.")}, status=400)
        if len(ids) > MAX_STATUS_KEYS:
            return JsonResponse(
                {"error": _("At most %(count)d keys at once.") % {"count": MAX_STATUS_KEYS}},
                status=400,
            )
        status_url = self._url("status")
        keys = [
            as_json(image_key, status_url)
            for image_key in with_status(ImageKey.objects.filter(pk__in=ids))
        ]
        return JsonResponse(
            {"keys": keys, "in_flight": any(entry["state"] == GENERATING for entry in keys)}
        )
