#!/usr/bin/env python3
"""Compares evaluation records of one plan run in several precisions (scripts/gpu_check.sh).

    precision_compare.py REFERENCE.jsonl OTHER.jsonl [...]     (or .jsonl.gz, as committed)

For each other file: the jobs finished in both, each method's mean PSNR in both and the
difference, and the largest per-job difference. Prints markdown."""
import gzip
import json
import sys
from collections import defaultdict


def load(path):
    records = {}
    try:
        with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if r.get("status") == "ok":
                    records[(r["image"], r["task"], r["method"])] = r
    except FileNotFoundError:
        pass
    return records


def main(paths):
    reference = load(paths[0])
    print(f"Reference: {paths[0]} ({len(reference)} finished jobs)\n")
    for path in paths[1:]:
        other = load(path)
        common = sorted(set(reference) & set(other))
        print(f"### {path}: {len(common)} jobs finished in both\n")
        print("| method | jobs | PSNR reference | PSNR this | difference (dB) | largest per-job |")
        print("|---|---|---|---|---|---|")
        by_method = defaultdict(list)
        for key in common:
            by_method[key[2]].append((reference[key]["psnr"], other[key]["psnr"]))
        for method, pairs in sorted(by_method.items()):
            a = sum(p[0] for p in pairs) / len(pairs)
            b = sum(p[1] for p in pairs) / len(pairs)
            worst = max(abs(p[1] - p[0]) for p in pairs)
            print(f"| {method} | {len(pairs)} | {a:.3f} | {b:.3f} | {b - a:+.3f} | {worst:.3f} |")
        print()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1:])
