"""Shared fixtures.

Chromium: ``chromium`` gives the path of a headless Chromium or skips the test, saying why; with
``OCELOT_REQUIRE_CHROMIUM=1`` (``.ci/run`` sets it) a missing browser fails the test instead.

Docker: ``docker_client`` gives a Docker SDK client or skips the test, saying why, when no daemon
answers. With ``OCELOT_REQUIRE_DOCKER=1`` (``.ci/run`` sets it) an unreachable daemon fails the
test instead, so CI cannot pass by skipping the container tests.

Hypothesis: the "seeded" profile is loaded always, locally as in CI. It derandomizes (the draws
follow from each test's code, not from the clock) and keeps no example database, so a property
test gives the same verdict on every machine and every run. To explore new draws, choose the
"explore" profile and a seed: ``pytest --hypothesis-profile=explore --hypothesis-seed=7 ...``
(``--hypothesis-seed`` alone changes nothing while draws are derandomized); a failing draw found
that way is added to its test as an ``@example``.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import settings

settings.register_profile("seeded", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, database=None)
settings.load_profile("seeded")


@pytest.fixture(scope="session")
def docker_client():
    """A Docker SDK client whose daemon answered a ping; skips (or fails in CI) otherwise."""
    try:
        import docker
    except ImportError as error:
        _no_docker(f"the Docker SDK for Python is not installed ({error}); pip install docker")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as error:  # any failure to reach the daemon means: no Docker here
        _no_docker(
            f"no Docker daemon reachable ({type(error).__name__}: {error}); start one "
            "(.ci/run shows how) to run the container tests"
        )
    yield client
    client.close()


def _no_docker(reason: str):
    if os.environ.get("OCELOT_REQUIRE_DOCKER") == "1":
        pytest.fail(f"OCELOT_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


#: The base image scripts/docker-base.sh makes where no registry is reachable.
LOCAL_BASE_IMAGE = "ocelot-base:py311"


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """The Python 3.11 base image to build on: $OCELOT_BASE_IMAGE, else the local one made by
    scripts/docker-base.sh when it exists, else the Dockerfiles' default python:3.11-slim."""
    import docker

    if "OCELOT_BASE_IMAGE" in os.environ:
        return os.environ["OCELOT_BASE_IMAGE"]
    try:
        docker_client.images.get(LOCAL_BASE_IMAGE)
        return LOCAL_BASE_IMAGE
    except docker.errors.ImageNotFound:
        return "python:3.11-slim"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's ``chromium`` (or ``chromium-browser``); skips (or fails in CI) without."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    reason = "headless Chromium not found (apt-get install -y chromium)"
    if os.environ.get("OCELOT_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"OCELOT_REQUIRE_CHROMIUM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(params=["msgspec", "json"])
def json_parser(request, monkeypatch):
    """Run a test once with each parser the reader may use: they must agree exactly.

    "msgspec" sends every points document through the typed parser first, whatever its size;
    "json" (the standard library) never uses it.
    """
    import evaluation.multiple_points

    threshold = 0 if request.param == "msgspec" else float("inf")
    monkeypatch.setattr(evaluation.multiple_points, "TYPED_PARSER_MIN_BYTES", threshold)
    return request.param


@pytest.fixture
def record_draw_blocks(monkeypatch):
    """``record_draw_blocks()`` makes the bootstrap draw blocks of 500 counts (10 replicates of
    50 images) from then on, and returns the list of the replicates each block drew, in order.

    Call it after computing the reference at the default block size: the replicates must not
    depend on the block size, and memory must not grow with replicates x images.
    """
    import numpy as np

    import evaluation.bootstrap as bootstrap

    def record() -> list[int]:
        sizes = []
        multinomial = np.random.Generator.multinomial
        default_rng = np.random.default_rng

        class Recording:
            def __init__(self, seed):
                self.rng = default_rng(seed)

            def multinomial(self, *args, size):
                sizes.append(size)
                return multinomial(self.rng, *args, size=size)

        monkeypatch.setattr(bootstrap.np.random, "default_rng", Recording)
        monkeypatch.setattr(bootstrap, "DRAW_BLOCK_ELEMENTS", 500)
        return sizes

    return record
