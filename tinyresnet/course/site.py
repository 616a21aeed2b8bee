"""Build the course site: every tutorial executed as a notebook, rendered to static HTML with its figures.

    python -m tinyresnet.course.site build                 # full runs (many minutes), into _site/
    python -m tinyresnet.course.site build --quick         # the small fast runs (what the tests build)
    python -m tinyresnet.course.site build --only 02 04 --out site-preview

Saves: ``OUT/index.html`` (the list of lessons), ``OUT/NN_name.html`` (one page per tutorial, figures
embedded as images, solutions in closed <details> blocks), ``OUT/notebooks/NN_name.ipynb`` (the executed
notebooks) and ``OUT/runs/NN_name/`` (each run's PNGs, output.txt, results.json). The pages load nothing
from outside the folder: nbconvert's references to script hosts are removed, so a page works offline.
"""

import argparse
import html
import re
import sys
import time
from pathlib import Path

from .notebook import _require, count_images, execute_tutorial

REPO = Path(__file__).resolve().parents[2]
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.IGNORECASE)
_REMOTE_LINK = re.compile(r"<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*>", re.IGNORECASE)
_REMOTE_IMPORT = re.compile(r"<script[^>]*>(?:(?!</script>).)*?\bimport\(\s*\"https?://(?:(?!</script>).)*?</script>",
                            re.IGNORECASE | re.DOTALL)       # e.g. the mermaid loader, unused by our pages
_STYLE = """
<style>
  .course-nav { font: 14px sans-serif; padding: 8px 16px; background: #f3f5f7; border-bottom: 1px solid #d0d7de; }
  .course-nav a { margin-right: 18px; }
  details { border: 1px solid #d0d7de; border-radius: 4px; padding: 4px 8px; margin: 6px 0; }
  summary { cursor: pointer; font-weight: bold; }
</style>
"""


def tutorials(folder=None, only=None):
    """The numbered tutorial scripts in ``folder`` (default: the repository's tutorials/), optionally only
    those whose number is in ``only`` (e.g. ["02", "04"])."""
    folder = Path(folder) if folder else REPO / "tutorials"
    scripts = sorted(folder.glob("[0-9][0-9]_*.py"))
    if only:
        wanted = {str(n).zfill(2) for n in only}
        scripts = [s for s in scripts if s.name[:2] in wanted]
        missing = wanted - {s.name[:2] for s in scripts}
        if missing:
            raise SystemExit(f"no tutorial numbered {sorted(missing)} in {folder}")
    if not scripts:
        raise SystemExit(f"no tutorials (NN_name.py) found in {folder}")
    return scripts


def title_of(notebook, fallback):
    """The first markdown heading of the notebook ("02 · Skip connections ..."), without the '#'."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def offline(page):
    """``page`` without the script, module-import or stylesheet tags that load from another host."""
    return _REMOTE_IMPORT.sub("", _REMOTE_LINK.sub("", _REMOTE_SCRIPT.sub("", page)))


def _nav(pages, index):
    links = ['<a href="index.html">All lessons</a>']
    if index > 0:
        links.append(f'<a href="{pages[index - 1][0]}.html">&larr; {html.escape(pages[index - 1][1])}</a>')
    if index + 1 < len(pages):
        links.append(f'<a href="{pages[index + 1][0]}.html">{html.escape(pages[index + 1][1])} &rarr;</a>')
    return f'<nav class="course-nav">{"".join(links)}</nav>'


def render(notebook):
    """The notebook as one HTML page (nbconvert's lab template, images embedded), made offline."""
    _require("nbconvert")
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    page, _ = exporter.from_notebook_node(notebook)
    return offline(page).replace("</head>", _STYLE + "</head>", 1)


def build(out="_site", quick=False, only=None, folder=None, log=print):
    """Execute and render the tutorials into ``out``; return ``[(stem, title, figures shown), ...]``."""
    import nbformat

    out = Path(out)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    done = []
    for script in tutorials(folder, only):
        started = time.perf_counter()
        notebook = execute_tutorial(script, out / "runs", quick=quick)
        nbformat.write(notebook, out / "notebooks" / f"{script.stem}.ipynb")
        done.append((script.stem, title_of(notebook, script.stem), count_images(notebook), notebook))
        log(f"[site] {script.stem}: executed in {time.perf_counter() - started:.0f} s, "
            f"{done[-1][2]} figures inline")
    pages = [(stem, title) for stem, title, _, _ in done]
    for i, (stem, _, _, notebook) in enumerate(done):
        nav = _nav(pages, i)
        page = re.sub(r"(<body[^>]*>)", lambda m, nav=nav: m.group(1) + nav, render(notebook), count=1)
        (out / f"{stem}.html").write_text(page, encoding="utf-8")
    items = "\n".join(f'<li><a href="{stem}.html">{html.escape(title)}</a> ({n} figures) · '
                      f'<a href="notebooks/{stem}.ipynb">notebook</a></li>' for stem, title, n, _ in done)
    mode = "quick runs (small, fast versions)" if quick else "full runs"
    (out / "index.html").write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>tinyresnet: the ResNet course</title>{_STYLE}"
        f"</head><body style='font-family: sans-serif; max-width: 52em; margin: 2em auto'>"
        f"<h1>tinyresnet: ResNets, measured</h1><p>Each lesson is a tutorial of the repository executed as a "
        f"notebook ({mode}). Predict before each experiment, then compare; solutions to the exercises are "
        f"folded away until you open them.</p><ol>{items}</ol></body></html>", encoding="utf-8")
    log(f"[site] {len(done)} pages in {out / 'index.html'}")
    return [(stem, title, n) for stem, title, n, _ in done]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyresnet.course.site",
                                     description="Build the course site from the tutorials (executed as notebooks)")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute every tutorial as a notebook and write static HTML pages")
    b.add_argument("--out", default="_site", help="output folder (default: %(default)s)")
    b.add_argument("--quick", action="store_true", help="the small fast runs (about a minute in all)")
    b.add_argument("--only", nargs="*", metavar="NN", help="only these tutorial numbers, e.g. --only 02 04")
    b.add_argument("--tutorials", default=None, help="the folder of NN_name.py tutorials (default: the repository's)")
    args = parser.parse_args(argv)
    build(args.out, quick=args.quick, only=args.only, folder=args.tutorials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
