// The standard-I/O and function-test harnesses (see harness.h and docs/SANDBOX.md).
#include "sandbox/harness.h"

#include <cmath>
#include <cstdlib>
#include <random>

#include "core/error.h"
#include "core/json.h"

namespace r1kit::sandbox {

// --- Harness 1 ----------------------------------------------------------------------------------

std::optional<Compare> compare_from_name(std::string_view name) {
  if (name == "exact") return Compare::exact;
  if (name == "whitespace" || name == "tokens") return Compare::whitespace;
  if (name == "float" || name == "float_tolerance") return Compare::float_tolerance;
  return std::nullopt;
}

namespace {

std::vector<std::string_view> tokens(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  auto space = [](char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
  };
  while (i < s.size()) {
    while (i < s.size() && space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool parse_number(std::string_view t, double* v) {
  std::string s(t);
  char* end = nullptr;
  *v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && !s.empty();
}

}  // namespace

bool outputs_match(const std::string& got, const std::string& expected, Compare mode,
                   double abs_tol, double rel_tol) {
  if (mode == Compare::exact) return got == expected;
  auto a = tokens(got), b = tokens(expected);
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;
    if (mode != Compare::float_tolerance) return false;
    double x, y;
    if (!parse_number(a[i], &x) || !parse_number(b[i], &y)) return false;
    // |x - y| <= max(abs_tol, rel_tol * |y|)
    if (!(std::fabs(x - y) <= std::max(abs_tol, rel_tol * std::fabs(y)))) return false;
  }
  return true;
}

StdioReport run_stdio_tests(const Sandbox& sb, Language lang, const std::string& source,
                            const std::vector<StdioCase>& cases, const StdioOptions& opts) {
  StdioReport rep;
  PreparedProgram prog = prepare_program(sb, lang, source, opts.language);
  rep.compile = prog.compile;
  if (!prog.ok) {
    rep.status = Status::compile_error;
    rep.reason = "compile error: " + prog.compile.message;
    return rep;
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    CaseVerdict v;
    v.run = sb.run(make_run_spec(prog, cases[i].input, opts.limits));
    ++rep.n_run;
    if (v.run.status == Status::ok) {
      v.passed = outputs_match(v.run.stdout_data, cases[i].expected, opts.compare, opts.abs_tol,
                               opts.rel_tol);
      if (!v.passed) v.reason = "wrong answer";
    } else {
      v.reason = std::string(status_name(v.run.status)) +
                 (v.run.message.empty() ? "" : ": " + v.run.message);
      if (rep.status == Status::ok) rep.status = v.run.status;
    }
    if (v.passed) ++rep.n_passed;
    if (!v.passed && rep.reason.empty()) rep.reason = "case " + std::to_string(i) + ": " + v.reason;
    bool stop = !v.passed && opts.stop_at_first_failure;
    rep.cases.push_back(std::move(v));
    if (stop) break;
  }
  rep.passed = rep.n_passed == cases.size();
  return rep;
}

// --- Harness 2 ----------------------------------------------------------------------------------

// The harness process P runs this script (python3 -I: no work-dir imports). It forks the solution
// process S before reading anything secret: S closes fds 3 and 4 and never sees the tests, the
// nonce or the verdict channel. S executes the solution and answers calls; only plain values of
// built-in types cross back (exact types, so no __eq__ overrides), as tagged JSON. P runs the
// trusted setup and test code against proxies and writes the verdict, with the nonce, on fd 4.
const std::string& function_harness_source() {
  static const std::string src = R"PY(# r1kit function-test harness (see r1kit docs/SANDBOX.md)
import builtins, json, os, sys

MAX_DEPTH = 100
MAX_ITEMS = 1_000_000
ITER_TYPES = (type(iter([])), type(iter(())), type(iter('')), type(iter(range(0))),
              type((lambda: (yield))()), map, filter, zip, enumerate, reversed,
              type({}.keys()), type({}.values()), type({}.items()))


import collections
DICT_TYPES = (collections.Counter, collections.OrderedDict, collections.defaultdict)


class Unsafe(TypeError):
    pass


class Opaque:
    __slots__ = ('type_name', 'truthy', 'text')

    def __init__(self, type_name, truthy, text):
        self.type_name, self.truthy, self.text = type_name, truthy, text

    def __bool__(self):
        return self.truthy

    def __repr__(self):
        return '<%s from the solution: %s>' % (self.type_name, self.text)

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def __hash__(self):
        return id(self)


def enc(v, depth=0):
    if depth > MAX_DEPTH:
        raise Unsafe('value nested more than %d deep' % MAX_DEPTH)
    t = type(v)
    if v is None or t is bool or t is int or t is float or t is str:
        return v
    d = depth + 1
    if t is list:
        return {'l': [enc(x, d) for x in v]}
    if t is tuple:
        return {'t': [enc(x, d) for x in v]}
    if t is set:
        return {'s': [enc(x, d) for x in v]}
    if t is frozenset:
        return {'fs': [enc(x, d) for x in v]}
    if t is dict:
        return {'d': [[enc(k, d), enc(x, d)] for k, x in v.items()]}
    if t is bytes:
        return {'b': v.hex()}
    if t is bytearray:
        return {'ba': v.hex()}
    if t is complex:
        return {'c': [v.real, v.imag]}
    if t is range:
        return {'r': [v.start, v.stop, v.step]}
    if t in ITER_TYPES:
        out = []
        for x in v:
            if len(out) >= MAX_ITEMS:
                raise Unsafe('iterator longer than %d items' % MAX_ITEMS)
            out.append(enc(x, d))
        return {'it': out}
    if t in DICT_TYPES:
        return {'d': [[enc(k, d), enc(x, d)] for k, x in v.items()]}
    # Anything else reaches the tests as an opaque stand-in: its truth value and its repr, equal
    # only to itself. The solution's __eq__, __hash__ or __lt__ never run in the harness.
    try:
        truthy = bool(v)
        text = repr(v)[:200]
    except Exception as e:
        raise Unsafe('a value of type %s could not be inspected: %s' % (t.__name__, describe(e)))
    return {'o': [str(t.__name__), truthy, str(text)]}


def dec(x, depth=0):
    if depth > MAX_DEPTH:
        raise ValueError('malformed value')
    t = type(x)
    if x is None or t is bool or t is int or t is float or t is str:
        return x
    if t is not dict or len(x) != 1:
        raise ValueError('malformed value')
    (k, v), = x.items()
    d = depth + 1
    if k == 'l':
        return [dec(y, d) for y in v]
    if k == 't':
        return tuple(dec(y, d) for y in v)
    if k == 's':
        return set(dec(y, d) for y in v)
    if k == 'fs':
        return frozenset(dec(y, d) for y in v)
    if k == 'd':
        return {dec(a, d): dec(b, d) for a, b in v}
    if k == 'b':
        return bytes.fromhex(v)
    if k == 'ba':
        return bytearray.fromhex(v)
    if k == 'c':
        return complex(float(v[0]), float(v[1]))
    if k == 'r':
        return range(int(v[0]), int(v[1]), int(v[2]))
    if k == 'it':
        return iter([dec(y, d) for y in v])
    if k == 'o':
        return Opaque(str(v[0]), v[1] is True, str(v[2]))
    raise ValueError('malformed value')


def send(f, msg):
    f.write(json.dumps(msg) + '\n')
    f.flush()


def describe(e):
    try:
        return '%s: %s' % (type(e).__name__, str(e)[:500])
    except BaseException:
        return type(e).__name__


def solution_main(rfd, wfd):
    # The untrusted side. Whatever the solution does here, the tests and the verdict channel are in
    # the other process.
    rd = os.fdopen(rfd, 'r', encoding='utf-8')
    wr = os.fdopen(wfd, 'w', encoding='utf-8')
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    ns = {'__name__': 'solution', '__builtins__': builtins}
    try:
        with open(os.path.join(here, 'solution.py'), encoding='utf-8') as f:
            src = f.read()
        exec(compile(src, 'solution.py', 'exec'), ns)
    except BaseException as e:  # SystemExit too: exiting before the tests is a failure
        send(wr, {'load_error': describe(e)})
        os._exit(0)
    items = [(k, v) for k, v in list(ns.items()) if type(k) is str and not k.startswith('__')]
    send(wr, {'ready': [k for k, v in items if callable(v) and type(v) is not type(os)],
              'modules': {k: str(getattr(v, '__name__', '')) for k, v in items
                          if type(v) is type(os)}})
    while True:
        line = rd.readline()
        if not line:
            os._exit(0)
        req = json.loads(line)
        name = req['call']
        if name not in ns or not callable(ns[name]):
            send(wr, {'missing': name})
            continue
        try:
            r = ns[name](*dec(req['args']), **dec(req['kwargs']))
        except BaseException as e:
            send(wr, {'exc': type(e).__name__, 'msg': describe(e)})
            continue
        try:
            out = {'ok': enc(r)}
        except Unsafe as e:
            out = {'unsafe': str(e)}
        send(wr, out)


class SolutionFailure(BaseException):
    # Not an Exception: a test's `except Exception` cannot swallow it.
    pass


def main():
    s2h_r, s2h_w = os.pipe()
    h2s_r, h2s_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(3)
        os.close(4)
        os.close(s2h_r)
        os.close(h2s_w)
        solution_main(h2s_r, s2h_w)
        os._exit(0)
    os.close(s2h_w)
    os.close(h2s_r)
    with os.fdopen(3, 'rb') as f:
        ctrl = json.loads(f.read())
    report = os.fdopen(4, 'w', encoding='utf-8')
    nonce = ctrl['nonce']

    def verdict(passed, reason):
        report.write(json.dumps({'nonce': nonce, 'passed': passed, 'reason': reason[:2000]}))
        report.flush()
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        os._exit(0)

    from_sol = os.fdopen(s2h_r, 'r', encoding='utf-8')
    to_sol = os.fdopen(h2s_w, 'w', encoding='utf-8')

    def receive():
        line = from_sol.readline()
        if not line.endswith('\n'):
            raise SolutionFailure('the solution process exited')
        try:
            return json.loads(line)
        except ValueError:
            raise SolutionFailure('malformed message from the solution process')

    class Proxy:
        def __init__(self, name):
            self.__name__ = name

        def __call__(self, *args, **kwargs):
            try:
                send(to_sol, {'call': self.__name__, 'args': enc(list(args)),
                              'kwargs': enc(dict(kwargs))})
            except OSError:
                raise SolutionFailure('the solution process exited')
            msg = receive()
            if type(msg) is not dict:
                raise SolutionFailure('malformed message from the solution process')
            if 'ok' in msg:
                try:
                    return dec(msg['ok'])
                except (ValueError, TypeError, KeyError, IndexError, RecursionError):
                    raise SolutionFailure('malformed value from the solution process')
            if 'exc' in msg:
                name, text = str(msg.get('exc')), str(msg.get('msg'))
                cls = getattr(builtins, name, None)
                if (isinstance(cls, type) and issubclass(cls, Exception)
                        and not issubclass(cls, SolutionFailure)):
                    raise cls(text)
                raise RuntimeError(text)
            if 'unsafe' in msg:
                raise SolutionFailure(str(msg['unsafe']))
            if 'missing' in msg:
                raise SolutionFailure('the solution does not define %s' % self.__name__)
            raise SolutionFailure('malformed message from the solution process')

    try:
        ready = receive()
    except SolutionFailure:
        verdict(False, 'the solution exited before the tests ran')
    if type(ready) is not dict or 'ready' not in ready:
        verdict(False, 'the solution failed to load: %s' % str(ready.get('load_error'))[:1000]
                if type(ready) is dict else 'malformed message from the solution process')
    ns = {'__name__': '__tests__'}
    try:
        exec(compile(ctrl['setup'], 'setup', 'exec'), ns)
    except BaseException as e:
        verdict(False, 'the trusted setup code failed: ' + describe(e))
    names = ready['ready'] if type(ready['ready']) is list else []
    for name in names:
        if type(name) is str and name.isidentifier() and name not in ns \
                and not hasattr(builtins, name):
            ns[name] = Proxy(name)
    # Modules the solution imported, which tests sometimes use without importing them: imported
    # here afresh, from the system paths only (python -I), never the solution's module objects.
    mods = ready.get('modules')
    if type(mods) is dict:
        import importlib
        for name, modname in mods.items():
            if type(name) is str and type(modname) is str and name.isidentifier() \
                    and name not in ns and not hasattr(builtins, name):
                try:
                    ns[name] = importlib.import_module(modname)
                except BaseException:
                    pass
    ep = ctrl.get('entry_point') or ''
    if ep:
        ns[ep] = Proxy(ep)
        ns['candidate'] = ns[ep]
    test_lines = ctrl['test'].splitlines()
    try:
        exec(compile(ctrl['test'], 'tests', 'exec'), ns)
        if ctrl.get('check'):
            eval(compile(ctrl['check'], 'check', 'eval'), ns)
    except AssertionError as e:
        import traceback
        where = ''
        for fr in traceback.extract_tb(e.__traceback__):
            if fr.filename == 'tests' and 0 < fr.lineno <= len(test_lines):
                where = ' at tests line %d: %s' % (fr.lineno, test_lines[fr.lineno - 1].strip())
        verdict(False, 'assertion failed' + where[:500])
    except SolutionFailure as e:
        verdict(False, str(e))
    except BaseException as e:
        verdict(False, describe(e))
    verdict(True, 'all tests passed')


main()
)PY";
  return src;
}

namespace {
std::string random_nonce() {
  std::random_device rd;
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    uint32_t v = rd();
    for (int k = 0; k < 4; ++k) {
      out += hex[(v >> (8 * k + 4)) & 15];
      out += hex[(v >> (8 * k)) & 15];
    }
  }
  return out;
}
}  // namespace

FunctionReport run_function_tests(const Sandbox& sb, const FunctionTest& t, const Limits& limits,
                                  const LanguageOptions& opts) {
  FunctionReport rep;
  std::string nonce = random_nonce();
  Json ctrl = {{"nonce", nonce},
               {"setup", t.setup_code},
               {"test", t.test_code},
               {"entry_point", t.entry_point},
               {"check", t.check_call}};
  RunSpec spec;
  spec.argv = {opts.python, "-I", "-B", std::string(kWorkDir) + "/harness.py"};
  spec.files = {{"harness.py", function_harness_source(), false},
                {"solution.py", t.program, false}};
  spec.limits = limits;
  spec.control_input = ctrl.dump(-1, ' ', false, Json::error_handler_t::replace);
  spec.capture_report = true;
  rep.run = sb.run(spec);
  rep.status = rep.run.status;
  Json verdict;
  bool parsed = !rep.run.report.empty() && !try_parse_json(rep.run.report, &verdict).has_value() &&
                verdict.is_object();
  if (rep.run.status != Status::ok && rep.run.status != Status::runtime_error) {
    rep.reason = std::string(status_name(rep.run.status)) +
                 (rep.run.message.empty() ? "" : ": " + rep.run.message);
    return rep;
  }
  if (!parsed) {
    rep.reason = "no verdict from the harness (the program ended before the tests finished)";
    return rep;
  }
  if (!verdict.contains("nonce") || verdict["nonce"] != nonce) {
    rep.reason = "verdict without this run's nonce";
    return rep;
  }
  rep.passed = verdict.value("passed", false) == true;
  rep.reason = verdict.value("reason", std::string());
  return rep;
}

}  // namespace r1kit::sandbox
