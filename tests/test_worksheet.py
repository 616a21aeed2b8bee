"""The "find the errors" exercise of `tinyresnet verify-doc`: writing the worksheet, grading a perfect answer
set built from the engine's values, a wrong one, and files that cannot be read (errors with the line and the fix)."""

import contextlib
import io
import json
import re

import pytest

from tinyresnet import cli
from tinyresnet.docverify import worksheet as ws


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["verify-doc", *argv])
    return code, out.getvalue(), err.getvalue()


def fill_markdown(text, answers):
    """Fill a Markdown worksheet: answers {id: (verdict, value, work)}."""
    blocks = re.split(r"(?m)^(?=## )", text)
    out = [blocks[0]]
    for block in blocks[1:]:
        claim_id = block.split("\n", 1)[0][3:].strip()
        verdict, value, work = answers.get(claim_id, ("", "", ""))
        block = block.replace("verdict: \n", f"verdict: {verdict}\n").replace("value: \n", f"value: {value}\n")
        out.append(block.replace("work: \n", f"work: {work}\n"))
    return "".join(out)


def perfect(claims):
    """The answers the engine gives: right for a match; wrong, its value and its note's arithmetic otherwise."""
    return {c.id: ("right", "", "") if c.match else ("wrong", c.engine, c.note) for c in claims}


# ---------------------------------------------------------------------------------------------- writing
def test_markdown_worksheet_has_every_claim_and_no_engine_column(tmp_path, claims):
    path = tmp_path / "sheet.md"
    code, _, err = run_cli("--worksheet", str(path))
    assert code == 0 and f"{len(claims)} claims" in err
    text = path.read_text(encoding="utf-8")
    blocks = {b.split("\n", 1)[0][3:]: b for b in re.split(r"(?m)^(?=## )", text)[1:]}
    assert list(blocks) == [c.id for c in claims]
    for c in claims:
        block = blocks[c.id]
        assert f"The document says: {c.document}" in block and c.claim in block
        assert re.search(r"(?m)^verdict: $", block) and re.search(r"(?m)^value: $", block)
        if not c.match:
            body = block.replace(f"§{c.section} · ", "")
            assert not re.search(rf"(?<![\d.]){re.escape(c.engine)}(?![\d.])", body), f"{c.id} gives the answer away"
            assert not c.note or c.note not in block


def test_json_worksheet_and_sections(tmp_path, claims):
    path = tmp_path / "sheet.json"
    assert run_cli("--worksheet", str(path), "--sections", "3.5", "8")[0] == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == ws.FORMAT and data["version"] == ws.VERSION
    assert [e["id"] for e in data["claims"]] == [c.id for c in claims if c.section in ("3.5", "8")]
    assert all(e["verdict"] == "" and "engine" not in e for e in data["claims"])
    with pytest.raises(SystemExit, match="no claims in section.*99"):
        run_cli("--worksheet", str(path), "--sections", "99")


# ---------------------------------------------------------------------------------------------- grading
def test_perfect_markdown_answers_score_full_marks(tmp_path, claims):
    path = tmp_path / "sheet.md"
    run_cli("--worksheet", str(path))
    path.write_text(fill_markdown(path.read_text(encoding="utf-8"), perfect(claims)), encoding="utf-8")
    code, out, _ = run_cli("--grade", str(path))
    assert code == 0
    assert f"score: {len(claims)} / {len(claims)} (100%)" in out
    assert "the engine computes" not in out                     # nothing to reveal when all is right


def test_perfect_json_answers_score_full_marks(tmp_path, claims):
    path = tmp_path / "sheet.json"
    run_cli("--worksheet", str(path))
    data = json.loads(path.read_text(encoding="utf-8"))
    answers = perfect(claims)
    for entry in data["claims"]:
        entry["verdict"], entry["value"], entry["work"] = answers[entry["id"]]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    marks = ws.grade(path, claims)
    assert ws.score(marks) == (len(claims), len(claims))


def test_wrong_answers_are_marked_and_only_then_revealed(by_id, claims):
    answers = {
        "rgb-out-10-ch0": ("right", "", ""),                               # the document is wrong here
        "rgb-shape": ("wrong", "3×3×3", ""),                               # the document is right here
        "rgb-out-11-ch0": ("wrong", "6.0", "0.5×5 + 0.3×8 + 0.2×2 = 6.0"),  # wrong value
        "rgb-out-12-ch0": ("wrong", "6.3", ""),                            # right value, no arithmetic
        "rgb-out-20-ch0": ("wrong", "4.6", "0.5×7 + 0.3×1 = 3.8"),         # arithmetic that does not give it
        "reduce4-out-00-ch1": ("", "", ""),                                # not answered
        "bneck-reduce-00-ch1": ("wrong", "2.8", "about 2.8"),              # too coarse: printed to 2 decimals
        "rgb-out-21-ch0": ("wrong", "5.6", "0.5×8 + 0.3×2 + 0.2×5 = 5.6"),  # correct
        "s8-paths-resnet50": ("wrong", "2^16", "16 blocks (3+4+6+3), each doubles the paths"),  # correct
        "bneck-expand-last-channel": ("wrong", "ch7", "channels 0 to 8 − 1 = 7"),               # correct
        "s9-last-bn-bottleneck": ("wrong", "bn3", ""),                     # correct (a name, no arithmetic)
        "s35-resnet50-stage1-widths": ("wrong", "256 -> 64 -> 256", ""),   # correct
    }
    text = "\n".join(f"## {i}\nverdict: {v}\nvalue: {x}\nwork: {w}\n" for i, (v, x, w) in answers.items())
    marks = {m.id: m for m in ws.grade_text(text, claims)}
    correct = {i for i, m in marks.items() if m.correct}
    assert correct == {"rgb-out-21-ch0", "s8-paths-resnet50", "bneck-expand-last-channel", "s9-last-bn-bottleneck",
                       "s35-resnet50-stage1-widths"}
    assert "is wrong" in marks["rgb-out-10-ch0"].reason and "is right" in marks["rgb-shape"].reason
    assert "not answered" in marks["reduce4-out-00-ch1"].reason
    assert "arithmetic" in marks["rgb-out-12-ch0"].reason and "does not give it" in marks["rgb-out-20-ch0"].reason
    report = ws.report(list(marks.values()))
    assert "score: 5 / 12 (42%)" in report
    assert f"the engine computes {by_id['rgb-out-10-ch0'].engine}" in report
    assert "the engine computes 65,536" not in report                 # correct answers reveal nothing more


@pytest.mark.parametrize("claim_id, value, ok", [
    ("bneck-reduce-00-ch1", "2.78", True), ("bneck-reduce-00-ch1", "0.5+1+0.2+0.6+0.15+0.21+0.04+0.08", True),
    ("bneck-reduce-00-ch1", "2.7", False), ("s8-paths-resnet50", "65,536", True), ("s8-paths-resnet50", "2¹⁶", True),
    ("s8-paths-resnet50", "2^50", False), ("rgb-out-10-ch0", "4.3", True), ("rgb-out-10-ch0", "4", False),
    ("s9-last-bn-bottleneck", "BN3", True), ("s9-last-bn-bottleneck", "bn2", False),
    ("s35-resnet50-stage2-widths", "512 → 128 → 512", True), ("rgb-shape", "3x3x2", True),
])
def test_values_are_compared_to_the_documents_precision(by_id, claim_id, value, ok):
    assert ws.value_agrees(value, by_id[claim_id]) is ok


def test_evaluate_is_arithmetic_only():
    assert ws.evaluate("0.4×1 + 0.3×5") == pytest.approx(1.9)
    assert ws.evaluate("2^16") == 65536 and ws.evaluate("3,136") == 3136 and ws.evaluate("[0.5, 1.2]") == [0.5, 1.2]
    for bad in ("__import__('os')", "2**10**10", "abc", "", "1/0"):
        assert ws.evaluate(bad) is None


# ---------------------------------------------------------------------------------------------- malformed input
@pytest.mark.parametrize("text, message", [
    ("## rgb-shape\nverdict: maybe\n", r"line 2: the verdict of rgb-shape is 'maybe'; write 'right' or 'wrong'"),
    ("## no-such-claim\nverdict: right\n", r"line 1: 'no-such-claim' is not a claim of verify-doc"),
    ("## rgb-shape\nverdict: right\n## rgb-shape\nverdict: right\n", r"line 3: rgb-shape is answered twice"),
    ("verdict: right\n## rgb-shape\n", r"line 1: 'verdict:' comes before any claim"),
    ("## rgb-shape\nverdict: right\nverdict: wrong\n", r"line 3: a second 'verdict:' line for rgb-shape"),
    ("just some notes\n", r"line 1: no claims found.*--worksheet"),
])
def test_malformed_markdown_names_the_line_and_the_fix(claims, text, message):
    with pytest.raises(ws.WorksheetError, match=message):
        ws.grade_text(text, claims, json_format=False)


@pytest.mark.parametrize("text, message", [
    ('{"claims": [\n {"id": "rgb-shape",\n  "verdict": "right"\n ]}', r"line 4, column 2: not valid JSON"),
    ('{"answers": 3}', r"line 1: the JSON must be an object with a \"claims\" list"),
    ('{"claims": [\n {"id": "rgb-shape", "verdict": true}\n]}', r"line 2: \"verdict\" of rgb-shape is True"),
    ('{"claims": [\n {"verdict": "right"}\n]}', r"claims\[0\] needs an \"id\" string"),
])
def test_malformed_json_names_the_line_and_the_fix(claims, text, message):
    with pytest.raises(ws.WorksheetError, match=message):
        ws.grade_text(text, claims, json_format=True)


def test_cli_grade_reports_a_malformed_file_and_a_missing_one(tmp_path):
    path = tmp_path / "answers.md"
    path.write_text("## rgb-shape\nverdict: perhaps\n", encoding="utf-8")
    code, out, err = run_cli("--grade", str(path))
    assert code == 2 and out == "" and "line 2" in err and "'right' or 'wrong'" in err
    with pytest.raises(SystemExit, match="no such file.*--worksheet"):
        run_cli("--grade", str(tmp_path / "missing.md"))
