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
  mtp_logprob   (T) f32       (MTP cases) depth-1 log-prob of t_{i+2} at each position i that has
                              one, 0 elsewhere; mtp_loss (1) f64 their mean negative; total_loss
                              (1) f64 = loss + λ/D · mtp_loss with λ = MTP_WEIGHT = 0.3
  grad.<name>   f32           d loss (total_loss with MTP) / d parameter under transformers'
                              state_dict names (MTP modules under DeepSeek's model.layers.{L+k}; fused
                              experts: mlp.experts.gate_up_proj / down_proj), for every parameter
                              outside the layers and, per tensor of a layer, for the first layer
                              that has it (every kind once: see gradient_subset)

tests/policy/dense_test.cpp (DenseGolden, DeepseekV3Golden) loads each checkpoint with r1kit,
runs the same batch packed, and compares logits and MTP log-probs (normalised error < 1e-4), the
losses and the stored gradients (< 1e-3).

DeepSeek-V3 cases (n_group > 1, with and without q-LoRA, YaRN, one dense layer): transformers 5.24
fills the experts of masked groups with -inf before the top-k (DeepSeek's inference/model.py does
the same; older transformers used 0), so r1kit is compared with MoeRouting.masked_fill = neg_inf.
num_experts_per_tok is 2, avoiding the K = 1 renormalisation difference described in
kernels/moe.h. MTP (dsv3_qlora): transformers' DeepseekV3ForCausalLM holds no MTP module; the
module is transformers 5's MtpModel (enorm/hnorm/eh_proj, one MoE decoder block, post_norm =
shared_head.norm, the main model's embedding and head), fed the main model's normalised output and
the embedding of t_{i+1}, and written into model.safetensors under DeepSeek's names
(model.layers.{L}.*, per-expert experts, with the per-module embed_tokens / shared_head.head copies
DeepSeek ships). The router runs in float32 inside transformers even for a float64 model; the script
re-seeds until every token's K-th and (K+1)-th choice differ by more than 1e-3, so rounding cannot
change the selection.

Usage (where torch and transformers are installed; the versions are recorded in every
reference file's metadata):
  python tests/golden/make_policy_goldens.py [--out tests/policy/data/golden]
  python tests/golden/make_policy_goldens.py --check DIR
--check DIR loads every DIR/<case>/ (checkpoints r1kit wrote: run the policy tests with
R1KIT_GOLDEN_SAVE_DIR=DIR) in transformers, requires no missing or unexpected weights, and
compares its logits on the case's batch with the reference (normalised error < 1e-5); for MTP
cases the model.layers.{L}.* tensors (which DeepseekV3ForCausalLM reports unexpected: it only
ignores layer 61's) are mapped back into an MtpModel whose depth-1 log-probs must match as well.
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
from transformers.modeling_layers import MtpModel

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
    # DeepSeek-V3: q-LoRA, group-limited routing (4 groups, 2 kept), YaRN, one dense layer, one
    # MTP module (model.layers.2).
    "dsv3_qlora": (DeepseekV3Config, DeepseekV3ForCausalLM, dict(
        DS_COMMON, q_lora_rank=12, num_nextn_predict_layers=1)),
    # DeepSeek-V3: plain q_proj, attention biases, two shared experts.
    "dsv3_noqlora": (DeepseekV3Config, DeepseekV3ForCausalLM, dict(
        DS_COMMON, q_lora_rank=None, attention_bias=True, n_shared_experts=2)),
}

# λ of the MTP loss in the reference: L = L_main + λ/D · L_mtp.
MTP_WEIGHT = 0.3

# Three packed sequences (T = 26); ids are drawn per case below the case's vocabulary.
SEQ_LENS = [9, 5, 12]


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__}


def normalized_error(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30))


def randomize(model, gen, skip=()):
    """Weights that exercise every op: matrices N(0, 0.2²) (embeddings 0.5²), norm weights
    1 + N(0, 0.2²), biases N(0, 0.1²), the correction bias N(0, 0.05²)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in skip:
                continue
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
    mtp = None
    num_mtp = getattr(config, "num_nextn_predict_layers", 0) or 0
    if num_mtp:
        mtp = MtpModel(model, num_mtp).float()
        randomize(mtp, gen, skip=("embed_tokens.weight", "shared_head.weight"))  # shared
    seqs = [torch.randint(0, config.vocab_size, (n,), generator=gen).tolist() for n in SEQ_LENS]
    return model, mtp, seqs


def run_sequence(model, mtp, s):
    """Main logits (n, V) and, with MTP, depth-1 logits (n - 1, V) of one sequence: module 1 sees
    the main model's normalised output h_i and the embedding of t_{i+1} and predicts t_{i+2}."""
    ids = torch.tensor([s])
    hidden = model.model(input_ids=ids).last_hidden_state  # after model.norm
    logits = model.lm_head(hidden)[0]
    if mtp is None:
        return logits, None
    n = len(s)
    h1 = mtp.forward_layer(0, hidden[:, :-1], torch.arange(n - 1)[None], None,
                           input_ids=ids[:, 1:])
    return logits, mtp._project_to_logits(h1)[0]


def routing_margin(model, mtp, seqs):
    """Smallest gap between the K-th and (K+1)-th expert choice (and between the last kept and the
    first dropped group) over all tokens and MoE layers, MTP blocks included."""
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

    modules = list(model.modules()) + (list(mtp.modules()) if mtp is not None else [])
    handles = [m.register_forward_hook(hook) for m in modules
               if type(m).__name__.endswith("TopkRouter")]
    with torch.no_grad():
        for s in seqs:
            run_sequence(model, mtp, s)
    for h in handles:
        h.remove()
    return min(margins) if margins else float("inf")


def mtp_name(name, n_layers):
    """An MtpModel parameter name under DeepSeek's checkpoint naming (fused experts stay fused):
    layers.k.mtp_block.X -> model.layers.{L+k}.X, layers.k.post_norm -> shared_head.norm."""
    _, k, rest = name.split(".", 2)
    rest = rest.replace("mtp_block.", "", 1).replace("post_norm.", "shared_head.norm.", 1)
    return f"model.layers.{n_layers + int(k)}.{rest}"


def split_fused(name, t):
    """transformers 5 fused experts -> per-expert names (gate rows first in gate_up_proj)."""
    out = {}
    if name.endswith("mlp.experts.gate_up_proj"):
        prefix = name[: -len("gate_up_proj")]
        inter = t.shape[1] // 2
        for j in range(t.shape[0]):
            out[f"{prefix}{j}.gate_proj.weight"] = t[j, :inter]
            out[f"{prefix}{j}.up_proj.weight"] = t[j, inter:]
    elif name.endswith("mlp.experts.down_proj"):
        prefix = name[: -len("down_proj")]
        for j in range(t.shape[0]):
            out[f"{prefix}{j}.down_proj.weight"] = t[j]
    else:
        out[name] = t
    return out


def mtp_checkpoint_tensors(mtp, n_layers):
    """The MTP modules as DeepSeek's checkpoints store them: per-expert names, and each module's own
    copies of the embedding and head."""
    out = {}
    sd = mtp.state_dict()
    for name, t in sd.items():
        if name in ("embed_tokens.weight", "shared_head.weight"):
            continue
        out.update(split_fused(mtp_name(name, n_layers), t))
    for k in range(mtp.num_mtp_layers):
        out[f"model.layers.{n_layers + k}.embed_tokens.weight"] = sd["embed_tokens.weight"]
        out[f"model.layers.{n_layers + k}.shared_head.head.weight"] = sd["shared_head.weight"]
    return {k: v.detach().float().contiguous().clone() for k, v in out.items()}


def mtp_state_dict(tensors, n_layers, num_mtp):
    """Inverse of mtp_checkpoint_tensors: an MtpModel state_dict from checkpoint tensors (per-expert
    experts merged back into gate_up_proj / down_proj)."""
    sd, experts = {}, {}
    for name, t in tensors.items():
        parts = name.split(".")
        if len(parts) < 4 or parts[:2] != ["model", "layers"]:
            continue
        k = int(parts[2]) - n_layers
        if not 0 <= k < num_mtp:
            continue
        rest = ".".join(parts[3:])
        if rest in ("embed_tokens.weight", "shared_head.head.weight"):
            continue
        if rest.startswith("mlp.experts.") and rest.count(".") == 4:
            _, _, j, proj, _ = rest.split(".")
            experts.setdefault((k, int(j)), {})[proj] = t
            continue
        if rest.split(".")[0] in ("enorm", "hnorm", "eh_proj"):
            sd[f"layers.{k}.{rest}"] = t
        elif rest.startswith("shared_head.norm."):
            sd[f"layers.{k}.post_norm.{rest[len('shared_head.norm.'):]}"] = t
        else:
            sd[f"layers.{k}.mtp_block.{rest}"] = t
    for k in range(num_mtp):
        js = sorted(j for (kk, j) in experts if kk == k)
        if js:
            p = f"layers.{k}.mtp_block.mlp.experts."
            sd[p + "gate_up_proj"] = torch.stack(
                [torch.cat([experts[(k, j)]["gate_proj"], experts[(k, j)]["up_proj"]]) for j in js])
            sd[p + "down_proj"] = torch.stack([experts[(k, j)]["down_proj"] for j in js])
    return sd


def mtp_logprobs(mtp_logits, seqs):
    """(T) packed: at position i of a sequence, log softmax(depth-1 logits)[t_{i+2}], 0 where the
    sequence has no t_{i+2}; and the mask of the positions that count."""
    out, mask = [], []
    for lg, s in zip(mtp_logits, seqs):
        n = len(s)
        lp = torch.log_softmax(lg, dim=-1)
        for i in range(n):
            if i + 2 < n:
                out.append(lp[i, s[i + 2]])
                mask.append(1.0)
            else:
                out.append(torch.zeros((), dtype=lp.dtype))
                mask.append(0.0)
    return torch.stack(out), torch.tensor(mask, dtype=torch.float64)


def reference(model, mtp, seqs):
    """Logits, losses and gradients in float64 (each sequence alone, batch size 1). With MTP the
    loss is L_main + λ/D · L_mtp, both mean next-token cross-entropies."""
    model.double()
    if mtp is not None:
        mtp.double()
    model.zero_grad()
    if mtp is not None:
        mtp.zero_grad()
    logits, mtp_logits, losses, count = [], [], [], 0
    for s in seqs:
        ids = torch.tensor([s])
        out, mout = run_sequence(model, mtp, s)
        logits.append(out)
        mtp_logits.append(mout)
        losses.append(torch.nn.functional.cross_entropy(out[:-1], ids[0, 1:], reduction="sum"))
        count += len(s) - 1
    loss = torch.stack(losses).sum() / count
    total = loss
    mtp_lp = mtp_loss = None
    if mtp is not None:
        mtp_lp, mask = mtp_logprobs(mtp_logits, seqs)
        mtp_loss = -(mtp_lp * mask).sum() / mask.sum()
        total = loss + MTP_WEIGHT / mtp.num_mtp_layers * mtp_loss
    total.backward()
    n_layers = model.config.num_hidden_layers
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    if mtp is not None:
        for n, p in mtp.named_parameters():
            if n in ("embed_tokens.weight", "shared_head.weight") or p.grad is None:
                continue  # shared with the main model: already in its gradient
            grads[mtp_name(n, n_layers)] = p.grad.detach().clone()
    model.float()
    if mtp is not None:
        mtp.float()
    return dict(logits=torch.cat(logits).detach(), loss=loss.detach(), total=total.detach(),
                mtp_logprob=None if mtp_lp is None else mtp_lp.detach(),
                mtp_loss=None if mtp_loss is None else mtp_loss.detach(), grads=grads)


def gradient_subset(grads):
    """Names whose gradient is stored: every parameter outside the decoder layers, and of each
    per-layer tensor (name after model.layers.{i}.) the first layer that has it, so every kind of
    parameter (dense and MoE layers, MTP modules) is covered once and the fixtures stay small."""
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
        model, mtp, seqs = build(name, seed)
        margin = routing_margin(model.double(), None if mtp is None else mtp.double(), seqs)
        model.float()
        if margin > 1e-3:
            break
        seed += 1
    ref = reference(model, mtp, seqs)
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    model.save_pretrained(case_dir)
    if mtp is not None:
        path = os.path.join(case_dir, "model.safetensors")
        tensors = read_reference(path)
        tensors.update(mtp_checkpoint_tensors(mtp, model.config.num_hidden_layers))
        save_file(tensors, path, metadata={"format": "pt"})
    tokens = torch.tensor([t for s in seqs for t in s], dtype=torch.int32)
    cu = torch.tensor([0] + list(torch.tensor(SEQ_LENS).cumsum(0).tolist()), dtype=torch.int32)
    tensors = {"tokens": tokens, "cu_seqlens": cu, "logits": ref["logits"].float().contiguous(),
               "loss": ref["loss"].reshape(1).double()}
    if mtp is not None:
        tensors["mtp_logprob"] = ref["mtp_logprob"].float().contiguous()
        tensors["mtp_loss"] = ref["mtp_loss"].reshape(1).double()
        tensors["total_loss"] = ref["total"].reshape(1).double()
    # Tied heads: transformers reports the shared gradient once, under the embedding.
    grads = ref["grads"]
    for n in gradient_subset(grads):
        tensors[f"grad.{n}"] = grads[n].float().contiguous()
    meta = dict(versions(), case=name, seed=str(seed),
                routing_margin=str(margin if margin != float("inf") else "none"))
    if mtp is not None:
        meta["mtp_loss_weight"] = str(MTP_WEIGHT)
    save_file(tensors, os.path.join(case_dir, "reference.safetensors"),
              metadata={k: str(v) for k, v in meta.items()})
    size = sum(os.path.getsize(os.path.join(case_dir, f)) for f in os.listdir(case_dir))
    print(f"{name}: T={len(tokens)} loss={float(ref['loss']):.6f} grads={len(grads)} seed={seed} "
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
        path = os.path.join(check_dir_path, name)
        model, info = AutoModelForCausalLM.from_pretrained(
            path, output_loading_info=True, dtype=torch.float64, attn_implementation="eager",
            experts_implementation="eager")
        config = model.config
        n_layers = config.num_hidden_layers
        num_mtp = getattr(config, "num_nextn_predict_layers", 0) or 0
        # transformers' DeepseekV3ForCausalLM holds no MTP module (it ignores only layer 61's):
        # the MTP tensors are checked below through MtpModel instead.
        mtp_prefixes = tuple(f"model.layers.{n_layers + k}." for k in range(num_mtp))
        info["unexpected_keys"] = [k for k in info.get("unexpected_keys", [])
                                   if not (mtp_prefixes and k.startswith(mtp_prefixes))]
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                             "mismatched_keys", "error_msgs")}
        mtp = None
        if num_mtp:
            tensors = {}
            for f in sorted(os.listdir(path)):
                if f.endswith(".safetensors"):
                    tensors.update(read_reference(os.path.join(path, f)))
            mtp = MtpModel(model, num_mtp).double()
            missing, unexpected = mtp.load_state_dict(
                {k: v.double() for k, v in mtp_state_dict(tensors, n_layers, num_mtp).items()},
                strict=False)
            missing = [k for k in missing if k not in ("embed_tokens.weight", "shared_head.weight")]
            if missing or unexpected:
                bad["mtp"] = {"missing": missing, "unexpected": unexpected}
        cu = ref["cu_seqlens"].tolist()
        tokens = ref["tokens"].tolist()
        seqs = [tokens[cu[b]:cu[b + 1]] for b in range(len(cu) - 1)]
        with torch.no_grad():
            outs = [run_sequence(model, mtp, s) for s in seqs]
        err = normalized_error(torch.cat([o[0] for o in outs]), ref["logits"])
        errs = [err]
        msg = f"logits error {err:.2e}"
        if mtp is not None:
            lp, _ = mtp_logprobs([o[1] for o in outs], seqs)
            merr = normalized_error(lp, ref["mtp_logprob"])
            errs.append(merr)
            msg += f", MTP log-prob error {merr:.2e}"
        ok = not bad and max(errs) < 1e-5
        failures += not ok
        print(f"{name}: {'ok' if ok else 'FAILED'} {msg}"
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
