"""The command lines: pyproject's [project.scripts] entry points name callables of resflow.cli,
each scripts/*.py is a thin wrapper over one of them, and a wrapper run as a process keeps the
command's one-line error and exit status."""

import ast
import importlib
import inspect
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {
    "train": "resflow-train",
    "sweep": "resflow-sweep",
    "analyze": "resflow-analyze",
    "reproduce": "resflow-reproduce",
    "noise_robustness": "resflow-noise",
    "recipe_search": "resflow-recipe-search",
    "docs_numbers": "resflow-docs-numbers",
    "fashion_recipe": "resflow-fashion-recipe",
}


def entry_points() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_entry_point_is_a_main_of_resflow_cli():
    points = entry_points()
    assert set(points) == set(SCRIPTS.values())
    for name, target in points.items():
        module_name, _, attr = target.partition(":")
        assert module_name.startswith("resflow.cli.") and attr == "main", (name, target)
        main = getattr(importlib.import_module(module_name), attr)
        assert callable(main), target
        assert list(inspect.signature(main).parameters) == ["argv"], target  # main(argv=None)
        assert inspect.signature(main).parameters["argv"].default is None, target


def wrapper_target(path: Path) -> str:
    """``module:main`` of a wrapper: its one import, ``from resflow.cli.X import main``; nothing else
    but a docstring and ``if __name__ == "__main__": raise SystemExit(main())``."""
    tree = ast.parse(path.read_text())
    body = tree.body[1:] if ast.get_docstring(tree) else tree.body
    assert len(body) == 2, f"{path.name}: more than an import and a __main__ guard"
    imp, guard = body
    assert isinstance(imp, ast.ImportFrom) and [a.name for a in imp.names] == ["main"], path.name
    assert isinstance(guard, ast.If) and ast.unparse(guard.test) == "__name__ == '__main__'", path.name
    assert [ast.unparse(s) for s in guard.body] == ["raise SystemExit(main())"], path.name
    return f"{imp.module}:main"


def test_every_script_is_a_thin_wrapper_over_its_entry_point():
    points = entry_points()
    assert sorted(p.stem for p in (ROOT / "scripts").glob("*.py")) == sorted(SCRIPTS)
    for stem, name in SCRIPTS.items():
        path = ROOT / "scripts" / f"{stem}.py"
        assert wrapper_target(path) == points[name], path.name
        assert f"python scripts/{stem}.py" in ast.get_docstring(ast.parse(path.read_text())), "usage in the docstring"


def test_the_train_wrapper_as_a_process_exits_2_with_one_line():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "--depth", "0"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu"),
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == "train.py: error: depth must be >= 1, got 0\n" and done.stdout == ""
