"""§9 claims: zero-initialising each block's last BN, and the learning-rate schedule.

The zero-init claim runs small ResNets built with ``zero_init_residual=True`` and records, by
forward hooks, the residual branch F(x) of every block (the output of its last BN). The
schedule is the engine's own ``MultiStepLR`` stepped once per epoch, as the document's loop does.
"""

import numpy as np

from ..autograd import Tensor, no_grad
from ..models import BasicBlock, Bottleneck, ResNet
from ..nn import BatchNorm2d, Parameter, init
from ..optim import SGD, MultiStepLR
from .claim import check, fmt

LR_RANGES = {(0, 29): "0.1", (30, 59): "0.01", (60, 79): "0.001", (80, 89): "0.0001"}


def last_bn(block):
    """The name of a block's last BatchNorm2d on the residual branch (the shortcut's BN is inside downsample)."""
    return [name for name, m in block.named_children() if isinstance(m, BatchNorm2d)][-1]


def largest_branch(block_type, zero=None, zero_init_residual=False):
    """max |F(x)| over the blocks of a narrow ResNet (one block per stage) on random 32×32 images, in training mode.

    F(x) is the output of each block's last BN, recorded by a forward hook. ``zero`` names a BN
    whose γ is set to 0 in every block by hand (as the document's code does).
    """
    model = ResNet(block_type, [1, 1, 1, 1], num_classes=10, zero_init_residual=zero_init_residual,
                   widths=(8, 16, 32, 64))
    blocks = [m for m in model.modules() if isinstance(m, block_type)]
    largest, handles = [], []
    for block in blocks:
        if zero is not None:
            init.zeros_(getattr(block, zero).weight)
        branch = getattr(block, last_bn(block))
        handles.append(branch.register_forward_hook(lambda m, i, out: largest.append(float(np.abs(out.numpy()).max()))))
    x = Tensor(np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32))
    with no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return max(largest)


def zero_init_claims():
    basic = largest_branch(BasicBlock, zero_init_residual=True)
    bneck = largest_branch(Bottleneck, zero_init_residual=True)
    bneck_bn2 = largest_branch(Bottleneck, zero="bn2")
    names = ", ".join(n for n, m in Bottleneck(64, 16).named_children() if isinstance(m, BatchNorm2d))
    return [
        check("s9-zero-init-basic", "9", "last BN γ = 0 makes F(x) = 0 at the start (basic blocks)", "F(x) ≈ 0",
              basic, expect="0", tolerance=1e-6, engine=f"max |F(x)| = {fmt(basic)}",
              note="ResNet(BasicBlock, [1, 1, 1, 1], widths=(8, 16, 32, 64), zero_init_residual=True), "
                   "training mode, F(x) = bn2's output"),
        check("s9-zero-init-bottleneck", "9", "last BN γ = 0 makes F(x) = 0 at the start (bottlenecks)",
              "F(x) ≈ 0", bneck, expect="0", tolerance=1e-6, engine=f"max |F(x)| = {fmt(bneck)}",
              note="ResNet(Bottleneck, [1, 1, 1, 1], widths=(8, 16, 32, 64), zero_init_residual=True), "
                   "training mode, F(x) = bn3's output"),
        check("s9-last-bn-bottleneck", "9", "\"last BN in each block\", for a bottleneck block",
              "m.bn2.weight", last_bn(Bottleneck(64, 16)), expect="bn2",
              note=f"a bottleneck's BNs are {names}: its last is bn3 (torchvision's zero_init_residual zeroes "
                   f"bn3). Zeroing bn2 instead still gives F(x) = 0 at the start (engine: max |F(x)| = "
                   f"{fmt(bneck_bn2)}), because bn3 then normalises zeros, but the comment 'last BN' is not "
                   f"what the code does"),
    ]


def schedule_claims():
    """The learning rate of every epoch of the document's 90-epoch loop, by the engine's MultiStepLR."""
    optimizer = SGD([Parameter(np.zeros(1, dtype=np.float32))], lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = MultiStepLR(optimizer, milestones=[30, 60, 80], gamma=0.1)
    lrs = []
    for _ in range(90):                          # for epoch in range(90): train_epoch(); scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    claims = []
    for (first, last), printed in LR_RANGES.items():
        seen = sorted(set(lrs[first:last + 1]), reverse=True)
        value = seen[0] if len(seen) == 1 else seen
        claims.append(check(f"s9-lr-epochs-{first}-{last}", "9", f"MultiStepLR([30, 60, 80]): epochs {first}-{last}",
                            f"lr = {printed}", value, expect=printed, engine=f"lr = {fmt(value)}",
                            note="the rate each epoch trains with, read before that epoch's scheduler.step()"))
    return claims


def claims():
    return zero_init_claims() + schedule_claims()
