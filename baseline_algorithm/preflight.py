"""Rehearse a submission: run an algorithm image as the platform does and check what it does.

:func:`run_image` runs the image once under the platform's flags
(:mod:`baseline_algorithm.platform`)
with the docker command-line client, polling the container's memory cgroup for its peak and
stopping it at the time limit. :func:`checklist` turns the run into checks, each with its figure:

1. image: size, and a user other than root;
2. exit status (with the reason when it is not 0: out of memory, the network, the pids limit, a
   write outside ``/output``, or the last line of the log);
3. wall time against the limit; time to the first pair and per pair when the log shows the
   entry's ``pair k/N`` lines;
4. peak memory from the cgroup against the limit;
5. ``/output/cell_classification.json`` exists and passes the organisers' validity rule;
6. it names only ``image_k`` of the input's pairs;
7. scores, when ground truth is given.

A check whose input is missing (no output file to read) is skipped; the first failed check is
the verdict.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from baseline_algorithm.platform import OUTPUT_FILE, RunLimits, docker_run_arguments, memory_bytes
from evaluation import InputError, check_image_range, points_from_document, read_json_document
from evaluation.errors import OcelotError
from evaluation.metadata import read_gc_metadata

__all__ = ["Check", "ContainerRun", "PreflightError", "checklist", "run_image"]

OUTPUT_NAME = Path(OUTPUT_FILE).name
#: Log lines that say the container tried to reach the network (which ``--network none`` refuses).
NETWORK_PATTERNS = re.compile(
    r"Network is unreachable|Temporary failure in name resolution|Name or service not known|"
    r"nodename nor servname|Could not resolve host|getaddrinfo failed|Failed to establish a new "
    r"connection|Max retries exceeded|urlopen error|ConnectionError|No route to host",
    re.IGNORECASE,
)
PIDS_PATTERNS = re.compile(
    r"can't start new thread|Resource temporarily unavailable|"
    r"fork: retry|pthread_create",
    re.IGNORECASE,
)
READ_ONLY_PATTERNS = re.compile(r"Read-only file system", re.IGNORECASE)
#: The entry's progress lines (``predict: pair 3/130 (image_2), ...``).
PAIR_LINE = re.compile(r"\bpair (\d+)/(\d+)\b")
LOG_TAIL_LINES = 15


class PreflightError(OcelotError):
    """The check cannot run (no such image, no docker); one line."""


@dataclass
class ContainerRun:
    """What one run of an image showed.

    Attributes
    ----------
    exit_code : int
    oom_killed : bool
    timed_out : bool
        Stopped by preflight at the time limit.
    wall_s : float
        From the container's start to its end, as Docker recorded them.
    peak_memory_bytes : int or None
        The cgroup's high-water mark (None where the cgroup cannot be read).
    log : list of (float, str)
        Seconds since the start and the line, stdout and stderr together.
    output : Path
        The host folder mounted at ``/output``.
    """

    exit_code: int
    oom_killed: bool
    timed_out: bool
    wall_s: float
    peak_memory_bytes: int | None
    log: list[tuple[float, str]]
    output: Path


@dataclass
class Check:
    """One line of the checklist: ``passed`` is None when the check was skipped."""

    name: str
    passed: bool | None
    figure: str
    failure: str = ""

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[self.passed]
        return f"  {mark}  {self.name}: {self.figure}"


@dataclass
class ImageFacts:
    size_bytes: int
    user: str
    extra: dict = field(default_factory=dict)


def docker(*arguments: str, timeout: float | None = 120, check: bool = True) -> str:
    """Run the docker client; its stdout, or :class:`PreflightError` with its last stderr line."""
    try:
        result = subprocess.run(
            ["docker", *arguments], capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError:
        raise PreflightError(
            "the docker command is not installed (preflight runs images with it)"
        ) from None
    if check and result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise PreflightError(f"docker {arguments[0]} failed: {reason}")
    return result.stdout


def inspect_image(image: str) -> ImageFacts:
    """Size and user of ``image``; :class:`PreflightError` when Docker does not have it."""
    result = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    if result.returncode != 0:
        raise PreflightError(
            f"image {image!r} not found: build it first "
            "(scripts/build-images.sh algorithm ...) or check the tag"
        )
    facts = json.loads(result.stdout)[0]
    return ImageFacts(size_bytes=int(facts.get("Size", 0)), user=facts["Config"].get("User") or "")


def _timestamp(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds -> POSIX seconds."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not match:
        raise ValueError(f"unexpected docker time {text!r}")
    whole, fraction, zone = match.groups()
    seconds = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp()
    return seconds + float(f"0.{fraction or 0}")


class MemoryPeak:
    """Polls a container's memory cgroup (v1 or v2) for its high-water mark until stopped."""

    def __init__(self, container_id: str, interval_s: float = 0.05):
        self.files = self._peak_files(container_id)
        self.interval_s = interval_s
        self.peak_bytes: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @staticmethod
    def _peak_files(container_id: str) -> list[Path]:
        root = Path("/sys/fs/cgroup")
        candidates = [
            root / "memory" / "docker" / container_id / "memory.max_usage_in_bytes",
            root
            / "memory"
            / "system.slice"
            / f"docker-{container_id}.scope"
            / "memory.max_usage_in_bytes",
            root / "system.slice" / f"docker-{container_id}.scope" / "memory.peak",
            root / "docker" / container_id / "memory.peak",
        ]
        return [path for path in candidates if path.exists()]

    def _poll(self) -> None:
        while not self._stop.is_set():
            for path in self.files:
                try:
                    value = int(path.read_text())
                except (OSError, ValueError):  # the cgroup goes when the container ends
                    continue
                self.peak_bytes = max(self.peak_bytes or 0, value)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def run_image(
    image: str, input_dir: Path, output_dir: Path, *, limits: RunLimits, time_limit_s: float
) -> ContainerRun:
    """Run ``image`` once under the platform's flags; stop it at ``time_limit_s``."""
    container = docker(
        "create", *docker_run_arguments(input_dir, output_dir, limits), image
    ).strip()
    try:
        with MemoryPeak(container) as memory:
            docker("start", container)
            memory.files = memory.files or MemoryPeak._peak_files(container)
            waiter = subprocess.Popen(
                ["docker", "wait", container],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            try:
                waiter.wait(timeout=time_limit_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                docker("kill", container, check=False)
                waiter.wait()
                timed_out = True
        state = json.loads(docker("inspect", container))[0]["State"]
        started, finished = _timestamp(state["StartedAt"]), _timestamp(state["FinishedAt"])
        raw_log = subprocess.run(
            ["docker", "logs", "--timestamps", container],
            capture_output=True,
            text=True,
            errors="replace",
        )
        log = []
        for line in (raw_log.stdout + raw_log.stderr).splitlines():
            stamp, _, text = line.partition(" ")
            try:
                log.append((_timestamp(stamp) - started, text))
            except ValueError:
                log.append((float("nan"), line))
        log.sort(key=lambda entry: entry[0])
    finally:
        docker("rm", "--force", container, check=False)
    return ContainerRun(
        exit_code=int(state["ExitCode"]),
        oom_killed=bool(state.get("OOMKilled")),
        timed_out=timed_out,
        wall_s=max(0.0, finished - started),
        peak_memory_bytes=memory.peak_bytes,
        log=log,
        output=output_dir,
    )


def _gigabytes(count: float) -> str:
    return f"{count / 1024**3:.2f} GB"


def _limit_words(limit: str) -> str:
    """``4g`` -> ``4 GB``, ``512m`` -> ``512 MB``."""
    units = {"g": "GB", "m": "MB", "k": "KB", "b": "bytes"}
    text = limit.strip().lower()
    return f"{text[:-1]} {units[text[-1]]}" if text[-1:] in units else f"{text} bytes"


def exit_reason(run: ContainerRun, limits: RunLimits, time_limit_s: float) -> str:
    """Why the container ended badly, in words a participant can act on."""
    lines = [text for _, text in run.log if text.strip()]
    if run.timed_out:
        done = [int(m.group(1)) for _, text in run.log if (m := PAIR_LINE.search(text))]
        progress = f" while on pair {max(done)}" if done else ""
        return (
            f"too slow: stopped at the time limit of {time_limit_s:g} s{progress}; "
            "make each pair faster or use the GPU"
        )
    if run.oom_killed or (
        run.exit_code == 137
        and run.peak_memory_bytes is not None
        and run.peak_memory_bytes >= 0.95 * memory_bytes(limits.memory)
    ):
        return (
            f"killed: out of memory at {_limit_words(limits.memory)}; hold fewer pairs "
            "(or a smaller batch) in memory at once"
        )
    for pattern, words in (
        (
            NETWORK_PATTERNS,
            "tried to reach the network (there is none on the "
            "platform: bake weights and data into the image)",
        ),
        (
            PIDS_PATTERNS,
            f"hit the limit of {limits.pids} processes and threads "
            "(cap the worker and thread counts)",
        ),
        (READ_ONLY_PATTERNS, "wrote outside /output (only /output and /tmp are writable)"),
    ):
        hits = [text for text in lines if pattern.search(text)]
        if hits:
            return f"{words}: {hits[-1].strip()[:200]}"
    last = lines[-1].strip()[:300] if lines else "no output in the log"
    return f"exited with status {run.exit_code}: {last}"


def timing_figure(run: ContainerRun, time_limit_s: float, pairs: int) -> str:
    figure = f"{run.wall_s:.1f} s of {time_limit_s:g} s"
    first = [
        seconds for seconds, text in run.log if (m := PAIR_LINE.search(text)) and m.group(1) == "1"
    ]
    if first and run.exit_code == 0 and pairs:
        per_pair = (run.wall_s - first[0]) / pairs
        figure += f"; first pair after {first[0]:.1f} s, then {per_pair:.2f} s per pair"
    elif not first:
        figure += "; time per pair not in the log (no 'pair k/N' lines)"
    return figure


def checklist(
    image: ImageFacts,
    image_name: str,
    run: ContainerRun,
    *,
    pairs: int,
    limits: RunLimits,
    time_limit_s: float,
    ground_truth: Path | None = None,
    radius_px: float | None = None,
) -> list[Check]:
    """The checks of one run, in order (see the module's docstring)."""
    checks = []
    user = image.user or "root (no USER line)"
    root = image.user.split(":")[0] in ("", "root", "0")
    checks.append(
        Check(
            "image",
            not root,
            f"{image_name}, {image.size_bytes / 1e9:.2f} GB, user {user}",
            "runs as root: add a non-root user and a USER line to the Dockerfile" if root else "",
        )
    )
    ok = run.exit_code == 0 and not run.timed_out
    checks.append(
        Check(
            "exit status",
            ok,
            "0" if ok else f"{run.exit_code}",
            "" if ok else exit_reason(run, limits, time_limit_s),
        )
    )
    in_time = not run.timed_out and run.wall_s <= time_limit_s
    checks.append(
        Check(
            "wall time",
            in_time,
            timing_figure(run, time_limit_s, pairs),
            ""
            if in_time
            else f"too slow: {run.wall_s:.0f} s, over the limit of {time_limit_s:g} s",
        )
    )
    limit = memory_bytes(limits.memory)
    if run.peak_memory_bytes is None:
        memory_figure = (
            f"not readable from the cgroup on this host (limit {_limit_words(limits.memory)})"
        )
    else:
        memory_figure = f"{_gigabytes(run.peak_memory_bytes)} of {_limit_words(limits.memory)}"
    checks.append(
        Check(
            "peak memory",
            not run.oom_killed,
            memory_figure,
            f"killed: out of memory at {_limit_words(limits.memory)}" if run.oom_killed else "",
        )
    )
    if run.peak_memory_bytes is not None and not run.oom_killed and run.peak_memory_bytes > limit:
        checks[-1].passed, checks[-1].failure = False, "peak memory over the limit"

    written = run.output / OUTPUT_NAME
    if not written.is_file():
        checks.append(Check("output", False, f"no {OUTPUT_FILE}", f"wrote no {OUTPUT_FILE}"))
        checks.append(Check("image names", None, "no output to read"))
        if ground_truth is not None:
            checks.append(Check("scores", None, "no output to score"))
        return checks
    try:
        points, _ = points_from_document(_read_output(written), source=OUTPUT_FILE)
    except InputError as error:
        checks.append(Check("output", False, "breaks the organisers' validity rule", str(error)))
        checks.append(Check("image names", None, "output unreadable"))
        if ground_truth is not None:
            checks.append(Check("scores", None, "output unreadable"))
        return checks
    checks.append(Check("output", True, f"{OUTPUT_FILE}, {len(points)} points, valid"))
    try:
        check_image_range(points, pairs, OUTPUT_FILE)
        named = sorted(set(points.image.tolist()))
        figure = (
            f"image_{named[0]}..image_{named[-1]} ({len(named)} of {pairs} input pairs have cells)"
            if named
            else "no points"
        )
        checks.append(Check("image names", True, figure))
    except InputError as error:
        message = str(error).replace("ground truth's", "input's").replace(" images ", " pairs ")
        checks.append(Check("image names", False, "names a pair the input does not have", message))
    if ground_truth is not None:
        checks.append(_score_check(points, ground_truth, pairs, radius_px))
    return checks


def _read_output(path: Path):
    try:
        return read_json_document(path)
    except InputError as error:
        raise InputError(str(error).replace(str(path), OUTPUT_FILE)) from None


def _score_check(points, ground_truth: Path, pairs: int, radius_px: float | None) -> Check:
    from evaluation import read_points_document, score
    from evaluation.constants import MATCH_RADIUS_PX

    truth, count = read_points_document(ground_truth, role="ground_truth")
    if count != pairs:
        return Check(
            "scores",
            False,
            f"ground truth has {count} images, the input {pairs} pairs",
            f"{ground_truth}: num_images {count} differs from the input's {pairs} pairs",
        )
    report = score(points, truth, count, radius_px=radius_px or MATCH_RADIUS_PX)
    values = report.aggregates
    return Check(
        "scores",
        True,
        f"mF1 {values['mF1']:.4f} (F1/BC {values['F1/BC']:.4f}, "
        f"F1/TC {values['F1/TC']:.4f}) against {ground_truth}",
    )


def preflight(
    image: str,
    input_dir: Path,
    *,
    limits: RunLimits | None = None,
    time_limit_s: float = 3600.0,
    ground_truth: Path | None = None,
    keep_output: Path | None = None,
    radius_px: float | None = None,
    echo=print,
) -> list[Check]:
    """Run ``image`` on ``input_dir`` as the platform does and return the checklist.

    ``limits`` default to the platform's (:class:`RunLimits`). ``echo`` receives progress lines
    and, when the run fails, the tail of the container's log.
    """
    limits = limits or RunLimits()
    if time_limit_s <= 0:
        raise PreflightError(f"time limit {time_limit_s:g} s must be positive")
    try:
        memory_bytes(limits.memory)
    except ValueError as error:
        raise PreflightError(str(error)) from None
    if not input_dir.is_dir():
        raise PreflightError(
            f"{input_dir}: input folder not found (expected images/cell_patches/, "
            "images/tissue_patches/ and metadata.json)"
        )
    pairs = len(read_gc_metadata(input_dir))
    if ground_truth is not None and not ground_truth.is_file():
        raise PreflightError(f"{ground_truth}: ground truth file not found")
    facts = inspect_image(image)
    scratch = Path(tempfile.mkdtemp(prefix="ocelot-preflight-"))
    output_dir = scratch / "output"
    output_dir.mkdir()
    output_dir.chmod(0o777)  # whatever user the image runs as
    try:
        echo(
            f"preflight: running {image} on {input_dir} ({pairs} pairs): network none, memory "
            f"{limits.memory}, pids {limits.pids}, time limit {time_limit_s:g} s"
            + (", all GPUs" if limits.gpus else "")
        )
        run = run_image(image, input_dir, output_dir, limits=limits, time_limit_s=time_limit_s)
        checks = checklist(
            facts,
            image,
            run,
            pairs=pairs,
            limits=limits,
            time_limit_s=time_limit_s,
            ground_truth=ground_truth,
            radius_px=radius_px,
        )
        if any(check.passed is False for check in checks[1:4]):
            echo("preflight: the container's log ends with:")
            for _, text in run.log[-LOG_TAIL_LINES:]:
                echo(f"  | {text}")
        if keep_output is not None:
            keep_output.mkdir(parents=True, exist_ok=True)
            for path in output_dir.iterdir():
                shutil.copy2(path, keep_output / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return checks


def verdict(checks: Sequence[Check]) -> str:
    """The last line: every check passed, or the first failure in actionable words."""
    failed = [check for check in checks if check.passed is False]
    if not failed:
        return f"preflight: passed all {sum(c.passed is True for c in checks)} checks"
    return f"preflight: FAILED ({failed[0].name}): {failed[0].failure}"
