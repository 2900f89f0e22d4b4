#!/usr/bin/env python3
"""Greedy continuations of the tiny fixture models (../models/<family>) recorded with
transformers' generate(), so hone's generator is checked against the real implementation.
Run from this folder:
    pip install torch transformers safetensors && python3 make_generate_fixtures.py
Writes greedy.json: for each family, prompts of different lengths (random ids, seeded) with
  "prompt"            the prompt ids,
  "generated"         generate(do_sample=False, max_new_tokens=12) without the prompt (stops
                      after the model's EOS, id 2, as generate does),
  "generated_penalty" the same with repetition_penalty=1.5 (over prompt and generated ids),
  "next_logits"       the next-token logits after the prompt (float64),
  "margin"            the smallest gap between the two largest logits over the greedy steps.
The models run in float64. Prompts whose margin is below 1e-6 are redrawn, so that rounding
(transformers computes RoPE's cos/sin in float32) cannot flip a greedy choice."""
import json
import os

import torch
from transformers import AutoModelForCausalLM

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gpt2"]
LENGTHS = [1, 5, 9]
NEW_TOKENS = 12


def greedy(model, prompt, penalty=None):
    ids = torch.tensor([prompt])
    kwargs = dict(do_sample=False, max_new_tokens=NEW_TOKENS, pad_token_id=0)
    if penalty:
        kwargs["repetition_penalty"] = penalty
    out = model.generate(ids, attention_mask=torch.ones_like(ids), output_scores=True,
                         return_dict_in_generate=True, **kwargs)
    gen = out.sequences[0, len(prompt):].tolist()
    margin = min(float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores)
    return gen, margin


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    result = {}
    for family in FAMILIES:
        model = AutoModelForCausalLM.from_pretrained(os.path.join(here, "..", "models", family),
                                                     attn_implementation="eager").double().eval()
        g = torch.Generator().manual_seed(11)
        cases = []
        for length in LENGTHS:
            while True:
                prompt = torch.randint(3, model.config.vocab_size, (length,), generator=g).tolist()
                with torch.no_grad():
                    gen, margin = greedy(model, prompt)
                    gen_pen, margin_pen = greedy(model, prompt, penalty=1.5)
                    logits = model(torch.tensor([prompt])).logits[0, -1]
                if min(margin, margin_pen) > 1e-6:
                    break
            cases.append({"prompt": prompt, "generated": gen, "generated_penalty": gen_pen,
                          "next_logits": logits.tolist(), "margin": min(margin, margin_pen)})
        result[family] = cases
        print(family, [len(c["generated"]) for c in cases], min(c["margin"] for c in cases))
    import transformers
    result["_source"] = f"make_generate_fixtures.py, transformers {transformers.__version__}, torch {torch.__version__}"
    with open(os.path.join(here, "greedy.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
