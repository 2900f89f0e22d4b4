#!/bin/sh
# `hone train|generate|eval --backend cuda` as a user runs them, on the emulated engine
# (hone-emulated: the same command with the engine's CUDA path on the kernel emulator): full
# fine-tuning writes a folder that the CPU build loads; checkpoints resume; a fine-tuned model
# scores on cuda as on the CPU; a LoRA adapter trained on cuda changes the output;
# and the real command without a device says so.
# Usage: test_train_cuda_cli.sh HONE_EMULATED HONE WORK_DIR
set -eu
emulated=$1
hone=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
cd "$work"
fail() { echo "FAILED: $*" >&2; exit 1; }

# Head dim 32 (64 / 2): the attention kernels take 32, 64, 96 or 128.
"$hone" init --family llama --vocab 264 --hidden 64 --layers 2 --heads 2 --kv-heads 1 --max-positions 64 \
  --tokenizer byte-level --out tiny > /dev/null
for w in red green blue cat dog sun moon tree red blue; do
  printf '{"prompt": "reverse %s: ", "completion": "%s"}\n' "$w" "$(echo "$w" | rev)"
done > train.jsonl

"$emulated" train --backend cuda --method full --model tiny --data train.jsonl --output out --steps 4 --batch 2 \
  --seq-len 24 --lr 1e-3 --save-every 2 --quiet > train.log 2>&1 || { cat train.log; fail "train --backend cuda"; }
for f in config.json model.safetensors tokenizer.json metrics.jsonl checkpoint-4/optimizer.safetensors; do
  [ -f "out/$f" ] || fail "out/$f missing"
done
[ "$(wc -l < out/metrics.jsonl)" -eq 4 ] || fail "metrics.jsonl should have 4 lines"
# The loss is finite and falls from the first step to the last.
first=$(head -n 1 out/metrics.jsonl | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(tail -n 1 out/metrics.jsonl | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a > 0 && b > 0 && b < a) }' || fail "loss did not fall: $first -> $last"
# The folder (bf16 weights from the device) loads in the CPU build.
"$hone" info out | grep -q "parameters" || fail "the CPU build cannot read the device run's folder"

"$emulated" train --backend cuda --model tiny --data train.jsonl --output out --steps 6 --batch 2 --seq-len 24 \
  --lr 1e-3 --save-every 2 --resume auto --quiet > resume.log 2>&1 || { cat resume.log; fail "resume on cuda"; }
grep -q "resumed from .*checkpoint-4 at step 4" resume.log || { cat resume.log; fail "no resume message"; }
[ "$(wc -l < out/metrics.jsonl)" -eq 6 ] || fail "metrics.jsonl should have 6 lines after resuming"

# A head dim the kernels do not take is refused with the supported ones named.
"$hone" init --family llama --vocab 264 --hidden 32 --layers 1 --heads 4 --max-positions 64 \
  --tokenizer byte-level --out hd8 > /dev/null
if "$emulated" train --backend cuda --model hd8 --data train.jsonl --output out_hd8 --steps 1 --quiet > err.log 2>&1; then
  fail "head dim 8 accepted on cuda"
fi
grep -q "32, 64, 96 or 128" err.log || { cat err.log; fail "head dim message"; }

# Generation and evaluation on cuda: a model fine-tuned (on the CPU, where it is quick) scores on
# the device as on the CPU, a LoRA adapter trained on the device changes the device's output.
for w in red green blue cat dog sun moon tree fish bird; do
  printf '{"prompt": "reverse %s: ", "completion": "%s"}\n' "$w" "$(echo "$w" | rev)"
done > task.jsonl
"$hone" train --method full --model tiny --data task.jsonl --output full --steps 80 --batch 10 --seq-len 24 \
  --lr 1e-2 --schedule constant --quiet > full.log 2>&1 || { cat full.log; fail "cpu train"; }
"$emulated" generate --backend cuda --model full --prompt "reverse moon: " --max-new-tokens 10 --output gen.jsonl \
  > gen.txt 2> gen.err || { cat gen.err; fail "generate --backend cuda"; }
grep -q '"finish":"eos"' gen.jsonl || { cat gen.jsonl; fail "generation on cuda should end at EOS"; }
# How well the fine-tuning went depends on the CPU build (its instruction set changes the
# rounding); the device must score what the CPU scores on the same folder, within one answer
# that bf16 may flip, and its generate and eval must agree with each other.
"$hone" eval --model full --task task.jsonl --output ev_cpu > ev_cpu.log 2>&1 || { cat ev_cpu.log; fail "eval on cpu"; }
"$emulated" eval --backend cuda --model full --task task.jsonl --output ev > ev.log 2>&1 || { cat ev.log; fail "eval on cuda"; }
acc_cpu=$(sed -n 's/^accuracy *\([0-9.]*\) .*/\1/p' ev_cpu.log)
acc=$(sed -n 's/^accuracy *\([0-9.]*\) .*/\1/p' ev.log)
awk -v a="$acc" -v c="$acc_cpu" 'BEGIN { exit !(c >= 0.5 && a >= c - 0.1) }' \
  || { cat ev_cpu.log ev.log; fail "accuracy on cuda $acc vs $acc_cpu on the cpu"; }
grep -q "\"prediction\":\"$(head -n 1 gen.txt)\",\"prompt\":\"reverse moon: \"" ev/results.jsonl \
  || { cat gen.txt; grep moon ev/results.jsonl; fail "generate and eval disagree on cuda"; }
"$emulated" train --backend cuda --method lora --lora-r 8 --lora-alpha 16 --model tiny --data task.jsonl --output lora \
  --steps 6 --batch 4 --seq-len 24 --lr 5e-2 --quiet > lora.log 2>&1 || { cat lora.log; fail "lora on cuda"; }
for f in adapter_config.json adapter_model.safetensors; do [ -f "lora/$f" ] || fail "lora/$f missing"; done
"$emulated" generate --backend cuda --model tiny --prompt "reverse moon: " --max-new-tokens 6 --ignore-eos \
  --output base.jsonl > /dev/null 2>&1 || fail "base generate on cuda"
"$emulated" generate --backend cuda --model tiny --adapter lora --prompt "reverse moon: " --max-new-tokens 6 \
  --ignore-eos --output adapted.jsonl > /dev/null 2>&1 || fail "adapter generate on cuda"
ids() { sed 's/.*"ids":\(\[[^]]*\]\).*/\1/' "$1"; }
[ "$(ids adapted.jsonl)" != "$(ids base.jsonl)" ] || { cat adapted.jsonl base.jsonl; fail "the adapter changed nothing on cuda"; }

# The real command: on a machine without a device, a clear error; with one, it trains.
if "$hone" train --backend cuda --model tiny --data train.jsonl --output out_real --steps 1 --batch 2 --seq-len 24 \
  --quiet > real.log 2>&1; then
  [ -f out_real/model.safetensors ] || fail "--backend cuda succeeded without writing the model"
else
  grep -q "no CUDA device is visible" real.log || { cat real.log; fail "no-device message"; }
fi
echo "ok"
