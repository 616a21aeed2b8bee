"""§3 and §3.5 parameter and multiply-accumulate counts, from real layers of the engine.

Parameters are counted from the weights of real ``Conv2d`` layers (``bias=False``, as in a ResNet);
multiply-accumulates (MACs) come from each layer's own counter, ``Conv2d.macs``, as
``tinyresnet.summary.summarize`` (the ``tinyresnet summary`` command) reports them while the block
runs on a 56×56 input. What §3.5 calls "FLOPs" are these multiply-accumulates: one multiply and
one add each, so in floating-point operations every figure would be doubled.
"""

import numpy as np

from ..autograd import Tensor
from ..models import BasicBlock, Bottleneck
from ..nn import Conv2d
from ..summary import summarize
from .claim import check, fmt
from .measure import run_with_hooks

MAC_NOTE = ("multiply-accumulates counted by Conv2d.macs in summarize(); the document calls them FLOPs "
            "(in floating-point operations, a multiply and an add each, it would be {flops:,})")


def params(layer):
    return layer.num_parameters()


def ratio(text, value):
    """An engine ratio shown as the document shows ratios: "16.94×"."""
    return f"{value:.2f}×" if "." in text or value != round(value) else f"{fmt(value)}×"


def parameter_claims():
    basic, bottleneck = BasicBlock(256, 256), Bottleneck(256, 64)
    basic_total = params(basic.conv1) + params(basic.conv2)
    bneck_total = params(bottleneck.conv1) + params(bottleneck.conv2) + params(bottleneck.conv3)
    bn_params = sum(params(m) for m in (basic.bn1, basic.bn2))
    claims = [
        check("s3-basic-conv1", "3", "two 3×3 convs, 256 ch: Conv1 weights", "256×256×3×3 = 589,824",
              params(basic.conv1), expect="589,824"),
        check("s3-basic-conv2", "3", "two 3×3 convs, 256 ch: Conv2 weights", "256×256×3×3 = 589,824",
              params(basic.conv2), expect="589,824"),
        check("s3-basic-total", "3", "two 3×3 convs, 256 ch: total weights", "1,179,648", basic_total,
              note=f"the conv weights; the block's two BatchNorm2d(256) add {bn_params:,} more (γ and β)"),
        check("s3-bneck-conv1", "3", "bottleneck 256-64-256: 1×1 reduce weights", "256×64×1×1 = 16,384",
              params(bottleneck.conv1), expect="16,384"),
        check("s3-bneck-conv2", "3", "bottleneck 256-64-256: 3×3 weights", "64×64×3×3 = 36,864",
              params(bottleneck.conv2), expect="36,864"),
        check("s3-bneck-conv3", "3", "bottleneck 256-64-256: 1×1 expand weights", "64×256×1×1 = 16,384",
              params(bottleneck.conv3), expect="16,384"),
        check("s3-bneck-total", "3", "bottleneck: 16,384 + 36,864 + 16,384", "69,632", bneck_total),
        check("s3-ratio", "3", "bottleneck has 17× fewer weights (also §3.5)", "17×", basic_total / bneck_total,
              engine=ratio("17×", basic_total / bneck_total), note=f"{basic_total:,} / {bneck_total:,}"),
        check("s35-params-ratio", "3.5", "bottleneck savings: 16.9× fewer parameters", "16.9×",
              basic_total / bneck_total, engine=ratio("16.9×", basic_total / bneck_total),
              note=f"{basic_total:,} / {bneck_total:,}"),
        check("s35-bneck-reduction", "3.5", "bottleneck compress: 256 → 64 channels", "4× reduction",
              bottleneck.conv1.in_channels / bottleneck.conv1.out_channels, expect="4×",
              engine=f"{bottleneck.conv1.in_channels} / {bottleneck.conv1.out_channels} = "
                     f"{fmt(bottleneck.conv1.in_channels / bottleneck.conv1.out_channels)}×"),
        check("s35-bneck-expansion", "3.5", "bottleneck expand: 64 → 256 channels", "4× expansion",
              bottleneck.conv3.out_channels / bottleneck.conv3.in_channels, expect="4×",
              engine=f"{bottleneck.conv3.out_channels} / {bottleneck.conv3.in_channels} = "
                     f"{fmt(bottleneck.conv3.out_channels / bottleneck.conv3.in_channels)}×"),
    ]
    wide, narrow = Conv2d(256, 128, 3, padding=1, bias=False), Conv2d(256, 128, 1, bias=False)
    claims += [
        check("s35-3x3-params", "3.5", "256 → 128 channels with a 3×3 conv: weights", "294,912", params(wide)),
        check("s35-1x1-params", "3.5", "256 → 128 channels with a 1×1 conv: weights", "32,768", params(narrow)),
        check("s35-9x", "3.5", "1×1 has 9× fewer weights than 3×3", "9×", params(wide) / params(narrow),
              engine=ratio("9×", params(wide) / params(narrow))),
    ]
    example = Conv2d(256, 64, kernel_size=1, stride=1, padding=0, bias=False)
    out = example(Tensor(np.zeros((1, 256, 56, 56), dtype=np.float32)))
    claims += [
        check("s35-example-params", "3.5", "PyTorch example Conv2d(256, 64, 1): parameters", "16384",
              params(example)),
        check("s35-example-shape", "3.5", "PyTorch example: output of a 1×256×56×56 input",
              "torch.Size([1, 64, 56, 56])", out.shape, expect=(1, 64, 56, 56), engine="×".join(map(str, out.shape))),
    ]
    for kernel, printed in ((3, "27"), (1, "3")):
        layer = Conv2d(3, 1, kernel, padding=kernel // 2, bias=False)
        records = run_with_hooks(layer, (3, 5, 5))
        _, out_shape, macs = records[""]
        per_value = macs // (out_shape[1] * out_shape[2])
        claims.append(check(f"s35-paint-{kernel}x{kernel}", "3.5",
                            f"paint mixing: a {kernel}×{kernel} filter on RGB looks at", f"{printed} values",
                            per_value, expect=printed, note="multiply-accumulates per output value"))
    return claims


def mac_claims():
    """The multiply-accumulates of the basic block and the bottleneck on a 56×56×256 input, by ``summarize``."""
    basic, bneck = summarize(BasicBlock(256, 256), (256, 56, 56)), summarize(Bottleneck(256, 64), (256, 56, 56))
    basic_rows, bneck_rows = {r.name: r for r in basic.rows}, {r.name: r for r in bneck.rows}
    _, _, h, w = bneck_rows["conv1"].output_shape
    pixels = h * w

    def mac_row(id, claim, document, macs, expect, note=""):
        return check(id, "3.5", claim, document, macs, expect=expect, note=note + MAC_NOTE.format(flops=2 * macs))

    claims = [
        mac_row("s35-macs-basic-conv1", "basic block 256 ch at 56×56: Conv1 MACs", "589,824 × 56 × 56 = 1,850M",
                basic_rows["conv1"].macs, "1,850M"),
        mac_row("s35-macs-basic-conv2", "basic block 256 ch at 56×56: Conv2 MACs", "589,824 × 56 × 56 = 1,850M",
                basic_rows["conv2"].macs, "1,850M"),
        mac_row("s35-macs-basic-total", "basic block 256 ch at 56×56: total MACs", "3,700M", basic.total_macs,
                "3,700M", note=f"{basic.total_macs / 1e6:,.1f}M, which is 3,700M to three significant figures; "),
        mac_row("s35-macs-bneck-conv1", "bottleneck at 56×56: 1×1 reduce MACs", "16,384 × 56 × 56 = 51.4M",
                bneck_rows["conv1"].macs, "51.4M"),
        mac_row("s35-macs-bneck-conv2", "bottleneck at 56×56: 3×3 MACs", "36,864 × 56 × 56 = 115.6M",
                bneck_rows["conv2"].macs, "115.6M"),
        mac_row("s35-macs-bneck-conv3", "bottleneck at 56×56: 1×1 expand MACs", "16,384 × 56 × 56 = 51.4M",
                bneck_rows["conv3"].macs, "51.4M"),
        mac_row("s35-macs-bneck-total", "bottleneck at 56×56: total MACs", "218.4M", bneck.total_macs, "218.4M"),
        check("s35-macs-ratio", "3.5", "bottleneck savings: 16.9× fewer operations", "16.9×",
              basic.total_macs / bneck.total_macs, engine=ratio("16.9×", basic.total_macs / bneck.total_macs),
              note=f"{basic.total_macs:,} / {bneck.total_macs:,} multiply-accumulates"),
        check("s35-macs-17x", "3.5", "summary: 17× faster computation (MAC ratio)", "17×",
              basic.total_macs / bneck.total_macs, engine=ratio("17×", basic.total_macs / bneck.total_macs),
              note="a ratio of multiply-accumulates; the wall-clock speed-up depends on the hardware and is "
                   "not measured here"),
        check("s35-pixels", "3.5", "56×56 feature map: total pixels", "56×56 = 3,136", pixels, expect="3,136"),
    ]
    for name, printed in (("conv1", "256 × 64 = 16,384"), ("conv2", "64 × 64 × 9 = 36,864"),
                          ("conv3", "64 × 256 = 16,384")):
        claims.append(check(f"s35-ops-per-pixel-{name}", "3.5", f"bottleneck {name}: MACs per pixel", printed,
                            bneck_rows[name].macs // pixels, expect=printed.split("= ")[1]))
    claims += [
        check("s35-bneck-shape-reduce", "3.5", "bottleneck: after the 1×1 reduce", "56×56×64",
              bneck_rows["conv1"].output_shape[1:]),
        check("s35-bneck-shape-process", "3.5", "bottleneck: after the 3×3", "56×56×64",
              bneck_rows["conv2"].output_shape[1:]),
        check("s35-bneck-shape-out", "3.5", "bottleneck: block output", "56×56×256", bneck.output_shape[1:]),
    ]
    basic64 = summarize(BasicBlock(64, 64), (64, 56, 56))
    claims.append(check("s3-basic-shape", "3", "basic block 64 ch: output of a 56×56×64 input", "56×56×64",
                        basic64.output_shape[1:]))
    return claims


def claims():
    return parameter_claims() + mac_claims()
