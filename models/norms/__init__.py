"""Every normalization layer of the study, built by name through one factory.

    make_norm("gn_plus_gn_first", 64, groups=32)  ->  nn.Module

Backbones never construct a norm layer themselves: they receive `make_norm` (partially applied) so
that every layer of the study works in every backbone.

Files, one concept each: registry.py (the ordered map of names and every fact of each norm: builder,
grouped, batch statistics, statistics' extents, options and their ranges, module types), factory.py
(`make_norm`), checks.py (option ranges, group counts, one-value statistics: one-line errors),
extents.py (what one training statistic covers), statistics.py (the layers checked against a
backbone's shapes), basic.py (none, bn, gn, ln, in), gn_plus.py (the three GNPlus layers), moments.py (per-(n, c)
moments and the fused multiply-add GNPlus runs on), candidates.py (gn_then_bn, bgn, gbgn: the GN
paper's A.5), noise.py (output noise, §3.2.1), reference_arithmetic.py (the GN paper's published
code's formulas, as an option).
"""
from models.norms.candidates import BatchGroupNorm, GNThenBN
from models.norms.factory import check_norm_options, make_norm
from models.norms.gn_plus import GNPlus, GNPlusBNFirst, GNPlusGNFirst, GNPlusParallel
from models.norms.noise import OutputNoise
from models.norms.registry import is_grouped, is_norm_module, norm_names, uses_batch_statistics

__all__ = [
    "BatchGroupNorm",
    "GNThenBN",
    "OutputNoise",
    "GNPlus",
    "GNPlusBNFirst",
    "GNPlusGNFirst",
    "GNPlusParallel",
    "check_norm_options",
    "is_grouped",
    "is_norm_module",
    "make_norm",
    "norm_names",
    "uses_batch_statistics",
]
