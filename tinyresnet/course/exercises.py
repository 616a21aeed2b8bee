"""Exercises with hidden solutions, graded by the engine.

Each exercise has an id ("<tutorial>.<n>"), a title, a ``check(answer) -> (ok, message)`` that grades a
number or a function, and a worked ``solution``: code that defines ``answer``. The engine computes the
expected values itself (it builds the layers and counts, or runs the reference code on test inputs), so
nothing here is a stored answer to copy.

    >>> course.check_exercise("04.1", answer)    # answer: a number or a function; None = not attempted
    >>> course.solution("04.1")                  # the worked solution, when you want it
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from .display import show_details
from .predictions import Verdict

EXERCISES = {}


@dataclass
class Exercise:
    """One exercise. ``check(answer)`` returns ``(ok, message)``; ``solution`` is code that defines ``answer``."""

    id: str
    title: str
    check: object
    solution: str

    def register(self):
        """Add (or replace) this exercise in the registry, so ``check_exercise(self.id, ...)`` finds it."""
        EXERCISES[self.id] = self
        return self


def _get(exercise_id):
    if exercise_id not in EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; the exercises are {sorted(EXERCISES)}")
    return EXERCISES[exercise_id]


def solution(exercise_id):
    """Print the worked solution of ``exercise_id`` (code that defines ``answer``) and return it."""
    text = _get(exercise_id).solution.strip("\n")
    print(f"[solution {exercise_id}]\n{text}")
    return text


def solution_answer(exercise_id):
    """Run the worked solution and return the ``answer`` it defines (what the tests grade)."""
    namespace = {}
    exec(compile(_get(exercise_id).solution, f"<solution {exercise_id}>", "exec"), namespace)
    return namespace["answer"]


def check_exercise(exercise_id, answer):
    """Grade ``answer`` (a number or a function) for ``exercise_id``; print and return a ``Verdict``.

    ``None`` means not attempted: the solution is offered in a collapsed block (in a notebook) or
    through ``course.solution(id)`` (in a script). A checker that raises counts as a wrong answer, with
    the error in the message.
    """
    exercise = _get(exercise_id)
    if answer is None or answer is Ellipsis:
        message = f"[exercise {exercise_id}] not attempted yet: {exercise.title}"
        print(message)
        show_details(f"Solution {exercise_id} (click to open)", exercise.solution.strip("\n"),
                     text=f"  (to see a worked solution: course.solution({exercise_id!r}))")
        return Verdict(exercise_id, None, None, None, message)
    try:
        ok, detail = exercise.check(answer)
    except Exception as error:          # the student's code failed: say how, do not crash the lesson
        ok, detail = False, f"your answer raised {type(error).__name__}: {error}"
    message = f"[exercise {exercise_id}] {'correct' if ok else 'not yet'}: {detail}"
    print(message)
    return Verdict(exercise_id, answer, None, bool(ok), message)


def _close(value, expected, rel=1e-3):
    return abs(float(value) - float(expected)) <= rel * abs(float(expected))


def _number(answer, expected, what, rel=1e-3):
    if callable(answer):
        return False, f"this exercise wants a number ({what}), got a function"
    ok = _close(answer, expected, rel)
    return ok, (f"{what} = {expected:,.6g}" if ok else f"{answer!r} is not {what} (more than {100 * rel:g}% off)")


# ------------------------------------------------------------------------------------------ 02: zero-init
def _check_zero_init(answer):
    import tinyresnet as tr
    from tinyresnet import models, nn
    from tinyresnet.models import BasicBlock

    nn.manual_seed(0)
    model = models.resnet20(num_classes=10, in_channels=1)
    answer(model)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    x = tr.Tensor(np.maximum(np.random.default_rng(0).standard_normal((4, 16, 8, 8)), 0).astype(np.float32))
    with tr.no_grad():
        out = blocks[0].eval()(x).numpy()
    deviation = float(np.abs(out - x.numpy()).max())
    bn1_ones = all(np.all(b.bn1.weight.numpy() == 1) for b in blocks)
    zeros = all(np.all(b.bn2.weight.numpy() == 0) for b in blocks)
    if not zeros:
        return False, "some block's bn2.weight (the γ of its last BN) is not all zeros"
    if not bn1_ones:
        return False, "bn1.weight changed too: only the last BN of each block should start at γ = 0"
    return deviation == 0.0, f"the first block now returns its input exactly (max deviation {deviation:.1e})"


Exercise("02.1", "zero-initialise the last BN of every block by hand (a function of the model)", _check_zero_init,
         '''
from tinyresnet.models import BasicBlock

def answer(model):
    for block in model.modules():
        if isinstance(block, BasicBlock):
            block.bn2.weight.data[...] = 0.0      # γ of the last BN: F(x) = 0, the block is the identity
''').register()


# ------------------------------------------------------------------------------------------ 03: 1x1 = matmul
def _check_conv1x1(answer):
    import tinyresnet as tr
    from tinyresnet import functional as F

    rng = np.random.default_rng(3)
    for n, c, oc, h, w in ((2, 3, 2, 3, 3), (1, 8, 5, 4, 6)):
        x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((oc, c))
        expected = F.conv2d(tr.tensor(x), tr.tensor(weight.reshape(oc, c, 1, 1))).numpy()
        got = np.asarray(answer(x, weight))
        if got.shape != expected.shape:
            return False, (f"for x {x.shape} and weight {weight.shape} the output should be {expected.shape}, "
                           f"got {got.shape}")
        if not np.allclose(got, expected, atol=1e-10):
            return False, f"values differ from the engine's conv2d by up to {np.abs(got - expected).max():.2e}"
    return True, "your matrix product equals the engine's 1×1 convolution on two shapes"


Exercise("03.1", "a 1×1 convolution as one matrix product: conv1x1(x (N,C,H,W), weight (OC,C)) -> (N,OC,H,W)",
         _check_conv1x1, '''
import numpy as np

def answer(x, weight):
    n, c, h, w = x.shape
    pixels = x.transpose(0, 2, 3, 1).reshape(-1, c)          # one row of channels per pixel
    out = pixels @ weight.T                                   # (N·H·W, OC)
    return out.reshape(n, h, w, -1).transpose(0, 3, 1, 2)
''').register()


# ------------------------------------------------------------------------------------------ 04: bottleneck
def _engine_macs(block, shape):
    from tinyresnet.summary import summarize

    return summarize(block, shape).total_macs


def _check_mac_ratio(answer):
    from tinyresnet.models import BasicBlock, Bottleneck

    shape = (256, 8, 8)            # a smaller map: both counts scale with its area, the ratio does not
    expected = _engine_macs(BasicBlock(256, 256), shape) / _engine_macs(Bottleneck(256, 64), shape)
    return _number(answer, expected, "the basic block's MACs over the bottleneck's at 56×56×256")


Exercise("04.1", "the MAC ratio, basic block (256→256, two 3×3) over bottleneck (256→64→64→256), at 56×56",
         _check_mac_ratio, '''
side = 56
basic = 2 * side * side * 256 * 256 * 9                             # two 3×3 convolutions, 256 → 256
bottleneck = side * side * (256 * 64 + 64 * 64 * 9 + 64 * 256)     # 1×1 reduce, 3×3, 1×1 expand
answer = basic / bottleneck
''').register()


def _check_timer(answer):
    import tinyresnet as tr
    from tinyresnet.models import BasicBlock

    block = BasicBlock(4, 4)
    x = tr.Tensor(np.random.default_rng(4).standard_normal((2, 4, 6, 6)).astype(np.float32))
    start = time.perf_counter()
    seconds = answer(block, x)
    wall = time.perf_counter() - start
    if not isinstance(seconds, (int, float)) or not 0 < seconds <= wall + 1e-3:
        return False, (f"return the seconds one forward + backward took (a positive number ≤ {wall:.3g}), "
                       f"got {seconds!r}")
    if block.conv1.weight.grad is None:
        return False, "after your function conv1.weight.grad is None: it must run backward too"
    return True, f"forward + backward timed: {1e3 * seconds:.2f} ms (gradients are there)"


Exercise("04.2", "measure it yourself: time_block(block, x) returns the seconds of one forward + backward",
         _check_timer, '''
import time

def answer(block, x):
    block.zero_grad()
    start = time.perf_counter()
    block(x).sum().backward()
    return time.perf_counter() - start
''').register()


# ------------------------------------------------------------------------------------------ 05: gradient flow
def _check_first_over_last(answer):
    import tinyresnet as tr
    from tinyresnet import functional as F
    from tinyresnet import models, nn
    from tinyresnet.nn import Conv2d

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((8, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 8)
    nn.manual_seed(0)
    model = models.get_model("plain20", num_classes=10, in_channels=1)
    F.cross_entropy(model(tr.Tensor(x)), y).backward()
    convs = [m for m in model.modules() if isinstance(m, Conv2d)]
    expected = float(np.linalg.norm(convs[0].weight.grad) / np.linalg.norm(convs[-1].weight.grad))
    model.zero_grad()
    got = answer(model, x, y)
    return _number(got, expected, "‖∂L/∂W‖ of the first convolution over the last's, for this plain-20", rel=1e-3)


Exercise("05.1", "first_over_last(model, x, y): ‖∂L/∂W_first conv‖ / ‖∂L/∂W_last conv‖ after one backward",
         _check_first_over_last, '''
import numpy as np
import tinyresnet as tr
from tinyresnet import functional as F
from tinyresnet.nn import Conv2d

def answer(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(tr.Tensor(x)), y).backward()
    convs = [m for m in model.modules() if isinstance(m, Conv2d)]
    return float(np.linalg.norm(convs[0].weight.grad) / np.linalg.norm(convs[-1].weight.grad))
''').register()


# ------------------------------------------------------------------------------------------ 06: architectures
def _check_resnet18_params(answer):
    from tinyresnet import models

    expected = models.get_model("resnet18", num_classes=100).num_parameters()
    return _number(answer, expected, "the parameters of ResNet-18 with a 100-class head", rel=0)


Exercise("06.1", "count ResNet-18's parameters for 100 classes, by hand (then let the engine check)",
         _check_resnet18_params, '''
def conv(c_in, c_out, k):
    return c_in * c_out * k * k

def bn(c):
    return 2 * c                                       # γ and β

stem = conv(3, 64, 7) + bn(64)
total, c_in = stem, 64
for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
    for b in range(2):                                 # two basic blocks per stage
        first = b == 0
        total += conv(c_in, c_out, 3) + bn(c_out) + conv(c_out, c_out, 3) + bn(c_out)
        if first and (stride != 1 or c_in != c_out):  # 1×1 projection shortcut with its BN
            total += conv(c_in, c_out, 1) + bn(c_out)
        c_in = c_out
answer = total + 512 * 100 + 100                       # the fc layer: weights and bias
''').register()


# ------------------------------------------------------------------------------------------ 07: warm-up
def _check_warmup(answer):
    expected = {0: 0.01, 399: 0.01, 400: 0.1, 31_999: 0.1, 32_000: 0.01, 47_999: 0.01, 48_000: 0.001, 63_999: 0.001}
    for step, lr in expected.items():
        got = answer(step)
        if not math.isclose(got, lr, rel_tol=1e-9):
            return False, f"at step {step} the learning rate should be {lr:g}, got {got!r}"
    return True, "0.01 for 400 steps, then 0.1, ÷10 at 32k and 48k: the ResNet-110 schedule"


Exercise("07.1", "the paper's ResNet-110 schedule as lr(step): warm-up at 0.01 for 400 steps, 0.1, ÷10 at 32k, 48k",
         _check_warmup, '''
def answer(step):
    if step < 400:
        return 0.01                  # warm-up: until the training error falls below about 80%
    return 0.1 * 0.1 ** ((step >= 32_000) + (step >= 48_000))
''').register()


# ------------------------------------------------------------------------------------------ 08: grouped conv
def _check_grouped(answer):
    from tinyresnet import nn

    expected = nn.Conv2d(128, 128, 3, padding=1, groups=32, bias=False).num_parameters()
    return _number(answer, expected, "the weights of Conv2d(128, 128, 3, groups=32, bias=False)", rel=0)


Exercise("08.1", "the weights of a grouped 3×3 convolution, 128 → 128 channels in 32 groups (no bias)",
         _check_grouped, '''
groups, c_in, c_out = 32, 128, 128
answer = c_out * (c_in // groups) * 3 * 3     # each output channel sees only its group's 4 input channels
''').register()


# ------------------------------------------------------------------------------------------ 09: paths
def _check_paths(answer):
    for n, k in ((3, 0), (3, 2), (27, 13), (54, 20)):
        if answer(n, k) != math.comb(n, k):
            return False, f"paths_of_length({n}, {k}) should be {math.comb(n, k):,}, got {answer(n, k)!r}"
    total = sum(answer(27, k) for k in range(28))
    return total == 2 ** 27, f"and they add up to 2^27 = {2 ** 27:,} paths for ResNet-56's 27 blocks"


Exercise("09.1", "paths_of_length(n, k): how many of the 2ⁿ paths through n residual blocks take exactly k blocks",
         _check_paths, '''
import math

def answer(n, k):
    return math.comb(n, k)           # choose which k of the n blocks the path goes through
''').register()


# ------------------------------------------------------------------------------------------ 10: the add's backward
def _check_add_relu_backward(answer):
    import tinyresnet as tr
    from tinyresnet import functional as F

    rng = np.random.default_rng(10)
    f, x, dout = (rng.standard_normal((2, 3, 4, 4)) for _ in range(3))
    ft, xt = tr.tensor(f, requires_grad=True), tr.tensor(x, requires_grad=True)
    (F.relu(ft + xt) * tr.tensor(dout)).sum().backward()
    got = answer(f, x, dout)
    if not isinstance(got, tuple) or len(got) != 2:
        return False, "return a pair (gradient for F(x), gradient for x through the skip)"
    for name, mine, engine in (("F(x)", got[0], ft.grad), ("x (skip)", got[1], xt.grad)):
        if not np.allclose(np.asarray(mine), engine, atol=1e-12):
            gap = np.abs(np.asarray(mine) - engine).max()
            return False, f"the gradient for {name} differs from the engine's by {gap:.2e}"
    return True, "both gradients equal the engine's: the add sends the same masked gradient down both paths"


Exercise("10.1", "backward of out = relu(F + x): return (∂L/∂F, ∂L/∂x through the skip) given F, x and ∂L/∂out",
         _check_add_relu_backward, '''
def answer(f, x, dout):
    masked = dout * (f + x > 0)      # the ReLU passes the gradient where its input was positive
    return masked, masked            # the addition copies it to both of its inputs
''').register()


# ------------------------------------------------------------------------------------------ 01, 11-13 (D's lessons)
def _check_cifar_epochs(answer):
    expected = 64_000 * 128 / 50_000          # iterations × batch / training images
    return _number(answer, expected, "the epochs of the paper's CIFAR schedule (64k iterations of 128 images)")


Exercise("01.1", "how many epochs are the paper's 64,000 CIFAR iterations of batch 128 over 50,000 images?",
         _check_cifar_epochs, '''
answer = 64_000 * 128 / 50_000      # images seen / images per epoch: about 164 epochs
''').register()


def _check_shortcut_b_params(answer):
    from tinyresnet import models

    extra = (models.get_model("resnet20", num_classes=10, shortcut="B").num_parameters()
             - models.get_model("resnet20", num_classes=10, shortcut="A").num_parameters())
    return _number(answer, extra, "the parameters option B adds to ResNet-20 (two 1×1 projections with their BN)",
                   rel=0)


Exercise("11.1", "how many parameters do type-B shortcuts add to ResNet-20 (type A adds none)?",
         _check_shortcut_b_params, '''
# option B projects only where the shape changes: 16 → 32 and 32 → 64, each a 1×1 conv and a BN (γ, β)
answer = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
''').register()


def _check_cifar_params(answer):
    from tinyresnet.models.cifar import cifar_resnet

    for n in (3, 9, 18):
        expected = cifar_resnet(6 * n + 2, num_classes=10).num_parameters()
        if answer(n) != expected:
            return False, f"for n = {n} (ResNet-{6 * n + 2}) the engine counts {expected:,}, you gave {answer(n)!r}"
    return True, f"ResNet-20, 56 and 110 agree; so ResNet-1202 (n = 200) has {answer(200):,} parameters"


Exercise("12.1", "cifar_params(n): the parameters of the CIFAR ResNet with 6n + 2 layers (3 channels, 10 classes)",
         _check_cifar_params, '''
def answer(n):
    def conv_bn(c_in, c_out):
        return 9 * c_in * c_out + 2 * c_out             # a 3×3 convolution (no bias) and its BN's γ and β

    total = conv_bn(3, 16)                              # the stem
    c_in = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv_bn(c_in, width) + conv_bn(width, width)     # type-A shortcuts hold no weights
            c_in = width
    return total + 64 * 10 + 10                         # the fc layer
''').register()


def _check_decay_factor(answer):
    import tinyresnet as tr
    from tinyresnet.optim import SGD

    p = tr.Tensor(np.ones(3), requires_grad=True)
    optimizer = SGD([p], lr=0.1, momentum=0.0, weight_decay=5e-4)
    for _ in range(1000):
        p.grad = np.zeros(3)                           # no gradient from the loss: only the decay acts
        optimizer.step()
    return _number(answer, float(p.numpy()[0]), "what is left of a weight after 1,000 such steps", rel=1e-4)


Exercise("13.1", "weight decay alone: SGD (lr 0.1, weight decay 5e-4, no momentum), a weight of 1.0 with no "
         "gradient: what is left after 1,000 steps?", _check_decay_factor, '''
answer = (1 - 0.1 * 5e-4) ** 1000    # each step multiplies the weight by (1 − lr·wd): about 0.951
''').register()
