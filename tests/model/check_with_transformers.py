#!/usr/bin/env python3
"""ctest driver: a folder written by `hone init --probe ...` must load in transformers with no
missing or unexpected weights and give the logits hone computed (probe.safetensors).
Exits 77 (reported as skipped) when PyTorch or transformers is not installed.
Usage: check_with_transformers.py HONE_BINARY WORK_DIR"""
import os
import shutil
import subprocess
import sys

try:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
except ImportError as e:
    print(f"SKIPPED: {e}")
    sys.exit(77)

hone, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
failures = 0
for family, extra in [("llama", ["--kv-heads", "2"]), ("qwen2", []), ("qwen3", ["--tied"]), ("mistral", []),
                      ("gpt2", [])]:
    out = os.path.join(work, family)
    subprocess.run([hone, "init", "--family", family, "--vocab", "300", "--hidden", "64", "--layers", "2",
                    "--heads", "4", "--out", out, "--seed", "3", "--probe", "1,7,200,13,13,99", *extra],
                   check=True, stdout=subprocess.DEVNULL)
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    probe = load_file(os.path.join(out, "probe.safetensors"))
    with torch.no_grad():
        logits = model.eval()(input_ids=probe["input_ids"]).logits[0]
    err = (logits - probe["logits"]).abs().max().item()
    ok = not bad and err < 1e-4
    failures += not ok
    print(f"{family}: loading info {bad or 'clean'}, max |logits - hone| = {err:.2e} {'ok' if ok else 'FAIL'}")
sys.exit(1 if failures else 0)
