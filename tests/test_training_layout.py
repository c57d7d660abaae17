"""resflow.training's structure: no import circle, no private name imported across modules, one
error hierarchy for files, one atomic writer (pure AST and class checks: no compiling)."""

import ast
from pathlib import Path

import resflow as rf
import resflow._errors as errors
from resflow.training import _checkpoint, _files, _readers, _runs

PACKAGE = Path(rf.__file__).parent / "training"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module relative to resflow.training, imported names) of each ``from .x import ...``, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            out.append((node.module, [a.name for a in node.names]))
    return out


def test_no_import_circle_and_no_private_names_across_modules():
    modules = {p.stem: p for p in PACKAGE.glob("_*.py") if p.stem != "__init__"}
    edges = {m: {t for t, _ in _imports(p) if t in modules} for m, p in modules.items()}
    # Depth-first search for a cycle; the path is the message.
    state: dict = {}

    def visit(m, path):
        state[m] = "open"
        for t in sorted(edges[m]):
            assert state.get(t) != "open", f"import circle: {' -> '.join(path + [t])}"
            if t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    private = [(m, t, n) for m, p in modules.items() for t, names in _imports(p) for n in names if n.startswith("_")]
    assert private == []


def test_one_error_hierarchy_and_one_atomic_writer():
    for cls in (errors.DataError, errors.RunError, errors.CheckpointError, errors.OutputError):
        assert issubclass(cls, errors.InputError) and issubclass(cls, ValueError)
    assert issubclass(errors.OutputError, OSError)
    # Defined once, in resflow._errors; the modules that raise them use those very classes.
    assert (_readers.DataError, _runs.RunError, rf.training.RunError) == (
        errors.DataError,
        errors.RunError,
        errors.RunError,
    )
    assert (_checkpoint.CheckpointError, _checkpoint.OutputError) == (errors.CheckpointError, errors.OutputError)
    # Only _files replaces files into place.
    replacing = sorted(p.name for p in PACKAGE.glob("*.py") if "os.replace(" in p.read_text())
    assert replacing == ["_files.py"]
    assert _runs.write_json is _files.write_json
