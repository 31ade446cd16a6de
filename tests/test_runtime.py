"""One device and precision policy: every branch of ``auto`` on simulated hosts, and the pieces
that must work at every precision on any CPU (batch-norm and Dice statistics under autocast).

The hosts are :class:`~baseline_algorithm.runtime.Host` values, so each branch runs here whatever
this machine's CPU and GPU are.
"""

from __future__ import annotations

import pytest
import torch

from baseline_algorithm.losses import dice_loss
from baseline_algorithm.parallel import GlobalBatchNorm2d
from baseline_algorithm.runtime import (
    Host,
    Runtime,
    RuntimeOptionError,
    autocast,
    cpu_flags,
    memory_format,
    resolve_runtime,
)

AVX2 = Host(frozenset({"avx2", "avx512f"}))
AVX512_BF16 = Host(frozenset({"avx2", "avx512f", "avx512_bf16"}))
AMX = Host(frozenset({"avx2", "amx_bf16", "amx_tile"}))
AMPERE = Host(frozenset({"avx2"}), cuda=True, cuda_bfloat16=True)
VOLTA = Host(frozenset({"avx2"}), cuda=True, cuda_bfloat16=False)


@pytest.mark.parametrize(
    ("host", "device", "expected"),
    [
        (AVX2, "auto", Runtime("cpu", "float32", "CPU without native bfloat16")),
        (AVX512_BF16, "auto", Runtime("cpu", "bfloat16", "CPU has avx512_bf16")),
        (AMX, "cpu", Runtime("cpu", "bfloat16", "CPU has amx_bf16")),
        (Host(), "cpu", Runtime("cpu", "float32", "CPU without native bfloat16")),
        (AMPERE, "auto", Runtime("cuda", "bfloat16", "GPU computes in bfloat16")),
        (VOLTA, "auto", Runtime("cuda", "float16", "GPU without bfloat16")),
        (VOLTA, "cuda:1", Runtime("cuda:1", "float16", "GPU without bfloat16")),
        (AMPERE, "cpu", Runtime("cpu", "float32", "CPU without native bfloat16")),
    ],
)
def test_auto_precision_on_each_kind_of_host(host, device, expected):
    assert resolve_runtime(device, "auto", host) == expected


@pytest.mark.parametrize("host", [AVX2, AVX512_BF16, AMPERE])
@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_an_explicit_precision_is_kept_on_any_host(host, precision):
    chosen = resolve_runtime("cpu", precision, host)
    assert (chosen.precision, chosen.reason) == (precision, "asked for")


def test_the_choice_is_logged_with_its_reason():
    assert str(resolve_runtime("auto", "auto", AVX512_BF16)) == (
        "device cpu, precision bfloat16 (CPU has avx512_bf16)"
    )
    assert str(resolve_runtime("cuda", "float32", AMPERE)) == (
        "device cuda, precision float32 (asked for)"
    )


@pytest.mark.parametrize(
    ("device", "precision", "host", "message"),
    [
        ("tpu", "auto", AVX2, "device 'tpu' is not one of auto, cpu, cuda or cuda:N"),
        ("cuda:x", "auto", AMPERE, "device 'cuda:x' is not one of"),
        ("cuda", "auto", AVX2, "device cuda: no CUDA device is available"),
        ("cuda:0", "auto", AVX2, "device cuda:0: no CUDA device is available"),
        ("cpu", "half", AVX2, "precision 'half' is not one of auto, float32, bfloat16, float16"),
    ],
)
def test_impossible_choices_are_one_line(device, precision, host, message):
    with pytest.raises(RuntimeOptionError, match=message):
        resolve_runtime(device, precision, host)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_bf16\n\nprocessor\t: 1")
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_this_machine_resolves_to_a_runtime_it_can_run():
    host = Host.probe()
    chosen = resolve_runtime("auto", "auto", host)
    assert chosen.device == ("cuda" if host.cuda else "cpu")
    assert chosen.precision in ("float32", "bfloat16", "float16")


def test_layout_and_autocast_follow_the_resolved_precision():
    assert memory_format("float32") == torch.contiguous_format
    assert memory_format("bfloat16") == memory_format("float16") == torch.channels_last
    with autocast("cpu", "bfloat16"):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="not a resolved one"):
        memory_format("auto")


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_global_batch_norm_keeps_float32_statistics_under_autocast(precision):
    """The batch norm of data-parallel training, under reduced-precision autocast (the crash of a
    CPU with avx512_bf16): float32 buffers, the input's dtype out, and the statistics of
    float32 batch norm on the same values."""
    torch.manual_seed(0)
    reference = torch.nn.BatchNorm2d(4).train()
    tested = GlobalBatchNorm2d(4).train()
    tested.load_state_dict(reference.state_dict())
    dtype = getattr(torch, precision)
    values = (torch.randn(2, 4, 8, 8) * 3 + 1).to(dtype)
    with autocast("cpu", precision):
        output = tested(values)
    expected = reference(values.float())
    assert output.dtype == dtype
    assert tested.running_mean.dtype == tested.running_var.dtype == torch.float32
    torch.testing.assert_close(tested.running_mean, reference.running_mean)
    torch.testing.assert_close(tested.running_var, reference.running_var)
    torch.testing.assert_close(output.float(), expected, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dice_statistics_are_float32_whatever_the_logits(dtype):
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 16, 16)
    target = torch.randint(0, 3, (2, 16, 16))
    low = dice_loss(logits.to(dtype), target)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, dice_loss(logits, target), atol=0.01, rtol=0)
