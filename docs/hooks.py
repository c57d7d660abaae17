"""mkdocs hooks for the resflow site (mkdocs.yml: ``hooks``). Nothing here runs at import time.

- Gallery: one page per script in docs/examples/ (its docstring, its figures from
  docs/figures/ and its code), generated at build time; the nav's "Gallery" section lists them.
  The committed figures are shown; set RESFLOW_DOCS_RUN_EXAMPLES=1 to rerun every script first
  (minutes: they train networks).
- Benchmarks: benchmarks/README.md and its figures become the page benchmarks/index.md.
- MathJax 3 (tex-svg.js) is copied from the pip package django-static-mathjax (the ``docs``
  extra) into assets/mathjax/, so math renders with nothing fetched from the network.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]  # docs/hooks.py -> the repository root
EXAMPLES = ROOT / "docs" / "examples"
FIGURES = ROOT / "docs" / "figures"
BENCHMARKS = ROOT / "benchmarks"


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


def _figures(script: Path) -> list[Path]:
    """The figures a script writes: docs/figures/<first word of its name>_*.png."""
    prefix = script.stem.split("_")[0] + "_"
    return sorted(p for p in FIGURES.glob(prefix + "*.png"))


def _title(script: Path) -> str:
    return script.stem.replace("_", " ").capitalize()


def _gallery_page(script: Path) -> str:
    source = script.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""
    lines = [f"# {_title(script)}", "", f"`docs/examples/{script.name}`", ""]
    if doc:
        lines += [doc, ""]  # the docstring as markdown (``code`` spans, indented command lines)
    figures = _figures(script)
    if figures:
        lines += ["## Figures", ""]
        for fig in figures:
            lines += [f"![{fig.stem}](../figures/{fig.name})", ""]
    lines += [
        "## Code",
        "",
        f"Run it with `.venv/bin/python docs/examples/{script.name}` from the repository root.",
        "",
        "```python",
        source.rstrip("\n"),
        "```",
        "",
    ]
    return "\n".join(lines)


def _gallery_index() -> str:
    lines = [
        "# Gallery",
        "",
        "Each script in `docs/examples/` builds the figures and numbers of a guide. Its page shows the",
        "committed figures beside its code (`make docs-numbers` reruns them all).",
        "",
    ]
    for script in _examples():
        figures = _figures(script)
        lines.append(f"- [{_title(script)}]({script.stem}.md): {len(figures)} figure(s)")
    return "\n".join(lines) + "\n"


def _benchmarks_page() -> str:
    text = (BENCHMARKS / "README.md").read_text(encoding="utf-8")
    return text.replace("](../docs/", "](../")


def _mathjax_js() -> Path:
    try:
        import mathjax  # django-static-mathjax
    except ImportError as err:
        raise PluginError(
            "MathJax for the site comes from the pip package django-static-mathjax: pip install -e '.[docs]'"
        ) from err
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js"
    if not path.is_file():
        raise PluginError(f"django-static-mathjax lacks {path}: reinstall it (pip install -e '.[docs]')")
    return path


def on_config(config, **kwargs):
    gallery = [{"Overview": "gallery/index.md"}] + [{_title(s): f"gallery/{s.stem}.md"} for s in _examples()]
    for i, item in enumerate(config["nav"] or []):
        if isinstance(item, dict) and "Gallery" in item:
            config["nav"][i] = {"Gallery": gallery}
    return config


def on_pre_build(config, **kwargs):
    if os.environ.get("RESFLOW_DOCS_RUN_EXAMPLES") == "1":
        for script in _examples():
            print(f"mkdocs: running {script.name}", flush=True)
            subprocess.run([sys.executable, str(script)], check=True, cwd=ROOT)


def on_files(files, config, **kwargs):
    files.append(File.generated(config, "gallery/index.md", content=_gallery_index()))
    for script in _examples():
        files.append(File.generated(config, f"gallery/{script.stem}.md", content=_gallery_page(script)))
    files.append(File.generated(config, "benchmarks/index.md", content=_benchmarks_page()))
    for png in sorted((BENCHMARKS / "results").glob("*.png")):
        files.append(File.generated(config, f"benchmarks/results/{png.name}", abs_src_path=str(png)))
    files.append(File.generated(config, "assets/mathjax/tex-svg.js", abs_src_path=str(_mathjax_js())))
    return files
