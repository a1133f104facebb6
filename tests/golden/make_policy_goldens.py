#!/usr/bin/env python3
"""Golden fixtures for r1kit's policy forward/backward, made with Hugging Face transformers.

For each case below, a small random model is built, its weights are randomised with magnitudes that
make every op matter (norm weights around 1, biases and the correction bias non-zero), and written
with save_pretrained (float32) into tests/policy/data/golden/<case>/ together with
reference.safetensors holding:

  tokens        (T) int32     the packed input ids of B sequences
  cu_seqlens    (B+1) int32   sequence offsets (each sequence is run through transformers alone)
  logits        (T, V) f32    transformers' logits (computed in float64 from the float32 weights)
  loss          (1) f64       mean next-token cross-entropy over all sequences (each sequence's last
                              token has no target)
  grad.<name>   f32           d loss / d parameter under transformers' state_dict names (fused
                              experts: mlp.experts.gate_up_proj / down_proj), for every parameter
                              outside the layers and, per tensor of a layer, for the first layer
                              that has it (every kind once: see gradient_subset)

tests/policy/dense_test.cpp (and the DeepSeek-V3 golden test) loads the checkpoint with r1kit, runs the same
batch packed, and compares logits (normalised error < 1e-4) and gradients (< 1e-3).

DeepSeek-V3 cases (n_group > 1, with and without q-LoRA, YaRN, one dense layer): transformers 5.24
fills the experts of masked groups with -inf before the top-k (DeepSeek's inference/model.py does
the same; older transformers used 0), so r1kit is compared with MoeRouting.masked_fill = neg_inf.
num_experts_per_tok is 2, avoiding the K = 1 renormalisation difference described in
kernels/moe.h. The router runs in float32 inside transformers even for a float64 model; the script
re-seeds until every token's K-th and (K+1)-th choice differ by more than 1e-3, so rounding cannot
change the selection.

Usage (where torch and transformers are installed; the versions are recorded in every
reference file's metadata):
  python tests/golden/make_policy_goldens.py [--out tests/policy/data/golden]
  python tests/golden/make_policy_goldens.py --check DIR
--check DIR loads every DIR/<case>/ (checkpoints r1kit wrote: run the policy tests with
R1KIT_GOLDEN_SAVE_DIR=DIR) in transformers, requires no missing or unexpected weights, and
compares its logits on the case's batch with the reference (normalised error < 1e-5).
"""

import argparse
import json
import os
import sys
import tempfile

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM,
                          LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
        "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0,
        "rope_theta": 10000.0}
DS_COMMON = dict(vocab_size=40, hidden_size=24, intermediate_size=32, moe_intermediate_size=12,
                 num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16, qk_rope_head_dim=4,
                 qk_nope_head_dim=8, v_head_dim=8, max_position_embeddings=64,
                 num_hidden_layers=2, n_routed_experts=8, n_shared_experts=1,
                 num_experts_per_tok=2, n_group=4, topk_group=2, first_k_dense_replace=1,
                 norm_topk_prob=True, routed_scaling_factor=2.5, num_nextn_predict_layers=0,
                 rope_parameters=YARN)

# name -> (config class, model class, kwargs)
CASES = {
    # Qwen2: q/k/v biases, GQA (2 query heads per kv head), untied head.
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(
        vocab_size=48, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        max_position_embeddings=64, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    # Llama: tied embeddings, MQA (one kv head), head_dim 16 != hidden / heads.
    "llama_tied": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=48, hidden_size=24, intermediate_size=40, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=12, tie_word_embeddings=True,
        max_position_embeddings=64, rms_norm_eps=1e-5)),
    # Llama: untied, attention biases on q/k/v/o, GQA 4/2 heads, llama3 RoPE scaling.
    "llama_untied": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=48, hidden_size=24, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, attention_bias=True,
        tie_word_embeddings=False, max_position_embeddings=64, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8,
                         "rope_theta": 500000.0})),
    # DeepSeek-V3: q-LoRA, group-limited routing (4 groups, 2 kept), YaRN, one dense layer.
    "dsv3_qlora": (DeepseekV3Config, DeepseekV3ForCausalLM, dict(DS_COMMON, q_lora_rank=12)),
    # DeepSeek-V3: plain q_proj, attention biases, two shared experts.
    "dsv3_noqlora": (DeepseekV3Config, DeepseekV3ForCausalLM, dict(
        DS_COMMON, q_lora_rank=None, attention_bias=True, n_shared_experts=2)),
}

# Three packed sequences (T = 26); ids are drawn per case below the case's vocabulary.
SEQ_LENS = [9, 5, 12]


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__}


def normalized_error(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30))


def randomize(model, gen):
    """Weights that exercise every op: matrices N(0, 0.2²) (embeddings 0.5²), norm weights
    1 + N(0, 0.2²), biases N(0, 0.1²), the correction bias N(0, 0.05²)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * r)
            elif name.endswith(".bias"):
                p.copy_(0.1 * r)
            elif "embed_tokens" in name:
                p.copy_(0.5 * r)
            else:
                p.copy_(0.2 * r)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn(b.shape, generator=gen, dtype=torch.float64))


def routing_margin(model, seqs):
    """Smallest gap between the K-th and (K+1)-th expert choice over all tokens and MoE layers."""
    margins = []

    def hook(module, args, output):
        hidden = args[0].view(-1, module.hidden_dim).float()
        scores = torch.nn.functional.linear(hidden, module.weight.float()).sigmoid()
        choice = scores + module.e_score_correction_bias.float()
        e, g = module.num_experts, module.num_group
        group_scores = choice.view(-1, g, e // g).topk(2, dim=-1)[0].sum(-1)
        gs = group_scores.sort(dim=-1, descending=True)[0]
        margins.append(float((gs[:, module.topk_group - 1] - gs[:, module.topk_group]).min()))
        group_idx = group_scores.topk(module.topk_group, dim=-1)[1]
        mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        mask = mask.unsqueeze(-1).expand(-1, g, e // g).reshape(-1, e)
        masked = choice.masked_fill(~mask.bool(), float("-inf")).sort(dim=-1, descending=True)[0]
        margins.append(float((masked[:, module.top_k - 1] - masked[:, module.top_k]).min()))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if type(m).__name__.endswith("TopkRouter")]
    with torch.no_grad():
        for s in seqs:
            model(input_ids=torch.tensor([s]))
    for h in handles:
        h.remove()
    return min(margins) if margins else float("inf")


def build(name, seed):
    config_cls, model_cls, kwargs = CASES[name]
    config = config_cls(**kwargs)
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = model_cls(config).float()
    randomize(model, gen)
    seqs = [torch.randint(0, config.vocab_size, (n,), generator=gen).tolist() for n in SEQ_LENS]
    return model, seqs


def reference(model, seqs):
    """Logits, loss and gradients in float64 (each sequence alone, batch size 1)."""
    m = model.double()
    m.zero_grad()
    logits, losses, count = [], [], 0
    for s in seqs:
        ids = torch.tensor([s])
        out = m(input_ids=ids).logits[0]
        logits.append(out)
        losses.append(torch.nn.functional.cross_entropy(out[:-1], ids[0, 1:], reduction="sum"))
        count += len(s) - 1
    loss = torch.stack(losses).sum() / count
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in m.named_parameters() if p.grad is not None}
    model.float()
    return torch.cat(logits).detach(), loss.detach(), grads


def gradient_subset(grads):
    """Names whose gradient is stored: every parameter outside the decoder layers, and of each
    per-layer tensor (name after model.layers.{i}.) the first layer that has it, so every kind of
    parameter (dense and MoE layers alike) is covered once and the fixtures stay small."""
    seen, keep = set(), []
    for n in grads:
        parts = n.split(".")
        if len(parts) > 3 and parts[0] == "model" and parts[1] == "layers":
            suffix = ".".join(parts[3:])
            if suffix in seen:
                continue
            seen.add(suffix)
        keep.append(n)
    return keep


def make_case(name, out_dir):
    seed = 1000
    while True:
        model, seqs = build(name, seed)
        margin = routing_margin(model.double(), seqs)
        model.float()
        if margin > 1e-3:
            break
        seed += 1
    logits, loss, grads = reference(model, seqs)
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    model.save_pretrained(case_dir)
    tokens = torch.tensor([t for s in seqs for t in s], dtype=torch.int32)
    cu = torch.tensor([0] + list(torch.tensor(SEQ_LENS).cumsum(0).tolist()), dtype=torch.int32)
    tensors = {"tokens": tokens, "cu_seqlens": cu, "logits": logits.float().contiguous(),
               "loss": loss.reshape(1).double()}
    # Tied heads: transformers reports the shared gradient once, under the embedding.
    for n in gradient_subset(grads):
        tensors[f"grad.{n}"] = grads[n].float().contiguous()
    meta = dict(versions(), case=name, seed=str(seed),
                routing_margin=str(margin if margin != float("inf") else "none"))
    save_file(tensors, os.path.join(case_dir, "reference.safetensors"),
              metadata={k: str(v) for k, v in meta.items()})
    size = sum(os.path.getsize(os.path.join(case_dir, f)) for f in os.listdir(case_dir))
    print(f"{name}: T={len(tokens)} loss={float(loss):.6f} grads={len(grads)} seed={seed} "
          f"margin={margin:.3g} bytes={size}")


def read_reference(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def check_dir(check_dir_path, golden_dir):
    failures = 0
    names = sorted(d for d in os.listdir(check_dir_path)
                   if os.path.isdir(os.path.join(check_dir_path, d)))
    if not names:
        sys.exit(f"--check {check_dir_path}: no case directories inside")
    for name in names:
        ref = read_reference(os.path.join(golden_dir, name, "reference.safetensors"))
        model, info = AutoModelForCausalLM.from_pretrained(
            os.path.join(check_dir_path, name), output_loading_info=True, dtype=torch.float64,
            attn_implementation="eager", experts_implementation="eager")
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                             "mismatched_keys", "error_msgs")}
        cu = ref["cu_seqlens"].tolist()
        tokens = ref["tokens"].long()
        with torch.no_grad():
            logits = torch.cat([model(input_ids=tokens[cu[b]:cu[b + 1]][None]).logits[0]
                                for b in range(len(cu) - 1)])
        err = normalized_error(logits, ref["logits"])
        ok = not bad and err < 1e-5
        failures += not ok
        print(f"{name}: {'ok' if ok else 'FAILED'} logits error {err:.2e}"
              + (f" loading problems {bad}" if bad else ""))
    if failures:
        sys.exit(f"{failures} checkpoint(s) written by r1kit do not load back in transformers")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "policy", "data", "golden"))
    ap.add_argument("--check", help="a directory of r1kit-written checkpoints, one per case")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    if args.check:
        check_dir(args.check, args.out)
        return
    for name in args.cases:
        make_case(name, args.out)


if __name__ == "__main__":
    main()
