#!/usr/bin/env python3
"""Quality against average bits for the SmolLM2 PMPD run, in the style of the PMPD paper's figure:
per task, Rouge-L of the uniform-precision baselines joined by a line (what PMPD has to beat), the
calibrated static schedule as a point and the learned scheduler as a curve over its switch quantiles
(learned-q0.1..0.9) with its calibrated quantile marked, in green the same for the classifiers
trained on finer switch steps ("eval_finer_candidates", when present); left panel against the data set's
references, right panel against the model's own 8-bit outputs. Reads the "eval_switch_quantile"
run of the results file when present, else the first evaluation ("eval").

Usage: python3 scripts/plot_smollm2_results.py bench/results/smollm2_pmpd.json docs/smollm2_quality_vs_bits.svg
       python3 scripts/plot_smollm2_results.py bench/results/smollm2_pmpd.json docs/smollm2_800_labels.svg --run-800-docs
         (the run_800_docs evaluation: 800 labels, dialogsum at 200 prompts, both classifier sets)
       python3 scripts/plot_smollm2_results.py bench/results/smollm2_pmpd.json docs/smollm2_teacher_forced.svg --teacher-forced
         (run_teacher_forced: classifiers on teacher-forced labels)
No dependencies (writes SVG by hand).
"""
import json
import sys

COLORS = {"uniform": "#555555", "static": "#d62728", "learned": "#1f77b4", "fine": "#2ca02c"}
MARKS = {"learned (tuned, stored labels)": "A", "learned (pmpd-train, stored labels)": "B",
         "learned (pmpd-train, label tolerance 0.01)": "C"}


def curve(rows, key, px, py, color):
    """The learned-q0.1..0.9 sweep as a line with its quantiles, and the calibrated point."""
    s = []
    sweep = sorted((r for r in rows if r["method"].startswith("learned-q")), key=lambda r: r["avg_bits"])
    if not sweep:
        return s
    s.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="' +
             " ".join(f"{px(r['avg_bits']):.1f},{py(r[key]):.1f}" for r in sweep) + '"/>')
    for r in sweep:
        x, y = px(r["avg_bits"]), py(r[key])
        s.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
        s.append(f'<text x="{x + 4:.1f}" y="{y + 12:.1f}" font-size="8" fill="{color}">'
                 f'{r["method"][len("learned-q"):]}</text>')
    return s


def panel(rows, key, x0, y0, w, h, title, fine=None, fine_label="finer"):
    fine = fine or []
    pts = [(r["avg_bits"], r[key]) for r in rows + fine]
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    xmin, xmax = min(xs) - 0.2, max(xs) + 0.2
    ymin, ymax = min(ys) - 1.5, max(ys) + 1.5
    px = lambda x: x0 + 50 + (x - xmin) / (xmax - xmin) * (w - 70)
    py = lambda y: y0 + h - 40 - (y - ymin) / (ymax - ymin) * (h - 70)
    s = [f'<text x="{x0 + 50}" y="{y0 + 18}" font-size="13" font-weight="bold">{title}</text>',
         f'<line x1="{x0 + 50}" y1="{y0 + h - 40}" x2="{x0 + w - 20}" y2="{y0 + h - 40}" stroke="black"/>',
         f'<line x1="{x0 + 50}" y1="{y0 + 30}" x2="{x0 + 50}" y2="{y0 + h - 40}" stroke="black"/>',
         f'<text x="{x0 + w / 2}" y="{y0 + h - 8}" text-anchor="middle" font-size="11">average bits per token</text>']
    for i in range(5):
        xv = xmin + (xmax - xmin) * i / 4
        yv = ymin + (ymax - ymin) * i / 4
        s.append(f'<text x="{px(xv):.1f}" y="{y0 + h - 26}" text-anchor="middle" font-size="10">{xv:.2f}</text>')
        s.append(f'<text x="{x0 + 45}" y="{py(yv) + 3:.1f}" text-anchor="end" font-size="10">{yv:.1f}</text>')
    uni = sorted((r for r in rows if r["method"].startswith("uniform")), key=lambda r: r["avg_bits"])
    s.append('<polyline fill="none" stroke="#888" stroke-dasharray="5,4" points="' +
             " ".join(f"{px(r['avg_bits']):.1f},{py(r[key]):.1f}" for r in uni) + '"/>')
    s += curve(rows, key, px, py, COLORS["learned"])
    s += curve(fine, key, px, py, COLORS["fine"])
    for r in fine:
        if r["method"] == "learned":
            x, y = px(r["avg_bits"]), py(r[key])
            s.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{COLORS["fine"]}"/>')
            s.append(f'<text x="{x - 8:.1f}" y="{y - 8:.1f}" text-anchor="end" font-size="10" '
                     f'fill="{COLORS["fine"]}">{fine_label} ({r[key]:.1f})</text>')
    for r in rows:
        m = r["method"]
        if m.startswith("learned-q"):
            continue
        kind = "uniform" if m.startswith("uniform") else "static" if m == "static" else "learned"
        x, y = px(r["avg_bits"]), py(r[key])
        label = m.replace("uniform-", "") + " bit" if kind == "uniform" else ("static" if kind == "static"
                                                                            else "learned " + MARKS.get(m, "calibrated"))
        if kind == "uniform":
            s.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{COLORS[kind]}"/>')
        else:
            s.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{COLORS[kind]}"/>')
        s.append(f'<text x="{x + 7:.1f}" y="{y - 6:.1f}" font-size="10">{label} ({r[key]:.1f})</text>')
    return s


def two_panel_figure(out_path, tasks, rows_of, fine_label, captions):
    """Per task a row of two panels (against references, against the 8-bit output); rows_of(task)
    gives (rows, fine rows, prompts); captions are the lines under the panels."""
    W, H = 480, 300
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W + 50}" height="{H * len(tasks) + 80}" '
           'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>']
    for i, t in enumerate(tasks):
        rows, fine, n = rows_of(t)
        out += panel(rows, "rouge_l", 0, i * H, W, H, f"{t} ({n} prompts): Rouge-L vs references", fine, fine_label)
        out += panel(rows, "rouge_l_vs_model", W, i * H, W, H, f"{t}: Rouge-L vs the model's 8-bit output", fine,
                     fine_label)
    y = H * len(tasks) + 20
    for j, line in enumerate(captions):
        out.append(f'<text x="20" y="{y + 16 * j}" font-size="11">{line}</text>')
    out.append("</svg>")
    open(out_path, "w").write("\n".join(out) + "\n")


def main_run_800(data, out_path):
    """The run_800_docs figure: blue = classifiers from the 800 labels, green = the 448-label ones."""
    run = data["run_800_docs"]

    def rows_of(t):
        ev = run["eval_n800"][t]
        fine = [r for r in run["eval_c12"][t]["rows"] if r["method"].startswith("learned")]
        return ev["rows"], fine, ev["examples"]

    two_panel_figure(out_path, list(run["eval_n800"].keys()), rows_of, "448 labels", [
        "SmolLM2-135M-Instruct, ladder 5-4-3; squares: uniform baselines "
        "(dashed line); red: PMPD-static (calibrated); blue: PMPD-learned, classifiers from 800 labels",
        "(steps 0, 12, 24, 48), curve over switch quantiles 0.1..0.9, "
        "large dot: quantile calibrated within static's bits; green: the same with the 448-label classifiers.",
        "Source: bench/results/smollm2_pmpd.json (run_800_docs)"])


def main_teacher_forced(data, out_path):
    """The run_teacher_forced figure: blue = the device run's classifiers (weighted classes) with their
    quantile sweep, green = the unweighted classifiers' calibrated point (cnn_dm only); the uniform
    rows are run_800_docs' (the same quantization: its static rows are reproduced exactly)."""
    run = data["run_teacher_forced"]
    base = data["run_800_docs"]["eval_n800"]

    def rows_of(t):
        rows = [r for r in base[t]["rows"] if r["method"].startswith("uniform")]
        rows += run["eval_device_weighted_classifiers"][t]
        fine = []
        if t == "cnn_dm":
            fine = [r for r in run["eval_unweighted_classifiers_cnn_dm"]["rows"] if r["method"] == "learned"]
        return rows, fine, base[t]["examples"]

    two_panel_figure(out_path, list(run["eval_device_weighted_classifiers"].keys()), rows_of, "unweighted", [
        "SmolLM2-135M-Instruct, ladder 5-4-3; squares: uniform baselines "
        "(dashed line); red: PMPD-static (calibrated); blue: PMPD-learned on teacher-forced labels",
        "(pmpd-train defaults), curve over switch quantiles 0.1..0.9, "
        "large dot: quantile calibrated within static's bits; green: unweighted classifiers (cnn_dm only).",
        "Source: bench/results/smollm2_pmpd.json (run_teacher_forced; uniform rows from run_800_docs)"])


def main():
    data = json.load(open(sys.argv[1]))
    if len(sys.argv) > 3 and sys.argv[3] == "--run-800-docs":
        return main_run_800(data, sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[3] == "--teacher-forced":
        return main_teacher_forced(data, sys.argv[2])
    evals = data["eval_switch_quantile"]["tasks"] if "eval_switch_quantile" in data else data["eval"]
    tasks = list(evals.keys())
    W, H = 480, 300
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W + 50}" height="{H * len(tasks) + 96}" '
           'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>']
    for i, t in enumerate(tasks):
        ev = evals[t]
        rows = ev["rows"]
        n = ev["examples"]
        fine = data["eval_finer_candidates"]["tasks"][t]["rows"] if "eval_finer_candidates" in data else None
        out += panel(rows, "rouge_l", 0, i * H, W, H, f"{t} ({n} prompts): Rouge-L vs references", fine)
        out += panel(rows, "rouge_l_vs_model", W, i * H, W, H, f"{t}: Rouge-L vs the model's 8-bit output", fine)
    y = H * len(tasks) + 20
    out.append(f'<text x="20" y="{y}" font-size="11">SmolLM2-135M-Instruct, ladder 5-4-3; squares: uniform '
               'baselines (dashed line joins them); red: PMPD-static (calibrated); blue: PMPD-learned</text>')
    if "eval_switch_quantile" in data:
        out.append(f'<text x="20" y="{y + 16}" font-size="11">blue curve: PMPD-learned (pmpd-train classifiers, label '
                   'tolerance 0.01) at switch quantiles 0.1..0.9; large blue dot: the quantile calibrated</text>')
        out.append(f'<text x="20" y="{y + 32}" font-size="11">within the static schedule\'s bits on the calibration '
                   'prompts. Green (\"finer\"): the same with classifiers trained on labels at steps 0, 12, 24, 48.</text>')
        out.append(f'<text x="20" y="{y + 48}" font-size="11">Source: bench/results/smollm2_pmpd.json '
                   '(eval_switch_quantile, eval_finer_candidates)</text>')
    else:
        out.append(f'<text x="20" y="{y + 16}" font-size="11">A: hypertuned classifiers, stored labels; B: pmpd-train, '
                   'stored labels; C: pmpd-train, labels at tolerance 0.01. Source: bench/results/smollm2_pmpd.json</text>')
    out.append("</svg>")
    open(sys.argv[2], "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
