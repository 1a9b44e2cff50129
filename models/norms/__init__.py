"""Every normalization layer of the study, built by name through one factory.

    make_norm("gn_plus_gn_first", 64, groups=32)  ->  nn.Module

Backbones never construct a norm layer themselves: they receive `make_norm` (partially applied) so
that every layer of the study works in every backbone.
"""
from models.norms.factory import norm_names, is_norm_module, make_norm, register_norm
from models.norms import basic  # noqa: F401  (registers none, bn, gn first: the order names are listed in)
from models.norms.gn_plus import GNPlus, GNPlusBNFirst, GNPlusGNFirst, GNPlusParallel

__all__ = [
    "norm_names",
    "GNPlus",
    "GNPlusBNFirst",
    "GNPlusGNFirst",
    "GNPlusParallel",
    "is_norm_module",
    "make_norm",
    "register_norm",
]
