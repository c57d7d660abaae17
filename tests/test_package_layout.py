"""The package's architecture, read from the source (AST only, nothing compiled): imports go from
higher layers to lower ones only, no module imports another's private names, no module is over
500 lines, and the top level is a curated API of at most 60 names, each documented."""

import ast
from pathlib import Path

import resflow as rf

PACKAGE = Path(rf.__file__).parent
# Lower layers first: a module may import from its own layer or a lower one, never a higher one.
LAYERS = {
    "_errors": 0,
    "_checks": 0,
    "trunk": 1,
    "dynamics": 2,
    "analysis": 3,
    "continuous": 3,
    "plots": 4,  # figures of analysis results; training draws a run's figures with them
    "training": 5,
    "adapters": 6,
    "experiments": 6,
    "cli": 7,
}
SUBPACKAGES = ("trunk", "dynamics", "analysis", "continuous", "training", "adapters", "experiments", "plots", "cli")


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def _dotted(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path):
    """(target module as dotted parts under resflow, imported names) of every import in `path`."""
    own = _dotted(path)
    package = own if path.name == "__init__.py" else own[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "resflow":
                target = node.module.split(".")
            else:
                continue
            yield target, [a.name for a in node.names]


def _layer(parts: list[str]) -> int | None:
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_imports_go_down_the_layers_only():
    upward = []
    for path in _modules():
        mine = _layer(_dotted(path))
        for target, _ in _imports(path):
            theirs = _layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{'.'.join(_dotted(path))} imports {'.'.join(target)}")
    assert upward == []


def test_no_private_name_crosses_a_module():
    private = [
        f"{'.'.join(_dotted(p))}: {n} from {'.'.join(t)}"
        for p in _modules()
        for t, names in _imports(p)
        for n in names
        # a private module may be imported by name (`from . import _common`), a private name may not
        if n.startswith("_")
        and not (PACKAGE.joinpath(*t[1:], n + ".py").exists() or PACKAGE.joinpath(*t[1:], n).is_dir())
    ]
    assert private == []


def test_no_module_over_500_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_the_top_level_is_a_curated_documented_api():
    names = [n for n in dir(rf) if not n.startswith("_") and n not in SUBPACKAGES]
    assert len(names) <= 60, names
    undocumented = [n for n in names if not (getattr(rf, n).__doc__ or "").strip()]
    assert undocumented == []
    # Each subpackage is importable as an attribute and re-exports names of its private modules.
    for sub in ("trunk", "dynamics", "analysis", "continuous", "training"):
        assert getattr(rf, sub).__name__ == f"resflow.{sub}"
