#!/usr/bin/env python3
"""A tiny Mistral with a sliding window shorter than its input, with reference outputs from
transformers (same layout as make_fixtures.py: config.json, model.safetensors and
reference.safetensors with input_ids, logits, loss and grad.<name>, all float64).
Run from this folder:  pip install torch transformers safetensors && python3 make_window_fixture.py"""
import os

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, MistralConfig

config = MistralConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, rope_theta=1e6,
                       sliding_window=5, tie_word_embeddings=False)
torch.manual_seed(4321)
model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
with torch.no_grad():
    for p in model.parameters():
        p.add_(torch.randn_like(p) * (0.1 if p.dim() == 1 else 0.02))
os.makedirs("mistral_window", exist_ok=True)
model.save_pretrained("mistral_window", safe_serialization=True)
model = model.double()
ids = torch.randint(0, config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(9))
out = model(input_ids=ids)
loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 96), ids[:, 1:].reshape(-1))
loss.backward()
ref = {"input_ids": ids, "logits": out.logits.detach(), "loss": loss.detach().reshape(1)}
for name, p in model.named_parameters():
    ref["grad." + name] = p.grad.detach().clone()
# Without the window the logits differ: the fixture would catch a model that ignored it.
model.config.sliding_window = None
ref["logits_without_window"] = model(input_ids=ids).logits.detach()
save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join("mistral_window", "reference.safetensors"))
with open(os.path.join("mistral_window", "README.txt"), "w") as f:
    f.write("mistral_window: random tiny Mistral with sliding_window=5, from make_window_fixture.py "
            f"(transformers {__import__('transformers').__version__})\n")
