"""The documentation site (mkdocs.yml, `make docs`): the strict build, an API entry for every
public name, a gallery page per example, nothing fetched from the network, and three pages
looked at in headless Chromium (title, navigation, rendered math / an image, a real screenshot).

The strict build runs once for the module (about 10 s). RESFLOW_SITE_SCREENSHOTS=<folder> keeps
the browser's screenshots there (docs/figures/site/ holds the committed ones).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("trunk", "dynamics", "analysis", "continuous", "training", "adapters", "experiments", "plots", "cli")
CHROMIUM = "/usr/bin/chromium"


def _public_names() -> list[str]:
    import resflow as rf

    return [n for n in dir(rf) if not n.startswith("_") and n not in SUBPACKAGES]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    env.pop("RESFLOW_DOCS_RUN_EXAMPLES", None)  # the committed figures: no training here
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_strict_build_has_the_pages(site):
    for page in ("index.html", "api/index.html", "gallery/index.html", "results.html", "benchmarks/index.html"):
        assert (site / page).is_file(), page
    # a guide page keeps its figures
    assert (site / "figures" / "network_residuals_band.png").is_file()


def test_every_image_resolves(site):
    broken, count = [], 0
    for page in site.rglob("*.html"):
        for src in re.findall(r'<img [^>]*src="([^"]+)"', page.read_text(encoding="utf-8")):
            if src.startswith(("data:", "http:", "https:")):
                continue
            count += 1
            if not (page.parent / src.split("#")[0]).resolve().is_file():
                broken.append((page.relative_to(site).as_posix(), src))
    assert count > 40, count  # the guides', the gallery's and the benchmarks' figures
    assert not broken, broken[:5]


def test_every_public_name_has_an_api_entry(site):
    api = "\n".join(p.read_text(encoding="utf-8") for p in sorted((site / "api").glob("*.html")))
    names = _public_names()
    assert len(names) > 40  # the curated API, not an empty import
    missing = [n for n in names if f'id="resflow.{n}"' not in api]
    assert not missing, f"public names without an API entry: {missing}"
    for n in ("ResidualTrunk", "to_trunk"):
        assert f'id="resflow.adapters.flax.{n}"' in api, n
    # an entry is rendered from its docstring, not just a heading
    import resflow as rf

    first_words = " ".join(re.findall(r"\w+", rf.fit.__doc__)[:6])
    page_words = " ".join(re.findall(r"\w+", re.sub(r"<[^>]+>", " ", api)))
    assert first_words in page_words, first_words


def test_gallery_has_every_example_with_its_figures(site):
    for script in sorted((ROOT / "docs" / "examples").glob("*.py")):
        page = site / "gallery" / f"{script.stem}.html"
        assert page.is_file(), f"no gallery page for {script.name}"
        html = page.read_text(encoding="utf-8")
        prefix = script.stem.split("_")[0] + "_"
        figures = sorted(p.name for p in (ROOT / "docs" / "figures").glob(prefix + "*.png"))
        assert figures, f"{script.name} has no figure in docs/figures"
        for fig in figures:
            assert f'src="../figures/{fig}"' in html, (script.name, fig)
        # its code is on the page (the last statement line of the script)
        last = [line for line in script.read_text(encoding="utf-8").splitlines() if line.strip()][-1]
        assert re.sub(r"\W", "", last)[:20] in re.sub(r"<[^>]+>|\W", "", html)


def test_site_needs_no_network(site):
    offenders = []
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for tag in re.findall(r"<(?:script|link|img)\b[^>]*>", html):
            if re.search(r'(?:src|href)="(?:https?:)?//', tag) and 'rel="canonical"' not in tag:
                offenders.append((page.relative_to(site).as_posix(), tag))
    assert not offenders, offenders[:5]
    assert (site / "assets" / "mathjax" / "tex-svg.js").stat().st_size > 500_000


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        "--virtual-time-budget=8000",  # let MathJax typeset before the DOM is dumped
    ]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120)


PAGES = {
    # name: (page, title, what it must show)
    "home": ("index.html", "resflow", "img"),
    "api": ("api/trunk.html", "resflow.trunk - resflow", "math"),
    "gallery": ("gallery/training_runs.html", "Training runs - resflow", "img"),
}


@pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"headless Chromium check: {CHROMIUM} is missing; install it with apt-get install chromium",
)
@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_in_headless_chromium(site, name, tmp_path):
    page, title, expect = PAGES[name]
    url = (site / page).as_uri()
    png = tmp_path / f"{name}.png"
    # One browser run: the DOM (after MathJax) on stdout and a screenshot of the same page.
    done = _chromium(["--dump-dom", f"--screenshot={png}", url], tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    html = done.stdout
    assert f"<title>{title}</title>" in html
    assert 'class="md-nav' in html and "API reference" in html and "Gallery" in html  # the left-hand navigation
    if expect == "math":
        assert "<mjx-container" in html, "MathJax did not render the page's math"
        assert "<svg" in html
    else:
        assert re.search(r'<img [^>]*src="[^"]*\.png"', html), "no image on the page"
    assert png.stat().st_size > 10_000, f"screenshot of {page} is only {png.stat().st_size} bytes"
    assert _png_size(png) == (1280, 900)
    keep = os.environ.get("RESFLOW_SITE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / f"site_{name}.png")
