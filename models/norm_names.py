"""The names of the norm layers, in the registry's order (none, bn, gn, ...), without importing torch.

`models/norms/registry.py` is the registry (each name's builder and facts) and imports torch, which
takes seconds; the commands that never build a layer (`lightning report` orders its columns and
colours by these names) read them here. tests/models/test_norms_factory.py checks that the two agree.
"""
NORM_NAMES = ("none", "bn", "gn", "ln", "in", "gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first",
              "gn_then_bn", "bgn", "gbgn")
