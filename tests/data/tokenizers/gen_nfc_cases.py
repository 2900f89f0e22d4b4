#!/usr/bin/env python3
# Writes tests/data/tokenizers/nfc_cases.jsonl: seeded random strings heavy in combining marks,
# precomposed and singleton-decomposing characters, Hangul and composition exclusions, with their
# NFC form from Python's unicodedata (the reference for hone's NFC test).
import json
import random
import unicodedata as ud

rng = random.Random(2026)
pools = [
    (0x41, 0x7A), (0xC0, 0x17F), (0x1E00, 0x1EFF), (0x300, 0x36F), (0x300, 0x36F), (0x591, 0x5C7),
    (0x391, 0x3CE), (0x1F00, 0x1FFE), (0x400, 0x4FF), (0x1100, 0x1112), (0x1161, 0x1175),
    (0x11A8, 0x11C2), (0xAC00, 0xD7A3), (0x900, 0x97F), (0x958, 0x95F), (0xF900, 0xFAD9),
    (0x2126, 0x212B), (0x3099, 0x309A), (0x3040, 0x30FF), (0x1D15E, 0x1D164), (0xFB1D, 0xFB4E),
    (0x0F40, 0x0F84), (0x2000, 0x2001), (0x340, 0x344), (0x1F600, 0x1F64F), (0x20, 0x20),
]
with open(__file__.rsplit('/', 1)[0] + '/nfc_cases.jsonl', 'w', encoding='utf-8') as f:
    for _ in range(600):
        s = ''
        for _ in range(rng.randint(1, 24)):
            lo, hi = rng.choice(pools)
            cp = rng.randint(lo, hi)
            if ud.category(chr(cp)) == 'Cn' or 0xD800 <= cp <= 0xDFFF:
                continue
            s += chr(cp)
        f.write(json.dumps({'in': s, 'nfc': ud.normalize('NFC', s)}, ensure_ascii=False) + '\n')
