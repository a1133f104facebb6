// Languages (python, C++ with its compile step, bash), the standard-I/O harness and its comparison
// modes, and the function-test harness, including the ways a solution could try to fake a pass.
#include <gtest/gtest.h>
#include <signal.h>

#include "sandbox/harness.h"
#include "sandbox/languages.h"

namespace r1kit::sandbox {
namespace {

const Sandbox& sb() {
  static Sandbox s;
  return s;
}

Limits quick(double wall = 5.0) {
  Limits l;
  l.wall_s = wall;
  l.cpu_s = wall;
  return l;
}

TEST(Languages, Names) {
  for (auto l : {Language::python, Language::cpp, Language::bash})
    EXPECT_EQ(language_from_name(language_name(l)), l);
  EXPECT_FALSE(language_from_name("cobol").has_value());
}

TEST(Languages, Cpp) {
  auto r =
      run_program(sb(), Language::cpp,
                  "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}",
                  "2 40\n", quick());
  EXPECT_EQ(r.status, Status::ok) << r.message << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "42\n");
}

TEST(Languages, CppCompileError) {
  auto r = run_program(sb(), Language::cpp, "int main() { return undefined_name; }", "", quick());
  EXPECT_EQ(r.status, Status::compile_error);
  EXPECT_NE(r.stderr_data.find("undefined_name"), std::string::npos) << r.stderr_data;
}

TEST(Languages, CppCannotIncludeHostFiles) {
  auto r = run_program(sb(), Language::cpp, "#include \"/etc/passwd\"\nint main(){}", "", quick());
  EXPECT_EQ(r.status, Status::compile_error);
  EXPECT_NE(r.stderr_data.find("No such file"), std::string::npos) << r.stderr_data;
}

TEST(Languages, CppLimits) {
  auto mem =
      run_program(sb(), Language::cpp,
                  "#include <vector>\nint main(){std::vector<char> v(10ull<<30, 1); return v[5];}",
                  "", quick());
  EXPECT_EQ(mem.status, Status::memory_limit) << mem.message << mem.stderr_data;
  auto disk =
      run_program(sb(), Language::cpp,
                  "#include <cstdio>\nint main(){FILE*f=fopen(\"big\",\"wb\");static char b[1<<20];"
                  "for(int i=0;i<1024;++i) fwrite(b,1,sizeof b,f); fclose(f);}",
                  "", quick());
  EXPECT_EQ(disk.status, Status::runtime_error) << disk.message;
  EXPECT_EQ(disk.signal, SIGXFSZ);
  auto crash = run_program(sb(), Language::cpp,
                           "int main(){ volatile int* p = nullptr; return *p; }", "", quick());
  EXPECT_EQ(crash.status, Status::runtime_error);
  EXPECT_EQ(crash.signal, SIGSEGV);
}

TEST(Languages, Bash) {
  auto r =
      run_program(sb(), Language::bash, "read x; echo \"got $x\"; ls /; exit 4", "hi\n", quick());
  EXPECT_EQ(r.status, Status::runtime_error);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.stdout_data.rfind("got hi\n", 0), 0u) << r.stdout_data;
  auto bomb = run_program(sb(), Language::bash, ":(){ :|:& };:", "", quick(2));
  EXPECT_TRUE(bomb.status == Status::timeout || bomb.status == Status::runtime_error ||
              bomb.status == Status::ok)
      << status_name(bomb.status);
  EXPECT_LT(bomb.wall_ms, 4000);
}

TEST(Stdio, CompareModes) {
  EXPECT_TRUE(outputs_match("1 2\n", "1 2\n", Compare::exact));
  EXPECT_FALSE(outputs_match("1 2", "1 2\n", Compare::exact));
  EXPECT_TRUE(outputs_match("1   2\r\n\n", "1 2\n", Compare::whitespace));
  EXPECT_FALSE(outputs_match("1 2 3", "1 2", Compare::whitespace));
  EXPECT_FALSE(outputs_match("0.3333333", "0.333333333", Compare::whitespace));
  EXPECT_TRUE(outputs_match("0.3333333", "0.333333333", Compare::float_tolerance));
  EXPECT_TRUE(outputs_match("1000000.5", "1000000.0", Compare::float_tolerance, 1e-6, 1e-6));
  EXPECT_FALSE(outputs_match("0.34", "0.33", Compare::float_tolerance));
  EXPECT_FALSE(outputs_match("YES", "NO", Compare::float_tolerance));
  EXPECT_FALSE(outputs_match("nan", "1", Compare::float_tolerance));
}

TEST(Stdio, PerCaseVerdicts) {
  std::vector<StdioCase> cases = {
      {"1 2\n", "3\n"}, {"5 5\n", "10"}, {"2 2\n", "5\n"}, {"x\n", "?"}};
  auto rep = run_stdio_tests(sb(), Language::python,
                             "a, b = map(int, input().split())\nprint(a + b)", cases, {});
  EXPECT_FALSE(rep.passed);
  EXPECT_EQ(rep.n_passed, 2u);
  ASSERT_EQ(rep.cases.size(), 4u);
  EXPECT_TRUE(rep.cases[0].passed);
  EXPECT_TRUE(rep.cases[1].passed);
  EXPECT_EQ(rep.cases[2].reason, "wrong answer");
  EXPECT_EQ(rep.cases[3].run.status, Status::runtime_error);
  EXPECT_EQ(rep.status, Status::runtime_error);
  EXPECT_EQ(rep.reason, "case 2: wrong answer");
}

TEST(Stdio, ExitZeroDoesNotPass) {
  auto rep =
      run_stdio_tests(sb(), Language::python, "import sys; sys.exit(0)", {{"1\n", "1\n"}}, {});
  EXPECT_FALSE(rep.passed);
  EXPECT_EQ(rep.status, Status::ok);
}

TEST(Stdio, CppCompiledOnce) {
  std::vector<StdioCase> cases;
  for (int i = 0; i < 5; ++i)
    cases.push_back({std::to_string(i) + "\n", std::to_string(i * i) + "\n"});
  auto rep = run_stdio_tests(
      sb(), Language::cpp,
      "#include <cstdio>\nint main(){int x; scanf(\"%d\",&x); printf(\"%d\\n\", x*x);}", cases, {});
  EXPECT_TRUE(rep.passed) << rep.reason << rep.compile.stderr_data;
  auto bad = run_stdio_tests(sb(), Language::cpp, "int main( {", cases, {});
  EXPECT_EQ(bad.status, Status::compile_error);
  EXPECT_EQ(bad.n_run, 0u);
}

// --- Function tests -----------------------------------------------------------------------------

FunctionTest add_test(const std::string& program) {
  FunctionTest t;
  t.program = program;
  t.setup_code = "def add(a, b):\n    \"\"\"Adds.\"\"\"\n";
  t.test_code =
      "def check(candidate):\n"
      "    assert candidate(1, 2) == 3\n"
      "    assert candidate(-1, 1) == 0\n"
      "    assert candidate(10**30, 1) == 10**30 + 1\n";
  t.entry_point = "add";
  t.check_call = "check(candidate)";
  return t;
}

FunctionReport run_add(const std::string& program) {
  return run_function_tests(sb(), add_test(program), quick());
}

TEST(Function, Passes) {
  auto r = run_add("def add(a, b):\n    return a + b\n");
  EXPECT_TRUE(r.passed) << r.reason << r.run.stderr_data;
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.reason, "all tests passed");
}

TEST(Function, WrongAnswerFails) {
  auto r = run_add("def add(a, b):\n    return a - b\n");
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.reason.find("assertion failed at tests line 2"), std::string::npos) << r.reason;
}

TEST(Function, ExitBeforeTestsFails) {
  for (const char* prog :
       {"import sys\nsys.exit(0)\ndef add(a, b): return a + b\n", "import os\nos._exit(0)\n",
        "def add(a, b):\n    import sys; sys.exit(0)\n",
        "def add(a, b):\n    import os; os._exit(0)\n", "raise SystemExit\n", "quit()\n"}) {
    auto r = run_add(prog);
    EXPECT_FALSE(r.passed) << prog << " faked a pass: " << r.reason;
  }
}

TEST(Function, EqOverrideFails) {
  auto r = run_add(
      "class Always:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
      "def add(a, b):\n    return Always()\n");
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.reason.find("assertion failed"), std::string::npos) << r.reason;
  auto sub =
      run_add("class I(int):\n    def __eq__(self, o): return True\ndef add(a, b): return I(0)\n");
  EXPECT_FALSE(sub.passed) << sub.reason;
}

TEST(Function, PrintingPassedFails) {
  auto r = run_add(
      "import sys, json\nprint('passed'); print(json.dumps({'passed': True}))\n"
      "sys.stdout.flush()\nimport os\nos._exit(0)\n");
  EXPECT_FALSE(r.passed) << r.reason;
}

TEST(Function, CannotReachTheVerdictChannelOrTests) {
  // fds 3 and 4 are closed in the solution process; /proc does not exist; the tests are in no file.
  auto r = run_add(R"(
import os, json
found = []
for fd in range(3, 64):
    try:
        data = os.read(fd, 1 << 16)
        found.append(fd)
    except OSError:
        pass
    try:
        os.write(fd, json.dumps({'nonce': 'x', 'passed': True, 'reason': 'faked'}).encode())
        found.append(-fd)
    except OSError:
        pass
leaks = [p for p in ['/proc/self/fd', '/sandbox/tests.py'] if os.path.exists(p)]
listing = os.listdir('/sandbox')
def add(a, b):
    return (found, leaks, listing)
)");
  EXPECT_FALSE(r.passed);
  // The solution's own pipes to the harness are found (they carry only calls), nothing else.
  EXPECT_EQ(r.reason.find("faked"), std::string::npos) << r.reason;
}

TEST(Function, WritingToItsOwnPipeCannotFakeResults) {
  auto r = run_add(R"(
import os, json
for fd in range(3, 20):
    try:
        os.write(fd, (json.dumps({'ok': 3}) + '\n').encode() * 3)
    except OSError:
        pass
def add(a, b):
    return 3
)");
  EXPECT_FALSE(r.passed) << r.reason;
}

TEST(Function, MonkeypatchingDoesNotReachTheTests) {
  FunctionTest t = add_test(
      "import builtins, math\nbuiltins.abs = lambda x: 0\nmath.isclose = lambda *a, **k: True\n"
      "open('/sandbox/random.py', 'w').write('raise SystemExit')\n"
      "def check(candidate): pass\n"
      "def add(a, b): return 0.5\n");
  t.test_code =
      "import math, random\n"
      "def check(candidate):\n"
      "    assert abs(candidate(1, 2) - 3) < 1e-9\n"
      "    assert math.isclose(candidate(1, 2), 3)\n";
  auto r = run_function_tests(sb(), t, quick());
  EXPECT_FALSE(r.passed) << r.reason;
  EXPECT_NE(r.reason.find("assertion failed at tests line 3"), std::string::npos) << r.reason;
}

TEST(Function, TrustedHelpersComeFromTheSetup) {
  // HumanEval/32 style: the test calls a helper defined in the prompt; redefining it in the
  // solution does not change what the test uses.
  FunctionTest t;
  t.setup_code = "def poly(x):\n    return x * x - 4\ndef find_zero():\n    \"\"\"doc\"\"\"\n";
  t.program = "def poly(x):\n    return 0\ndef find_zero():\n    return 7\n";
  t.test_code = "def check(candidate):\n    assert abs(poly(candidate())) < 1e-6\n";
  t.entry_point = "find_zero";
  t.check_call = "check(candidate)";
  auto r = run_function_tests(sb(), t, quick());
  EXPECT_FALSE(r.passed);
  t.program = "def find_zero():\n    return 2.0\n";
  r = run_function_tests(sb(), t, quick());
  EXPECT_TRUE(r.passed) << r.reason;
}

TEST(Function, KillingTheHarnessFails) {
  auto r = run_add(
      "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef add(a, b): return a + b\n");
  EXPECT_FALSE(r.passed) << r.reason;
  auto r2 = run_add(
      "import os, signal\ndef add(a, b):\n    os.kill(-1, signal.SIGKILL)\n    return a + b\n");
  EXPECT_FALSE(r2.passed) << r2.reason;
}

TEST(Function, ExceptionsAndTimeouts) {
  auto r = run_add("def add(a, b):\n    raise ValueError('nope')\n");
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.reason.find("ValueError"), std::string::npos) << r.reason;
  auto slow =
      run_function_tests(sb(), add_test("def add(a, b):\n    while True: pass\n"), quick(1));
  EXPECT_FALSE(slow.passed);
  EXPECT_EQ(slow.status, Status::timeout);
  auto missing = run_add("def plus(a, b): return a + b\n");
  EXPECT_FALSE(missing.passed);
  EXPECT_NE(missing.reason.find("does not define add"), std::string::npos) << missing.reason;
  auto syntax = run_add("def add(a, b) return a + b\n");
  EXPECT_FALSE(syntax.passed);
  EXPECT_NE(syntax.reason.find("SyntaxError"), std::string::npos) << syntax.reason;
}

TEST(Function, ExpectedExceptionsStillWork) {
  FunctionTest t =
      add_test("def add(a, b):\n    if a < 0: raise ValueError('neg')\n    return a + b\n");
  t.test_code =
      "def check(candidate):\n"
      "    try:\n        candidate(-1, 0)\n        assert False\n    except ValueError:\n        "
      "pass\n"
      "    assert candidate(1, 1) == 2\n";
  auto r = run_function_tests(sb(), t, quick());
  EXPECT_TRUE(r.passed) << r.reason;
}

TEST(Function, OpaqueValuesKeepTheirTruthOnly) {
  FunctionTest t;
  t.program =
      "import re\nclass Liar:\n    def __eq__(self, o): return True\n    def __bool__(self): "
      "return False\n"
      "def m(s): return re.search('^a', s)\ndef liar(): return Liar()\n";
  t.test_code =
      "assert m('abc')\nassert not m('xbc')\nassert m('abc') != m('abc')\n"
      "assert not liar()\nassert liar() != 1 and not (liar() == liar())\n";
  auto r = run_function_tests(sb(), t, quick());
  EXPECT_TRUE(r.passed) << r.reason;
}

TEST(Function, ValuesRoundTrip) {
  FunctionTest t;
  t.program =
      "def f(x):\n    return x\n"
      "def g():\n    return (1, [2.5, None], {'a': {1, 2}}, frozenset([3]), b'\\x00\\xff', 1+2j, "
      "True, range(3), float('inf'))\n"
      "def h():\n    return map(str, [1, 2])\n";
  t.test_code =
      "v = (1, [2.5, None], {'a': {1, 2}}, frozenset([3]), b'\\x00\\xff', 1+2j, True, range(3), "
      "float('inf'))\n"
      "assert g() == v\nassert f(v) == v\nassert type(g()[6]) is bool\n"
      "assert f(0.1) == 0.1 and type(f(1)) is int and type(f(1.0)) is float\n"
      "assert list(h()) == ['1', '2']\nassert h() != ['1', '2']\n";
  auto r = run_function_tests(sb(), t, quick());
  EXPECT_TRUE(r.passed) << r.reason << r.run.stderr_data;
}

}  // namespace
}  // namespace r1kit::sandbox
