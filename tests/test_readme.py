"""The README's Python examples run as written, and print what their comments say."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 2


def test_readme_examples_run_and_print_what_they_claim():
    namespace, out = {}, io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in python_blocks():          # later blocks reuse the names of earlier ones
            exec(compile(block, str(README), "exec"), namespace)
    printed = out.getvalue().splitlines()
    assert printed[0] == "(2, 4, 8, 8) (2, 3, 8, 8) (4, 3, 3, 3)"
    assert printed[1] == "269434"
    assert namespace["logits"].shape == (4, 10)
    accuracy = re.fullmatch(r"test accuracy (\d+)%", printed[2])        # the PyTorch-style loop, 3 epochs
    assert accuracy and int(accuracy.group(1)) >= 90, printed[2]
