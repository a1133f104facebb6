#!/usr/bin/env python3
"""Reference fixtures for r1kit's DeepSeek-V3 layers (policy/mla.h, policy/moe_layer.h).

Builds transformers' own DeepseekV3Attention and DeepseekV3MoE modules from small DeepseekV3Config
objects (YaRN rope_parameters), fills them with random weights, runs them in float64 on random
hidden states of a few packed sequences with random (increasing) position ids, and backpropagates
a random output cotangent. Writes into tests/policy/data/golden_layers (committed;
tests/policy/mla_test.cpp and moe_layer_test.cpp read them):

  <case>.json         {"config": the DeepseekV3Config as a config.json dict, "module": ...,
                       "seqlens": [...], "versions": {...}, plus case notes}
  <case>.safetensors  the module's state_dict under its own names (q_a_proj.weight, ...,
                       gate.weight, gate.e_score_correction_bias, experts.gate_up_proj, ...),
                       input.x (T, C), input.positions (T) i32, input.cu_seqlens (B+1) i32,
                       output.y (T, C), cotangent.dy (T, C), grad.x (T, C) and grad.<name> for
                       every parameter (float64; T = all tokens of the sequences, packed)

MLA: each sequence runs as its own batch of one with an explicit causal mask (eager attention),
and the outputs are packed end to end, which is the layout of r1kit's varlen attention.

MoE: transformers 5.24's DeepseekV3TopkRouter (sigmoid, noaux_tc, group score = sum of the top-2
biased scores) fills the experts of dropped groups with -inf (DeepSeek's inference/model.py does
too; transformers' older DeepseekV3 and r1kit's default use 0), so the test sets
routing.masked_fill = neg_inf. The router runs in float32 even in a float64 module (it casts).
The correction bias is chosen so that the fill matters (a 0 fill changes the routing).
K > 1 here: transformers renormalises the weights even for K = 1, where DeepSeek does not
(kernels/moe.h). The script draws seeds until every token's top-k choice and group choice have a
margin of at least 1e-3 (in the biased scores), so float32 rounding on either side cannot flip
a selection.

Usage (with torch and transformers installed; the committed files were made with the versions
recorded in each JSON):
  python tests/golden/make_layer_goldens.py [--out tests/policy/data/golden_layers]
"""

import argparse
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import (DeepseekV3Attention, DeepseekV3MoE,
                                                                  DeepseekV3RotaryEmbedding)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

COMMON = dict(vocab_size=64, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
              num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16,
              qk_rope_head_dim=4, qk_nope_head_dim=8, v_head_dim=8, max_position_embeddings=128,
              first_k_dense_replace=0, n_routed_experts=8, num_experts_per_tok=2, n_group=2,
              topk_group=1)  # MoE keys the attention cases do not use, but the config must hold


def yarn(mscale, mscale_all_dim):
    return {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
            "beta_fast": 32.0, "beta_slow": 1.0, "mscale": mscale, "mscale_all_dim": mscale_all_dim,
            "rope_theta": 10000.0}


CASES = {
    # q-LoRA, no biases, DeepSeek-V3's mscale = mscale_all_dim (cos/sin unscaled, softmax scale
    # times mscale²).
    "mla_qlora": ("attention", dict(COMMON, q_lora_rank=16, attention_bias=False,
                                    rope_parameters=yarn(1.0, 1.0))),
    # plain q_proj, biases on kv_a_proj_with_mqa and o_proj, mscale != mscale_all_dim (cos/sin
    # scaled by their ratio).
    "mla_plain_bias": ("attention", dict(COMMON, q_lora_rank=None, attention_bias=True,
                                         rope_parameters=yarn(0.9, 0.7))),
    # 8 experts in 4 groups, 2 groups kept, top-3, two shared experts, random correction bias.
    "moe_groups": ("moe", dict(COMMON, q_lora_rank=16, rope_parameters=yarn(1.0, 1.0),
                               n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=3,
                               n_group=4, topk_group=2, norm_topk_prob=True,
                               routed_scaling_factor=2.5)),
}

SEQLENS = [5, 3, 6]


def positions_for(gen, length, limit):
    # strictly increasing random positions in [0, limit)
    return torch.sort(torch.randperm(limit, generator=gen)[:length]).values


def randomize(module, gen, scale=0.3):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("layernorm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def causal_mask(length, dtype):
    m = torch.full((length, length), torch.finfo(dtype).min, dtype=dtype)
    return torch.triu(m, diagonal=1)[None, None]


def run_attention(cfg, gen):
    cfg._attn_implementation = "eager"
    module = DeepseekV3Attention(cfg, layer_idx=0).double()
    randomize(module, gen)
    rotary = DeepseekV3RotaryEmbedding(cfg)
    total = sum(SEQLENS)
    x = torch.randn(total, cfg.hidden_size, generator=gen, dtype=torch.float64).requires_grad_()
    positions = torch.cat([positions_for(gen, n, cfg.max_position_embeddings) for n in SEQLENS])
    outs, start = [], 0
    for n in SEQLENS:
        xs = x[start:start + n][None]
        pos = positions[start:start + n][None]
        cos, sin = rotary(xs, pos)
        y, _ = module(xs, (cos, sin), causal_mask(n, torch.float64))
        outs.append(y[0])
        start += n
    return module, x, positions, torch.cat(outs), {}


def routing_margins(module, x):
    """Smallest gap at the top-k boundary (kept experts) and at the group boundary, in float32."""
    gate = module.gate
    with torch.no_grad():
        logits = torch.nn.functional.linear(x.float(), gate.weight.float())
        choice = logits.sigmoid() + gate.e_score_correction_bias
        e, g = choice.shape[1], gate.num_group
        grouped = choice.view(-1, g, e // g)
        gscore = grouped.topk(2, dim=-1)[0].sum(-1)
        gs = gscore.sort(dim=-1, descending=True).values
        group_gap = (gs[:, gate.topk_group - 1] - gs[:, gate.topk_group]).min().item()
        keep = gscore.topk(gate.topk_group, dim=-1)[1]
        mask = torch.zeros_like(gscore).scatter_(1, keep, 1).bool()
        masked = grouped.masked_fill(~mask[..., None], float("-inf")).view(-1, e)
        cs = masked.sort(dim=-1, descending=True).values
        topk_gap = (cs[:, gate.top_k - 1] - cs[:, gate.top_k]).min().item()
    return topk_gap, group_gap


def run_moe(cfg, gen):
    for attempt in range(200):
        module = DeepseekV3MoE(cfg).double()
        randomize(module, gen)
        # Each group of two holds one expert with a large positive and one with a large negative
        # correction bias: the kept groups then have fewer than K experts with a positive biased
        # score, so the -inf fill of dropped groups decides the K-th expert (a 0 fill would pick
        # an expert of a dropped group instead).
        offset = torch.tensor([0.5, -1.0] * (cfg.n_routed_experts // 2))
        with torch.no_grad():
            module.gate.e_score_correction_bias.copy_(
                offset + 0.1 * torch.randn(cfg.n_routed_experts, generator=gen))
        x = torch.randn(sum(SEQLENS), cfg.hidden_size, generator=gen, dtype=torch.float64)
        topk_gap, group_gap = routing_margins(module, x)
        if topk_gap > 1e-3 and group_gap > 1e-3:
            break
    else:
        sys.exit("no seed gave routing margins above 1e-3")
    x.requires_grad_()
    positions = torch.cat([torch.arange(n) for n in SEQLENS])
    y = module(x[None])[0]
    _, _, idx = module.gate(x.detach())
    notes = {"attempts": attempt + 1, "min_topk_margin": topk_gap, "min_group_margin": group_gap,
             "topk_idx_sorted": sorted_rows(idx)}
    return module, x, positions, y, notes


def sorted_rows(idx):
    return [sorted(int(v) for v in row) for row in idx]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests/policy/data/golden_layers"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    for case_index, (name, (kind, kwargs)) in enumerate(CASES.items()):
        gen = torch.Generator().manual_seed(1000 + case_index)
        cfg = DeepseekV3Config(**kwargs)
        runner = run_attention if kind == "attention" else run_moe
        module, x, positions, y, notes = runner(cfg, gen)
        dy = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        (y * dy).sum().backward()
        tensors = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
        cu = [0]
        for n in SEQLENS:
            cu.append(cu[-1] + n)
        tensors.update({
            "input.x": x.detach().clone(),
            "input.positions": positions.to(torch.int32),
            "input.cu_seqlens": torch.tensor(cu, dtype=torch.int32),
            "output.y": y.detach().clone().contiguous(),
            "cotangent.dy": dy,
            "grad.x": x.grad.detach().clone(),
        })
        for pname, p in module.named_parameters():
            tensors["grad." + pname] = p.grad.detach().clone().contiguous()
        save_file(tensors, os.path.join(args.out, name + ".safetensors"))
        meta = {"module": type(module).__name__, "seqlens": SEQLENS, "config": cfg.to_dict(),
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                             "python": sys.version.split()[0]}}
        meta.update(notes)
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"{name}: {len(tensors)} tensors, |y| = {y.norm().item():.4f}", notes.get("attempts", ""))


if __name__ == "__main__":
    main()
