// `r1kit verify --gold G --pred P [--mode math|gsm8k|countdown]`: verifies one prediction and
// prints
// {"verdict","gold_parsed","pred_parsed","reason"}; exit status 0 whatever the verdict.
// `r1kit verify --input FILE.jsonl [--gold-field gold] [--pred-field pred] [--jobs N]`: one verdict
// row per input row on stdout, in input order ({"index","line",["id",]"verdict",...}), then a
// summary object on stderr. A malformed row (bad JSON, invalid UTF-8, a missing or mistyped field)
// does not stop the run: its row has "verdict":"error" and a reason naming FILE:LINE and the field,
// and the command exits non-zero once every row is written, so a 100k-row file is judged in one go.
// --jobs N runs N worker processes (the CAS is not thread-safe; see verify_batch).
// The gold may be a string or a number (amc23's 27.0); the prediction must be a string. In
// countdown mode a gold that is an object ({"numbers":[…],"target":N}), or a row with no gold field
// but "target"/"output", is passed to the verifier as JSON.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "apps/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "rewards/math_verify.h"

namespace r1kit::apps {
namespace {

using OrderedJson = nlohmann::ordered_json;

constexpr size_t kBatchRows = 4096;  // rows verified at once (bounded memory, ordered output)

struct VerifyArgs {
  std::string gold, pred, input, gold_field = "gold", pred_field = "pred", mode = "math";
  bool have_gold = false, have_pred = false;
  int jobs = 0;
  double time_budget = 1.0;
};

std::string dump(const OrderedJson& j) {
  return j.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

rewards::VerifyOptions verify_options(const VerifyArgs& a) {
  auto mode = rewards::verify_mode_from_name(a.mode);
  if (!mode) R1_THROW("--mode {}: unknown mode (math, gsm8k, countdown)", a.mode);
  if (!(a.time_budget > 0) || a.time_budget > 3600)
    R1_THROW("--time-budget {}: must be in (0, 3600] seconds", a.time_budget);
  rewards::VerifyOptions o;
  o.mode = *mode;
  o.time_budget_s = a.time_budget;
  return o;
}

void add_result(OrderedJson* row, const rewards::VerifyResult& r) {
  (*row)["verdict"] = rewards::verdict_name(r.verdict);
  (*row)["gold_parsed"] = r.gold_parsed;
  (*row)["pred_parsed"] = r.pred_parsed;
  (*row)["reason"] = r.reason;
}

void verify_one(const VerifyArgs& a) {
  if (!a.have_gold || !a.have_pred)
    R1_THROW("verify: give both --gold and --pred, or --input FILE");
  OrderedJson row;
  add_result(&row, rewards::verify(a.gold, a.pred, verify_options(a)));
  std::cout << dump(row) << "\n";
}

// One input row: the texts to verify, or why the row is unusable.
struct Row {
  size_t index = 0, line = 0;
  std::string gold, pred, error;
  OrderedJson id;  // the row's "id", copied to the output when present
  rewards::VerifyResult result;
};

std::string type_name(const Json& j) {
  return j.type_name();
}

// Fills row->gold/pred from one line, or row->error ("FILE:LINE: …").
void parse_row(std::string_view text, const VerifyArgs& a, bool countdown, Row* row) {
  const std::string where = a.input + ":" + std::to_string(row->line);
  Json j;
  if (auto fail = try_parse_json(text, &j)) {
    row->error = where + ":" + std::to_string(fail->position.column) + ": " + fail->message;
    return;
  }
  if (!j.is_object()) {
    row->error = where + ": a row must be a JSON object, got " + type_name(j);
    return;
  }
  if (auto it = j.find("id"); it != j.end() && (it->is_string() || it->is_number())) row->id = *it;
  auto gold = j.find(a.gold_field);
  if (gold == j.end() && countdown && (j.contains("target") || j.contains("output"))) {
    Json ref = j;
    ref.erase(a.pred_field);
    row->gold = ref.dump();
  } else if (gold == j.end()) {
    row->error = where + ": field '" + a.gold_field + "' is missing (--gold-field names it)";
    return;
  } else if (gold->is_string()) {
    row->gold = gold->get<std::string>();
  } else if (gold->is_number() || (countdown && gold->is_object())) {
    row->gold = gold->dump();
  } else {
    row->error = where + ": field '" + a.gold_field + "' must be a string or a number, got " +
                 type_name(*gold);
    return;
  }
  auto pred = j.find(a.pred_field);
  if (pred == j.end()) {
    row->error = where + ": field '" + a.pred_field + "' is missing (--pred-field names it)";
  } else if (!pred->is_string()) {
    row->error = where + ": field '" + a.pred_field + "' must be a string, got " + type_name(*pred);
  } else {
    row->pred = pred->get<std::string>();
  }
}

struct Tally {
  size_t rows = 0, correct = 0, incorrect = 0, skip = 0, error = 0;
  std::string first_error;
};

void append_u32(std::string* out, uint32_t v) {
  out->append(reinterpret_cast<const char*>(&v), 4);
}
void append_str(std::string* out, const std::string& s) {
  append_u32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}
std::string read_all(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Records "index verdict gold_parsed pred_parsed reason" (u32 lengths) from a worker's pipe into
// rows; stops at a truncated record (a worker that died mid-write).
void read_records(std::string_view data, std::vector<Row>& rows, std::vector<bool>* done) {
  auto u32 = [&](uint32_t* v) {
    if (data.size() < 4) return false;
    std::memcpy(v, data.data(), 4);
    data.remove_prefix(4);
    return true;
  };
  auto str = [&](std::string* s) {
    uint32_t len;
    if (!u32(&len) || data.size() < len) return false;
    s->assign(data.substr(0, len));
    data.remove_prefix(len);
    return true;
  };
  for (;;) {
    uint32_t index, verdict;
    rewards::VerifyResult r;
    if (!u32(&index) || !u32(&verdict) || !str(&r.gold_parsed) || !str(&r.pred_parsed) ||
        !str(&r.reason) || index >= rows.size() || verdict > 2)
      return;
    r.verdict = static_cast<rewards::Verdict>(verdict);
    rows[index].result = std::move(r);
    (*done)[index] = true;
  }
}

// Verifies the rows with `jobs` worker processes, row i in worker i % jobs. Processes, not
// threads: GiNaC and CLN keep plain (non-atomic) reference counts, also on shared global
// constants, so two threads using the CAS at once corrupt each other's memory. A worker that dies
// (it should not: the verifier is bounded) turns its unfinished rows into "error" rows.
void verify_batch(std::vector<Row>& rows, const rewards::VerifyOptions& opts, int jobs) {
  const size_t n = rows.size();
  const size_t workers = std::min<size_t>(static_cast<size_t>(std::max(jobs, 1)), n);
  if (workers <= 1) {
    for (Row& r : rows)
      if (r.error.empty()) r.result = rewards::verify(r.gold, r.pred, opts);
    return;
  }
  std::cout.flush();
  std::cerr.flush();
  std::vector<int> fds;
  std::vector<pid_t> pids;
  for (size_t w = 0; w < workers; ++w) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) R1_THROW("verify: pipe failed: {}", std::strerror(errno));
    const pid_t pid = ::fork();
    if (pid < 0) R1_THROW("verify: fork failed: {}", std::strerror(errno));
    if (pid == 0) {
      ::close(p[0]);
      for (int fd : fds) ::close(fd);
      std::string out;
      for (size_t i = w; i < n; i += workers) {
        const Row& r = rows[i];
        if (!r.error.empty()) continue;
        const rewards::VerifyResult res = rewards::verify(r.gold, r.pred, opts);
        append_u32(&out, static_cast<uint32_t>(i));
        append_u32(&out, static_cast<uint32_t>(res.verdict));
        append_str(&out, res.gold_parsed);
        append_str(&out, res.pred_parsed);
        append_str(&out, res.reason);
        if (out.size() >= (1 << 16)) {
          if (!write_all(p[1], out)) ::_exit(1);
          out.clear();
        }
      }
      ::_exit(write_all(p[1], out) ? 0 : 1);
    }
    ::close(p[1]);
    fds.push_back(p[0]);
    pids.push_back(pid);
  }
  std::vector<bool> done(n, false);
  for (size_t w = 0; w < workers; ++w) {
    read_records(read_all(fds[w]), rows, &done);
    ::close(fds[w]);
    int status = 0;
    while (::waitpid(pids[w], &status, 0) < 0 && errno == EINTR) {
    }
    std::string how = WIFSIGNALED(status)
                          ? "was killed by signal " + std::to_string(WTERMSIG(status))
                          : "exited with status " + std::to_string(WEXITSTATUS(status));
    for (size_t i = w; i < n; i += workers)
      if (rows[i].error.empty() && !done[i])
        rows[i].error = "the verifier process for this row " + how;
  }
}

void write_batch(const std::vector<Row>& rows, Tally* t) {
  std::string out;
  for (const Row& r : rows) {
    OrderedJson j;
    j["index"] = r.index;
    j["line"] = r.line;
    if (!r.id.is_null()) j["id"] = r.id;
    ++t->rows;
    if (!r.error.empty()) {
      j["verdict"] = "error";
      j["reason"] = r.error;
      ++t->error;
      if (t->first_error.empty()) t->first_error = r.error;
    } else {
      add_result(&j, r.result);
      switch (r.result.verdict) {
        case rewards::Verdict::correct:
          ++t->correct;
          break;
        case rewards::Verdict::incorrect:
          ++t->incorrect;
          break;
        case rewards::Verdict::skip:
          ++t->skip;
          break;
      }
    }
    out += dump(j);
    out += '\n';
  }
  std::cout << out << std::flush;
}

void verify_file(const VerifyArgs& a) {
  if (a.have_gold || a.have_pred) R1_THROW("verify: --input cannot be combined with --gold/--pred");
  const rewards::VerifyOptions opts = verify_options(a);
  if (a.jobs < 0 || a.jobs > 1024)
    R1_THROW("--jobs {}: must be in [0, 1024] (0: all cores)", a.jobs);
  std::ifstream in(a.input, std::ios::binary);
  if (!in) R1_THROW("verify: cannot open {}", a.input);
  const int jobs =
      a.jobs > 0 ? a.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto t0 = std::chrono::steady_clock::now();
  const bool countdown = opts.mode == rewards::VerifyMode::countdown;
  Tally tally;
  std::vector<Row> batch;
  std::string line;
  size_t line_no = 0, index = 0;
  auto flush = [&] {
    verify_batch(batch, opts, jobs);
    write_batch(batch, &tally);
    batch.clear();
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // BOM
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    Row r;
    r.index = index++;
    r.line = line_no;
    parse_row(line, a, countdown, &r);
    batch.push_back(std::move(r));
    if (batch.size() == kBatchRows) flush();
  }
  if (in.bad()) R1_THROW("verify: error reading {} after line {}", a.input, line_no);
  flush();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const size_t judged = tally.correct + tally.incorrect;
  OrderedJson s;
  s["file"] = a.input;
  s["mode"] = a.mode;
  s["rows"] = tally.rows;
  s["correct"] = tally.correct;
  s["incorrect"] = tally.incorrect;
  s["skip"] = tally.skip;
  s["error"] = tally.error;
  s["accuracy"] = judged ? static_cast<double>(tally.correct) / static_cast<double>(judged) : 0.0;
  s["jobs"] = jobs;
  s["seconds"] = seconds;
  std::cerr << dump(OrderedJson{{"summary", s}}) << "\n";
  if (tally.error)
    R1_THROW("verify: {} of {} rows have verdict \"error\" (the rest were verified); first: {}",
             tally.error, tally.rows, tally.first_error);
}

}  // namespace

void register_verify(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "verify", "Check math answers against gold answers (JSON out; one pair or a JSONL file)");
  auto a = std::make_shared<VerifyArgs>();
  auto* gold = cmd->add_option("--gold", a->gold, "the gold answer or solution text");
  auto* pred = cmd->add_option("--pred", a->pred, "the prediction (a model completion)");
  auto* input = cmd->add_option("--input", a->input, "a JSONL file of rows to verify");
  input->excludes(gold)->excludes(pred);
  cmd->add_option("--gold-field", a->gold_field, "--input: the gold answer's field (default gold)");
  cmd->add_option("--pred-field", a->pred_field, "--input: the prediction's field (default pred)");
  cmd->add_option("--mode", a->mode, "math (default), gsm8k or countdown");
  cmd->add_option("--jobs", a->jobs, "--input: verifier processes (default 0: all cores)");
  cmd->add_option("--time-budget", a->time_budget, "seconds per verification (default 1)");
  cmd->callback([a, gold, pred, input] {
    a->have_gold = gold->count() > 0;
    a->have_pred = pred->count() > 0;
    if (input->count() > 0)
      verify_file(*a);
    else
      verify_one(*a);
  });
}

}  // namespace r1kit::apps
