// Built-in model shapes for `r1kit init` and tests: `tiny` for each architecture (a few thousand
// parameters, for fast tests), the shapes of real models (Qwen2.5-0.5B, Qwen2.5-1.5B,
// Llama-3.2-1B) and dsv3-mini, a 16-layer DeepSeek-V3-style MoE (see presets.cpp for its numbers).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "policy/config.h"

namespace r1kit::policy {

struct Preset {
  std::string name;  // "tiny", "qwen2.5-0.5b", ...
  ModelArch arch;
  std::string description;
};

// Every preset, in a fixed order.
const std::vector<Preset>& presets();
// Names of the presets of one architecture.
std::vector<std::string> preset_names(ModelArch arch);
// The config of a preset; throws listing the presets of `arch` for an unknown name.
ModelConfig preset_config(ModelArch arch, std::string_view name);
// [{"arch": ..., "name": ..., "description": ..., "parameters": {...}}, ...].
Json describe_presets();

}  // namespace r1kit::policy
