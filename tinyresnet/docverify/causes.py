"""Why the document's numbers are wrong: every mismatch row of ``verify-doc`` traced to one root cause.

The 22 wrong rows come from a handful of mistakes: one grid filled in by a pattern gives twelve
wrong values, one confusion of widths gives four. Each ``RootCause`` names the rows it explains
(by claim id), says in a paragraph what went wrong, and points to the tutorial that works
through it. ``group(claims)`` checks that every mismatch has exactly one cause, so a new wrong
row without an explanation fails the tests instead of slipping into the errata unexplained.

An ``evidence`` function, where given, recomputes the cause's key figure from the claims' own
engine values (so the paragraph cannot drift from what the engine measures).
"""

from dataclasses import dataclass, field

import numpy as np

from . import document as doc
from .claim import fmt


@dataclass(frozen=True)
class RootCause:
    """One mistake of the document and the mismatch rows it produces.

    ``name`` is a short slug, ``title`` a one-line summary, ``explanation`` a paragraph in our own
    words, ``ids`` the claim ids it explains, ``tutorial`` the repository path of the tutorial
    that explores it, ``evidence(by_id)`` an optional sentence computed from the claims.
    """

    name: str
    title: str
    explanation: str
    ids: tuple
    tutorial: str
    evidence: object = field(default=None, compare=False)

    def as_dict(self, by_id=None):
        out = {"name": self.name, "title": self.title, "explanation": self.explanation, "tutorial": self.tutorial,
               "rows": list(self.ids)}
        if by_id is not None and self.evidence is not None:
            out["evidence"] = self.evidence(by_id)
        return out


RGB_IDS = tuple(f"rgb-out-{i}{j}-ch{k}" for k in (0, 1) for i in (1, 2) for j in (0, 1, 2))


def _rgb_evidence(by_id):
    """The printed grid of each output channel is one input channel's grid plus a constant."""
    parts = []
    for k, source in ((0, 0), (1, 1)):
        printed = np.array([[float(v) for v in row.split()] for row in doc.RGB_OUTPUT[k]])
        offset = printed - doc.RGB_IMAGE[source]
        same = np.allclose(offset, offset[0, 0])
        parts.append(f"output channel {k} as printed = input channel {source} + {fmt(round(offset[0, 0], 6))}"
                     + ("" if same else " (not everywhere)"))
    worst = max(RGB_IDS, key=lambda i: abs(by_id[i].value - float(by_id[i].document)))
    c = by_id[worst]
    return (f"{'; '.join(parts)}. The largest gap: {c.claim.split(': ')[1]}, printed {c.document}, "
            f"engine {c.engine}.")


def _dropped_term_evidence(by_id):
    out = []
    for claim_id, (i, j) in (("reduce4-out-00-ch1", (0, 0)), ("reduce4-out-01-ch1", (0, 1))):
        c = by_id[claim_id]
        terms = doc.REDUCTION_FILTERS[1] * doc.REDUCTION_INPUT[:, i, j]
        missing = [k for k, t in enumerate(terms) if abs(c.value - t - float(c.document)) < 1e-9]
        out.append(f"at ({i},{j}) the engine's {c.engine} less channel {missing[0]}'s product "
                   f"{fmt(doc.REDUCTION_FILTERS[1][missing[0]])}×{fmt(doc.REDUCTION_INPUT[missing[0], i, j])} "
                   f"is {c.document}, the printed value" if missing
                   else f"at ({i},{j}) no single product explains {c.document}")
    return "; ".join(out) + "."


def _elided_sum_evidence(by_id):
    c = by_id["bneck-reduce-00-ch1"]
    terms = doc.BOTTLENECK_REDUCE[1] * doc.BOTTLENECK_PIXEL
    return (f"all eight products are positive and add up to {fmt(terms.sum())}, so no choice of terms reaches "
            f"{c.document.split('= ')[-1]}; the engine gives {c.engine}.")


def _width_evidence(by_id):
    rows = [by_id[f"s35-resnet50-stage{s}-widths"] for s in range(1, 5)]
    return "; ".join(f"stage {s}: printed {c.document}, built {c.engine}" for s, c in enumerate(rows, 1)) + "."


def _paths_evidence(by_id):
    c = by_id["s8-paths-resnet50"]
    return f"the engine counts {c.engine} input-to-output paths in ResNet-50's autograd graph."


ROOT_CAUSES = (
    RootCause(
        "rgb-grid-by-pattern",
        "The RGB output grid was continued by a pattern instead of being computed",
        "Only the first row of the 3×3×2 output was worked out (and it is right). The other two rows follow "
        "the first row's step: each printed output grid is one input channel's grid shifted by a constant. "
        "That would be true only if all three input channels grew by the same step. Along a row they do "
        "(+1 each), but down a column the green and blue channels wrap round from 7, 8, 9 to 1, 2, 3, so a "
        "weighted sum of the three channels does not go up by 3 per row. Every value below the first row "
        "of both output channels is wrong.",
        RGB_IDS, "tutorials/03_one_by_one_convolutions.py", _rgb_evidence),
    RootCause(
        "dropped-product",
        "A product left out of a four-term sum",
        "In the 4 → 2 channel example the second filter's sums are short by exactly one of their four "
        "products: the (0,0) value misses the first channel's product, the (0,1) value misses the third "
        "channel's. The first filter's sums (an average) are right.",
        ("reduce4-out-00-ch1", "reduce4-out-01-ch1"), "tutorials/03_one_by_one_convolutions.py",
        _dropped_term_evidence),
    RootCause(
        "elided-sum-not-carried-out",
        "A sum written with \"...\" whose total was never added up",
        "The 8-channel bottleneck's second reduce filter is summed as three products and \"...\". Writing "
        "out the five hidden products and adding all eight gives a smaller number than the one printed, "
        "and since every product is positive no subset of them can give the printed total either: the "
        "figure does not come from these weights and inputs.",
        ("bneck-reduce-00-ch1",), "tutorials/03_one_by_one_convolutions.py", _elided_sum_evidence),
    RootCause(
        "channel-numbering",
        "Channels counted from 0 and from 1 in the same example",
        "The walk-through names output channels ch0 and ch1 (numbered from 0) and then calls the eighth "
        "one ch8, counting from 1. Eight channels numbered from 0 end at ch7; a ch8 would be a ninth.",
        ("bneck-expand-last-channel",), "tutorials/03_one_by_one_convolutions.py"),
    RootCause(
        "bottleneck-width-taken-for-block-width",
        "ResNet-50's bottleneck widths read as its block widths",
        "In ResNet-50 the narrow middle of each block (64, 128, 256, 512 channels) is a quarter of the "
        "block's input and output width (256, 512, 1024, 2048). The \"Why 4×\" progression takes the "
        "narrow widths for the blocks' widths and divides them by 4 again, so every stage comes out 4× too "
        "narrow. The same section then gives the right figures (64 → 64 → 256, 256 → 128 → 512).",
        tuple(f"s35-resnet50-stage{s}-widths" for s in range(1, 5)), "tutorials/06_architectures.py",
        _width_evidence),
    RootCause(
        "layers-counted-as-blocks",
        "The path count uses the number of layers instead of the number of residual blocks",
        "Each residual block doubles the number of routes from input to output (through the branch or "
        "along the skip), so n blocks give 2ⁿ paths. The 50 in ResNet-50 counts weighted layers; the "
        "network has 16 bottleneck blocks (3 + 4 + 6 + 3), hence 2¹⁶ = 65,536 paths, not 2⁵⁰.",
        ("s8-paths-resnet50",), "tutorials/09_ensemble_view.py", _paths_evidence),
    RootCause(
        "last-bn-of-a-bottleneck",
        "The zero-init code zeroes bn2, which is the last BN only of a basic block",
        "The comment says to zero the last BatchNorm of each block, and the code zeroes bn2 for both block "
        "types. A basic block has two BNs, so bn2 is its last; a bottleneck has three, and its last is bn3. "
        "At initialisation the branch still outputs zero either way (bn3 then normalises a zero map), but "
        "the code does not do what its comment says, nor what torchvision's zero_init_residual does (bn3).",
        ("s9-last-bn-bottleneck",), "tutorials/02_skip_connections.py"),
)


def group(claims, causes=ROOT_CAUSES):
    """The mismatches grouped by root cause: [(cause, [claims])], in the order of ``causes``.

    Raises ValueError, naming the rows, if a mismatch has no cause or more than one, or if a cause
    names a row that is not a mismatch (or does not exist).
    """
    by_id = {c.id: c for c in claims}
    owners = {}
    for cause in causes:
        for claim_id in cause.ids:
            owners.setdefault(claim_id, []).append(cause.name)
    wrong = [c for c in claims if not c.match]
    problems = [f"{c.id} ({c.claim!r}) is a mismatch without a root cause: add it to a RootCause in "
                f"tinyresnet/docverify/causes.py" for c in wrong if c.id not in owners]
    problems += [f"{claim_id} belongs to {len(names)} root causes ({', '.join(names)}); keep it in one"
                 for claim_id, names in owners.items() if len(names) > 1]
    problems += [f"root cause {name!r} names {claim_id}, which "
                 + ("is not a claim" if claim_id not in by_id else "matches the document")
                 + "; remove it from the cause"
                 for claim_id, names in owners.items() for name in names
                 if claim_id not in by_id or by_id[claim_id].match]
    if problems:
        raise ValueError("verify-doc root causes are out of date:\n  " + "\n  ".join(problems))
    return [(cause, [by_id[i] for i in cause.ids]) for cause in causes]


def cause_of(claims, causes=ROOT_CAUSES):
    """{claim id: root cause name} for every mismatch."""
    return {c.id: cause.name for cause, rows in group(claims, causes) for c in rows}
