#!/usr/bin/env bash
# A small grid of pmpd-train variants on one label file, run side by side, and the selection the
# pmpd-hypertune objective makes (lowest mean best-epoch validation loss over the pairs):
#   scripts/train_grid.sh DATA.h5 LADDER OUT "name:flags" ["name:flags" ...]
# e.g. scripts/train_grid.sh gen-data-excess_nll.h5 5,4,3 grid \
#        "len:--prompt-length-input" "plain:"
# COMMON (environment): flags every variant gets (tolerances, split, device...). JOBS: variants at
# once (default: all). Writes OUT/<name>/ (pmpd-train --out, with train.json and train.log),
# OUT/grid.json (every variant's per-pair metrics, the selection) and OUT/best -> <name>.
# A variant that fails is reported and left out of the selection; the script fails when all do.
# The validation loss is plain cross-entropy on the file's labels (pmpd-hypertune's objective), so
# compare variants that share the labels (tolerance, candidate steps); class weighting pays for its
# macro-F1 in this loss, so weighted variants rarely win it (grid.json has every score).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${BUILD_DIR:-$root/build}/cli}
COMMON=${COMMON:-}
[ $# -ge 4 ] || { sed -n 2,11p "$0"; exit 2; }
data=$1 ladder=$2 out=$3
shift 3
JOBS=${JOBS:-$#}
mkdir -p "$out"
names=()
for v in "$@"; do  # every name checked before anything runs: a directory name of its own
  name=${v%%:*}
  [[ "$v" == *:* && "$name" =~ ^[A-Za-z0-9_+-]+$ && "$name" != best && "$name" != grid ]] ||
    { echo "train_grid: '$v' is not name:flags (name: letters, digits, _ + -; not best or grid)" >&2; exit 2; }
  for seen in "${names[@]}"; do
    [ "$seen" != "$name" ] || { echo "train_grid: variant name '$name' given twice" >&2; exit 2; }
  done
  names+=("$name")
done
running=0
for v in "$@"; do
  name=${v%%:*} flags=${v#*:}
  # shellcheck disable=SC2086  # the flags are words
  "$BIN/pmpd-train" --data "$data" --precisions "$ladder" --out "$out/$name" $COMMON $flags --json \
    >"$out/$name.json" 2>"$out/$name.log" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
python3 - "$out" "${names[@]}" <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
variants = []
for name in names:
    lines = [l for l in open(os.path.join(out, name + ".json")).read().splitlines() if l.startswith("{")]
    if not lines:
        err = open(os.path.join(out, name + ".log")).read().strip().splitlines()
        print(f"train_grid: {name} failed: {err[-1] if err else 'no output'}", file=sys.stderr)
        variants.append({"variant": name, "error": err[-1] if err else "no output"})
        continue
    summary = json.loads(lines[-1])
    pairs = {p["pair"]: p["metrics"] for p in summary["pairs"]}
    keys = ["best_epoch", "val_loss", "val_accuracy", "majority_val_accuracy", "val_macro_f1",
            "majority_val_macro_f1", "test_accuracy", "majority_test_accuracy", "test_macro_f1",
            "majority_test_macro_f1"]
    pairs = {k: {m: v[m] for m in keys if m in v} for k, v in pairs.items()}
    mean = sum(p["val_loss"] for p in pairs.values()) / len(pairs)
    variants.append({"variant": name, "mean_val_loss": round(mean, 4), "pairs": pairs})
    print(f"{name:>16}: mean val loss {mean:.4f}  " + "  ".join(
        f"{k}: val acc {p['val_accuracy']:.3f} (maj {p['majority_val_accuracy']:.3f}) "
        f"test acc {p.get('test_accuracy', float('nan')):.3f} (maj {p.get('majority_test_accuracy', float('nan')):.3f}) "
        f"test F1 {p.get('test_macro_f1', float('nan')):.3f}" for k, p in pairs.items()))
ok = [v for v in variants if "error" not in v]
if not ok:
    sys.exit("train_grid: every variant failed")
best = min(ok, key=lambda v: v["mean_val_loss"])["variant"]
json.dump({"selected_by": "lowest mean best-epoch validation loss over the pairs", "best": best,
           "variants": variants}, open(os.path.join(out, "grid.json"), "w"), indent=1)
link = os.path.join(out, "best")
if os.path.lexists(link): os.remove(link)
os.symlink(best, link)
print(f"train_grid: best {best} -> {link}")
PY
