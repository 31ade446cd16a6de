"""The one error of whole-slide inference."""

from __future__ import annotations

from evaluation.errors import OcelotError

__all__ = ["SlideError"]


class SlideError(OcelotError, ValueError):
    """A slide, an option or a detector that stops a slide run; one line naming what to fix."""
