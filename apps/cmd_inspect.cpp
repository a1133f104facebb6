// `r1kit inspect PATH`: lists the tensors of a safetensors file or an HF checkpoint directory
// (sharded with an index, or a single model.safetensors) — name, dtype, shape, bytes — with totals.
// Every header is fully validated on open, so this is also a quick integrity check of a download.
#include <iostream>
#include <map>

#include "apps/commands.h"
#include "core/safetensors.h"

namespace r1kit::apps {
namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", b, units[u]);
}

void inspect(const std::string& path, bool as_json, bool quiet) {
  ShardedCheckpoint ckpt = ShardedCheckpoint::open(path);
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // dtype -> (elements, bytes)
  int64_t total_elems = 0;
  uint64_t total_bytes = 0;
  for (const auto& name : ckpt.names()) {
    const auto& info = ckpt.info(name);
    auto& d = by_dtype[std::string(dtype_name(info.dtype))];
    d.first += info.numel();
    d.second += info.nbytes();
    total_elems += info.numel();
    total_bytes += info.nbytes();
    if (quiet) continue;
    if (as_json) {
      Json row = {{"name", name},
                  {"dtype", dtype_safetensors_name(info.dtype)},
                  {"shape", info.shape},
                  {"bytes", info.nbytes()},
                  {"shard", ckpt.shard_of(name).path()}};
      std::cout << row.dump() << "\n";
    } else {
      std::cout << fmt::format("{:<60} {:<8} {:<22} {}\n", name, dtype_name(info.dtype),
                               shape_str(info.shape),
                               human_bytes(static_cast<double>(info.nbytes())));
    }
  }
  if (as_json) {
    Json summary = {{"source", ckpt.source()},
                    {"tensors", ckpt.size()},
                    {"shards", ckpt.num_shards()},
                    {"elements", total_elems},
                    {"bytes", total_bytes}};
    for (const auto& [dt, v] : by_dtype)
      summary["by_dtype"][dt] = {{"elements", v.first}, {"bytes", v.second}};
    std::cout << summary.dump() << "\n";
    return;
  }
  std::cout << fmt::format("{}: {} tensors in {} shard(s), {} elements{}, {}\n", ckpt.source(),
                           ckpt.size(), ckpt.num_shards(), total_elems,
                           total_elems >= 1000000
                               ? fmt::format(" ({:.2f}M)", static_cast<double>(total_elems) / 1e6)
                               : std::string(),
                           human_bytes(static_cast<double>(total_bytes)));
  for (const auto& [dt, v] : by_dtype)
    std::cout << fmt::format("  {:<8} {} elements, {}\n", dt, v.first,
                             human_bytes(static_cast<double>(v.second)));
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "inspect",
      "List the tensors of a safetensors file or HF checkpoint directory (validates it)");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("path", *path, "a .safetensors file, an index .json, or a checkpoint directory")
      ->required();
  cmd->add_flag("--json", *as_json, "one JSON object per tensor, then a summary object");
  cmd->add_flag("--summary", *quiet, "print only the totals");
  cmd->callback([=] { inspect(*path, *as_json, *quiet); });
}

}  // namespace r1kit::apps
