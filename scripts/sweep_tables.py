#!/usr/bin/env python3
"""Prints the sweep tables of docs/solvers.md from the runs scripts/sweep_defaults.sh wrote
(docs/sweeps/<name>.json): per method, PSNR per step size and task (mean over the images,
min–max in brackets) and the mean over the five tasks; then P2L's own hyperparameters."""
import json
import os
import statistics as st

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "sweeps")
TASKS = ["sr", "gauss-blur", "motion-blur", "box-inpaint", "random-inpaint"]


def runs(name):
    p = os.path.join(D, name + ".json")
    return json.load(open(p))["runs"] if os.path.exists(p) else []


def cells(rs, tasks):
    """Per task: the "mean (min–max)" text ('–' without runs); and the tasks' means."""
    texts, means = [], []
    for t in tasks:
        v = [r["psnr"] for r in rs if r["task"] == t]
        if not v:
            texts.append("–")
            continue
        means.append(st.mean(v))
        texts.append(f"{st.mean(v):.2f} ({min(v):.2f}–{max(v):.2f})")
    return texts, means


def table(method, axis):
    rs = runs(method) + runs(method + "-2.5") + runs(method + "-gauss-random")
    out = [f"| {axis} | " + " | ".join(TASKS) + " | mean of the 5 tasks |",
           "|---|" + "---|" * (len(TASKS) + 1)]
    best = None
    for p in sorted({r["point"][axis] for r in rs}):
        texts, means = cells([r for r in rs if r["point"][axis] == p], TASKS)
        full = len(means) == len(TASKS)
        avg = st.mean(means)
        if full and (best is None or avg > best[1]):
            best = (p, avg)
        out.append(f"| {p:g} | " + " | ".join(texts) +
                   (f" | {avg:.2f} |" if full else f" | ({len(means)} tasks) |"))
    return "\n".join(out), best


def p2l_row(label, rs):
    texts, means = cells(rs, ("sr", "box-inpaint"))
    print(f"| {label} | " + " | ".join(texts) + f" | {st.mean(means):.2f} |")


for method, axis in [("p2l", "rho"), ("ldps", "rho"), ("gml-dps", "rho"), ("psld", "omega"),
                     ("resample", "rho")]:
    text, best = table(method, axis)
    print(f"`{method}` — best {axis} = {best[0]:g} ({best[1]:.2f} dB)\n\n{text}\n")

# P2L's own knobs ran at the chosen ρ: its row of the main sweep is the baseline.
extras = os.path.join(D, "p2l-lambda.json")
base_rho = json.load(open(extras))["defaults"]["rho"] if os.path.exists(extras) else 1.6
print(f"| P2L setting (ρ = {base_rho:g}) | sr | box-inpaint | mean |\n|---|---|---|---|")
p2l_row("defaults (λ = 1, lr 1e-2, K = 1, γ = 10)",
        [r for r in runs("p2l") if r["point"]["rho"] == base_rho])
for name in ["lambda", "prompt-lr", "prompt-iters", "projection-every"]:
    rs = runs("p2l-" + name)
    for key in sorted({json.dumps(r["point"], sort_keys=True) for r in rs}):
        point = json.loads(key)
        point.pop("steps", None)
        label = ", ".join(k + " = " + ("inf" if v is None else format(v, "g"))
                          for k, v in point.items())
        p2l_row(label, [r for r in rs if json.dumps(r["point"], sort_keys=True) == key])
