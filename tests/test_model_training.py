"""Training on tiny synthetic data: samples, falling loss, checkpoints, resume, ablations."""

import json
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from baseline_algorithm.checkpoint import load_checkpoint, read_checkpoint
from baseline_algorithm.cli import main
from baseline_algorithm.data import synthesize_dataset
from baseline_algorithm.inference import DetectionSettings, predict_points
from baseline_algorithm.labels import crop_labels_to_box, disk_radius_px
from baseline_algorithm.losses import CellTissueDiceLoss
from baseline_algorithm.model import CellTissueModel, ModelConfig
from baseline_algorithm.parallel import ProcessGroup
from baseline_algorithm.runtime import resolve_runtime
from baseline_algorithm.train import (
    TrainingOptions,
    TrainingPairs,
    _stop_reason,
    fit,
    learning_rate_factor,
    pair_sample,
    prepare_for_training,
    tissue_targets_for,
    train_one_epoch,
    training_step,
)
from evaluation.errors import OcelotError
from evaluation.release import ReleaseDataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synthesize_dataset(
        tmp_path_factory.mktemp("data") / "synthetic", (4, 1, 1), size=64, seed=5, progress=False
    )


def test_pair_sample_renders_targets_at_the_training_size(dataset):
    pair = ReleaseDataset(dataset, "train")[0]
    for size in (64, 32):
        sample = pair_sample(pair, size)
        assert sample.cell_image.shape == sample.tissue_image.shape == (3, size, size)
        assert sample.cell_target.shape == sample.tissue_target.shape == (size, size)
        torch.testing.assert_close(
            sample.cell_box, torch.tensor(pair.cell_box, dtype=torch.float32) * size / 64
        )
        x, y, label = pair.cell_points[0]
        scaled = np.rint((np.array([x, y]) + 0.5) * size / 64 - 0.5).astype(int)
        assert sample.cell_target[scaled[1], scaled[0]] == label
        assert set(sample.tissue_target.unique().tolist()) <= {0, 1, 255}
    # Every disk pixel belongs to a point: no label lies farther than the radius from all points.
    sample = pair_sample(pair, 64)
    rows, cols = np.nonzero(sample.cell_target.numpy())
    distances = np.hypot(
        cols[:, None] - pair.cell_points[None, :, 0], rows[:, None] - pair.cell_points[None, :, 1]
    )
    assert (distances.min(axis=1) < disk_radius_px(64)).all()


def test_a_short_training_run_lowers_the_loss(dataset):
    torch.manual_seed(0)
    model = CellTissueModel(
        ModelConfig(
            variant="pred-to-inter-2",
            encoder="resnet18",
            dropout_tissue=0.0,
            dropout_cell=0.0,
            patch_size=64,
        )
    )
    loader = DataLoader(
        TrainingPairs(ReleaseDataset(dataset, "train"), 64, ranges=None), batch_size=4
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = [
        train_one_epoch(
            model,
            loader,
            optimizer,
            scaler,
            CellTissueDiceLoss(),
            torch.device("cpu"),
            "test",
            False,
        )
        for _ in range(6)
    ]
    assert losses[-1]["loss"] < losses[0]["loss"] - 0.1, [round(x["loss"], 4) for x in losses]
    assert (
        losses[-1]["cell_loss"] < losses[0]["cell_loss"]
        and losses[-1]["tissue_loss"] < losses[0]["tissue_loss"]
    )


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_a_reduced_precision_step_follows_the_float32_step(dataset, precision):
    """Under autocast the step's loss stays near float32's and the weights move the same way
    by the same amount (float16's gradient scaling is undone before the step)."""
    batch = next(
        iter(
            DataLoader(
                TrainingPairs(ReleaseDataset(dataset, "train"), 64, ranges=None), batch_size=4
            )
        )
    )
    steps = {}
    for name in ("float32", precision):
        torch.manual_seed(0)
        no_dropout = dict(dropout_tissue=0.0, dropout_cell=0.0, dropout_aspp=0.0)
        model = CellTissueModel(ModelConfig(encoder="resnet18", patch_size=64, **no_dropout))
        scaler = prepare_for_training(model.train(), torch.device("cpu"), name)
        before = [parameter.detach().clone() for parameter in model.parameters()]
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        losses = training_step(model, batch, optimizer, scaler, CellTissueDiceLoss(), name)
        change = torch.cat(
            [
                (after.detach() - start).flatten()
                for after, start in zip(model.parameters(), before, strict=True)
            ]
        )
        steps[name] = (losses["loss"].item(), change)
    assert steps[precision][0] == pytest.approx(steps["float32"][0], rel=0.02)
    float32_change, reduced_change = steps["float32"][1], steps[precision][1]
    assert torch.isfinite(reduced_change).all()
    # bfloat16 keeps 8 significant bits: its gradient is about 0.9 aligned with float32's here
    assert torch.nn.functional.cosine_similarity(float32_change, reduced_change, dim=0) > 0.85
    assert reduced_change.norm() == pytest.approx(float32_change.norm().item(), rel=0.1)


def options(dataset, out, **changes):
    values = dict(
        data=str(dataset),
        out=str(out),
        variant="pred-to-inter-2",
        encoder="resnet18",
        epochs=2,
        batch_size=4,
        workers=0,
        device="cpu",
        seed=3,
    )
    return TrainingOptions(**{**values, **changes})


def test_fit_saves_the_best_and_last_checkpoints_and_resumes_exactly(dataset, tmp_path):
    whole = fit(options(dataset, tmp_path / "whole"), progress=False)
    fit(options(dataset, tmp_path / "split", epochs=1), progress=False)
    resumed = fit(options(dataset, tmp_path / "split", epochs=2), resume=True, progress=False)

    history = json.loads((tmp_path / "whole" / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    assert {
        "loss",
        "cell_loss",
        "tissue_loss",
        "mF1",
        "F1/BC",
        "F1/TC",
        "train_pairs_per_second",
    } <= history[0].keys()
    resumed_history = json.loads((tmp_path / "split" / "history.json").read_text())
    for first, second in zip(history, resumed_history):
        assert first["loss"] == pytest.approx(second["loss"], rel=1e-5)
        assert first["mF1"] == second["mF1"]
    assert whole["best"] == resumed["best"]
    last_whole = read_checkpoint(tmp_path / "whole" / "last.pt")["state"]
    last_split = read_checkpoint(tmp_path / "split" / "last.pt")["state"]
    for name, tensor in last_whole.items():
        torch.testing.assert_close(last_split[name], tensor, rtol=1e-4, atol=1e-5)

    best = read_checkpoint(tmp_path / "whole" / "best.pt")
    assert best["epoch"] == whole["best"]["epoch"] and best["val"]["mF1"] == whole["best"]["mF1"]
    assert best["options"]["variant"] == "pred-to-inter-2" and "optimizer" not in best
    model = load_checkpoint(tmp_path / "whole" / "best.pt")
    assert model.config.patch_size == 64 and model.config.cell_mpp == pytest.approx(3.2)
    assert model.config.variant == "pred-to-inter-2" and model.config.encoder == "resnet18"


def test_the_cosine_schedule_and_early_stopping_resume_as_the_whole_run(dataset, tmp_path):
    protocol = dict(epochs=3, lr_schedule="cosine", patience=1)
    whole = fit(options(dataset, tmp_path / "whole", **protocol), progress=False)
    fit(options(dataset, tmp_path / "split", **{**protocol, "epochs": 1}), progress=False)
    resumed = fit(options(dataset, tmp_path / "split", **protocol), resume=True, progress=False)

    history = json.loads((tmp_path / "whole" / "history.json").read_text())
    resumed_history = json.loads((tmp_path / "split" / "history.json").read_text())
    # Epoch e (0-based) runs at half a cosine of e / epochs, resumed or not.
    for record in history:
        factor = 0.5 * (1 + np.cos(np.pi * (record["epoch"] - 1) / 3))
        assert record["lr_cell"] == pytest.approx(5e-4 * factor)
        assert record["cpu_seconds"] > 0
    assert [r["lr_cell"] for r in resumed_history] == [r["lr_cell"] for r in history]
    for first, second in zip(history, resumed_history, strict=True):
        assert first["loss"] == pytest.approx(second["loss"], rel=1e-5)
    # Patience 1: the run stops at the first epoch that does not improve on the best.
    best = whole["best"]["epoch"]
    assert whole["stopped"] == ("patience" if len(history) < 3 else "epochs")
    if whole["stopped"] == "patience":
        assert len(history) == best + 1
    assert (resumed["stopped"], resumed["epochs"], resumed["best"]) == (
        whole["stopped"],
        whole["epochs"],
        whole["best"],
    )


def test_the_default_protocol_keeps_the_rates_and_trains_every_epoch(dataset, tmp_path):
    summary = fit(options(dataset, tmp_path / "run", epochs=2), progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [record["lr_cell"] for record in history] == [5e-4, 5e-4]
    assert summary["stopped"] == "epochs" and summary["epochs"] == 2


def test_stop_reasons_count_epochs_since_the_best_and_the_time_budget():
    single = ProcessGroup()
    history = [{"epoch": epoch} for epoch in range(1, 6)]
    started = time.perf_counter()
    cpu = torch.device("cpu")

    def reason(best, **changes):
        settings = TrainingOptions(data="d", out="o", **changes)
        return _stop_reason(settings, started, history, {"epoch": best}, single, cpu)

    assert reason(3, patience=2) == "patience"  # epochs 4 and 5 did not improve on 3
    assert reason(4, patience=2) is None
    assert reason(3) is None  # no patience: every epoch trains
    assert reason(5, max_minutes=-1.0) == "max_minutes"
    assert learning_rate_factor(TrainingOptions(data="d", out="o", epochs=4), 3) == 1.0
    cosine = TrainingOptions(data="d", out="o", epochs=4, lr_schedule="cosine")
    assert [learning_rate_factor(cosine, e) for e in range(5)] == pytest.approx(
        [1.0, 0.5 + 0.5 * np.cos(np.pi / 4), 0.5, 0.5 - 0.5 * np.cos(np.pi / 4), 0.0]
    )


def test_train_command_reports_bad_input_in_one_line(tmp_path, capsys):
    code = main(
        ["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--quiet"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0] and "folder not found" in err[0]


def test_resume_without_a_last_checkpoint_is_refused(dataset, tmp_path, capsys):
    code = main(
        ["train", "--data", str(dataset), "--out", str(tmp_path / "fresh"), "--resume", "--quiet"]
    )
    assert code == 2
    assert "last.pt: no such checkpoint" in capsys.readouterr().err


def test_crop_labels_to_box_takes_the_label_under_each_output_pixel_centre():
    labels = torch.arange(64).reshape(1, 8, 8)
    crop = crop_labels_to_box(labels, torch.tensor([[2.0, 4.0, 6.0, 8.0]]), (2, 2))
    assert crop.tolist() == [[[5 * 8 + 3, 5 * 8 + 5], [7 * 8 + 3, 7 * 8 + 5]]]
    assert (
        crop_labels_to_box(labels, torch.tensor([[2.0, 4.0, 6.0, 8.0]]), (4, 4))[0].tolist()
        == labels[0, 4:8, 2:6].tolist()
    )


def test_ablations_choose_what_the_tissue_branch_reads_and_learns(dataset, tmp_path):
    summary = fit(
        options(
            dataset,
            tmp_path / "label",
            variant="pred-to-input",
            epochs=1,
            ablation="tissue-label-only",
        ),
        progress=False,
    )
    assert summary["options"]["ablation"] == "tissue-label-only"
    model = load_checkpoint(tmp_path / "label" / "best.pt")
    assert model.config.tissue_input == "cell-patch"
    history = json.loads((tmp_path / "label" / "history.json").read_text())
    assert history[0]["loss"] == pytest.approx(history[0]["cell_loss"] + history[0]["tissue_loss"])

    fit(
        options(
            dataset, tmp_path / "fov", variant="pred-to-input", epochs=1, ablation="large-fov-only"
        ),
        progress=False,
    )
    record = json.loads((tmp_path / "fov" / "history.json").read_text())[0]
    assert record["loss"] == pytest.approx(record["cell_loss"])  # the tissue loss has no weight
    assert load_checkpoint(tmp_path / "fov" / "best.pt").config.tissue_input == "tissue-patch"


def test_the_tissue_label_only_targets_are_the_label_of_the_cell_region():
    batch = {
        "tissue_target": torch.arange(64).reshape(1, 8, 8),
        "cell_box": torch.tensor([[2.0, 2.0, 4.0, 4.0]]),
        "cell_image": torch.zeros(1, 3, 8, 8),
    }
    config = ModelConfig(variant="pred-to-input", tissue_input="cell-patch")
    targets = tissue_targets_for(batch, config)
    assert targets.shape == (1, 8, 8) and targets[0, 0, 0] == 2 * 8 + 2 and targets[0, 7, 7] == 27
    assert tissue_targets_for(batch, ModelConfig()) is batch["tissue_target"]


def test_feature_sharing_trains_and_its_checkpoint_predicts(dataset, tmp_path):
    summary = fit(
        options(
            dataset,
            tmp_path / "sharing",
            variant="feature-sharing",
            epochs=1,
            sharing=("both", "none", "tissue-to-cell"),
        ),
        progress=False,
    )
    assert summary["config"]["sharing"] == ["both", "none", "tissue-to-cell"]
    model = load_checkpoint(tmp_path / "sharing" / "best.pt")
    assert model.config.sharing == ("both", "none", "tissue-to-cell")
    pairs = ReleaseDataset(dataset, "val")
    predictions = predict_points(
        model, pairs, settings=DetectionSettings(threshold=0.01), progress=False, total=len(pairs)
    )
    assert len(predictions) > 0


def test_the_run_records_the_precision_it_trained_in(dataset, tmp_path):
    summary = fit(
        options(dataset, tmp_path / "bf16", epochs=1, precision="bfloat16"), progress=False
    )
    assert summary["precision"] == "bfloat16" and summary["options"]["precision"] == "bfloat16"
    assert load_checkpoint(tmp_path / "bf16" / "best.pt").config.patch_size == 64
    auto = fit(options(dataset, tmp_path / "auto", epochs=1), progress=False)["precision"]
    assert auto == resolve_runtime("cpu", "auto").precision


def test_a_run_resumes_in_another_precision(dataset, tmp_path):
    """A run started without gradient scaling resumes under float16 (whose scaler is on), as when
    ``auto`` resolves again on a GPU without bfloat16; and a run recorded before ``precision``
    existed resumes as ``auto``."""
    fit(options(dataset, tmp_path / "run", epochs=1, precision="float32"), progress=False)
    last = tmp_path / "run" / "last.pt"
    state = read_checkpoint(last)
    state["options"]["precision"] = "float16"
    torch.save(state, last)
    resumed = fit(options(dataset, tmp_path / "run", epochs=2), resume=True, progress=False)
    assert resumed["precision"] == "float16" and resumed["epochs"] == 2

    fit(options(dataset, tmp_path / "old", epochs=1), progress=False)
    last = tmp_path / "old" / "last.pt"
    state = read_checkpoint(last)
    del state["options"]["precision"]
    torch.save(state, last)
    resumed = fit(options(dataset, tmp_path / "old", epochs=2), resume=True, progress=False)
    assert resumed["options"]["precision"] == "auto" and resumed["epochs"] == 2


def test_library_errors_name_the_option_not_a_flag(dataset, tmp_path):
    for changes, expected in (
        ({"precision": "half"}, "precision 'half'"),
        ({"batch_size": 1}, "batch_size 1"),
        ({"patience": 0}, "patience 0"),
        ({"lr_schedule": "step"}, "lr_schedule 'step'"),
        ({"variant": "cell-only", "ablation": "large-fov-only"}, "has no tissue branch"),
        ({"variant": "pred-to-inter-2", "sharing": ("both",) * 3}, "shares no features"),
    ):
        # RuntimeOptionError for the precision, TrainingError for the rest: one line each.
        with pytest.raises(OcelotError, match=expected) as caught:
            fit(options(dataset, tmp_path / "bad", **changes), progress=False)
        assert "--" not in str(caught.value)


def test_dice_loss_is_segmentation_models_pytorchs():
    from segmentation_models_pytorch.losses import DiceLoss

    from baseline_algorithm.losses import dice_loss

    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 3, 16, 16, generator=generator)
    target = torch.randint(0, 2, (3, 16, 16), generator=generator)  # class 2 absent: counts 0
    expected = DiceLoss("multiclass", from_logits=True)(logits, target)
    torch.testing.assert_close(dice_loss(logits, target), expected)
    target[:, :4] = 255
    expected = DiceLoss("multiclass", from_logits=True, ignore_index=255)(logits, target)
    torch.testing.assert_close(dice_loss(logits, target, ignore_index=255), expected)
