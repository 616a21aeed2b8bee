"""A "find the errors" exercise: the document's claims without the engine's column, graded by the engine.

``write_worksheet(claims, path)`` writes the exercise as Markdown (a file to fill in by hand) or
JSON (by the path's extension). Each claim is a block::

    ## rgb-out-10-ch0
    §3.5 · RGB 1×1 conv: channel 0 at (1,0)
    The document says: 6.1

    verdict:
    value:
    work:

The student writes ``right`` or ``wrong`` after ``verdict:``; for a wrong claim, the correct value
after ``value:`` (a number, an expression such as ``0.4×1 + 0.3×5``, a shape such as ``56×56×64``,
or the word the claim asks for) and one line of arithmetic after ``work:``. ``grade(path, claims)``
reads a filled-in sheet (either format) and compares every answer with the engine: a wrong verdict,
a missing or wrong value, or arithmetic that does not give the value is marked incorrect. A file
that cannot be read raises ``WorksheetError`` naming each line at fault and how to fix it.
"""

import ast
import json
import operator
import re
from dataclasses import dataclass, field

import numpy as np

from .claim import _SHAPE, parse_number, parse_shape

FORMAT, VERSION = "tinyresnet-find-the-errors", 1
FIELDS = ("verdict", "value", "work")
VERDICTS = {"right": True, "wrong": False, "✓": True, "✗": False}
INSTRUCTIONS = (
    "Every block below is one claim of the ResNet document, with the value it prints. Decide whether the value is "
    "right. Write `right` or `wrong` after `verdict:`. For a wrong claim, write the correct value after `value:` "
    "(a number, an expression such as 0.4×1 + 0.3×5, a shape written like the document's, 56×56×64, or the word "
    "or list the claim asks for) and one line of arithmetic after `work:` (for example 0.5×4 + 0.3×7 + 0.2×1 = "
    "4.3). Leave the `## ` headings as they are. Then run `tinyresnet verify-doc --grade` on this file."
)


class WorksheetError(ValueError):
    """A worksheet or answer file that cannot be read; the message lists every problem with its line."""


@dataclass
class Answer:
    id: str
    verdict: str = ""
    value: str = ""
    work: str = ""
    line: int = 0                                   # where the claim's block starts (1-based)
    lines: dict = field(default_factory=dict)       # {"verdict": line number, ...} where each answer was read


@dataclass
class Mark:
    """The grade of one answer: ``correct``, why (``reason``) and, after grading, the engine's value."""

    id: str
    correct: bool
    reason: str
    engine: str
    note: str


# ----------------------------------------------------------------------------- writing
def select(claims, sections=None):
    """The claims of the given sections ("3.5", "8", ...), or all of them; unknown sections are an error."""
    if not sections:
        return list(claims)
    known = sorted({c.section for c in claims}, key=lambda s: tuple(int(p) for p in s.split(".")))
    unknown = [s for s in sections if s not in known]
    if unknown:
        raise WorksheetError(f"no claims in section(s) {', '.join(unknown)}; the sections are {', '.join(known)}")
    return [c for c in claims if c.section in sections]


def worksheet_markdown(claims):
    lines = ["# Find the errors: the ResNet document's worked numbers", "",
             f"<!-- {FORMAT} v{VERSION}: fill in verdict, value and work; keep the ## headings -->", "",
             INSTRUCTIONS, ""]
    for c in claims:
        lines += [f"## {c.id}", f"§{c.section} · {c.claim}", f"The document says: {c.document}", "",
                  "verdict: ", "value: ", "work: ", ""]
    return "\n".join(lines)


def worksheet_json(claims):
    data = {"format": FORMAT, "version": VERSION, "instructions": INSTRUCTIONS,
            "claims": [{"id": c.id, "section": c.section, "claim": c.claim, "document": c.document,
                        "verdict": "", "value": "", "work": ""} for c in claims]}
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def write_worksheet(claims, path, sections=None):
    """Write the exercise to ``path`` (.json: JSON, anything else: Markdown); returns the number of claims."""
    chosen = select(claims, sections)
    text = worksheet_json(chosen) if str(path).lower().endswith(".json") else worksheet_markdown(chosen)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return len(chosen)


# ----------------------------------------------------------------------------- reading
def read_answers(text, known_ids, json_format=None):
    """[Answer] from a filled-in sheet's text; ``json_format`` None guesses from the first character."""
    if json_format is None:
        json_format = text.lstrip().startswith("{")
    answers = _read_json(text) if json_format else _read_markdown(text)
    problems = [f"line {a.line}: {a.id!r} is not a claim of verify-doc; keep the ids the worksheet was written with "
                f"(write a fresh one with `tinyresnet verify-doc --worksheet sheet.md`)"
                for a in answers if a.id not in known_ids]
    seen = {}
    for a in answers:
        if a.id in seen:
            problems.append(f"line {a.line}: {a.id} is answered twice (first at line {seen[a.id]}); keep one block")
        seen.setdefault(a.id, a.line)
        if a.verdict and a.verdict.lower() not in VERDICTS:
            problems.append(f"line {a.lines.get('verdict', a.line)}: the verdict of {a.id} is {a.verdict!r}; write "
                            f"'right' or 'wrong'")
    if problems:
        raise WorksheetError("\n".join(problems))
    return answers


def _read_markdown(text):
    answers, problems, current = [], [], None
    seen_fields = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("## "):
            current = Answer(line[3:].strip(), line=number)
            answers.append(current)
            seen_fields = {}
            continue
        key, sep, rest = line.partition(":")
        key = key.strip().lower()
        if not sep or key not in FIELDS:
            continue                                   # the claim's own text, notes: ignored
        if current is None:
            problems.append(f"line {number}: '{key}:' comes before any claim; put it under the '## <id>' heading "
                            f"of the claim it answers")
            continue
        if key in seen_fields:
            problems.append(f"line {number}: a second '{key}:' line for {current.id} (the first is line "
                            f"{seen_fields[key]}); keep one")
            continue
        seen_fields[key] = current.lines[key] = number
        setattr(current, key, rest.strip())
    for a in answers:
        if not a.id:
            problems.append(f"line {a.line}: a '## ' heading without a claim id; write the id, e.g. '## rgb-shape'")
    if not answers and not problems:
        problems.append("line 1: no claims found: each claim starts with a '## <id>' heading; write a worksheet "
                        "with `tinyresnet verify-doc --worksheet sheet.md` and fill that in")
    if problems:
        raise WorksheetError("\n".join(problems))
    return answers


def _read_json(text):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise WorksheetError(f"line {e.lineno}, column {e.colno}: not valid JSON ({e.msg}); fix the syntax there, "
                             f"or grade the Markdown worksheet instead") from None
    entries = data.get("claims") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise WorksheetError("line 1: the JSON must be an object with a \"claims\" list (as `tinyresnet verify-doc "
                             "--worksheet sheet.json` writes it), or a list of {\"id\", \"verdict\", ...} objects")
    lines = text.splitlines()
    answers, problems = [], []
    for n, entry in enumerate(entries):
        where = _json_line(lines, entry.get("id") if isinstance(entry, dict) else None)
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            problems.append(f"line {where}: claims[{n}] needs an \"id\" string (an object such as "
                            f"{{\"id\": \"rgb-shape\", \"verdict\": \"right\"}})")
            continue
        answer = Answer(entry["id"], line=where)
        for key in FIELDS:
            value = entry.get(key, "")
            if value is None:
                value = ""
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "verdict":
                value = repr(value)
            if not isinstance(value, str):
                problems.append(f"line {where}: \"{key}\" of {entry['id']} is {value!r}; write it as a string, "
                                f"e.g. \"{key}\": \"{'wrong' if key == 'verdict' else '4.3'}\"")
                continue
            setattr(answer, key, value.strip())
        answers.append(answer)
    if problems:
        raise WorksheetError("\n".join(problems))
    return answers


def _json_line(lines, claim_id):
    if claim_id is None:
        return 1
    needle = json.dumps(claim_id, ensure_ascii=False)
    return next((n for n, line in enumerate(lines, 1) if needle in line), 1)


# ----------------------------------------------------------------------------- arithmetic
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")


def evaluate(text):
    """The value of an arithmetic expression or list as a student writes it ("0.4×1 + 0.3×5", "2^16", "2¹⁶",
    "[0.5, 1.2]", "3,136"), or None if it is not arithmetic."""
    t = text.strip().rstrip(".").replace("×", "*").replace("·", "*").replace("÷", "/").replace("−", "-")
    t = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", t)                  # thousands separators
    t = re.sub(r"[⁰¹²³⁴⁵⁶⁷⁸⁹]+", lambda m: "**" + m.group().translate(_SUPERSCRIPT), t).replace("^", "**")
    t = re.sub(r"(\d)\s*%", r"\1", t)
    if not t or not re.fullmatch(r"[\d\s.+\-*/()\[\],e]*", t):
        return None
    try:
        return _eval(ast.parse(t, mode="eval").body)
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError):
        return None


def _eval(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (not isinstance(right, (int, float)) or abs(right) > 256):
            raise ValueError("exponent too large")
        if isinstance(left, list) or isinstance(right, list):
            raise TypeError("arithmetic on a list")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e) for e in node.elts]
    raise ValueError("not arithmetic")


def _normal(text):
    text = re.sub(r"(?<=\d)\s*x\s*(?=\d)", "×", str(text).strip().lower().replace("->", "→"))
    return re.sub(r"\s+", " ", text).rstrip(".")


def value_agrees(text, claim):
    """Whether a student's value is the engine's, to the precision the document prints the claim with."""
    target = claim.value
    if isinstance(target, tuple):
        shape = text.strip().lower().replace("x", "×")
        return (bool(_SHAPE.match(shape)) and parse_shape(shape) == target) or _normal(text) == _normal(claim.engine)
    if isinstance(target, str):
        return _normal(text) in {_normal(target), _normal(claim.engine)}
    if _normal(text) == _normal(claim.engine):
        return True
    number = evaluate(text)
    if number is None:
        number = evaluate(re.sub(r"^[a-z]+", "", text.strip().lower()))          # "ch7" for channel 7
    if number is None:
        return False
    expected, got = np.asarray(target, dtype=np.float64), np.asarray(number, dtype=np.float64)
    if expected.shape != got.shape:
        return False
    tolerance = claim.tolerance if isinstance(claim.tolerance, (int, float)) else 0
    return bool(np.all(np.abs(got - expected) <= tolerance + 1e-9 * np.maximum(1, np.abs(expected))))


def work_agrees(work, value):
    """None if the work has no arithmetic to check; else whether some '='-separated part of it gives ``value``."""
    number = evaluate(value)
    parts = [evaluate(p) for p in re.split(r"[=≈]", work)]
    parts = [p for p in parts if p is not None and not isinstance(p, list)]
    if number is None or isinstance(number, list) or not parts:
        return None
    tolerance = parse_number(value)[1] if _is_number(value) else 0
    return any(abs(p - number) <= tolerance + 1e-9 * max(1, abs(number)) for p in parts)


def _is_number(text):
    try:
        parse_number(text)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- grading
def mark(answer, claim):
    """One answer against the engine's claim."""
    engine = dict(engine=claim.engine, note=claim.note)
    if not answer.verdict:
        return Mark(answer.id, False, "not answered", **engine)
    said_right = VERDICTS[answer.verdict.lower()]
    if said_right:
        if claim.match:
            return Mark(answer.id, True, "right: the document's value is correct", **engine)
        return Mark(answer.id, False, f"the document's {claim.document} is wrong", **engine)
    if claim.match:
        return Mark(answer.id, False, f"the document's {claim.document} is right", **engine)
    if not answer.value:
        return Mark(answer.id, False, "wrong, yes, but no correct value given on 'value:'", **engine)
    if not value_agrees(answer.value, claim):
        return Mark(answer.id, False, f"wrong, yes, but {answer.value} is not the correct value", **engine)
    numeric = not isinstance(claim.value, (str, tuple))
    if numeric and not answer.work:
        return Mark(answer.id, False, f"{answer.value} is right, but show one line of arithmetic on 'work:'",
                    **engine)
    if answer.work and work_agrees(answer.work, answer.value) is False:
        return Mark(answer.id, False, f"{answer.value} is right, but your work ({answer.work}) does not give it",
                    **engine)
    return Mark(answer.id, True, f"wrong, and {answer.value} is the correct value", **engine)


def grade_text(text, claims, json_format=None):
    """[Mark] for every answered block of a filled-in sheet."""
    by_id = {c.id: c for c in claims}
    return [mark(a, by_id[a.id]) for a in read_answers(text, by_id, json_format)]


def grade(path, claims):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return grade_text(text, claims, json_format=True if str(path).lower().endswith(".json") else None)


def report(marks):
    """The grade as text: one line per claim, the engine's value under each incorrect one, then the score."""
    lines = []
    for m in marks:
        lines.append(f"{'✓' if m.correct else '✗'} {m.id}: {m.reason}")
        if not m.correct:
            lines.append(f"    the engine computes {m.engine}" + (f" ({m.note})" if m.note else ""))
    right = sum(m.correct for m in marks)
    lines += ["", f"score: {right} / {len(marks)} ({100 * right / max(len(marks), 1):.0f}%)"]
    return "\n".join(lines)


def score(marks):
    return sum(m.correct for m in marks), len(marks)


__all__ = ["Answer", "Mark", "WorksheetError", "evaluate", "grade", "grade_text", "mark", "read_answers",
           "report", "score", "select", "value_agrees", "work_agrees", "worksheet_json", "worksheet_markdown",
           "write_worksheet"]
