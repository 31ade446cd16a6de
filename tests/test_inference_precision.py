"""``predict --precision``: the option, how ``auto`` resolves, and what bfloat16 does to the points.

``auto`` depends on the CPU's flags, which are mocked here so that the rule is checked on any
machine. The agreement test runs the shipped model on test_data/input in float32 and under bfloat16
autocast and scores one against the other with the challenge's own rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

from baseline_algorithm import detector as detector_module
from baseline_algorithm import predict as predict_module
from baseline_algorithm.cli import main
from baseline_algorithm.commands import predict as predict_command
from baseline_algorithm.detector import (
    BASELINE_DETECTOR,
    DetectorError,
    LoadedDetector,
    cpu_flags,
    load_detector,
    resolve_precision,
)
from baseline_algorithm.inference import (
    SHIPPED_CHECKPOINT,
    BaselineDetector,
    autocast,
    baseline_detector,
    load_model,
    memory_format,
)
from evaluation import read_points_document, score

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


@pytest.mark.parametrize(
    ("flags", "device", "expected"),
    [
        ({"avx2", "avx512f", "avx512_bf16"}, "cpu", "bfloat16"),
        ({"avx2", "amx_bf16", "amx_tile"}, "cpu", "bfloat16"),
        ({"avx2", "avx512f"}, "cpu", "float32"),
        (set(), "cpu", "float32"),
    ],
)
def test_auto_precision(monkeypatch, flags, device, expected):
    monkeypatch.setattr(detector_module, "cpu_flags", lambda: frozenset(flags))
    assert resolve_precision("auto", device) == expected


@pytest.mark.parametrize(("bf16_supported", "expected"), [(True, "bfloat16"), (False, "float16")])
def test_auto_precision_on_cuda(monkeypatch, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_supported)
    assert resolve_precision("auto", "cuda") == expected


def test_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(detector_module, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    for name in ("float32", "bfloat16", "float16"):
        assert resolve_precision(name, "cpu") == name
    with pytest.raises(DetectorError, match="precision 'half' is not one of"):
        resolve_precision("half", "cpu")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_bf16\n\nprocessor\t: 1")
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_autocast_follows_the_precision():
    cpu = torch.device("cpu")
    layer = torch.nn.Linear(4, 4)
    for precision, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        with autocast(cpu, precision):
            assert layer(torch.ones(1, 4)).dtype == dtype
    with autocast(cpu):  # precision None: no autocast on the CPU
        assert layer(torch.ones(1, 4)).dtype == torch.float32


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
        monkeypatch.setattr(detector_module, "cpu_flags", lambda flags=flags: flags)
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
    assert "device cpu, precision float32, batch size 1" in capsys.readouterr().err


def points_at(precision: str):
    model, settings = load_model(SHIPPED_CHECKPOINT)
    model.to(memory_format=memory_format(precision))
    loaded = LoadedDetector(BASELINE_DETECTOR, BaselineDetector(model, settings, 1, precision))
    count, pairs = predict_module.read_inputs(TEST_INPUT)
    return predict_module.detect_all(loaded, pairs, count, progress=False), count


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
