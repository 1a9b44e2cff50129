"""The claims of the course report and of the GN paper's output-noise and appendix-A.5 experiments: each
number per seed against a hand computation on generated runs, and the report's claims section."""
import zlib

from lightning_app.report.claims import HELD, NOT_HELD, PARTLY, SeedResult
from lightning_app.report.command import write_report
from lightning_app.report.course_claims import GROUPS, course_claims
from lightning_app.report.noise_claims import candidate_claims, noise_claims
from lightning_app.report.runs import load_runs
from tests.lightning_app.report.report_runs import write_run


def run(root, experiment, norm, seed, bs=128, lr=1e-3, model=None, loss=None, train_acc=None, grad=None,
        vanish=False, status="completed", best=0.8, test=0.8):
    """One run whose metrics hold constant values: every logged train/loss = `loss`, the last epoch's
    train/acc = `train_acc`, grad/norm = `grad`, an explosion/kind row of 4 when `vanish`."""
    rows = []
    for step in range(0, 40, 10):
        row = {"epoch": step // 20, "step": step}
        row.update({"train/loss": loss} if loss is not None else {})
        row.update({"grad/norm": grad} if grad is not None else {})
        rows.append(row)
    if train_acc is not None:
        rows += [{"epoch": 0, "step": 19, "train/acc": 0.5}, {"epoch": 1, "step": 39, "train/acc": train_acc}]
    if vanish:
        rows.append({"epoch": 1, "step": 30, "explosion/kind": 4, "explosion/step": 30})
    groups = (model or {}).get("norm_groups", 4)
    name = f"{norm}_g{groups}_bs{bs}_lr{lr:g}_{zlib.crc32(str(model).encode())}_s{seed}"
    write_run(root, norm, bs, seed, status, best, lr=lr, rows=rows, run_name=name, experiment=experiment,
              model={"norm_groups": groups, **(model or {})}, summary={"best_val_acc": best, "test_acc": test})


def course_root(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        for bs in (10, 50, 100):
            run(root, "course", "none", seed, bs, 1e-3, loss=1.0, train_acc=0.88, grad=1.0, test=0.80)
            run(root, "course", "none", seed, bs, 1e-4, loss=1.5)
            # bn: 0.8 × none's loss at batch 50 and 100; at batch 10 0.98 × (seed 1: 0.9 ×) and 1.6 / 1.5
            fast = 0.8 if bs > 10 else (0.98 if seed == 0 else 0.9)
            run(root, "course", "bn", seed, bs, 1e-3, loss=fast, train_acc=0.90)
            run(root, "course", "bn", seed, bs, 1e-4, loss=1.2 if bs > 10 else 1.6)
        # gn at batch 50, lr 1e-3: training accuracy below none (88) and bn (90); test within 1 point of
        # none's 80 in seed 0, 1.2 above it at G = 16 in seed 1
        for groups, acc, test in ((1, 0.85, 0.805), (4, 0.855, 0.79), (16, 0.853, 0.805 if seed == 0 else 0.812)):
            run(root, "course", "gn", seed, 50, 1e-3, model={"norm_groups": groups}, loss=1.1, train_acc=acc,
                grad=2.0, test=test)
    return root


def by_statement(claims, fragment):
    """The one claim whose statement starts with `fragment` or, failing that, contains it."""
    (found,) = [c for c in claims if c.statement.startswith(fragment)] or [c for c in claims if fragment in c.statement]
    return found


def test_course_report_claims_by_hand(tmp_path):
    runs, _ = load_runs(course_root(tmp_path))
    claims = course_claims(runs)
    faster = by_statement(claims, "BN trains faster")
    assert faster.seeds[0] == SeedResult("0.80 / 0.80 / 0.80 / 0.80", True) and faster.verdict == HELD
    slower = by_statement(claims, "lr 1e-4 converges slower")
    # none: 1.5 / 1.0 at each batch; bn: 1.6 / 0.98 = 1.63 at batch 10, 1.2 / 0.8 = 1.5 at 50 and 100
    assert slower.seeds[0] == SeedResult("1.50 / 1.50 / 1.50 / 1.63 / 1.50 / 1.50", True)
    no_gain = by_statement(claims, "batch < 20")
    # seed 0: 0.98 and 1.6 / 1.5 = 1.07, both ≥ 0.95; seed 1: 0.90 < 0.95
    assert no_gain.seeds[0] == SeedResult("0.98 / 1.07", True) and no_gain.seeds[1].holds is False
    assert no_gain.verdict == PARTLY
    below = by_statement(claims, "GN's training accuracy is below")
    assert below.seeds[1] == SeedResult("-5.00 / -4.50 / -4.70", True)
    assert by_statement(claims, "hardly changes").seeds[0] == SeedResult("0.50", True)
    same = by_statement(claims, "test accuracy is about the same")
    assert same.seeds[0] == SeedResult("+0.50 / -1.00 / +0.50", True)
    assert same.seeds[1] == SeedResult("+0.50 / -1.00 / +1.20", False)
    assert by_statement(claims, "gradient's L2 norm").seeds[0] == SeedResult("2.00", True)


COURSE_STATEMENTS = ("BN trains faster", "lr 1e-4 converges slower", "batch < 20", "GN's training accuracy is below",
                     "hardly changes", "test accuracy is about the same", "gradient's L2 norm")


def course_grid(root, seed, none_loss, bn_loss, gn, none_grad=1.0, none_test=0.80, leave_out=()):
    """The course grid for one seed: `none_loss`/`bn_loss` map (bs, lr) to the constant training loss; none's
    and bn's training accuracies are 88 and 91 % at batch 50 (60 % at the others); none's test accuracy
    `none_test` and gradient norm `none_grad` are those at batch 50 and lr 1e-3 (50 % and 4.0 at the others);
    `gn` lists (groups, train acc, test acc, grad norm); runs named in `leave_out` ((norm, bs, lr) or ("gn",
    groups)) are not written."""
    for bs in (10, 50, 100):
        for lr in (1e-3, 1e-4):
            if ("none", bs, lr) not in leave_out:
                run(root, "course", "none", seed, bs, lr, loss=none_loss[(bs, lr)], train_acc=0.88 if bs == 50 else 0.6,
                    grad=none_grad if (bs, lr) == (50, 1e-3) else 4.0,
                    test=none_test if (bs, lr) == (50, 1e-3) or none_test is None else 0.5)
            if ("bn", bs, lr) not in leave_out:
                run(root, "course", "bn", seed, bs, lr, loss=bn_loss[(bs, lr)], train_acc=0.91 if bs == 50 else 0.6)
    for groups, acc, test, grad in gn:
        if ("gn", groups) not in leave_out:
            run(root, "course", "gn", seed, 50, 1e-3, model={"norm_groups": groups}, loss=1.0, train_acc=acc,
                grad=grad, test=test)


def every(value):
    return {(bs, lr): value for bs in (10, 50, 100) for lr in (1e-3, 1e-4)}


def test_course_report_claims_at_their_bounds(tmp_path):
    """Seed 0 sits on every condition's bound (a ratio of exactly 1 or 0.95, a gap of exactly 0 or ±1 point),
    seed 1 is past it on the other side: each number by hand, and which side of the bound counts."""
    root = tmp_path / "runs"
    # seed 0: bn's loss equals none's (1.0) except at batch 10, where it is 0.95 × none's; bn's best training
    # accuracy 91 → (bs 50, lr 1e-3) bn is written with 0.91, and gn reaches 91 exactly at G = 1
    course_grid(root, 0, every(1.0), {**every(1.0), (10, 1e-3): 0.95, (10, 1e-4): 0.95},
                gn=[(1, 0.91, 0.81, 1.0), (4, 0.905, 0.79, 1.0), (16, 0.90, 0.80, 1.0)])
    # seed 1: none 1.0 at lr 1e-3 and 1.25 at 1e-4; bn 0.75 / 1.0 at batch 50 and 100, 0.9 / 1.125 at batch 10;
    # both × 1.5 at batch 50, so that a ratio reading another batch size's run changes
    course_grid(root, 1, {(bs, lr): (1.0 if lr == 1e-3 else 1.25) * (1.5 if bs == 50 else 1) for bs, lr in every(0)},
                {(bs, lr): ((0.75 if lr == 1e-3 else 1.0) if bs > 10 else (0.9 if lr == 1e-3 else 1.125))
                 * (1.5 if bs == 50 else 1) for bs, lr in every(0)},
                gn=[(1, 0.86, 0.788, 2.5), (4, 0.88, 0.80, 2.5), (16, 0.872, 0.812, 3.0)], none_grad=2.0)
    for seed in (0, 1):  # runs no claim compares, each sorting before those it could be mistaken for: a norm
        for bs, lr in every(0):  # the claims do not read ("bgn_…" < "bn_…"), gn at batch 10 and at lr 1e-4
            run(root, "course", "bgn", seed, bs, lr, loss=5.0, train_acc=0.5, grad=9.0, test=0.5)
        for groups in GROUPS:
            for bs, lr in ((10, 1e-3), (50, 1e-4)):
                run(root, "course", "gn", seed, bs, lr, model={"norm_groups": groups}, loss=5.0, train_acc=0.5,
                    grad=9.0, test=0.5)
    runs, _ = load_runs(root)
    claims = course_claims(runs)
    assert [by_statement(claims, s) for s in COURSE_STATEMENTS] == claims
    assert [(c.source, c.measure, c.condition) for c in claims] == [
        ("course report §III", "mean training loss bn/none at (bs 50, 1e-3), (50, 1e-4), (100, 1e-3), (100, 1e-4)",
         "all < 1"),
        ("course report §III", "mean training loss 1e-4/1e-3, none then bn, at bs 10, 50, 100", "all > 1"),
        ("course report §III", "mean training loss bn/none at bs 10, lr 1e-3 and 1e-4", "all ≥ 0.95"),
        ("course report §III", "last-epoch training accuracy of gn (G = 1, 4, 16) − the better of none and bn, bs 50, "
         "lr 1e-3 (points)", "all < 0"),
        ("course report §III", "max − min over G = 1, 4, 16 of the last-epoch training accuracy (points)", "≤ 1"),
        ("course report §III", "test accuracy of gn (G = 1, 4, 16) − none's, bs 50, lr 1e-3 (points)",
         "all within ± 1"),
        ("course report §III", "median grad/norm gn (G = 4) / none, bs 50, lr 1e-3", "> 1")]
    expected = {
        "BN trains faster": ("1.00 / 1.00 / 1.00 / 1.00", False, "0.75 / 0.80 / 0.75 / 0.80", True),
        # none at batch 10, 50, 100, then bn: 0.95 / 0.95, 1.0 / 1.0, ... (seed 1: 1.125 / 0.9 = 1.0 / 0.75 = 1.33)
        "lr 1e-4 converges slower": ("1.00 / 1.00 / 1.00 / 1.00 / 1.00 / 1.00", False,
                                     "1.25 / 1.25 / 1.25 / 1.25 / 1.33 / 1.33", True),
        "batch < 20": ("0.95 / 0.95", True, "0.90 / 0.90", False),
        # gn's accuracy − max(none 88, bn 91)
        "GN's training accuracy is below": ("+0.00 / -0.50 / -1.00", False, "-5.00 / -3.00 / -3.80", True),
        "hardly changes": ("1.00", True, "2.00", False),
        # gn's test accuracy − none's 80: exactly ±1 holds; −1.2 does not, though it is below +1
        "test accuracy is about the same": ("+1.00 / -1.00 / +0.00", True, "-1.20 / +0.00 / +1.20", False),
        "gradient's L2 norm": ("1.00", False, "1.25", True),
    }
    for statement, (number_0, holds_0, number_1, holds_1) in expected.items():
        assert by_statement(claims, statement).seeds == {0: SeedResult(number_0, holds_0),
                                                          1: SeedResult(number_1, holds_1)}, statement


def test_course_report_claims_leave_out_the_seeds_that_lack_their_runs(tmp_path):
    """A claim counts a seed only when every run it compares exists and has its number; none of the
    claims needing one in either seed, no claim at all."""
    root = tmp_path / "runs"
    gn = [(1, 0.85, 0.805, 2.0), (4, 0.855, 0.79, 2.0), (16, 0.853, 0.805, 2.0)]
    losses = {(bs, lr): 1.0 if lr == 1e-3 else 1.5 for bs, lr in every(0)}
    # seed 0: no bn at (100, 1e-4); none's gradient norm is 0 (a ratio over it is no number); no test accuracy
    course_grid(root, 0, losses, every(0.8), gn, none_grad=0.0, none_test=None, leave_out={("bn", 100, 1e-4)})
    # seed 1: no gn with 16 groups, and none at batch 10 only at lr 1e-3
    course_grid(root, 1, losses, every(0.8), gn, leave_out={("gn", 16), ("none", 10, 1e-4)})
    runs, _ = load_runs(root)
    claims = course_claims(runs)
    seeds_of = {s: set(by_statement(claims, s).seeds) for s in COURSE_STATEMENTS
                if any(s in c.statement for c in claims)}
    # the 1e-4 comparisons need none at batch 10 (seed 1) and bn at batch 100 (seed 0); the test accuracies
    # need none's (seed 0) and G = 16 (seed 1)
    assert seeds_of == {"BN trains faster": {1}, "batch < 20": {0}, "GN's training accuracy is below": {0},
                        "hardly changes": {0}, "gradient's L2 norm": {1}}
    assert len(claims) == len(seeds_of)


def noise_and_candidate_root(tmp_path):
    root = tmp_path / "runs"
    noise = {"noise_mean": 1e-3, "noise_std": 1.001, "noise_granularity": "element"}
    for seed in (0, 1):
        run(root, "noise", "bn", seed, best=0.85, loss=0.5)
        # bn with noise trains (loss 0.8 ≤ ln 10 / 2 = 1.15) in seed 0; stays at 1.2 in seed 1; validates 40 %
        run(root, "noise", "bn", seed, model={"norm_options": noise}, best=0.40, loss=0.8 if seed == 0 else 1.2)
        # gn with noise: vanished at loss 2.30 in seed 0; trains (loss 0.9, 70 %) in seed 1
        run(root, "noise", "gn", seed, model={"norm_options": noise}, best=0.10 if seed == 0 else 0.70,
            vanish=seed == 0, loss=2.3 if seed == 0 else 0.9)
        run(root, "noise", "gn_plus_gn_first", seed, model={"norm_options": noise}, best=0.86, loss=0.7)
        run(root, "a5", "gbgn", seed, bs=128, lr=0.01, best=0.80, loss=0.5)
        run(root, "a5", "gbgn", seed, bs=4, lr=1e-3, best=0.60, status="exploded", loss=0.5)  # exploded: fails
        run(root, "a5", "bgn", seed, bs=128, lr=0.01, best=0.45, loss=0.5)  # below 50 %: does not work
        run(root, "a5", "bgn", seed, bs=4, lr=1e-3, best=0.10, vanish=True, loss=2.3)
    return root


def test_noise_and_candidate_claims_by_hand(tmp_path):
    runs, _ = load_runs(noise_and_candidate_root(tmp_path))
    claims = noise_claims([r for r in runs if r.experiment == "noise"])
    vanishes = by_statement(claims, "GN's gradients vanish")
    assert vanishes.seeds[0] == SeedResult("loss 2.30, vanished", True)
    assert vanishes.seeds[1] == SeedResult("loss 0.90", False) and vanishes.verdict == PARTLY
    bn_trains = by_statement(claims, "BN avoids the vanishing")
    assert bn_trains.seeds == {0: SeedResult("loss 0.80", True), 1: SeedResult("loss 1.20", False)}
    bn_better = by_statement(claims, "BN validates better than GN")
    # seed 0: bn 40 > gn 10 and bn trains; seed 1: gn 70 > bn 40
    assert bn_better.seeds == {0: SeedResult("bn 40.00 / gn 10.00", True), 1: SeedResult("bn 40.00 / gn 70.00", False)}
    best = by_statement(claims, "validates best")
    assert best.seeds[1] == SeedResult("gn_plus_gn_first 86.00 / bn 40.00 / gn 70.00", True)

    a5 = candidate_claims([r for r in runs if r.experiment == "a5"])
    assert by_statement(a5, "GBGN works in setting A").seeds[0] == SeedResult("loss 0.50, 80.00 %", True)
    assert by_statement(a5, "GBGN fails in setting B").seeds[0] == SeedResult("loss 0.50, 60.00 %, exploded", True)
    bgn_a = by_statement(a5, "BGN works in setting A")
    assert bgn_a.seeds[0] == SeedResult("loss 0.50, 45.00 %", False) and bgn_a.verdict == NOT_HELD
    assert by_statement(a5, "BGN fails in setting B").seeds[1] == SeedResult("loss 2.30, 10.00 %, vanished", True)


def test_noise_and_candidate_claims_are_stated_whole_per_granularity(tmp_path):
    """Source, statement, measure and condition of each claim as the report prints them, one set of noise
    claims per granularity found (a group-noise gn run alone: only the claim it can answer)."""
    root = noise_and_candidate_root(tmp_path)
    run(root, "noise", "gn", 0, model={"norm_options": {"noise_std": 0.5, "noise_granularity": "group"}}, loss=2.3)
    runs, _ = load_runs(root)
    trains = "final training loss, vanish check (trains: completed, no vanish, loss ≤ 1.15)"
    stated = [(c.source, c.statement, c.measure, c.condition) for c in noise_claims(
        [r for r in runs if r.experiment == "noise"])]
    assert stated == [
        ("Figure 5", "with output noise (element) GN's gradients vanish: it does not train", "gn: " + trains,
         "does not train"),
        ("Figure 5", "with output noise (element) BN avoids the vanishing: it trains", "bn: " + trains, "trains"),
        ("Figure 5", "with output noise (element) BN validates better than GN", "best val. acc. (%)",
         "bn higher, bn trains"),
        ("Figure 11", "with output noise (element) GNPlusGNFirst trains and validates best",
         "best val. acc. (%) of each norm with this noise", "gn_plus_gn_first highest, it trains"),
        ("Figure 5", "with output noise (group) GN's gradients vanish: it does not train", "gn: " + trains,
         "does not train")]
    works = "(works: completed, no vanish, loss ≤ 1.15, ≥ 50 %)"
    measure = "final training loss, best val. acc., vanish check, status"
    assert [(c.source, c.statement, c.measure, c.condition) for c in candidate_claims(runs)] == [
        ("Appendix A.5", "GBGN works in setting A (lr 0.01, batch 128)", measure, f"works {works}"),
        ("Appendix A.5", "GBGN fails in setting B (lr 0.001, batch 4)", measure, f"fails {works}"),
        ("Appendix A.5", "BGN works in setting A (lr 0.01, batch 128)", measure, f"works {works}"),
        ("Appendix A.5", "BGN fails in setting B (lr 0.001, batch 4)", measure, f"fails {works}")]


def test_report_lists_each_experiments_claims(tmp_path, drawn):
    runs, _ = load_runs(course_root(tmp_path))
    report, _ = write_report(runs, tmp_path / "report", source="runs")
    text = report.read_text()
    assert "## Claims of the papers" in text and "### course" in text
    row = next(line for line in text.splitlines() if "GN's training accuracy is below" in line)
    assert "s0: -5.00 / -4.50 / -4.70; s1: -5.00 / -4.50 / -4.70" in row and "**held (2/2 seeds)**" in row
