// Where a tensor lives and where an op runs.
#pragma once

#include <string>

namespace r1kit {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::cuda, i}; }
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  bool operator==(const Device&) const = default;
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

// True when this build has the CUDA backend and the machine has at least one usable GPU. Checked at
// run time, so one binary serves CPU-only and GPU machines.
bool cuda_available();
int cuda_device_count();
// One line describing the GPU (name, memory, compute capability) or why there is none.
std::string cuda_describe();

}  // namespace r1kit
