#!/usr/bin/env python3
"""Hugging Face transformers `generate` on a checkpoint directory: the side-by-side reference for
bench/rollout_bench.cpp (same prompts, lengths, sampling and GPU; bf16 weights).

  throughput  P prompts of L tokens in one batch -> N new tokens each (min_new_tokens = N, so EOS
              is ignored), do_sample with temperature 1, top_k 0, top_p 1: generated tokens / wall
              time of generate() (prefill included).
  latency     batch 1, L-token prompt, N1 greedy tokens: (time of N1 tokens - time of 1 token)
              / (N1 - 1), the per-token decode time.
Prompt token j of prompt i is 1 + (131*i + 17*j) mod (V - 1), as in rollout_bench.
Usage: hf_generate.py --model DIR [--prompts P] [--prompt-len L] [--new N] [--latency-new N1]
Prints JSON lines {"bench":"rollout","figure":...,"engine":"hf"}.
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new", type=int, default=512)
    ap.add_argument("--latency-new", type=int, default=128)
    ap.add_argument("--skip-throughput", action="store_true")
    a = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16).cuda().eval()
    load_s = time.time() - t0
    vocab = model.config.vocab_size
    name = os.path.basename(os.path.normpath(a.model))

    def prompts(n, length):
        rows = [[1 + (131 * i + 17 * j) % (vocab - 1) for j in range(length)] for i in range(n)]
        return torch.tensor(rows, dtype=torch.long, device="cuda")

    def run(ids, new, sample):
        kw = dict(max_new_tokens=new, min_new_tokens=new, pad_token_id=0,
                  attention_mask=torch.ones_like(ids))
        if sample:
            kw.update(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
        else:
            kw.update(do_sample=False)
        torch.cuda.synchronize()
        t = time.time()
        with torch.no_grad():
            out = model.generate(ids, **kw)
        torch.cuda.synchronize()
        return time.time() - t, out.shape[1] - ids.shape[1]

    common = {"bench": "rollout", "engine": "hf", "model": name, "device": "cuda",
              "dtype": "bf16", "transformers": transformers.__version__,
              "torch": torch.__version__}
    run(prompts(8, a.prompt_len), 8, True)  # warm-up
    if not a.skip_throughput:
        ids = prompts(a.prompts, a.prompt_len)
        s, got = run(ids, a.new, True)
        gen = got * a.prompts
        print(json.dumps({**common, "figure": "throughput", "prompts": a.prompts,
                          "prompt_len": a.prompt_len, "new_tokens": a.new, "generated": gen,
                          "seconds": s, "tokens_per_s": gen / s, "load_s": load_s}), flush=True)
    ids = prompts(1, a.prompt_len)
    s1, _ = run(ids, 1, False)
    sn, got = run(ids, a.latency_new, False)
    ms = (sn - s1) / max(got - 1, 1) * 1e3
    print(json.dumps({**common, "figure": "batch1_latency", "prompt_len": a.prompt_len,
                      "new_tokens": a.latency_new, "ms_per_token": ms}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
