"""Numbers quoted in the docs equal the results files that the scripts and examples write.

A quoted number is marked in the markdown as ``<!--r:FILE.KEY-->VALUE<!--/r-->`` (the
comments do not render). FILE is a path under ``docs/results`` without ``.json``; KEY is a
dotted path into it (integers index lists). VALUE is the number as printed, optionally with a
unit or sign after it (``%``, ``×``, ``s``); it must equal the stored value rounded to the
decimals VALUE shows. So the docs cannot drift from the results: rerun the example, and this
test names every stale number.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!--r:([\w./-]+?)\.([\w.]+)-->(.*?)<!--/r-->", re.S)
NUMBER = re.compile(r"^\s*([-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?)")


def _lookup(data, key: str):
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def check_markers(text: str, results_dir: Path) -> tuple[int, list[str]]:
    """(number of markers, problems): each marked VALUE against its results file."""
    problems, count = [], 0
    for file, key, shown in MARK.findall(text):
        count += 1
        path = results_dir / f"{file}.json"
        if not path.is_file():
            problems.append(f"{file}.{key}: no results file {path}")
            continue
        try:
            value = _lookup(json.loads(path.read_text()), key)
        except (KeyError, IndexError, ValueError, TypeError):
            problems.append(f"{file}.{key}: no such key in {path.name}")
            continue
        m = NUMBER.match(shown)
        if m is None:
            problems.append(f"{file}.{key}: the quoted text {shown!r} is not a number")
            continue
        token = m.group(1).replace(",", "").replace("−", "-")
        decimals = len(token.split(".")[1].split("e")[0]) if "." in token else 0
        if "e" in token.lower():
            ok = float(token) == float(f"{float(value):.{decimals}e}")
        else:
            ok = float(token) == round(float(value), decimals)
        if not ok:
            problems.append(f"{file}.{key}: the docs say {token}, {path.name} has {value}")
    return count, problems


def _pages():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_quoted_numbers_equal_results_files(page):
    _, problems = check_markers(page.read_text(), ROOT / "docs" / "results")
    assert not problems, "\n".join(problems)


def test_docs_quote_numbers_through_markers():
    # The structure is in use: the docs' measured numbers are marked, not typed in.
    total = sum(check_markers(p.read_text(), ROOT / "docs" / "results")[0] for p in _pages())
    assert total >= 10


def test_checker_catches_a_stale_number(tmp_path):
    (tmp_path / "ex.json").write_text(json.dumps({"acc": 0.9751, "rows": [{"l": -0.0391}], "n": 1438}))
    good = "acc <!--r:ex.acc-->0.975<!--/r-->, λ <!--r:ex.rows.0.l-->−0.039<!--/r-->, <!--r:ex.n-->1,438<!--/r--> train"
    assert check_markers(good, tmp_path) == (3, [])
    stale = "acc <!--r:ex.acc-->0.970<!--/r--> and <!--r:ex.n-->1437<!--/r-->, <!--r:ex.missing-->1<!--/r-->"
    count, problems = check_markers(stale, tmp_path)
    assert count == 3 and len(problems) == 3
    assert "the docs say 0.970" in problems[0] and "no such key" in problems[2]
