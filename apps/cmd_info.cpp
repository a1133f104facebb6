// `r1kit info`: what this build and machine can do (CUDA backend, GPU, threads).
#include <iostream>
#include <thread>

#include "apps/commands.h"
#include "core/device.h"

namespace r1kit::apps {
void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show the build configuration and the devices found");
  cmd->callback([] {
#if defined(R1KIT_WITH_CUDA)
    std::cout << "CUDA backend: built\n";
#else
    std::cout << "CUDA backend: not built (nvcc was not found at configure time)\n";
#endif
    std::cout << "GPU: " << cuda_describe() << "\n";
    std::cout << "CPU threads: " << std::thread::hardware_concurrency() << "\n";
  });
}
}  // namespace r1kit::apps
