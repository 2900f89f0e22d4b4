#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA device (network access not needed), run hone's [gpu]
# tests and kernel benchmarks and print a short table. Run from anywhere; it works in the
# repository root.
#
#   benchmarks/gpu_check.sh [--quick] [--mode auto|prebuilt|source] [--bundle DIR]
#                           [--build-dir DIR] [--no-torch]
#
# Binaries come from one of two places:
#   prebuilt  DIR/bin.tar.xz (or DIR/bin; default DIR: .gpu), made elsewhere by
#             scripts/build_gpu_bundle.sh: the [gpu] test binaries, the device benchmarks and the
#             hone command for sm_90a, C++ runtime and libraries linked in.
#             cuBLAS/cuBLASLt stay shared libraries: they are looked up in the NVIDIA pip wheels
#             of the machine's Python, then in the CUDA toolkit.
#   source    cmake + ninja build of the GPU targets alone (-DCMAKE_CUDA_ARCHITECTURES=90a) into
#             --build-dir (default build-gpu); needs the project's build dependencies, found on
#             the system or under DIR/deps when the bundle carries them, and the cuDNN frontend
#             headers of DIR/cudnn-frontend.tar.gz for the cuDNN attention baseline.
# auto (the default) takes prebuilt when DIR/bin/bench_gpu exists, else source.
#
# Then: one nvidia-smi line; every [gpu] test binary (pass/fail counts); an end-to-end run of
# the command (hone train/generate/eval --backend cuda on a tiny model); bench_gpu (GEMM
# TFLOP/s of hone and cuBLAS at 8192³ and Llama-8B training shapes, flash-attention forward and
# backward TFLOP/s at head dims 64/128 and 512-16k tokens with cuDNN's fused attention timed in
# the same run on the same inputs, device-to-device copy GB/s); bench_generate --device cuda
# (bf16 Llama-3.2-1B-shaped model: prefill and decode tokens/s at batch 1 and 8 with the KV
# cache, and the bytes a decode step reads over its time as a fraction of the copy bandwidth
# measured in the same run); bench_train --device cuda (GPT-2 124M and, without --quick, a 1.1B
# Llama shape: training tokens/s, TFLOP/s, MFU, peak memory, PyTorch's mixed-precision step);
# bench_memory --device cuda (peak device memory of full fine-tuning, LoRA and prompt tuning);
# torch.matmul at the same GEMM
# shapes and torch's scaled_dot_product_attention with the cuDNN and the FlashAttention-2
# backends at the same attention shapes when python3 has torch; a summary table (the attention
# rows show hone's ratio to bench_gpu's cuDNN, or to torch's when bench_gpu has none). With $OUT
# set, gpu_check.log, gpu_check.json (every report) and gpu_tests.log are written there as the run
# goes. The steps after the build share about 5 minutes (--quick: 2); a step that would not fit
# is skipped and named.
#
# Exit codes: 0 all tests passed, 1 a test or benchmark failed, 2 bad usage or no binaries,
# 77 no device (HONE_GPU_CHECK_DEVICE=none forces this, for testing the script anywhere).
set -u -o pipefail

quick=0
mode=auto
bundle=.gpu
build_dir=build-gpu
torch=1
usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "gpu_check: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --mode) [[ $# -ge 2 ]] || die "--mode needs a value"; mode=$2; shift ;;
    --bundle) [[ $# -ge 2 ]] || die "--bundle needs a directory"; bundle=$2; shift ;;
    --build-dir) [[ $# -ge 2 ]] || die "--build-dir needs a directory"; build_dir=$2; shift ;;
    --no-torch) torch=0 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
case "$mode" in auto|prebuilt|source) ;; *) die "--mode must be auto, prebuilt or source (got '$mode')" ;; esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

# ---------------------------------------------------------------- device
if [[ "${HONE_GPU_CHECK_DEVICE:-}" == none ]]; then
  echo "gpu_check: no device (HONE_GPU_CHECK_DEVICE=none); nothing to run"
  exit 77
fi
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu_check: no device (nvidia-smi not found); nothing to run"
  exit 77
fi
gpu_line=$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null | head -n 1)
if [[ -z "$gpu_line" ]]; then
  echo "gpu_check: no device (nvidia-smi lists no GPU); nothing to run"
  exit 77
fi
echo "gpu_check: device: $gpu_line"

out_dir=${OUT:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log() { echo "$@" | tee -a "$work/gpu_check.log"; }

# ---------------------------------------------------------------- binaries
if [[ "$mode" == auto ]]; then
  if [[ -x "$bundle/bin/bench_gpu" || -f "$bundle/bin.tar.xz" ]]; then mode=prebuilt; else mode=source; fi
fi
if [[ "$mode" == prebuilt ]]; then
  bin="$bundle/bin"
  if [[ -f "$bundle/bin.tar.xz" ]]; then  # the bundle's binaries, compressed (build_gpu_bundle.sh)
    if command -v xz >/dev/null; then
      xz -dc "$bundle/bin.tar.xz" | tar -C "$work" -xf - || die "cannot unpack $bundle/bin.tar.xz"
    else
      python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' \
        "$bundle/bin.tar.xz" "$work" || die "cannot unpack $bundle/bin.tar.xz"
    fi
    bin="$work/bin"
  fi
  [[ -x "$bin/bench_gpu" ]] || die "no prebuilt binaries in $bin (run scripts/build_gpu_bundle.sh where the dependencies are)"
  log "gpu_check: prebuilt binaries from $bin ($(head -n 1 "$bundle/BUILD_INFO" 2>/dev/null || echo 'no BUILD_INFO'))"
else
  command -v cmake >/dev/null || die "source mode needs cmake"
  command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] || die "source mode needs nvcc"
  export PATH="$PATH:/usr/local/cuda/bin"
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  prefix=()
  if [[ -d "$bundle/deps" ]]; then
    prefix=(-DCMAKE_PREFIX_PATH="$root/$bundle/deps")
    export PKG_CONFIG_PATH="$root/$bundle/deps/lib/pkgconfig:${PKG_CONFIG_PATH:-}"
  fi
  if [[ -f "$bundle/cudnn-frontend.tar.gz" ]]; then
    mkdir -p "$build_dir/cudnn-frontend" && tar -C "$build_dir/cudnn-frontend" -xzf "$bundle/cudnn-frontend.tar.gz" &&
      prefix+=(-DHONE_CUDNN_FRONTEND_INCLUDE="$(cd "$build_dir/cudnn-frontend" && pwd)")
  fi
  log "gpu_check: building the GPU targets from source into $build_dir"
  if ! cmake -S . -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DHONE_CUDA=ON \
       -DCMAKE_CUDA_ARCHITECTURES=90a -DHONE_BUILD_CLI=ON "${prefix[@]}" >"$work/configure.log" 2>&1; then
    tail -n 20 "$work/configure.log"
    die "configure failed (missing dependencies? build a bundle elsewhere with scripts/build_gpu_bundle.sh)"
  fi
  benches=(bench_gpu bench_gpu_kernels bench_generate bench_train bench_memory)
  targets=("${benches[@]}")
  for src in tests/gpu/test_gpu*.cpp; do targets+=("$(basename "$src" .cpp)"); done
  if ! cmake --build "$build_dir" --target "${targets[@]}" hone_cli -j "$(nproc)" >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log"
    die "build failed"
  fi
  mkdir -p "$work/bin"
  for b in "${benches[@]}"; do cp "$build_dir/benchmarks/$b" "$work/bin/"; done
  for t in "${targets[@]:${#benches[@]}}"; do cp "$build_dir/tests/$t" "$work/bin/"; done
  cp "$build_dir/bindings/cli/hone" "$work/bin/"
  bin="$work/bin"
  log "gpu_check: built in $(elapsed) s"
fi

# Shared libraries the binaries need and the loader does not find: search the NVIDIA pip wheels
# of any Python on the machine, then the CUDA toolkit.
missing=$(for f in "$bin"/*; do ldd "$f" 2>/dev/null; done | awk '/not found/ {print $1}' | sort -u)
if [[ -n "$missing" ]]; then
  dirs=()
  for lib in $missing; do
    found=$(find /opt /usr/local /usr/lib -name "$lib" -path '*nvidia*' 2>/dev/null | head -n 1)
    [[ -z "$found" ]] && found=$(find /usr/local/cuda*/ -name "$lib" 2>/dev/null | head -n 1)
    if [[ -n "$found" ]]; then dirs+=("$(dirname "$found")"); else log "gpu_check: warning: $lib not found"; fi
  done
  libpath=$(printf '%s\n' "${dirs[@]}" | sort -u | paste -sd: -)
  export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "gpu_check: library path $libpath"
fi

# ---------------------------------------------------------------- [gpu] tests
tests_passed=0
tests_failed=0
binaries_failed=()
# The steps after the build share one budget (5 minutes, 2 with --quick, less a margin): each
# runs under its own limit cut to what is left, and is skipped (and reported) when too little
# is left to start it. Results are copied to $OUT after every step, so a run stopped from
# outside still returns what it measured.
budget=$(( quick ? 110 : 280 ))
runs_start=$(date +%s)
skipped=()
step_limit() {
  local left=$(( budget - ($(date +%s) - runs_start) ))
  local t=$(( $1 < left ? $1 : left ))
  if (( t >= 10 )); then echo "$t"; else echo 0; fi
}
publish() {
  [[ -n "$out_dir" ]] || return 0
  mkdir -p "$out_dir"
  cp "$work/gpu_check.log" "$out_dir/" 2>/dev/null
  cat "$work"/test_gpu*.log "$work/e2e.log" >"$out_dir/gpu_tests.log" 2>/dev/null
  for f in bench_gpu.json bench_gpu_kernels.json bench_generate.json bench_train.json bench_memory.json; do
    [[ -f "$work/$f" ]] && cp "$work/$f" "$out_dir/"
  done
  return 0
}
for t in "$bin"/test_gpu*; do
  [[ -x "$t" ]] || continue
  name=$(basename "$t")
  lim=$(step_limit $(( quick ? 60 : 120 )))
  if (( lim == 0 )); then skipped+=("$name"); continue; fi
  timeout "$lim" "$t" --reporter compact >"$work/$name.log" 2>&1
  rc=$?
  # Catch2's compact summary: "Passed all 7 test cases with 123 assertions." or
  # "Failed 1 test case, failed 2 assertions." after per-case lines.
  total=$("$t" --list-test-names-only 2>/dev/null | grep -c .)
  if [[ $rc -eq 0 ]]; then
    tests_passed=$(( tests_passed + total ))
    log "  $name: all $total test cases passed"
  elif [[ $rc -eq 77 ]]; then
    tests_failed=$(( tests_failed + total ))
    binaries_failed+=("$name")
    log "  $name: skipped itself: it sees no CUDA device although nvidia-smi does (counted as failed)"
  else
    failed=$(grep -oE 'Failed [0-9]+ test case' "$work/$name.log" | grep -oE '[0-9]+' | head -n 1)
    failed=${failed:-$total}
    tests_failed=$(( tests_failed + failed ))
    tests_passed=$(( tests_passed + total - failed ))
    binaries_failed+=("$name")
    log "  $name: $failed of $total test cases FAILED (exit $rc)"
    grep -E 'FAILED|failed|error' "$work/$name.log" | head -n 15 | sed 's/^/    /' | tee -a "$work/gpu_check.log"
  fi
done
log "gpu_check: [gpu] tests: $tests_passed passed, $tests_failed failed ($(elapsed) s)"
publish

# ---------------------------------------------------------------- end to end
# The command as a user runs it on the device: a tiny Llama (head dim 64) fine-tuned with
# `hone train --backend cuda` to reverse words, then `hone generate` and `hone eval` on cuda.
e2e="not run (no hone in $bin)"
if [[ -x "$bin/hone" ]]; then
  hone_bin=$(cd "$bin" && pwd)/hone
  mkdir -p "$work/e2e"
  if (
    # (set -e does not act inside a tested subshell: every command says how it fails)
    cd "$work/e2e" || exit 1
    "$hone_bin" init --family llama --vocab 264 --hidden 128 --layers 2 --heads 2 --max-positions 128 \
      --tokenizer byte-level --out tiny || { echo "hone init failed"; exit 1; }
    for w in red green blue cat dog sun moon tree fish bird; do
      printf '{"prompt": "reverse %s: ", "completion": "%s"}\n' "$w" "$(echo "$w" | rev)"
    done >task.jsonl
    timeout 60 "$hone_bin" train --backend cuda --method full --model tiny --data task.jsonl --output full \
      --steps 80 --batch 10 --seq-len 24 --lr 1e-2 --schedule constant --quiet || { echo "hone train failed"; exit 1; }
    timeout 30 "$hone_bin" generate --backend cuda --model full --prompt "reverse moon: " --max-new-tokens 10 \
      >gen.txt || { echo "hone generate failed"; exit 1; }
    timeout 30 "$hone_bin" eval --backend cuda --model full --task task.jsonl >eval.log || { echo "hone eval failed"; exit 1; }
    # The CPU build learns every answer of this task; on the device most must come out too.
    acc=$(sed -n 's/^accuracy *\([0-9.]*\) .*/\1/p' eval.log)
    awk -v a="$acc" 'BEGIN { exit !(a >= 0.7) }' || { echo "accuracy $acc on the device (expected at least 0.7)"; exit 1; }
  ) >"$work/e2e.log" 2>&1; then
    e2e="passed: answer '$(head -n 1 "$work/e2e/gen.txt")' (expected noom), $(grep -m 1 accuracy "$work/e2e/eval.log")"
  else
    e2e="FAILED (see e2e.log)"
    tests_failed=$(( tests_failed + 1 ))
    binaries_failed+=("hone end to end")
    tail -n 15 "$work/e2e.log" | sed 's/^/    /' | tee -a "$work/gpu_check.log"
  fi
fi
log "gpu_check: end to end (hone train/generate/eval --backend cuda): $e2e"
publish

# ---------------------------------------------------------------- benchmarks
bench_ok=1
# run_bench NAME LIMIT WHAT ARGS...: $bin/NAME under the time budget, its output in the log; a
# failure clears bench_ok, a binary the bundle lacks is reported as WHAT not measured.
run_bench() {
  local name=$1 limit=$2 what=$3
  shift 3
  publish
  local lim
  lim=$(step_limit "$limit")
  if (( lim == 0 )); then
    skipped+=("$name")
  elif [[ ! -x "$bin/$name" ]]; then
    log "gpu_check: no $name in $bin; $what not measured"
  elif ! timeout "$lim" "$bin/$name" "$@" 2>&1 | tee -a "$work/gpu_check.log"; then
    bench_ok=0
    log "gpu_check: $name FAILED"
  fi
}
q=(); (( quick )) && q=(--quick)
# GEMM and attention (with cuDNN's fused attention), copy bandwidth.
run_bench bench_gpu $(( quick ? 90 : 200 )) "GEMM and attention" --json "$work/bench_gpu.json" "${q[@]}"
# The memory-bound kernels: GB/s against the copy measured in the same run.
run_bench bench_gpu_kernels $(( quick ? 60 : 120 )) "kernel bandwidth" --json "$work/bench_gpu_kernels.json" "${q[@]}"
# Generation on the device: decode tokens/s at batch 1 and 8 and the fraction of the copy
# bandwidth a batch-1 decode step reaches.
run_bench bench_generate $(( quick ? 60 : 120 )) generation --device cuda --json "$work/bench_generate.json" "${q[@]}"
# Full fine-tuning on the device: tokens/s, TFLOP/s, MFU and peak memory of hone's trainer (bf16,
# fp32 master weights), with PyTorch's mixed-precision step on the same model and batch.
train_args=(--device cuda --json "$work/bench_train.json" --torch-script benchmarks/bench_train_torch.py "${q[@]}")
(( torch )) || train_args+=(--no-torch)
run_bench bench_train $(( quick ? 60 : 150 )) training "${train_args[@]}"
# Peak device memory of full fine-tuning, LoRA and prompt tuning on one Llama shape.
run_bench bench_memory 60 "memory per method" --device cuda --json "$work/bench_memory.json" "${q[@]}"

# torch.matmul at the same shapes, for a third figure (skipped without torch).
publish
lim=$(step_limit $(( quick ? 90 : 150 )))
(( lim == 0 )) && (( torch )) && skipped+=(torch)
if (( torch && lim > 0 )) && [[ -f "$work/bench_gpu.json" ]] && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  timeout "$lim" python3 - "$work/bench_gpu.json" "$work/torch.json" "$quick" <<'PY' 2>&1 | tee -a "$work/gpu_check.log"
import json, statistics, sys, torch
bench = json.load(open(sys.argv[1]))
iters = 10 if sys.argv[3] == "1" else 30
gemm_out = []
for g in bench["gemm"]:
    m, n, k = g["m"], g["n"], g["k"]
    a = torch.randn(k if g["a_trans"] else m, m if g["a_trans"] else k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n if g["b_trans"] else k, k if g["b_trans"] else n, device="cuda", dtype=torch.bfloat16)
    f = lambda: (a.t() if g["a_trans"] else a) @ (b.t() if g["b_trans"] else b)
    for _ in range(3): f()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); f(); e.record(); e.synchronize()
        times.append(s.elapsed_time(e))
    ms = statistics.median(times)
    gemm_out.append({"name": g["name"], "m": m, "n": n, "k": k, "ms": ms, "tflops": 2 * m * n * k / ms / 1e9})
# Attention: scaled_dot_product_attention on (batch, heads, seq, hd) views of (batch, seq,
# heads, hd) tensors, per backend (cuDNN, FlashAttention-2); backward alone via autograd.grad.
attn = []
try:
    from torch.nn.attention import sdpa_kernel, SDPBackend
    backends = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash2": SDPBackend.FLASH_ATTENTION}
except ImportError:
    backends = {}
def timed(f):
    for _ in range(2): f()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); f(); e.record(); e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)
for a in bench.get("attention", []):
    b, t, h, d = a["batch"], a["seq"], a["heads"], a["hd"]
    row = {"name": a["name"]}
    for label, backend in backends.items():
        try:
            q, k, v = (torch.randn(b, t, h, d, device="cuda", dtype=torch.bfloat16).transpose(1, 2).requires_grad_() for _ in range(3))
            g = torch.randn(b, h, t, d, device="cuda", dtype=torch.bfloat16)
            with sdpa_kernel(backend):
                f = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=a["causal"])
                fwd = timed(f)
                out = f()
                bwd = timed(lambda: torch.autograd.grad(out, (q, k, v), g, retain_graph=True))
            row[label + "_fwd_tflops"] = a["fwd_flop"] / fwd / 1e9
            row[label + "_bwd_tflops"] = 2.5 * a["fwd_flop"] / bwd / 1e9
            del q, k, v, g, out
        except Exception as ex:  # a backend that does not take this shape
            row[label + "_error"] = str(ex).splitlines()[0][:120] if str(ex) else type(ex).__name__
    attn.append(row)
json.dump({"torch": torch.__version__, "gemm": gemm_out, "attention": attn}, open(sys.argv[2], "w"), indent=1)
print(f"torch {torch.__version__}: {len(gemm_out)} GEMM shapes and {len(attn)} attention shapes timed")
PY
fi

# ---------------------------------------------------------------- summary
summary() {
python3 - "$work" "$tests_passed" "$tests_failed" "$gpu_line" <<'PY'
import json, os, sys
work, passed, failed, gpu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
bench = json.load(open(os.path.join(work, "bench_gpu.json")))
torch, torch_attn = {}, {}
if os.path.exists(os.path.join(work, "torch.json")):
    tj = json.load(open(os.path.join(work, "torch.json")))
    torch = {g["name"]: g for g in tj["gemm"]}
    torch_attn = {a["name"]: a for a in tj.get("attention", [])}
def f(x, w=8, p=1):
    return f"{x:{w}.{p}f}" if isinstance(x, (int, float)) else f"{'-':>{w}}"
print(f"\n{gpu}   [gpu] tests: {passed} passed, {failed} failed")
print(f"{'kernel':<19}{'shape (m×n×k, layout)':<26}{'hone':>9}{'cuBLAS':>9}{'ratio':>8}{'torch':>9}   TFLOP/s")
for g in bench["gemm"]:
    shape = f"{g['m']}×{g['n']}×{g['k']} {g['layout']}"
    t = torch.get(g["name"], {}).get("tflops")
    print(f"{'gemm ' + g['name']:<19}{shape:<26}{f(g.get('hone_tflops'), 9)}{f(g.get('cublas_tflops'), 9)}"
          f"{f(g.get('ratio'), 8, 2)}{f(t, 9)}")
# Attention: hone and cuDNN as bench_gpu timed them in one run on the same inputs (C++), their
# ratio, then torch's SDPA with its cuDNN and FlashAttention-2 backends. Without bench_gpu's
# cuDNN the ratio is to torch's cuDNN, marked '*'.
fallback = False
if bench.get("attention"):
    print(f"\nattention baseline: {bench.get('attention_baseline', 'not reported')}")
    print(f"{'attention':<25}{'batch×seq×heads':<17}{'hone':>7}{'cuDNN':>7}{'ratio':>7}{'t.cuDNN':>8}{'t.FA2':>7}"
          f"   fwd | bwd TFLOP/s")
for a in bench.get("attention", []):
    t = torch_attn.get(a["name"], {})
    cells = []
    for d in ("fwd", "bwd"):
        h, c, tc = a.get(d + "_tflops"), a.get("cudnn_" + d + "_tflops"), t.get("cudnn_" + d + "_tflops")
        num = lambda x: isinstance(x, (int, float)) and x > 0
        r, mark = (h / c, " ") if num(h) and num(c) else (h / tc, "*") if num(h) and num(tc) else (None, " ")
        fallback |= mark == "*"
        cells.append(f"{f(h, 7)}{f(c, 7)}{f(r, 6, 2)}{mark}{f(tc, 8)}{f(t.get('flash2_' + d + '_tflops'), 7)}")
    shape = f"{a['batch']}×{a['seq']}×{a['heads']}"
    print(f"{a['name']:<25}{shape:<17}{cells[0]} |{cells[1]}")
    if a.get("cudnn_error"):
        print(f"  cuDNN: {a['cudnn_error'][:150]}")
if fallback:
    print("  * ratio to torch's cuDNN backend (bench_gpu measured no cuDNN for that row)")
kp = os.path.join(work, "bench_gpu_kernels.json")
for b in bench["bandwidth"] + (json.load(open(kp))["bandwidth"] if os.path.exists(kp) else []):
    moved = f"{b['bytes'] / 1e9:.2f} GB moved"
    print(f"{b['name']:<19}{moved:<26}{b['gbps']:9.0f} GB/s (read + write, {b.get('of_copy', 1):.0%} of copy)")
gp = os.path.join(work, "bench_generate.json")
generate = json.load(open(gp)) if os.path.exists(gp) else None
if generate:
    print(f"\ngenerate {generate['model']} {generate['dtype']}, prompt {generate['prompt_tokens']}, "
          f"{generate['new_tokens']} new tokens; copy {generate['copy_gbps']:.0f} GB/s")
    print(f"{'generate':<19}{'batch':>6}{'prefill tok/s':>15}{'decode tok/s':>14}{'decode GB/s':>13}{'of copy':>9}")
    for r in generate["results"]:
        print(f"{'decode (KV cache)':<19}{r['batch']:>6}{r['prefill_tokens_per_s']:15.0f}{r['decode_tokens_per_s']:14.1f}"
              f"{r['decode_gbps']:13.0f}{r['decode_of_copy']:9.0%}")
tp = os.path.join(work, "bench_train.json")
train = json.load(open(tp)) if os.path.exists(tp) else None
if train:
    print(f"\ntrain (bf16, fp32 master weights) on {train['device']}; MFU against {train['peak_bf16_tflops']} TFLOP/s")
    print(f"{'train':<14}{'batch×seq':>11}{'hone tok/s':>12}{'TFLOP/s':>9}{'MFU':>7}{'peak GB':>9}{'torch tok/s':>13}{'ratio':>7}")
    for r in train["cases"]:
        h, t = r["hone"], r.get("torch", {})
        mfu = f"{h['mfu']:7.1%}" if "mfu" in h else f"{'-':>7}"
        tt = f"{t['tokens_per_second']:13.0f}" if "tokens_per_second" in t else f"{'-':>13}"
        ratio = f"{r['ratio']:7.2f}" if "ratio" in r else f"{'-':>7}"
        print(f"{r['model']:<14}{str(r['batch']) + '×' + str(r['seq']):>11}{h['tokens_per_second']:12.0f}"
              f"{h['gflops'] / 1e3:9.1f}{mfu}{h.get('peak_device_bytes', 0) / 1e9:9.2f}{tt}{ratio}")
mp = os.path.join(work, "bench_memory.json")
memory = json.load(open(mp)) if os.path.exists(mp) else None
if memory:
    print(f"\nmemory (peak device allocations, {memory['batch']['rows']}×{memory['batch']['seq_len']} tokens): " +
          ", ".join(f"{m['method']} {m['peak_bytes'] / 2**30:.2f} GiB" for m in memory["methods"]) +
          f"; LoRA / full {memory['lora_peak_over_full']:.2f}")
kernels = json.load(open(kp)) if os.path.exists(kp) else None
json.dump({"gpu": gpu, "tests_passed": passed, "tests_failed": failed, "bench": bench, "kernels": kernels,
           "memory": memory,
           "torch": list(torch.values()), "torch_attention": list(torch_attn.values()), "generate": generate,
           "train": train},
          open(os.path.join(work, "gpu_check.json"), "w"), indent=1)
PY
}
if [[ -f "$work/bench_gpu.json" ]] && command -v python3 >/dev/null; then
  summary | tee -a "$work/gpu_check.log"
fi
log "gpu_check: done in $(elapsed) s"

(( ${#skipped[@]} )) && log "gpu_check: skipped for time: ${skipped[*]}"
(( ${#binaries_failed[@]} )) && log "gpu_check: failed: ${binaries_failed[*]}"
publish
# gpu_check.json holds every benchmark's report: in $OUT it replaces the separate files, so the
# results are three files (gpu_check.log, gpu_check.json, gpu_tests.log).
if [[ -n "$out_dir" && -f "$work/gpu_check.json" ]]; then
  cp "$work/gpu_check.json" "$out_dir/"
  rm -f "$out_dir"/bench_*.json
fi
(( tests_failed == 0 && bench_ok )) || exit 1
exit 0
