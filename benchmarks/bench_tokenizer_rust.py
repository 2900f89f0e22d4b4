"""Times PyPI's tokenizers (the Rust reference) encoding the documents bench_tokenizer wrote,
single-threaded, so that bench_tokenizer can report hone's throughput against it measured on
the same text in the same run.

    bench_tokenizer_rust.py TOKENIZER_JSON DOCUMENTS_JSONL

DOCUMENTS_JSONL holds one JSON string a line. Prints one JSON object: the package version,
total tokens, and the seconds of a first (cold cache) and a second (warm) pass. Exits with 77
when the tokenizers package is not installed.
"""
import json
import os
import sys
import time

# Before the import: one thread in Rust's pool, and no parallel batch encoding.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
try:
    import tokenizers
except ImportError:
    print(json.dumps({"error": "the tokenizers package is not installed"}))
    sys.exit(77)


def main():
    tokenizer_json, documents = sys.argv[1], sys.argv[2]
    with open(documents, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    tok = tokenizers.Tokenizer.from_file(tokenizer_json)
    passes = []
    tokens = 0
    for _ in range(2):
        t0 = time.perf_counter()
        tokens = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
        passes.append(time.perf_counter() - t0)
    print(json.dumps({"version": tokenizers.__version__, "tokens": tokens,
                      "cold_s": passes[0], "warm_s": passes[1]}))


if __name__ == "__main__":
    main()
