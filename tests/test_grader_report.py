"""The instructor's class histogram: whole points in their own bins, whole students on the y
axis, the median marked."""

from __future__ import annotations

import pytest

from grader.report import histogram_bins, histogram_figure


@pytest.mark.parametrize("top", [1, 5, 11, 40])
def test_each_whole_score_has_a_bin_centred_on_it(top):
    edges = histogram_bins(top)
    assert len(edges) == top + 2
    for score in range(top + 1):
        (lo, hi), = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if a <= score < b]
        assert (lo + hi) / 2 == score


def test_large_totals_get_twenty_equal_bins():
    edges = histogram_bins(100)
    assert len(edges) == 21 and edges[0] == 0 and edges[-1] == 100


def test_the_figure_counts_whole_students_and_marks_the_median():
    import matplotlib.pyplot as plt

    fig = histogram_figure([0, 9, 9, 10.5], 11, "ex: 4 submission(s)")
    ax = fig.axes[0]
    counts = {round(p.get_x() + p.get_width() / 2): p.get_height() for p in ax.patches}
    assert counts[9] == 2 and counts[0] == 1 and sum(counts.values()) == 4
    ticks = [t for t in ax.get_yticks() if t >= 0]
    assert all(float(t).is_integer() for t in ticks), ticks
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["median 9"]
    plt.close(fig)
