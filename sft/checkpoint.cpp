// Training checkpoints (sft/checkpoint.h).
#include "sft/checkpoint.h"

#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "core/safetensors.h"
#include "policy/checkpoint.h"

namespace r1kit::sft {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFormat = "r1kit-training-state";
constexpr int64_t kVersion = 1;

// A host copy of a flat state arena (the writer reads it during write()).
void add_flat(SafetensorsWriter& w, const std::string& name, const TensorView& flat, Context& ctx) {
  w.add(name, flat.dtype, flat.dims(), [&ctx, flat](void* dst) {
    TensorView host(dst, flat.dtype, Device::cpu(), flat.dims(), flat.name);
    ctx.copy(host, flat);
  });
}

}  // namespace

Json save_training_checkpoint(const std::string& dir, const policy::Policy& policy,
                              const Json& trainer, Context& ctx, const std::string& tokenizer_dir) {
  R1_CHECK(!dir.empty(), "[checkpoint] the checkpoint directory name is empty");
  const std::string tmp = dir + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  policy::SaveOptions so;
  so.dtype = policy.options().dtype == DType::f64 ? DType::f64 : DType::f32;
  so.overwrite = true;
  so.tokenizer_dir = tokenizer_dir;
  try {
    policy.save(tmp, ctx, so);
    SafetensorsWriter w;
    if (policy.adam_m().defined()) {
      add_flat(w, "adam_m", policy.adam_m().flat(), ctx);
      add_flat(w, "adam_v", policy.adam_v().flat(), ctx);
      // A bf16 run's fp32 masters: the saved weights are they, but a bf16 policy loads them
      // rounded, so the optimizer file keeps them exactly.
      if (&policy.masters() != &policy.params())
        add_flat(w, "master", policy.masters().flat(), ctx);
    }
    w.set_metadata("step", std::to_string(policy.step()));
    w.write(tmp + "/optimizer.safetensors");
    const Json state = {
        {"format", kFormat}, {"version", kVersion}, {"step", policy.step()}, {"trainer", trainer}};
    write_json_file_atomic(tmp + "/trainer_state.json", state);
    policy::publish_directory(tmp, dir);
    return state;
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

Json load_training_checkpoint(const std::string& dir, policy::Policy& policy, Context& ctx) {
  const std::string state_path = dir + "/trainer_state.json";
  const Json state = read_json_file(state_path);
  require_object(state, state_path);
  R1_CHECK(state.value("format", std::string()) == kFormat,
           "{}: not an r1kit training state ('format' must be \"{}\")", state_path, kFormat);
  const int64_t version = get_required<int64_t>(state, "version", state_path);
  R1_CHECK(version == kVersion, "{}: version {} is not supported (this build reads {})", state_path,
           version, kVersion);
  const int64_t step = get_required<int64_t>(state, "step", state_path);
  R1_CHECK(step >= 0, "{}: 'step' must be >= 0, got {}", state_path, step);
  R1_CHECK(state.contains("trainer"), "{}: missing field 'trainer'", state_path);

  const std::string opt_path = dir + "/optimizer.safetensors";
  const SafetensorsFile f = SafetensorsFile::open(opt_path);
  const auto it = f.metadata().find("step");
  R1_CHECK(it != f.metadata().end() && it->second == std::to_string(step),
           "{}: its step ({}) disagrees with {} (step {}): the checkpoint is inconsistent",
           opt_path, it == f.metadata().end() ? std::string("missing") : it->second, state_path,
           step);
  if (f.has("adam_m") || f.has("adam_v")) {
    R1_CHECK(f.has("adam_m") && f.has("adam_v"), "{}: needs both 'adam_m' and 'adam_v'", opt_path);
    try {
      policy.restore_optimizer(f.view("adam_m"), f.view("adam_v"),
                               f.has("master") ? f.view("master") : TensorView{}, step, ctx);
    } catch (const Error& e) {
      R1_THROW("{}: {}", opt_path, e.what());
    }
  } else {
    R1_CHECK(step == 0, "{}: step {} but no optimizer moments", opt_path, step);
  }
  return state.at("trainer");
}

}  // namespace r1kit::sft
