#!/bin/sh
# `hone generate` and `hone eval` as a user runs them: a model trained by `hone train` streams
# its answer, a LoRA adapter changes the output exactly as its merged model does, the cache and
# the full recomputation agree, and `hone eval` reports accuracy for zero-shot, few-shot and
# adapter runs of one task; plus the errors for missing files and bad flags.
# Usage: test_infer_cli.sh HONE_BINARY WORK_DIR
set -eu
hone=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
cd "$work"
fail() { echo "FAILED: $*" >&2; exit 1; }

"$hone" init --family llama --vocab 264 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --max-positions 128 \
  --tokenizer byte-level --out tiny > /dev/null
for w in red green blue cat dog sun moon tree fish bird; do
  printf '{"prompt": "reverse %s: ", "completion": "%s"}\n' "$w" "$(echo "$w" | rev)"
done > task.jsonl
"$hone" train --method full --model tiny --data task.jsonl --output full --steps 80 --batch 10 --seq-len 24 \
  --lr 1e-2 --schedule constant --quiet > train.log 2>&1 || { cat train.log; fail "train"; }

# The fine-tuned model streams its answer; the JSONL output holds the same text.
"$hone" generate --model full --prompt "reverse moon: " --max-new-tokens 10 --output gen.jsonl > gen.txt 2> gen.err \
  || { cat gen.err; fail "generate"; }
[ "$(head -n 1 gen.txt)" = "noom" ] || { cat gen.txt; fail "the trained model should answer noom"; }
grep -q '"text":"noom"' gen.jsonl || { cat gen.jsonl; fail "gen.jsonl text"; }
grep -q '"finish":"eos"' gen.jsonl || { cat gen.jsonl; fail "generation should end at EOS"; }
grep -q "tokens, eos" gen.err || { cat gen.err; fail "no token count on stderr"; }
# Several prompts from a file, sampled: the same seed gives the same text; no cache agrees.
printf '{"prompt": "reverse cat: "}\n{"prompt": "reverse fish: "}\n{"messages": [{"role": "user", "content": "hi"}]}\n' \
  > prompts.jsonl
"$hone" generate --model full --file prompts.jsonl --temperature 0.8 --top-k 20 --seed 3 --max-new-tokens 8 \
  --output s1.jsonl > /dev/null
"$hone" generate --model full --file prompts.jsonl --temperature 0.8 --top-k 20 --seed 3 --max-new-tokens 8 --batch 1 \
  --no-cache --output s2.jsonl > /dev/null
cmp -s s1.jsonl s2.jsonl || { cat s1.jsonl s2.jsonl; fail "batched cached sampling differs from single uncached"; }
[ "$(wc -l < s1.jsonl)" -eq 3 ] || fail "three generations expected"
# A stop string cuts the text before it.
"$hone" generate --model full --prompt "reverse moon: " --stop "om" --output stop.jsonl > /dev/null 2>&1
grep -q '"text":"no"' stop.jsonl || { cat stop.jsonl; fail "stop string"; }
grep -q '"finish":"stop"' stop.jsonl || { cat stop.jsonl; fail "stop reason"; }

# LoRA: the adapter changes the output, exactly as the merged model does.
"$hone" train --method lora --lora-r 8 --lora-alpha 16 --model tiny --data task.jsonl --output lora --steps 40 \
  --batch 10 --seq-len 24 --lr 2e-2 --quiet > lora.log 2>&1 || { cat lora.log; fail "lora train"; }
"$hone" merge tiny lora merged > /dev/null
"$hone" generate --model tiny --prompt "reverse moon: " --max-new-tokens 6 --ignore-eos --output base.jsonl > /dev/null 2>&1
"$hone" generate --model tiny --adapter lora --prompt "reverse moon: " --max-new-tokens 6 --ignore-eos \
  --output adapted.jsonl > /dev/null 2>&1
"$hone" generate --model merged --prompt "reverse moon: " --max-new-tokens 6 --ignore-eos --output merged.jsonl \
  > /dev/null 2>&1
ids() { sed 's/.*"ids":\(\[[^]]*\]\).*/\1/' "$1"; }
[ "$(ids adapted.jsonl)" = "$(ids merged.jsonl)" ] || { cat adapted.jsonl merged.jsonl; fail "adapter vs merged"; }
[ "$(ids adapted.jsonl)" != "$(ids base.jsonl)" ] || { cat adapted.jsonl base.jsonl; fail "the adapter changed nothing"; }

# Evaluation: zero-shot on the fine-tuned model, few-shot on the base, the adapter.
"$hone" eval --model full --task task.jsonl --output ev_full > ev_full.log 2>&1 || { cat ev_full.log; fail "eval full"; }
grep -q "accuracy   1.0000 (10/10, exact)" ev_full.log || { cat ev_full.log; fail "the fine-tuned model should score 10/10"; }
grep -q '"accuracy": 1.0' ev_full/summary.json || { cat ev_full/summary.json; fail "summary.json"; }
[ "$(wc -l < ev_full/results.jsonl)" -eq 10 ] || fail "results.jsonl should have 10 lines"
grep -q "perplexity" ev_full.log || fail "no perplexity"
"$hone" eval --model tiny --task task.jsonl --shots 3 --separator '\n' --seed 1 --output ev_few > ev_few.log 2>&1 \
  || { cat ev_few.log; fail "eval few-shot"; }
grep -q "10 examples, 3-shot" ev_few.log || { cat ev_few.log; fail "few-shot header"; }
grep -q '"shots": 3' ev_few/summary.json || fail "few-shot summary"
grep -q 'reverse [a-z]*: [a-z]*\\nreverse' ev_few/results.jsonl || { head -n 2 ev_few/results.jsonl; fail "few-shot prompt"; }
"$hone" eval --model tiny --adapter lora --task task.jsonl --output ev_lora > ev_lora.log 2>&1 || { cat ev_lora.log; fail "eval lora"; }
"$hone" eval --model merged --task task.jsonl --output ev_merged > /dev/null 2>&1
grep -q "adapter lora" ev_lora.log || { cat ev_lora.log; fail "adapter header"; }
[ "$(grep -o '"accuracy": [0-9.e-]*' ev_lora/summary.json)" = "$(grep -o '"accuracy": [0-9.e-]*' ev_merged/summary.json)" ] \
  || fail "adapter and merged accuracy differ"
printf '{"prompt": "reverse cat: ", "choices": ["tac", "cat", "dog"], "answer": 0}\n' > choice.jsonl
"$hone" eval --model full --task choice.jsonl --metric choice --target-field answer > ev_choice.log 2>&1 \
  || { cat ev_choice.log; fail "eval choice"; }
grep -q "accuracy   1.0000 (1/1, choice)" ev_choice.log || { cat ev_choice.log; fail "multiple choice"; }

# Helpful errors.
if "$hone" generate --model full > err.log 2>&1; then fail "no prompt accepted"; fi
grep -q "give --prompt TEXT or --file" err.log || { cat err.log; fail "no prompt message"; }
if "$hone" generate --model full --prompt x --adapter nowhere > err.log 2>&1; then fail "missing adapter accepted"; fi
grep -q "nowhere is not a folder" err.log || { cat err.log; fail "missing adapter message"; }
if "$hone" generate --model lora --prompt x > err.log 2>&1; then fail "adapter as model accepted"; fi
grep -q "it is an adapter folder" err.log || { cat err.log; fail "adapter as model message"; }
if "$hone" eval --model full --task missing.jsonl > err.log 2>&1; then fail "missing task accepted"; fi
grep -q "missing.jsonl does not exist" err.log || { cat err.log; fail "missing task message"; }
if "$hone" eval --model full --task task.jsonl --shots 20 > err.log 2>&1; then fail "too many shots accepted"; fi
grep -q "20 shots need 20 pool examples" err.log || { cat err.log; fail "shots message"; }
if "$hone" eval --model full --task task.jsonl --template "{question}" > err.log 2>&1; then fail "bad template accepted"; fi
grep -q "uses field 'question'" err.log || { cat err.log; fail "template message"; }
echo "ok"
