#!/usr/bin/env python3
"""Prints docs/results.md's per-image tables from a `p2l eval` run's records.

For each task in the records: per method (or variant label), how the restoration's PSNR
compares with the naive reconstruction's on the same image — images better by more than 1 dB,
better at all, median / worst / best difference — and the median seconds per image.

    scripts/results_tables.py runs/results/emoji/results.jsonl [--task sr]
    scripts/results_tables.py runs/results/emoji/results.jsonl --glance

--glance prints instead the mean PSNR of every method on every task (the best in bold).

Shard files (results.shard-*.jsonl) may be given together; only finished jobs ("status": "ok")
count, and a job recorded twice (a resumed shard) counts once.
"""
import argparse
import json
import statistics


def load(paths):
    records = {}
    for path in paths:
        with open(path) as f:
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


def signed(x):
    return f"{x:+.2f}".replace("-", "−")


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


def glance_table(records):
    tasks = ordered(r["task"] for r in records)
    labels = ordered(r["label"] for r in records)

    def mean(task, label, key):
        values = [r[key] for r in records if r["task"] == task and r["label"] == label]
        return statistics.mean(values) if values else None

    lines = ["| task | naive | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for task in tasks:
        psnr = [mean(task, label, "psnr") for label in labels]
        best = max(v for v in psnr if v is not None)
        cells = ["" if v is None else f"**{v:.2f}**" if v == best else f"{v:.2f}" for v in psnr]
        naive = statistics.mean(r["naive_psnr"] for r in records if r["task"] == task)
        lines.append(f"| {task} | {naive:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", help="results.jsonl files of one run")
    parser.add_argument("--task", help="only this task")
    parser.add_argument("--glance", action="store_true", help="mean PSNR, every method and task")
    args = parser.parse_args()
    records = load(args.records)
    if args.glance:
        print(glance_table(records))
        return
    for task in ordered(r["task"] for r in records):
        if args.task and task != args.task:
            continue
        print(f"### {task}: PSNR minus the naive reconstruction's, per image\n")
        print(task_table(records, task) + "\n")


if __name__ == "__main__":
    main()
