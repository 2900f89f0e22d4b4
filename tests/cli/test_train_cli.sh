#!/bin/sh
# `hone init` + `hone train --method full` as a user runs them: output folder, checkpoints,
# metrics, resume, and the errors for missing files and bad flags.
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
  --lr 1e-3 --save-every 3 --keep 2 --quiet > train.log 2>&1 || { cat train.log; fail "train"; }
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
if "$hone" train --method lora --model tiny --data train.jsonl --output out2 > err.log 2>&1; then fail "lora accepted"; fi
grep -q "method lora is not available" err.log || { cat err.log; fail "method message"; }
printf '{"prompt": "a", "completion": "b"}\n{"prompt": broken\n' > bad.jsonl
if "$hone" train --model tiny --data bad.jsonl --output out3 --steps 1 > err.log 2>&1; then fail "bad line accepted"; fi
grep -q "bad.jsonl:2" err.log || { cat err.log; fail "bad line message"; }
echo "ok"
