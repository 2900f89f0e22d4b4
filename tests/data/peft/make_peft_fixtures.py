#!/usr/bin/env python3
"""PEFT adapters made by the real PEFT library on the tiny models of ../models, with the logits
PEFT computes through them, so hone's adapter loading and forward are checked against PEFT.
Run from this folder:  pip install torch transformers peft safetensors && python3 make_peft_fixtures.py
Each <name>/ holds adapter_config.json + adapter_model.safetensors exactly as PEFT saved them,
and reference.safetensors: "input_ids" (B, T) int64 and "logits" float64 — the model and
adapter run in double precision; for prompt tuning the logits of the real tokens only
(PEFT's output minus the num_virtual_tokens leading positions)."""
import json
import os

import torch
from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

os.chdir(os.path.dirname(os.path.abspath(__file__)))  # relative paths: base_model_name_or_path is "../models/<family>"
MODELS = os.path.join("..", "models")

fixtures = {
    # Every projection, B not zero (init_lora_weights=False) so the adapter changes the logits;
    # per-module rank and alpha through rank_pattern / alpha_pattern.
    "llama_lora": ("llama", LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, lora_alpha=8, lora_dropout=0.1,
                                       target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                       "up_proj", "down_proj"],
                                       rank_pattern={"down_proj": 2}, alpha_pattern={"o_proj": 3},
                                       init_lora_weights=False)),
    # A regex target and rsLoRA scaling on a model with q/k/v biases.
    "qwen2_lora": ("qwen2", LoraConfig(task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=4, use_rslora=True,
                                       target_modules=r".*\.(q_proj|v_proj|down_proj)", init_lora_weights=False)),
    # GPT-2's Conv1D layers (fused c_attn) on the second block only.
    "gpt2_lora": ("gpt2", LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, lora_alpha=8, fan_in_fan_out=True,
                                     target_modules=["c_attn", "c_proj", "c_fc"], layers_to_transform=[1],
                                     init_lora_weights=False)),
    "llama_prompt": ("llama", PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=5,
                                                 prompt_tuning_init=PromptTuningInit.RANDOM)),
    "gpt2_prompt": ("gpt2", PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=3,
                                               prompt_tuning_init=PromptTuningInit.RANDOM)),
}

for name, (family, config) in fixtures.items():
    torch.manual_seed(4321)
    base_dir = os.path.join(MODELS, family)
    base = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="eager")
    model = get_peft_model(base, config)
    with torch.no_grad():  # move the prompt off PEFT's N(0, 1) draw to the scale of embeddings
        for n, p in model.named_parameters():
            if "prompt_encoder" in n:
                p.mul_(0.05)
    model.save_pretrained(name)
    os.remove(os.path.join(name, "README.md"))  # PEFT's model-card template, not needed
    model = model.double().eval()
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(0, base.config.vocab_size, (2, 9), generator=g)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if isinstance(config, PromptTuningConfig):
        logits = logits[:, config.num_virtual_tokens:]
    save_file({"input_ids": ids, "logits": logits.contiguous()}, os.path.join(name, "reference.safetensors"))
    with open(os.path.join(name, "README.txt"), "w") as f:
        f.write(f"{name}: PEFT adapter on ../models/{family} from make_peft_fixtures.py (peft "
                f"{__import__('peft').__version__}, torch {torch.__version__})\n")
    print(name, tuple(logits.shape))
