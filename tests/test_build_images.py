"""scripts/build-images.sh's diagnosis of a failed build, with stand-ins for ``docker`` and ``df``.

A full disk makes ``docker build`` fail with a tar or layer error in the middle of its output; the
script then ends with a line saying how much disk Docker's data folder has left. The stand-ins
answer for the daemon and the file system, so that no Docker engine and no full disk are needed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: `docker`: `info` names the data folder, `build` fails as Docker does on a full disk.
DOCKER_STAND_IN = """#!/usr/bin/env bash
case "$1" in
  info) echo "{docker_root}" ;;
  build) cat > /dev/null; echo "write /opt/venv/lib/big.so: no space left on device" >&2; exit 1 ;;
  *) exit 1 ;;
esac
"""

#: `df -B1G --output=avail FOLDER`: the header and the free gigabytes.
DF_STAND_IN = """#!/usr/bin/env bash
printf 'Avail\\n%4d\\n' {free_gb}
"""


def failed_eval_build(tmp_path: Path, free_gb: int) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker_root = tmp_path / "docker-root"
    docker_root.mkdir()
    for name, text in {
        "docker": DOCKER_STAND_IN.format(docker_root=docker_root),
        "df": DF_STAND_IN.format(free_gb=free_gb),
    }.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return subprocess.run(
        ["scripts/build-images.sh", "eval", "--tag", "ocelot-eval:stand-in"],
        cwd=REPO,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_failed_build_on_a_nearly_full_disk_says_how_much_is_free(tmp_path):
    result = failed_eval_build(tmp_path, free_gb=1)
    assert result.returncode != 0
    assert result.stderr.splitlines()[-1] == (
        f"build-images: building ocelot-eval:stand-in failed with 1 GB free under "
        f"{tmp_path / 'docker-root'}; a cold build needs about 2 GB"
    )


@pytest.mark.slow
def test_failed_build_with_disk_to_spare_blames_nothing_on_the_disk(tmp_path):
    result = failed_eval_build(tmp_path, free_gb=50)
    assert result.returncode != 0
    assert "no space left on device" in result.stderr
    assert "GB free under" not in result.stderr
