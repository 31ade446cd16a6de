"""The shipped Pred-to-inter-2 weights (issue 5, item 5) and their model card.

The checkpoint must stay under 30 MB, load on the CPU without touching the network, be the variant
the container runs, and still score what its model card states on the synthetic test split it was
trained for. That split is regenerated here pair by pair (a synthetic pair depends only on the seed
and its index) and stored as the release stores it (JPEG), so the test needs no training run.
"""

from __future__ import annotations

import re
import socket
from dataclasses import replace

import pytest
import torch

from baseline_algorithm.checkpoint import load_checkpoint, read_checkpoint
from baseline_algorithm.data.synthetic import SyntheticConfig, synthesize_pair
from baseline_algorithm.inference import SHIPPED_CHECKPOINT, load_model
from baseline_algorithm.reproduce import evaluate_pairs
from evaluation.images import read_rgb
from evaluation.release import write_release_pair

MODEL_CARD = SHIPPED_CHECKPOINT.parent / "README.md"
MAX_BYTES = 30_000_000
#: The card's figures are rounded to 4 decimals; other CPUs may move a peak by float rounding.
SCORE_TOLERANCE = 0.005


def card_value(label: str) -> str:
    """The value of a ``- label: value`` line of the model card."""
    match = re.search(
        rf"^- {re.escape(label)}: `?([^`\n]+)`?$", MODEL_CARD.read_text(), flags=re.MULTILINE
    )
    assert match, f"{MODEL_CARD} has no '- {label}:' line"
    return match.group(1).strip()


def test_checkpoint_is_small_enough_to_ship():
    assert SHIPPED_CHECKPOINT.stat().st_size <= MAX_BYTES


def test_checkpoint_loads_on_cpu_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"loading the checkpoint tried to open a connection to {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    model = load_checkpoint(SHIPPED_CHECKPOINT, map_location="cpu")
    assert model.config.variant == "pred-to-inter-2"
    assert {parameter.device.type for parameter in model.parameters()} == {"cpu"}


def test_model_card_describes_the_checkpoint():
    payload = read_checkpoint(SHIPPED_CHECKPOINT)
    assert card_value("variant") == payload["config"]["variant"]
    assert card_value("encoder") == payload["config"]["encoder"]
    assert int(card_value("patch size (px)")) == payload["config"]["patch_size"]
    assert card_value("weights") == payload["weights_dtype"]
    assert int(card_value("best epoch")) == payload["epoch"]


@pytest.mark.slow
def test_checkpoint_scores_what_the_model_card_states(tmp_path):
    seed = int(card_value("data seed"))
    size = int(card_value("data patch size (px)"))
    train, val, test = (int(n) for n in card_value("pairs (train, val, test)").split())
    width = max(3, len(str(train + val + test)))
    pairs = []
    for index in range(train + val, train + val + test):
        pair = synthesize_pair(
            f"{index + 1:0{width}d}", seed, index, "test", SyntheticConfig(size=size)
        )
        write_release_pair(tmp_path, "test", pair)
        images = tmp_path / "images" / "test"
        pairs.append(
            replace(
                pair,
                cell_image=read_rgb(images / "cell" / f"{pair.name}.jpg"),
                tissue_image=read_rgb(images / "tissue" / f"{pair.name}.jpg"),
            )
        )
    model, settings = load_model(
        SHIPPED_CHECKPOINT, torch.device("cpu")
    )  # as the container loads it
    aggregates = evaluate_pairs(model, pairs, settings, batch_size=8, progress=False)["aggregates"]
    for key in ("mF1", "F1/BC", "F1/TC"):
        assert aggregates[key] == pytest.approx(
            float(card_value(f"test {key}")), abs=SCORE_TOLERANCE
        ), key
