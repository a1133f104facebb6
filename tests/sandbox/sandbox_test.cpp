// Basic sandbox runs: statuses, limits, output capture, the result JSON.
#include <gtest/gtest.h>

#include "sandbox/sandbox.h"

namespace r1kit::sandbox {
namespace {

const Sandbox& sb() {
  static Sandbox s;
  return s;
}

RunResult py(const std::string& code, Limits lim = {}, std::string stdin_data = "") {
  RunSpec spec;
  spec.argv = {"/usr/bin/python3", "-B", "main.py"};
  spec.files = {{"main.py", code, false}};
  spec.limits = lim;
  spec.stdin_data = std::move(stdin_data);
  return sb().run(spec);
}

TEST(Sandbox, HelloWorld) {
  auto r = py("print('hello')");
  EXPECT_EQ(r.status, Status::ok) << r.message << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "hello\n");
  EXPECT_EQ(r.exit_code, 0);
}

}  // namespace
}  // namespace r1kit::sandbox
