"""Keep the numbers quoted in the docs equal to the results files the examples write.

    python scripts/docs_numbers.py           # list every stale number (exit 1 if any)
    python scripts/docs_numbers.py --write   # rewrite them from docs/results/*.json

A quoted number is marked in the markdown as ``<!--r:FILE.KEY-->VALUE<!--/r-->`` (the
comments do not render). FILE is a path under ``docs/results`` without ``.json``; KEY is a
dotted path into it (integers index lists). VALUE is the number as printed, optionally
followed by text (a unit, ``×``); it must equal the stored value rounded to the decimals
VALUE shows. A VALUE followed by ``%`` shows a stored fraction in percent (0.975 → 97.5 %).
``--write`` keeps each VALUE's decimals and trailing text.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository checkout: its README, docs/ and benchmarks/
RESULTS = ROOT / "docs" / "results"
MARK = re.compile(r"<!--r:([\w./-]+?)\.([\w.]+)-->(.*?)<!--/r-->", re.S)
NUMBER = re.compile(r"^(\s*)([-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?)(.*)$", re.S)


def pages() -> list[Path]:
    """Every page that may quote numbers: README, docs/ and benchmarks/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]


def _lookup(data, key: str):
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def _stored(file: str, key: str, results_dir: Path):
    """(value, problem): the stored number, or why there is none."""
    path = results_dir / f"{file}.json"
    if not path.is_file():
        return None, f"{file}.{key}: no results file {path}"
    try:
        return float(_lookup(json.loads(path.read_text()), key)), None
    except (KeyError, IndexError, ValueError, TypeError):
        return None, f"{file}.{key}: no such number in {path.name}"


def _format(value: float, token: str) -> str:
    """`value` printed like `token` (decimals, exponent, thousands separator, minus sign)."""
    decimals = len(token.split(".")[1].lower().split("e")[0]) if "." in token else 0
    if "e" in token.lower():
        mantissa, exponent = f"{value:.{decimals}e}".split("e")
        text = f"{mantissa}e{int(exponent)}"
    elif "," in token:
        text = f"{value:,.{decimals}f}"
    else:
        text = f"{value:.{decimals}f}"
    return text.replace("-", "−") if "−" in token else text


def _scaled(value: float, rest: str) -> float:
    """The stored value as shown: a fraction followed by ``%`` is shown in percent."""
    return value * 100 if rest.lstrip().startswith("%") else value


def check_markers(text: str, results_dir: Path = RESULTS) -> tuple[int, list[str]]:
    """(number of markers, problems): each marked VALUE against its results file."""
    problems = []
    marks = MARK.findall(text)
    for file, key, shown in marks:
        value, problem = _stored(file, key, results_dir)
        m = NUMBER.match(shown)
        if problem is None and m is None:
            problem = f"{file}.{key}: the quoted text {shown!r} is not a number"
        if problem is None:
            token = m.group(2)
            plain = token.replace(",", "").replace("−", "-")
            value = _scaled(value, m.group(3))
            if float(plain) != float(_format(value, plain)):
                problem = f"{file}.{key}: the docs say {token}, {file}.json has {value}"
        if problem:
            problems.append(problem)
    return len(marks), problems


def update_markers(text: str, results_dir: Path = RESULTS) -> str:
    """`text` with every marked VALUE reprinted from its results file (same format)."""

    def one(m):
        file, key, shown = m.groups()
        value, problem = _stored(file, key, results_dir)
        num = NUMBER.match(shown)
        if problem or num is None:
            return m.group(0)
        lead, token, rest = num.groups()
        return f"<!--r:{file}.{key}-->{lead}{_format(_scaled(value, rest), token)}{rest}<!--/r-->"

    return MARK.sub(one, text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite stale numbers from docs/results")
    a = ap.parse_args(argv)
    stale = 0
    for page in pages():
        text = page.read_text()
        if a.write:
            new = update_markers(text)
            if new != text:
                page.write_text(new)
                print(f"updated {page.relative_to(ROOT)}")
        for problem in check_markers(page.read_text())[1]:
            stale += 1
            print(f"{page.relative_to(ROOT)}: {problem}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
