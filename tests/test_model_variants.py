"""Every variant of the family builds from one class and produces maps of the input's size."""

import pytest
import torch

from baseline_algorithm.model import (
    DEFAULT_SHARING,
    VARIANTS,
    CellTissueModel,
    ModelConfig,
    has_tissue_branch,
    tissue_one_hot,
)


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
    with_tissue_branch = variant not in ("cell-only", "tissue-label-leaking")
    assert has_tissue_branch(variant) == with_tissue_branch
    assert (model.tissue_branch is not None) == with_tissue_branch
    if with_tissue_branch:
        assert output.tissue_logits.shape == (2, 2, 64, 64)
    else:
        assert output.tissue_logits is None
    assert model.needs_tissue_label == (variant == "tissue-label-leaking")


# Layers that read the concatenated tensor, per variant (ASPP's depthwise convolutions grow in
# groups).
GROWN_LAYERS = {
    "pred-to-input": {"encoder.conv1"},
    "pred-to-inter-1": {f"decoder.aspp.0.convs.{k}" for k in range(5)},
    "pred-to-inter-2": {"decoder.block2.0"},
    "pred-to-output": {"head.0"},
}


@pytest.mark.parametrize("variant", list(GROWN_LAYERS))
def test_only_the_layer_after_the_injection_grows_by_the_two_tissue_classes(variant):
    plain = CellTissueModel(
        ModelConfig(variant="cell-only", encoder="resnet18")
    ).cell_branch.state_dict()
    state = CellTissueModel(
        ModelConfig(variant=variant, encoder="resnet18")
    ).cell_branch.state_dict()
    assert state.keys() == plain.keys()
    grown = {
        name: (plain[name].shape, tensor.shape)
        for name, tensor in state.items()
        if tensor.shape != plain[name].shape
    }
    assert grown
    for name, (before, after) in grown.items():
        assert any(name.startswith(prefix + ".") for prefix in GROWN_LAYERS[variant]), name
        differences = [(b, a) for b, a in zip(before, after) if b != a]
        assert len(differences) == 1 and differences[0][1] - differences[0][0] == 2, (
            name,
            before,
            after,
        )


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


def test_the_seven_variants_of_table_5_in_its_order():
    assert list(VARIANTS) == [
        "cell-only",
        "pred-to-input",
        "pred-to-inter-1",
        "pred-to-inter-2",
        "pred-to-output",
        "feature-sharing",
        "tissue-label-leaking",
    ]


def grown_layers(config):
    """{branch: {layer: grown input channels}} of ``config`` against two independent branches."""
    plain = CellTissueModel(ModelConfig(variant="pred-to-inter-2", encoder="resnet18"))
    model = CellTissueModel(config)
    grown = {}
    for branch in ("cell_branch", "tissue_branch"):
        before = getattr(plain, branch).state_dict()
        after = getattr(model, branch).state_dict()
        if branch == "cell_branch":  # pred-to-inter-2's own two context channels
            before = CellTissueModel(
                ModelConfig(variant="cell-only", encoder="resnet18")
            ).cell_branch.state_dict()
        assert after.keys() == before.keys()
        grown[branch] = {
            name: after[name].shape[1] - before[name].shape[1]
            for name in after
            if after[name].shape != before[name].shape
        }
    return model, grown


def test_feature_sharing_widens_the_reader_of_each_exchange_by_the_senders_width():
    config = ModelConfig(
        variant="feature-sharing",
        encoder="resnet18",
        sharing=("tissue-to-cell", "cell-to-tissue", "both"),
    )
    model, grown = grown_layers(config)
    # Depthwise ASPP convolutions grow in groups (dim 0); their pointwise ones in dim 1.
    cell = {name.rsplit(".", 1)[0] for name in grown["cell_branch"]}
    tissue = {name.rsplit(".", 1)[0] for name in grown["tissue_branch"]}
    assert any(name.startswith("decoder.aspp.0.convs.") for name in cell)
    assert all(name.startswith(("decoder.aspp.0.", "head.0")) for name in cell), cell
    assert all(name.startswith(("decoder.block2.0", "head.0")) for name in tissue), tissue
    assert grown["cell_branch"]["head.0.weight"] == 256
    assert grown["tissue_branch"]["head.0.weight"] == 256
    assert grown["tissue_branch"]["decoder.block2.0.1.weight"] == 256  # pointwise
    assert grown["cell_branch"]["decoder.aspp.0.convs.0.0.weight"] == 512
    assert sorted(model.exchanges) == [
        "aspp_cell_to_tissue",
        "decoder_cell_to_tissue",
        "decoder_tissue_to_cell",
        "encoder_tissue_to_cell",
    ]


def test_feature_sharing_without_exchanges_is_two_independent_branches():
    config = ModelConfig(variant="feature-sharing", encoder="resnet18", sharing=("none",) * 3)
    model, grown = grown_layers(config)
    assert grown == {"cell_branch": {}, "tissue_branch": {}} and not len(model.exchanges)


def test_sharing_configuration_defaults_validates_and_round_trips():
    assert ModelConfig(variant="feature-sharing").sharing == DEFAULT_SHARING
    assert ModelConfig(variant="pred-to-inter-2").sharing is None
    with pytest.raises(ValueError, match="shares no features"):
        ModelConfig(variant="pred-to-inter-2", sharing=("both", "both", "both"))
    with pytest.raises(ValueError, match="'sideways'"):
        ModelConfig(variant="feature-sharing", sharing=("both", "sideways", "none"))
    with pytest.raises(ValueError, match="sharing"):
        ModelConfig(variant="feature-sharing", sharing=("both", "both"))
    config = ModelConfig(variant="feature-sharing", sharing=("none", "tissue-to-cell", "both"))
    assert ModelConfig.from_dict(config.to_dict()) == config
    # A checkpoint written before the sharing field existed still loads.
    old = ModelConfig(variant="pred-to-inter-2").to_dict()
    del old["sharing"], old["tissue_input"]
    assert ModelConfig.from_dict(old) == ModelConfig(variant="pred-to-inter-2")


def test_tissue_input_from_the_cell_patch_needs_a_tissue_branch(inputs):
    with pytest.raises(ValueError, match="needs a tissue branch"):
        ModelConfig(variant="cell-only", tissue_input="cell-patch")
    model = CellTissueModel(
        ModelConfig(
            variant="feature-sharing", encoder="resnet18", patch_size=64, tissue_input="cell-patch"
        )
    ).eval()
    with torch.no_grad():
        output = model(inputs["cell_image"], None, None)
        # The tissue branch reads the cell patch; the tissue image and box are not used.
        again = model(inputs["cell_image"], inputs["tissue_image"], inputs["cell_box"])
    assert output.tissue_logits.shape == (2, 2, 64, 64)
    torch.testing.assert_close(output.cell_logits, again.cell_logits)
