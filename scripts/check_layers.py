#!/usr/bin/env python3
"""The layering rule of README.md ("Layout and dependency direction"), checked on the sources: a
file in a layer's folder may include only headers of that layer and of the layers beneath it.
Reads every #include "..." of base/, kernels/, models/, inference/, dataset/, scheduler_runtime/, eval/,
data_gen/, trainer/, hpo/, cli/ and bench/; prints each violation as path:line: message and exits 1
when there is one.

Usage: scripts/check_layers.py [ROOT]       (ROOT: the repository, default: this script's parent)
       scripts/check_layers.py --self-test  (the rule catches a planted upward include)
"""
import os
import re
import sys
import tempfile

# Each layer and the layers it may include (itself always). Third-party headers (absl/, nlohmann/,
# torch, CUDA) are not pmpd layers and are not checked here.
ALLOWED = {
    "base": set(),
    "kernels": set(),
    "models": {"base", "kernels"},
    "inference": {"base", "kernels", "models"},
    "dataset": {"base", "kernels", "models"},
    "scheduler_runtime": {"base", "kernels", "models", "inference"},
    "eval": {"base", "kernels", "models", "inference", "scheduler_runtime"},
    "data_gen": {"base", "kernels", "models", "inference", "dataset", "scheduler_runtime"},
    "trainer": {"base", "kernels", "models", "inference", "dataset", "scheduler_runtime"},
    "hpo": {"base"},
    "serve": {"base", "kernels", "models", "inference", "scheduler_runtime"},
    "cli": {"base", "kernels", "models", "inference", "dataset", "scheduler_runtime", "eval", "data_gen",
            "trainer", "hpo", "serve"},
    "bench": {"base", "kernels", "models", "inference", "dataset", "scheduler_runtime", "eval", "data_gen",
              "trainer", "hpo", "serve", "cli"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)/')
SOURCES = (".h", ".cc", ".cu", ".cuh")


def violations(root):
    out = []
    for layer, allowed in ALLOWED.items():
        base = os.path.join(root, layer)
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if not name.endswith(SOURCES):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(1)
                        if target in ALLOWED and target != layer and target not in allowed:
                            rel = os.path.relpath(path, root)
                            out.append(f"{rel}:{n}: {layer}/ includes {target}/ (a layer above it or beside it): "
                                       f"{line.strip()}")
    return out


def self_test():
    with tempfile.TemporaryDirectory() as root:
        def put(rel, text):
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        put("models/a.h", '#include "kernels/half.h"\n#include "absl/status/status.h"\n')
        put("eval/e.cc", '#include "scheduler_runtime/x.h"\n')
        assert violations(root) == [], violations(root)
        put("inference/b.cc", '// fine\n  #include "scheduler_runtime/s.h"\n')
        put("dataset/d.h", '#include "inference/engine.h"\n')
        put("scheduler_runtime/r.cc", '#include "cli/cli_common.h"\n')
        got = violations(root)
        assert len(got) == 3, got
        assert any(g.startswith("inference/b.cc:2:") for g in got), got
        assert any("dataset/ includes inference/" in g for g in got), got
        assert any("scheduler_runtime/ includes cli/" in g for g in got), got
    print("check_layers self-test: ok")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bad = violations(root)
    for v in bad:
        print(v)
    if bad:
        print(f"check_layers: {len(bad)} include(s) against the layering in README.md", file=sys.stderr)
        return 1
    print("check_layers: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
