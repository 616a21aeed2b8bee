"""tinyresnet.summary and `tinyresnet summary`: shapes, parameters and multiply-accumulates per layer."""

import json

import numpy as np
import pytest

from tinyresnet import models, nn
from tinyresnet.cli import main
from tinyresnet.summary import summarize


@pytest.fixture(scope="module")
def resnet50_summary():
    return summarize(models.resnet50(), (3, 224, 224), name="resnet50")


def test_resnet50_at_224(resnet50_summary):
    """The document's figures: 25,557,032 parameters, about 4.1 G MACs, stages at 112, 56, 28, 14, 7."""
    s = resnet50_summary
    assert s.total_params == s.trainable_params == 25_557_032
    assert s.total_macs == 4_089_184_256                  # torchvision's 4.09 GFLOPS (multiply-adds)
    assert round(s.total_macs / 1e9, 1) == 4.1
    rows = {r.name: r for r in s.rows}
    assert rows["conv1"].output_shape == (1, 64, 112, 112)
    assert [rows[f"layer{i}"].output_shape for i in range(1, 5)] == [
        (1, 256, 56, 56), (1, 512, 28, 28), (1, 1024, 14, 14), (1, 2048, 7, 7)]
    assert s.output_shape == (1, 1000)
    assert sum(r.params for r in s.rows) == s.total_params      # every weight on exactly one row
    assert rows["conv1"].macs == 112 * 112 * 64 * 3 * 7 * 7
    assert rows["fc"].macs == 2048 * 1000 and rows["fc"].params == 2048 * 1000 + 1000
    assert rows["layer1.0"].depth == 2 and rows["layer1.0.conv2"].depth == 3


def test_mac_formulas_on_a_small_net():
    net = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 3 * 3, 5))
    s = summarize(net, (4, 11, 11))
    macs = [r.macs for r in s.rows]
    # conv: N·OC·OH·OW·(C/groups)·KH·KW with OH = OW = 6; linear: in·out; BN, ReLU, pool, flatten: 0
    assert macs == [1 * 8 * 6 * 6 * 2 * 3 * 3, 0, 0, 0, 0, 72 * 5]
    assert [r.output_shape for r in s.rows][-1] == (1, 5)
    assert s.total_params == net.num_parameters() == (8 * 2 * 9 + 8) + 16 + (72 * 5 + 5)


def test_summary_leaves_the_model_as_it_was():
    model = models.resnet20()
    model.layer1[0].bn1.eval()                                  # a frozen BN stays frozen
    before = model.state_dict()
    summarize(model, (3, 32, 32))
    assert model.training and model.layer2.training and not model.layer1[0].bn1.training
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_text_and_dict(resnet50_summary):
    text = resnet50_summary.to_text()
    assert "layer" in text.splitlines()[2] and "MACs" in text.splitlines()[2]
    assert "total parameters:     25,557,032" in text
    assert "4,089,184,256 (4.09 G)" in text and "counted as 0 MACs" in text
    short = resnet50_summary.to_text(max_depth=1)
    assert "layer1.0" not in short and "layer4" in short
    data = json.loads(json.dumps(resnet50_summary.to_dict()))
    assert data["total_params"] == 25_557_032 and data["total_macs"] == 4_089_184_256
    assert data["rows"][0] == {"name": "conv1", "type": "Conv2d", "output_shape": [1, 64, 112, 112],
                               "params": 9408, "macs": 118_013_952, "depth": 1}


def test_bad_input_size():
    with pytest.raises(ValueError, match="input_size must be"):
        summarize(models.resnet20(), (32, 32))


# --------------------------------------------------------------------------- the command
def test_cli_json(capsys):
    assert main(["summary", "resnet20", "--json"]) == 0        # default input 3x32x32 for CIFAR nets
    data = json.loads(capsys.readouterr().out)
    assert data["input_size"] == [3, 32, 32] and data["total_params"] == 269_722
    assert {r["name"]: r["output_shape"] for r in data["rows"]}["layer3"] == [1, 64, 8, 8]


def test_cli_input_and_classes_change_the_model(capsys):
    assert main(["summary", "resnet18", "--input", "1x8x8", "--num-classes", "10", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    # the stem sees 1 channel instead of 3 (7·7·64 weights each); fc has 10 outputs instead of 1,000
    expected = 11_689_512 - 2 * 7 * 7 * 64 - 990 * (512 + 1)
    assert f"total parameters:     {expected:,}" in out
    assert "layer1.0" not in out and "(1, 10)" in out


def test_cli_errors(capsys):
    assert main(["summary", "resnet19"]) == 2
    assert "unknown model 'resnet19'; known models: densenet121" in capsys.readouterr().out
    assert main(["summary", "resnet18", "--input", "224x224"]) == 2
    assert "give channels x height x width" in capsys.readouterr().out


# --------------------------------------------------------------------------- the residual addition
def test_each_block_shows_its_residual_add_where_the_skip_joins():
    s = summarize(models.resnet20(), (3, 32, 32))
    adds = [r for r in s.rows if r.type == "residual add"]
    assert [r.name for r in adds] == [f"layer{i}.{j}.add" for i in (1, 2, 3) for j in range(3)]
    names = [r.name for r in s.rows]
    start = names.index("layer2.0")
    assert names[start:start + 9] == ["layer2.0", "layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu",
                                       "layer2.0.conv2", "layer2.0.bn2", "layer2.0.downsample", "layer2.0.add",
                                       "layer2.0.relu#2"]
    rows = {r.name: r for r in s.rows}
    assert rows["layer2.0.add"].output_shape == (1, 32, 16, 16) and rows["layer2.0.add"].depth == 3
    assert all(r.params == 0 and r.macs == 0 for r in adds)
    assert "layer3.2.add" in s.to_text() and "residual add" in s.to_text()


def test_residual_add_rows_of_a_block_alone_and_of_networks_without_skips():
    bneck = summarize(models.Bottleneck(64, 16), (64, 8, 8))
    assert [r.name for r in bneck.rows][-2:] == ["add", "relu#3"]          # its ReLU's third call
    from tinyresnet.models.wide import WideBasicBlock
    wide = summarize(WideBasicBlock(16, 32, stride=2), (16, 8, 8))
    assert wide.rows[-1].name == "add" and wide.rows[-1].output_shape == (1, 32, 4, 4)   # returns the sum
    plain = summarize(models.PlainBlock(8, 8), (8, 4, 4))
    assert not [r for r in plain.rows if r.type == "residual add"]


def test_cli_shows_the_add(capsys):
    assert main(["summary", "resnet18", "--input", "3x32x32", "--depth", "3"]) == 0
    out = capsys.readouterr().out
    assert "layer1.0.add" in out and "residual add" in out


def test_a_repeated_call_is_named_as_trace_names_it():
    """A block's ReLU runs twice: its second row is ``layer1.0.relu#2``, the name of its record in trace."""
    from tinyresnet import no_grad, tensor, trace
    model = models.resnet20()
    s = summarize(model, (3, 8, 8))
    names = [r.name for r in s.rows]
    assert names.count("layer1.0.relu") == 1 and names.count("layer1.0.relu#2") == 1
    model.eval()
    with no_grad(), trace.record(model) as rec:
        model(tensor(np.zeros((1, 3, 8, 8), dtype=np.float32)))
    assert rec.names()[1:] == names                  # every row, the adds included, named and ordered alike
    assert sum(r.params for r in s.rows) == model.num_parameters()    # a repeated call owns its weights once
