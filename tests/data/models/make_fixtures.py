#!/usr/bin/env python3
"""Tiny random Hugging Face models with reference outputs computed by transformers itself, so
hone's model code is checked against the real implementation. Note: transformers computes RoPE
cos/sin in float32 even for a double model, so RoPE families agree to ~1e-7 relative only. Run from this folder:
    pip install torch transformers safetensors && python3 make_fixtures.py
For each family writes <family>/config.json + model.safetensors (float32) and
<family>/reference.safetensors: "input_ids" (B, T) int64, "logits" (B, T, V) float64, "loss"
(the mean next-token cross-entropy transformers computes with labels = input_ids) and
"grad.<parameter name>" float64 for every parameter — all in float64 (model run in double)."""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

common = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
              rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
configs = {
    "llama": LlamaConfig(**common, rope_theta=10000.0, tie_word_embeddings=False,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "mistral": MistralConfig(**common, rope_theta=1e6, sliding_window=None, tie_word_embeddings=False),
    "qwen2": Qwen2Config(**common, rope_theta=1e6, tie_word_embeddings=True, use_sliding_window=False),
    "qwen3": Qwen3Config(**{**common, "num_key_value_heads": 1}, head_dim=16, rope_theta=1e6,
                         tie_word_embeddings=True, attention_bias=False, use_sliding_window=False),
    "gpt2": GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64, n_inner=None,
                       activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                       bos_token_id=1, eos_token_id=2),
}

for family, config in configs.items():
    torch.manual_seed(1234)
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    with torch.no_grad():  # move norms and biases off 1 and 0 so mistakes in them show
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.1 if p.dim() == 1 else 0.02))
    os.makedirs(family, exist_ok=True)
    model.save_pretrained(family, safe_serialization=True)

    model = model.double()
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, config.vocab_size, (2, 12), generator=g)
    out = model(input_ids=ids)
    # The causal-LM loss (labels = input_ids, shifted by one) in double precision: transformers'
    # own loss upcasts to float32, which would blur the reference gradients.
    V = config.vocab_size
    loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    loss.backward()
    ref = {"input_ids": ids, "logits": out.logits.detach(), "loss": loss.detach().reshape(1)}
    seen = set()
    for name, p in model.named_parameters():
        if p.grad is not None and p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            ref["grad." + name] = p.grad.detach().clone()
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(family, "reference.safetensors"))
    with open(os.path.join(family, "README.txt"), "w") as f:
        f.write(f"{family}: random tiny model from make_fixtures.py (transformers {__import__('transformers').__version__}, "
                f"torch {torch.__version__}); loss {loss.item():.10f}\n")
    print(family, loss.item(), sum(p.numel() for p in model.parameters()))
