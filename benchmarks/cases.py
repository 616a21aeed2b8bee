"""The benchmark cases, each written for both sides: tinyresnet (NumPy) and PyTorch CPU.

``build(case, side, quick)`` returns ``(step, flops)``: ``step()`` runs the work once, ``flops`` is the
number of floating-point operations in it (2 per multiply-accumulate of the convolutions and linear
layers; BN, ReLU and the like are not counted), or None. Each side imports only its own library, so a
tinyresnet process never loads torch.
"""

import numpy as np

SEED = 0


def conv(batch, c_in, size, c_out, k, stride, padding, needs_dx=True, quick_batch=8):
    """A conv layer case. needs_dx=False: the input is the image itself (no gradient, NCHW as loaded)."""
    return dict(kind="conv", batch=batch, c_in=c_in, size=size, c_out=c_out, k=k, stride=stride,
                padding=padding, needs_dx=needs_dx, quick_batch=quick_batch)


# ResNet layer shapes. The 3×3 stride-1 layers are those of ResNet-18's four stages (CIFAR sizes);
# the strided 3×3 and the 1×1 projection open stage 2; the stem is ImageNet ResNet's first layer.
CONV_LAYERS = {
    "conv3x3_64@32": conv(128, 64, 32, 64, 3, 1, 1),
    "conv3x3_128@16": conv(128, 128, 16, 128, 3, 1, 1),
    "conv3x3_256@8": conv(128, 256, 8, 256, 3, 1, 1),
    "conv3x3_512@4": conv(128, 512, 4, 512, 3, 1, 1),
    "conv3x3s2_64>128@32": conv(128, 64, 32, 128, 3, 2, 1),
    "conv1x1s2_64>128@32": conv(128, 64, 32, 128, 1, 2, 0),
    "stem7x7s2_3>64@224": conv(32, 3, 224, 64, 7, 2, 3, needs_dx=False, quick_batch=2),
}

NETWORKS = {
    "resnet18_cifar_train_step": dict(kind="train", model="resnet18_cifar", batch=64, quick_batch=8, size=32,
                                      classes=10),
    "resnet50_inference_224": dict(kind="infer", model="resnet50", batch=8, quick_batch=1, size=224, classes=1000),
    # the paper's CIFAR networks (type-A shortcuts), at the paper's batch of 128
    **{f"resnet{d}_train_step_b128": dict(kind="train", model=f"resnet{d}", batch=128, quick_batch=8, size=32,
                                          classes=10) for d in (20, 56, 110)},
    # the ImageNet network's training step: its peak memory is the figure (a step takes seconds on 2 cores)
    "resnet50_train_step_224": dict(kind="train", model="resnet50", batch=64, quick_batch=2, size=224,
                                    classes=1000),
}


def case_names():
    """Every case id: each conv layer forward ("...:fwd") and forward + backward ("...:fwd+bwd"), then
    the networks."""
    names = [f"{n}:{p}" for n in CONV_LAYERS for p in ("fwd", "fwd+bwd")]
    return names + list(NETWORKS)


def describe(name):
    """The settings of a case id."""
    base, _, phase = name.partition(":")
    spec = dict(CONV_LAYERS[base]) if base in CONV_LAYERS else dict(NETWORKS[name])
    spec["phase"] = phase or spec["kind"]
    return spec


def conv_flops(spec, batch):
    out = (spec["size"] + 2 * spec["padding"] - spec["k"]) // spec["stride"] + 1
    forward = 2 * batch * out * out * spec["c_out"] * spec["c_in"] * spec["k"] ** 2
    if spec["phase"] == "fwd":
        return forward
    return forward * (3 if spec["needs_dx"] else 2)    # + the weight gradient (+ the input gradient)


def build(name, side, quick=False):
    spec = describe(name)
    batch = spec["quick_batch"] if quick else spec["batch"]
    rng = np.random.default_rng(SEED)
    maker = {"tinyresnet": _tinyresnet, "torch": _torch, "blas": _blas}[side]
    if spec["kind"] == "conv":
        x = rng.standard_normal((batch, spec["c_in"], spec["size"], spec["size"]), dtype=np.float32)
        w = rng.standard_normal((spec["c_out"], spec["c_in"], spec["k"], spec["k"]), dtype=np.float32) * 0.05
        return maker.conv(spec, x, w), conv_flops(spec, batch)
    x = rng.standard_normal((batch, 3, spec["size"], spec["size"]), dtype=np.float32)
    y = rng.integers(0, spec["classes"], batch)
    return maker.network(spec, x, y)


def channels_last(a):
    """The values of an (N, C, H, W) array stored channels-last (NHWC in memory), still indexed (N, C, H, W)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


class _tinyresnet:
    @staticmethod
    def conv(spec, x, w):
        import tinyresnet as tr
        from tinyresnet import functional as F

        # inside a network every conv but the first gets a channels-last input (the layout the
        # engine's conv, BN and ReLU produce), and a channels-last gradient: time it that way
        x = tr.Tensor(channels_last(x) if spec["needs_dx"] else x, requires_grad=spec["needs_dx"])
        w = tr.Tensor(w, requires_grad=True)
        kw = dict(stride=spec["stride"], padding=spec["padding"])
        if spec["phase"] == "fwd":
            def step():
                with tr.no_grad():
                    F.conv2d(x, w, **kw)
            return step
        dout = channels_last(np.ones(F.conv2d(x, w, **kw).shape, dtype=np.float32))

        def step():
            x.grad = w.grad = None
            F.conv2d(x, w, **kw).backward(dout)
        return step

    @staticmethod
    def network(spec, x, y):
        import tinyresnet as tr
        from tinyresnet import functional as F
        from tinyresnet import models, optim

        x = tr.Tensor(x)
        if spec["model"] == "resnet50":
            model = models.resnet50(num_classes=spec["classes"])
        elif spec["model"] != "resnet18_cifar":
            model = getattr(models, spec["model"])(num_classes=spec["classes"])
        else:
            model = models.resnet18(num_classes=spec["classes"], stem="cifar")
        if spec["kind"] == "infer":
            model.eval()

            def step():
                with tr.no_grad():
                    model(x)
        else:
            model.train()
            opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

            def step():
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        return step, None


class _blas:
    """The matrix products a conv layer needs, alone: NumPy matmuls at the layer's shapes for the whole batch,
    on random matrices (no im2col, no chunks). Their time is the floor for tinyresnet's conv."""

    @staticmethod
    def conv(spec, x, w):
        rng = np.random.default_rng(SEED)
        N, C, H, _ = x.shape
        OC, k, s = spec["c_out"], spec["k"], spec["stride"]
        OH = (H + 2 * spec["padding"] - k) // s + 1
        M, K = N * OH * OH, k * k * C

        def randn(*shape):
            return rng.standard_normal(shape, dtype=np.float32)
        cols, wmat, dout = randn(M, K), randn(K, OC), randn(M, OC)
        products = [lambda: cols @ wmat]                            # out = cols · Wmat
        if spec["phase"] != "fwd":
            products.append(lambda: cols.T @ dout)                  # dWmat = colsᵀ · dout
            if spec["needs_dx"] and s == 1:
                dout_cols, wflip = randn(N * H * H, k * k * OC), randn(k * k * OC, C)
                products.append(lambda: dout_cols @ wflip)          # dx by the gather
            elif spec["needs_dx"]:
                products.append(lambda: dout @ wmat.T)              # dcols, before col2im

        def step():
            for product in products:
                product()
        return step


class _torch:
    @staticmethod
    def conv(spec, x, w):
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(x).requires_grad_(spec["needs_dx"])
        w = torch.from_numpy(w).requires_grad_(True)
        kw = dict(stride=spec["stride"], padding=spec["padding"])
        if spec["phase"] == "fwd":
            def step():
                with torch.no_grad():
                    F.conv2d(x, w, **kw)
            return step
        dout = torch.ones_like(F.conv2d(x, w, **kw))

        def step():
            x.grad = w.grad = None
            F.conv2d(x, w, **kw).backward(dout)
        return step

    @staticmethod
    def network(spec, x, y):
        import torch
        import torch.nn.functional as F
        from torch_models import cifar_resnet, count_flops, resnet18_cifar, resnet50

        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if spec["model"] in ("resnet50", "resnet18_cifar"):
            model = {"resnet50": resnet50, "resnet18_cifar": resnet18_cifar}[spec["model"]](num_classes=spec["classes"])
        else:
            model = cifar_resnet(int(spec["model"][len("resnet"):]), num_classes=spec["classes"])
        if spec["kind"] == "infer":
            model.eval()
            flops = count_flops(model, x)

            def step():
                with torch.no_grad():
                    model(x)
        else:
            model.train()
            flops = 3 * count_flops(model, x)      # forward, input gradients, weight gradients (≈)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

            def step():
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        return step, flops
