"""A claim of a paper, the number normlab measured for it in each seed, and its verdict.

A claim is checked once per seed (each seed is a complete repetition of the experiment): its number is
computed from that seed's runs and a stated condition says whether the claim holds there. The verdict
summarises the seeds, so it says at once whether the finding survives a change of seed:

- **held**: the condition holds in every seed that could be measured;
- **partly**: it holds in some seeds and not in others;
- **not held**: it holds in none;
- **not measured**: no seed has the runs the claim needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

HELD, PARTLY, NOT_HELD, NOT_MEASURED = "held", "partly", "not held", "not measured"


@dataclass(frozen=True)
class SeedResult:
    number: str  # the measured number(s), formatted for the table
    holds: bool


@dataclass(frozen=True)
class Claim:
    source: str  # where the paper says it: "Figure 6", "Table 1"
    statement: str  # the claim, in the paper's words as far as possible
    measure: str  # what the number is (its definition, short)
    condition: str  # when the number counts as the claim holding
    seeds: dict = field(default_factory=dict)  # seed -> SeedResult

    @property
    def verdict(self) -> str:
        if not self.seeds:
            return NOT_MEASURED
        held = sum(result.holds for result in self.seeds.values())
        return HELD if held == len(self.seeds) else NOT_HELD if held == 0 else PARTLY

    @property
    def verdict_text(self) -> str:
        held = sum(result.holds for result in self.seeds.values())
        return self.verdict if not self.seeds else f"{self.verdict} ({held}/{len(self.seeds)} seeds)"


def claims_markdown(claims: list[Claim]) -> str:
    """One row per claim: source, claim, number and condition, the number per seed, verdict."""
    lines = ["| source | claim | number (condition) | per seed | verdict |", "|---|---|---|---|---|"]
    for claim in claims:
        per_seed = "; ".join(f"s{seed}: {result.number}{'' if result.holds else ' ✗'}"
                             for seed, result in claim.seeds.items()) or "—"
        lines.append(f"| {claim.source} | {claim.statement} | {claim.measure} ({claim.condition}) | {per_seed} |"
                     f" **{claim.verdict_text}** |")
    return "\n".join(lines)
