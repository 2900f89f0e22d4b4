#!/usr/bin/env python3
"""Reference AdamW steps from PyTorch on the tiny fixture models (run make_fixtures.py first).
Run from this folder:  pip install torch transformers safetensors && python3 make_adamw_fixtures.py
For llama and gpt2 writes <family>/adamw_reference.safetensors: "input_ids" (2, 12) int64, "loss"
(STEPS) float64 — the mean next-token cross-entropy before each step — and "param.<name>" float64,
every parameter after STEPS steps. The model runs in double; the optimizer is torch.optim.AdamW
with weight decay on matrices only, after clipping the global gradient norm."""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

STEPS = 4
HYPER = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, max_grad_norm=0.5)

for family in ("llama", "gpt2"):
    model = AutoModelForCausalLM.from_pretrained(family, attn_implementation="eager").double().train()
    params = dict(model.named_parameters())  # a tied head appears once
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": HYPER["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=HYPER["lr"], betas=HYPER["betas"], eps=HYPER["eps"])
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=g)
    V = model.config.vocab_size
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), HYPER["max_grad_norm"])
        opt.step()
        losses.append(loss.item())
    ref = {"input_ids": ids, "loss": torch.tensor(losses, dtype=torch.float64)}
    for name, p in params.items():
        ref["param." + name] = p.detach().clone().contiguous()
    save_file(ref, os.path.join(family, "adamw_reference.safetensors"),
              metadata={"hyper": json.dumps(HYPER), "steps": str(STEPS)})
    print(family, "losses", losses)
