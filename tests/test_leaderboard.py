"""The leaderboard: ranks equal scoring each file alone, the bootstrap behaves in known cases."""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import kendalltau

from evaluation import read_points_document, score
from evaluation.commands import leaderboard as command
from evaluation.leaderboard import (
    build_leaderboard,
    competition_ranks,
    find_submissions,
    holm_adjust,
    kendall_tau_b,
    leaderboard_f1,
    rank_stability,
)
from evaluation.leaderboard.build import write_leaderboard
from evaluation.metrics import COUNT_KEYS, metrics_from_counts
from evaluation.release import read_ground_truth
from tests.leaderboard_data import ground_truth, submission, write_points

REPOSITORY = Path(__file__).resolve().parents[1]
NUM_IMAGES = 12
ORGANS = ["kidney", "bladder", "stomach"] * 4


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    """Ground truth and seven submissions: six of random quality, one a copy of the first."""
    folder = tmp_path_factory.mktemp("leaderboard")
    truth = ground_truth(NUM_IMAGES, 30, seed=1)
    write_points(folder / "gt.json", truth, NUM_IMAGES)
    submissions = folder / "submissions"
    submissions.mkdir()
    rng = np.random.default_rng(2)
    for k in range(6):
        found = rng.random(len(truth)) < rng.uniform(0.4, 0.95)
        wrong = rng.random(len(truth)) < 0.1
        write_points(
            submissions / f"team_{k}.json",
            submission(truth, found, wrong_class=wrong, spurious=int(rng.integers(0, 60)), seed=k),
        )
    (submissions / "team_0_again.json").write_bytes((submissions / "team_0.json").read_bytes())
    return folder


def counts_of(points, truth, num_images=NUM_IMAGES):
    """(N, C, 3) counts of one submission, through the scorer."""
    report = score(points, truth, num_images)
    return np.array(
        [
            [[result[f"{kind}/{name}"] for kind in ("TP", "FP", "FN")] for name in ("BC", "TC")]
            for result in report.results
        ]
    )


def board(folder, organs=None, **options):
    truth = read_ground_truth(folder / "gt.json").with_organs(organs)
    return build_leaderboard(
        find_submissions(folder / "submissions"), truth, **{"replicates": 300, **options}
    )


def independent_ranks(values):
    """Competition ranks by direct counting: 1 + how many are strictly better."""
    return [1 + sum(other > value for other in values) for value in values]


# ---------------------------------------------------------------------------------------------
# Ranks and numbers equal scoring each file alone


@pytest.mark.parametrize("workers", [1, 2])
def test_ranks_and_mf1_equal_scoring_each_file_alone(test_set, workers):
    leaderboard = board(test_set, workers=workers)
    truth, num_images = read_points_document(test_set / "gt.json", role="ground_truth")
    alone = {}
    for path in sorted((test_set / "submissions").glob("*.json")):
        predictions, _ = read_points_document(path, role="predictions")
        alone[path.stem] = score(predictions, truth, num_images).aggregates
    entries = leaderboard.document["entries"]
    assert sorted(entry["name"] for entry in entries) == sorted(alone)
    expected_ranks = dict(
        zip(alone, independent_ranks([m["mF1"] for m in alone.values()]), strict=True)
    )
    for entry in entries:
        for key in ("mF1", "F1/BC", "F1/TC", *COUNT_KEYS):
            assert entry[key] == alone[entry["name"]][key], (entry["name"], key)
        assert entry["rank"] == expected_ranks[entry["name"]]
    # Entries are listed by rank.
    assert [entry["rank"] for entry in entries] == sorted(entry["rank"] for entry in entries)


count_arrays = st.integers(1, 6).flatmap(
    lambda submissions: st.integers(1, 8).flatmap(
        lambda images: arrays(np.int64, (submissions, images, 2, 3), elements=st.integers(0, 40))
    )
)


@settings(max_examples=60, deadline=None)
@given(count_arrays)
def test_f1_and_ranks_equal_the_scorer_formula(counts):
    stability = rank_stability(counts, replicates=20)
    expected = [
        metrics_from_counts(
            {
                f"{kind}/{name}": counts[s, :, c, k].sum()
                for c, name in enumerate(("BC", "TC"))
                for k, kind in enumerate(("TP", "FP", "FN"))
            }
        )
        for s in range(len(counts))
    ]
    assert stability.f1[:, 0].tolist() == [m["F1/BC"] for m in expected]
    assert stability.f1[:, 1].tolist() == [m["F1/TC"] for m in expected]
    assert stability.mf1.tolist() == [m["mF1"] for m in expected]
    assert stability.rank.tolist() == independent_ranks([m["mF1"] for m in expected])


def test_replicate_ranks_are_the_ranks_of_the_replicate_mf1():
    counts = np.random.default_rng(3).integers(0, 50, size=(5, 9, 2, 3))
    stability = rank_stability(counts, replicates=50, seed=4)
    for values, ranks in zip(stability.replicate_mf1, stability.replicate_rank, strict=True):
        assert ranks.tolist() == independent_ranks(values.tolist())


def test_competition_ranking_shares_the_best_rank():
    assert competition_ranks([0.5, 0.7, 0.7, 0.1]).tolist() == [3, 1, 1, 4]


def test_per_image_f1_is_the_scorer_s_per_image_f1(test_set):
    truth, num_images = read_points_document(test_set / "gt.json", role="ground_truth")
    predictions, _ = read_points_document(test_set / "submissions" / "team_3.json")
    results = score(predictions, truth, num_images).results
    per_image = leaderboard_f1(counts_of(predictions, truth))
    assert per_image[:, 0].tolist() == [result["F1/BC"] for result in results]
    assert per_image[:, 1].tolist() == [result["F1/TC"] for result in results]


# ---------------------------------------------------------------------------------------------
# The bootstrap in cases whose answer is known


def test_identical_submissions_tie_and_share_their_rank_distribution(test_set):
    leaderboard = board(test_set)
    entries = {entry["name"]: entry for entry in leaderboard.document["entries"]}
    first, copy = entries["team_0"], entries["team_0_again"]
    for key in ("rank", "mF1", "rank_median", "rank_interval", "rank_frequencies"):
        assert first[key] == copy[key], key
    pairwise = leaderboard.document["pairwise"]
    assert pairwise["team_0"]["team_0_again"] == pairwise["team_0_again"]["team_0"] == 0.0
    assert not leaderboard.document["significant"]["team_0"]["team_0_again"]
    assert leaderboard.document["p_values"]["team_0"]["team_0_again"] == 1.0


def test_a_dominating_submission_ranks_first_in_every_replicate():
    truth = ground_truth(NUM_IMAGES, 25, seed=5)
    rng = np.random.default_rng(6)
    best_found = rng.random(len(truth)) < 0.8
    # Its false positives: some cells predicted with the wrong class, and spurious points.
    wrong = best_found & (rng.random(len(truth)) < 0.1)
    best = submission(truth, best_found, wrong_class=wrong, spurious=30, seed=7)
    is_tp = ~wrong[best_found]
    is_tp = np.concatenate([is_tp, np.zeros(len(best) - len(is_tp), dtype=bool)])
    counts = [counts_of(best, truth)]
    for _ in range(5):
        # Drop some true positives, keep every false positive: dominated by ``best``.
        keep = ~is_tp | (rng.random(len(best)) < rng.uniform(0.6, 0.99))
        counts.append(counts_of(best.take(keep), truth))
    stability = rank_stability(np.stack(counts), replicates=500, seed=8)
    assert np.all(stability.replicate_rank[:, 0] == 1)
    assert stability.rank[0] == 1 and stability.rank_interval[0].tolist() == [1, 1]
    assert stability.rank_frequency[0, 0] == 1.0


def test_a_clear_difference_is_significant_and_a_tiny_one_is_not():
    rng = np.random.default_rng(9)
    base = rng.integers(20, 40, size=(60, 2, 3))
    strong = base.copy()
    strong[..., 0] += 25  # many more true positives ...
    strong[..., 2] = np.maximum(strong[..., 2] - 25, 0)  # ... the same cells, fewer missed
    near = base.copy()
    near[0, 0] += [1, 0, -1]  # one more true positive on one image
    stability = rank_stability(np.stack([base, strong, near]), replicates=400, seed=1)
    assert stability.significant[1, 0] and stability.significant[1, 2]
    assert not stability.significant[2, 0] and not stability.significant[0, 2]
    assert stability.beats[1, 0] == 1.0


def test_kendall_tau_is_one_when_every_replicate_keeps_the_order():
    rng = np.random.default_rng(2)
    base = rng.integers(20, 40, size=(30, 2, 3))
    ladder = []
    for step in range(4):
        counts = base.copy()
        counts[..., 0] += 30 * step
        ladder.append(counts)
    assert rank_stability(np.stack(ladder), replicates=200).kendall_tau == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 9).flatmap(
        lambda size: st.tuples(
            arrays(np.int64, size, elements=st.integers(1, 4)),
            arrays(np.int64, (5, size), elements=st.integers(1, 4)),
        )
    )
)
def test_vectorised_kendall_tau_equals_scipy(reference_and_rankings):
    reference, rankings = reference_and_rankings
    tau = kendall_tau_b(reference, rankings)
    expected = [kendalltau(reference, ranking).statistic for ranking in rankings]
    np.testing.assert_allclose(tau, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_rank_summaries_agree_with_the_replicate_ranks():
    counts = np.random.default_rng(10).integers(0, 30, size=(6, 15, 2, 3))
    stability = rank_stability(counts, replicates=400, seed=2)
    ranks = stability.replicate_rank
    np.testing.assert_array_equal(stability.rank_median, np.median(ranks, axis=0))
    np.testing.assert_allclose(stability.rank_frequency.sum(axis=1), 1.0)
    for s in range(6):
        sorted_ranks = np.sort(ranks[:, s])
        # Inverted-CDF quantiles: the 10th and the 390th smallest of 400 ranks.
        assert stability.rank_interval[s].tolist() == [sorted_ranks[9], sorted_ranks[389]]
        assert stability.rank_frequency[s, 2] == np.mean(ranks[:, s] == 3)


# ---------------------------------------------------------------------------------------------
# Pairwise tests and Holm's correction


def holm_by_steps(p_values, alpha):
    """Holm's procedure as stated: reject the smallest p-values while p_(k) <= alpha/(m-k+1)."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    rejected = [False] * len(p_values)
    for step, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - step):
            break
        rejected[index] = True
    return rejected


def holm_adjusted_directly(p_values):
    ordered = sorted(p_values)
    m = len(p_values)
    adjusted_sorted = [min(1.0, max((m - j) * ordered[j] for j in range(k + 1))) for k in range(m)]
    return [adjusted_sorted[ordered.index(p)] for p in p_values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.floats(0.001, 0.5))
def test_holm_equals_the_step_down_procedure(p_values, alpha):
    adjusted = holm_adjust(p_values)
    assert (adjusted <= alpha).tolist() == holm_by_steps(p_values, alpha)
    np.testing.assert_allclose(adjusted, holm_adjusted_directly(p_values), rtol=1e-12)


def test_pairwise_p_values_follow_from_the_replicates():
    counts = np.random.default_rng(11).integers(0, 30, size=(4, 20, 2, 3))
    counts[1, :, :, 0] += 8
    stability = rank_stability(counts, replicates=300, seed=3, alpha=0.1)
    values = stability.replicate_mf1
    raw, pairs = [], []
    for a in range(4):
        for b in range(4):
            if a != b:
                assert stability.beats[a, b] == np.mean(values[:, a] > values[:, b])
                difference = values[:, a] - values[:, b]
                z = (stability.mf1[a] - stability.mf1[b]) / np.std(difference, ddof=1)
                raw.append(0.5 * math.erfc(z / math.sqrt(2)))
                pairs.append((a, b))
    np.testing.assert_allclose([stability.p_value[a, b] for a, b in pairs], raw, rtol=1e-9)
    rejected = holm_by_steps([stability.p_value[a, b] for a, b in pairs], 0.1)
    assert [bool(stability.significant[a, b]) for a, b in pairs] == rejected
    assert any(rejected) and not all(rejected)
    assert not stability.significant.diagonal().any()


def test_many_submissions_can_differ_significantly_at_a_thousand_replicates():
    # Holm over 100 * 99 ordered pairs asks the first p-value to be below 0.05 / 9900, far
    # below 1 / 1000: the test must resolve p-values that small.
    rng = np.random.default_rng(12)
    base = rng.integers(20, 40, size=(130, 2, 3))
    ladder = []
    for step in range(100):
        counts = base.copy()
        counts[..., 0] += step  # more true positives ...
        counts[..., 2] = np.maximum(counts[..., 2] - step // 4, 0)  # ... and fewer misses
        ladder.append(counts)
    stability = rank_stability(np.stack(ladder), replicates=1000)
    assert stability.significant[99, 0] and not stability.significant[0, 99]
    assert stability.significant[99, :50].all()


# ---------------------------------------------------------------------------------------------
# Seeds, organs, failures, the command


def test_seeded_runs_reproduce(test_set):
    first = board(test_set, seed=5).document
    assert board(test_set, seed=5, workers=2).document == first
    other = board(test_set, seed=6).document
    assert other["entries"] != first["entries"] or other["pairwise"] != first["pairwise"]
    assert [e["mF1"] for e in other["entries"]] == [e["mF1"] for e in first["entries"]]


def test_per_organ_ranking_equals_the_scorer_per_organ(test_set):
    truth, num_images = read_points_document(test_set / "gt.json", role="ground_truth")
    per_organ = board(test_set, organs=ORGANS).document["per_organ"]
    assert sorted(per_organ) == sorted(set(ORGANS))
    alone = {}
    for path in sorted((test_set / "submissions").glob("*.json")):
        predictions, _ = read_points_document(path, role="predictions")
        alone[path.stem] = score(predictions, truth, num_images, organs=ORGANS).per_organ
    for organ, ranking in per_organ.items():
        assert ranking["images"] == ORGANS.count(organ)
        names = [entry["name"] for entry in ranking["entries"]]
        expected = dict(
            zip(names, independent_ranks([alone[n][organ]["mF1"] for n in names]), strict=True)
        )
        for entry in ranking["entries"]:
            assert entry["mF1"] == alone[entry["name"]][organ]["mF1"]
            assert entry["rank"] == expected[entry["name"]]


def parse(argv):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def broken_submissions(test_set, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name in ("team_1", "team_2", "team_4"):
        (folder / f"{name}.json").write_bytes(
            (test_set / "submissions" / f"{name}.json").read_bytes()
        )
    (folder / "not_json.json").write_text('{"points": [')
    document = json.loads((test_set / "submissions" / "team_1.json").read_text())
    document["points"][3]["point"][2] = 7
    (folder / "bad_class.json").write_text(json.dumps(document))
    document["points"][3]["point"][2] = 1
    document["points"][5]["name"] = f"image_{NUM_IMAGES}"
    (folder / "outside.json").write_text(json.dumps(document))
    (folder / "notes.txt").write_text("not a submission")
    return folder


def test_failed_submissions_are_listed_and_the_others_ranked(
    test_set, broken_submissions, tmp_path, capsys
):
    out = tmp_path / "out"
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps([{"organ": organ} for organ in ORGANS]))
    status = command.run(
        parse(
            [
                "--submissions-dir",
                str(broken_submissions),
                "--ground-truth",
                str(test_set / "gt.json"),
                "--metadata",
                str(metadata),
                "--replicates",
                "200",
                "--workers",
                "2",
                "--out",
                str(out),
            ]
        )
    )
    assert status == 0
    document = json.loads((out / "leaderboard.json").read_text())
    assert sorted(document["per_organ"]) == sorted(set(ORGANS))
    failed = {e["name"]: e["error"] for e in document["entries"] if e["status"] == "failed"}
    assert sorted(failed) == ["bad_class", "not_json", "outside"]
    assert "not valid JSON" in failed["not_json"]
    assert "points[3].point[2]" in failed["bad_class"] and "got 7" in failed["bad_class"]
    assert f"image_{NUM_IMAGES} is outside" in failed["outside"]
    for name, error in failed.items():
        assert "\n" not in error and f"{name}.json" in error
    scored = [e for e in document["entries"] if e["status"] == "scored"]
    assert sorted(e["name"] for e in scored) == ["team_1", "team_2", "team_4"]
    assert sorted(e["rank"] for e in scored) == independent_ranks([e["mF1"] for e in scored])
    assert sorted(document["pairwise"]) == ["team_1", "team_2", "team_4"]
    # Failed entries come last, in the CSV as in the JSON.
    assert [e["status"] for e in document["entries"]] == ["scored"] * 3 + ["failed"] * 3
    rows = (out / "leaderboard.csv").read_text().splitlines()
    assert rows[0].startswith("rank,name,status,mF1")
    assert [row.split(",")[1] for row in rows[1:]] == [e["name"] for e in document["entries"]]
    assert "failed  not_json:" in capsys.readouterr().err
    assert (out / "leaderboard.html").stat().st_size > 0


def test_only_failed_submissions_still_give_a_leaderboard(test_set, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "empty.json").write_text("")
    leaderboard = build_leaderboard(
        find_submissions(folder), read_ground_truth(test_set / "gt.json")
    )
    assert leaderboard.document["entries"] == [
        {
            "name": "empty",
            "status": "failed",
            "error": f"{folder / 'empty.json'}: file is empty, expected a JSON object",
        }
    ]
    assert leaderboard.document["kendall_tau"] is None
    write_leaderboard(leaderboard, tmp_path / "out")
    assert "empty.json: file is empty" in (tmp_path / "out" / "leaderboard.html").read_text()


@pytest.mark.parametrize(
    "option, value",
    [
        ("--replicates", "1"),
        ("--replicates", "100001"),
        ("--replicates", "many"),
        ("--workers", "0"),
        ("--workers", "65"),
        ("--alpha", "1"),
        ("--alpha", "0"),
    ],
)
def test_options_out_of_bounds_are_refused(option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(["--submissions-dir", "s", "--ground-truth", "g", "--out", "o", option, value])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


def test_a_folder_without_submissions_is_an_input_error(test_set, tmp_path):
    with pytest.raises(ValueError, match="no submissions"):
        command.run(
            parse(
                [
                    "--submissions-dir",
                    str(tmp_path),
                    "--ground-truth",
                    str(test_set / "gt.json"),
                    "--out",
                    str(tmp_path / "out"),
                ]
            )
        )
    assert not (tmp_path / "out").exists()


def test_bad_ground_truth_ends_with_one_error_line_and_writes_nothing(test_set, tmp_path):
    bad_truth = tmp_path / "gt.json"
    bad_truth.write_text('{"points": [], "num_images": -3}')
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation",
            "leaderboard",
            "--submissions-dir",
            str(test_set / "submissions"),
            "--ground-truth",
            str(bad_truth),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
    )
    assert completed.returncode == 2
    assert completed.stderr.splitlines()[-1].startswith(f"error: {bad_truth}: num_images")
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "out").exists()


def test_a_single_submission_is_ranked_first_with_no_pairs(test_set, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "only.json").write_bytes((test_set / "submissions" / "team_2.json").read_bytes())
    truth = read_ground_truth(test_set / "gt.json")
    leaderboard = build_leaderboard(find_submissions(folder), truth, replicates=50)
    (entry,) = leaderboard.document["entries"]
    assert (entry["rank"], entry["rank_interval"], entry["rank_frequencies"]) == (
        1,
        [1, 1],
        {"1": 1.0},
    )
    assert leaderboard.document["kendall_tau"] is None
    assert leaderboard.document["pairwise"] == {"only": {}}
    write_leaderboard(leaderboard, tmp_path / "out")
    assert (tmp_path / "out" / "leaderboard.html").read_text().count("data:image/png") == 3
