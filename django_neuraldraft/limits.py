"""Every length limit of what a person or Neural Draft may give us: one place for all of them.

Model fields, form fields (through the model), the validators of
:mod:`django_neuraldraft.services` and the normalisation of remote answers read
these numbers, so a value the form accepts is one the service and the database
accept too.
"""

from __future__ import annotations

from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator

#: The API docs give no maximum for ``prompt``; 4,000 characters is the sandbox's
#: limit (``docs/sandbox.rst``) and what we refuse above, before anything is sent.
PROMPT_MAX_LENGTH = 4000
STYLE_MAX_LENGTH = 100
ALT_TEXT_MAX_LENGTH = 300

#: Columns of :class:`~django_neuraldraft.models.Job` filled from remote answers.
REMOTE_ID_MAX_LENGTH = 64
JOB_MESSAGE_MAX_LENGTH = 500
ERROR_CODE_MAX_LENGTH = 100
ERROR_MESSAGE_MAX_LENGTH = 2000
STEP_NAME_MAX_LENGTH = 100
MAX_STEPS = 50
#: :attr:`ImageVersion.source_url <django_neuraldraft.models.ImageVersion.source_url>`.
SOURCE_URL_MAX_LENGTH = 2000


def prompt_validators() -> list:
    return [MaxLengthValidator(PROMPT_MAX_LENGTH), ProhibitNullCharactersValidator()]


def text_validators() -> list:
    """For short texts whose length the column already bounds: no NUL (PostgreSQL refuses it)."""
    return [ProhibitNullCharactersValidator()]
