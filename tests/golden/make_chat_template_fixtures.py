#!/usr/bin/env python3
"""Golden chat-template renderings for r1kit's built-in templates (policy/chat_template.h).

Every Jinja chat template r1kit recognises is rendered by transformers' own
`apply_chat_template(..., tokenize=False)` (the jinja2 sandbox with trim_blocks and lstrip_blocks,
the tokenizer's special tokens as template variables) for a set of tool-less conversations, with
the generation prompt on and off and, for templates that read it, `enable_thinking` unset, true and
false. r1kit's renderers must give the same bytes (tests/policy/chat_template_test.cpp).

Writes, under tests/policy/data/chat_templates/:
  *.jinja                  the template sources (copied from shared/data, or transcribed below)
  fixtures.json            {"versions", "templates": [{file, name, bos_token, eos_token}],
                            "variants": [{file, name or null}],
                            "conversations": {name: messages},
                            "cases": [{template, conversation, add_generation_prompt,
                                       enable_thinking?, text}]}
  models/<name>/           model directories as transformers saves them (tokenizer_config.json
                           with chat_template and special tokens, or chat_template.jinja beside
                           it), for template detection and the `r1kit chat-template` CLI tests
  messages_*.json          conversations for the CLI tests
  variants/*.jinja         rewritten sources (whitespace control, quotes, CRLF, comments) that
                           jinja2 renders identically to an original, and one that it does not,
                           for the normaliser that recognises templates

Run from the repository root, where transformers is installed (e.g. /tmp/r1venv/bin/python):
  python tests/golden/make_chat_template_fixtures.py
"""

import json
import os
import sys

import jinja2
import tokenizers
import transformers
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "tokenizers")
OUT = os.path.join(ROOT, "tests", "policy", "data", "chat_templates")

DS_BOS = "<｜begin▁of▁sentence｜>"
DS_EOS = "<｜end▁of▁sentence｜>"

# deepseek-ai/DeepSeek-R1, tokenizer_config.json "chat_template" as first published (January
# 2025): the generation prompt is "<｜Assistant｜>". Transcribed from the template llama.cpp prints
# when it loads DeepSeek-R1 (quoted verbatim in public deployment guides).
DEEPSEEK_R1_2501 = r"""{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %}{%- if message['content'] is none %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- endif %}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}"""

# The current DeepSeek-R1 template: DeepSeek's February 2025 update changed only the generation
# prompt, to "<｜Assistant｜><think>\n" (the model is made to start by thinking).
DEEPSEEK_R1 = DEEPSEEK_R1_2501.replace(
    r"""{{'<｜Assistant｜>'}}{% endif %}""", r"""{{'<｜Assistant｜><think>\n'}}{% endif %}""")
assert DEEPSEEK_R1 != DEEPSEEK_R1_2501

# deepseek-ai/DeepSeek-R1-Distill-Qwen-* (and -Llama-*), tokenizer_config.json "chat_template":
# the last system message only, "</think>" split, generation prompt "<｜Assistant｜><think>\n".
DEEPSEEK_R1_DISTILL = r"""{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %}"""


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def shared_template(name):
    return read(os.path.join(SHARED, "chat-templates", name))


def config_template(dir_name):
    return json.loads(read(os.path.join(SHARED, dir_name, "tokenizer_config.json")))["chat_template"]


# (file written under OUT, r1kit built-in name, source text, bos_token, eos_token, reads
# enable_thinking). Special tokens are those of the models that ship each template.
TEMPLATES = [
    ("deepseek-v3.jinja", "deepseek-v3", config_template("deepseek-v3-npm-lenml"), DS_BOS, DS_EOS,
     False),
    ("deepseek-r1.jinja", "deepseek-r1", DEEPSEEK_R1, DS_BOS, DS_EOS, False),
    ("deepseek-r1-2501.jinja", "deepseek-r1-2501", DEEPSEEK_R1_2501, DS_BOS, DS_EOS, False),
    ("deepseek-r1-distill-qwen.jinja", "r1-distill-qwen", DEEPSEEK_R1_DISTILL, DS_BOS, DS_EOS, False),
    ("deepseek-r1-distill-qwen-llamacpp.jinja", "r1-distill-qwen-llamacpp",
     shared_template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"), DS_BOS, DS_EOS, True),
    ("qwen2.5-instruct.jinja", "qwen2.5", shared_template("Qwen-Qwen2.5-7B-Instruct.jinja"), None,
     "<|im_end|>", False),
    ("qwen3.jinja", "qwen3", shared_template("Qwen-Qwen3-0.6B.jinja"), None, "<|im_end|>", True),
]

THINK1 = "<think>\nThe user greets me. I should greet back.\n</think>\n\nHello! How can I help?"
THINK2 = "<think>\n2 + 2 is 4.\n</think>\n\nThe answer is **4**."

CONVERSATIONS = {
    "user_only": [{"role": "user", "content": "What is 2 + 2?"}],
    "system_user": [
        {"role": "system", "content": "You are a careful math tutor."},
        {"role": "user", "content": "What is 2 + 2?"},
    ],
    "multi_turn_reasoning": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": THINK1},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": THINK2},
        {"role": "user", "content": "And 3 + 3?"},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": THINK2},
    ],
    "reasoning_field": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello!", "reasoning": "A greeting; answer briefly."},
        {"role": "user", "content": "Thanks."},
        {"role": "assistant", "content": "You're welcome.", "reasoning": "\nPoliteness.\n"},
    ],
    "two_systems": [
        {"role": "system", "content": "First rule."},
        {"role": "user", "content": "Question one?"},
        {"role": "system", "content": "Second rule."},
        {"role": "user", "content": "Question two?"},
    ],
    "edge_text": [
        {"role": "user", "content": "  leading and trailing spaces  \n"},
        {"role": "assistant",
         "content": "\n\n<think>\n\nfirst</think>middle</think>\n\nlast part\n\n"},
        {"role": "user", "content": "中文 🎉 <|im_end|> <｜User｜> {{ not jinja }} {% raw %}"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": ""},
    ],
    "tool_response_text": [
        {"role": "user", "content": "Compute it."},
        {"role": "assistant", "content": "<think>\nneed a tool\n</think>\n\nCalling."},
        {"role": "user", "content": "<tool_response>42</tool_response>"},
        {"role": "assistant", "content": "<think>\nthe tool said 42\n</think>\n\nIt is 42."},
    ],
    "assistant_without_think_after_query": [
        {"role": "user", "content": "One?"},
        {"role": "assistant", "content": "Plain answer."},
        {"role": "assistant", "content": "<think>\nmore\n</think>\n\nSecond answer."},
    ],
}


def variant_pretty(src):
    # One block tag per line, indented, each stripping what precedes it ("{%-").
    return src.replace("{%- ", "{% ").replace("{% ", "\n    {%- ")


def variant_crlf_comments(src):
    # Windows line ends, a comment line, and a final newline (jinja2 drops one).
    return ("{#- r1kit test variant -#}\n" + src + "\n").replace("\n", "\r\n")


def variant_quotes_spaces(src):
    # Double-quoted literals where the single-quoted ones hold no quote, spaces inside tags.
    out = src.replace("{{'<｜User｜>'", '{{ "<｜User｜>"').replace("{{bos_token}}", "{{ bos_token }}")
    return out.replace("'<|im_start|>'", '"<|im_start|>"').replace("{%- if", "{%-   if")


def variant_changed(src):
    return src.replace(r"<think>\n'}}", r"<think>\n\n'}}")


# (variant file, base template file, transform, equivalent): equivalent variants must render
# what the base renders (checked here with jinja2) and must be recognised as the base's template;
# the others must render differently and be rejected as unknown.
VARIANTS = [
    ("deepseek-r1.pretty.jinja", "deepseek-r1.jinja", variant_pretty, True),
    ("deepseek-v3.quotes.jinja", "deepseek-v3.jinja", variant_quotes_spaces, True),
    ("qwen2.5-instruct.crlf.jinja", "qwen2.5-instruct.jinja", variant_crlf_comments, True),
    ("qwen3.quotes.jinja", "qwen3.jinja", variant_quotes_spaces, True),
    ("deepseek-r1.changed.jinja", "deepseek-r1.jinja", variant_changed, False),
]


def make_tokenizer(bos, eos):
    vocab = {"<unk>": 0}
    for t in (bos, eos):
        if t is not None:
            vocab.setdefault(t, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    kwargs = {"unk_token": "<unk>"}
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    return PreTrainedTokenizerFast(tokenizer_object=tk, **kwargs)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def write_json(path, obj):
    write(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def main():
    cases = []
    templates = []
    for file, name, source, bos, eos, thinking in TEMPLATES:
        write(os.path.join(OUT, file), source)
        templates.append({"file": file, "name": name, "bos_token": bos, "eos_token": eos})
        tok = make_tokenizer(bos, eos)
        for conv_name, messages in CONVERSATIONS.items():
            for gen in (False, True):
                for et in ((None, True, False) if thinking else (None,)):
                    kwargs = {} if et is None else {"enable_thinking": et}
                    text = tok.apply_chat_template(messages, chat_template=source, tokenize=False,
                                                   add_generation_prompt=gen, **kwargs)
                    case = {"template": file, "conversation": conv_name,
                            "add_generation_prompt": gen, "text": text}
                    if et is not None:
                        case["enable_thinking"] = et
                    cases.append(case)
    variants = []
    by_file = {t[0]: t for t in TEMPLATES}
    for file, base, transform, equivalent in VARIANTS:
        _, name, source, bos, eos, _ = by_file[base]
        text = transform(source)
        assert text != source, file
        tok = make_tokenizer(bos, eos)
        same = all(
            tok.apply_chat_template(m, chat_template=text, tokenize=False, add_generation_prompt=g) ==
            tok.apply_chat_template(m, chat_template=source, tokenize=False, add_generation_prompt=g)
            for m in CONVERSATIONS.values() for g in (False, True))
        assert same == equivalent, f"{file}: renders {'the same' if same else 'differently'}"
        write(os.path.join(OUT, "variants", file), text)
        variants.append({"file": "variants/" + file, "name": name if equivalent else None})
    write_json(os.path.join(OUT, "fixtures.json"), {
        "versions": {"python": sys.version.split()[0], "transformers": transformers.__version__,
                     "jinja2": jinja2.__version__, "tokenizers": tokenizers.__version__},
        "templates": templates,
        "variants": variants,
        "conversations": CONVERSATIONS,
        "cases": cases,
    })

    # Model directories as transformers writes them: the template inside tokenizer_config.json
    # (DeepSeek-V3 as published, with its AddedToken special tokens), or in chat_template.jinja.
    lenml = json.loads(read(os.path.join(SHARED, "deepseek-v3-npm-lenml", "tokenizer_config.json")))
    keep = ("add_bos_token", "add_eos_token", "bos_token", "eos_token", "pad_token", "unk_token",
            "chat_template", "model_max_length", "tokenizer_class")
    write_json(os.path.join(OUT, "models", "deepseek-v3", "tokenizer_config.json"),
               {k: lenml[k] for k in keep if k in lenml})
    qwen3 = json.loads(read(os.path.join(SHARED, "qwen3-npm-lenml", "tokenizer_config.json")))
    write_json(os.path.join(OUT, "models", "qwen3", "tokenizer_config.json"),
               {k: qwen3[k] for k in keep if k in qwen3})
    write_json(os.path.join(OUT, "models", "r1-distill-qwen", "tokenizer_config.json"),
               {"bos_token": DS_BOS, "eos_token": DS_EOS, "tokenizer_class": "LlamaTokenizerFast"})
    write(os.path.join(OUT, "models", "r1-distill-qwen", "chat_template.jinja"), DEEPSEEK_R1_DISTILL)
    write_json(os.path.join(OUT, "models", "unknown", "tokenizer_config.json"), {
        "eos_token": "</s>",
        "chat_template": "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"})
    write_json(os.path.join(OUT, "models", "no-template", "tokenizer_config.json"),
               {"bos_token": "<s>", "eos_token": "</s>"})
    write_json(os.path.join(OUT, "messages_multi_turn.json"), CONVERSATIONS["multi_turn_reasoning"])
    write_json(os.path.join(OUT, "messages_single.json"),
               {"messages": [{"role": "user", "content": "What is 2 + 2?"}]})
    print(f"wrote {len(cases)} cases for {len(templates)} templates to {OUT}")


if __name__ == "__main__":
    main()
