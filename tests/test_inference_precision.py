"""``predict --precision``: the option, what reaches the factory, and what bfloat16 does to the
points.

How ``auto`` resolves is tested in tests/test_runtime.py, on simulated hosts. The agreement test
runs the shipped model on test_data/input in float32 and under bfloat16 autocast and scores one
against the other with the challenge's own rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

from baseline_algorithm import detector as detector_module
from baseline_algorithm import predict as predict_module
from baseline_algorithm import runtime
from baseline_algorithm.cli import main
from baseline_algorithm.commands import predict as predict_command
from baseline_algorithm.detector import BASELINE_DETECTOR, LoadedDetector, load_detector
from baseline_algorithm.inference import (
    SHIPPED_CHECKPOINT,
    BaselineDetector,
    baseline_detector,
    load_model,
)
from baseline_algorithm.runtime import Host, autocast, memory_format
from evaluation import read_points_document, score
from evaluation.stacked import GcInput

REPO = Path(__file__).resolve().parents[1]
TEST_INPUT = REPO / "test_data" / "input"
TEST_GROUND_TRUTH = REPO / "test_data" / "ground_truth" / "cell_gt.json"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    predict_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_precision_option_parses():
    assert parse().precision == "auto"
    for name in ("float32", "bfloat16", "float16"):
        assert parse("--precision", name).precision == name


def test_unknown_precision_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse("--precision", "int8")
    assert exit_info.value.code == 2
    assert "--precision" in capsys.readouterr().err


def test_autocast_follows_the_precision():
    cpu = torch.device("cpu")
    layer = torch.nn.Linear(4, 4)
    for precision, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        with autocast(cpu, precision):
            assert layer(torch.ones(1, 4)).dtype == dtype
    with pytest.raises(ValueError, match="not a resolved one"):
        autocast(cpu, "auto")


def test_precision_reaches_only_a_factory_that_takes_it(monkeypatch):
    received = {}

    def with_precision(device, precision):
        received["precision"] = precision
        return lambda pair: []

    def without_precision(device):
        return lambda pair: []

    module = type(detector_module)("precision_factories")
    module.with_precision, module.without_precision = with_precision, without_precision
    monkeypatch.setitem(sys.modules, "precision_factories", module)
    loaded = load_detector("precision_factories:with_precision", precision="bfloat16")
    assert received == {"precision": "bfloat16"} and loaded.precision == "bfloat16"
    loaded = load_detector("precision_factories:without_precision", precision="bfloat16")
    assert loaded.precision is None


def test_factory_resolves_auto_and_lays_out_the_model(monkeypatch):
    """float32 keeps NCHW weights; bfloat16 gets channels_last ones (faster under autocast)."""
    for flags, precision, layout in (
        (frozenset(), "float32", torch.contiguous_format),
        (frozenset({"avx512_bf16"}), "bfloat16", torch.channels_last),
    ):
        monkeypatch.setattr(runtime.Host, "probe", classmethod(lambda cls, f=flags: cls(f)))
        detector = baseline_detector(precision="auto")
        assert detector.precision == precision
        kernels = [p for p in detector.model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
        assert kernels and all(p.is_contiguous(memory_format=layout) for p in kernels)


def test_precision_is_in_the_log_line(capsys, tmp_path):
    output = tmp_path / "out.json"
    status = main(
        [
            "predict",
            "--input",
            str(TEST_INPUT),
            "--output",
            str(output),
            "--device",
            "cpu",
            "--precision",
            "float32",
            "--quiet",
        ]
    )
    assert status == 0
    assert "device cpu, precision float32 (asked for), batch size 1" in capsys.readouterr().err


def test_auto_is_resolved_once_and_logged_with_its_reason(capsys, tmp_path, monkeypatch):
    """On a simulated CPU with avx512_bf16, predict's auto is bfloat16, handed to the factory and
    logged with the flag that chose it."""
    host = Host(frozenset({"avx2", "avx512_bf16"}))
    received = []

    def factory(device, precision):
        received.append((device, precision))
        return lambda pair: []

    module = type(detector_module)("logged_precision")
    module.make = factory
    monkeypatch.setitem(sys.modules, "logged_precision", module)
    options = predict_module.PredictOptions(
        input=TEST_INPUT, output=tmp_path / "out.json", detector="logged_precision:make", quiet=True
    )
    predict_module.predict(options, host=host)
    assert received == [("cpu", "bfloat16")]
    assert "device cpu, precision bfloat16 (CPU has avx512_bf16)" in capsys.readouterr().err


def points_at(precision: str):
    model, settings = load_model(SHIPPED_CHECKPOINT)
    model.to(memory_format=memory_format(precision))
    loaded = LoadedDetector(BASELINE_DETECTOR, BaselineDetector(model, settings, 1, precision))
    with GcInput(TEST_INPUT) as opened:
        return predict_module.detect_all(loaded, opened, len(opened), progress=False), len(opened)


@pytest.mark.slow
def test_bfloat16_points_agree_with_float32():
    """bf16 points scored against the float32 points: F1 >= 0.95; mF1 against the ground truth
    within 0.01 of float32's."""
    reference, count = points_at("float32")
    reduced, _ = points_at("bfloat16")
    assert len(reference) > 0
    agreement = score(reduced, reference, count).aggregates["mF1"]
    assert agreement >= 0.95, agreement
    truth, num_images = read_points_document(TEST_GROUND_TRUTH, role="ground_truth")
    assert num_images == count
    reference_mf1 = score(reference, truth, count).aggregates["mF1"]
    reduced_mf1 = score(reduced, truth, count).aggregates["mF1"]
    assert abs(reduced_mf1 - reference_mf1) <= 0.01, (reference_mf1, reduced_mf1)
