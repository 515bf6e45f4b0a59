#!/usr/bin/env python3
"""How learnable are the switch-point labels of a pmpd-gen-data file? (issue 13, item 4)

For each precision pair it prints:
  - the label classes (earliest candidate step whose Rouge-L is within --tolerance of staying high),
  - how often the outcome is non-monotone (switching at an earlier step keeps quality but a later
    one does not: impossible for a clean property, since a later switch decodes more tokens at the
    high precision), and how often switching at step 0 scores *better* than staying high,
  - the mean Rouge-L of staying high against the reference continuation,
  - a linear probe: 5-fold cross-validated logistic regression on the features the classifier sees
    (the last layer's K and V after prefill, mean-pooled over positions, plus log prompt length),
    as ROC AUC for "switching at step s keeps quality" per step and for rouge_l_high (how close
    staying high is to the reference) above its median. AUC 0.5 is chance.

A classifier cannot beat the majority class by much when the probe sits near 0.5: the label is
then mostly noise of the quality measure, not a property of the prompt the KV cache can show.

With --costs COSTS.jsonl (bench/switch_cost_probe.cc's output for the same file: each switch step's
teacher-forced excess negative log-likelihood of the reference continuation, and the pooled K/V of
the model that computed it) it compares, on the samples the costs cover and with the same features,
how well the probe predicts the Rouge-L label and the likelihood cost: ROC AUC of "cost at step s
below its median" and of "Rouge-L keeps quality at step s", and the Spearman correlation between a
cross-validated ridge prediction of the cost and the cost.

Usage: python3 scripts/analyze_switch_labels.py gen-data.h5 [--tolerance 0.01] [--json out.json]
       [--costs costs.jsonl]
Needs h5py, numpy, scikit-learn (pip install h5py scikit-learn).
"""
import argparse
import sys
import json

import h5py
import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def probe_auc(x, y):
    if y.min() == y.max():
        return float("nan")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000))
    p = cross_val_predict(clf, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                          method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def keeps_quality(rl, rh, tolerance):
    """dataset::SwitchLabel's test per candidate step: Rouge-L rounded to 3 decimals half away from
    zero (std::round; numpy's round goes to even on ties such as 0.0625) at least staying high's,
    rounded the same way, minus the tolerance. [samples, steps] booleans."""
    r3 = lambda v: np.floor(v * 1000.0 + 0.5) / 1000.0
    return r3(rl) >= r3(rh)[:, None] - tolerance - (1e-9 if tolerance > 0 else 0)


def compare_costs(f, steps, path, tolerance):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    rows = [r for r in rows if "kv_mean" in r]
    idx = np.array([r["sample"] for r in rows])
    x = np.array([r["kv_mean"] + [np.log(f["samples/prompt_length"][i])] for r, i in zip(rows, idx)])
    result = {"samples": len(rows), "pairs": {}}
    print(f"teacher-forced costs of {len(rows)} samples (features: the pooled K/V of the model that computed them)")
    for pair in sorted(k for k in rows[0] if k[0].isdigit()):
        g = f["pair_" + pair]
        cost = np.array([r[pair]["excess_nll"] for r in rows])
        rl, rh = g["rouge_l"][:][idx], g["rouge_l_high"][:][idx]
        ok = keeps_quality(rl, rh, tolerance)
        mono = float(np.mean(np.all(np.diff(cost, axis=1) <= 0, axis=1)))
        res = {"cost_monotone_fraction": mono, "median_cost_nats": np.median(cost, 0).round(3).tolist(),
               "auc_cost_below_median": {}, "auc_rouge_keeps_quality": {}, "spearman_ridge_cost": {}}
        for j, s in enumerate(steps):
            res["auc_cost_below_median"][str(s)] = round(probe_auc(x, (cost[:, j] <= np.median(cost[:, j])).astype(int)), 3)
            res["auc_rouge_keeps_quality"][str(s)] = round(probe_auc(x, ok[:, j].astype(int)), 3)
            pred = cross_val_predict(make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 12))), x,
                                     cost[:, j], cv=KFold(5, shuffle=True, random_state=0))
            res["spearman_ridge_cost"][str(s)] = round(float(spearmanr(pred, cost[:, j]).correlation), 3)
        result["pairs"][pair] = res
        print(f"  {pair}: cost non-increasing in the step for {100 * mono:.0f}% of samples; median cost (nats) "
              f"{res['median_cost_nats']}")
        print("    AUC cost below median " + ", ".join(f"{k}: {v}" for k, v in res["auc_cost_below_median"].items()) +
              " | AUC Rouge-L keeps quality " + ", ".join(f"{k}: {v}" for k, v in res["auc_rouge_keeps_quality"].items()) +
              " | Spearman ridge " + ", ".join(f"{k}: {v}" for k, v in res["spearman_ridge_cost"].items()))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--json")
    ap.add_argument("--costs")
    a = ap.parse_args()
    f = h5py.File(a.data, "r")
    metric = f.attrs.get("label_metric", "rouge_l")
    metric = metric.decode() if isinstance(metric, bytes) else metric
    if metric != "rouge_l":
        sys.exit(f"analyze_switch_labels: {a.data} has {metric} labels; this script reads Rouge-L "
                 "label files (pmpd-gen-data --label-metric rouge_l)")
    steps = [int(s) for s in f.attrs["candidate_steps"]]
    out = {"data": a.data, "samples": int(f.attrs["num_samples"]), "candidate_steps": steps,
           "tolerance": a.tolerance, "pairs": {}}
    for name in sorted(k for k in f.keys() if k.startswith("pair_")):
        g = f[name]
        off, pl = g["kv_offsets"][:], g["prompt_lengths"][:]
        rl, rh = g["rouge_l"][:], g["rouge_l_high"][:]
        k, v = g["k"], g["v"]
        x = np.array([np.concatenate([
            k[off[i]:off[i] + pl[i]].astype(np.float32).reshape(pl[i], -1).mean(0),
            v[off[i]:off[i] + pl[i]].astype(np.float32).reshape(pl[i], -1).mean(0),
            [np.log(pl[i])]]) for i in range(len(pl))])
        ok = keeps_quality(rl, rh, a.tolerance)
        labels = np.where(ok.any(1), ok.argmax(1), len(steps))
        nonmono = np.zeros(len(rh), bool)
        for j in range(len(steps)):
            for jj in range(j + 1, len(steps)):
                nonmono |= ok[:, j] & ~ok[:, jj]
        r = {
            "class_counts": np.bincount(labels, minlength=len(steps) + 1).tolist(),
            "majority_fraction": float(np.bincount(labels).max() / len(labels)),
            "keeps_quality_at_step": dict(zip(map(str, steps), ok.mean(0).round(3).tolist())),
            "non_monotone_fraction": float(nonmono.mean()),
            # "better": by more than half a Rouge-L point, so rounding ties do not count.
            "switch_at_0_better_than_high_fraction": float((rl[:, 0] > rh + 0.005).mean()),
            "mean_rouge_l_high": float(rh.mean()),
            "probe_auc_keeps_quality_at_step": {str(s): round(probe_auc(x, ok[:, j].astype(int)), 3)
                                                for j, s in enumerate(steps)},
            "probe_auc_rouge_l_high_above_median": round(probe_auc(x, (rh > np.median(rh)).astype(int)), 3),
        }
        out["pairs"][name[len("pair_"):]] = r
        print(f"{name}: classes {r['class_counts']} (majority {r['majority_fraction']:.2f}); "
              f"non-monotone {100 * r['non_monotone_fraction']:.0f}%; switch at 0 better than high "
              f"{100 * r['switch_at_0_better_than_high_fraction']:.0f}% (by > 0.005); staying high vs the "
              f"reference: mean Rouge-L {r['mean_rouge_l_high']:.3f}")
        print("  keeps quality at step " + ", ".join(f"{s}: {p:.2f}" for s, p in r["keeps_quality_at_step"].items()))
        print("  probe AUC, keeps quality at step " +
              ", ".join(f"{s}: {p:.3f}" for s, p in r["probe_auc_keeps_quality_at_step"].items()) +
              f"; rouge_l_high above median: {r['probe_auc_rouge_l_high_above_median']:.3f}")
    if a.costs:
        out["teacher_forced_costs"] = compare_costs(f, steps, a.costs, a.tolerance)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
