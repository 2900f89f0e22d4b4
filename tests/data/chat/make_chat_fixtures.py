#!/usr/bin/env python3
"""Writes chat_fixtures.jsonl: conversations rendered by the real Jinja chat templates.

Each template is rendered the way transformers' apply_chat_template does it: a sandboxed
Jinja2 environment with trim_blocks and lstrip_blocks, the loopcontrols extension, the
raise_exception and strftime_now globals and a tojson filter; the variables are messages,
tools=None, documents=None, add_generation_prompt, the tokenizer's special tokens and, for
Qwen3, enable_thinking when it is set. strftime_now returns a fixed date so that the file is
reproducible. Run with Debian's python3-jinja2 (3.1) from the repository root:

    python3 tests/data/chat/make_chat_fixtures.py

One JSON object a line: family, template (path relative to tests/data), bos_token and
eos_token (as passed; "" when the tokenizer has none), messages,
add_generation_prompt, enable_thinking (absent when unset), and either "text" (the rendered
string) or "error" (the message the template raised).
"""
import datetime
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.dirname(HERE)
FIXED_NOW = datetime.datetime(2024, 7, 26, 12, 0, 0)


class RaisedByTemplate(Exception):
    pass


def make_env():
    def raise_exception(message):
        raise RaisedByTemplate(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def config_template(rel):
    with open(os.path.join(DATA, rel), encoding="utf-8") as f:
        return json.load(f)["chat_template"]


def file_template(rel):
    with open(os.path.join(DATA, rel), encoding="utf-8") as f:
        return f.read()


# family → (template source path, template text, special tokens as transformers passes them)
SP_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
QWEN_TOKENS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
FAMILIES = {
    "llama3": ("tokenizers/llama3/tokenizer_config.json",
               config_template("tokenizers/llama3/tokenizer_config.json"),
               {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}),
    "qwen3": ("tokenizers/qwen3/tokenizer_config.json",
              config_template("tokenizers/qwen3/tokenizer_config.json"), QWEN_TOKENS),
    "inst": ("tokenizers/sp-bpe-32k/chat_template.jinja",
             file_template("tokenizers/sp-bpe-32k/chat_template.jinja"), SP_TOKENS),
    "chatml": ("chat/chatml.jinja", file_template("chat/chatml.jinja"), QWEN_TOKENS),
    "llama2": ("chat/llama2.jinja", file_template("chat/llama2.jinja"), SP_TOKENS),
    "mistral": ("chat/mistral.jinja", file_template("chat/mistral.jinja"), SP_TOKENS),
}


def m(role, content, reasoning=None):
    out = {"role": role, "content": content}
    if reasoning is not None:
        out["reasoning_content"] = reasoning
    return out


CONVERSATIONS = [
    [m("user", "Hello!")],
    [m("system", "You are terse."), m("user", "What is 2+2?")],
    [m("user", "Name a colour."), m("assistant", "Blue.")],
    [m("system", "Answer in French."), m("user", "Hi"), m("assistant", "Bonjour !"),
     m("user", "Thanks"), m("assistant", "De rien.")],
    [m("user", "one"), m("assistant", "two"), m("user", "three")],
    [m("system", "  padded system \n"), m("user", "\n  spaced question\t \n"),
     m("assistant", " \u00a0spaced answer\u3000\n\n")],
    [m("user", "Café, naïve, 日本語 and emoji 🙂"), m("assistant", "Noted: ünïcödé ✓")],
    [m("user", "Think first."), m("assistant", "It is 4.", reasoning="2+2 is 4.")],
    [m("user", "q1"), m("assistant", "a1", reasoning="r1"), m("user", "q2"),
     m("assistant", "a2", reasoning="\nr2\n")],
    [m("user", "inline"), m("assistant", "<think>\nworked it out\n</think>\n\nThe answer.")],
    [m("user", "q1"), m("assistant", "<think>old</think>a1"), m("user", "q2"), m("assistant", "a2")],
    [m("user", "call"), m("user", "<tool_response>\n42\n</tool_response>"),
     m("assistant", "It is 42.", reasoning="the tool said 42")],
    [m("system", "only a system message")],
    [m("user", "")],
    [m("user", "empty answer"), m("assistant", "")],
    [m("assistant", "I speak first.")],
    [m("user", "a"), m("user", "b")],
    [m("user", "a"), m("system", "late system"), m("assistant", "b")],
    [m("system", "s"), m("user", "u1"), m("assistant", "a1"), m("user", "u2")],
]


def render(env, template, tokens, messages, add_generation_prompt, enable_thinking):
    kwargs = dict(tokens)
    if enable_thinking is not None:
        kwargs["enable_thinking"] = enable_thinking
    try:
        text = env.from_string(template).render(
            messages=messages, tools=None, documents=None,
            add_generation_prompt=add_generation_prompt, **kwargs)
        return {"text": text}
    except RaisedByTemplate as e:
        return {"error": str(e)}


def main():
    env = make_env()
    rows = []
    for family, (path, template, tokens) in FAMILIES.items():
        thinking = [None, True, False] if family == "qwen3" else [None]
        for messages in CONVERSATIONS:
            for agp in (False, True):
                for et in thinking:
                    row = {"family": family, "template": path,
                           "bos_token": tokens.get("bos_token", ""),
                           "eos_token": tokens.get("eos_token", ""),
                           "messages": messages, "add_generation_prompt": agp}
                    if et is not None:
                        row["enable_thinking"] = et
                    row.update(render(env, template, tokens, messages, agp, et))
                    rows.append(row)
    with open(os.path.join(HERE, "chat_fixtures.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} cases, {sum('error' in r for r in rows)} raise")


if __name__ == "__main__":
    main()
