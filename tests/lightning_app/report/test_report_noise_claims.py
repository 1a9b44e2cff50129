"""The output-noise claims' run selection and the train/work rules at their bounds (the claims' rows by
hand are in test_report_paper_claims.py)."""
import math

from lightning_app.report.claims import SeedResult
from lightning_app.report.noise_claims import TRAINED_LOSS, noise_claims, outcome, trains, works
from lightning_app.report.runs import load_runs
from tests.lightning_app.report.test_report_paper_claims import by_statement, run


def noise(std, granularity="element"):
    return {"norm_options": {"noise_mean": 0.0, "noise_std": std, "noise_granularity": granularity}}


def test_the_noisy_run_of_a_norm_is_the_first_by_path_with_a_positive_std(tmp_path):
    """Runs given in reverse order: the choice is by run directory, not by the order the runs come in; a run
    with noise_std 0 is a clean run even with a granularity, and a std below 1 is noise."""
    root = tmp_path / "runs"
    run(root, "noise", "bn", 0, model=noise(0.0), loss=0.3)  # std 0: not noisy (and its directory sorts first)
    run(root, "noise", "bn", 0, model=noise(0.5), loss=0.8)
    run(root, "noise", "bn", 0, model=noise(0.6), loss=1.2)
    runs, _ = load_runs(root)
    assert min(runs, key=lambda r: str(r.path)).config["model"]["norm_options"]["noise_std"] == 0.0
    noisy = [r for r in runs if r.config["model"]["norm_options"]["noise_std"] > 0]
    first_noisy = min(noisy, key=lambda r: str(r.path))
    # by hand: loss 0.8 trains (≤ ln 10 / 2 = 1.15), loss 1.2 does not
    expected = {0.5: SeedResult("loss 0.80", True), 0.6: SeedResult("loss 1.20", False)}
    claim = by_statement(noise_claims(list(reversed(runs))), "BN avoids the vanishing")
    assert claim.seeds == {0: expected[first_noisy.config["model"]["norm_options"]["noise_std"]]}


def test_trains_and_works_at_their_bounds(tmp_path):
    root = tmp_path / "runs"
    run(root, "a5", "gbgn", 0, loss=TRAINED_LOSS, best=0.5)  # loss exactly ln 10 / 2, accuracy exactly 50 %
    run(root, "a5", "bgn", 0)  # no train/loss logged
    run(root, "a5", "none", 0, best=None)  # neither loss nor accuracy
    runs, _ = load_runs(root)
    at_bounds, without_loss, without_either = sorted(runs, key=lambda r: ["gbgn", "bgn", "none"].index(
        r.config["model"]["norm"]))
    assert trains(at_bounds) and works(at_bounds)
    assert math.isclose(TRAINED_LOSS, math.log(10) / 2)
    assert outcome(without_loss) == "loss n/a, 80.00 %" and not trains(without_loss)
    assert outcome(without_either) == "loss n/a, n/a"


def test_a_noisy_run_without_an_accuracy_validates_at_zero(tmp_path):
    root = tmp_path / "runs"
    run(root, "noise", "bn", 0, model=noise(1.0), best=None, loss=0.5)  # e.g. no validation ran
    run(root, "noise", "gn", 0, model=noise(1.0), best=0.1, loss=0.5)
    claim = by_statement(noise_claims(load_runs(root)[0]), "BN validates better than GN")
    assert claim.seeds == {0: SeedResult("bn 0.00 / gn 10.00", False)}
