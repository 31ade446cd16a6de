"""Every case scored by the organisers' own scorer (../shared/parity/cases.json) is reproduced."""

import json
from pathlib import Path

import pytest

from evaluation import points_from_document, score
from evaluation.metrics import COUNT_KEYS, PUBLISHED_KEYS

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "parity" / "cases.json"


def _cases():
    if not CASES.is_file():
        return []
    return json.loads(CASES.read_text())


PARITY_CASES = _cases()


@pytest.mark.skipif(not PARITY_CASES, reason=f"parity cases not available at {CASES}")
@pytest.mark.parametrize("case", PARITY_CASES, ids=lambda case: f"case{case['case']}")
def test_reproduces_the_organisers_scores_exactly(case):
    predictions, _ = points_from_document(case["predictions"], source="predictions")
    ground_truth, num_images = points_from_document(
        case["ground_truth"], source="ground truth", role="ground_truth"
    )

    aggregates = score(predictions, ground_truth, num_images).aggregates

    assert list(aggregates) == [*PUBLISHED_KEYS, *COUNT_KEYS]
    assert {key: aggregates[key] for key in case["expected"]} == case["expected"]
    assert all(type(aggregates[key]) is int for key in COUNT_KEYS)
    assert all(type(aggregates[key]) is float for key in PUBLISHED_KEYS)


def test_parity_file_has_all_400_cases_when_present():
    if not CASES.is_file():
        pytest.skip(f"parity cases not available at {CASES}")
    assert len(PARITY_CASES) == 400
    assert all(set(case["expected"]) == {*PUBLISHED_KEYS, *COUNT_KEYS} for case in PARITY_CASES)
