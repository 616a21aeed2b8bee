"""Conceptual errata: what the ResNet document claims beyond arithmetic that is wrong or unsupported.

Each ``Concept`` restates one claim in our words, gives a verdict ("wrong", "unsupported" or
"misattributed"), what the source says (He et al., 2016, "Deep Residual Learning for Image
Recognition", cited by table and section; other papers where the claim comes from one), and the
evidence. Evidence that the engine can produce is computed here, from real models, every time the
errata page is generated; evidence from running the document's own code is a record of that run.
"""

from dataclasses import dataclass

import numpy as np

from .. import models
from ..autograd import Tensor
from ..models import BasicBlock, Bottleneck, make_shortcut
from ..nn import init
from ..summary import summarize
from . import speed
from .claim import fmt

PAPER = "He et al., 2016"
VERDICTS = ("wrong", "unsupported", "misattributed")
TORCH_RUN = ("we ran the document's Python blocks in a scratch folder, each section's blocks in order, with "
             "PyTorch 2.13 (CPU) and NumPy 2.4")


@dataclass(frozen=True)
class Concept:
    """One conceptual erratum: ``claim`` in our words, ``verdict``, what the ``source`` says, the ``evidence``
    (text, or a function of no arguments that measures it with the engine), and a ``tutorial`` path or ""."""

    id: str
    section: str
    claim: str
    verdict: str
    source: str
    evidence: object
    tutorial: str = ""

    def evidence_text(self):
        return self.evidence() if callable(self.evidence) else self.evidence

    def as_dict(self):
        return {"id": self.id, "section": self.section, "claim": self.claim, "verdict": self.verdict,
                "source": self.source, "evidence": self.evidence_text(), "tutorial": self.tutorial}


# ----------------------------------------------------------------------------- evidence from the engine
def shortcut_parameters():
    counts = {s: models.resnet34(shortcut=s).num_parameters() for s in "ABC"}
    return (f"engine, ResNet-34 built with each option: A {counts['A']:,}, B {counts['B']:,}, C {counts['C']:,} "
            f"parameters; C adds {counts['C'] - counts['B']:,} over B for a 0.33-point gain in the paper's Table 3.")


def shortcut_a_is_subsampling():
    x = np.random.default_rng(0).normal(size=(1, 16, 8, 8)).astype(np.float32)
    shortcut = make_shortcut("A", 16, 32, stride=2)
    out = shortcut(Tensor(x)).numpy()
    kept = np.array_equal(out[:, 8:24], x[:, :, ::2, ::2])
    zeros = not out[:, :8].any() and not out[:, 24:].any()
    return (f"engine: the type-A shortcut from 16 to 32 channels with stride 2 has "
            f"{sum(p.size for p in shortcut.parameters())} parameters; its output is every second pixel of the "
            f"input ({'exactly' if kept else 'NOT'}) with 16 zero channels around it "
            f"({'all zero' if zeros else 'NOT zero'}): a subsampling, no pooling.")


def similar_complexity():
    basic64 = summarize(BasicBlock(64, 64), (64, 56, 56)).total_macs
    bneck = summarize(Bottleneck(256, 64), (256, 56, 56)).total_macs
    basic256 = summarize(BasicBlock(256, 256), (256, 56, 56)).total_macs
    return (f"engine MACs at 56×56: basic block on 64 channels {basic64 / 1e6:,.1f}M, bottleneck on 256 "
            f"channels {bneck / 1e6:,.1f}M (the paper's pair, {basic64 / bneck:.2f}×), basic block on 256 "
            f"channels {basic256 / 1e6:,.1f}M (the document's pair, {basic256 / bneck:.2f}×).")


def measured_speedup():
    rows = speed.RECORDED["rows"]
    if not rows:
        return "no timing recorded yet: run `python -m tinyresnet.docverify.speed`."
    cells = "; ".join(f"{r['size']}×{r['size']}: {r['basic_ms']} ms against {r['bottleneck_ms']} ms, "
                      f"{r['speedup']}× faster" for r in rows)
    others = speed.RECORDED.get("other_runs")
    return (f"engine, forward + backward of BasicBlock(256, 256) and Bottleneck(256, 64), batch 1, "
            f"{speed.RECORDED['machine']}: {cells}{'; ' + others if others else ''}; the MAC ratio is "
            f"{rows[0]['mac_ratio']}× at every size. "
            f"Rerun with `python -m tinyresnet.docverify.speed`.")


def post_activation_gradient():
    block = BasicBlock(8, 8)
    init.zeros_(block.bn2.weight)                               # F(x) = 0: only the skip and the final ReLU are left
    x = Tensor(np.random.default_rng(0).normal(size=(2, 8, 6, 6)).astype(np.float32), requires_grad=True)
    block(x).sum().backward()
    zero = float(np.mean(x.grad == 0))
    return (f"engine: a BasicBlock whose branch is zeroed (bn2 γ = 0) passes ∂L/∂x = ∂L/∂y only where the input "
            f"is positive; on a standard-normal input {zero:.0%} of the entries of ∂L/∂x are exactly 0, "
            f"because out = relu(F(x) + x) puts the ReLU on the skip path.")


def cifar_network():
    imagenet = models.resnet50(num_classes=10).num_parameters()
    cifar = models.resnet56().num_parameters()
    return (f"engine: ResNet-50 with 10 classes has {imagenet:,} parameters; the paper's CIFAR ResNet-56 (16, 32, "
            f"64 channels, type-A shortcuts) has {cifar:,}, {imagenet / cifar:.0f}× fewer.")


def expansion_ratios():
    block = models.resnext50_32x4d().layer1[0]
    return (f"engine: ResNeXt-50 (32×4d)'s first block is {block.conv1.in_channels} → {block.conv1.out_channels} → "
            f"{block.conv3.out_channels}, a {block.conv3.out_channels // block.conv1.out_channels}:1 ratio; "
            f"the Wide ResNet paper's CIFAR networks use basic blocks, with no bottleneck at all.")


def wide_vs_152():
    wrn = models.wide_resnet28_10().num_parameters()
    return (f"engine: WRN-28-10 has {wrn:,} parameters and takes 32×32 images; ResNet-152 takes 224×224 images. "
            f"Their papers report them on different data sets.")


TOP1_DOCUMENT = {"ResNet-18": 69.8, "ResNet-34": 73.3, "ResNet-50": 76.1, "ResNet-101": 77.4, "ResNet-152": 78.3}
TOP1_PAPER_ERROR = {"ResNet-18": 27.88, "ResNet-34": 24.52, "ResNet-50": 22.85, "ResNet-101": 21.75,
                    "ResNet-152": 21.43}              # Table 2 (ResNet-18) and Table 3 (ResNet-34 B, 50, 101, 152)
TOP1_TORCHVISION = {"ResNet-18": 69.758, "ResNet-34": 73.314, "ResNet-50": 76.130, "ResNet-101": 77.374,
                    "ResNet-152": 78.312}


def top1_sources():
    cells = "; ".join(f"{name}: document {TOP1_DOCUMENT[name]}%, paper {fmt(round(100 - err, 2))}%, "
                      f"torchvision {TOP1_TORCHVISION[name]}%" for name, err in TOP1_PAPER_ERROR.items())
    return f"top-1 accuracy = 100 − the paper's top-1 error: {cells}."


# ----------------------------------------------------------------------------- the errata
CONCEPTS = (
    Concept(
        "shortcut-type-c", "6",
        "The original paper used type-C shortcuts (a projection on every shortcut).",
        "wrong",
        f"{PAPER}, Sec. 3.3 and Table 3: A, B and C are compared on ResNet-34 (top-1 error, 10-crop: 25.03, 24.52, "
        "24.19%); the paper finds projections not essential and does not use C in the rest of the paper. Its "
        "deeper ImageNet nets (ResNet-50/101/152, Sec. 4.1) use B, projections only where the shape changes; "
        "its CIFAR nets (Sec. 4.2) use A.",
        shortcut_parameters, "tutorials/11_shortcuts_and_preactivation.py"),
    Concept(
        "shortcut-type-a", "6",
        "Type A pads with zero channels and downsamples with pooling, and is rarely used.",
        "wrong",
        f"{PAPER}, Sec. 3.3: option A is the identity with extra zero channels, and where the map shrinks the "
        "shortcut is taken with a stride of 2 (no pooling). Sec. 4.2: every CIFAR-10 network of the paper, "
        "ResNet-20 to ResNet-1202, uses option A; Table 3 uses it for ResNet-34 A.",
        shortcut_a_is_subsampling, "tutorials/11_shortcuts_and_preactivation.py"),
    Concept(
        "code-expansion-attribute", "7",
        "The complete PyTorch implementation builds every ResNet of §5.",
        "wrong",
        "The ResNet class reads block.expansion, which only the bottleneck class defines.",
        f"{TORCH_RUN}. §7's own test (ResNet-50) runs and prints the output shape and 25,557,032 parameters, "
        "as the document shows; resnet18() and resnet34() stop in _make_stage with AttributeError: type object "
        "'BasicBlock' has no attribute 'expansion'. The engine's BasicBlock has expansion = 1.",
        "tutorials/06_architectures.py"),
    Concept(
        "code-undefined-names", "9, 12",
        "The training snippets run as shown.",
        "wrong",
        "They use names no block of the document defines or imports.",
        f"{TORCH_RUN}. §9's initialisation needs `model`, `BasicBlock` and `BottleneckBlock` from §7 (it runs "
        "after them); §9's schedule stops at NameError: name 'optim' is not defined (no block imports "
        "torch.optim before it), and calls train_epoch(), defined nowhere. §9's augmentation and §12's training "
        "example import torchvision (not installed here; §12 also downloads CIFAR-10), so they were not run; "
        "§12 uses train_transform from §9, which crops 32×32 CIFAR images to 224×224.",
        ""),
    Concept(
        "code-expansion-comment", "7",
        "In the bottleneck class, expansion = 4 means output channels = in_channels × 4.",
        "wrong",
        "The class's own code makes the output out_channels × 4 (conv3 has out_channels * expansion filters).",
        lambda: (f"engine: Bottleneck(256, 64), the later blocks of ResNet-50's first stage (in_channels 256, "
                 f"out_channels 64), outputs {Bottleneck(256, 64).conv3.out_channels} channels = 64 × 4, not "
                 f"256 × 4 = 1,024."),
        "tutorials/04_bottleneck.py"),
    Concept(
        "squeeze-and-excite", "3.5",
        "The bottleneck's reduce-process-expand design is the \"Squeeze and Excite\" pattern.",
        "wrong",
        "Squeeze-and-Excitation (Hu et al., 2018) is another block: global average pooling (squeeze), two fully "
        f"connected layers and a sigmoid (excitation) that rescale each channel. {PAPER}, Sec. 4.1 and Fig. 5, "
        "call the 1×1-3×3-1×1 design a bottleneck.",
        lambda: ("engine: Bottleneck(256, 64) is made of " + ", ".join(
            n for n, _ in Bottleneck(256, 64).named_children()) + f"; on 56×56×256 it outputs "
            f"{'×'.join(map(str, summarize(Bottleneck(256, 64), (256, 56, 56)).output_shape[1:]))} (C×H×W): no "
            f"pooling, no gate."),
        "tutorials/04_bottleneck.py"),
    Concept(
        "degradation-numbers", "overview",
        "Before ResNets, a 20-layer network reached 78% training and 75% test accuracy, a 56-layer one 68% and 65%.",
        "unsupported",
        f"No source is given. {PAPER}, Fig. 1 (plain 20- and 56-layer nets on CIFAR-10), shows the degradation "
        "with errors on an axis that ends at 20%: both nets stay above 80% accuracy, training and test. The "
        "document's accuracies are not the paper's.",
        "no engine figure: tutorial 01 measures plain-20 against plain-56 (and the ResNets) with several seeds.",
        "tutorials/01_degradation.py"),
    Concept(
        "vanishing-gradients", "1, 4",
        "Deep plain networks degrade because their gradients vanish (a product of per-layer weights below 1).",
        "wrong",
        f"{PAPER}, Sec. 4.1: the plain nets are trained with BatchNorm, which keeps forward signals at non-zero "
        "variance, and the authors checked that backward gradients have healthy norms; they conclude the "
        "degradation is unlikely to be caused by vanishing gradients and conjecture slow convergence instead.",
        "no single engine figure: tutorial 05 measures every layer's gradient norm in plain and residual "
        "networks of 20, 56 and 110 layers, with and without BatchNorm.",
        "tutorials/05_gradient_flow.py"),
    Concept(
        "gradient-plus-one", "8, 12",
        "Through a residual block ∂y/∂x = ∂F/∂x + 1, so the gradient never vanishes.",
        "unsupported",
        "True for y = F(x) + x, but the document's block (like the paper's, Fig. 2) ends with a ReLU after the "
        "addition, so the skip's derivative is 0 wherever F(x) + x < 0. A clean identity path needs the "
        "addition to be the block's last step, as in the pre-activation block (He et al., 2016b, \"Identity "
        "Mappings in Deep Residual Networks\", Eq. 4-5).",
        post_activation_gradient, "tutorials/11_shortcuts_and_preactivation.py"),
    Concept(
        "bottleneck-17x-faster", "3.5, 12",
        "The bottleneck is 17× faster, and without it ResNet-50 would be too slow to train.",
        "unsupported",
        "17× is the ratio of multiply-accumulates (16.9×), stated as a speed; nothing is timed. Time also "
        f"depends on memory traffic and on how well small matrix products use the hardware. {PAPER}, Sec. 4.1 "
        "and Table 1, give complexity in FLOPs only (3.6 billion for ResNet-34, 3.8 billion for ResNet-50).",
        measured_speedup, "tutorials/13_bottleneck_speed_and_weight_decay.py"),
    Concept(
        "bottleneck-comparison", "3, 3.5",
        "The bottleneck replaces a basic block of the same width, with 17× fewer weights and operations.",
        "misattributed",
        f"{PAPER}, Sec. 4.1 and Fig. 5, pair a basic block on 64 channels with a bottleneck on 256 channels, "
        "designs of similar time complexity; a basic block on 256 channels is never proposed. The 17× compares "
        "blocks the paper does not set side by side.",
        similar_complexity, "tutorials/04_bottleneck.py"),
    Concept(
        "expansion-factor-tested", "3.5",
        "The 4× expansion was found empirically optimal (2×, 4×, 8× tested) and is standard in every ResNet variant.",
        "unsupported",
        f"{PAPER}, Sec. 4.1, use a 4× expansion (Fig. 5, Table 1) and report no test of 2× or 8×. Variants differ: "
        "ResNeXt (Xie et al., 2017) makes the middle twice as wide.",
        expansion_ratios, "tutorials/08_variants.py"),
    Concept(
        "top1-column", "5",
        "The architecture table's Top-1 accuracies (69.8% … 78.3%), given without a source.",
        "misattributed",
        f"They are not the paper's: {PAPER} report top-1 errors on ImageNet validation with 10-crop testing "
        "(Table 2 for ResNet-18, Table 3 for the others). The column equals, rounded, the single-crop accuracies "
        "torchvision publishes for its own pretrained weights.",
        top1_sources, "tutorials/06_architectures.py"),
    Concept(
        "ensemble-of-paths", "8",
        "A ResNet acts like an ensemble of its 2ⁿ paths.",
        "misattributed",
        "The view is not in the ResNet paper; it comes from Veit, Wilber and Belongie (2016), \"Residual Networks "
        "Behave Like Ensembles of Relatively Shallow Networks\", who tested it by deleting blocks.",
        "the path count itself is checked by verify-doc (s8-paths-*); tutorial 09 repeats the lesion study.",
        "tutorials/09_ensemble_view.py"),
    Concept(
        "l2-pulls-to-identity", "8",
        "L2 regularisation naturally pushes the residual F(x) toward zero, which is why the identity is easy to learn.",
        "unsupported",
        f"{PAPER}, Sec. 3.1, argue only that if the identity were optimal, driving the residual to zero would be "
        "easier than fitting an identity with stacked non-linear layers; weight decay plays no part in that "
        "argument.",
        "measured, not assumed, in tutorial 13 (weight decay and the last BN's γ of each branch).",
        "tutorials/13_bottleneck_speed_and_weight_decay.py"),
    Concept(
        "zero-init-origin", "9",
        "Zero-initialising each block's last BN is part of the standard ResNet training recipe.",
        "misattributed",
        f"{PAPER}, Sec. 3.4, initialise the weights as in He et al. (2015) and say nothing of zero γ. Zeroing the "
        "last BN γ comes from Goyal et al. (2017), \"Accurate, Large Minibatch SGD\", Sec. 5.1.",
        "verify-doc checks what it does (s9-zero-init-*: F(x) = 0 exactly at the start).",
        "tutorials/02_skip_connections.py"),
    Concept(
        "lr-schedule", "9",
        "The standard ResNet schedule: 90 epochs, lr 0.1 divided by 10 at epochs 30, 60 and 80.",
        "unsupported",
        f"{PAPER}, Sec. 3.4 (ImageNet): lr 0.1, divided by 10 when the error plateaus, up to 60×10⁴ iterations "
        "of batch 256, weight decay 1e-4, momentum 0.9. Sec. 4.2 (CIFAR-10): lr 0.1, divided by 10 at 32k and "
        "48k iterations, stopped at 64k, batch 128; ResNet-110 first warms up at lr 0.01 until the training error "
        "is below 80% (about 400 iterations).",
        "verify-doc checks the schedule the code produces (s9-lr-*), not its provenance; tutorial 01 studies the "
        "warm-up.",
        "tutorials/07_training_recipe.py"),
    Concept(
        "augmentation", "9",
        "ResNet training uses random resized crops and colour jitter (brightness, contrast, saturation 0.4).",
        "unsupported",
        f"{PAPER}, Sec. 3.4: the shorter side is resized to a random length in [256, 480], a 224×224 crop is "
        "taken (or its mirror image), the per-pixel mean is subtracted and the standard colour augmentation of "
        "Krizhevsky et al. (2012) is used. Sec. 4.2 (CIFAR-10): 4 pixels of padding, a random 32×32 crop and "
        "a horizontal flip.",
        "not an engine question; tutorial 07 removes augmentation to see what it is worth.",
        "tutorials/07_training_recipe.py"),
    Concept(
        "cifar-with-imagenet-resnet", "12",
        "The complete CIFAR-10 example trains ResNet-50 on 224×224 crops.",
        "unsupported",
        f"{PAPER}, Sec. 4.2: on CIFAR-10 the paper uses networks of 6n + 2 layers on 32×32 inputs, three stages "
        "of 16, 32 and 64 channels, type-A shortcuts; the ImageNet ResNet-50 is never trained on CIFAR.",
        cifar_network, "tutorials/12_deeper_is_better.py"),
    Concept(
        "deeper-is-better", "overview, 12",
        "Deeper is better: skip connections remove the degradation, so 1000+ layer networks are more accurate.",
        "wrong",
        f"{PAPER}, Sec. 4.2 and Table 6: ResNet-1202 trains (training error below 0.1%, like ResNet-110) but "
        "tests at 7.93% error, worse than ResNet-110's 6.43%; the authors attribute it to overfitting a small "
        "data set with a 19.4M-parameter model.",
        "tutorial 12 trains ResNet-20 to ResNet-110 with several seeds and describes ResNet-1202.",
        "tutorials/12_deeper_is_better.py"),
    Concept(
        "gradient-clipping", "11",
        "Use gradient clipping when training networks deeper than 150 layers.",
        "unsupported",
        f"No source is given, and the paper does not clip: {PAPER} train ResNet-152 (Sec. 4.1) and ResNet-1202 "
        "(Sec. 4.2) with SGD and BatchNorm, the 110- and 1202-layer nets with a short warm-up.",
        "not measured by the engine.",
        "tutorials/12_deeper_is_better.py"),
    Concept(
        "resnext50-vs-101", "10",
        "ResNeXt-50 is better than ResNet-101 with fewer parameters.",
        "unsupported",
        "The parameter half holds (verify-doc s10-resnext50-params). The accuracy half depends on the source: "
        "the ResNeXt paper (Xie et al., 2017, Table 3) compares ResNeXt-50 with ResNet-50 at equal complexity, "
        "and its ResNet-101 row is about as accurate (22.0% against 22.2% top-1 error); torchvision's "
        "pretrained weights put ResNeXt-50 ahead (77.6% against 77.4%).",
        "verify-doc s10-resnext50-params counts the parameters.",
        "tutorials/08_variants.py"),
    Concept(
        "wrn-vs-resnet152", "10",
        "Wide ResNet-28-10 is often better than ResNet-152.",
        "unsupported",
        "WRN-28-10 (Zagoruyko and Komodakis, 2016) is a CIFAR network; its paper compares it with CIFAR ResNets "
        "(such as the 1001-layer pre-activation ResNet), never with the ImageNet ResNet-152.",
        wide_vs_152, "tutorials/08_variants.py"),
)


def concepts():
    """Every conceptual erratum, checked for a known verdict and a unique id."""
    ids = [c.id for c in CONCEPTS]
    for c in CONCEPTS:
        if c.verdict not in VERDICTS:
            raise ValueError(f"conceptual erratum {c.id!r} has verdict {c.verdict!r}; use one of {VERDICTS}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"two conceptual errata share an id: {sorted(i for i in ids if ids.count(i) > 1)}")
    return list(CONCEPTS)


def evidence_from_engine():
    """The ids whose evidence the engine computes when the page is generated."""
    return [c.id for c in CONCEPTS if callable(c.evidence)]


