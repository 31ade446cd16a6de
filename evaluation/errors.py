"""The one user-error hierarchy, and the one place that turns it into an exit status.

Every error a person can fix by changing their input derives from :class:`OcelotError`; its
``str()`` is one line that names the file, the entry, the field and the value. A command or a
container entry runs under :func:`run_reporting_errors`, which prints that line as the last line
on stderr (``error: ...``) and returns exit status 2. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from evaluation.text import for_terminal

__all__ = [
    "EXIT_USER_ERROR",
    "DataError",
    "InputError",
    "OcelotError",
    "os_error_message",
    "preview",
    "run_reporting_errors",
]

#: Longest quotation of submitted text in a message, in characters.
PREVIEW_CHARS = 60

#: Exit status of every command and container entry for input it cannot use.
EXIT_USER_ERROR = 2


class OcelotError(Exception):
    """Input that cannot be used; ``str(error)`` is one line saying what is wrong and where."""


class InputError(OcelotError, ValueError):
    """A document to score (predictions, ground truth, metadata, job list) breaks its format."""


class DataError(OcelotError, ValueError):
    """A dataset file (release or Grand Challenge layout, image, mask) is missing or wrong."""


class MissingExtraError(OcelotError):
    """A command needs an optional dependency that is not installed; the line names the extra."""


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    r"""Submitted text or a value, quoted for a one-line message: escaped, then shortened.

    The value is written as JSON with every non-ASCII and control character escaped, so a
    newline or a terminal escape in a submission can never start a line of its own; the result
    is cut to ``limit`` characters.

    Examples
    --------
    >>> preview("zz\nerror: looks fine")
    '"zz\\nerror: looks fine"'
    >>> preview("x" * 100)[-5:]
    'xx...'
    """
    if type(value) is int and value.bit_length() > 64:
        # The exact digits would be a long line (or beyond int -> str conversion).
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = ascii(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def os_error_message(error: OSError) -> str:
    """One line naming the file and the operating system's reason (permission, disk full...)."""
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename else reason


class _Terminated(BaseException):
    """SIGTERM as an exception: unwinds like KeyboardInterrupt, so cleanup code runs."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated


def run_reporting_errors(command: Callable[[], int]) -> int:
    """Run ``command``; an :class:`OcelotError` or ``OSError`` ends it with one ``error:`` line.

    SIGTERM (what ``docker stop`` sends) unwinds the command like Ctrl-C, so that no temporary
    file is left behind, and ends it with exit status 143.

    Returns
    -------
    int
        The command's own exit status, or :data:`EXIT_USER_ERROR` after printing the line.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return command()
    except OcelotError as error:
        message = str(error)
    except OSError as error:
        message = os_error_message(error)
    except _Terminated:
        print(
            "error: stopped by SIGTERM before the end; no partial output was left", file=sys.stderr
        )
        return 128 + signal.SIGTERM
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    # The last line is what the platform shows: no message may break it or drive the terminal,
    # whatever it quotes (a file name is quoted as it is).
    print(f"error: {for_terminal(message)}", file=sys.stderr)
    return EXIT_USER_ERROR
