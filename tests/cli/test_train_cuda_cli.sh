#!/bin/sh
# `hone train --backend cuda` as a user runs it, on the emulated engine (hone-emulated: the same
# command with the engine's CUDA path on the kernel emulator): full fine-tuning writes a folder
# that the CPU build loads; checkpoints resume; and the real command without a device says so.
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

# The real command: on a machine without a device, a clear error; with one, it trains.
if "$hone" train --backend cuda --model tiny --data train.jsonl --output out_real --steps 1 --batch 2 --seq-len 24 \
  --quiet > real.log 2>&1; then
  [ -f out_real/model.safetensors ] || fail "--backend cuda succeeded without writing the model"
else
  grep -q "no CUDA device is visible" real.log || { cat real.log; fail "no-device message"; }
fi
echo "ok"
