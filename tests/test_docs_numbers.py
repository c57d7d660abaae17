"""Numbers quoted in the docs equal the results files that the scripts and examples write.

The markers and the checker are described in resflow/cli/docs_numbers.py (scripts/docs_numbers.py); this test runs the
checker on every page, and checks the checker itself on pages it writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resflow.cli import docs_numbers as dn

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("page", dn.pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_quoted_numbers_equal_results_files(page):
    _, problems = dn.check_markers(page.read_text())
    assert not problems, "\n".join(problems) + "\n(rerun the example, then python scripts/docs_numbers.py --write)"


def test_docs_quote_numbers_through_markers():
    # The structure is in use: the docs' measured numbers are marked, not typed in.
    assert sum(dn.check_markers(p.read_text())[0] for p in dn.pages()) >= 50


def test_checker_catches_stale_numbers_and_update_fixes_them(tmp_path):
    (tmp_path / "ex.json").write_text(json.dumps({"acc": 0.9751, "rows": [{"l": -0.0391}], "n": 1438}))
    good = "acc <!--r:ex.acc-->0.975<!--/r-->, λ <!--r:ex.rows.0.l-->−0.039<!--/r-->, <!--r:ex.n-->1,438 train<!--/r-->"
    assert dn.check_markers(good, tmp_path) == (3, [])
    assert dn.check_markers("<!--r:ex.acc-->97.5 %<!--/r-->", tmp_path) == (1, [])
    stale = "acc <!--r:ex.acc-->0.970 s<!--/r--> and <!--r:ex.n-->1437<!--/r-->, <!--r:ex.missing-->1<!--/r-->"
    count, problems = dn.check_markers(stale, tmp_path)
    assert count == 3 and len(problems) == 3
    assert "the docs say 0.970" in problems[0] and "no such number" in problems[2]
    fixed = dn.update_markers(stale, tmp_path)
    assert "<!--r:ex.acc-->0.975 s<!--/r-->" in fixed and "<!--r:ex.n-->1438<!--/r-->" in fixed
    assert dn.check_markers(fixed, tmp_path)[1] == [problems[2]]


def test_headline_circles_run_reproduces_from_scratch():
    # The pages are checked against the stored results above; this reruns the README's circles
    # headline (seed 0 of docs/examples/training_runs.py's depth-rule column), from the README
    # command's own flags through the train CLI's parser, and checks the stored numbers against
    # the fresh run: a change of the training code or of the CLI's defaults that moves them fails
    # here until `make docs-numbers` rewrites them.
    import jax

    import resflow as rf
    from resflow.cli import train as train_cli

    flags = ["--data", "circles", "--width", "3", "--depth", "15", "--depth-adapt", "--seed", "0"]
    config = train_cli.config_from_args(train_cli.build_parser().parse_args(flags))
    result = rf.fit(rf.load_dataset("circles", seed=0), config, key=jax.random.key(0), figures=False)
    stored = json.loads((dn.RESULTS / "training_runs.json").read_text())["circles_adapt_w1"]["seeds"]["0"]
    assert result.metrics["depth"] == stored["depth"]
    # 1000 test points: one point is 1e-3
    assert result.metrics["test_accuracy"] == pytest.approx(stored["test_accuracy"], abs=5e-4)
