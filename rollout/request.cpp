// Request/completion validation and their JSON forms (rollout/request.h).
#include "rollout/request.h"

#include <cmath>

#include "core/error.h"

namespace r1kit::rollout {
namespace {

const std::vector<std::string> kSamplingKeys = {
    "temperature",    "top_k",          "top_p", "min_p",
    "max_new_tokens", "stop_token_ids", "stop",  "include_stop_str_in_output",
    "ignore_eos",     "seed",           "n"};
const std::vector<std::string> kCompletionKeys = {"text", "token_ids", "logprobs", "finish_reason",
                                                  "experts"};
const std::vector<std::string> kPromptKeys = {"prompt", "messages", "prompt_ids"};

void check_ids(const std::vector<int32_t>& ids, std::string_view field, std::string_view where) {
  for (size_t i = 0; i < ids.size(); ++i)
    R1_CHECK(ids[i] >= 0, "{}: {}[{}] = {} is not a token id (ids are >= 0)", where, field, i,
             ids[i]);
}

// A row key close to a prompt field name ("promt"), for the "no prompt" error.
std::string prompt_typo_hint(const Json& row) {
  for (const auto& [key, value] : row.items())
    if (auto m = closest_match(key, kPromptKeys))
      return fmt::format("; did you mean '{}' for '{}'?", *m, key);
  return {};
}

}  // namespace

void SamplingParams::validate(std::string_view where) const {
  R1_CHECK(std::isfinite(temperature) && temperature >= 0,
           "{}: temperature must be a finite number >= 0 (0: greedy), got {}", where, temperature);
  R1_CHECK(top_k >= 0, "{}: top_k must be >= 0 (0: off), got {}", where, top_k);
  R1_CHECK(std::isfinite(top_p) && top_p > 0 && top_p <= 1,
           "{}: top_p must be in (0, 1] (1: off), got {}", where, top_p);
  R1_CHECK(std::isfinite(min_p) && min_p >= 0 && min_p <= 1,
           "{}: min_p must be in [0, 1] (0: off), got {}", where, min_p);
  R1_CHECK(max_new_tokens >= 1, "{}: max_new_tokens must be >= 1, got {}", where, max_new_tokens);
  R1_CHECK(n >= 1, "{}: n (samples per prompt) must be >= 1, got {}", where, n);
  check_ids(stop_token_ids, "stop_token_ids", where);
  for (size_t i = 0; i < stop.size(); ++i) {
    R1_CHECK(!stop[i].empty(), "{}: stop[{}] is an empty string", where, i);
    const size_t bad = utf8_invalid_offset(stop[i]);
    R1_CHECK(bad == std::string_view::npos, "{}: stop[{}] is not valid UTF-8 (byte {})", where, i,
             bad);
  }
}

Json to_json(const SamplingParams& p) {
  return Json{{"temperature", p.temperature},
              {"top_k", p.top_k},
              {"top_p", p.top_p},
              {"min_p", p.min_p},
              {"max_new_tokens", p.max_new_tokens},
              {"stop_token_ids", p.stop_token_ids},
              {"stop", p.stop},
              {"include_stop_str_in_output", p.include_stop_str_in_output},
              {"ignore_eos", p.ignore_eos},
              {"seed", p.seed},
              {"n", p.n}};
}

SamplingParams sampling_params_from_json(const Json& j, std::string_view where,
                                         SamplingParams base) {
  require_object(j, where);
  reject_unknown_keys(j, kSamplingKeys, where);
  SamplingParams p = std::move(base);
  p.temperature = get_optional<double>(j, "temperature", where, p.temperature);
  p.top_k = get_optional<int64_t>(j, "top_k", where, p.top_k);
  p.top_p = get_optional<double>(j, "top_p", where, p.top_p);
  p.min_p = get_optional<double>(j, "min_p", where, p.min_p);
  p.max_new_tokens = get_optional<int64_t>(j, "max_new_tokens", where, p.max_new_tokens);
  p.stop_token_ids =
      get_optional<std::vector<int32_t>>(j, "stop_token_ids", where, std::move(p.stop_token_ids));
  p.stop = get_optional<std::vector<std::string>>(j, "stop", where, std::move(p.stop));
  p.include_stop_str_in_output =
      get_optional<bool>(j, "include_stop_str_in_output", where, p.include_stop_str_in_output);
  p.ignore_eos = get_optional<bool>(j, "ignore_eos", where, p.ignore_eos);
  p.seed = get_optional<uint64_t>(j, "seed", where, p.seed);
  p.n = get_optional<int64_t>(j, "n", where, p.n);
  p.validate(where);
  return p;
}

void Request::validate(std::string_view where) const {
  if (prompt_kind == PromptKind::token_ids) {
    R1_CHECK(!prompt_ids.empty(),
             "{}: prompt_ids is empty (give at least one token, or \"prompt\": \"\" for BOS only)",
             where);
    check_ids(prompt_ids, "prompt_ids", where);
  }
  if (prompt_kind == PromptKind::messages)
    R1_CHECK(!messages.empty(), "{}: messages is empty", where);
  sampling.validate(json_where(where, "sampling"));
}

std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
    case FinishReason::eos:
      return "eos";
  }
  return "?";
}

FinishReason parse_finish_reason(std::string_view name, std::string_view where) {
  for (FinishReason r : {FinishReason::stop, FinishReason::length, FinishReason::eos})
    if (finish_reason_name(r) == name) return r;
  const std::vector<std::string> names = {"stop", "length", "eos"};
  const auto m = closest_match(name, names);
  R1_THROW("{}: unknown finish_reason '{}'{}", where, name,
           m ? fmt::format("; did you mean '{}'?", *m) : std::string("; use stop, length or eos"));
}

void Completion::validate(std::string_view where) const {
  R1_CHECK(logprobs.size() == token_ids.size(), "{}: {} logprobs for {} token_ids", where,
           logprobs.size(), token_ids.size());
  R1_CHECK(expert_layers >= 0 && experts_per_token >= 0 &&
               experts.size() == token_ids.size() * static_cast<size_t>(expert_layers) *
                                     static_cast<size_t>(experts_per_token),
           "{}: experts holds {} ids, expected tokens {} x layers {} x experts per token {}", where,
           experts.size(), token_ids.size(), expert_layers, experts_per_token);
  check_ids(token_ids, "token_ids", where);
}

Json to_json(const Completion& c) {
  Json logprobs = Json::array();
  for (float v : c.logprobs) logprobs.push_back(static_cast<double>(v));
  Json j{{"text", c.text},
         {"token_ids", c.token_ids},
         {"logprobs", std::move(logprobs)},
         {"finish_reason", finish_reason_name(c.finish_reason)}};
  if (c.expert_layers > 0 && c.experts_per_token > 0) {
    const size_t L = static_cast<size_t>(c.expert_layers),
                 K = static_cast<size_t>(c.experts_per_token);
    Json per_token = Json::array();
    for (size_t t = 0; t < c.token_ids.size(); ++t) {
      Json layers = Json::array();
      for (size_t l = 0; l < L; ++l) {
        const auto first = c.experts.begin() + static_cast<std::ptrdiff_t>((t * L + l) * K);
        layers.push_back(std::vector<int32_t>(first, first + static_cast<std::ptrdiff_t>(K)));
      }
      per_token.push_back(std::move(layers));
    }
    j["experts"] = std::move(per_token);
  }
  return j;
}

Completion completion_from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j, kCompletionKeys, where);
  Completion c;
  c.text = get_required<std::string>(j, "text", where);
  c.token_ids = get_required<std::vector<int32_t>>(j, "token_ids", where);
  c.logprobs = get_required<std::vector<float>>(j, "logprobs", where);
  c.finish_reason = parse_finish_reason(get_required<std::string>(j, "finish_reason", where),
                                        json_where(where, "finish_reason"));
  if (auto it = j.find("experts"); it != j.end() && !it->is_null()) {
    const std::string w = json_where(where, "experts");
    R1_CHECK(it->is_array() && it->size() == c.token_ids.size(),
             "{}: expected an array with one entry per token ({}), got {}", w, c.token_ids.size(),
             it->is_array() ? fmt::format("{} entries", it->size()) : json_type_name(*it));
    for (size_t t = 0; t < it->size(); ++t) {
      const Json& layers = (*it)[t];
      const std::string wt = json_where(w, t);
      R1_CHECK(layers.is_array(), "{}: expected an array of layers, got {}", wt,
               json_type_name(layers));
      if (t == 0) c.expert_layers = static_cast<int64_t>(layers.size());
      R1_CHECK(static_cast<int64_t>(layers.size()) == c.expert_layers,
               "{}: {} layers, but token 0 has {}", wt, layers.size(), c.expert_layers);
      for (size_t l = 0; l < layers.size(); ++l) {
        const std::string wl = json_where(wt, l);
        const auto ids = json_value_as<std::vector<int32_t>>(layers[l], "experts", wl);
        if (t == 0 && l == 0) c.experts_per_token = static_cast<int64_t>(ids.size());
        R1_CHECK(static_cast<int64_t>(ids.size()) == c.experts_per_token,
                 "{}: {} experts, but the first layer of token 0 has {}", wl, ids.size(),
                 c.experts_per_token);
        check_ids(ids, "experts", wl);
        c.experts.insert(c.experts.end(), ids.begin(), ids.end());
      }
    }
    if (c.experts.empty()) c.expert_layers = c.experts_per_token = 0;
  }
  c.validate(where);
  return c;
}

Request request_from_json(const Json& row, const SamplingParams& defaults, std::string_view where) {
  require_object(row, where);
  R1_CHECK(!row.contains("completions"),
           "{}: the row already has a 'completions' field, which the output would replace", where);
  const char* found = nullptr;
  for (const auto& key : kPromptKeys) {
    if (!row.contains(key)) continue;
    R1_CHECK(!found, "{}: the row gives its prompt twice, as '{}' and as '{}'", where, found, key);
    found = key.c_str();
  }
  R1_CHECK(found, "{}: the row has no prompt (give one of 'prompt', 'messages', 'prompt_ids'){}",
           where, prompt_typo_hint(row));
  Request r;
  const std::string_view field = found;
  if (field == "prompt_ids") {
    r.prompt_kind = PromptKind::token_ids;
    r.prompt_ids = get_required<std::vector<int32_t>>(row, "prompt_ids", where);
  } else if (field == "prompt") {
    r.prompt_kind = PromptKind::text;
    r.prompt = get_required<std::string>(row, "prompt", where);
  } else {
    r.prompt_kind = PromptKind::messages;
    r.messages = policy::parse_chat_messages(row.at("messages"), json_where(where, "messages"));
  }
  r.sampling = defaults;
  if (auto it = row.find("sampling"); it != row.end())
    r.sampling = sampling_params_from_json(*it, json_where(where, "sampling"), defaults);
  r.validate(where);
  return r;
}

Json to_json(const Request& r) {
  Json j = Json::object();
  switch (r.prompt_kind) {
    case PromptKind::token_ids:
      j["prompt_ids"] = r.prompt_ids;
      break;
    case PromptKind::text:
      j["prompt"] = r.prompt;
      break;
    case PromptKind::messages: {
      Json list = Json::array();
      for (const auto& m : r.messages) {
        Json o{{"role", m.role}, {"content", m.content}};
        if (m.reasoning) o["reasoning"] = *m.reasoning;
        list.push_back(std::move(o));
      }
      j["messages"] = std::move(list);
      break;
    }
  }
  j["sampling"] = to_json(r.sampling);
  return j;
}

Json generate_output_row(const Json& input_row, const std::vector<Completion>& completions,
                         const std::vector<int32_t>& prompt_experts) {
  R1_CHECK(input_row.is_object() && !input_row.contains("completions"),
           "[generate] the input row must be an object without 'completions'");
  Json out = input_row;
  Json list = Json::array();
  for (const auto& c : completions) list.push_back(to_json(c));
  out["completions"] = std::move(list);
  if (!completions.empty() && completions[0].expert_layers > 0) {
    const int64_t L = completions[0].expert_layers, K = completions[0].experts_per_token;
    R1_CHECK(K > 0 && static_cast<int64_t>(prompt_experts.size()) % (L * K) == 0,
             "[generate] prompt_experts holds {} ids, not a multiple of {} layers × {}",
             prompt_experts.size(), L, K);
    Json rows = Json::array();
    for (size_t i = 0; i < prompt_experts.size(); i += static_cast<size_t>(L * K)) {
      Json layers = Json::array();
      for (int64_t l = 0; l < L; ++l) {
        const auto first = prompt_experts.begin() + static_cast<std::ptrdiff_t>(i + l * K);
        layers.push_back(std::vector<int32_t>(first, first + K));
      }
      rows.push_back(std::move(layers));
    }
    out["prompt_experts"] = std::move(rows);
  }
  return out;
}

}  // namespace r1kit::rollout
