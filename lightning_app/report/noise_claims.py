"""The GN paper's output-noise claims (Gunawan, Yin & Zhang 2022, §3.2.1, Figures 5 and 11) and its
other candidate layers (appendix A.5), as claims with a number per seed and a verdict (`claims.py`).

Output noise (configs/sweeps/output_noise_study.yaml): bn, gn and gn_plus_gn_first with and without
Gaussian noise on every norm output, one claim row per noise granularity found (`element`: the paper's
text, `group`: its code). Candidates (configs/sweeps/candidates_study.yaml): gbgn and bgn in setting A
(lr 0.01, batch 128) and setting B (lr 1e-3, batch 4). The numbers (`run_select.py`):
- **final training loss**: the mean of the last quarter of the logged `train/loss`;
- **best validation accuracy** (summary.json `best_val_acc`, %);
- **vanished**: the explosion detector's vanish check fired (`grad/norm` < 1e-8 for 100 steps in a
  row: an `explosion/kind` row of 4 in metrics.csv), the paper's "gradient vanishing".
A run **trains** when it completed, its gradient never vanished and its final training loss is at most
half of chance's ln 10 = 2.30: the paper's vanishing is a failure to train, and the noise is added in
training only, so validation (without noise) measures something else: how well a network trained with
noise does without it. A candidate layer **works** when it trains and its best validation accuracy is
at least 50 % (chance is 10 %); it **fails** otherwise (exploded, vanished, stuck, or not generalising).
"Validates best/better" compares best validation accuracies of the norms with the same noise.
"""
from __future__ import annotations

from lightning_app.report.claims import Claim, SeedResult
import math

from lightning_app.report.run_select import final_train_loss, percent, pick, seeds, value, vanished
from lightning_app.report.runs import RunRecord

TRAINED_LOSS = math.log(10) / 2  # final training loss at most half of chance's cross-entropy
WORKS_AT = 50.0  # % best validation accuracy; chance is 10 %
SETTINGS = {"A": dict(batch_size=128, lr=0.01), "B": dict(batch_size=4, lr=1e-3)}


def trains(run: RunRecord) -> bool:
    loss = final_train_loss(run)
    return run.status == "completed" and not vanished(run) and loss is not None and loss <= TRAINED_LOSS


def works(run: RunRecord) -> bool:
    accuracy = percent(run, "best_val_acc")
    return trains(run) and accuracy is not None and accuracy >= WORKS_AT


def outcome(run: RunRecord, show_accuracy: bool = True) -> str:
    loss, accuracy = final_train_loss(run), percent(run, "best_val_acc")
    parts = ["loss n/a" if loss is None else f"loss {loss:.2f}"]
    parts += ["n/a" if accuracy is None else f"{accuracy:.2f} %"] if show_accuracy else []
    parts += ["vanished"] if vanished(run) else []
    parts += [run.status] if run.status != "completed" else []
    return ", ".join(parts)


def _per_seed(runs: list[RunRecord], judge) -> dict:
    results = {}
    for seed in seeds(runs):
        result = judge([r for r in runs if r.axis("seed") == seed])
        if result is not None:
            results[seed] = result
    return results


def _noisy(runs, norm, granularity) -> RunRecord | None:
    found = [r for r in runs if value(r, "norm") == norm and (value(r, "noise_std") or 0) > 0
             and value(r, "noise_granularity") == granularity]
    return min(found, key=lambda r: str(r.path)) if found else None


def noise_claims(runs: list[RunRecord]) -> list[Claim]:
    granularities = sorted({value(r, "noise_granularity") for r in runs if (value(r, "noise_std") or 0) > 0} - {None})
    claims = []
    for granularity in granularities:
        def gn_vanishes(seed_runs):
            run = _noisy(seed_runs, "gn", granularity)
            return None if run is None else SeedResult(outcome(run, show_accuracy=False), not trains(run))

        def bn_trains(seed_runs):
            run = _noisy(seed_runs, "bn", granularity)
            return None if run is None else SeedResult(outcome(run, show_accuracy=False), trains(run))

        def validates_best(norm, rivals):
            def judge(seed_runs):
                found = {n: _noisy(seed_runs, n, granularity) for n in (norm, *rivals)}
                if None in found.values():
                    return None
                accuracy = {n: percent(r, "best_val_acc") or 0.0 for n, r in found.items()}
                return SeedResult(" / ".join(f"{n} {a:.2f}" for n, a in accuracy.items()),
                                  max(accuracy, key=accuracy.get) == norm and trains(found[norm]))
            return judge

        noise = f"with output noise ({granularity})"
        loss = f"final training loss, vanish check (trains: completed, no vanish, loss ≤ {TRAINED_LOSS:.2f})"
        for source, statement, measure, condition, judge in (
                ("Figure 5", f"{noise} GN's gradients vanish: it does not train", "gn: " + loss, "does not train",
                 gn_vanishes),
                ("Figure 5", f"{noise} BN avoids the vanishing: it trains", "bn: " + loss, "trains", bn_trains),
                ("Figure 5", f"{noise} BN validates better than GN", "best val. acc. (%)", "bn higher, bn trains",
                 validates_best("bn", ("gn",))),
                ("Figure 11", f"{noise} GNPlusGNFirst trains and validates best", "best val. acc. (%) of each norm with "
                 "this noise", "gn_plus_gn_first highest, it trains", validates_best("gn_plus_gn_first", ("bn", "gn")))):
            results = _per_seed(runs, judge)
            if results:
                claims.append(Claim(source, statement, measure, condition, results))
    return claims


def candidate_claims(runs: list[RunRecord]) -> list[Claim]:
    """GBGN (2 groups of examples) and BGN (32 groups) work in setting A and fail in setting B (A.5)."""
    claims = []
    for norm, name in (("gbgn", "GBGN"), ("bgn", "BGN")):
        for setting, expected in (("A", True), ("B", False)):
            where = SETTINGS[setting]

            def judge(seed_runs, norm=norm, where=where, expected=expected):
                run = pick(seed_runs, norm=norm, **where)
                return None if run is None else SeedResult(outcome(run), works(run) == expected)

            results = _per_seed(runs, judge)
            if results:
                verb = "works" if expected else "fails"
                claims.append(Claim("Appendix A.5", f"{name} {verb} in setting {setting} (lr {where['lr']:g}, batch "
                                    f"{where['batch_size']})", "final training loss, best val. acc., vanish check, status",
                                    f"{'works' if expected else 'fails'} (works: completed, no vanish, loss ≤ "
                                    f"{TRAINED_LOSS:.2f}, ≥ {WORKS_AT:g} %)", results))
    return claims
