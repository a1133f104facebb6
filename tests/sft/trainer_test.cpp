// The SFT / distillation stage (sft/trainer.h) end to end on tiny models written to disk with a
// real tokenizer: the loss falls and the outputs (metrics, checkpoints, final model) are complete;
// a run killed after a checkpoint resumes bit-identically; a resume with another trajectory is
// refused naming the field; MTP models train their MTP heads; logit distillation (teacher on the
// fly, or its top-k stored by `r1kit logprobs --topk`) lowers the student's KL to the teacher;
// configs and datasets with mistakes give errors naming the key or the line.
#include "sft/trainer.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "policy/checkpoint.h"
#include "policy/policy.h"
#include "policy/presets.h"
#include "tests/common/test_util.h"

namespace r1kit::sft {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

std::string tokenizer_dir(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/tokenizers/" + name;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A tiny model of `arch` with the vocabulary of the named test tokenizer, written as an HF
// directory with its tokenizer files.
std::string write_model(const ScratchDir& dir, const std::string& name, policy::ModelArch arch,
                        const std::string& tokenizer, uint64_t seed) {
  policy::ModelConfig c = policy::preset_config(arch, "tiny");
  c.vocab_size = tokenizer == "qwen3-mini" ? 3328 : 4096;
  policy::InitOptions o;
  o.seed = seed;
  o.dtype = DType::f32;
  o.tokenizer_dir = tokenizer_dir(tokenizer);
  const std::string path = dir.file(name);
  policy::init_checkpoint(path, c, o);
  return path;
}

std::string qa_rows() {
  std::string s;
  for (int a = 1; a <= 6; ++a)
    s += fmt::format(
        R"({{"question": "What is {} + {}?", "answer": "<think>\n{} + {} = {}\n</think>\n<answer>{}</answer>"}})"
        "\n",
        a, a + 1, a, a + 1, 2 * a + 1, 2 * a + 1);
  return s;
}

Json base_config(const std::string& model, const std::string& train, const std::string& out) {
  Json j = Json::object();
  j["model"] = model;
  j["train"] = train;
  j["output"] = out;
  j["chat_template"] = "qwen3";  // the test tokenizers have no template of their own
  j["device"] = "cpu";
  j["threads"] = 2;
  j["micro_batch_tokens"] = 96;
  j["grad_accum"] = 2;
  j["epochs"] = 30;
  j["seed"] = 7;
  j["optim"] = {{"lr", 1e-2}, {"warmup_steps", 2}, {"schedule", "cosine"}};
  return j;
}

std::vector<Json> metric_lines(const std::string& out, const std::string& type) {
  std::vector<Json> r;
  for (const Json& j : read_jsonl_file(out + "/metrics.jsonl"))
    if (j.at("type") == type) r.push_back(j);
  return r;
}

TEST(SftTrainer, LearnsAndWritesItsOutputs) {
  ScratchDir dir;
  const std::string model = write_model(dir, "m", policy::ModelArch::qwen2, "qwen3-mini", 1);
  write_text(dir.file("train.jsonl"), qa_rows());
  Json j = base_config(model, dir.file("train.jsonl"), dir.file("out"));
  j["eval_fraction"] = 0.2;
  j["save_every"] = 10;
  j["keep_checkpoints"] = 2;
  const SftConfig cfg = SftConfig::from_json(j, "test", StageKind::sft);
  int callbacks = 0;
  const SftResult r = run_sft(cfg, [&](const Json&) { ++callbacks; });
  const auto train = metric_lines(dir.file("out"), "train");
  ASSERT_GE(train.size(), 20u);
  EXPECT_EQ(static_cast<int64_t>(train.size()), r.steps);
  EXPECT_EQ(train.front().at("total_steps").get<int64_t>(), r.steps);
  for (size_t i = 0; i < train.size(); ++i) EXPECT_EQ(train[i].at("step"), i + 1);
  const double first = train.front().at("loss").get<double>();
  EXPECT_LT(r.final_loss, 0.25 * first) << "first " << first << " last " << r.final_loss;
  // Eval: one held-out example (round(0.2 · 6) = 1), scored at the end.
  const auto eval = metric_lines(dir.file("out"), "eval");
  ASSERT_EQ(eval.size(), 1u);
  EXPECT_GT(eval[0].at("eval_targets").get<int64_t>(), 5);
  EXPECT_GE(r.eval_token_accuracy, 0.0);
  EXPECT_LE(r.eval_token_accuracy, 1.0);
  EXPECT_EQ(eval[0].at("eval_loss").get<double>(), r.eval_loss);
  EXPECT_EQ(callbacks, static_cast<int>(train.size() + eval.size()));
  // Checkpoints: the newest two of every 10 steps and the last.
  std::vector<std::string> cks;
  for (const auto& e : fs::directory_iterator(dir.file("out/checkpoints")))
    cks.push_back(e.path().filename().string());
  std::sort(cks.begin(), cks.end());
  ASSERT_EQ(cks.size(), 2u);
  EXPECT_EQ(cks.back(), fmt::format("step-{:08d}", r.steps));
  // final/ is a complete model directory: weights, config and tokenizer.
  EXPECT_TRUE(fs::exists(r.final_dir + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir.file("out/config.json")));
  policy::Policy p = policy::Policy::load(r.final_dir, testing::cpu_ctx());
  EXPECT_EQ(p.config().vocab_size, 3328);
}

TEST(SftTrainer, ResumeAfterAKillIsBitIdentical) {
  for (const auto arch : {policy::ModelArch::qwen2, policy::ModelArch::deepseek_v3}) {
    SCOPED_TRACE(std::string(policy::model_arch_name(arch)));
    ScratchDir dir;
    const std::string tok = arch == policy::ModelArch::qwen2 ? "qwen3-mini" : "deepseek-v3-mini";
    const std::string model = write_model(dir, "m", arch, tok, 2);
    write_text(dir.file("train.jsonl"), qa_rows());
    Json j = base_config(model, dir.file("train.jsonl"), dir.file("whole"));
    j["max_steps"] = 7;
    j["save_every"] = 3;
    j["optim"]["weight_decay"] = 0.01;
    const SftResult whole = run_sft(SftConfig::from_json(j, "test", StageKind::sft));
    ASSERT_EQ(whole.steps, 7);

    j["output"] = dir.file("killed");
    const SftConfig killed = SftConfig::from_json(j, "test", StageKind::sft);
    // A crash in step 5 (after the checkpoint of step 3): nothing of steps 4-5 may survive.
    EXPECT_THROW(run_sft(killed,
                         [](const Json& m) {
                           if (m.at("step") == 5) throw std::runtime_error("killed");
                         }),
                 std::runtime_error);
    const SftResult resumed = run_sft(killed);
    EXPECT_EQ(resumed.resumed_from, 3);
    EXPECT_EQ(resumed.steps, 7);
    const auto a = metric_lines(dir.file("whole"), "train");
    const auto b = metric_lines(dir.file("killed"), "train");
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i)
      for (const char* k : {"step", "loss", "grad_norm", "lr", "epoch", "tokens"})
        EXPECT_EQ(a[i].at(k), b[i].at(k)) << "step " << i + 1 << " " << k;
    if (arch == policy::ModelArch::deepseek_v3) {
      for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].at("mtp_loss"), b[i].at("mtp_loss"));
    }
    policy::Policy pa = policy::Policy::load(whole.final_dir, testing::cpu_ctx());
    policy::Policy pb = policy::Policy::load(resumed.final_dir, testing::cpu_ctx());
    EXPECT_EQ(testing::to_double(pa.params().flat()), testing::to_double(pb.params().flat()));

    // Running a finished stage again takes no step and changes nothing.
    const SftResult again = run_sft(killed);
    EXPECT_EQ(again.resumed_from, 7);
    EXPECT_EQ(metric_lines(dir.file("killed"), "train").size(), a.size());

    // A resume with another trajectory is refused, naming the field.
    j["seed"] = 8;
    testing::expect_error_contains(
        [&] { run_sft(SftConfig::from_json(j, "test", StageKind::sft)); },
        {"cannot resume", "'seed' was 7", "is 8"});
  }
}

TEST(SftTrainer, MtpHeadsLearnToo) {
  ScratchDir dir;
  const std::string model =
      write_model(dir, "m", policy::ModelArch::deepseek_v3, "deepseek-v3-mini", 3);
  write_text(dir.file("train.jsonl"), qa_rows());
  Json j = base_config(model, dir.file("train.jsonl"), dir.file("out"));
  j["epochs"] = 25;
  j["mtp_loss_weight"] = 0.3;
  const SftResult r = run_sft(SftConfig::from_json(j, "test", StageKind::sft));
  const auto train = metric_lines(dir.file("out"), "train");
  ASSERT_FALSE(train.empty());
  ASSERT_EQ(train.front().at("mtp_loss").size(), 1u);
  const double first = train.front().at("mtp_loss")[0].get<double>();
  const double last = train.back().at("mtp_loss")[0].get<double>();
  EXPECT_LT(last, 0.5 * first);
  EXPECT_LT(r.final_loss, 0.5 * train.front().at("loss").get<double>());
  // mtp_loss_weight 0: the MTP module is not run.
  j["mtp_loss_weight"] = 0.0;
  j["output"] = dir.file("out2");
  j["max_steps"] = 1;
  run_sft(SftConfig::from_json(j, "test", StageKind::sft));
  EXPECT_FALSE(metric_lines(dir.file("out2"), "train").front().contains("mtp_loss"));
}

// The mean over the first `n` train rows of the teacher's KL to the student on their completion
// tokens, computed with a fresh forward of both models over the full vocabulary.
double full_kl(const std::string& teacher, const std::string& student,
               const std::vector<std::vector<int32_t>>& seqs, const std::vector<int64_t>& prompt) {
  Context& ctx = testing::cpu_ctx();
  policy::Policy t = policy::Policy::load(teacher, ctx), s = policy::Policy::load(student, ctx);
  double kl = 0;
  int64_t n = 0;
  for (size_t r = 0; r < seqs.size(); ++r) {
    const policy::TokenBatch b = policy::TokenBatch::from_sequences({seqs[r]}, ctx);
    policy::ForwardOptions fo;
    fo.for_backward = false;
    fo.logits = true;
    const policy::ForwardContext ft = t.forward(b, fo, ctx), fs_ = s.forward(b, fo, ctx);
    const int64_t V = t.config().vocab_size;
    for (int64_t i = prompt[r] - 1; i + 1 < static_cast<int64_t>(seqs[r].size()); ++i) {
      auto logsm = [&](const Tensor& l) {
        const float* x = l.ptr<float>() + i * V;
        double m = -1e300, z = 0;
        for (int64_t v = 0; v < V; ++v) m = std::max(m, static_cast<double>(x[v]));
        for (int64_t v = 0; v < V; ++v) z += std::exp(x[v] - m);
        std::vector<double> out(static_cast<size_t>(V));
        for (int64_t v = 0; v < V; ++v) out[static_cast<size_t>(v)] = x[v] - m - std::log(z);
        return out;
      };
      const auto lt = logsm(ft.logits), ls = logsm(fs_.logits);
      for (int64_t v = 0; v < V; ++v)
        kl += std::exp(lt[static_cast<size_t>(v)]) *
              (lt[static_cast<size_t>(v)] - ls[static_cast<size_t>(v)]);
      ++n;
    }
  }
  return kl / static_cast<double>(n);
}

TEST(SftTrainer, LogitDistillationLowersTheStudentsKl) {
  ScratchDir dir;
  // The teacher: a tiny model trained a little on the rows (so it is not uniform-ish).
  const std::string init = write_model(dir, "t0", policy::ModelArch::qwen2, "qwen3-mini", 4);
  write_text(dir.file("train.jsonl"), qa_rows());
  Json tj = base_config(init, dir.file("train.jsonl"), dir.file("teacher"));
  tj["epochs"] = 10;
  const std::string teacher = run_sft(SftConfig::from_json(tj, "t", StageKind::sft)).final_dir;
  const std::string student = write_model(dir, "s", policy::ModelArch::qwen2, "qwen3-mini", 5);

  // The rows as tokens, to score the KL independently.
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int64_t> prompt;
  {
    auto tok = policy::Tokenizer::load(tokenizer_dir("qwen3-mini"));
    const auto chat = policy::ChatTemplate::for_model(tokenizer_dir("qwen3-mini"), "qwen3");
    const SftDataset d = load_sft_dataset(dir.file("train.jsonl"), DataConfig{}, chat, *tok);
    for (const Example& e : d.examples) {
      seqs.push_back(e.tokens);
      prompt.push_back(std::find(e.loss_mask.begin(), e.loss_mask.end(), 1) - e.loss_mask.begin());
    }
  }
  const double before = full_kl(teacher, student, seqs, prompt);
  for (const char* loss : {"forward_kl", "reverse_kl", "jsd"}) {
    SCOPED_TRACE(loss);
    Json j = base_config(student, dir.file("train.jsonl"), dir.file(std::string("kd-") + loss));
    j["teacher"] = teacher;
    j["epochs"] = 6;
    j["kd"] = {{"loss", loss}, {"weight", 1.0}, {"topk", 16}};
    const SftResult r = run_sft(SftConfig::from_json(j, "d", StageKind::distill));
    const auto train = metric_lines(dir.file(std::string("kd-") + loss), "train");
    EXPECT_LT(train.back().at("kd").get<double>(), 0.7 * train.front().at("kd").get<double>());
    const double after = full_kl(teacher, r.final_dir, seqs, prompt);
    EXPECT_LT(after, 0.7 * before) << "KL before " << before << " after " << after;
  }
}

TEST(SftTrainer, DistillationFromStoredTopK) {
  ScratchDir dir;
  const std::string student = write_model(dir, "s", policy::ModelArch::qwen2, "qwen3-mini", 6);
  // A teacher distribution that puts 0.6 on token 100 + 3i and 0.1 on each of three others.
  std::string rows;
  for (int r = 0; r < 4; ++r) {
    Json row{{"prompt_ids", {1, 2, 3}},
             {"completion_ids", Json::array()},
             {"topk_ids", Json::array()},
             {"topk_logprobs", Json::array()}};
    for (int i = 0; i < 6; ++i) {
      const int t = 100 + 3 * i + r;
      row["completion_ids"].push_back(t);
      row["topk_ids"].push_back({t, t + 1, t + 2, t + 3});
      row["topk_logprobs"].push_back({std::log(0.6), std::log(0.1), std::log(0.1), std::log(0.1)});
    }
    rows += row.dump() + "\n";
  }
  rows += "{not json\n";  // skipped
  rows += R"({"prompt_ids": [1], "completion_ids": [5], "topk_ids": [[5]]})"
          "\n";  // skipped
  write_text(dir.file("topk.jsonl"), rows);
  Json j = base_config(student, dir.file("topk.jsonl"), dir.file("out"));
  j["epochs"] = 40;
  j["micro_batch_tokens"] = 18;  // two rows per micro-batch
  j["grad_accum"] = 1;
  j["kd"] = {{"weight", 1.0}};
  const SftResult r = run_sft(SftConfig::from_json(j, "d", StageKind::distill));
  EXPECT_EQ(r.train_stats.examples, 4);
  EXPECT_EQ(r.train_stats.num_skipped(), 2);
  const auto train = metric_lines(dir.file("out"), "train");
  // The KD optimum here is the teacher's distribution itself; KL falls towards 0.
  std::string trace;
  for (const Json& m : train) trace += fmt::format(" {:.3f}", m.at("kd").get<double>());
  EXPECT_LT(train.back().at("kd").get<double>(), 0.1 * train.front().at("kd").get<double>())
      << "kd by step:" << trace;
  // strict: the bad row is an error naming the file and line.
  j["data"] = {{"strict", true}};
  j["output"] = dir.file("strict");
  testing::expect_error_contains([&] { run_sft(SftConfig::from_json(j, "d", StageKind::distill)); },
                                 {"topk.jsonl:5"});
}

TEST(SftTrainer, SequenceLevelDistillationIsSftOnTheTeachersText) {
  // No teacher and text rows: the rows (teacher-written traces) are re-tokenised with the
  // student's tokenizer and trained on with the NLL alone — the same trajectory as `r1kit sft`.
  ScratchDir dir;
  const std::string student =
      write_model(dir, "s", policy::ModelArch::deepseek_v3, "deepseek-v3-mini", 1);
  write_text(dir.file("traces.jsonl"), qa_rows());
  Json j = base_config(student, dir.file("traces.jsonl"), dir.file("distill"));
  j["max_steps"] = 3;
  run_sft(SftConfig::from_json(j, "d", StageKind::distill));
  j["output"] = dir.file("sft");
  run_sft(SftConfig::from_json(j, "s", StageKind::sft));
  const auto a = metric_lines(dir.file("distill"), "train"),
             b = metric_lines(dir.file("sft"), "train");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_FALSE(a[i].contains("kd"));
    EXPECT_EQ(a[i].at("loss"), b[i].at("loss"));
  }
}

TEST(SftTrainer, TeacherWithAnotherTokenizerIsRefused) {
  ScratchDir dir;
  const std::string student = write_model(dir, "s", policy::ModelArch::qwen2, "qwen3-mini", 1);
  policy::ModelConfig c = policy::preset_config(policy::ModelArch::qwen2, "tiny");
  c.vocab_size = 3328;  // same vocabulary size, other tokenizer
  policy::InitOptions o;
  o.dtype = DType::f32;
  o.tokenizer_dir = tokenizer_dir("deepseek-v3-mini");
  policy::init_checkpoint(dir.file("t"), c, o);
  write_text(dir.file("train.jsonl"), qa_rows());
  Json j = base_config(student, dir.file("train.jsonl"), dir.file("out"));
  j["teacher"] = dir.file("t");
  testing::expect_error_contains([&] { run_sft(SftConfig::from_json(j, "d", StageKind::distill)); },
                                 {"share a tokenizer", "sequence level"});
}

TEST(SftTrainer, ConfigMistakesNameTheKey) {
  const Json ok{{"model", "m"}, {"train", "t.jsonl"}, {"output", "o"}};
  EXPECT_NO_THROW(SftConfig::from_json(ok, "c.json", StageKind::sft));
  auto with = [&](const char* key, Json v) {
    Json j = ok;
    j[key] = std::move(v);
    return j;
  };
  using testing::expect_error_contains;
  expect_error_contains([&] { SftConfig::from_json(with("epoch", 2), "c.json", StageKind::sft); },
                        {"unknown key 'epoch'", "did you mean 'epochs'"});
  expect_error_contains(
      [&] {
        SftConfig::from_json(with("optim", {{"lerning_rate", 1}}), "c.json", StageKind::sft);
      },
      {"c.json: optim", "lerning_rate"});
  expect_error_contains(
      [&] {
        SftConfig::from_json(with("optim", {{"schedule", "cosin"}}), "c.json", StageKind::sft);
      },
      {"'schedule' must be one of", "did you mean \"cosine\""});
  expect_error_contains(
      [&] {
        SftConfig::from_json(with("data", {{"loss_on", 3}}), "c.json", StageKind::sft);
      },
      {"c.json: data", "loss_on"});
  expect_error_contains(
      [&] { SftConfig::from_json(with("teacher", "t"), "c.json", StageKind::sft); },
      {"unknown key 'teacher'"});
  expect_error_contains(
      [&] {
        SftConfig::from_json(with("kd", {{"loss", "kl"}}), "c.json", StageKind::distill);
      },
      {"c.json: kd", "'loss' must be one of forward_kl, reverse_kl, jsd"});
  Json both = with("eval", "e.jsonl");
  both["eval_fraction"] = 0.1;
  expect_error_contains([&] { SftConfig::from_json(both, "c.json", StageKind::sft); },
                        {"not both"});
  Json missing = ok;
  missing.erase("train");
  expect_error_contains([&] { SftConfig::from_json(missing, "c.json", StageKind::sft); },
                        {"c.json", "train"});
  expect_error_contains(
      [&] { SftConfig::from_json(with("grad_accum", 0), "c.json", StageKind::sft); },
      {"'grad_accum' must be >= 1"});
}

TEST(SftTrainer, DatasetMistakesNameTheFile) {
  ScratchDir dir;
  const std::string model = write_model(dir, "m", policy::ModelArch::qwen2, "qwen3-mini", 1);
  Json j = base_config(model, dir.file("missing.jsonl"), dir.file("out"));
  testing::expect_error_contains([&] { run_sft(SftConfig::from_json(j, "c", StageKind::sft)); },
                                 {"missing.jsonl"});
  // A row longer than a micro-batch can hold.
  write_text(dir.file("train.jsonl"), qa_rows());
  j["train"] = dir.file("train.jsonl");
  j["micro_batch_tokens"] = 8;
  testing::expect_error_contains([&] { run_sft(SftConfig::from_json(j, "c", StageKind::sft)); },
                                 {"train.jsonl:1", "micro_batch_tokens 8"});
}

}  // namespace
}  // namespace r1kit::sft
