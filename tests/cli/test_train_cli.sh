#!/bin/sh
# `hone init` + `hone train --method full|lora|prompt-tuning` + `hone merge` as a user runs them:
# output folder, checkpoints, metrics, resume, PEFT adapter files, merging, and the errors for
# missing files and bad flags.
# Usage: test_train_cli.sh HONE_BINARY WORK_DIR
set -eu
hone=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
cd "$work"
fail() { echo "FAILED: $*" >&2; exit 1; }

"$hone" init --family llama --vocab 264 --hidden 32 --layers 2 --heads 4 --kv-heads 2 --max-positions 64 \
  --tokenizer byte-level --out tiny > /dev/null
for w in red green blue cat dog sun moon tree red blue; do
  printf '{"prompt": "reverse %s: ", "completion": "%s"}\n' "$w" "$(echo "$w" | rev)"
done > train.jsonl

"$hone" train --method full --model tiny --data train.jsonl --output out --steps 6 --batch 2 --seq-len 24 \
  --lr 1e-3 --save-every 3 --keep 2 --activation-checkpointing --loss-chunk 16 --quiet > train.log 2>&1 || { cat train.log; fail "train"; }
for f in config.json model.safetensors tokenizer.json tokenizer_config.json metrics.jsonl \
         checkpoint-3/model.safetensors checkpoint-6/optimizer.safetensors checkpoint-6/trainer_state.json; do
  [ -f "out/$f" ] || fail "out/$f missing"
done
[ "$(wc -l < out/metrics.jsonl)" -eq 6 ] || fail "metrics.jsonl should have 6 lines"
grep -q '"step":6' out/metrics.jsonl || fail "no step 6 in metrics"
grep -q "loss" train.log || fail "no loss summary"
"$hone" info out | grep -q "parameters" || fail "hone info cannot read the output folder"

# Resume from the newest checkpoint and continue to step 8.
"$hone" train --model tiny --data train.jsonl --output out --steps 8 --batch 2 --seq-len 24 --lr 1e-3 \
  --save-every 4 --resume auto --quiet > resume.log 2>&1 || { cat resume.log; fail "resume"; }
grep -q "resumed from .*checkpoint-6 at step 6" resume.log || { cat resume.log; fail "no resume message"; }
[ "$(wc -l < out/metrics.jsonl)" -eq 8 ] || fail "metrics.jsonl should have 8 lines after resuming"

# Helpful errors.
if "$hone" train --model tiny --data missing.jsonl --output out2 > err.log 2>&1; then fail "missing data accepted"; fi
grep -q "missing.jsonl does not exist" err.log || { cat err.log; fail "missing data message"; }
if "$hone" train --model nowhere --data train.jsonl --output out2 > err.log 2>&1; then fail "missing model accepted"; fi
grep -q "nowhere is not a folder" err.log || { cat err.log; fail "missing model message"; }
if "$hone" train --model tiny --data train.jsonl --output out2 --lr -1 > err.log 2>&1; then fail "negative lr accepted"; fi
grep -q -- "--lr" err.log || { cat err.log; fail "bad flag message"; }
if "$hone" train --method qlora --model tiny --data train.jsonl --output out2 > err.log 2>&1; then fail "qlora accepted"; fi
grep -q "method qlora is not one of full, lora, prompt-tuning" err.log || { cat err.log; fail "method message"; }
printf '{"prompt": "a", "completion": "b"}\n{"prompt": broken\n' > bad.jsonl
if "$hone" train --model tiny --data bad.jsonl --output out3 --steps 1 > err.log 2>&1; then fail "bad line accepted"; fi
grep -q "bad.jsonl:2" err.log || { cat err.log; fail "bad line message"; }
# LoRA: a PEFT adapter (no base weights) with checkpoints that resume; then merged into the base.
"$hone" train --method lora --lora-r 4 --lora-alpha 8 --lora-dropout 0.1 --lora-targets q_proj,v_proj,down_proj \
  --model tiny --data train.jsonl --output lora --steps 4 --batch 2 --seq-len 24 --lr 1e-2 --save-every 2 --quiet \
  > lora.log 2>&1 || { cat lora.log; fail "lora train"; }
for f in adapter_config.json adapter_model.safetensors metrics.jsonl checkpoint-4/adapter_model.safetensors \
         checkpoint-4/optimizer.safetensors; do
  [ -f "lora/$f" ] || fail "lora/$f missing"
done
[ ! -f lora/model.safetensors ] || fail "lora wrote base weights"
grep -q '"peft_type": "LORA"' lora/adapter_config.json || fail "not a LORA config"
grep -q '"r": 4' lora/adapter_config.json || fail "rank not in the config"
grep -q "adapter    LoRA r 4, alpha 8 on 6 linear layers" lora.log || { cat lora.log; fail "lora summary"; }
"$hone" train --method lora --lora-r 4 --lora-alpha 8 --lora-dropout 0.1 --lora-targets q_proj,v_proj,down_proj \
  --model tiny --data train.jsonl --output lora --steps 6 --batch 2 --seq-len 24 --lr 1e-2 --resume auto --quiet \
  > lora_resume.log 2>&1 || { cat lora_resume.log; fail "lora resume"; }
grep -q "resumed from .*checkpoint-4 at step 4" lora_resume.log || { cat lora_resume.log; fail "no lora resume"; }
"$hone" merge tiny lora merged > merge.log 2>&1 || { cat merge.log; fail "merge"; }
for f in config.json model.safetensors tokenizer.json; do [ -f "merged/$f" ] || fail "merged/$f missing"; done
grep -q "LoRA on 6 layers" merge.log || { cat merge.log; fail "merge summary"; }
"$hone" info merged | grep -q "parameters" || fail "hone info cannot read the merged folder"
if "$hone" merge tiny nowhere merged2 > err.log 2>&1; then fail "missing adapter accepted"; fi
grep -q "nowhere is not a folder" err.log || { cat err.log; fail "missing adapter message"; }
if "$hone" train --method lora --lora-targets c_attn --model tiny --data train.jsonl --output out4 --steps 1 \
  > err.log 2>&1; then fail "wrong targets accepted"; fi
grep -q "selects no linear layer" err.log || { cat err.log; fail "targets message"; }

# Prompt tuning initialised from text: a PROMPT_TUNING adapter; it cannot be merged.
"$hone" train --method prompt-tuning --num-virtual-tokens 4 --prompt-init text --prompt-init-text "reverse" \
  --model tiny --data train.jsonl --output prompt --steps 3 --batch 2 --seq-len 24 --lr 1e-2 --quiet \
  > prompt.log 2>&1 || { cat prompt.log; fail "prompt-tuning train"; }
grep -q '"peft_type": "PROMPT_TUNING"' prompt/adapter_config.json || fail "not a PROMPT_TUNING config"
grep -q '"num_virtual_tokens": 4' prompt/adapter_config.json || fail "virtual tokens not in the config"
grep -q '"prompt_tuning_init": "TEXT"' prompt/adapter_config.json || fail "init not in the config"
[ -f prompt/adapter_model.safetensors ] || fail "prompt adapter weights missing"
if "$hone" merge tiny prompt merged3 > err.log 2>&1; then fail "prompt merge accepted"; fi
grep -q "cannot be merged" err.log || { cat err.log; fail "prompt merge message"; }
echo "ok"
