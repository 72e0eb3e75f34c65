"""Who may press the buttons two admins share."""

from __future__ import annotations

from typing import Any


def may_refresh(user: Any) -> bool:
    """Refresh may store a finished image and put it on show: it changes a key, not only views it.

    So it needs *change image key* besides *view job*; a view-only staff
    user gets neither the button nor the action.
    """
    return user.has_perm("neuraldraft.view_job") and user.has_perm("neuraldraft.change_imagekey")
