// r1kit::Error and the CHECK macros. Library code throws, never exits or aborts; each error says
// what was wrong and where (op, file, line, field), and layers may add context as it propagates.
#pragma once

#if !defined(__CUDACC__)
#include <fmt/format.h>
#else
#include <sstream>
#endif

#include <stdexcept>
#include <string>
#include <vector>

namespace r1kit {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message) : std::runtime_error(message), message_(std::move(message)) {}

  // Adds an outer "while ..." line; what() shows the innermost message first, then the context.
  Error& add_context(const std::string& context) {
    context_.push_back(context);
    full_ = message_;
    for (const auto& c : context_) full_ += "\n  while " + c;
    return *this;
  }
  const char* what() const noexcept override {
    return context_.empty() ? message_.c_str() : full_.c_str();
  }
  const std::string& message() const { return message_; }
  const std::vector<std::string>& context() const { return context_; }

 private:
  std::string message_;
  std::vector<std::string> context_;
  std::string full_;
};

namespace detail {
[[noreturn]] void throw_check_failure(const char* file, int line, const char* cond,
                                      const std::string& message);

#if defined(__CUDACC__)
// nvcc cannot compile fmt's constexpr format machinery, so CUDA sources format their messages at
// run time: each "{}" takes the next argument (no format specs).
inline void simple_format_to(std::ostringstream& os, const char* f) {
  os << f;
}
template <class A, class... Rest>
void simple_format_to(std::ostringstream& os, const char* f, const A& a, const Rest&... rest) {
  for (; *f; ++f) {
    if (f[0] == '{' && f[1] == '}') {
      os << a;
      return simple_format_to(os, f + 2, rest...);
    }
    os << *f;
  }
}
template <class... Args>
std::string simple_format(const char* f, const Args&... args) {
  std::ostringstream os;
  simple_format_to(os, f, args...);
  return os.str();
}
#endif
}  // namespace detail

}  // namespace r1kit

#if defined(__CUDACC__)
#define R1_FORMAT(...) ::r1kit::detail::simple_format(__VA_ARGS__)
#else
#define R1_FORMAT(...) fmt::format(__VA_ARGS__)
#endif

// R1_CHECK(cond, "format {}", args...): throws r1kit::Error with the formatted message.
// The message is meant for users; the file:line of the check is appended for developers.
#define R1_CHECK(cond, ...)                                                                    \
  do {                                                                                         \
    if (!(cond)) [[unlikely]] {                                                                \
      ::r1kit::detail::throw_check_failure(__FILE__, __LINE__, #cond, R1_FORMAT(__VA_ARGS__)); \
    }                                                                                          \
  } while (0)

// R1_THROW("format {}", args...): unconditional error.
#define R1_THROW(...) throw ::r1kit::Error(R1_FORMAT(__VA_ARGS__))
