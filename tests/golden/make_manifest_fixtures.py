#!/usr/bin/env python3
"""Reference fixtures for r1kit's model configs, parameter manifest and checkpoint reader.

Builds small random DeepseekV3ForCausalLM / DeepseekV2ForCausalLM / Qwen2ForCausalLM /
LlamaForCausalLM models with Hugging Face transformers and writes what r1kit must agree with into
tests/policy/data (committed; tests/policy/*_test.cpp read them):

  manifest/<case>.json   the config.json transformers writes for the case, the names and shapes of
                         model.state_dict() (fused experts, as transformers 5 holds them), the
                         names/shapes/dtypes of the checkpoint save_pretrained writes (per-expert
                         names), the MTP tensors in DeepSeek's checkpoint naming, parameter counts.
  real/<name>.json       for each real config in configs/: parameter counts of the full-size model
                         (instantiated on the meta device), the rotary inv_freq and cos/sin scaling
                         transformers computes, the MLA softmax scale, and the config.json
                         transformers 5 writes back after reading it (rope_parameters style).
  fp8/                   a tiny DeepSeek-V3 checkpoint in DeepSeek's FP8 layout (e4m3 weights with
                         128x128 weight_scale_inv blocks, partial edge blocks) and expected.safetensors
                         with the dequantised f32 values; fp8/blocks.safetensors holds one larger
                         block-quantised tensor (2x2 blocks, partial in both dims) and its expected
                         value.
  fused/                 the same tiny DeepSeek-V3 weights under per-expert names (save_pretrained)
                         and under transformers 5's fused names (state_dict() as is).

MTP: transformers' DeepseekV3ForCausalLM does not hold the MTP modules; DeepSeek's released
checkpoints store module k at model.layers.{num_hidden_layers + k}.{embed_tokens, enorm, hnorm,
eh_proj, shared_head.norm, shared_head.head} plus a full decoder block (self_attn.*, mlp.*,
input_layernorm, post_attention_layernorm). transformers 5's MtpModel builds the same modules
(mtp_block = the decoder block, post_norm = shared_head.norm, embed_tokens / shared_head shared with
the main model); its state_dict is mapped back to DeepSeek's names here, and check_mtp_naming()
asserts that transformers' MtpModel.from_pretrained loads a checkpoint written under those names.

FP8: DeepSeek's weight_dequant (inference/kernel.py) multiplies each e4m3 value by the f32 scale of
its 128x128 block, y = x * s in f32; the script checks transformers' own _dequantize_fp8_weight
agrees bit for bit before writing the expected values.

Usage (where torch and transformers are installed; the committed fixtures were made with the
versions recorded in each file):
  python tests/golden/make_manifest_fixtures.py [--out tests/policy/data] [--r1kit build/apps/r1kit]
--r1kit additionally runs `r1kit init` for every tiny preset and checks that transformers loads the
result with no missing or unexpected weights and the same values (nothing is written for that).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (AutoConfig, AutoModelForCausalLM, DeepseekV2Config, DeepseekV2ForCausalLM,
                          DeepseekV3Config, DeepseekV3ForCausalLM, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)
from transformers.modeling_layers import MtpModel

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "beta_fast": 32.0,
        "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0, "rope_theta": 10000.0}
DS_COMMON = dict(vocab_size=64, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                 num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16, qk_rope_head_dim=4,
                 qk_nope_head_dim=8, v_head_dim=8, max_position_embeddings=128)

# name -> (config class, model class, kwargs)
CASES = {
    # V3: q-LoRA, n_group > 1, YaRN, one dense layer, one MTP module.
    "dsv3_qlora_mtp": (DeepseekV3Config, DeepseekV3ForCausalLM, dict(
        DS_COMMON, num_hidden_layers=3, q_lora_rank=16, n_routed_experts=8, n_shared_experts=1,
        num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=1,
        num_nextn_predict_layers=1, rope_parameters=YARN)),
    # V3: plain q_proj, attention biases, two shared experts, two MTP modules, default RoPE.
    "dsv3_noqlora_bias_mtp2": (DeepseekV3Config, DeepseekV3ForCausalLM, dict(
        DS_COMMON, num_hidden_layers=2, q_lora_rank=None, attention_bias=True, n_routed_experts=4,
        n_shared_experts=2, num_experts_per_tok=2, n_group=1, topk_group=1, first_k_dense_replace=1,
        num_nextn_predict_layers=2)),
    # V2-Lite shape: no q-LoRA, softmax greedy routing, no correction bias.
    "dsv2_lite": (DeepseekV2Config, DeepseekV2ForCausalLM, dict(
        DS_COMMON, num_hidden_layers=3, q_lora_rank=None, n_routed_experts=8, n_shared_experts=2,
        num_experts_per_tok=2, topk_method="greedy", n_group=1, topk_group=1,
        first_k_dense_replace=1, rope_parameters=YARN)),
    # V2 with q-LoRA and group-limited greedy routing.
    "dsv2_group_qlora": (DeepseekV2Config, DeepseekV2ForCausalLM, dict(
        DS_COMMON, num_hidden_layers=2, q_lora_rank=16, n_routed_experts=8, n_shared_experts=1,
        num_experts_per_tok=2, topk_method="group_limited_greedy", n_group=4, topk_group=2,
        first_k_dense_replace=0)),
    "qwen2_tied": (Qwen2Config, Qwen2ForCausalLM, dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        max_position_embeddings=128, rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
    "qwen2_untied": (Qwen2Config, Qwen2ForCausalLM, dict(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False,
        max_position_embeddings=128)),
    "llama_llama3": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        max_position_embeddings=256,
        rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
                         "rope_theta": 500000.0})),
    # Llama with attention biases (q, k, v and o), tied embeddings, head_dim != hidden / heads.
    "llama_bias_headdim": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, head_dim=16, attention_bias=True,
        tie_word_embeddings=True, max_position_embeddings=128)),
}

REAL_CONFIGS = ["deepseek-v3", "deepseek-v2-lite", "qwen2.5-0.5b", "llama-3.2-1b"]

# Tensors DeepSeek ships in FP8 (every linear weight of attention and MLPs); embeddings, norms, the
# router, eh_proj and the head stay bf16, e_score_correction_bias f32.
FP8_SUFFIXES = ("q_proj.weight", "q_a_proj.weight", "q_b_proj.weight", "kv_a_proj_with_mqa.weight",
                "kv_b_proj.weight", "o_proj.weight", "gate_proj.weight", "up_proj.weight",
                "down_proj.weight")


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def read_checkpoint(path):
    """name -> tensor of a .safetensors file."""
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def split_fused(name, t):
    """transformers 5 fused experts -> DeepSeek per-expert names. gate_up_proj is (E, 2I, C) with the
    gate rows first (chunk(2, dim=-1) of the output), down_proj is (E, C, I)."""
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


def deepseek_mtp_names(mtp, n_layers, num_mtp):
    """The tensors of a transformers MtpModel under DeepSeek's checkpoint names: module k's
    layers.k.mtp_block.X is model.layers.{n_layers + k}.X, post_norm is shared_head.norm, and each
    module stores its own copy of the (shared) embedding and head."""
    sd = mtp.state_dict()
    out = {}
    for name, t in sd.items():
        if name in ("embed_tokens.weight", "shared_head.weight"):
            continue
        _, k, rest = name.split(".", 2)
        rest = rest.replace("mtp_block.", "", 1).replace("post_norm.", "shared_head.norm.", 1)
        out.update(split_fused(f"model.layers.{n_layers + int(k)}.{rest}", t))
    for k in range(num_mtp):
        out[f"model.layers.{n_layers + k}.embed_tokens.weight"] = sd["embed_tokens.weight"]
        out[f"model.layers.{n_layers + k}.shared_head.head.weight"] = sd["shared_head.weight"]
    return out


def mtp_checkpoint_tensors(model, num_mtp):
    """The MTP modules of transformers' MtpModel under DeepSeek's names, and their parameter count
    without the shared embedding and head."""
    mtp = MtpModel(model, num_mtp)
    unique = sum(p.numel() for n, p in mtp.named_parameters()
                 if n not in ("embed_tokens.weight", "shared_head.weight"))
    return deepseek_mtp_names(mtp, model.config.num_hidden_layers, num_mtp), unique


def check_mtp_naming():
    """The MTP names written to the fixtures are the ones transformers' own MTP loader reads:
    transformers only recognises DeepSeek-V3's MTP at model.layers.61, so a 61-layer tiny model is
    saved with its MTP module under our names and loaded back with MtpModel.from_pretrained."""
    torch.manual_seed(3)
    config = DeepseekV3Config(**dict(DS_COMMON, hidden_size=16, intermediate_size=16,
                                     moe_intermediate_size=8, num_hidden_layers=61, q_lora_rank=8,
                                     n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2,
                                     n_group=2, topk_group=1, first_k_dense_replace=1,
                                     num_nextn_predict_layers=1))
    model = DeepseekV3ForCausalLM(config)
    mtp, _ = mtp_checkpoint_tensors(model, 1)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        path = os.path.join(tmp, "model.safetensors")
        tensors = read_checkpoint(path)
        tensors.update({k: v.contiguous().clone() for k, v in mtp.items()})
        save_file(tensors, path, metadata={"format": "pt"})
        main = DeepseekV3ForCausalLM.from_pretrained(tmp)
        loaded = MtpModel.from_pretrained(main)  # raises when an MTP weight is missing
        again = deepseek_mtp_names(loaded, 61, 1)
    for k, v in mtp.items():
        assert torch.equal(again[k], v), f"MTP tensor {k} did not round-trip through transformers"
    print(f"MTP naming: transformers' MtpModel.from_pretrained loads all {len(mtp)} tensors")


def listing(tensors, with_dtype=False):
    rows = []
    for name in sorted(tensors):
        t = tensors[name]
        row = [name, list(t.shape)]
        if with_dtype:
            row.append(str(t.dtype).replace("torch.", ""))
        rows.append(row)
    return rows


def make_manifest_case(name, out_dir):
    config_cls, model_cls, kwargs = CASES[name]
    torch.manual_seed(1234)
    config = config_cls(**kwargs)
    model = model_cls(config)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            saved_config = json.load(f)
        saved = read_checkpoint(os.path.join(tmp, "model.safetensors"))
    buffers = {n for n, _ in model.named_buffers()}
    record = {
        "case": name,
        "versions": versions(),
        "config": saved_config,
        "state_dict": listing(model.state_dict()),
        "checkpoint": listing(saved, with_dtype=True),
        "num_parameters": model.num_parameters(),
        "persistent_buffers": sorted(n for n in model.state_dict() if n in buffers),
    }
    num_mtp = getattr(config, "num_nextn_predict_layers", 0) if "deepseek_v3" in config.model_type else 0
    if num_mtp:
        mtp, unique = mtp_checkpoint_tensors(model, num_mtp)
        record["mtp_checkpoint"] = listing(mtp)
        record["mtp_num_parameters"] = unique
    write_json(os.path.join(out_dir, "manifest", f"{name}.json"), record)
    print(f"manifest/{name}.json: {len(record['checkpoint'])} checkpoint tensors")


def make_real(name, out_dir):
    with open(os.path.join(out_dir, "configs", f"{name}.json")) as f:
        raw = json.load(f)
    clean = {k: v for k, v in raw.items() if k not in ("quantization_config", "auto_map")}
    config = AutoConfig.for_model(**clean)
    with tempfile.TemporaryDirectory() as tmp:
        config.save_pretrained(tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            resaved = json.load(f)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    record = {"name": name, "versions": versions(), "resaved_config": resaved,
              "num_parameters": model.num_parameters(),
              "persistent_buffer_elements": sum(b.numel() for n, b in model.named_buffers()
                                                if n in model.state_dict())}
    # The rotary embedding on a real device (meta tensors have no values).
    rotary_cls = type(model.model.rotary_emb)
    rotary = rotary_cls(config=config)
    record["rope"] = {"inv_freq": rotary.inv_freq.double().tolist(),
                      "attention_scaling": float(rotary.attention_scaling)}
    attn = model.model.layers[0].self_attn
    if hasattr(attn, "scaling"):
        record["softmax_scale"] = float(attn.scaling)
    if getattr(config, "num_nextn_predict_layers", 0) and config.model_type == "deepseek_v3":
        with torch.device("meta"):
            mtp = MtpModel(model, config.num_nextn_predict_layers)
        record["mtp_num_parameters"] = sum(p.numel() for n, p in mtp.named_parameters()
                                           if n not in ("embed_tokens.weight", "shared_head.weight"))
    write_json(os.path.join(out_dir, "real", f"{name}.json"), record)
    print(f"real/{name}.json: {record['num_parameters']} parameters")


def quantize_fp8_blocks(w, block=128):
    """Per 128x128 block: s = amax / 448, q = e4m3(w / s). Returns (q, s) with s f32 (the tensor
    DeepSeek names weight_scale_inv: dequantise by multiplying)."""
    rows, cols = w.shape
    q = torch.empty(rows, cols, dtype=torch.float8_e4m3fn)
    s = torch.empty(math.ceil(rows / block), math.ceil(cols / block), dtype=torch.float32)
    for i in range(s.shape[0]):
        for j in range(s.shape[1]):
            blk = w[i * block:(i + 1) * block, j * block:(j + 1) * block].float()
            scale = (blk.abs().max().clamp(min=1e-12) / 448.0).float()
            q[i * block:(i + 1) * block, j * block:(j + 1) * block] = (blk / scale).to(torch.float8_e4m3fn)
            s[i, j] = scale
    return q, s


def dequantize_fp8_blocks(q, s, block=128):
    """DeepSeek's weight_dequant: y[r, c] = f32(q[r, c]) * s[r // 128, c // 128], in f32."""
    rows, cols = q.shape
    full = s.repeat_interleave(block, 0)[:rows].repeat_interleave(block, 1)[:, :cols]
    y = q.float() * full
    from transformers.integrations.finegrained_fp8 import _dequantize_fp8_weight
    y_hf = _dequantize_fp8_weight(q.clone(), s, [block, block], torch.float32)
    assert torch.equal(y, y_hf), "transformers' FP8 dequantisation disagrees with DeepSeek's"
    return y


FP8_CONFIG = dict(vocab_size=16, hidden_size=136, intermediate_size=8, moe_intermediate_size=8,
                  num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1, q_lora_rank=None,
                  kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8,
                  n_routed_experts=2, n_shared_experts=1, num_experts_per_tok=1, n_group=1,
                  topk_group=1, first_k_dense_replace=0, num_nextn_predict_layers=0,
                  max_position_embeddings=64)


def make_fp8(out_dir):
    torch.manual_seed(7)
    config = DeepseekV3Config(**FP8_CONFIG)
    model = DeepseekV3ForCausalLM(config)
    with torch.no_grad():
        for n, b in model.named_buffers():
            if n.endswith("e_score_correction_bias"):
                b.copy_(torch.randn_like(b) * 0.1)
    d = os.path.join(out_dir, "fp8")
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            cfg = json.load(f)
        sd = read_checkpoint(os.path.join(tmp, "model.safetensors"))
    cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3",
                                  "quant_method": "fp8", "weight_block_size": [128, 128]}
    cfg["dtype"] = "bfloat16"
    stored, expected = {}, {}
    for name, t in sd.items():
        if name.endswith(FP8_SUFFIXES):
            # Spread magnitudes so blocks get different scales.
            w = t.float() * (1.0 + torch.arange(t.numel()).reshape(t.shape) % 7)
            q, s = quantize_fp8_blocks(w)
            stored[name] = q
            stored[name + "_scale_inv"] = s
            expected[name] = dequantize_fp8_blocks(q, s)
        elif name.endswith("e_score_correction_bias"):
            stored[name] = t.float()
        else:
            stored[name] = t.to(torch.bfloat16)
    save_file(stored, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    save_file(expected, os.path.join(d, "expected.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    # One tensor with 2x2 blocks, partial in both dims (130 = 128 + 2 rows, 140 = 128 + 12 cols).
    g = torch.Generator().manual_seed(11)
    w = torch.randn(130, 140, generator=g) * torch.linspace(0.01, 3.0, 140)
    q, s = quantize_fp8_blocks(w)
    save_file({"w.weight": q, "w.weight_scale_inv": s, "expected": dequantize_fp8_blocks(q, s)},
              os.path.join(d, "blocks.safetensors"), metadata={"format": "pt"})
    print(f"fp8/: {sum(1 for n in stored if n.endswith('_scale_inv'))} FP8 tensors")


FUSED_CONFIG = dict(vocab_size=32, hidden_size=16, intermediate_size=24, moe_intermediate_size=8,
                    num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                    q_lora_rank=8, kv_lora_rank=8, qk_rope_head_dim=4, qk_nope_head_dim=4,
                    v_head_dim=4, n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2,
                    n_group=2, topk_group=1, first_k_dense_replace=1, num_nextn_predict_layers=0,
                    max_position_embeddings=64)


def make_fused(out_dir):
    torch.manual_seed(5)
    config = DeepseekV3Config(**FUSED_CONFIG)
    model = DeepseekV3ForCausalLM(config)
    with torch.no_grad():
        for n, b in model.named_buffers():
            if n.endswith("e_score_correction_bias"):
                b.copy_(torch.randn_like(b) * 0.1)
    per_expert = os.path.join(out_dir, "fused", "per_expert")
    fused = os.path.join(out_dir, "fused", "fused")
    os.makedirs(fused, exist_ok=True)
    model.save_pretrained(per_expert)
    for extra in ("generation_config.json",):
        p = os.path.join(per_expert, extra)
        if os.path.exists(p):
            os.remove(p)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(fused, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(per_expert, "config.json")) as f:
        cfg = f.read()
    with open(os.path.join(fused, "config.json"), "w") as f:
        f.write(cfg)
    print("fused/: per_expert and fused checkpoints")


def check_r1kit(binary):
    """r1kit init for each tiny preset must load in transformers with the same values."""
    ok = True
    for arch in ("deepseek_v3", "deepseek_v2", "qwen2", "llama"):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "model")
            res = subprocess.run([binary, "init", "--arch", arch, "--preset", "tiny", "--out", out,
                                  "--seed", "3", "--dtype", "f32"], capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{arch}: r1kit init failed: {res.stderr}")
                ok = False
                continue
            model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True,
                                                               dtype=torch.float32)
            ours = read_checkpoint(os.path.join(out, "model.safetensors"))
            n_layers = model.config.num_hidden_layers
            mtp_prefixes = tuple(f"model.layers.{n_layers + k}." for k in range(4))
            unexpected = [k for k in info["unexpected_keys"] if not k.startswith(mtp_prefixes)]
            problems = []
            if info["missing_keys"] or unexpected or info["mismatched_keys"]:
                problems.append(f"missing {info['missing_keys']} unexpected {unexpected} "
                                f"mismatched {info['mismatched_keys']}")
            # Compare every main-model tensor, per-expert names split from the fused state_dict.
            sd = {}
            for k, v in model.state_dict().items():
                sd.update(split_fused(k, v))
            for k, v in sd.items():
                if k == "lm_head.weight" and k not in ours:
                    k2 = "model.embed_tokens.weight"  # tied
                else:
                    k2 = k
                if k2 not in ours:
                    problems.append(f"{k} not written by r1kit")
                elif not torch.equal(ours[k2].float(), v.float()):
                    problems.append(f"{k} differs")
            # The RoPE settings are written twice (rope_scaling + rope_theta for older readers,
            # rope_parameters for transformers 5); each alone must give transformers the same RoPE.
            with open(os.path.join(out, "config.json")) as f:
                written = json.load(f)
            rotaries = []
            for drop in ("rope_scaling", "rope_parameters"):
                variant = {k: v for k, v in written.items() if k != drop}
                cfg = AutoConfig.for_model(**variant)
                rot = type(model.model.rotary_emb)(config=cfg)
                rotaries.append((rot.inv_freq, float(rot.attention_scaling)))
            if not (torch.equal(rotaries[0][0], rotaries[1][0]) and rotaries[0][1] == rotaries[1][1]
                    and torch.equal(rotaries[0][0], model.model.rotary_emb.inv_freq)):
                problems.append("rope_scaling and rope_parameters give transformers different RoPE")
            print(f"{arch}: transformers loaded r1kit's tiny checkpoint"
                  + (": OK" if not problems else ": " + "; ".join(problems[:5])))
            ok = ok and not problems
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "policy", "data"))
    ap.add_argument("--r1kit", help="path of the r1kit binary, to check its checkpoints load")
    args = ap.parse_args()
    for name in CASES:
        make_manifest_case(name, args.out)
    for name in REAL_CONFIGS:
        make_real(name, args.out)
    make_fp8(args.out)
    make_fused(args.out)
    check_mtp_naming()
    if args.r1kit and not check_r1kit(args.r1kit):
        sys.exit(1)


if __name__ == "__main__":
    main()
