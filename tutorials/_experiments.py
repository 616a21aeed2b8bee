"""What the experiment tutorials (01, 11, 12, 13) share: the recipe with an optional warm-up, runs over
several seeds, bands (min / median / max over seeds) for the tables and figures, the generated shapes
data, a pre-activation block and a forward + backward timer.

Import it after ``_common`` (which sets the BLAS threads before NumPy loads).
"""

import time

import _common
import numpy as np

from tinyresnet import Tensor, nn
from tinyresnet.data import load_shapes
from tinyresnet.data import transforms as T
from tinyresnet.models import BasicBlock, ResNet
from tinyresnet.models.cifar import CIFAR_WIDTHS
from tinyresnet.optim import SGD, LinearWarmup, MultiStepLR


# ------------------------------------------------------------------------------------------ data
def shapes(quick=False, train_size=None, test_size=None, image_size=16):
    """The generated shapes (``tinyresnet.data.load_shapes``): ``(train, test, normalize)``.

    ``image_size`` 16 by default (the CPU budget; 32 is the CIFAR size); ``quick`` keeps 256 and 128 images.
    """
    train_size = train_size or (256 if quick else 4000)
    test_size = test_size or (128 if quick else 1000)
    train, test = load_shapes(train_size, test_size, image_size=image_size)
    mean, std = train.channel_stats()
    return train, test, T.Normalize(mean, std)


# ------------------------------------------------------------------------------------------ the recipe
def recipe(model, epochs, lr=0.1, weight_decay=1e-4, warmup_steps=0, warmup_factor=0.1):
    """``(optimizer, scheduler)``: SGD (momentum 0.9), lr ÷ 10 at 50% and 75% of the epochs, and, if
    ``warmup_steps``, ``warmup_factor`` × lr for the first ``warmup_steps`` iterations (the paper's
    ResNet-110 warm-up: 0.01 instead of 0.1 at the start)."""
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    milestones = [max(1, round(epochs * 0.5)), max(1, round(epochs * 0.75))]
    scheduler = MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    if warmup_steps:
        scheduler = LinearWarmup(optimizer, warmup_steps, start_factor=warmup_factor, mode="constant", after=scheduler)
    return optimizer, scheduler


def train_seeds(build, seeds, data, epochs, label, batch_size=64, **recipe_options):
    """Train one fresh ``build()`` model per seed with ``recipe(**recipe_options)``.

    ``data`` is ``(train, test, normalize)``. Returns ``(histories, models)``: one history (a list
    of per-epoch dicts, see ``_common.train``) and one trained model per seed.
    """
    histories, trained = [], []
    for seed in seeds:
        nn.manual_seed(seed)
        model = build()
        optimizer, scheduler = recipe(model, epochs, **recipe_options)
        history = _common.train(model, data[0], data[1], data[2], epochs, optimizer=optimizer, scheduler=scheduler,
                                batch_size=batch_size, seed=seed, label=f"{label} s{seed}")
        histories.append(history)
        trained.append(model)
    return histories, trained


# ------------------------------------------------------------------------------------------ bands
def curves(histories, key):
    """(epochs, values): values (seeds, epochs), NaN after a run diverged."""
    length = max(len(h) for h in histories)
    values = np.full((len(histories), length), np.nan)
    for i, h in enumerate(histories):
        for j, row in enumerate(h):
            values[i, j] = row.get(key, np.nan)
    return np.arange(1, length + 1), values


def final(histories, key):
    """The last epoch's ``key`` of every seed (NaN for a run that diverged)."""
    return np.array([h[-1].get(key, np.nan) for h in histories])


def band(values):
    """{"min", "median", "max", "mean", "sd", "values"} of one number per seed (NaN counted as 1.0: a
    diverged run has no error to report, and counting it as chance-or-worse keeps it visible)."""
    values = np.where(np.isnan(values), 1.0, np.asarray(values, dtype=float))
    return {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max()),
            "mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "values": [float(v) for v in values]}


def percent_band(b):
    """'1.23% (0.98–1.50%)': the median and the range over seeds."""
    return f"{100 * b['median']:6.2f}% ({100 * b['min']:.2f}–{100 * b['max']:.2f}%)"


def plot_band(ax, histories, key, color, label, style="-"):
    """The median over seeds as a line and the min–max range as a shaded band, in percent."""
    epochs, values = curves(histories, key)
    values = 100 * values
    ax.fill_between(epochs, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=color, alpha=0.2, lw=0)
    ax.plot(epochs, np.nanmedian(values, axis=0), style, color=color, lw=1.6, label=label)


# ------------------------------------------------------------------------------------------ blocks
class PreActBlock(BasicBlock):
    """A pre-activation basic block (He et al. 2016, "Identity mappings in deep residual networks"):
    BN and ReLU come before each convolution and nothing follows the addition.

    out = conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut(x)
    Shapes: (N, inplanes, H, W) -> (N, planes, ⌈H/stride⌉, ⌈W/stride⌉)

    Drop-in for ``ResNet(block=...)``: the same layers and names as ``BasicBlock`` (bn1 now normalises
    the block's input, so it has ``inplanes`` channels). A network of them needs one BN + ReLU after
    its last block: ``preact_cifar_resnet`` adds it.
    """

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width)
        self.bn1 = nn.BatchNorm2d(inplanes)

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


def preact_cifar_resnet(depth, num_classes=10, in_channels=1, shortcut="A"):
    """A CIFAR ResNet of ``depth`` = 6n + 2 layers built of ``PreActBlock``s, with the final BN + ReLU
    before the global pooling. The same parameters as ``models.cifar_resnet`` of that depth plus one BN
    (64 channels) and with bn1 of each stage's first block over its input channels."""
    n = (depth - 2) // 6
    model = ResNet(PreActBlock, [n, n, n], num_classes=num_classes, in_channels=in_channels, stem="cifar",
                   widths=CIFAR_WIDTHS, shortcut=shortcut)
    model.avgpool = nn.Sequential(nn.BatchNorm2d(CIFAR_WIDTHS[-1]), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)))
    return model


def last_bn_gammas(model):
    """Mean |γ| of the BN that ends each residual branch (bn2 of every BasicBlock), block by block."""
    return [float(np.abs(m.bn2.weight.data).mean()) for m in model.modules()
            if isinstance(m, BasicBlock) and m.has_skip]


# ------------------------------------------------------------------------------------------ timing
def time_forward_backward(module, x, repeats=5):
    """Median seconds of one forward + backward pass of ``module`` on ``x`` (N, C, H, W) (after one
    untimed warm-up pass), in training mode."""
    module.train()
    times = []
    for i in range(repeats + 1):
        for p in module.parameters():
            p.grad = None
        inp = Tensor(x, requires_grad=True)
        start = time.perf_counter()
        out = module(inp)
        (out * out).mean().backward()
        if i:
            times.append(time.perf_counter() - start)
    return float(np.median(times))
