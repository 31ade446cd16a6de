"""Files the toolkit writes: checked before any work, written whole or not at all."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.errors import InputError

__all__ = [
    "check_output_set",
    "check_writable",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_output_set",
]


def write_json_atomic(path: str | os.PathLike, obj: Any, *, create_parents: bool = False) -> None:
    """Write ``obj`` as JSON so that ``path`` either keeps its old content or holds all of it.

    The document goes to a temporary file in the same folder, which then replaces ``path``.
    With ``create_parents``, missing folders above ``path`` are created first.
    """
    write_bytes_atomic(
        path,
        (json.dumps(obj, allow_nan=False) + "\n").encode("utf-8"),
        create_parents=create_parents,
    )


def check_writable(
    path: str | os.PathLike,
    *,
    inputs: Sequence[str | os.PathLike] = (),
    create_parents: bool = False,
) -> None:
    """Fail before any work when ``path`` cannot or must not be written.

    Refused: a folder that does not exist (unless ``create_parents``: the writer creates the
    missing folders, and the nearest existing one must be a writable folder) or is not writable,
    a target that exists and is not a regular file (a folder, a symlink, a device: never
    replaced), and a target that is one of ``inputs`` (it would overwrite what is being read).
    Nothing is created: a run that fails later leaves no folder behind.

    Raises
    ------
    InputError
    """
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        if not create_parents:
            raise InputError(f"{target}: cannot write: folder {folder} does not exist")
        folder = next(parent for parent in target.parents if parent.exists())
        if not folder.is_dir():
            raise InputError(f"{target}: cannot write: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(
            f"{target}: cannot write: folder {folder} is not writable by uid {os.getuid()}"
        )
    _check_replaceable(target)
    _check_not_an_input(target, inputs)


def _check_not_an_input(target: Path, inputs: Sequence[str | os.PathLike]) -> None:
    """Refuse ``target`` when it is one of ``inputs``: the same resolved path, or the same file
    (a hard link)."""
    resolved = target.resolve()
    for source in inputs:
        if Path(source).resolve() == resolved or (
            target.exists() and Path(source).exists() and os.path.samefile(source, target)
        ):
            raise InputError(f"{target}: is also an input ({source}); write the output elsewhere")


def check_output_set(
    folder: str | os.PathLike, names: Sequence[str], *, inputs: Sequence[str | os.PathLike] = ()
) -> list[Path]:
    """Fail before any work when one file of an output set cannot or must not be written.

    ``folder`` may not exist yet (it is then created when the set is written). Each target
    ``folder/name`` is refused as :func:`check_writable` refuses a file: not a regular file when
    it exists (a link, a folder), or one of ``inputs``.

    Returns
    -------
    list of Path
        The targets, in the order of ``names``.

    Raises
    ------
    InputError
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    targets = [folder / name for name in names]
    for target in targets:
        if folder.is_dir():
            check_writable(target, inputs=inputs)
        else:
            _check_not_an_input(target, inputs)
    return targets


def write_output_set(
    folder: str | os.PathLike,
    contents: dict[str, bytes | None],
    *,
    inputs: Sequence[str | os.PathLike] = (),
) -> list[Path]:
    """Write the files of one output set into ``folder`` (created if missing) as one unit.

    Every target is checked (:func:`check_output_set`) before any is written; the files are
    written into a temporary folder inside ``folder`` and then renamed into place. The check
    and the renames run under an exclusive lock on ``folder``, so two runs sharing it leave one
    run's set, never a mix of both.

    Parameters
    ----------
    folder : path-like
    contents : dict
        File name -> its bytes, or None for a file of the set this run does not write: an older
        one is removed, so that it is not read beside the new ones.
    inputs : sequence of path-like
        Files the set must not replace.

    Returns
    -------
    list of Path
        The files written.
    """
    folder = Path(folder)
    check_output_set(folder, list(contents), inputs=inputs)
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        check_output_set(folder, list(contents), inputs=inputs)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
        try:
            written = []
            for name, data in contents.items():
                if data is not None:
                    _write_new_file(staging / name, data)
            for name, data in contents.items():
                if data is None:
                    (folder / name).unlink(missing_ok=True)
                    continue
                os.replace(staging / name, folder / name)
                written.append(folder / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        os.close(descriptor)  # releases the lock
    return written


def _write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file with the permissions ``open()`` gives."""
    try:
        with open(path, "xb") as stream:
            stream.write(data)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path.parent.parent / path.name)) from None


def _check_replaceable(target: Path) -> None:
    try:
        status = os.lstat(target)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(status.st_mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(status.st_mode)
            else "a symbolic link"
            if stat.S_ISLNK(status.st_mode)
            else "not a regular file"
        )
        raise InputError(f"{target}: exists and is {kind}; only a regular file is replaced")


def write_bytes_atomic(
    path: str | os.PathLike, data: bytes, *, create_parents: bool = False
) -> None:
    """Write ``data`` so that ``path`` either keeps its old content or holds all of it.

    The bytes go to a temporary file in the same folder, which then replaces ``path``; the
    temporary file is removed on any failure, SIGINT and (under
    :func:`evaluation.errors.run_reporting_errors`) SIGTERM included. A ``path`` that exists and
    is not a regular file is never replaced (:class:`InputError`). An ``OSError`` (disk full,
    permissions) names ``path``, not the temporary file. With ``create_parents``, missing folders
    above ``path`` are created first.
    """
    target = Path(path)
    _check_replaceable(target)
    try:
        if create_parents:
            target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(target)) from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            # mkstemp creates the file private (0600); give it the permissions open() would.
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(stream.fileno(), 0o666 & ~umask)
            stream.write(data)
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror, str(target)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
