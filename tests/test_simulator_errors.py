"""Simulated failure families: seeded, varied, shaped like the API, and grouped by the signer
as their true families (B-cubed precision and recall of signatures against families)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from extractor.analytics.signatures import sign
from extractor.dev.simulator._errors import (
    FAMILIES,
    FailureText,
    draw_failure,
    family_names,
    is_transient,
)

STATE_ONLY = {"cloud_launch_failure", "spot_loss", "driver_unreachable", "timeout"}


def test_at_least_fifteen_families_with_unique_names() -> None:
    names = family_names()
    assert len(names) >= 15
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", family_names())
def test_same_seed_same_failure(name: str) -> None:
    assert draw_failure(random.Random(7), name) == draw_failure(random.Random(7), name)


@pytest.mark.parametrize("name", family_names())
def test_every_family_varies_between_draws(name: str) -> None:
    draws = {draw_failure(random.Random(seed), name) for seed in range(10)}
    assert len(draws) >= 5


@pytest.mark.parametrize("name", sorted(STATE_ONLY))
def test_state_message_only_families_have_no_error(name: str) -> None:
    for seed in range(10):
        f = draw_failure(random.Random(seed), name)
        assert f.error == "" and f.error_trace == ""
        assert f.state_message


@pytest.mark.parametrize("name", sorted(set(family_names()) - STATE_ONLY))
def test_output_families_have_an_error_and_a_long_trace(name: str) -> None:
    for seed in range(5):
        f = draw_failure(random.Random(seed), name)
        assert f.error.strip()
        assert f.error_trace.count("\n") >= 10


def test_fields_use_the_api_enums() -> None:
    codes = {"RUN_EXECUTION_ERROR", "CLOUD_FAILURE", "DRIVER_ERROR", "CANCELED"}
    types = {"CLIENT_ERROR", "INTERNAL_ERROR", "CLOUD_FAILURE"}
    for name in family_names():
        f = draw_failure(random.Random(1), name)
        assert f.termination_code in codes
        assert f.termination_type in types


def test_transient_flags_mark_the_infrastructure_families() -> None:
    transient = {f.name for f in FAMILIES if f.transient}
    assert transient == {"cloud_launch_failure", "spot_loss", "driver_unreachable", "http_503"}
    assert is_transient("spot_loss") and not is_transient("table_not_found")


def test_unknown_family_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        draw_failure(random.Random(0), "no_such_family")


def _bcubed(truth: list[str], predicted: list[str]) -> tuple[float, float]:
    """B-cubed precision and recall of a predicted clustering against the true one."""
    by_pred: dict[str, Counter[str]] = defaultdict(Counter)
    by_true: dict[str, Counter[str]] = defaultdict(Counter)
    for t, p in zip(truth, predicted, strict=True):
        by_pred[p][t] += 1
        by_true[t][p] += 1
    precision = sum(
        by_pred[p][t] / sum(by_pred[p].values()) for t, p in zip(truth, predicted, strict=True)
    )
    recall = sum(
        by_true[t][p] / sum(by_true[t].values()) for t, p in zip(truth, predicted, strict=True)
    )
    return precision / len(truth), recall / len(truth)


def _signature_id(f: FailureText) -> str:
    s = sign(f.error, f.error_trace, f.state_message, f.termination_code)
    assert s is not None
    return s.id


def test_signatures_recover_the_families() -> None:
    truth, predicted = [], []
    for name in family_names():
        for i in range(40):
            truth.append(name)
            predicted.append(_signature_id(draw_failure(random.Random(f"{name}/{i}"), name)))
    precision, recall = _bcubed(truth, predicted)
    print(f"B-cubed precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.95
    assert recall >= 0.95


def test_bcubed_of_a_known_clustering() -> None:
    # True clusters {a, a} and {b}: one predicted cluster gives precision (2/3 + 2/3 + 1/3) / 3.
    assert _bcubed(["a", "a", "b"], ["x", "x", "x"]) == pytest.approx((5 / 9, 1.0))
    assert _bcubed(["a", "a", "b"], ["x", "y", "z"]) == pytest.approx((1.0, 2 / 3))
