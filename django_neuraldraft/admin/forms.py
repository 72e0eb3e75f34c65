"""Forms of the image key admin: the key itself, a generation, an upload."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from ..alt_text import propose_alt_text
from ..models import ImageKey


class AltTextProposalMixin(forms.ModelForm):
    """Offer alternative text made from the prompt, applied only when the editor ticks it.

    The proposal is shown in the label, so the editor reads it before
    confirming; a key never gets alt text nobody looked at.
    """

    use_proposed_alt_text = forms.BooleanField(
        required=False,
        label=_("Use alternative text proposed from the prompt"),
        help_text=_("Only when the alternative text above is empty."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.alt_text:
            # Nothing to propose: the key has alternative text an editor wrote.
            del self.fields["use_proposed_alt_text"]
            return
        proposal = propose_alt_text(self.instance.prompt)
        if proposal:
            self.fields["use_proposed_alt_text"].label = _(
                "Use “%(proposal)s” as alternative text"
            ) % {"proposal": proposal}

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("use_proposed_alt_text") and not data.get("alt_text"):
            data["alt_text"] = propose_alt_text(data.get("prompt") or "")
        return data


class ImageKeyForm(AltTextProposalMixin):
    class Meta:
        model = ImageKey
        fields = ["key", "prompt", "style", "aspect_ratio", "alt_text"]


class GenerateForm(AltTextProposalMixin):
    """What a generation will ask for, prefilled from the key; saved to the key on submit."""

    class Meta:
        model = ImageKey
        fields = ["prompt", "style", "aspect_ratio", "alt_text"]
        widgets = {"prompt": forms.Textarea(attrs={"rows": 4, "cols": 80})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt"].required = True


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("Image file"),
        help_text=_("JPEG, PNG, WebP or GIF, at most 10 MB."),
        widget=forms.ClearableFileInput(
            attrs={"accept": "image/jpeg,image/png,image/webp,image/gif"}
        ),
    )
