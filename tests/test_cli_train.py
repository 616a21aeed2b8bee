"""`tinyresnet train / evaluate / predict` end to end on small data, and their messages for bad input."""

import os

import numpy as np
import pytest

from tinyresnet.backend import gpu_available
from tinyresnet.cli import main

QUICK = ["--model", "resnet20", "--dataset", "synthetic", "--subset", "64", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of ResNet-20 on synthetic data through the CLI, in a fresh working folder."""
    folder = tmp_path_factory.mktemp("cli")
    previous = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["train", *QUICK, "--epochs", "1"]) == 0
    finally:
        os.chdir(previous)
    return folder / "runs" / "resnet20-synthetic"


def write_png(path, array):
    from PIL import Image

    Image.fromarray(array).save(path)
    return str(path)


def test_train_writes_a_run_in_the_default_folder(trained):
    assert {"best.npz", "last.npz", "metrics.csv", "curves.png", "config.json"} <= set(os.listdir(trained))


def test_resume_and_numbered_runs(trained, monkeypatch, capsys):
    monkeypatch.chdir(trained.parent.parent)
    assert main(["train", *QUICK, "--epochs", "1"]) == 0              # the default folder is taken: -2
    assert os.path.exists("runs/resnet20-synthetic-2/last.npz")
    assert main(["train", "--resume", "--out", str(trained), "--lr", "0.5", "--epochs", "2"]) == 1
    assert "lr=0.5 (the run has 0.1)" in capsys.readouterr().err
    assert main(["train", "--model", "resnet20", "--dataset", "synthetic", "--resume", "--epochs", "2",
                 "--quiet"]) == 0                                     # no --out: the latest run, -2
    assert len(open("runs/resnet20-synthetic-2/metrics.csv").read().splitlines()) == 3
    assert len(open(trained / "metrics.csv").read().splitlines()) == 2


def test_evaluate_prints_accuracy_and_saves_the_confusion_matrix(trained, capsys):
    assert main(["evaluate", str(trained)]) == 0                      # a run folder means its best.npz
    out = capsys.readouterr().out
    assert "accuracy" in out and "true\\predicted" in out and "class9" in out
    png = trained / "best-confusion-test.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    rows = [line.split() for line in out.splitlines() if line.startswith("class")]
    counts = np.array([[int(v) for v in row[1:]] for row in rows])
    n_images = int(out.split("(test, ")[1].split(" images")[0])
    assert counts.shape == (10, 10) and counts.sum() == n_images and n_images > 0


def test_predict_top_k(trained, tmp_path, capsys):
    rng = np.random.default_rng(0)
    a = write_png(tmp_path / "a.png", rng.integers(0, 255, (20, 16, 3), dtype=np.uint8))   # RGB, any size
    b = write_png(tmp_path / "b.png", rng.integers(0, 255, (8, 8), dtype=np.uint8))
    assert main(["predict", str(trained / "best.npz"), a, b, "--topk", "4"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("  note")]
    assert len(lines) == 2 and lines[0].startswith(a)
    shares = [float(part.split("(")[1].rstrip("%),")) for part in lines[0].split(": ")[1].split(", ")]
    assert len(shares) == 4 and shares == sorted(shares, reverse=True) and sum(shares) <= 100.05


def test_predict_and_evaluate_bad_files(trained, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    write_png(broken, np.zeros((30, 30, 3), np.uint8))
    broken.write_bytes(broken.read_bytes()[:50])
    assert main(["predict", str(trained / "best.npz"), str(broken)]) == 1
    assert "broken.png" in capsys.readouterr().err
    cut = tmp_path / "cut.npz"
    cut.write_bytes((trained / "best.npz").read_bytes()[:1000])
    assert main(["evaluate", str(cut)]) == 1
    assert "cut.npz" in (err := capsys.readouterr().err) and "truncated" in err
    assert main(["evaluate", str(trained / "best.npz"), "--model", "resnet32"]) == 1
    assert "layer1.3" in capsys.readouterr().err


def test_train_bad_input_messages(tmp_path, capsys):
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "r")]) == 1
    assert "cifar-10-python.tar.gz" in capsys.readouterr().err
    assert main(["train", "--model", "resnet21", "--out", str(tmp_path / "r")]) == 1
    assert "resnet20" in capsys.readouterr().err                       # the known names are listed
    assert main(["train", "--resume", "--out", str(tmp_path / "empty")]) == 1
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.skipif(gpu_available(), reason="checks the message shown when no GPU is present")
def test_cuda_without_gpu(tmp_path, capsys):
    assert main(["train", *QUICK, "--device", "cuda", "--out", str(tmp_path / "r")]) == 1
    assert "device 'cuda' requested" in capsys.readouterr().err
