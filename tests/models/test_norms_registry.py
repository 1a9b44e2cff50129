"""Every registered norm states every fact normlab needs of it, and each fact is what its layer does.

A norm is its module and its registry entry (models/norms/registry.py); nothing else in normlab names
a norm. So an entry that leaves a fact out, or states one its layer contradicts, fails here, naming
the norm and the fact: grouped (checked against the layer's output under two group counts), the
options and their ranges (against the builder's keywords), the extents of its training statistics
(against the batch-statistics flag), and the module types that hold its parameters.
"""
import dataclasses
import inspect

import pytest
import torch

from models.norms import make_norm, norm_names, uses_batch_statistics
from models.norms.registry import FACTS, NORMS, missing_facts, norm_spec

pytestmark = pytest.mark.parametrize("name", norm_names())


def test_every_fact_is_stated(name):
    assert missing_facts(NORMS[name]) == [], f"norm {name!r} lacks {missing_facts(NORMS[name])} in its registry entry"


def test_an_entry_without_a_fact_is_refused_naming_it(name, monkeypatch):
    entry = NORMS[name]
    for fact in FACTS:
        monkeypatch.setitem(NORMS, name, dataclasses.replace(entry, **{fact: None}))
        assert missing_facts(NORMS[name]) == [fact]
        with pytest.raises(ValueError, match=rf"^norm '{name}' is registered without {fact} "):
            norm_spec(name)


def test_options_are_the_builder_keywords_each_with_a_range(name):
    spec = NORMS[name]
    keywords = set(inspect.signature(spec.builder).parameters) - {"num_channels", "groups"}
    assert set(spec.options) == keywords, (
        f"norm {name!r}: keywords without a range {sorted(keywords - set(spec.options))}, "
        f"ranges of no keyword {sorted(set(spec.options) - keywords)}")
    for option, allowed in spec.options.items():
        default = inspect.signature(spec.builder).parameters[option].default
        assert allowed.valid(default), f"norm {name!r}: the default {option}={default!r} is outside its range"


def test_grouped_is_whether_the_group_count_changes_the_output(name):
    torch.manual_seed(0)
    x = torch.randn(4, 8, 3, 3)
    two, four = (make_norm(name, 8, groups=g).train()(x) for g in (2, 4))
    changes = not torch.allclose(two, four)
    assert NORMS[name].grouped == changes, f"norm {name!r}: grouped={NORMS[name].grouped}, but 2 and 4 groups give " \
                                           f"{'different' if changes else 'the same'} outputs"


def test_statistics_need_the_batch_exactly_when_the_norm_uses_batch_statistics(name):
    layer = make_norm(name, 8, groups=2)
    unknown_batch = NORMS[name].statistics(layer, (None, 8, 3, 3))
    assert uses_batch_statistics(name) == any(count is None for _, count in unknown_batch), \
        f"norm {name!r}: its statistics {unknown_batch} disagree with batch_statistics={uses_batch_statistics(name)}"
    known_batch = NORMS[name].statistics(layer, (4, 8, 3, 3))
    assert all(isinstance(count, int) and count >= 2 for _, count in known_batch), f"norm {name!r}: {known_batch}"
    normalizes = not isinstance(layer, torch.nn.Identity)
    assert bool(known_batch) == normalizes, f"norm {name!r}: {'no' if normalizes else 'some'} statistics stated"


def test_module_types_hold_every_parameter(name):
    layer = make_norm(name, 8, groups=2)
    holders = [m for m in layer.modules() if next(m.parameters(recurse=False), None) is not None]
    outside = [type(m).__name__ for m in holders if not isinstance(m, NORMS[name].module_types)]
    assert outside == [], f"norm {name!r}: parameters in {outside}, not in its module_types"
