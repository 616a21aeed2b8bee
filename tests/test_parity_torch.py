"""Parity with PyTorch: the same weights give the same logits, loss, gradients and BN statistics.

torchvision is not needed: small torch reference models are written below with torchvision's
module names, so a state_dict moves between the two by name with strict=True in both directions.
Everything runs in float64, so a ReLU input within rounding of zero cannot flip between the two
engines. Errors are relative to the largest magnitude of each compared array; the issue asks for
≤ 1e-4, float64 gives ≤ ~1e-10, and the test holds 1e-8.

Batches are 4 images of 32×32: ResNet-18/50 shrink that to 1×1 in layer4, where training-mode BN
normalises only N values per channel. With N = 2 the two values come out as ±1 whatever their
gap, which multiplies rounding differences by up to 1/√eps ≈ 300 per BN layer (1e-5 differences
in ResNet-50's gradients even in float64); N = 4 keeps the problem well conditioned.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle for parity tests (pip install torch)")
tnn = torch.nn

import tinyresnet.functional as F  # noqa: E402
from tinyresnet import models  # noqa: E402
from tinyresnet.nn import BatchNorm2d, init  # noqa: E402

pytestmark = pytest.mark.usefixtures("tier")   # every test on the plain ops and on the fast kernels

TOLERANCE = 1e-8


# --------------------------------------------------------------------------- torch reference models
class TorchShortcutA(tnn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.stride = stride
        self.before = (out_channels - in_channels) // 2
        self.after = out_channels - in_channels - self.before

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return torch.nn.functional.pad(x, (0, 0, 0, 0, self.before, self.after))


class TorchBasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU()
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class TorchBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class TorchResNet(tnn.Module):
    """torchvision's ResNet layout; ``cifar=True`` gives the paper's CIFAR net (3×3 stem, type-A shortcuts)."""

    def __init__(self, block, layers, widths, num_classes, cifar=False):
        super().__init__()
        self.inplanes = widths[0]
        if cifar:
            self.conv1 = tnn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
            self.maxpool = tnn.Identity()
        else:
            self.conv1 = tnn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
        self.bn1 = tnn.BatchNorm2d(widths[0])
        self.relu = tnn.ReLU()
        self.stages = []
        for i, (planes, n) in enumerate(zip(widths, layers)):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                out = planes * block.expansion
                downsample = None
                if stride != 1 or self.inplanes != out:
                    downsample = (TorchShortcutA(self.inplanes, out, stride) if cifar else
                                  tnn.Sequential(tnn.Conv2d(self.inplanes, out, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(out)))
                blocks.append(block(self.inplanes, planes, stride, downsample))
                self.inplanes = out
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
            self.stages.append(f"layer{i + 1}")
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(self.inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


REFERENCES = {
    "resnet18": lambda: TorchResNet(TorchBasicBlock, [2, 2, 2, 2], (64, 128, 256, 512), 10),
    "resnet50": lambda: TorchResNet(TorchBottleneck, [3, 4, 6, 3], (64, 128, 256, 512), 10),
    "resnet20": lambda: TorchResNet(TorchBasicBlock, [3, 3, 3], (16, 32, 64), 10, cifar=True),
}
BATCH = (4, 3, 32, 32)


def rel_error(ours, theirs):
    """max |ours − theirs| / max |theirs| (0 when both are all zero)."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    scale = np.abs(theirs).max()
    diff = np.abs(np.asarray(ours, dtype=np.float64) - theirs).max()
    return 0.0 if diff == 0 else diff / max(scale, 1e-300)


def perturb_batchnorms(model, rng):
    """Give every BN non-trivial γ, β and running statistics, so that they all matter."""
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            c = m.num_features
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.uniform(-0.2, 0.2, c)
            m.running_mean[...] = rng.uniform(-0.1, 0.1, c)
            m.running_var[...] = rng.uniform(0.5, 2.0, c)


@pytest.fixture(params=sorted(REFERENCES))
def pair(request):
    """(name, our model, the torch model with our weights), both in float64; new for each test and tier
    (a training step moves the BN statistics)."""
    name = request.param
    init.manual_seed(0)
    ours = models.get_model(name, num_classes=10).double()
    perturb_batchnorms(ours, np.random.default_rng(7))
    theirs = REFERENCES[name]().double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    return name, ours, theirs


def test_parity_training_step(pair):
    """One training-mode forward and a cross-entropy backward, in float64: logits, loss, every
    parameter's gradient and every BN running statistic agree with PyTorch."""
    name, ours, theirs = pair
    rng = np.random.default_rng(3)
    x = rng.standard_normal(BATCH)
    target = rng.integers(0, 10, BATCH[0])
    ours.train()
    theirs.train()

    ours.zero_grad()
    logits = ours(x)
    loss = F.cross_entropy(logits, target)
    loss.backward()
    t_logits = theirs(torch.from_numpy(x))
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(target))
    theirs.zero_grad()
    t_loss.backward()

    assert logits.dtype == np.float64
    assert rel_error(logits.data, t_logits) <= TOLERANCE, f"{name} logits"
    assert rel_error(loss.data, t_loss) <= TOLERANCE, f"{name} loss"
    t_params = dict(theirs.named_parameters())
    ours_params = dict(ours.named_parameters())
    assert set(ours_params) == set(t_params)
    worst = max((rel_error(p.grad, t_params[k].grad), k) for k, p in ours_params.items())
    assert worst[0] <= TOLERANCE, f"{name}: gradient of {worst[1]} differs by {worst[0]:.2e}"
    t_buffers = dict(theirs.named_buffers())
    for k, b in ours.named_buffers():
        if k.endswith("num_batches_tracked"):
            assert int(b) == int(t_buffers[k]) == 1, k
        else:
            assert rel_error(b, t_buffers[k]) <= TOLERANCE, f"{name}: BN statistic {k}"


def test_parity_eval_forward(pair):
    """In eval mode BN uses the running statistics: the logits still agree."""
    name, ours, theirs = pair
    x = np.random.default_rng(4).standard_normal(BATCH)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x))
    assert rel_error(ours(x).data, expected) <= TOLERANCE, f"{name} eval logits"


def test_torch_state_dict_loads_strictly_into_ours():
    """The other direction: a torch model's state_dict (with num_batches_tracked) loads with strict=True
    and reproduces its outputs."""
    theirs = REFERENCES["resnet20"]().double().eval()
    ours = models.resnet20().double().eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()}, strict=True)
    x = np.random.default_rng(5).standard_normal((2, 3, 16, 16))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x))
    assert rel_error(ours(x).data, expected) <= TOLERANCE
