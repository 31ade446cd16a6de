"""Grand Challenge evaluation entry: score every algorithm job of a submission.

Run inside the ``ocelot-eval`` container as ``python -m evaluation.gc_entry``, whose options
are those of :mod:`evaluation.commands.gc_evaluate`. It reads as its steps do:

1. :func:`evaluation.gc_layout.read_jobs`: ``/input/predictions.json``, the list of algorithm
   jobs of one submission.
2. :func:`evaluation.gc_layout.read_job_predictions`: each job's ``cell-classification``
   output, the file ``/input/<pk>/output/<relative_path>`` or the value given inline.
3. :func:`read_ground_truth_catalogue`: the ground truth, from the folder mounted at
   ``/opt/ml/input/data/ground_truth/`` when there is one, else the one baked into the image.
4. :func:`score_jobs`: each job against the ground truth of its input, with the scorer of
   ``python -m evaluation score``; ``aggregates`` cover all jobs.
5. :func:`write_metrics`: ``/output/metrics.json``, atomically, in the CLI's schema.

A ground-truth folder holds one of:

- one "Multiple points" GT JSON (any name) and optionally ``metadata.json``, a Grand Challenge
  metadata list that gives each image its organ. It serves a submission of one job: the OCELOT
  case, whose one input holds all test pairs stacked.
- ``ground_truth_index.json``: a JSON object mapping the name of a job's input image (as in
  ``predictions.json``, e.g. ``"cell_patches_a.tif"``) to the GT file of that input, relative to
  the folder, or to ``{"ground_truth": FILE, "metadata": FILE}``. Each job is scored against the
  entry whose name is one of its input images' names.
- an OCELOT release folder (``annotations/<split>/cell/*.csv`` and ``metadata.json``); the split
  comes from ``$OCELOT_GROUND_TRUTH_SPLIT`` (default ``test``).

Any input that cannot be scored ends the run with exit status 2, one last stderr line that says
what is wrong and where (job, file, entry, field, value), and no ``metrics.json``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.cli import run_module
from evaluation.constants import MATCH_RADIUS_PX
from evaluation.errors import InputError, preview
from evaluation.files import check_writable, write_json_atomic
from evaluation.gc_layout import (
    Job,
    check_inside,
    read_job_predictions,
    read_jobs,
    resolve_inside,
)
from evaluation.ground_truth import GroundTruth
from evaluation.metadata import METADATA_FILE, resolve_organs
from evaluation.metrics import ScoreReport, score
from evaluation.points import PointSet
from evaluation.release import read_ground_truth
from evaluation.strict_json import json_kind, read_json_document
from evaluation.table import format_report

__all__ = [
    "GROUND_TRUTH_INDEX",
    "check_ground_truth",
    "evaluate",
    "ground_truth_folder",
    "ground_truth_of",
    "main",
    "read_ground_truth_catalogue",
    "score_jobs",
    "write_metrics",
]

#: Name of the file that maps input image names to their ground truth.
GROUND_TRUTH_INDEX = "ground_truth_index.json"

_USAGE = (
    "mount the Grand Challenge evaluation input at /input (predictions.json and, per job, "
    "<pk>/output/cell_classification.json) and a writable folder at /output, e.g. "
    "docker run --rm -v IN:/input:ro -v OUT:/output ocelot-eval"
)


# ---------------------------------------------------------------------------------------------
# The ground truth (steps 1 and 2 read the evaluation input: evaluation.gc_layout)


def ground_truth_folder(mounted: Path, baked: Path) -> Path:
    """The mounted ground-truth folder when it holds anything, else the baked one.

    A tarball that unpacks into a single top-level folder is looked through.
    """
    for folder in (mounted, baked):
        if folder.is_dir() and any(folder.iterdir()):
            return _look_through_single_folder(folder)
    raise InputError(
        f"no ground truth: neither {mounted} (mounted) nor {baked} (baked in) holds any file"
    )


def _look_through_single_folder(folder: Path) -> Path:
    entries = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not (folder / "annotations").is_dir():
        return entries[0]
    return folder


def read_ground_truth_catalogue(folder: Path, *, split: str) -> dict[str | None, GroundTruth]:
    """Every ground truth of ``folder``, keyed by input image name (None: one GT for all).

    Parameters
    ----------
    folder : Path
        A folder with one GT JSON, a ``ground_truth_index.json``, or an OCELOT release.
    split : str
        Split of a release folder.

    Raises
    ------
    InputError
        The folder holds none or several candidate GT files, or a GT file is invalid.
    """
    index_path = folder / GROUND_TRUTH_INDEX
    if index_path.is_file():
        return _read_indexed_ground_truth(folder, index_path, split)
    if (folder / "annotations").is_dir():
        truth = read_ground_truth(folder, split=split)
        organs, _ = resolve_organs(
            None, num_images=truth.num_images, split=split, stems=truth.stems, search=(folder,)
        )
        return {None: truth.with_organs(organs)}
    candidates = sorted(
        path
        for path in folder.glob("*.json")
        if path.name != METADATA_FILE and not path.name.startswith(".")
    )
    if len(candidates) != 1:
        raise InputError(
            f"{folder}: expected one ground-truth JSON (besides {METADATA_FILE}), a "
            f"{GROUND_TRUTH_INDEX} or an OCELOT release folder; found "
            f"{[path.name for path in candidates]}"
        )
    metadata = folder / METADATA_FILE
    return {
        None: _read_ground_truth_file(
            candidates[0], metadata if metadata.is_file() else None, split
        )
    }


def _read_indexed_ground_truth(
    folder: Path, index_path: Path, split: str
) -> dict[str | None, GroundTruth]:
    index = read_json_document(index_path)
    if type(index) is not dict or not index:
        raise InputError(
            f"{index_path}: must be a non-empty JSON object mapping input image names to "
            f"ground-truth files, got {json_kind(index)}"
        )
    catalogue = {}
    for name, entry in index.items():
        where = f"{index_path}: [{preview(name)}]"
        if type(entry) is str:
            entry = {"ground_truth": entry}
        if type(entry) is not dict or type(entry.get("ground_truth")) is not str:
            raise InputError(
                f'{where}: must be a GT file name or {{"ground_truth": FILE, "metadata": FILE}}, '
                f"got {preview(entry)}"
            )
        metadata = entry.get("metadata")
        if metadata is not None and type(metadata) is not str:
            raise InputError(f"{where}.metadata: must be a file name, got {preview(metadata)}")
        paths = {}
        for field in ("ground_truth", "metadata"):
            if entry.get(field) is not None:
                check_inside(entry[field], f"{where}.{field}")
                paths[field] = resolve_inside(
                    folder, entry[field], f"{where}.{field} {preview(entry[field])}"
                )
        catalogue[name] = _read_ground_truth_file(
            paths["ground_truth"], paths.get("metadata"), split
        )
    return catalogue


def _read_ground_truth_file(path: Path, metadata: Path | None, split: str) -> GroundTruth:
    """A GT JSON; organs from a Grand Challenge metadata list (or release metadata's split)."""
    truth = read_ground_truth(path)
    organs, _ = resolve_organs(metadata, num_images=truth.num_images, split=split)
    return truth.with_organs(organs)


def ground_truth_of(
    job: Job, catalogue: dict[str | None, GroundTruth], num_jobs: int
) -> GroundTruth:
    """The ground truth that ``job`` is scored against: the one whose name is a job input's."""
    if None in catalogue:
        if num_jobs > 1:
            raise InputError(
                f"{num_jobs} jobs but one ground truth ({catalogue[None].source}) and no "
                f"{GROUND_TRUTH_INDEX}: map each input image name to its GT file there"
            )
        return catalogue[None]
    # The cell and tissue inputs may share a name (e.g. both "000.tif"): count names, not inputs.
    matches = sorted({name for name in job.input_names if name in catalogue})
    if len(matches) != 1:
        raise InputError(
            f"{job.where}: expected exactly one input image named in {GROUND_TRUTH_INDEX}, "
            f"found {len(matches)}; the job's input images are {preview(list(job.input_names))}"
        )
    return catalogue[matches[0]]


# ---------------------------------------------------------------------------------------------
# Step 4: scoring


def score_jobs(
    predictions: Sequence[PointSet],
    ground_truths: Sequence[GroundTruth],
    jobs: Sequence[Job],
    *,
    radius_px: float = MATCH_RADIUS_PX,
) -> ScoreReport:
    """Score each job against its ground truth; ``to_dict()`` of the result is ``metrics.json``.

    One job: exactly what ``python -m evaluation score --output`` writes for the same files.
    Several jobs: their images are scored together (image ``k`` of job ``j`` kept apart from
    every other job's image ``k``), so ``aggregates`` and ``per_organ`` are micro-averages over
    all jobs; each entry of ``results`` also names its ``job``, and ``name`` is the image within
    that job.
    """
    if len(jobs) == 1:
        truth = ground_truths[0]
        return score(
            predictions[0], truth.points, truth.num_images, radius_px=radius_px, organs=truth.organs
        )
    offsets = np.cumsum([0] + [truth.num_images for truth in ground_truths])
    known_organs = all(truth.organs is not None for truth in ground_truths)
    report = score(
        _concatenate(predictions, offsets[:-1]),
        _concatenate([truth.points for truth in ground_truths], offsets[:-1]),
        int(offsets[-1]),
        radius_px=radius_px,
        organs=(
            [organ for truth in ground_truths for organ in truth.organs] if known_organs else None
        ),
    )
    return _label_results_by_job(report, jobs, offsets)


def _concatenate(point_sets: Sequence[PointSet], image_offsets: Sequence[int]) -> PointSet:
    """One PointSet of all ``point_sets``, image indices of the j-th shifted by its offset."""
    return PointSet.from_arrays(
        np.concatenate(
            [points.image + offset for points, offset in zip(point_sets, image_offsets)]
        ),
        np.concatenate([points.xy for points in point_sets]).reshape(-1, 2),
        np.concatenate([points.label for points in point_sets]),
        np.concatenate([points.probability for points in point_sets]),
    )


def _label_results_by_job(
    report: ScoreReport, jobs: Sequence[Job], offsets: np.ndarray
) -> ScoreReport:
    results = []
    for job, start, stop in zip(jobs, offsets[:-1], offsets[1:]):
        for local, result in enumerate(report.results[start:stop]):
            results.append({"job": job.pk, **result, "name": f"image_{local}"})
    return ScoreReport(aggregates=report.aggregates, results=results, per_organ=report.per_organ)


# ---------------------------------------------------------------------------------------------
# Step 5: the metrics file


def write_metrics(output_dir: Path, metrics: dict) -> Path:
    """Write ``metrics.json`` into ``output_dir`` atomically; return its path."""
    path = output_dir / "metrics.json"
    write_json_atomic(path, metrics)
    return path


def _check_output_dir(output_dir: Path) -> None:
    """The mounted output folder takes ``metrics.json`` (the message adds how to mount it)."""
    try:
        check_writable(output_dir / "metrics.json")
    except InputError as error:
        raise InputError(f"{error}: {_USAGE}") from None


def _check_output_apart(output_dir: Path, inputs: dict[str, Path]) -> None:
    """Refuse an output folder within a folder the run reads: metrics.json could replace an
    input (a job's output file, a ground-truth file)."""
    resolved = output_dir.resolve()
    for role, folder in inputs.items():
        if resolved.is_relative_to(folder.resolve()):
            raise InputError(
                f"{output_dir}: lies within the {role} folder {folder}; write "
                "metrics.json to a folder apart from the inputs"
            )


# ---------------------------------------------------------------------------------------------
# The run


def evaluate(
    input_dir: Path,
    output_dir: Path,
    mounted_ground_truth: Path,
    baked_ground_truth: Path,
    *,
    split: str,
    radius_px: float,
) -> dict:
    """All steps: read the jobs and ground truth, score, write ``metrics.json``."""
    if not (input_dir / "predictions.json").is_file():
        raise InputError(f"{input_dir / 'predictions.json'} not found: {_USAGE}")
    _check_output_dir(output_dir)
    # A failed run must not leave an older run's numbers to be read as this one's.
    stale = output_dir / "metrics.json"
    if stale.is_file() and not stale.is_symlink():
        stale.unlink()
    jobs = read_jobs(
        resolve_inside(input_dir, "predictions.json", str(input_dir / "predictions.json"))
    )
    folder = ground_truth_folder(mounted_ground_truth, baked_ground_truth)
    _check_output_apart(output_dir, {"input": input_dir, "ground truth": folder})
    catalogue = read_ground_truth_catalogue(folder, split=split)
    print(f"{len(jobs)} job(s); ground truth from {folder}")
    ground_truths = [ground_truth_of(job, catalogue, len(jobs)) for job in jobs]
    predictions = []
    for job, truth in zip(jobs, ground_truths):
        predictions.append(read_job_predictions(job, input_dir, truth.num_images))
        print(
            f"{job.label}: {len(predictions[-1])} predicted cells, {len(truth.points)} "
            f"ground-truth cells in {truth.num_images} images ({truth.source})"
        )
    report = score_jobs(predictions, ground_truths, jobs, radius_px=radius_px)
    print(format_report(report, radius_px=radius_px))
    metrics = report.to_dict()
    print(f"wrote {write_metrics(output_dir, metrics)}")
    return metrics


def check_ground_truth(mounted_ground_truth: Path, baked_ground_truth: Path, *, split: str) -> None:
    """Load the ground truth the run would use and print what it holds (for image builds)."""
    folder = ground_truth_folder(mounted_ground_truth, baked_ground_truth)
    for name, truth in read_ground_truth_catalogue(folder, split=split).items():
        organs = "organs unknown" if truth.organs is None else f"{len(set(truth.organs))} organs"
        print(
            f"{name or 'every job'}: {truth.source}: {len(truth.points)} cells in "
            f"{truth.num_images} images, {organs}"
        )


def main(argv: list[str] | None = None) -> int:
    """The evaluation container's entry: the command :mod:`evaluation.commands.gc_evaluate`.

    Bad input ends with one ``error:`` line on stderr and exit code 2.
    """
    return run_module(
        "python -m evaluation.gc_entry",
        "evaluation.commands.gc_evaluate",
        sys.argv[1:] if argv is None else argv,
    )


if __name__ == "__main__":
    sys.exit(main())
