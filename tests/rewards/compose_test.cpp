// Composition by config (rewards/compose.h): weights, gating on format, skip propagation (skip
// the sample or renormalise), error propagation, dependencies between components, and the config
// errors ("did you mean").
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/error.h"
#include "rewards/compose.h"

namespace r1kit::rewards {
namespace {

const std::string kData = R1KIT_SOURCE_DIR "/tests/rewards/data/";

// A reward that returns what it is told (the reference's field of its name).
class Fixed : public Reward {
 public:
  explicit Fixed(std::string n) : n_(std::move(n)) {}
  std::string name() const override { return n_; }
  RewardResult score(const RewardInput& in) const override {
    const Json& v = in.reference.at(n_);
    if (v == "skip") return reward_skip(n_ + " cannot judge");
    if (v == "error") return reward_error(n_ + " broke");
    return reward_ok(v.get<double>());
  }

 private:
  std::string n_;
};

ComposedReward::Component comp(const std::string& name, double w, const std::string& gate = "",
                               SkipPolicy on_skip = SkipPolicy::skip) {
  ComposedReward::Component c;
  c.name = c.type = name;
  c.weight = w;
  c.gate = gate;
  c.on_skip = on_skip;
  c.reward = std::make_unique<Fixed>(name);
  return c;
}

std::unique_ptr<ComposedReward> fmt_acc_len(SkipPolicy acc_skip = SkipPolicy::skip,
                                            bool normalize = false) {
  std::vector<ComposedReward::Component> cs;
  cs.push_back(comp("format", 0.5));
  cs.push_back(comp("accuracy", 1.0, "format", acc_skip));
  cs.push_back(comp("length", 0.5));
  return std::make_unique<ComposedReward>(std::move(cs), normalize);
}

RewardResult run(const Reward& r, const Json& ref) {
  return r.score({"", "", ref});
}

TEST(Compose, WeightsAndGating) {
  auto r = fmt_acc_len();
  RewardResult a = run(*r, {{"format", 1.0}, {"accuracy", 1.0}, {"length", -0.5}});
  EXPECT_EQ(a.status, RewardStatus::ok);
  EXPECT_DOUBLE_EQ(a.score, 0.5 + 1.0 - 0.25);
  EXPECT_EQ(a.components.at("accuracy"), 1.0);
  // The format fails: accuracy counts 0 even though it was right.
  RewardResult g = run(*r, {{"format", 0.0}, {"accuracy", 1.0}, {"length", 0.0}});
  EXPECT_DOUBLE_EQ(g.score, 0.0);
  EXPECT_EQ(g.components.at("accuracy"), 0.0);
  EXPECT_EQ(g.details["components"][1]["gated"], true);
  EXPECT_EQ(g.details["components"][1]["score"], 1.0);  // the raw score is kept
  // Partial format credit below the threshold (1.0) also gates.
  EXPECT_DOUBLE_EQ(run(*r, {{"format", 0.75}, {"accuracy", 1.0}, {"length", 0.0}}).score, 0.375);
  // normalize: the weighted mean.
  auto n = fmt_acc_len(SkipPolicy::skip, true);
  EXPECT_DOUBLE_EQ(run(*n, {{"format", 1.0}, {"accuracy", 1.0}, {"length", 0.0}}).score, 1.5 / 2.0);
}

TEST(Compose, SkipAndErrorPropagation) {
  // on_skip skip: the whole sample is skipped, naming the component.
  auto r = fmt_acc_len();
  RewardResult s = run(*r, {{"format", 1.0}, {"accuracy", "skip"}, {"length", 0.0}});
  EXPECT_EQ(s.status, RewardStatus::skip);
  EXPECT_NE(s.reason.find("accuracy skipped: accuracy cannot judge"), std::string::npos);
  // renormalize: format and length carry the total weight (2.0 instead of 1.0).
  auto rn = fmt_acc_len(SkipPolicy::renormalize);
  RewardResult n = run(*rn, {{"format", 1.0}, {"accuracy", "skip"}, {"length", -1.0}});
  EXPECT_EQ(n.status, RewardStatus::ok);
  EXPECT_DOUBLE_EQ(n.score, (0.5 * 1.0 + 0.5 * -1.0) * 2.0);
  EXPECT_FALSE(n.components.count("accuracy"));
  EXPECT_DOUBLE_EQ(run(*rn, {{"format", 1.0}, {"accuracy", "skip"}, {"length", 0.0}}).score, 1.0);
  // A skipped gate makes the gated component skip too.
  RewardResult gs = run(*rn, {{"format", "skip"}, {"accuracy", 1.0}, {"length", 0.0}});
  EXPECT_EQ(gs.status, RewardStatus::skip);
  EXPECT_NE(gs.reason.find("format skipped"), std::string::npos) << gs.reason;
  // An error anywhere is an error, even when gated.
  RewardResult e = run(*r, {{"format", 0.0}, {"accuracy", "error"}, {"length", 0.0}});
  EXPECT_EQ(e.status, RewardStatus::error);
  EXPECT_NE(e.reason.find("accuracy: accuracy broke"), std::string::npos);
  // Everything skipped under renormalize: skip.
  std::vector<ComposedReward::Component> cs;
  cs.push_back(comp("a", 1.0, "", SkipPolicy::renormalize));
  ComposedReward only(std::move(cs), false);
  EXPECT_EQ(run(only, {{"a", "skip"}}).status, RewardStatus::skip);
}

TEST(Compose, ExampleConfigLoads) {
  auto r = load_reward_config(kData + "example_rewards.json");
  ASSERT_EQ(r->components().size(), 6u);
  EXPECT_EQ(r->components()[4].name, "cosine");
  EXPECT_EQ(r->components()[2].gate, "format");
  EXPECT_EQ(r->components()[5].on_skip, SkipPolicy::renormalize);
}

TEST(Compose, CountdownConfigEndToEnd) {
  auto r = load_reward_config(kData + "countdown_rewards.json");
  Json ref = {{"input", "3,4,5"}, {"output", "23"}};
  auto ok = r->score({"", "<think>4*5 is 20</think> <answer>4*5+3</answer>", ref});
  EXPECT_EQ(ok.status, RewardStatus::ok);
  EXPECT_DOUBLE_EQ(ok.score, 1.1);
  auto unformatted = r->score({"", "<answer>4*5+3</answer>", ref});
  EXPECT_DOUBLE_EQ(unformatted.score, 0.0);  // right, but gated by the format
  auto skipped = r->score({"", "<think>x</think><answer>4*5+3</answer>", Json::object()});
  EXPECT_EQ(skipped.status, RewardStatus::skip);
}

std::string error_of(const Json& config) {
  try {
    ComposedReward::from_json(config, "r.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Compose, ConfigErrors) {
  auto has = [](const std::string& msg, const std::string& part) {
    EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  };
  has(error_of({{"rewards", {{{"type", "format"}, {"wieght", 1}}}}}),
      "unknown key 'wieght' in r.json: rewards[0]; did you mean 'weight'?");
  has(error_of({{"rewrads", Json::array()}}), "did you mean 'rewards'?");
  has(error_of({{"rewards", {{{"type", "fromat"}}}}}),
      "unknown reward type 'fromat'; did you mean 'format'?");
  has(error_of({{"rewards", {{{"type", "format"}, {"options", {{"mdoe", "exact"}}}}}}}),
      "r.json: rewards[0].options; did you mean 'mode'?");
  has(error_of({{"rewards", {{{"type", "countdown"}, {"gate", "formt"}}}}}),
      "gate 'formt' is not a component");
  has(error_of({{"rewards", {{{"type", "format"}}, {{"type", "format"}}}}}),
      "a second component named 'format'");
  has(error_of({{"rewards", {{{"type", "format"}, {"weight", -1}}}}}), "weight must be");
  has(error_of({{"rewards", Json::array()}}), "no rewards");
  has(error_of({{"rewards", {{{"type", "format"}}}}, {"on_skip", "drop"}}),
      "on_skip 'drop': expected skip or renormalize");
  // cosine_length reads "accuracy", which must come before it.
  has(error_of({{"rewards",
                 {{{"type", "cosine_length"}}, {{"type", "countdown"}, {"name", "accuracy"}}}}}),
      "must come before it");
  has(error_of({{"rewards",
                 {{{"type", "countdown"}, {"name", "acuracy"}}, {{"type", "cosine_length"}}}}}),
      "did you mean 'acuracy'?");
  has(error_of({{"rewards", {{{"type", "format"}, {"options", 3}}}}}), "rewards[0].options");
}

TEST(Compose, CosineReadsTheEarlierComponent) {
  Json config = {
      {"rewards",
       {{{"type", "countdown"}, {"name", "accuracy"}},
        {{"type", "cosine_length"}, {"options", {{"max_length", 100}, {"unit", "chars"}}}}}}};
  auto r = ComposedReward::from_json(config, "c.json");
  Json ref = {{"numbers", {3, 4, 5}}, {"target", 23}};
  auto right = r->score({"", "<answer>4*5+3</answer>", ref});
  auto wrong = r->score({"", "<answer>4*5-3</answer>", ref});
  EXPECT_GT(right.components.at("cosine_length"), 0.5);
  EXPECT_LT(wrong.components.at("cosine_length"), -0.5);
}

TEST(Compose, MathExampleWithTheVerifier) {
  auto r = load_reward_config(kData + "example_rewards.json");
  Json ref = {{"answer", "\\frac{1}{2}"}};
  auto score = [&](const std::string& completion) { return r->score({"", completion, ref, 100}); };
  // format 0.5 + accuracy 1 + overlong 0 + language 0.1 (all words English).
  auto right = score("<think>\nwe halve it\n</think>\n<answer>\n\\boxed{\\frac12}\n</answer>");
  ASSERT_EQ(right.status, RewardStatus::ok) << right.reason;
  EXPECT_DOUBLE_EQ(right.score, 1.6);
  EXPECT_EQ(right.components.at("accuracy"), 1.0);
  EXPECT_GT(right.components.at("cosine"), 0.5);  // weight 0: logged, not scored
  auto wrong = score("<think>\nwe halve it\n</think>\n<answer>\n\\boxed{\\frac13}\n</answer>");
  EXPECT_DOUBLE_EQ(wrong.score, 0.6);
  EXPECT_LT(wrong.components.at("cosine"), -0.5);
  // Right answer, wrong format: accuracy is gated to 0.
  auto unformatted = score("<think>we halve it</think><answer>\\boxed{0.5}</answer>");
  EXPECT_EQ(unformatted.status, RewardStatus::ok);
  EXPECT_EQ(unformatted.components.at("accuracy"), 0.0);
  EXPECT_DOUBLE_EQ(unformatted.score, 0.1);
  // No gold: the sample is skipped (accuracy's on_skip is the default "skip").
  auto no_gold = r->score({"", "<think>\nx\n</think>\n<answer>\n1\n</answer>", Json::object()});
  EXPECT_EQ(no_gold.status, RewardStatus::skip);
  EXPECT_NE(no_gold.reason.find("accuracy skipped"), std::string::npos) << no_gold.reason;
}

TEST(Compose, ConcurrentScoringIsSafe) {
  // The verifier's CAS is not thread-safe; the accuracy reward serialises it, so a composed
  // reward may be called from many threads (r1kit reward --jobs, a trainer's workers).
  auto r = load_reward_config(kData + "example_rewards.json");
  std::vector<Json> refs;
  for (int i = 0; i < 8; ++i) refs.push_back({{"answer", std::to_string(i) + "/7"}});
  std::vector<std::thread> threads;
  std::atomic<int> right{0}, wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 40; ++k) {
        int i = (t + k) % 8;
        std::string c = "<think>\nok\n</think>\n<answer>\n\\boxed{\\frac{" +
                        std::to_string(i + (k % 2)) + "}{7}}\n</answer>";
        auto res = r->score({"", c, refs[size_t(i)], 10});
        (res.components.at("accuracy") == double(k % 2 == 0) ? right : wrong)++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(right.load(), 160);
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace r1kit::rewards
