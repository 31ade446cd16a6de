"""Every variant of the family builds from one class and produces maps of the input's size."""

import pytest
import torch

from baseline_algorithm.model import VARIANTS, CellTissueModel, ModelConfig, tissue_one_hot


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(0)
    return {
        "cell_image": torch.randn(2, 3, 64, 64, generator=generator),
        "tissue_image": torch.randn(2, 3, 64, 64, generator=generator),
        "cell_box": torch.tensor([[8.0, 8.0, 24.0, 24.0], [40.0, 30.0, 56.0, 46.0]]),
        "tissue_label": torch.randint(0, 2, (2, 64, 64), generator=generator),
    }


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_forward_shapes(variant, inputs):
    model = CellTissueModel(ModelConfig(variant=variant, encoder="resnet18", patch_size=64))
    output = model(**inputs)
    assert output.cell_logits.shape == (2, 3, 64, 64)
    uses_prediction = VARIANTS[variant].context == "prediction"
    assert (model.tissue_branch is not None) == uses_prediction
    if uses_prediction:
        assert output.tissue_logits.shape == (2, 2, 64, 64)
    else:
        assert output.tissue_logits is None
    assert model.needs_tissue_label == (variant == "tissue-label-leaking")


# Layers that read the concatenated tensor, per variant (ASPP's depthwise convolutions grow in groups).
GROWN_LAYERS = {
    "pred-to-input": {"encoder.conv1"},
    "pred-to-inter-1": {f"decoder.aspp.0.convs.{k}" for k in range(5)},
    "pred-to-inter-2": {"decoder.block2.0"},
    "pred-to-output": {"head.0"},
}


@pytest.mark.parametrize("variant", list(GROWN_LAYERS))
def test_only_the_layer_after_the_injection_grows_by_the_two_tissue_classes(variant):
    plain = CellTissueModel(ModelConfig(variant="cell-only", encoder="resnet18")).cell_branch.state_dict()
    state = CellTissueModel(ModelConfig(variant=variant, encoder="resnet18")).cell_branch.state_dict()
    assert state.keys() == plain.keys()
    grown = {name: (plain[name].shape, tensor.shape) for name, tensor in state.items() if tensor.shape != plain[name].shape}
    assert grown
    for name, (before, after) in grown.items():
        assert any(name.startswith(prefix + ".") for prefix in GROWN_LAYERS[variant]), name
        differences = [(b, a) for b, a in zip(before, after) if b != a]
        assert len(differences) == 1 and differences[0][1] - differences[0][0] == 2, (name, before, after)


def test_spatial_dropout_ends_every_resnet_stage_of_both_branches():
    model = CellTissueModel(ModelConfig(encoder="resnet18", dropout_tissue=0.1, dropout_cell=0.5))
    for branch, rate in ((model.tissue_branch, 0.1), (model.cell_branch, 0.5)):
        for stage in range(1, 5):
            last = getattr(branch.encoder, f"layer{stage}")[-1]
            assert isinstance(last, torch.nn.Dropout2d) and last.p == rate


def test_unknown_variant_and_bad_patch_size_are_refused():
    with pytest.raises(ValueError, match="variant 'pred-to-nowhere'"):
        ModelConfig(variant="pred-to-nowhere")
    with pytest.raises(ValueError, match="multiple of 16"):
        ModelConfig(patch_size=100)


def test_tissue_one_hot_leaves_unknown_pixels_empty():
    one_hot = tissue_one_hot(torch.tensor([[[0, 1, 255]]]))
    assert one_hot[0, :, 0].tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_config_round_trips_through_a_dict():
    config = ModelConfig(variant="pred-to-output", encoder="resnet18", patch_size=256, cell_mpp=0.8)
    assert ModelConfig.from_dict(config.to_dict()) == config
