#!/usr/bin/python3
"""Red-team harness (issue 17): malformed inputs of every class against every tool, classified.

Builds small valid inputs with the tools themselves (a tiny random model, its any-precision copy,
a pmpd-gen-data file, exported classifiers, a hypertune space), then runs each case: a tool, an
input class, one broken input (or flag), and what a good tool does with it (refuse, or accept for
the controls). Each run is classified:
  clear    non-zero exit, "<tool>: error: ..." naming the file (when there is one), no backtrace
  unclear  non-zero exit without that (a backtrace, no file name, a message from a library)
  crash    killed by a signal, exit 134/139, a sanitizer report, "terminate called"
  hang     still running after --timeout seconds (a FIFO read, an endless loop)
  silent   exit 0 on input that must be refused (silent acceptance)
  ok       a control case that must succeed and did (a control that fails counts as unclear)
Prints one row per tool and input class, then every case that is not clear/ok.

Usage: scripts/redteam.py [--bin build/cli] [--work /tmp/pmpd-redteam] [--json OUT.json]
                          [--shared ../shared] [--timeout 60] [--only TOOL]
Run it against another build (e.g. an older commit's binaries) with --bin to compare; only flags
that every version has are used.
"""
import argparse
import collections
import gzip
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import time

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Harness:
    def __init__(self, args):
        self.bin = os.path.abspath(args.bin)
        self.work = os.path.abspath(args.work)
        self.shared = os.path.abspath(args.shared)
        self.timeout = args.timeout
        self.cases = []
        self.n = 0

    # --- helpers -----------------------------------------------------------------------------
    def path(self, *p):
        return os.path.join(self.work, *p)

    def tool(self, name):
        return os.path.join(self.bin, name)

    def run(self, argv, timeout=None):
        t0 = time.time()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout or self.timeout, env=dict(os.environ, OMP_NUM_THREADS="1"))
            return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"), time.time() - t0
        except subprocess.TimeoutExpired as e:
            return None, "", (e.stderr or b"").decode("utf-8", "replace"), time.time() - t0

    def must(self, argv):
        rc, out, err, _ = self.run(argv, timeout=600)
        if rc != 0:
            sys.exit(f"redteam: error: setup failed: {' '.join(argv)}\n{err[-2000:]}")
        return out

    def copy(self, src, tag):
        self.n += 1
        dst = self.path("cases", f"{self.n:03d}-{tag}")
        if os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(src, dst)
        return dst

    def add(self, tool, cls, name, argv, expect="refuse", hint=None, check=None):
        """hint: a string the error line must contain (the file). check(out, err): extra test for
        accepted runs (returns an error string or None)."""
        self.cases.append(dict(tool=tool, cls=cls, name=name, argv=[self.tool(tool)] + argv,
                               expect=expect, hint=hint, check=check))

    # --- valid inputs ------------------------------------------------------------------------
    def setup(self):
        if os.path.exists(self.work):
            shutil.rmtree(self.work)
        os.makedirs(self.path("cases"))
        self.must([self.tool("pmpd-make-tiny-model"), "--out", self.path("tiny"), "--seed", "1"])
        docs = []
        with gzip.open(os.path.join(self.shared, "data/c4/c4-validation.00000-of-00008.first800.json.gz"), "rt") as f:
            for line in f:
                docs.append(json.loads(line)["text"][:600])
                if len(docs) == 12:
                    break
        with open(self.path("c4.jsonl"), "w") as f:
            for d in docs:
                f.write(json.dumps({"text": d}) + "\n")
        self.must([self.tool("pmpd-quantize"), "--model", self.path("tiny"), "--out", self.path("ap"),
                   "--seed-precision", "2", "--parent-precision", "4", "--calib", self.path("c4.jsonl"),
                   "--seq-len", "16", "--calib-samples", "4", "--threads", "1"])
        self.must([self.tool("pmpd-gen-data"), "--model", self.path("ap"), "--c4", self.path("c4.jsonl"),
                   "--num-docs", "12", "--max-new-tokens", "6", "--precisions", "4,3,2",
                   "--out", self.path("data.h5")])
        self.must([self.tool("pmpd-train"), "--data", self.path("data.h5"), "--precisions", "4,3,2",
                   "--out", self.path("cls"), "--epochs", "2"])
        with open(self.path("space.json"), "w") as f:
            json.dump({"params": [{"name": "lr", "type": "float", "low": 1e-4, "high": 1e-2, "log": True}]}, f)

    # --- file surgery ------------------------------------------------------------------------
    @staticmethod
    def edit_json(path, fn):
        with open(path) as f:
            j = json.load(f)
        fn(j)
        with open(path, "w") as f:
            json.dump(j, f)

    @staticmethod
    def write(path, data, mode="wb"):
        with open(path, mode) as f:
            f.write(data)

    @staticmethod
    def safetensors_header(path):
        with open(path, "rb") as f:
            raw = f.read()
        n = struct.unpack("<Q", raw[:8])[0]
        return json.loads(raw[8:8 + n]), raw[8 + n:]

    @staticmethod
    def write_safetensors(path, header, data):
        h = json.dumps(header).encode()
        Harness.write(path, struct.pack("<Q", len(h)) + h + data)

    def h5_edit(self, tag, fn):
        p = self.copy(self.path("data.h5"), tag + ".h5")
        with h5py.File(p, "r+") as f:
            fn(f)
        return p

    # --- the cases ---------------------------------------------------------------------------
    def build(self):
        tiny, ap, data, cls = self.path("tiny"), self.path("ap"), self.path("data.h5"), self.path("cls")
        gen = lambda m, *extra: ["--model", m, "--prompt", "hi", "--max-new-tokens", "4"] + list(extra)

        # pmpd-generate: config.json
        self.add("pmpd-generate", "control", "valid model", gen(tiny), expect="accept")
        self.add("pmpd-generate", "control", "prompt that looks like a flag", gen(tiny) + ["--prompt", "--my-dog-is-big"],
                 expect="accept", check=lambda out, err: None if "--my-dog-is-big" in out else "prompt rewritten")
        for name, fn in [
                ("missing", None),
                ("not JSON", "{\"hidden_size\": 64,"),
                ("JSON then NUL garbage", lambda j: None),
                ("head_dim 2^30", lambda j: j.update(head_dim=1 << 30)),
                ("negative layers", lambda j: j.update(num_hidden_layers=-1)),
                ("float hidden_size 1e300", lambda j: j.update(hidden_size=1e300)),
                ("eos_token_id -5", lambda j: j.update(eos_token_id=-5)),
                ("eos_token_id 2^64-1", lambda j: j.update(eos_token_id=(1 << 64) - 1)),
                ("max_position_embeddings 2^40", lambda j: j.update(max_position_embeddings=1 << 40)),
                ("architecture Bert", lambda j: j.update(architectures=["BertForMaskedLM"])),
                ("fewer layers than the weights", lambda j: j.update(num_hidden_layers=j["num_hidden_layers"] - 1)),
                ("vocab_size 0", lambda j: j.update(vocab_size=0))]:
            m = self.copy(tiny, "cfg")
            cfg = os.path.join(m, "config.json")
            if fn is None:
                os.remove(cfg)
            elif isinstance(fn, str):
                self.write(cfg, fn, "w")
            elif name.startswith("JSON then NUL"):
                with open(cfg, "ab") as f:
                    f.write(b"\0garbage")
            else:
                self.edit_json(cfg, fn)
            self.add("pmpd-generate", "config.json", name, gen(m),
                     hint="num_hidden_layers" if name.startswith("fewer layers") else "config.json")

        # pmpd-generate: safetensors
        header, payload = self.safetensors_header(os.path.join(tiny, "model.safetensors"))
        first = next(k for k in header if k != "__metadata__")
        raw = open(os.path.join(tiny, "model.safetensors"), "rb").read()
        for name, make in [
                ("truncated to half", lambda p: self.write(p, raw[:len(raw) // 2])),
                ("truncated to 10 bytes", lambda p: self.write(p, raw[:10])),
                ("header length 2^63", lambda p: self.write(p, struct.pack("<Q", 1 << 63) + raw[8:])),
                ("header not JSON", lambda p: self.write(p, struct.pack("<Q", 5) + b"{{{{{" + raw[13:])),
                ("unknown dtype", lambda p: self.write_safetensors(p, {**header, first: {**header[first], "dtype": "Q9"}}, payload)),
                ("offsets past the end", lambda p: self.write_safetensors(
                    p, {**header, first: {**header[first], "data_offsets": [0, len(payload) + 64]}}, payload)),
                ("shape overflows", lambda p: self.write_safetensors(
                    p, {**header, first: {**header[first], "shape": [1 << 40, 1 << 40]}}, payload)),
                ("empty file", lambda p: self.write(p, b""))]:
            m = self.copy(tiny, "st")
            make(os.path.join(m, "model.safetensors"))
            self.add("pmpd-generate", "safetensors", name, gen(m), hint="model.safetensors")
        m = self.copy(tiny, "fifo")
        os.remove(os.path.join(m, "model.safetensors"))
        os.mkfifo(os.path.join(m, "model.safetensors"))
        self.add("pmpd-generate", "safetensors", "a FIFO as the weights file", gen(m), hint="model.safetensors")

        # pmpd-generate: tokenizer
        m = self.copy(tiny, "tok")
        os.remove(os.path.join(m, "tokenizer.model"))
        self.add("pmpd-generate", "tokenizer", "missing tokenizer.model", gen(m), hint="tokenizer.model")
        m = self.copy(tiny, "tok")
        self.write(os.path.join(m, "tokenizer.model"), b"\x0a\xff\xff\xff\xff\x0f garbage")
        self.add("pmpd-generate", "tokenizer", "corrupt tokenizer.model", gen(m), hint="tokenizer.model")

        # pmpd-generate: any-precision metadata
        for name, fn in [("parent_precision 4294967300", lambda a: a.update(parent_precision=4294967300)),
                         ("group_count 4294967297", lambda a: a.update(group_count=4294967297)),
                         ("seed above parent", lambda a: a.update(seed_precision=4, parent_precision=2)),
                         ("precision as a float", lambda a: a.update(seed_precision=2.5))]:
            m = self.copy(ap, "anyprec")
            self.edit_json(os.path.join(m, "config.json"), lambda j: fn(j["anyprec"]))
            self.add("pmpd-generate", "any-precision metadata", name, gen(m, "--precision", "3"), hint="config.json")
        self.add("pmpd-generate", "control", "any-precision model at 3 bits", gen(ap, "--precision", "3"), expect="accept")

        # pmpd-generate: flags
        for name, extra in [("--temperature -1", ["--temperature", "-1"]), ("--top-p 2", ["--top-p", "2"]),
                            ("--max-new-tokens -3", ["--max-new-tokens", "-3"]),
                            ("stray positional words", ["upon", "a", "time"]),
                            ("--precisions on a plain model", ["--precisions", "4,3"]),
                            ("--switch-steps without --precisions", ["--switch-steps", "2"]),
                            ("--precision 9 on a 2..4-bit model", ["--precision", "9"]),
                            ("--precisions not numbers", ["--precisions", "four,three"]),
                            ("unknown flag", ["--frobnicate", "1"])]:
            model = ap if "precision" in name and "plain" not in name else tiny
            self.add("pmpd-generate", "flags", name, gen(model) + extra)
        self.add("pmpd-generate", "control", "--temperature 1e-38 (samples, no NaN)", gen(tiny, "--temperature", "1e-38", "--json"),
                 expect="accept", check=lambda out, err: None if '"new_ids"' in out else "no JSON output")

        # pytorch_model.bin (the any-precision fixture is a torch.save checkpoint), read by generate
        fixture = os.path.join(self.shared, "fixtures/anyprec-tiny")
        src = self.copy(fixture, "ptsrc")
        for f in ("expected.safetensors", "tail.safetensors"):
            if os.path.exists(os.path.join(src, f)):
                os.remove(os.path.join(src, f))
        self.add("pmpd-generate", "control", "pytorch_model.bin any-precision fixture", gen(src, "--precision", "3"),
                 expect="accept")
        binraw = open(os.path.join(src, "pytorch_model.bin"), "rb").read()
        mid = len(binraw) // 2
        for name, make in [("truncated pytorch_model.bin", lambda p: self.write(p, binraw[:len(binraw) // 3])),
                           ("not a zip", lambda p: self.write(p, b"PK\x03\x04" + b"\0" * 100)),
                           ("a flipped byte in a tensor record (CRC)",
                            lambda p: self.write(p, binraw[:mid] + bytes([binraw[mid] ^ 0xff]) + binraw[mid + 1:]))]:
            m = self.copy(src, "pt")
            make(os.path.join(m, "pytorch_model.bin"))
            self.add("pmpd-generate", "pytorch_model.bin", name, gen(m, "--precision", "3"), hint="pytorch_model.bin")

        # pmpd-quantize
        q = lambda m, out, *extra: ["--model", m, "--out", out, "--seed-precision", "2", "--parent-precision", "3",
                                    "--calib", self.path("c4.jsonl"), "--seq-len", "8", "--calib-samples", "2",
                                    "--threads", "1"] + list(extra)
        self.add("pmpd-quantize", "control", "tiny safetensors model", q(tiny, self.path("cases", "q-ok")), expect="accept")
        self.add("pmpd-quantize", "calibration data", "missing --calib file", q(tiny, self.path("cases", "q-nocalib"))[:-8]
                 + ["--calib", self.path("none.jsonl"), "--seq-len", "8", "--calib-samples", "2", "--threads", "1"],
                 hint="none.jsonl")
        self.add("pmpd-quantize", "flags", "--seed-precision above --parent-precision",
                 ["--model", tiny, "--out", self.path("cases", "q-bad"), "--seed-precision", "4", "--parent-precision", "3"])
        self.add("pmpd-quantize", "flags", "stray positional word", q(tiny, self.path("cases", "q-pos"), "extra"))
        blocker = self.path("cases", "q-file")
        self.write(blocker, b"x")
        self.add("pmpd-quantize", "output", "--out under a regular file", q(tiny, blocker + "/sub"))

        # pmpd-perplexity
        p = lambda d, *extra: ["--model", tiny, "--data", d, "--seq-len", "16", "--max-docs", "4"] + list(extra)
        self.add("pmpd-perplexity", "control", "valid data", p(self.path("c4.jsonl")), expect="accept")
        self.add("pmpd-perplexity", "data file", "missing", p(self.path("nope.jsonl")), hint="nope.jsonl")
        self.add("pmpd-perplexity", "data file", "a directory", p(self.path("cases")), hint="cases")
        bad = self.path("cases", "binary.jsonl.gz")
        self.write(bad, b"\x1f\x8b\x08\x00garbage-not-deflate" * 4)
        self.add("pmpd-perplexity", "data file", "corrupt gzip", p(bad), hint="binary.jsonl.gz")
        fifo = self.path("cases", "fifo.jsonl")
        os.mkfifo(fifo)
        self.add("pmpd-perplexity", "data file", "a FIFO", p(fifo), hint="fifo.jsonl")
        self.add("pmpd-perplexity", "flags", "--seq-len 0", p(self.path("c4.jsonl"), "--seq-len", "0"))
        self.add("pmpd-perplexity", "flags", "--byte-range 0.5:0.2", p(self.path("c4.jsonl"), "--byte-range", "0.5:0.2"))

        # pmpd-gen-data
        g = lambda c4, out, *extra: ["--model", ap, "--c4", c4, "--num-docs", "3", "--max-new-tokens", "6",
                                     "--precisions", "4,3,2", "--out", out] + list(extra)
        self.add("pmpd-gen-data", "control", "valid C4 file", g(self.path("c4.jsonl"), self.path("cases", "g-ok.h5")), expect="accept")
        plain_gz = self.path("cases", "plain.json.gz")
        self.write(plain_gz, open(self.path("c4.jsonl"), "rb").read())
        self.add("pmpd-gen-data", "control", "uncompressed JSON lines named .gz (read as they are)",
                 g(plain_gz, self.path("cases", "g-plain.h5")), expect="accept")
        for name, content in [("truncated gzip", gzip.compress(open(self.path("c4.jsonl"), "rb").read())[:200]),
                              ("empty file", b"")]:
            f = self.path("cases", f"c4-{self.n}-{len(self.cases)}.json.gz")
            self.write(f, content)
            self.add("pmpd-gen-data", "C4 input", name, g(f, self.path("cases", f"g{len(self.cases)}.h5")), hint=os.path.basename(f))
        self.add("pmpd-gen-data", "C4 input", "missing", g(self.path("none.jsonl"), self.path("cases", "g-miss.h5")), hint="none.jsonl")
        nul = self.path("cases", "nul.jsonl")
        lines = open(self.path("c4.jsonl"), "rb").read().split(b"\n")
        self.write(nul, lines[0][:20] + b"\0" + lines[0][20:] + b"\n" + b"\n".join(lines[1:]))
        self.add("pmpd-gen-data", "control", "a NUL byte inside one C4 line (the next document survives)",
                 g(nul, self.path("cases", "g-nul.h5"), "--json"), expect="accept",
                 check=lambda out, err: None if '"samples":3' in out.replace(" ", "") else "documents lost")
        for name, extra in [("--num-docs -1", ["--num-docs", "-1"]), ("--candidate-steps 4,2", ["--candidate-steps", "4,2"]),
                            ("--candidate-steps past --max-new-tokens", ["--candidate-steps", "0,100"]),
                            ("--max-new-tokens 0", ["--max-new-tokens", "0"]), ("--shard 3/2", ["--shard", "3/2"]),
                            ("--precisions outside the model", ["--precisions", "8,4"])]:
            self.add("pmpd-gen-data", "flags", name, g(self.path("c4.jsonl"), self.path("cases", f"g{len(self.cases)}.h5"), *extra))

        # gen-data HDF5 files, read by pmpd-train and by `pmpd-gen-data merge`
        h5_cases = [
            ("not HDF5", None),
            ("truncated", "trunc"),
            ("negative prompt_length", lambda f: f["samples/prompt_length"].__setitem__(0, -5)),
            ("huge prompt_length", lambda f: f["pair_4_3/prompt_lengths"].__setitem__(0, 2 ** 30)),
            ("huge reference_length", lambda f: f["samples/reference_length"].__setitem__(0, 2 ** 30)),
            ("kv_offsets past the cache", lambda f: f["pair_4_3/kv_offsets"].__setitem__(1, 10 ** 9)),
            ("labels out of range", lambda f: f["pair_4_3/labels"].__setitem__(0, 99)),
            ("no completed_samples (an unfinished file)", lambda f: f.attrs.__delitem__("completed_samples")),
            ("missing pair group", lambda f: f.__delitem__("pair_3_2")),
            ("NaN in K", lambda f: f["pair_4_3/k"].__setitem__((0, 0, 0), np.float16("nan"))),
            ("kv_heads attribute 2^40", lambda f: f.attrs.__setitem__("kv_heads", np.int64(2 ** 40))),
        ]
        for name, fn in h5_cases:
            if fn is None:
                d = self.copy(self.path("c4.jsonl"), "nothdf5.h5")
            elif fn == "trunc":
                d = self.copy(data, "trunc.h5")
                raw5 = open(d, "rb").read()
                self.write(d, raw5[:len(raw5) // 2])
            else:
                d = self.h5_edit("h5", fn)
            self.add("pmpd-train", "gen-data HDF5", name,
                     ["--data", d, "--precisions", "4,3,2", "--out", self.path("cases", f"t{len(self.cases)}"), "--epochs", "1"],
                     hint=os.path.basename(d))
            if name != "NaN in K":
                self.add("pmpd-gen-data", "merge inputs (HDF5)", name,
                         ["merge", "--out", self.path("cases", f"m{len(self.cases)}.h5"), data, d], hint=os.path.basename(d))
        self.add("pmpd-train", "control", "valid data", ["--data", data, "--precisions", "4,3,2", "--out",
                                                         self.path("cases", "t-ok"), "--epochs", "1"], expect="accept")
        for name, extra in [("--val-fraction 2", ["--val-fraction", "2"]), ("--lr nan", ["--lr", "nan"]),
                            ("--precisions absent from the data", ["--precisions", "8,7"]),
                            ("--epochs 0", ["--epochs", "0"]), ("--lr 1e30 (diverges)", ["--lr", "1e30"]),
                            ("stray positional word", ["extra"])]:
            self.add("pmpd-train", "flags", name, ["--data", data, "--precisions", "4,3,2", "--out",
                                                   self.path("cases", f"t{len(self.cases)}"), "--epochs", "2"] + extra)

        # pmpd-hypertune
        h = lambda space, *extra: ["--data", data, "--precisions", "4,3,2", "--trials", "1", "--out",
                                   self.path("cases", f"h{len(self.cases)}"), "--space", space] + list(extra)
        self.add("pmpd-hypertune", "control", "valid space", h(self.path("space.json")), expect="accept")
        for name, text in [("not JSON", "{\"params\": ["), ("1e999", '{"params": [{"name": "lr", "type": "float", "low": 1e-5, "high": 1e999}]}'),
                           ("float type for an integer hyperparameter", '{"params": [{"name": "epochs", "type": "float", "low": 1, "high": 3}]}'),
                           ("no params", '{"params": []}'), ("unknown hyperparameter", '{"params": [{"name": "nope", "type": "float", "low": 0, "high": 1}]}'),
                           ("low above high", '{"params": [{"name": "lr", "type": "float", "low": 1, "high": 0.1}]}'),
                           ("NUL after the JSON", '{"params": [{"name": "lr", "type": "float", "low": 0.001, "high": 0.01}]}\0x')]:
            f = self.path("cases", f"space{len(self.cases)}.json")
            self.write(f, text.encode())
            self.add("pmpd-hypertune", "search space", name, h(f), hint=os.path.basename(f))
        study = self.path("cases", "study")
        self.must([self.tool("pmpd-hypertune"), "--data", data, "--precisions", "4,3,2", "--trials", "2",
                   "--out", self.path("cases", "h-study-out"), "--study", study, "--space", self.path("space.json")])
        journal = os.path.join(study, "journal.jsonl")
        jl = open(journal, "rb").read().split(b"\n")
        jl[1] = jl[1][:12] + b"X" + jl[1][13:]
        self.write(journal, b"\n".join(jl))
        self.add("pmpd-hypertune", "study journal", "a corrupted record in the middle",
                 ["--data", data, "--precisions", "4,3,2", "--trials", "3", "--out", self.path("cases", "h-j"),
                  "--study", study, "--space", self.path("space.json")], hint="journal.jsonl")

        # pmpd-eval / pmpd-generate --scheduler learned: classifier directories
        le = lambda c: gen(ap, "--precisions", "4,3,2", "--scheduler", "learned", "--classifier", c)
        self.add("pmpd-generate", "control", "learned scheduler, valid classifiers", le(cls), expect="accept")
        man = lambda fn: (lambda d: self.edit_json(os.path.join(d, "manifest.json"), fn))
        def swap(d):
            self.edit_json(os.path.join(d, "manifest.json"), lambda j: (j["pairs"][0].__setitem__("file", j["pairs"][1]["file"]),
                                                                        j["pairs"][1].__setitem__("file", "classifier_4_3.safetensors")))
        def nan_weights(d):
            p = os.path.join(d, "classifier_4_3.safetensors")
            hdr, payload = self.safetensors_header(p)
            b = bytearray(payload)
            start = hdr["query"]["data_offsets"][0]
            b[start:start + 4] = struct.pack("<f", math.nan)
            self.write_safetensors(p, hdr, bytes(b))
        for name, fn in [
                ("manifest missing", lambda d: os.remove(os.path.join(d, "manifest.json"))),
                ("file entry ../ outside the directory", man(lambda j: j["pairs"][0].update(file="../data.h5"))),
                ("a pair listed twice", man(lambda j: j["pairs"].__setitem__(1, j["pairs"][0]))),
                ("candidate steps unsorted", man(lambda j: j["pairs"][0].update(candidate_steps=[0, 9, 3]))),
                ("candidate steps negative", man(lambda j: j["pairs"][0].update(candidate_steps=[-4, 2, 4]))),
                ("candidate steps huge", man(lambda j: j["pairs"][0].update(candidate_steps=[0, 2, 10 ** 12]))),
                ("kv_heads contradicting the tensors", man(lambda j: j["pairs"][0].update(kv_heads=j["pairs"][0]["kv_heads"] + 1))),
                ("high as 1e300", man(lambda j: j["pairs"][0].update(high=1e300))),
                ("swapped pair files", swap),
                ("NaN weights", nan_weights),
                ("manifest not JSON", lambda d: self.write(os.path.join(d, "manifest.json"), b"{\"pairs\": [")),
                ("classifier file truncated", lambda d: self.write(os.path.join(d, "classifier_3_2.safetensors"), b"\x10\0\0\0"))]:
            d = self.copy(cls, "cls")
            fn(d)
            self.add("pmpd-generate", "classifier directory", name, le(d), hint=os.path.basename(d))

        # pmpd-eval: tasks and flags (the tiny model has no chat template; tinystories is its task)
        e = lambda *extra: ["--model", ap, "--task", "tinystories", "--shared-dir", self.shared, "--n", "2",
                            "--max-new-tokens", "4", "--precisions", "4,3", "--methods", "uniform",
                            "--out", self.path("cases", f"e{len(self.cases)}")] + list(extra)
        self.add("pmpd-eval", "control", "tinystories, uniform", e(), expect="accept")
        for name, extra in [("unknown task", ["--task", "nope"]), ("--n 0", ["--n", "0"]), ("--n -1", ["--n", "-1"]),
                            ("unknown method", ["--methods", "magic"]), ("--shared-dir missing", ["--shared-dir", self.path("no-shared")]),
                            ("stray positional word", ["extra"])]:
            self.add("pmpd-eval", "flags", name, e(*extra))

    # --- running and reporting ---------------------------------------------------------------
    def classify(self, c, rc, out, err):
        crashed = rc is not None and (rc < 0 or rc in (134, 139)) or re.search(
            r"AddressSanitizer|runtime error:|terminate called|Segmentation fault|core dumped", err)
        if rc is None:
            return "hang"
        if crashed:
            return "crash"
        if c["expect"] == "accept":
            if rc != 0:
                return "unclear"
            if c["check"] is not None and c["check"](out, err):
                return "silent"
            return "ok"
        if rc == 0:
            return "silent"
        tool = os.path.basename(c["argv"][0])
        lines = [l for l in err.splitlines() if l.startswith(f"{tool}: error: ")]
        if not lines or re.search(r"frame #\d|Exception raised from", err):
            return "unclear"
        if c["hint"] and not any(c["hint"] in l for l in lines):
            return "unclear"
        return "clear"

    def run_all(self, only):
        results = []
        for c in self.cases:
            if only and c["tool"] != only:
                continue
            rc, out, err, secs = self.run(c["argv"])
            verdict = self.classify(c, rc, out, err)
            msg = next((l for l in err.splitlines() if ": error: " in l), err.strip().splitlines()[-1] if err.strip() else "")
            results.append(dict(tool=c["tool"], cls=c["cls"], name=c["name"], verdict=verdict, rc=rc,
                                message=msg[:300], seconds=round(secs, 2)))
            print(f"  {verdict:8s} {c['tool']:16s} {c['cls']:28s} {c['name']}", file=sys.stderr, flush=True)
        return results


def table(results):
    kinds = ["clear", "unclear", "crash", "hang", "silent", "ok"]
    rows = collections.OrderedDict()
    for r in results:
        rows.setdefault((r["tool"], r["cls"]), collections.Counter())[r["verdict"]] += 1
    out = ["| tool | input class | cases | clear error | unclear error | crash | hang | silent acceptance | controls ok |",
           "|---|---|---|---|---|---|---|---|---|"]
    tot = collections.Counter()
    for (tool, cls), c in rows.items():
        n = sum(c.values())
        tot.update(c)
        out.append(f"| {tool} | {cls} | {n} | " + " | ".join(str(c[k]) for k in kinds) + " |")
    out.append(f"| **all** | | {sum(tot.values())} | " + " | ".join(f"**{tot[k]}**" for k in kinds) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cli"))
    ap.add_argument("--work", default="/tmp/pmpd-redteam")
    ap.add_argument("--shared", default=os.environ.get("PMPD_SHARED_DIR", os.path.join(ROOT, "..", "shared")))
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--json", default="")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    h = Harness(args)
    print("redteam: making the valid inputs with the tools", file=sys.stderr)
    h.setup()
    h.build()
    print(f"redteam: {len(h.cases)} cases", file=sys.stderr)
    results = h.run_all(args.only)
    print(table(results))
    bad = [r for r in results if r["verdict"] not in ("clear", "ok")]
    if bad:
        print("\nNot clear:")
        for r in bad:
            print(f"- {r['verdict']}: {r['tool']} / {r['cls']} / {r['name']}: rc={r['rc']} {r['message']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bin": h.bin, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
