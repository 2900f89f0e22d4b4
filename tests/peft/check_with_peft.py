#!/usr/bin/env python3
"""ctest driver: adapters written by `hone train --method lora|prompt-tuning` must load in the
real PEFT library with every tensor taken from the file, and a LoRA adapter must give in PEFT
the logits of the model `hone merge` folds it into (transformers on the merged folder).
Exits 77 (reported as skipped) when PyTorch, transformers or PEFT is not installed.
Usage: check_with_peft.py HONE_BINARY WORK_DIR"""
import json
import os
import shutil
import subprocess
import sys

try:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
except ImportError as e:
    print(f"SKIPPED: {e}")
    sys.exit(77)

hone, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
data = os.path.join(work, "train.jsonl")
with open(data, "w") as f:
    for w in ["red", "green", "blue", "cat", "dog", "sun", "moon", "tree"]:
        f.write(json.dumps({"prompt": f"reverse {w}: ", "completion": w[::-1]}) + "\n")


def run(*args):
    subprocess.run([hone, *args], check=True, stdout=subprocess.DEVNULL)


def lora_weights(model):
    return {k: v for k, v in model.state_dict().items() if "lora_" in k}


ids = torch.tensor([[1, 7, 200, 13, 13, 99, 40, 2]])
failures = 0
for family, method, extra in [("llama", "lora", ["--lora-targets", "all-linear", "--lora-r", "4"]),
                              ("gpt2", "lora", ["--lora-targets", "c_attn,mlp.c_proj", "--rslora"]),
                              ("qwen2", "prompt-tuning", ["--num-virtual-tokens", "5", "--prompt-init", "sample-vocab"])]:
    base_dir, out = os.path.join(work, family), os.path.join(work, f"{family}-{method}")
    run("init", "--family", family, "--vocab", "264", "--hidden", "64", "--layers", "2", "--heads", "4",
        "--tokenizer", "byte-level", "--out", base_dir, "--seed", "5")
    run("train", "--method", method, *extra, "--model", base_dir, "--data", data, "--output", out, "--steps", "3",
        "--batch", "2", "--seq-len", "32", "--lr", "0.05", "--quiet")
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), out).eval()
    saved = load_file(os.path.join(out, "adapter_model.safetensors"))
    problems = []
    if method == "lora":
        loaded = lora_weights(model)
        names = {k.replace(".default", "") for k in loaded}
        if names != set(saved):
            problems.append(f"tensor names differ: {sorted(set(saved) ^ names)[:4]}")
        for k, v in loaded.items():
            if not torch.equal(v, saved[k.replace(".default", "")]):
                problems.append(f"{k} not loaded from the file")
        merged_dir = os.path.join(work, f"{family}-merged")
        run("merge", base_dir, out, merged_dir)
        merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
        with torch.no_grad():
            peft_logits, merged_logits = model(input_ids=ids).logits, merged(input_ids=ids).logits
        err = (peft_logits - merged_logits).abs().max().item()
        moved = (peft_logits - base_logits).abs().max().item()
        if not err < 1e-4:
            problems.append(f"PEFT vs hone-merged logits differ by {err:.2e}")
        detail = f"max |PEFT - hone merged| = {err:.2e}, adapter moves logits by {moved:.2e}"
    else:
        emb = model.prompt_encoder["default"].embedding.weight
        if not torch.equal(emb, saved["prompt_embeddings"]):
            problems.append("prompt_embeddings not loaded from the file")
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        moved = (logits[:, 5:] - base_logits).abs().max().item()
        detail = f"{tuple(emb.shape)} prompt, adapter moves logits by {moved:.2e}"
    if not moved > 1e-6:
        problems.append("the adapter does not change the logits")
    failures += bool(problems)
    print(f"{family} {method}: {detail} {'ok' if not problems else 'FAIL ' + '; '.join(problems)}")
sys.exit(1 if failures else 0)
