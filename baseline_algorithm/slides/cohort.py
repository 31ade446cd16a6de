"""``ocelot predict-slides``: ``predict-slide`` on every slide of a manifest, on Dask distributed.

Steps:

1. :func:`read_manifest`: a CSV with a ``slide`` column (paths relative to the manifest's
   folder), optional ``name`` (the output folder; default the file's stem) and ``mpp`` (level-0
   µm per pixel for slides whose metadata has none);
2. slides whose ``OUT/NAME/cells.json`` exists are finished and skipped (outputs are written
   atomically, so an existing file is a complete one); an unfinished one resumes from its journal;
3. :func:`connect` starts a ``LocalCluster`` (one process per worker, one slide at a time each) or
   joins the scheduler at ``--scheduler``; where a GPU is used, each task asks for the worker
   resource ``GPU=1``, so a GPU worker (``dask worker ADDRESS --resources GPU=1``) runs one slide
   at a time;
4. one task per slide (:func:`slide_task`): a slide that fails is recorded with its error line and
   the others go on;
5. ``OUT/summary.json`` lists every slide: ``done``, ``skipped`` or ``failed`` with its error.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from baseline_algorithm.commands.options import option
from baseline_algorithm.detector import BASELINE_DETECTOR
from baseline_algorithm.runtime import DEVICES, PRECISIONS, resolve_runtime
from baseline_algorithm.slides.errors import SlideError
from baseline_algorithm.slides.run import SlideOptions, predict_slide
from baseline_algorithm.slides.tiling import DEFAULT_OVERLAP_PX
from baseline_algorithm.tta import TTA_MODES
from evaluation.errors import OcelotError, preview
from evaluation.files import write_json_atomic

__all__ = ["CohortOptions", "ManifestRow", "predict_slides", "read_manifest", "slide_task"]

SUMMARY = "summary.json"
CELLS = "cells.json"
GEOJSON = "cells.geojson"


@dataclass(frozen=True)
class ManifestRow:
    """One slide of the manifest: its file, its output folder's name, its resolution if given."""

    line: int
    slide: Path
    name: str
    mpp: float | None


@dataclass(frozen=True)
class CohortOptions:
    """What ``predict-slides`` takes besides the manifest; each field is one option."""

    out: Path = field(
        metadata={"help": "output folder: NAME/cells.json, NAME/cells.geojson and summary.json"}
    )
    scheduler: str | None = option(
        None,
        "a running Dask scheduler (tcp://host:8786); default: a LocalCluster on this machine",
        metavar="ADDRESS",
    )
    workers: int = option(2, "LocalCluster worker processes, one slide each at a time (default 2)")
    detector: str = option(
        BASELINE_DETECTOR,
        f"the detector factory (default {BASELINE_DETECTOR})",
        metavar="MODULE:FACTORY",
    )
    checkpoint: Path | None = option(
        None, "weights handed to the factory (default: the factory's own)"
    )
    overlap: int = option(
        DEFAULT_OVERLAP_PX, "overlap of neighbouring cell tiles in cell-tile pixels", metavar="PX"
    )
    batch_size: int | None = option(None, "tiles per call, for a detector with detect_batch")
    device: str = option(
        "auto",
        "handed to the factory on each worker; cuda: tasks go to workers with the GPU resource",
        choices=DEVICES,
    )
    precision: str = option("auto", "arithmetic of the forward pass", choices=PRECISIONS)
    tta: str = option(
        "none", "test-time augmentation, as predict-slide's --tta", choices=tuple(TTA_MODES)
    )
    geojson: bool = option(True, "also write NAME/cells.geojson")


def read_manifest(path: Path) -> list[ManifestRow]:
    """The slides of a manifest CSV.

    Raises
    ------
    SlideError
        A missing file or ``slide`` column, an empty ``slide``, a bad ``mpp``, a name used twice.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "slide" not in reader.fieldnames:
                raise SlideError(
                    f"{path}: expected a CSV with a 'slide' column (and optional "
                    f"'name', 'mpp'), got columns {preview(reader.fieldnames)}"
                )
            entries = list(reader)
    except OSError as error:
        raise SlideError(f"{path}: cannot read the manifest ({error.strerror or error})") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise SlideError(f"{path}: not a CSV manifest ({error})") from None
    rows, names = [], {}
    for line, entry in enumerate(entries, start=2):
        where = f"{path} line {line}"
        slide = (entry.get("slide") or "").strip()
        if not slide:
            raise SlideError(f"{where}: slide: empty")
        # Absolute, so that workers on other machines (and in other folders) find the same file.
        slide_path = Path(slide) if os.path.isabs(slide) else path.resolve().parent / slide
        name = (entry.get("name") or "").strip() or slide_path.name.split(".")[0]
        if "/" in name or name in (".", ".."):
            raise SlideError(f"{where}: name: {preview(name)} is not a folder name")
        if name in names:
            raise SlideError(
                f"{where}: name: {preview(name)} is already the name of line {names[name]}"
            )
        names[name] = line
        mpp_text = (entry.get("mpp") or "").strip()
        mpp = None
        if mpp_text:
            try:
                mpp = float(mpp_text)
            except ValueError:
                mpp = math.nan
            if not (math.isfinite(mpp) and mpp > 0):
                raise SlideError(
                    f"{where}: mpp: expected a positive number of µm per pixel, "
                    f"got {preview(mpp_text)}"
                )
        rows.append(ManifestRow(line, slide_path, name, mpp))
    if not rows:
        raise SlideError(f"{path}: the manifest lists no slide")
    return rows


def slide_task(row: ManifestRow, options: CohortOptions) -> dict:
    """Run one slide (on a worker); its outcome, never an exception for bad input."""
    folder = options.out / row.name
    started = time.perf_counter()
    outcome = {"name": row.name, "slide": str(row.slide), "line": row.line}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        run = predict_slide(
            row.slide,
            SlideOptions(
                output=folder / CELLS,
                detector=options.detector,
                checkpoint=options.checkpoint,
                geojson=folder / GEOJSON if options.geojson else None,
                mpp=row.mpp,
                overlap=options.overlap,
                batch_size=options.batch_size,
                device=options.device,
                precision=options.precision,
                tta=options.tta,
                progress=False,
            ),
        )
    except OcelotError as error:
        return {**outcome, "status": "failed", "error": str(error).splitlines()[0]}
    except OSError as error:
        return {**outcome, "status": "failed", "error": f"{error.filename}: {error.strerror}"}
    except Exception as error:  # the detector's own bug: this slide fails, the others go on
        reason = str(error).strip().splitlines()
        return {
            **outcome,
            "status": "failed",
            "error": f"{type(error).__name__}: {reason[0] if reason else ''}",
        }
    return {
        **outcome,
        "status": "done",
        "cells": run.cells,
        "tiles": run.tiles,
        "resumed_tiles": run.resumed,
        "seconds": round(time.perf_counter() - started, 3),
    }


@contextlib.contextmanager
def connect(options: CohortOptions, gpu: bool) -> Iterator:
    """A Dask client of the scheduler at ``options.scheduler``, else of a new LocalCluster.

    A LocalCluster is closed on the way out (after the client); a scheduler given is left running.
    """
    from distributed import Client, LocalCluster

    if options.scheduler is not None:
        try:
            client = Client(options.scheduler, timeout="20s")
        except (OSError, TimeoutError) as error:
            raise SlideError(f"scheduler {options.scheduler}: cannot connect ({error})") from None
        with client:
            yield client
        return
    if options.workers < 1:
        raise SlideError(f"workers {options.workers}: expected at least 1")
    with (
        LocalCluster(
            n_workers=options.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            resources={"GPU": 1} if gpu else None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def predict_slides(manifest: Path, options: CohortOptions, *, progress: bool = True) -> dict:
    """Run every unfinished slide of ``manifest``, write ``OUT/summary.json``; returns it.

    Raises
    ------
    SlideError
        A bad manifest or scheduler (before any slide runs), or, after the summary is written, one
        line counting the slides that failed.
    """
    rows = read_manifest(manifest)
    options = replace(
        options,
        out=options.out.resolve(),
        checkpoint=None if options.checkpoint is None else options.checkpoint.resolve(),
    )
    options.out.mkdir(parents=True, exist_ok=True)
    outcomes = {
        row.name: {"name": row.name, "slide": str(row.slide), "line": row.line, "status": "skipped"}
        for row in rows
        if (options.out / row.name / CELLS).is_file()
    }
    todo = [row for row in rows if row.name not in outcomes]
    # The device is decided here, on the client: on a GPU the tasks ask for a GPU worker.
    gpu = bool(todo) and resolve_runtime(options.device, options.precision).device_type == "cuda"
    if todo:
        from distributed import as_completed

        with connect(options, gpu) as client:
            futures = [
                client.submit(
                    slide_task,
                    row,
                    options,
                    key=f"slide-{row.name}",
                    resources={"GPU": 1} if gpu else None,
                    pure=False,
                )
                for row in todo
            ]
            with tqdm(
                total=len(rows),
                initial=len(outcomes),
                desc="predict-slides",
                unit="slide",
                disable=not (progress and sys.stderr.isatty()),
            ) as meter:
                for future in as_completed(futures):
                    outcome = future.result()
                    outcomes[outcome["name"]] = outcome
                    meter.update()
                    if progress and not sys.stderr.isatty():
                        log(
                            f"{outcome['name']}: {outcome['status']}"
                            + (f": {outcome['error']}" if "error" in outcome else "")
                        )
            futures.clear()  # released before the cluster closes, so that none is recomputed
    slides = [outcomes[row.name] for row in rows]
    counts = {
        status: sum(s["status"] == status for s in slides)
        for status in ("done", "skipped", "failed")
    }
    summary = {
        **counts,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "slides": slides,
    }
    write_json_atomic(options.out / SUMMARY, summary)
    if counts["failed"]:
        first = next(s for s in slides if s["status"] == "failed")
        raise SlideError(
            f"{counts['failed']} of {len(rows)} slides failed (listed in "
            f"{options.out / SUMMARY}), first {first['name']}: {first['error']}"
        )
    return summary


def log(message: str) -> None:
    print(f"predict-slides: {message}", file=sys.stderr, flush=True)
