#!/usr/bin/env python3
"""PyTorch's full fine-tuning step on the same model and batch as bench_train, for comparison in
the same run. Usage: bench_train_torch.py CONFIG_JSON BATCH SEQ STEPS [cpu|cuda]
Prints one JSON object: seconds per step (median after one warm-up), tokens/s, matmul GFLOP/s of
torch at 1024^3 float32, thread count and the BLAS torch was built with. On cuda: fp32 weights,
bf16 autocast, fused AdamW and peak allocated memory (mixed precision as PyTorch users run it).
Exit 77 when torch or transformers is missing."""
import json
import sys
import time

try:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
except ImportError as e:  # not installed here: the benchmark reports it and goes on
    print(json.dumps({"error": f"not installed: {e.name}"}))
    sys.exit(77)


def main():
    config_path, batch, seq, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
    if device == "cuda":
        return main_cuda(config_path, batch, seq, steps)
    with open(config_path) as f:
        cfg = json.load(f)
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    ids = torch.randint(3, config.vocab_size, (batch, seq))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    step = sorted(times[1:])[len(times[1:]) // 2]
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    mm = []
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        mm.append(time.perf_counter() - t0)
    blas = [part.strip() for part in torch.__config__.show().replace("\n", ",").split(",") if "BLAS_INFO" in part]
    print(json.dumps({"seconds_per_step": step, "tokens_per_second": batch * seq / step,
                      "matmul_gflops": 2 * 1024 ** 3 / min(mm) / 1e9, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "blas": blas[0] if blas else "unknown",
                      "parameters": sum(p.numel() for p in model.parameters())}))



def main_cuda(config_path, batch, seq, steps):
    with open(config_path) as f:
        cfg = json.load(f)
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
    ids = torch.randint(3, config.vocab_size, (batch, seq), device="cuda")
    times = []
    for _ in range(steps + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    step = sorted(times[1:])[len(times[1:]) // 2]
    print(json.dumps({"seconds_per_step": step, "tokens_per_second": batch * seq / step, "torch": torch.__version__,
                      "peak_allocated_bytes": torch.cuda.max_memory_allocated(), "device": torch.cuda.get_device_name(),
                      "parameters": sum(p.numel() for p in model.parameters())}))


main()
