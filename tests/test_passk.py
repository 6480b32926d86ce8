from fractions import Fraction
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.eval.passk import parse_ks, pass_at_k, suite_pass_at_k


def exact(n, c, k):
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_matches_the_binomial_definition(nck):
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(float(exact(n, c, k)), abs=1e-12)


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_at_1_is_the_pass_rate(nc):
    n, c = nc
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_edges():
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 1, 10) == 1.0  # any 10 of 10 include the one that passes
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    # Large n: the product form stays finite where the binomials would overflow a float.
    assert 0.0 < pass_at_k(100000, 3, 50) < 1.0
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 6)
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)


def test_monotone_in_k_and_c():
    vals = [pass_at_k(20, 3, k) for k in range(1, 21)]
    assert vals == sorted(vals)
    assert [pass_at_k(20, c, 5) for c in range(21)] == sorted(pass_at_k(20, c, 5) for c in range(21))


def test_suite_mean_only_when_every_task_has_k_samples():
    counts = [(10, 10), (10, 0), (10, 5)]
    assert suite_pass_at_k(counts, 1) == pytest.approx((1 + 0 + 0.5) / 3)
    assert suite_pass_at_k(counts, 10) == pytest.approx((1 + 0 + 1) / 3)
    assert suite_pass_at_k([(10, 1), (9, 1)], 10) is None
    assert suite_pass_at_k([], 1) is None


def test_parse_ks():
    assert parse_ks("10,1, 1") == [1, 10]
    for bad in ("0", "a", "1,-2", ""):
        with pytest.raises(ValueError):
            parse_ks(bad)


def test_has_code_counts_only_lines_besides_comments_and_blanks():
    from harness.eval.evaluate import has_code

    assert not has_code("") and not has_code("\n  \n") and not has_code("# a\n  # b\n#!/bin/bash\n")
    assert has_code("# a\necho hi\n") and has_code("  x=1  # set\n")
