"""Every worked number of the ResNet document, recomputed by the engine: ``tinyresnet verify-doc``.

    >>> from tinyresnet.docverify import verify_document
    >>> claims = verify_document()
    >>> [c.id for c in claims if not c.match][:2]
    ['rgb-out-10-ch0', 'rgb-out-11-ch0']

Each ``Claim`` holds the document's value as printed, the engine's value, whether they agree
to the precision printed, and a note (for a mismatch: the products or counts behind the
correct value). The claims come from one module per part of the document:

    conv1x1        §3.5 the 1×1 convolution examples and the 8-channel bottleneck walk-through
    counts         §3, §3.5 parameter and multiply-accumulate counts of real layers
    residual       §4 the skip addition, §6 projection shortcuts, §8 the gradient through a skip
    architectures  §3.5, §5-§8, §10, §12 whole ResNets: shapes, parameters, layers, paths
    training       §9 zero-initialised last BN, the learning-rate schedule

Around them: ``causes`` traces every mismatch to one root cause (``group``), ``concepts`` lists the
document's conceptual errors with their evidence, ``report`` renders the views (grouped, rows,
JSON, docs/errata.md) and ``worksheet`` turns the claims into a "find the errors" exercise and
grades it.
"""

from . import architectures, conv1x1, counts, residual, training
from .causes import ROOT_CAUSES, RootCause, group
from .claim import Claim, check, parse_number
from .concepts import CONCEPTS, Concept
from .report import errata, grouped, table, to_json

GROUPS = (conv1x1, counts, residual, architectures, training)

__all__ = ["CONCEPTS", "Claim", "Concept", "GROUPS", "ROOT_CAUSES", "RootCause", "check", "errata", "group",
           "grouped", "parse_number", "table", "to_json", "verify_document"]


def section_key(section):
    """"3.5" sorts after "3" and before "12"."""
    return tuple(int(part) for part in section.split("."))


def verify_document():
    """Run every group of claims and return them in the document's order of sections."""
    claims = [c for group in GROUPS for c in group.claims()]
    seen = set()
    for c in claims:
        if c.id in seen:
            raise RuntimeError(f"two claims share the id {c.id!r}; ids must be unique")
        seen.add(c.id)
    return sorted(claims, key=lambda c: section_key(c.section))
