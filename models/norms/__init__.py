"""Every normalization layer of the study, built by name through one factory.

    make_norm("gn_plus_gn_first", 64, groups=32)  ->  nn.Module

Backbones never construct a norm layer themselves: they receive `make_norm` (partially applied) so
that every layer of the study works in every backbone.

Files, one concept each: factory.py (registry, `make_norm`, one-line errors), basic.py (none, bn,
gn, ln, in), gn_plus.py (the three GNPlus layers), moments.py (per-(n, c) moments and the fused
multiply-add GNPlus runs on), candidates.py (gn_then_bn, bgn, gbgn: the GN paper's A.5),
noise.py (output noise, §3.2.1), seed_arithmetic.py (the seed code's formulas, as an option).
"""
from models.norms.factory import norm_names, is_norm_module, make_norm, register_norm
from models.norms import basic  # noqa: F401  (registers none, bn, gn, ln, in first: the order names are listed in)
from models.norms.gn_plus import GNPlus, GNPlusBNFirst, GNPlusGNFirst, GNPlusParallel
from models.norms.candidates import BatchGroupNorm, GNThenBN
from models.norms.noise import OutputNoise

__all__ = [
    "BatchGroupNorm",
    "GNThenBN",
    "OutputNoise",
    "norm_names",
    "GNPlus",
    "GNPlusBNFirst",
    "GNPlusGNFirst",
    "GNPlusParallel",
    "is_norm_module",
    "make_norm",
    "register_norm",
]
