#!/usr/bin/env python3
"""Prints docs/results.md's per-image tables from a `p2l eval` run's records.

For each task in the records: per method (or variant label), how the restoration's PSNR
compares with the naive reconstruction's on the same image — images better by more than 1 dB,
better at all, median / worst / best difference — and the median seconds per image.

    scripts/results_tables.py runs/results/emoji/results.jsonl [--task sr]
    scripts/results_tables.py runs/results/emoji/results.jsonl --glance

--glance prints instead the mean PSNR of every method on every task (the best in bold); --metric
ssim the mean SSIM. --labels picks and orders the columns, so one table can join two runs on the
same images (P2L's ablation: the main run's p2l column beside the ablation run's variants):

    scripts/results_tables.py runs/results/emoji/results.jsonl \
        runs/results/emoji-ablation/results.jsonl --glance \
        --labels p2l-prompt-only,p2l-projection-only,p2l

--versus OTHER.jsonl prints the glance table with each cell's difference from the same task and
method in the other run (the cross-style run against the main one; the images differ, so this
compares means, not images).

--against LABEL prints per task how LABEL fares against every other column image by image: on how
many images it has the higher PSNR, and the median and mean of its PSNR minus theirs. --pair A:B
(repeatable) prints the same three numbers for label A minus label B, a column per pair and a
row per task (an ablation's effect of one component with the other held fixed).

--interval adds 95 % intervals: the glance table's cells become mean ± half-width (Student's t
over the images), and --pair's cells the wins and the paired mean difference ± its half-width,
so a difference whose interval holds 0 reads as one the images cannot tell apart.

--ceiling AUTOENCODE.json (from `p2l autoencode --json`) compares each column with the
autoencoder's own reconstruction PSNR of the same images, per task: on how many images the
method stays below it, the mean of both, and their correlation over the images.

Shard files (results.shard-*.jsonl) may be given together; only finished jobs ("status": "ok")
count, and a job recorded twice (a resumed shard) counts once. Records compressed as committed
under docs/ (results.jsonl.gz) are read as they are.
"""
import argparse
import gzip
import json
import math
import statistics


def load(paths):
    records = {}
    for path in paths:
        with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                if r.get("status") == "ok":
                    records[(r["task"], r["label"], r["image"])] = r
    return list(records.values())


def ordered(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def signed(x, digits=2):
    return f"{x:+.{digits}f}".replace("-", "−")


def t_quantile_975(dof):
    """Student's t 0.975 quantile for `dof` degrees of freedom: the density integrated by
    Simpson's rule, the quantile found by bisection (no SciPy on the development machine)."""
    log_norm = (math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi))

    def density(x):
        return math.exp(log_norm - (dof + 1) / 2 * math.log1p(x * x / dof))

    def cdf_above_zero(t, n=2000):
        h = t / n
        inner = sum((4 if k % 2 else 2) * density(k * h) for k in range(1, n))
        return (density(0) + inner + density(t)) * h / 3

    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf_above_zero(mid) < 0.475 else (lo, mid)
    return (lo + hi) / 2


def half_width(values):
    """Half-width of the 95 % interval of the mean of `values` (Student's t)."""
    n = len(values)
    return t_quantile_975(n - 1) * statistics.stdev(values) / math.sqrt(n) if n > 1 else math.inf


def task_table(records, task):
    labels = ordered(r["label"] for r in records if r["task"] == task)
    lines = [
        "| method | images better by > 1 dB | better at all | median | worst | best | median s / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        rs = [r for r in records if r["task"] == task and r["label"] == label]
        gains = sorted(r["psnr"] - r["naive_psnr"] for r in rs)
        seconds = statistics.median(r["seconds"] for r in rs)
        lines.append(
            f"| {label} | {sum(g > 1 for g in gains)} / {len(gains)} | {sum(g > 0 for g in gains)} "
            f"| {signed(statistics.median(gains))} | {signed(gains[0])} | {signed(gains[-1])} "
            f"| {seconds:.1f} |")
    return "\n".join(lines)


def paired(records, task, a, b, interval=False):
    """Image by image, label a's PSNR minus label b's: images where a is higher, median, mean
    (with its 95 % interval when asked)."""
    def psnr_by_image(name):
        return {r["image"]: r["psnr"] for r in records if r["task"] == task and r["label"] == name}

    mine, theirs = psnr_by_image(a), psnr_by_image(b)
    diffs = [mine[i] - theirs[i] for i in mine if i in theirs]
    if not diffs:
        return None
    wins = f"{sum(d > 0 for d in diffs)} / {len(diffs)}"
    if interval:
        return (wins, f"{signed(statistics.mean(diffs))} ± {half_width(diffs):.2f}")
    return (wins, signed(statistics.median(diffs)), signed(statistics.mean(diffs)))


def against_table(records, task, label):
    lines = [f"| {label} against | images where {label} is better | median difference | mean difference |",
             "|---|---|---|---|"]
    for other in ordered(r["label"] for r in records if r["task"] == task):
        stats = paired(records, task, label, other) if other != label else None
        if stats:
            lines.append(f"| {other} | " + " | ".join(stats) + " |")
    return "\n".join(lines)


def pairs_table(records, pairs, interval=False):
    lines = ["| task | " + " | ".join(f"{a} − {b}" for a, b in pairs) + " |",
             "|---|" + "---|" * len(pairs)]
    for task in ordered(r["task"] for r in records):
        cells = [paired(records, task, a, b, interval) for a, b in pairs]
        lines.append(f"| {task} | " + " | ".join(", ".join(c) if c else "" for c in cells) + " |")
    return "\n".join(lines)


def ceiling_table(records, task, ceiling):
    lines = ["| method | images below D(E(x)) | mean PSNR | mean D(E(x)) PSNR | correlation |",
             "|---|---|---|---|---|"]
    for label in ordered(r["label"] for r in records if r["task"] == task):
        rs = [r for r in records if r["task"] == task and r["label"] == label and r["image"] in ceiling]
        if len(rs) < 2:
            continue
        mine, bound = [r["psnr"] for r in rs], [ceiling[r["image"]] for r in rs]
        lines.append(f"| {label} | {sum(m < b for m, b in zip(mine, bound))} / {len(rs)} "
                     f"| {statistics.mean(mine):.2f} | {statistics.mean(bound):.2f} "
                     f"| {statistics.correlation(mine, bound):.2f} |")
    return "\n".join(lines)


def values_of(records, task, label, key):
    """`key` of label's records of task; label None: of the task's images, each once (the naive
    reconstruction's values, which every record of an image carries)."""
    values = {(r["label"], r["image"]) if label else r["image"]: r[key] for r in records
              if r["task"] == task and (label is None or r["label"] == label)}
    return list(values.values())


def mean(records, task, label, key):
    values = values_of(records, task, label, key)
    return statistics.mean(values) if values else None


def glance_table(records, labels, metric="psnr", versus=None, interval=False):
    """Mean `metric` per task (rows) and label (columns), the best of a row in bold; with `versus`
    (another run's records) each cell also shows its difference from that run's mean, with
    `interval` the 95 % interval's half-width."""
    digits = 2 if metric == "psnr" else 3

    def cell(value, other, best=None, spread=None):
        text = f"{value:.{digits}f}"
        if value == best:
            text = f"**{text}**"
        if spread is not None:
            text += f" ± {spread:.{digits}f}"
        if other is not None:
            text += f" ({signed(value - other, digits)})"
        return text

    def spread(task, label, key):
        return half_width(values_of(records, task, label, key)) if interval else None

    def other(task, label, key):
        return mean(versus, task, label, key) if versus is not None else None

    naive_key = "naive_" + metric
    lines = ["| task | naive | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for task in ordered(r["task"] for r in records):
        values = [mean(records, task, label, metric) for label in labels]
        best = max(v for v in values if v is not None)
        cells = ["" if v is None else
                 cell(v, other(task, label, metric), best, spread(task, label, metric))
                 for label, v in zip(labels, values)]
        # The naive reconstruction has no records of its own: every record carries it.
        naive = cell(mean(records, task, None, naive_key), other(task, None, naive_key), None,
                     spread(task, None, naive_key))
        lines.append(f"| {task} | {naive} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", help="results.jsonl files of one run")
    parser.add_argument("--task", help="only this task")
    parser.add_argument("--glance", action="store_true", help="mean PSNR, every method and task")
    parser.add_argument("--metric", choices=["psnr", "ssim"], default="psnr", help="for --glance")
    parser.add_argument("--labels", help="comma-separated columns, in order (default: all)")
    parser.add_argument("--against", metavar="LABEL", help="LABEL against every other, per image")
    parser.add_argument("--pair", action="append", metavar="A:B", help="A minus B, per image")
    parser.add_argument("--ceiling", metavar="JSON", help="`p2l autoencode --json` of the images")
    parser.add_argument("--versus", help="another run's results.jsonl: cells show the difference")
    parser.add_argument("--interval", action="store_true",
                        help="95 %% intervals of the means (--glance) and of the differences (--pair)")
    args = parser.parse_args()
    records = load(args.records)

    def require(names, option=""):
        unknown = ordered(name for name in names if name not in {r["label"] for r in records})
        if unknown:
            parser.error(f"{option}no finished records labelled {', '.join(unknown)}")

    if args.labels:
        labels = args.labels.split(",")
        require(labels)
        records = [r for r in records if r["label"] in labels]
    else:
        labels = ordered(r["label"] for r in records)
    if args.against:
        require([args.against])
    if args.pair:
        if any(":" not in p for p in args.pair):
            parser.error("--pair takes two labels as A:B")
        pairs = [tuple(p.split(":", 1)) for p in args.pair]
        require([x for p in pairs for x in p], "--pair: ")
        print(pairs_table(records, pairs, args.interval))
        return
    if args.glance or args.versus:
        versus = load([args.versus]) if args.versus else None
        print(glance_table(records, labels, args.metric, versus, args.interval))
        return
    if args.ceiling:
        with open(args.ceiling) as f:
            ceiling = {row["image"]: row["psnr"] for row in json.load(f)["images"]}
    for task in ordered(r["task"] for r in records):
        if args.task and task != args.task:
            continue
        if args.ceiling:
            print(f"### {task}: against the autoencoder's reconstruction of the same images\n")
            print(ceiling_table(records, task, ceiling) + "\n")
            continue
        if args.against:
            print(f"### {task}: {args.against} against the others, image by image\n")
            print(against_table(records, task, args.against) + "\n")
            continue
        print(f"### {task}: PSNR minus the naive reconstruction's, per image\n")
        print(task_table(records, task) + "\n")


if __name__ == "__main__":
    main()
