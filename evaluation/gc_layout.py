"""Grand Challenge layouts of a split: algorithm input, ground truth and evaluation input.

::

    GC/input/images/cell_patches/000.tif      N*S x S x 3 stacked cell patches
    GC/input/images/tissue_patches/000.tif    N*S x S x 3 stacked tissue patches
    GC/input/metadata.json                    list, entry k describes pair k
    GC/ground_truth/cell_gt.json              "Multiple points" with num_images
    GC/ground_truth/metadata.json             the input's metadata list (gives the scorer organs)
    GC/evaluation/input/predictions.json      the platform's list of algorithm jobs
    GC/evaluation/input/<pk>/output/cell_classification.json   that job's predictions

:class:`GrandChallengeWriter` writes all three; :func:`read_jobs` and
:func:`read_job_predictions` read the evaluation input back as the platform hands it over.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from evaluation.constants import BC, TC
from evaluation.errors import DataError, InputError, preview
from evaluation.files import check_output_set, write_json_atomic
from evaluation.limits import current_limits
from evaluation.multiple_points import points_document, points_from_document
from evaluation.pairs import Pair
from evaluation.points import PointSet
from evaluation.stacked import write_stacked_tiff
from evaluation.strict_json import json_kind, read_json_document
from evaluation.text import has_control_character

__all__ = [
    "OUTPUT_SLUG",
    "STACK_NAME",
    "GrandChallengeWriter",
    "Job",
    "check_inside",
    "check_no_links",
    "noisy_predictions",
    "read_job_predictions",
    "read_jobs",
    "resolve_inside",
    "write_evaluation_input",
]

#: The algorithm output interface that holds the cell predictions.
OUTPUT_SLUG = "cell-classification"
STACK_NAME = "000.tif"


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, obj)


def _point_set(image: np.ndarray, points: np.ndarray, probability: np.ndarray) -> PointSet:
    return PointSet.from_arrays(image, points[:, :2], points[:, 2], probability)


class GrandChallengeWriter:
    """Collects the pairs of one split and writes its Grand Challenge layouts.

    Patches are buffered in memory-mapped temporary files, so memory stays at one pair.

    Parameters
    ----------
    directory : Path
        Receives ``input/``, ``ground_truth/`` and ``evaluation/``; nothing is written through a
        link below it.
    count, size : int
        Number of pairs and patch side in pixels.
    compression : str or None
        TIFF compression (``None``: uncompressed single strip, as the platform writes; ``"zlib"``).
    inputs : tuple of Path
        Files read to make the layout; none may be a target.
    """

    def __init__(
        self,
        directory: Path,
        count: int,
        size: int,
        compression: str | None = None,
        *,
        inputs: tuple[Path, ...] = (),
    ):
        self.directory = Path(directory)
        # Every target is checked before anything is written: none may lead out of the
        # directory through a link, nor replace an input.
        for relative in LAYOUT_PATHS:
            check_no_links(self.directory, self.directory / relative)
        for relative in LAYOUT_PATHS[:-1]:
            target = self.directory / relative
            check_output_set(target.parent, [target.name], inputs=inputs)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.compression = compression
        self._scratch = tempfile.TemporaryDirectory(dir=self.directory, prefix=".stacking-")
        shape = (count, size, size, 3)
        scratch = Path(self._scratch.name)
        self._cells = np.lib.format.open_memmap(scratch / "cells.npy", "w+", np.uint8, shape)
        self._tissues = np.lib.format.open_memmap(scratch / "tissues.npy", "w+", np.uint8, shape)
        self._metadata: list[dict | None] = [None] * count
        self._points: list[np.ndarray | None] = [None] * count

    def add(self, index: int, pair: Pair) -> None:
        """Store pair ``index`` (becomes ``image_<index>``).

        Raises
        ------
        DataError
            A patch is not of the writer's size: the platform stacks patches of one size.
        """
        expected = self._cells.shape[1:]
        for kind, image in (("cell", pair.cell_image), ("tissue", pair.tissue_image)):
            if image.shape != expected:
                raise DataError(
                    f"pair {pair.name}: {kind} patch has shape {image.shape}, but "
                    f"the stack holds patches of shape {expected}"
                )
        self._cells[index] = pair.cell_image
        self._tissues[index] = pair.tissue_image
        self._metadata[index] = pair.meta
        self._points[index] = pair.cell_points

    def finish(
        self, rng: np.random.Generator, cell_mpp: float, predictions: dict | None = None
    ) -> None:
        """Write every layout and remove the temporary buffers.

        Parameters
        ----------
        rng : Generator
            Draws the job id and, without ``predictions``, the rehearsal predictions.
        cell_mpp : float
            Cell-patch resolution in µm per pixel (scales the rehearsal predictions' jitter).
        predictions : dict, optional
            A "Multiple points" document to put in the evaluation input as the job's output;
            by default a plausible detector output made from the ground truth
            (:func:`noisy_predictions`), so that the evaluation can be rehearsed.
        """
        if any(meta is None for meta in self._metadata):
            raise ValueError("not every pair was added")
        images = self.directory / "input" / "images"
        for kind, stack in (("cell_patches", self._cells), ("tissue_patches", self._tissues)):
            (images / kind).mkdir(parents=True, exist_ok=True)
            write_stacked_tiff(images / kind / STACK_NAME, stack, compression=self.compression)
        _write_json(self.directory / "input" / "metadata.json", self._metadata)
        _write_json(self.directory / "ground_truth" / "metadata.json", self._metadata)

        image = np.concatenate([np.full(len(p), k) for k, p in enumerate(self._points)]).astype(
            np.int64
        )
        points = np.concatenate(self._points).reshape(-1, 3)
        ground_truth = _point_set(image, points, np.ones(len(points)))
        _write_json(
            self.directory / "ground_truth" / "cell_gt.json",
            points_document(ground_truth, num_images=len(self._points)),
        )
        if predictions is None:
            size = self._cells.shape[1]
            predicted = noisy_predictions(rng, image, points, size, jitter_px=0.5 / cell_mpp)
            predictions = points_document(_point_set(*predicted))
        # After the predictions: the committed test data's job id follows from this order.
        pk = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        write_evaluation_input(
            self.directory / "evaluation" / "input", pk, predictions, root=self.directory
        )
        self._cells = self._tissues = None
        self._scratch.cleanup()


#: What a layout holds, relative to its folder; the last is replaced as a whole.
LAYOUT_PATHS = (
    f"input/images/cell_patches/{STACK_NAME}",
    f"input/images/tissue_patches/{STACK_NAME}",
    "input/metadata.json",
    "ground_truth/metadata.json",
    "ground_truth/cell_gt.json",
    "evaluation/input",
)


def check_no_links(root: Path, path: Path) -> None:
    """Refuse ``path`` when it, or a folder between ``root`` and it, is a symbolic link.

    Raises
    ------
    DataError
    """
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise DataError(
                f"{current}: is a symbolic link; {root} is written only through "
                "real folders, never out of it"
            )


def noisy_predictions(
    rng: np.random.Generator,
    image: np.ndarray,
    points: np.ndarray,
    size: int,
    *,
    jitter_px: float,
    drop: float = 0.12,
    flip: float = 0.12,
    false_positive: float = 0.10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plausible detector output made from ground truth: jittered, incomplete, partly wrong.

    Parameters
    ----------
    rng : Generator
    image : (N,) int
        Image index of each ground-truth point.
    points : (N, 3) int
        Ground truth ``[x, y, label]``, cell-patch pixels.
    size : int
        Patch side in pixels (predictions are clipped into it).
    jitter_px : float
        Standard deviation of the position error, pixels.
    drop, flip, false_positive : float
        Share of missed cells, of kept cells given the other class, and number of false positives
        per ground-truth point.

    Returns
    -------
    image : (M,) int64, points : (M, 3) int64, probability : (M,) float64 in [0, 1]
        Sorted by image; within an image, in random order.
    """
    keep = rng.random(len(points)) >= drop
    kept_image, kept = image[keep], points[keep].copy()
    flipped = rng.random(len(kept)) < flip
    kept[flipped, 2] = np.where(kept[flipped, 2] == TC, BC, TC)
    kept[:, :2] = np.clip(
        np.round(kept[:, :2] + rng.normal(0, jitter_px, (len(kept), 2))), 0, size - 1
    )
    probability = np.where(flipped, rng.beta(3, 3, len(kept)), rng.beta(6, 2, len(kept)))

    num_images = int(image.max()) + 1 if len(image) else 0
    extra = int(rng.poisson(false_positive * len(points))) if num_images else 0
    extra_image = rng.integers(0, max(num_images, 1), extra)
    extra_points = np.column_stack(
        [rng.integers(0, size, (extra, 2)), np.where(rng.random(extra) < 0.35, TC, BC)]
    )
    all_image = np.concatenate([kept_image, extra_image]).astype(np.int64)
    all_points = np.concatenate([kept, extra_points]).astype(np.int64).reshape(-1, 3)
    all_probability = np.round(np.concatenate([probability, rng.beta(2, 4, extra)]), 4)
    order = np.lexsort((rng.random(len(all_image)), all_image))
    return all_image[order], all_points[order], all_probability[order]


def write_evaluation_input(
    directory: Path, pk: str, predictions: dict, *, root: Path | None = None
) -> None:
    """Write the evaluation container's ``/input``: one succeeded job and its output file.

    ``directory`` is replaced as a whole; no folder from ``root`` (default: its parent) down to
    it may be a symbolic link (:class:`DataError`), so nothing outside ``root`` is removed.
    """
    jobs = [
        {
            "pk": pk,
            "status": "Succeeded",
            "inputs": [
                {
                    "interface": {
                        "slug": "cell-patches",
                        "kind": "Image",
                        "relative_path": "images/cell_patches",
                    },
                    "image": {"name": STACK_NAME},
                },
                {
                    "interface": {
                        "slug": "tissue-patches",
                        "kind": "Image",
                        "relative_path": "images/tissue_patches",
                    },
                    "image": {"name": STACK_NAME},
                },
            ],
            "outputs": [
                {
                    "interface": {
                        "slug": "cell-classification",
                        "kind": "Multiple points",
                        "relative_path": "cell_classification.json",
                    },
                    "value": None,
                }
            ],
        }
    ]
    # rmtree would empty a folder reached through a link: the path to it must have none.
    check_no_links(Path(root or directory.parent), directory)
    if directory.exists():
        shutil.rmtree(directory)
    _write_json(directory / "predictions.json", jobs)
    _write_json(directory / pk / "output" / "cell_classification.json", predictions)


# ---------------------------------------------------------------------------------------------
# Reading the evaluation input


@dataclass(frozen=True)
class Job:
    """One algorithm job of ``predictions.json``.

    Attributes
    ----------
    pk : str
        The job's primary key, as Grand Challenge names it.
    input_names : tuple of str
        Names of the job's input images (e.g. the stacked cell-patch TIFF).
    output : dict
        The job's ``cell-classification`` output entry.
    where : str
        Where the job sits, for messages: ``/input/predictions.json: [3] (job <pk>)``.
    """

    pk: str
    input_names: tuple[str, ...]
    output: dict
    where: str

    @property
    def label(self) -> str:
        """``job "<pk>"``, the pk quoted escaped and shortened, for messages."""
        return f"job {preview(self.pk)}"


def read_jobs(predictions_path: Path) -> list[Job]:
    """Read ``predictions.json``: every job and its ``cell-classification`` output entry.

    Raises
    ------
    InputError
        The file is missing or not JSON, or a job lacks ``pk`` or that output.
    """
    if not predictions_path.is_file():
        raise InputError(f"{predictions_path}: file not found")
    document = read_json_document(predictions_path)
    if type(document) is not list:
        raise InputError(
            f"{predictions_path}: top level must be a list of algorithm jobs, "
            f"got {json_kind(document)}"
        )
    if not document:
        raise InputError(f"{predictions_path}: the list of algorithm jobs is empty")
    current_limits().check("jobs", len(document), str(predictions_path), "algorithm jobs")
    jobs = []
    index_of_pk: dict[str, int] = {}
    for index, entry in enumerate(document):
        job = _job(predictions_path, index, entry)
        if job.pk in index_of_pk:
            # Scored twice, its counts would weigh double in the aggregates.
            raise InputError(
                f"{job.where}: pk is also the pk of job [{index_of_pk[job.pk]}]; "
                "each job must appear once"
            )
        index_of_pk[job.pk] = index
        jobs.append(job)
    return jobs


def _job(predictions_path: Path, index: int, entry: Any) -> Job:
    at = f"{predictions_path}: [{index}]"
    if type(entry) is not dict:
        raise InputError(f"{at}: a job must be a JSON object, got {json_kind(entry)}")
    pk = entry.get("pk")
    if type(pk) not in (str, int) or str(pk) == "":
        raise InputError(f"{at}.pk: must be a non-empty string, got {preview(pk)}")
    pk = str(pk)
    if has_control_character(pk):
        raise InputError(f"{at}.pk: must not hold control characters, got {preview(pk)}")
    at = f"{predictions_path}: [{index}] (job {preview(pk)})"
    outputs = entry.get("outputs")
    if type(outputs) is not list:
        raise InputError(f"{at}: outputs: must be a list, got {json_kind(outputs)}")
    matching = [
        output
        for output in outputs
        if type(output) is dict
        and type(output.get("interface")) is dict
        and output["interface"].get("slug") == OUTPUT_SLUG
    ]
    if len(matching) != 1:
        slugs = [_slug(output) for output in outputs]
        raise InputError(
            f'{at}: outputs: expected one output with interface slug "{OUTPUT_SLUG}", '
            f"found {len(matching)} among slugs {preview(slugs)}"
        )
    return Job(
        pk=pk, input_names=_input_image_names(entry.get("inputs")), output=matching[0], where=at
    )


def _slug(output: Any) -> Any:
    interface = output.get("interface") if type(output) is dict else None
    return interface.get("slug") if type(interface) is dict else None


def _input_image_names(inputs: Any) -> tuple[str, ...]:
    """Names of a job's image inputs (``inputs[i].image.name``); other inputs have none."""
    if type(inputs) is not list:
        return ()
    names = []
    for value in inputs:
        image = value.get("image") if type(value) is dict else None
        if type(image) is dict and type(image.get("name")) is str:
            names.append(image["name"])
    return tuple(names)


def read_job_predictions(job: Job, input_dir: Path, num_images: int) -> PointSet:
    """The predictions of ``job``: its inline value, else the file it wrote.

    The file lives at ``<input_dir>/<pk>/output/<relative_path>``. Points are validated by the
    scorer's rule, with image indices below ``num_images`` of the job's ground truth.

    Raises
    ------
    InputError
        The output is missing or does not pass the validity rule; the message names the job.
    """
    value = job.output.get("value")
    if value is not None:
        source = f"{job.label}: inline {OUTPUT_SLUG} value"
        document = value
    else:
        path = _job_output_path(job, input_dir)
        if not path.is_file():
            raise InputError(
                f"{job.label}: output file {path} is missing (the {OUTPUT_SLUG} output has no "
                "inline value either)"
            )
        source = f"{job.label}: {path}"
        try:
            document = read_json_document(path)
        except InputError as error:
            raise InputError(f"{job.label}: {error}") from None
    points, _ = points_from_document(
        document, source=source, role="predictions", num_images=num_images
    )
    return points


def _job_output_path(job: Job, input_dir: Path) -> Path:
    relative_path = job.output["interface"].get("relative_path")
    if type(relative_path) is not str or not relative_path:
        raise InputError(
            f"{job.where}: the {OUTPUT_SLUG} output has neither a value nor an "
            f"interface.relative_path (got {preview(relative_path)})"
        )
    for field, part in (("pk", job.pk), ("relative_path", relative_path)):
        check_inside(part, f"{job.where}: {field}")
    return resolve_inside(
        input_dir,
        f"{job.pk}/output/{relative_path}",
        f"{job.where}: output {preview(relative_path)}",
    )


def check_inside(relative: str, where: str) -> None:
    """Reject relative paths that would leave their folder by their very text, and paths with
    a control character (a NUL would end in the operating system's ``ValueError``)."""
    if has_control_character(relative):
        raise InputError(f"{where}: must not hold control characters, got {preview(relative)}")
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts or "\\" in relative:
        raise InputError(f"{where}: must be a path inside its folder, got {preview(relative)}")


def resolve_inside(root: Path, relative: str, where: str) -> Path:
    """``root / relative`` with every symbolic link resolved, refused if it leaves ``root``.

    ``where`` names the path in the message (``where`` + " leads outside ...").

    A submission controls what lies under ``/input``: a link there to the baked ground truth
    (or anywhere else) must not be read. The text of ``relative`` is checked by
    :func:`check_inside` first.

    Raises
    ------
    InputError
        The resolved path lies outside ``root``.
    """
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise InputError(
            f"{where} leads outside {root} through a symbolic link; only files inside it are read"
        )
    return resolved
