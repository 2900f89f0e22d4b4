#!/usr/bin/env python3
# Writes <name>/reference_rust.jsonl.xz for the three tokenizers: seeded random texts (mixed
# scripts, emoji, combining marks, controls, contractions, numbers, whitespace runs, special-token
# look-alikes and real special tokens) with the Rust `tokenizers` package's encoding (without and
# with special tokens) and its decoding of the ids (special tokens kept / skipped, no clean-up).
# Needs `pip install tokenizers`; reads the tokenizer.json files from the shared data folder.
#   python3 tests/data/tokenizers/gen_reference.py /path/to/shared/data/tokenizers
import json
import lzma
import os
import random
import sys

import tokenizers
from tokenizers import Tokenizer

shared = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(5)
ranges = [(0x61, 0x7a), (0x41, 0x5a), (0x30, 0x39), (0x21, 0x2f), (0x3a, 0x40), (0x5b, 0x60), (0x7b, 0x7e),
          (0xc0, 0x17f), (0x300, 0x36f), (0x391, 0x3c9), (0x410, 0x44f), (0x5d0, 0x5ea), (0x620, 0x64a),
          (0x900, 0x97f), (0xe01, 0xe3a), (0x3041, 0x3096), (0x30a1, 0x30fa), (0x4e00, 0x9fff),
          (0xac00, 0xd7a3), (0x1100, 0x1112), (0x1161, 0x1175), (0x1f600, 0x1f64f), (0x1f300, 0x1f5ff),
          (0x1f3fb, 0x1f3ff), (0x200b, 0x200d), (0xfe00, 0xfe0f), (0x2000, 0x200a), (0x1e00, 0x1eff),
          (0xa0, 0xbf), (0xf900, 0xfad9), (0x2126, 0x212b), (0x80, 0x9f), (0x1, 0x1f)]
ws = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\r"]
words = ["the", "The", "I'm", "it's", "DON'T", "we've", "you'll", "he'd", "'s", "'S", "123", "4567", "3.14",
         "-42", "1e-5", "hello", "world", "naïve", "café", "Ñ", "straße", "<s>", "</s>", "<|begin_of_text|>",
         "<|im_start|>", "<|im_end|>", "<think>", "<|endoftext|>", "<unk>", "▁", "Ġ", "<0x41>", "  ", "...",
         "$$$", "!?", "don't", "can't", "CAN'T", "x'll", "ℝ", "ﬁ"]
specials = {"llama3": "<|eot_id|>", "qwen3": "<|im_end|>", "sp-bpe-32k": "</s>"}
for name in ["llama3", "qwen3", "sp-bpe-32k"]:
    tok = Tokenizer.from_file(os.path.join(shared, name, "tokenizer.json"))
    lines = []
    for i in range(1000):
        s = ""
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.35:
                s += rng.choice(words)
            elif r < 0.5:
                s += rng.choice(ws)
            else:
                lo, hi = rng.choice(ranges)
                s += chr(rng.randint(lo, hi))
        if i % 7 == 0:
            s = s + specials[name] + s
        enc = tok.encode(s, add_special_tokens=False)
        lines.append(json.dumps({
            "text": s, "ids": enc.ids, "ids_with_special": tok.encode(s, add_special_tokens=True).ids,
            "decoded_raw": tok.decode(enc.ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(enc.ids, skip_special_tokens=True)}, ensure_ascii=False))
    with lzma.open(os.path.join(here, name, "reference_rust.jsonl.xz"), "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


# Variants of the real files for the pre-tokenizers they do not use (the test makes the same
# edits): llama3 with GPT-2's ByteLevel pre-tokenizer (prefix space, built-in regex), and
# sp-bpe-32k with a Metaspace pre-tokenizer and decoder (prepend_scheme first) and no normalizer.
l3 = json.load(open(os.path.join(shared, "llama3", "tokenizer.json")))
l3["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
sp = json.load(open(os.path.join(shared, "sp-bpe-32k", "tokenizer.json")))
sp["normalizer"] = None
sp["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
sp["decoder"] = sp["pre_tokenizer"]
vwords = ["the", "The", "I'm", "it's", "DON'T", "we've", "'s", "123", "4567", "3.14", "-42", "hello", "world",
          "naïve", "<s>", "</s>", "<|begin_of_text|>", "<|eot_id|>", "▁", "Ġ", "  ", "...", "don't", "x'll",
          "你好", "😀", "\n", "\t", " ", "   ", "\u00a0", "é"]
vrng = random.Random(11)
lines = []
for name, j in [("llama3-gpt2-bytelevel", l3), ("sp-bpe-32k-metaspace", sp)]:
    tok = Tokenizer.from_str(json.dumps(j))
    for _ in range(300):
        s = "".join(vrng.choice(vwords) for _ in range(vrng.randint(1, 12)))
        ids = tok.encode(s, add_special_tokens=False).ids
        lines.append(json.dumps({"variant": name, "text": s, "ids": ids,
                                 "decoded_raw": tok.decode(ids, skip_special_tokens=False)}, ensure_ascii=False))
with lzma.open(os.path.join(here, "variants_rust.jsonl.xz"), "wt", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
print("tokenizers", tokenizers.__version__)
