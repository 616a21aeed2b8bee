"""Write a student copy of tinyresnet: the solution regions replaced by ``raise NotImplementedError``.

The copy holds the whole importable package, the files that make ``pip install -e`` work (with
pytest among its dependencies, for `pytest tests/`), the tutorials but those that spell out a
released exercise's answer (``Exercise.spoils``), a handout (HANDOUT.md), the students' tests
(tests/test_exercises.py) and assignment.json (what was released). Every region of a released
exercise is stubbed, its parts too (markers.py). The hidden checks stay behind, and so does the
fast tier (``tinyresnet/kernels/``, whose kernels compute what the exercises ask): the copy runs
on the plain ops, the students' own.
"""

import ast
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from .checks import VISIBLE_CASES
from .exercises import EXERCISES
from .grade import select_exercises
from .markers import find_all_regions, owner_of, replace_bodies, scan_text
from .runner import _child_env

_HERE = Path(__file__).resolve().parent
_PROJECT_FILES = ("setup.py", "pyproject.toml", "setup.cfg", "MANIFEST.in", "LICENSE", "LICENSE.txt", "LICENSE.md")
_LEFT_BEHIND = {"hidden.py"}                     # in tinyresnet/assignment/: the grader's hidden cases
_LEFT_BEHIND_PACKAGES = {"kernels"}              # in tinyresnet/: the fast tier, the solutions made fast

STUDENT_TESTS = '''\
"""The visible checks of every exercise, as tests: `pytest tests/` (add --pdb to stop in your code).

The same checks as `tinyresnet assignment check`, run in this process so that a failure shows the
full traceback into your code. The grader runs more configurations than these.
"""

import pytest

import tinyresnet
from tinyresnet.assignment.checks import VISIBLE_CASES, run_case

EXERCISES = {exercises!r}


@pytest.mark.parametrize("case", [c for c in VISIBLE_CASES if c.exercise in EXERCISES],
                         ids=lambda c: f"{{c.exercise}}: {{c.name}}")
def test_exercise(case):
    run_case(tinyresnet, case, raise_errors=True)
'''

STUDENT_README_NOTE = """\
> **Assignment copy.** Parts of this engine were removed for an assignment: read
> [HANDOUT.md](HANDOUT.md). Install with `pip install -e .` (it brings pytest too, for
> `pytest tests/`), then run `tinyresnet assignment check`.

"""

FALLBACK_PYPROJECT = """\
[build-system]
requires = ["setuptools>=64", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "tinyresnet"
version = "{version}"
requires-python = ">=3.10"
dependencies = ["numpy>=1.23", "matplotlib>=3.5", "tqdm>=4.60", "pillow>=9.0", "pytest>=7"]
readme = "README.md"

[project.optional-dependencies]
test = ["pytest>=7"]

[project.scripts]
tinyresnet = "tinyresnet.cli:main"

[tool.setuptools.packages.find]
include = ["tinyresnet", "tinyresnet.*"]

[tool.setuptools.package-data]
tinyresnet = ["data/*.csv.gz", "data/*.npz", "assignment/*.md"]
"""


STUDENT_REQUIREMENT = "pytest>=7"                # `check` needs none, the students' tests need pytest
_TUTORIALS = "tutorials"


class ReleaseError(RuntimeError):
    """The release cannot be written (an existing folder, an unknown exercise, a broken region)."""


def stub(exercise):
    """The statement that replaces a region in the student copy."""
    message = f"{exercise}: {EXERCISES[exercise].hint}"
    return f"raise NotImplementedError({json.dumps(message, ensure_ascii=False)})\n"


def _check_templates(selected):
    """Refuse a release that stubs an exercise but leaves another whose solution is a template of it."""
    for ex in selected:
        for other, info in EXERCISES.items():
            if ex in info.gives_away and other not in selected:
                raise ReleaseError(f"releasing {ex} without {other} would leave {other}'s solution in the copy, "
                                   f"and it gives {ex}'s answer away; release both (--exercises "
                                   f"{' '.join(dict.fromkeys(selected + [other]))})")


def _with_pytest(text):
    """The instructor's setup.py or pyproject.toml with pytest added to what ``pip install -e .`` installs."""
    if "pytest" in text.split("extras_require")[0].split("optional-dependencies")[0]:
        return text
    for opening in ("install_requires=[", "dependencies = ["):
        if opening in text:
            return text.replace(opening, f'{opening}"{STUDENT_REQUIREMENT}", ', 1)
    raise ReleaseError("the project's setup.py / pyproject.toml has no install_requires=[ or dependencies = [ "
                       "list; add one so that the student copy's install brings pytest")


def _copy_tutorials(root, out, selected):
    """Copy ``tutorials/`` but the tutorials that spell out a released exercise's answer; return those."""
    source = root / _TUTORIALS
    spoiled = sorted({path for ex in selected for path in EXERCISES[ex].spoils})
    if not source.is_dir():
        return spoiled
    left_out = {Path(path).name for path in spoiled if Path(path).parent.as_posix() == _TUTORIALS}
    shutil.copytree(source, out / _TUTORIALS, ignore=lambda folder, names: set(
        shutil.ignore_patterns("__pycache__", "*.pyc", ".*")(folder, names)) | (left_out & set(names)))
    return spoiled


def _ignore(package_dir):
    patterns = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".*")

    def ignore(folder, names):
        ignored = set(patterns(folder, names))
        if Path(folder).resolve() == package_dir / "assignment":
            ignored |= _LEFT_BEHIND & set(names)
        if Path(folder).resolve() == package_dir:
            ignored |= _LEFT_BEHIND_PACKAGES & set(names)
        return ignored

    return ignore


def _docstring(text, qualname):
    """The docstring of the class (for a method) or of the function (plus its module's, which
    describes the layouts) that holds a region, as a markdown quote."""
    if not qualname:
        return ""
    tree = ast.parse(text)
    nodes, chain = tree.body, []
    for name in qualname:
        node = next((n for n in nodes if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name), None)
        if node is None:
            return ""
        chain.append(node)
        nodes = node.body
    holder = next((n for n in chain if isinstance(n, ast.ClassDef)), chain[-1])
    docs = [ast.get_docstring(holder)]
    if len(chain) == 1:
        docs.insert(0, ast.get_docstring(tree))
    lines = "\n\n".join(d for d in docs if d).splitlines()
    if not lines:
        return ""
    return "\n".join(["From the source:", ""] + [f"> {line}".rstrip() for line in lines])


def _template_sections(template):
    """Split the handout template into head, {exercise id: section}, tail."""
    begin, end = "<!-- exercise: ", "<!-- end of exercises -->"
    head, _, rest = template.partition(begin)
    body, _, tail = rest.partition(end)
    sections = {}
    for chunk in (begin + body).split(begin)[1:]:
        exercise, _, text = chunk.partition(" -->")
        sections[exercise.strip()] = text.strip("\n")
    return head, sections, tail


def _generic_section():
    return "### {{id}}: {{title}} ({{points}})\n\n**Where:** `{{owner}}` in `{{location}}`.\n\n{{docstring}}\n\n" \
           "Hint: {{hint}}\n\n**Visible checks:**\n\n{{checks}}"


def write_handout(selected, regions_out, texts, version):
    """The handout's markdown for the released exercises (``regions_out``: their regions in the copy)."""
    head, sections, tail = _template_sections((_HERE / "handout.md").read_text(encoding="utf-8"))
    table = ["| exercise | what | where | points |", "| --- | --- | --- | --- |"]
    parts = []
    for ex in selected:
        region, info = regions_out[ex], EXERCISES[ex]
        qualname = owner_of(texts[region.relpath], region)
        owner = ".".join(qualname) if qualname else "(module level)"
        points = f"{info.points} point{'s' if info.points != 1 else ''}"
        table.append(f"| `{ex}` | {info.title} | `{region.location}` | {info.points} |")
        checks = "\n".join(f"- {c.name}" for c in VISIBLE_CASES if c.exercise == ex) or "- (none listed)"
        section = sections.get(ex, _generic_section())
        for token, value in (("id", ex), ("title", info.title), ("points", points), ("owner", owner),
                             ("location", region.location), ("hint", info.hint), ("checks", checks),
                             ("docstring", _docstring(texts[region.relpath], qualname))):
            section = section.replace("{{" + token + "}}", value)
        parts.append(section)
    text = head.replace("{{exercise_table}}", "\n".join(table))
    text = text.replace("{{total_points}}", str(sum(EXERCISES[ex].points for ex in selected)))
    text = text.replace("{{exercises}}", "\n\n".join(parts)).replace("{{version}}", version)
    return text.rstrip() + "\n\n" + tail.strip() + "\n"


def release(out_dir, exercises=None, source=None, python=None, verify=True):
    """Write the student copy to ``out_dir`` (a new or empty folder); return a summary dict.

    ``exercises``: the ids to remove (default: every region in the source); the other regions
    keep their solutions. ``source``: the folder holding the instructor's ``tinyresnet`` package
    (default: the one running). ``verify`` imports the copy in a fresh process to prove it works.
    """
    if source is None:
        import tinyresnet
        package_dir = Path(tinyresnet.__file__).resolve().parent
    else:
        package_dir = Path(source).resolve() / "tinyresnet"
    all_regions = find_all_regions(package_dir)
    regions = {ex: found[0] for ex, found in all_regions.items()}
    selected = select_exercises(exercises, regions, package_dir)
    _check_templates(selected)
    out = Path(out_dir).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReleaseError(f"{out} already exists and is not an empty folder; choose a new folder for the release")
    if out.is_relative_to(package_dir):
        raise ReleaseError(f"{out} is inside the source package {package_dir}; choose a folder outside it")

    texts = {}                                   # relpath -> the released text of each file with a region removed
    for path in sorted({r.path for ex in selected for r in all_regions[ex]}):
        relpath = path.relative_to(package_dir.parent).as_posix()
        text = replace_bodies(path.read_text(encoding="utf-8"), {ex: stub(ex) for ex in selected}, relpath)
        try:
            compile(text, relpath, "exec")
        except SyntaxError as e:
            raise ReleaseError(f"{relpath}: after replacing its regions with a raise the file does not compile "
                               f"({e.msg}, line {e.lineno}); put each region's markers at the indentation of "
                               f"the statements they enclose") from None
        texts[relpath] = text

    shutil.copytree(package_dir, out / "tinyresnet", ignore=_ignore(package_dir), dirs_exist_ok=True)
    for relpath, text in texts.items():
        (out / relpath).write_text(text, encoding="utf-8")
    regions_out = {r.exercise: r for relpath, text in texts.items() for r in scan_text(text, relpath) if not r.part}

    root = package_dir.parent
    copied = [name for name in _PROJECT_FILES if (root / name).is_file()]
    for name in copied:
        shutil.copy2(root / name, out / name)
    packaging = [name for name in ("setup.py", "pyproject.toml") if name in copied]
    for name in packaging[:1]:                   # setup.py wins when both exist, as pip does
        (out / name).write_text(_with_pytest((root / name).read_text(encoding="utf-8")), encoding="utf-8")
    spoiled = _copy_tutorials(root, out, selected)
    if "setup.py" not in copied and "pyproject.toml" not in copied:
        (out / "pyproject.toml").write_text(FALLBACK_PYPROJECT.format(version=_version(package_dir)),
                                            encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8") if (root / "README.md").is_file() else "# tinyresnet\n"
    (out / "README.md").write_text(STUDENT_README_NOTE + readme, encoding="utf-8")
    (out / ".gitignore").write_text("__pycache__/\n*.pyc\n*.egg-info/\n.pytest_cache/\n.venv/\n", encoding="utf-8")
    (out / "tests").mkdir(exist_ok=True)
    (out / "tests" / "test_exercises.py").write_text(STUDENT_TESTS.format(exercises=selected), encoding="utf-8")
    version = _version(package_dir)
    (out / "HANDOUT.md").write_text(write_handout(selected, regions_out, texts, version), encoding="utf-8")
    manifest = {"exercises": selected, "points": {ex: EXERCISES[ex].points for ex in selected},
                "regions": {ex: regions_out[ex].location for ex in selected},
                "parts": {ex: [r.key for r in all_regions[ex][1:]] for ex in selected if len(all_regions[ex]) > 1},
                "tutorials_left_out": spoiled, "tinyresnet_version": version,
                "released": date.today().isoformat(),
                "grade_with": f"tinyresnet assignment grade STUDENT_DIR --exercises {' '.join(selected)}"}
    (out / "assignment.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if verify:
        modules = sorted({r.relpath[:-3].replace("/", ".") for found in all_regions.values() for r in found}
                         - {"tinyresnet.__init__"})
        _verify_import(out, python or sys.executable, modules)
    return {"out_dir": str(out), "exercises": selected, "kept": [ex for ex in regions if ex not in selected],
            "max_points": sum(EXERCISES[ex].points for ex in selected), "grade_with": manifest["grade_with"],
            "tutorials_left_out": spoiled}


def _version(package_dir):
    for line in (package_dir / "__init__.py").read_text(encoding="utf-8").splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "0"


def _verify_import(out, python, modules):
    """Import the copy and the modules that hold regions in a fresh process (PYTHONPATH = the copy),
    and check where tinyresnet came from."""
    code = f"import tinyresnet, {', '.join(modules + ['tinyresnet.assignment.checks'])}; print(tinyresnet.__file__)"
    done = subprocess.run([python, "-s", "-c", code], capture_output=True, text=True, cwd=out,
                          env=_child_env(out), timeout=120)
    where = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or Path(where).resolve() != out / "tinyresnet" / "__init__.py":
        raise ReleaseError(f"the released copy at {out} does not import cleanly (imported from {where or 'nowhere'}):\n"
                           f"{done.stderr.strip()[-2000:]}")
