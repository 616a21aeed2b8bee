"""§3.5, §5, §6, §7, §8, §10 and §12 claims about whole ResNets, measured on the engine's real models.

Each model is built once. Counts (parameters, blocks, layers, channels) are read from its
modules; shapes are recorded by forward hooks while ResNet-18, -34 and -50 run on one 224×224
image; the paths of §8 are counted in the autograd graph that a forward pass records.
"""

from ..models import BasicBlock, Bottleneck, get_model
from ..nn import Conv2d, Linear, MaxPool2d, Sequential
from ..ops.checks import pair
from .claim import check, fmt
from .measure import graph_paths, run_with_hooks, superscript

MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
TABLE = {  # the §5 architecture table: blocks per stage, block type, total layers, parameters
    "resnet18": ("[2, 2, 2, 2]", "Basic", "18", "11.7M"),
    "resnet34": ("[3, 4, 6, 3]", "Basic", "34", "21.8M"),
    "resnet50": ("[3, 4, 6, 3]", "Bottleneck", "50", "25.6M"),
    "resnet101": ("[3, 4, 23, 3]", "Bottleneck", "101", "44.5M"),
    "resnet152": ("[3, 8, 36, 3]", "Bottleneck", "152", "60.2M"),
}
STAGES = {  # the stage outputs §5 prints for a 224×224 input
    "resnet34": ("56×56×64", "28×28×128", "14×14×256", "7×7×512"),
    "resnet50": ("56×56×256", "28×28×512", "14×14×1024", "7×7×2048"),
}


def title(name):
    return "ResNet-" + name[len("resnet"):]


def blocks_of(model):
    """The residual blocks of each stage, in order."""
    return [list(getattr(model, f"layer{i + 1}")) for i in range(model.num_stages)]


def weighted_layers(model):
    """Convolutions and fully connected layers on the main path (projection shortcuts not counted),
    the layers a ResNet's name counts."""
    return sum(1 for name, m in model.named_modules()
               if isinstance(m, (Conv2d, Linear)) and "downsample" not in name)


def table_claims(name, model):
    blocks, kind, layers, parameters = TABLE[name]
    stages = blocks_of(model)
    kinds = sorted({type(b).__name__ for stage in stages for b in stage})
    kind_text = "Basic" if kinds == ["BasicBlock"] else "Bottleneck" if kinds == ["Bottleneck"] else "/".join(kinds)
    n = weighted_layers(model)
    return [
        check(f"s5-{name}-blocks", "5", f"{title(name)}: blocks per stage", blocks, [len(s) for s in stages]),
        check(f"s5-{name}-block-type", "5", f"{title(name)}: block type", kind, kind_text),
        check(f"s5-{name}-layers", "5", f"{title(name)}: total layers", layers, n,
              note="convolutions and the fully connected layer on the main path; the projection shortcuts' "
                   "1×1 convolutions are not counted"),
        check(f"s5-{name}-params", "5", f"{title(name)}: parameters", parameters, model.num_parameters(),
              note="every weight, BatchNorm γ and β included (running statistics are buffers, not parameters)"),
    ]


def formula(n, layer):
    """The output size ⌊(n + 2p − f)/s⌋ + 1 for a conv or pool layer's own kernel, stride and padding."""
    f, s, p = pair(layer.kernel_size, "k")[0], pair(layer.stride, "s")[0], pair(layer.padding, "p")[0]
    return (n + 2 * p - f) // s + 1, f"⌊({n} + 2·{p} − {f})/{s}⌋ + 1"


def resnet18_claims(model):
    """§5's ResNet-18 walk-through, §6's chain of sizes and §12's output-size formula."""
    shapes = run_with_hooks(model, (3, 224, 224))
    modules = dict(model.named_modules())

    def size_note(name):
        n = shapes[name][0][1]
        value, text = formula(n, modules[name])
        return f"{text} = {value}"

    rows = [("conv1", "Conv1 7×7, 64, stride 2, padding 3", "112×112×64", size_note("conv1")),
            ("maxpool", "MaxPool 3×3, stride 2, padding 1", "56×56×64", size_note("maxpool")),
            ("layer1", "stage 1 (×2 basic blocks)", "56×56×64", ""),
            ("layer2", "stage 2, first conv stride 2", "28×28×128", "conv: " + size_note("layer2.0.conv1")),
            ("layer3", "stage 3, first conv stride 2", "14×14×256", "conv: " + size_note("layer3.0.conv1")),
            ("layer4", "stage 4, first conv stride 2", "7×7×512", "conv: " + size_note("layer4.0.conv1")),
            ("avgpool", "global average pooling", "1×1×512", "")]
    claims = [check(f"s5-resnet18-{name}", "5", f"ResNet-18 on 224×224×3: {what}", printed, shapes[name][1],
                    note=note) for name, what, printed, note in rows]
    fc = modules["fc"]
    claims.append(check("s5-resnet18-fc", "5", "ResNet-18: fully connected layer", "512 → 1000",
                        f"{fc.in_features} → {shapes['fc'][1][0]}"))
    chain = [224] + [shapes[name][1][1] for name in ("conv1", "maxpool", "layer2", "layer3", "layer4", "avgpool")]
    claims.append(check("s6-size-chain", "6", "ResNet-18 spatial sizes, input to pooled output",
                        "224 → 112 → 56 → 28 → 14 → 7 → 1", " → ".join(map(str, chain)),
                        note="heights measured by forward hooks on conv1, maxpool, layer2-4 and avgpool"))
    windows = [name for name, m in modules.items() if isinstance(m, (Conv2d, MaxPool2d)) and name in shapes]
    agree = [name for name in windows if formula(shapes[name][0][1], modules[name])[0] == shapes[name][1][1]]
    claims.append(check("s12-output-size-formula", "12", "⌊(n + 2p − f)/s⌋ + 1 on each conv/pool of ResNet-18",
                        f"all {len(windows)} layers", len(agree), expect=str(len(windows)),
                        engine=f"{len(agree)} of {len(windows)} layers",
                        note="n, the input height each layer received; f, s, p its own kernel, stride and padding"))
    return claims


def stage_claims(name, model):
    shapes = run_with_hooks(model, (3, 224, 224))
    claims = [check(f"s5-{name}-stage{i + 1}", "5", f"{title(name)} on 224×224×3: stage {i + 1} output", printed,
                    shapes[f"layer{i + 1}"][1]) for i, printed in enumerate(STAGES[name])]
    if name == "resnet50":
        claims.append(check("s7-resnet50-output", "7", "ResNet-50 on a 1×3×224×224 batch: output",
                            "torch.Size([1, 1000])", (1, *shapes["fc"][1]), expect=(1, 1000),
                            engine="1×" + "×".join(map(str, shapes["fc"][1]))))
    return claims


def expansion_claims(model):
    """§3.5 "Why 4× Expansion Factor", read from ResNet-50's real bottlenecks."""
    stages = blocks_of(model)

    def widths(block):
        return f"{block.conv1.in_channels} → {block.conv1.out_channels} → {block.conv3.out_channels}"

    printed = ("64 → 16 → 64", "128 → 32 → 128", "256 → 64 → 256", "512 → 128 → 512")
    claims = [check(f"s35-resnet50-stage{i + 1}-widths", "3.5", f"ResNet-50 stage {i + 1}: in → bottleneck → out",
                    printed[i], widths(stage[-1]),
                    note="read from the stage's last block: ResNet-50's bottlenecks are 64, 128, 256 and 512 wide "
                         "and each block's output is 4× its bottleneck; the document takes the bottleneck widths "
                         "for the block outputs and divides them by 4") for i, stage in enumerate(stages)]
    ratios = {block.conv3.out_channels / block.conv1.out_channels for stage in stages for block in stage}
    grow = [model.conv1.out_channels] + [stage[-1].conv3.out_channels for stage in stages]
    claims += [
        check("s35-resnet50-first-block", "3.5", "ResNet-50 first block: in, bottleneck, out", "64 → 64 → 256",
              widths(stages[0][0])),
        check("s35-resnet50-stage2-first", "3.5", "ResNet-50 stage 2 first block: in, bottleneck, out",
              "256 → 128 → 512", widths(stages[1][0])),
        check("s35-resnet50-channels", "3.5", "ResNet-50 channels: stem, then each stage's output",
              "64 → 256 → 512 → 1024 → 2048", " → ".join(map(str, grow))),
        check("s35-resnet50-ratio", "3.5", "bottleneck ratio (block output / bottleneck width)", "4:1 always",
              ", ".join(f"{fmt(r)}:1" for r in sorted(ratios)), expect="4:1"),
    ]
    return claims


def path_claims(paths):
    """§8: a network of n residual blocks has 2ⁿ paths; the document's count for ResNet-50."""
    three = Sequential(*[BasicBlock(4, 4) for _ in range(3)])
    counted3 = graph_paths(three, (4, 8, 8))
    (stages50, counted50), stages152 = paths["resnet50"], paths["resnet152"]
    n50, n152 = sum(stages50), sum(stages152)

    def shown(count, n):
        return f"{count:,} = 2{superscript(n)}" if count == 2 ** n else f"{count:,}"

    return [
        check("s8-paths-3-blocks", "8", "3 residual blocks: number of paths", "2³ = 8", counted3, expect="8",
              engine=shown(counted3, 3), note="input-to-output paths in the autograd graph of 3 chained BasicBlocks"),
        check("s8-paths-resnet50", "8", "ResNet-50: number of paths", "2⁵⁰ ≈ 10¹⁵", counted50, expect=2 ** 50,
              engine=shown(counted50, n50),
              note=f"ResNet-50 has {n50} residual blocks ({'+'.join(map(str, stages50))}), counted in the model; "
                   f"50 is its number of weighted layers, not of blocks. Its autograd graph has {counted50:,} "
                   f"input-to-output paths. 2⁵⁰ ≈ 1.1×10¹⁵ is the count for 50 blocks: ResNet-152's "
                   f"({'+'.join(map(str, stages152))} = {n152})"),
    ]


def claims():
    claims, paths = [], {}
    for name in MODELS:
        model = get_model(name)
        claims += table_claims(name, model)
        if name == "resnet18":
            claims += resnet18_claims(model)
        if name in STAGES:
            claims += stage_claims(name, model)
        if name == "resnet50":
            claims.append(check("s7-resnet50-params", "7", "ResNet-50 parameters (§7 printout)", "25,557,032",
                                model.num_parameters()))
            claims += expansion_claims(model)
        stages = [sum(isinstance(b, (BasicBlock, Bottleneck)) for b in stage) for stage in blocks_of(model)]
        if name == "resnet50":
            paths[name] = (stages, graph_paths(model, (3, 32, 32)))
        if name == "resnet152":
            paths[name] = stages
        del model
    resnext, resnet101 = get_model("resnext50_32x4d").num_parameters(), _params("resnet101", claims)
    fewer = resnext < resnet101
    claims.append(check("s10-resnext50-params", "10", "ResNeXt-50 has fewer parameters than ResNet-101",
                        "fewer", "fewer" if fewer else "not fewer",
                        engine=f"{resnext:,} {'<' if fewer else '≥'} {resnet101:,}",
                        note="ResNeXt-50 (32×4d) against ResNet-101; the accuracy half of the claim needs ImageNet"))
    return claims + path_claims(paths)


def _params(name, claims):
    """A model's parameter count, from the claim already measured."""
    return next(c.value for c in claims if c.id == f"s5-{name}-params")
