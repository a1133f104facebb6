// Out-of-line helpers for core/error.h, kept out of the header so CHECK sites stay small.
#include "core/error.h"

namespace r1kit::detail {

void throw_check_failure(const char* file, int line, const char* cond, const std::string& message) {
  // Strip the path down to the repository-relative part so messages are stable across machines.
  std::string path = file;
  for (const char* top : {"/core/", "/kernels/", "/policy/", "/rollout/", "/rewards/", "/sandbox/",
                          "/grpo/", "/sft/", "/recipes/", "/apps/", "/tests/", "/bench/"}) {
    auto pos = path.rfind(top);
    if (pos != std::string::npos) {
      path = path.substr(pos + 1);
      break;
    }
  }
  throw Error(fmt::format("{} [check `{}` at {}:{}]", message, cond, path, line));
}

}  // namespace r1kit::detail
