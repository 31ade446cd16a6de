"""The error analysis against an independent restatement of its rules, on random inputs.

The references below are written from the text of docs/scoring.md ("Where it fails"), not from
the implementation: a brute-force greedy matching over the full float32 distance matrix, and the
cell-to-tissue pixel mapping in exact rational arithmetic.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from evaluation import PointSet, score
from evaluation.bootstrap import image_draw_blocks
from evaluation.error_analysis import (
    STRATA,
    ErrorCounts,
    bootstrap_errors,
    error_counts,
    per_organ_summaries,
    summarise,
)
from evaluation.tissue import tissue_maps


def seeded(max_examples):
    """Hypothesis settings of these tests: the same examples on every machine."""
    return settings(derandomize=True, deadline=None, max_examples=max_examples)


NUM_IMAGES = 3
VALUES = np.array([1, 2, 255], dtype=np.uint8)


def greedy_reference(pred_xy, probability, gt_xy, radius=15.0):
    """Visit predictions by np.argsort(-float32 probability); each takes the nearest free GT
    point within the float32 distance ``<= radius``, distance ties to the lowest GT index."""
    pred = np.asarray(pred_xy, dtype=np.float32).reshape(-1, 2)
    gt = np.asarray(gt_xy, dtype=np.float32).reshape(-1, 2)
    free = np.ones(len(gt), dtype=bool)
    matched = np.full(len(pred), -1)
    for p in np.argsort(-np.asarray(probability).astype(np.float32)):
        best = -1
        for g in range(len(gt)):
            distance = np.linalg.norm(pred[p] - gt[g])
            if (
                free[g]
                and distance <= radius
                and (best < 0 or distance < np.linalg.norm(pred[p] - gt[best]))
            ):
                best = g
        if best >= 0:
            matched[p] = best
            free[best] = False
    return matched


def reference_tissue_value(mask, offset_x, offset_y, x, y):
    """The text's mapping in exact arithmetic: the cell box is centred at (offset x width,
    offset y height) of the tissue patch with a quarter of its sides; the cell patch has the
    mask's shape; pixel (x, y)'s centre maps linearly into the box; its tissue pixel's value,
    255 outside the mask or the cell patch."""
    height, width = mask.shape
    if not (0 <= x < width and 0 <= y < height):
        return 255
    tx, ty = (int(np.floor(value)) for value in exact_tissue_xy(mask, offset_x, offset_y, x, y))
    if not (0 <= tx < width and 0 <= ty < height):
        return 255
    return int(mask[ty, tx])


def exact_tissue_xy(mask, offset_x, offset_y, x, y):
    """The tissue coordinates (Fractions) of cell pixel (x, y)'s centre."""
    height, width = mask.shape
    tissue = []
    for offset, side, position in ((offset_x, width, x), (offset_y, height, y)):
        box_side = Fraction(side, 4)
        start = Fraction(offset) * side - box_side / 2
        tissue.append(start + (position + Fraction(1, 2)) * box_side / side)
    return tissue


def on_a_pixel_border(mask, offset_x, offset_y, x, y, slack=Fraction(1, 10**9)):
    """Whether pixel (x, y)'s centre lies within ``slack`` of a tissue pixel border: there the
    float arithmetic of the metadata's box (``offset * side`` rounded) may pick either pixel."""
    return any(
        abs(value - round(value)) <= slack
        for value in exact_tissue_xy(mask, offset_x, offset_y, x, y)
    )


coordinates = st.integers(min_value=0, max_value=47)
probabilities = st.one_of(
    st.sampled_from([0.0, 0.5, 0.5 + 1e-12, 1.0]),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)
offsets = st.one_of(
    st.sampled_from([0.0, 0.125, 0.5, 0.875, 1.0]),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)


@st.composite
def cases(draw, max_points=30):
    """Predictions and GT of three images in a 48 px field, masks of any shape with any
    offsets."""

    def points(with_probability):
        n = draw(st.integers(0, max_points))
        image = draw(hnp.arrays(np.int64, n, elements=st.integers(0, NUM_IMAGES - 1)))
        xy = draw(hnp.arrays(np.int64, (n, 2), elements=coordinates))
        label = draw(hnp.arrays(np.int64, n, elements=st.sampled_from([1, 2])))
        probability = (
            np.array(draw(st.lists(probabilities, min_size=n, max_size=n))).reshape(n)
            if with_probability
            else np.ones(n)
        )
        return PointSet.from_arrays(image, xy, label, probability)

    predictions, ground_truth = points(True), points(False)
    masks, metas = [], []
    for _ in range(NUM_IMAGES):
        shape = (draw(st.integers(4, 48)), draw(st.integers(4, 48)))
        masks.append(draw(hnp.arrays(np.uint8, shape, elements=st.sampled_from(VALUES.tolist()))))
        metas.append({"patch_x_offset": draw(offsets), "patch_y_offset": draw(offsets)})
    return predictions, ground_truth, masks, metas


def reference_analysis(predictions, ground_truth, masks, metas):
    """Detection counts, confusion and stratum counts per image, from the rule's text."""
    detection = np.zeros((NUM_IMAGES, 3), np.int64)
    confusion = np.zeros((NUM_IMAGES, 2, 2), np.int64)
    strata = np.zeros((NUM_IMAGES, len(STRATA), 2, 3), np.int64)
    stratum_of = {value: index for index, value in enumerate(STRATA.values())}

    def tissue(points, row):
        image = points.image[row]
        meta = metas[image]
        return stratum_of[
            reference_tissue_value(
                masks[image], meta["patch_x_offset"], meta["patch_y_offset"], *points.xy[row]
            )
        ]

    for image in range(NUM_IMAGES):
        pred_rows = np.flatnonzero(predictions.image == image)
        gt_rows = np.flatnonzero(ground_truth.image == image)
        # Detection: every prediction of the image, GT of any class.
        local = greedy_reference(
            predictions.xy[pred_rows], predictions.probability[pred_rows], ground_truth.xy[gt_rows]
        )
        tp = int(np.sum(local >= 0))
        detection[image] = (tp, len(pred_rows) - tp, len(gt_rows) - tp)
        for p, g in zip(pred_rows[local >= 0], gt_rows[local[local >= 0]]):
            confusion[image, ground_truth.label[g] - 1, predictions.label[p] - 1] += 1
        # Strata: the leaderboard's matching per class.
        for label in (1, 2):
            pred_c = pred_rows[predictions.label[pred_rows] == label]
            gt_c = gt_rows[ground_truth.label[gt_rows] == label]
            local = greedy_reference(
                predictions.xy[pred_c], predictions.probability[pred_c], ground_truth.xy[gt_c]
            )
            for p, m in zip(pred_c, local):
                if m >= 0:
                    strata[image, tissue(ground_truth, gt_c[m]), label - 1, 0] += 1
                else:
                    strata[image, tissue(predictions, p), label - 1, 1] += 1
            matched_gt = set(local[local >= 0].tolist())
            for index, g in enumerate(gt_c):
                if index not in matched_gt:
                    strata[image, tissue(ground_truth, g), label - 1, 2] += 1
    return detection, confusion, strata


def analyse(predictions, ground_truth, masks, metas):
    report = score(predictions, ground_truth, NUM_IMAGES)
    counts = error_counts(
        predictions,
        ground_truth,
        NUM_IMAGES,
        matched=report.matched,
        tissue=tissue_maps(masks, metas),
    )
    return report, counts


@seeded(150)
@given(cases())
def test_counts_equal_the_reference(case):
    predictions, ground_truth, masks, metas = case
    _, counts = analyse(*case)
    detection, confusion, strata = reference_analysis(predictions, ground_truth, masks, metas)
    np.testing.assert_array_equal(counts.detection, detection)
    np.testing.assert_array_equal(counts.confusion, confusion)
    np.testing.assert_array_equal(counts.tissue, strata)


@seeded(150)
@given(cases())
def test_confusion_sums_to_detection_tps_and_strata_to_the_leaderboard(case):
    report, counts = analyse(*case)
    # The confusion's cells, per image, are the detection step's TPs.
    np.testing.assert_array_equal(counts.confusion.sum(axis=(1, 2)), counts.detection[:, 0])
    # Summed over strata, TP/FP/FN per class and image are the leaderboard's exactly.
    by_class = counts.tissue.sum(axis=1)
    for c, name in enumerate(("BC", "TC")):
        for k, kind in enumerate(("TP", "FP", "FN")):
            np.testing.assert_array_equal(by_class[:, c, k], report.counts[f"{kind}/{name}"])
    document = summarise(counts)
    for name in ("BC", "TC"):
        for kind in ("TP", "FP", "FN"):
            assert (
                sum(document["tissue"][stratum][name][kind] for stratum in STRATA)
                == report.aggregates[f"{kind}/{name}"]
            )
    # Class-agnostic matching finds at least as many pairs as both class-aware ones together:
    # every class-aware pair is a candidate of it, and greedy keeps a maximal set of pairs.
    assert (
        document["detection"]["TP"] >= (report.aggregates["TP/BC"] + report.aggregates["TP/TC"]) / 2
    )


@seeded(200)
@given(st.integers(4, 64), st.integers(4, 64), offsets, offsets, st.data())
def test_pixel_mapping_equals_exact_arithmetic(height, width, offset_x, offset_y, data):
    """Every pixel of the cell patch, edges included, gets its exact tissue pixel."""
    mask = data.draw(
        hnp.arrays(np.uint8, (height, width), elements=st.sampled_from(VALUES.tolist()))
    )
    ys, xs = np.mgrid[-1 : height + 1, -1 : width + 1]
    xy = np.stack([xs.ravel(), ys.ravel()], axis=1)
    inside = (xy >= 0).all(axis=1)
    xy = xy[inside]  # points are never negative; one past the far edges is kept
    points = PointSet.from_arrays(
        np.zeros(len(xy), np.int64), xy, np.ones(len(xy), np.int64), np.ones(len(xy))
    )
    maps = tissue_maps([mask], [{"patch_x_offset": offset_x, "patch_y_offset": offset_y}])
    expected = [reference_tissue_value(mask, offset_x, offset_y, x, y) for x, y in xy]
    # Within a rounding error of a pixel border either neighbour is right; checked elsewhere.
    clear = [not on_a_pixel_border(mask, offset_x, offset_y, x, y) for x, y in xy]
    np.testing.assert_array_equal(maps.values_at(points)[clear], np.array(expected)[clear])


def test_pixel_mapping_by_hand():
    """8 x 8 patches, cell patch centred at (2, 6) of the tissue patch: box x 1..3, y 5..7.
    Cell columns 0-3 fall in tissue column 1, 4-7 in column 2 (rows likewise 5 and 6)."""
    mask = np.full((8, 8), 1, np.uint8)
    mask[5, 1] = 2
    mask[6, 2] = 255
    maps = tissue_maps([mask], [{"patch_x_offset": 0.25, "patch_y_offset": 0.75}])
    xy = np.array([[0, 0], [3, 3], [4, 3], [3, 4], [4, 4], [7, 7], [8, 0]])
    points = PointSet.from_arrays(
        np.zeros(len(xy), np.int64), xy, np.ones(len(xy), np.int64), np.ones(len(xy))
    )
    assert maps.values_at(points).tolist() == [2, 2, 1, 1, 255, 255, 255]


def test_box_leaving_the_mask_is_unknown():
    """Offset 0: the cell patch's upper-left quarter lies outside the tissue patch."""
    mask = np.full((16, 16), 2, np.uint8)
    maps = tissue_maps([mask], [{"patch_x_offset": 0.0, "patch_y_offset": 0.0}])
    xy = np.array([[0, 0], [7, 15], [8, 8], [15, 15]])
    points = PointSet.from_arrays(
        np.zeros(len(xy), np.int64), xy, np.ones(len(xy), np.int64), np.ones(len(xy))
    )
    assert maps.values_at(points).tolist() == [255, 255, 2, 2]


def test_wrong_class_at_the_right_place_is_one_fp_and_one_fn_but_a_detection():
    """The leaderboard counts a TC predicted on a BC as an FP and an FN; the analysis as a
    detected cell of the wrong class, in the GT point's stratum for the FN."""
    ground_truth = PointSet.from_arrays([0], [[10, 10]], [1], [1.0])
    predictions = PointSet.from_arrays([0], [[12, 10]], [2], [0.9])
    mask = np.full((32, 32), 2, np.uint8)
    report = score(predictions, ground_truth, 1)
    counts = error_counts(
        predictions,
        ground_truth,
        1,
        matched=report.matched,
        tissue=tissue_maps([mask], [{"patch_x_offset": 0.5, "patch_y_offset": 0.5}]),
    )
    document = summarise(counts)
    assert (report.aggregates["FP/TC"], report.aggregates["FN/BC"]) == (1, 1)
    assert document["detection"] | {} == {
        "TP": 1,
        "FP": 0,
        "FN": 0,
        "precision": 1.0,
        "recall": 1.0,
        "F1": 1.0,
    }
    assert document["classification"]["confusion"] == {
        "BC": {"BC": 0, "TC": 1},
        "TC": {"BC": 0, "TC": 0},
    }
    assert document["classification"]["accuracy"] == 0.0
    assert document["tissue"]["cancer_area"]["BC"]["FN"] == 1
    assert document["tissue"]["cancer_area"]["TC"]["FP"] == 1


@seeded(30)
@given(cases())
def test_intervals_contain_their_estimate_and_repeat(case):
    _, counts = analyse(*case)
    first = bootstrap_errors(counts, replicates=200, seed=3)
    assert first == bootstrap_errors(counts, replicates=200, seed=3)
    entries = [first["detection"]["F1"], first["classification"]["accuracy"]]
    entries += [
        first["tissue"][stratum][key] if key == "mF1" else first["tissue"][stratum][key]["F1"]
        for stratum in STRATA
        for key in ("BC", "TC", "mF1")
    ]
    for entry in entries:
        assert entry["low"] - 1e-12 <= entry["high"] + 1e-12
        assert 0.0 <= entry["low"] and entry["high"] <= 1.0


def test_bootstrap_draws_its_replicates_in_blocks(record_draw_blocks):
    """At most one block of draws is held, never replicates x images, and the intervals are
    those of all draws at once (the detection F1's restated here from the full draw matrix)."""

    rng = np.random.default_rng(4)
    counts = ErrorCounts(
        detection=rng.integers(0, 20, (50, 3)),
        confusion=rng.integers(0, 9, (50, 2, 2)),
        tissue=rng.integers(0, 9, (50, len(STRATA), 2, 3)),
    )
    expected = bootstrap_errors(counts, replicates=40, seed=1)
    tp, fp, fn = (np.concatenate(list(image_draw_blocks(50, 40, 1))) @ counts.detection).T
    low, high = np.quantile(2 * tp / (2 * tp + fp + fn), [0.025, 0.975])
    assert (
        expected["detection"]["F1"]["low"],
        expected["detection"]["F1"]["high"],
    ) == pytest.approx((low, high), abs=1e-6)  # the F1 formula's EPSILON aside
    sizes = record_draw_blocks()
    assert bootstrap_errors(counts, replicates=40, seed=1) == expected
    assert sizes == [10, 10, 10, 10]


def test_per_organ_summaries_add_up():
    rng = np.random.default_rng(0)
    n = 400
    predictions = PointSet.from_arrays(
        rng.integers(0, 4, n), rng.integers(0, 64, (n, 2)), rng.integers(1, 3, n), rng.random(n)
    )
    ground_truth = PointSet.from_arrays(
        rng.integers(0, 4, n), rng.integers(0, 64, (n, 2)), rng.integers(1, 3, n), np.ones(n)
    )
    masks = [rng.choice(VALUES, (64, 64)) for _ in range(4)]
    metas = [{"patch_x_offset": 0.4, "patch_y_offset": 0.6}] * 4
    report = score(predictions, ground_truth, 4)
    counts = error_counts(
        predictions, ground_truth, 4, matched=report.matched, tissue=tissue_maps(masks, metas)
    )
    organs = ["kidney", "bladder", "kidney", "bladder"]
    per_organ = per_organ_summaries(counts, organs)
    assert list(per_organ) == ["bladder", "kidney"]
    whole = summarise(counts)
    for stratum in STRATA:
        for name in ("BC", "TC"):
            for kind in ("TP", "FP", "FN"):
                assert (
                    sum(entry["tissue"][stratum][name][kind] for entry in per_organ.values())
                    == whole["tissue"][stratum][name][kind]
                )
    with pytest.raises(ValueError, match="organs must name all 4 images"):
        per_organ_summaries(counts, organs[:3])
