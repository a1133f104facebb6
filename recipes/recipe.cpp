#include "recipes/recipe.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "recipes/builtin.h"
#include "recipes/stages.h"

namespace r1kit::recipes {

namespace fs = std::filesystem;

namespace {

struct TypeInfo {
  StageType type;
  const char* name;
  const char* default_output;
  std::vector<std::pair<const char*, const char*>> outputs;  // name → path inside RUN/<stage>
};

const std::vector<TypeInfo>& types() {
  static const std::vector<TypeInfo> t = {
      {StageType::init, "init", "model", {{"model", "model"}}},
      {StageType::data,
       "data",
       "train",
       {{"train", "train.jsonl"},
        {"test", "test.jsonl"},
        {"sft", "sft.jsonl"},
        {"pretrain", "pretrain.jsonl"}}},
      {StageType::sft, "sft", "model", {{"model", "final"}}},
      {StageType::distill, "distill", "model", {{"model", "final"}}},
      {StageType::grpo, "grpo", "model", {{"model", "final"}}},
      {StageType::sample,
       "sample",
       "accepted",
       {{"accepted", "accepted.jsonl"}, {"stats", "stats.json"}}},
      {StageType::eval, "eval", "results", {{"results", "results.json"}}},
  };
  return t;
}

const TypeInfo& info(StageType t) {
  for (const TypeInfo& i : types())
    if (i.type == t) return i;
  R1_THROW("unknown stage type");
}

// Keys whose string values are input paths (at any depth of a stage config).
bool is_path_key(const std::string& k) {
  static const std::set<std::string> keys = {"model",   "tokenizer", "train",   "eval",
                                             "teacher", "reference", "prompts", "path"};
  return keys.count(k) > 0;
}

bool valid_name(const std::string& s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

}  // namespace

std::string_view stage_type_name(StageType t) {
  return info(t).name;
}

Recipe Recipe::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j, {"name", "description", "seed", "stages"}, where);
  Recipe r;
  r.name = get_required<std::string>(j, "name", where);
  R1_CHECK(valid_name(r.name), "{}: the recipe name '{}' must be letters, digits, '_' or '-'",
           json_where(where, "name"), r.name);
  r.seed = get_optional<uint64_t>(j, "seed", where, 0);
  R1_CHECK(j.contains("stages") && j.at("stages").is_array() && !j.at("stages").empty(),
           "{}: 'stages' must be a non-empty array of {{\"name\", \"type\", \"config\"}}", where);
  std::set<std::string> names;
  for (size_t i = 0; i < j.at("stages").size(); ++i) {
    const Json& s = j.at("stages")[i];
    const std::string w = json_where(json_where(where, "stages"), i);
    require_object(s, w);
    reject_unknown_keys(s, {"name", "type", "config", "description"}, w);
    Stage st;
    st.name = get_required<std::string>(s, "name", w);
    R1_CHECK(valid_name(st.name), "{}: the stage name '{}' must be letters, digits, '_' or '-'",
             json_where(w, "name"), st.name);
    R1_CHECK(names.insert(st.name).second, "{}: a second stage named '{}'", json_where(w, "name"),
             st.name);
    const std::string type = get_required<std::string>(s, "type", w);
    bool found = false;
    std::vector<std::string> known;
    for (const TypeInfo& ti : types()) {
      known.push_back(ti.name);
      if (type == ti.name) {
        st.type = ti.type;
        found = true;
      }
    }
    if (!found) {
      const auto close = closest_match(type, known);
      R1_THROW(
          "{}: unknown stage type '{}'{} (known: init, data, sft, distill, grpo, sample, eval)",
          json_where(w, "type"), type, close ? fmt::format(" (did you mean '{}'?)", *close) : "");
    }
    if (s.contains("config")) {
      require_object(s.at("config"), json_where(w, "config"));
      st.config = s.at("config");
    }
    r.stages.push_back(std::move(st));
  }
  return r;
}

Json Recipe::to_json() const {
  Json st = Json::array();
  for (const Stage& s : stages)
    st.push_back(Json{{"name", s.name}, {"type", stage_type_name(s.type)}, {"config", s.config}});
  return Json{{"name", name}, {"seed", seed}, {"stages", st}};
}

std::vector<std::string> builtin_recipe_names() {
  std::vector<std::string> out;
  for (const auto& [name, text] : builtin_recipes()) out.push_back(name);
  return out;
}

Json load_recipe_json(const std::string& name_or_path, const std::vector<std::string>& overrides) {
  Json j;
  bool builtin = false;
  for (const auto& [name, text] : builtin_recipes())
    if (name == name_or_path) {
      j = parse_json(text, "built-in recipe " + name);
      builtin = true;
    }
  if (!builtin) {
    std::error_code ec;
    if (!fs::exists(name_or_path, ec)) {
      std::string names;
      for (const std::string& n : builtin_recipe_names()) names += (names.empty() ? "" : ", ") + n;
      R1_THROW("{}: no such recipe file (built-in recipes: {})", name_or_path, names);
    }
    j = read_json_file(name_or_path);
  }
  for (const std::string& o : overrides) apply_override(j, o);
  return j;
}

void apply_override(Json& recipe, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  R1_CHECK(eq != std::string::npos && eq > 0,
           "--set {}: expected KEY.PATH=VALUE (for example stages.rl.config.optim.lr=2e-6)",
           assignment);
  const std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  std::vector<std::string> keys;
  for (size_t p = 0; p <= path.size();) {
    const size_t d = std::min(path.find('.', p), path.size());
    keys.push_back(path.substr(p, d - p));
    p = d + 1;
  }
  for (const std::string& k : keys)
    R1_CHECK(!k.empty(), "--set {}: an empty key in '{}'", assignment, path);
  Json value;
  if (try_parse_json(text, &value)) value = text;  // not JSON: the text itself
  Json* at = &recipe;
  std::string walked;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& k = keys[i];
    const bool last = i + 1 == keys.size();
    if (i == 1 && keys[0] == "stages") {
      R1_CHECK(at->is_array(), "--set {}: the recipe has no 'stages' array", assignment);
      Json* found = nullptr;
      std::vector<std::string> names;
      for (Json& s : *at) {
        if (!s.is_object() || !s.contains("name") || !s.at("name").is_string()) continue;
        names.push_back(s.at("name").get<std::string>());
        if (names.back() == k) found = &s;
      }
      if (!found) {
        const auto close = closest_match(k, names);
        R1_THROW("--set {}: no stage named '{}'{}", assignment, k,
                 close ? fmt::format(" (did you mean '{}'?)", *close) : "");
      }
      R1_CHECK(!last, "--set {}: a whole stage cannot be set; name a key inside it", assignment);
      at = found;
    } else {
      R1_CHECK(at->is_object(), "--set {}: '{}' is a {}, not an object", assignment, walked,
               json_type_name(*at));
      if (last) {
        (*at)[k] = value;
        return;
      }
      if (!at->contains(k)) (*at)[k] = Json::object();
      at = &(*at)[k];
    }
    walked += (walked.empty() ? "" : ".") + k;
  }
}

std::string resolve_reference(const Recipe& r, size_t stage_index, const std::string& ref,
                              const std::string& run_dir, std::string_view where) {
  R1_CHECK(ref.size() > 1 && ref[0] == '@', "{}: '{}' is not a stage reference", where, ref);
  const std::string body = ref.substr(1);
  const size_t dot = body.find('.');
  const std::string stage = body.substr(0, dot);
  const std::string output = dot == std::string::npos ? "" : body.substr(dot + 1);
  std::vector<std::string> names;
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const Stage& s = r.stages[i];
    names.push_back(s.name);
    if (s.name != stage) continue;
    R1_CHECK(i < stage_index, "{}: '{}' refers to stage '{}', which runs {} this one", where, ref,
             stage, i == stage_index ? "as" : "after");
    const TypeInfo& ti = info(s.type);
    const std::string want = output.empty() ? ti.default_output : output;
    std::string known;
    for (const auto& [n, p] : ti.outputs) {
      known += (known.empty() ? "" : ", ") + std::string(n);
      if (want == n) return (fs::path(run_dir) / s.name / p).string();
    }
    R1_THROW("{}: '{}': a {} stage has no output '{}' (it has: {})", where, ref, ti.name, want,
             known);
  }
  const auto close = closest_match(stage, names);
  R1_THROW("{}: '{}' refers to no stage of this recipe{}", where, ref,
           close ? fmt::format(" (did you mean '@{}'?)", *close) : "");
}

namespace {

// Replaces references and makes relative input paths absolute, recursively. `refs` collects the
// keys that held references (their files appear only when earlier stages run).
void resolve_values(const Recipe& r, size_t index, const std::string& run_dir, Json& j,
                    const std::string& where, const std::string& key, bool* is_ref_out,
                    std::vector<std::pair<std::string, std::string>>* inputs) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      bool is_ref = false;
      resolve_values(r, index, run_dir, v, json_where(where, k), k, &is_ref, inputs);
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      bool is_ref = false;
      resolve_values(r, index, run_dir, j[i], json_where(where, i), key, &is_ref, inputs);
    }
  } else if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s.rfind("@@", 0) == 0) {
      j = s.substr(1);
    } else if (!s.empty() && s[0] == '@') {
      j = resolve_reference(r, index, s, run_dir, where);
      *is_ref_out = true;
    } else if (!s.empty() && (is_path_key(key) || key == "rewards")) {
      fs::path p(s);
      // A built-in chat template or model preset name is not a path; only values that look like
      // paths (or exist) are resolved.
      if (p.is_relative() && !r.base_dir.empty()) {
        const fs::path abs = fs::path(r.base_dir) / p;
        std::error_code ec;
        if (fs::exists(abs, ec) || s.find('/') != std::string::npos ||
            s.find('.') != std::string::npos)
          j = abs.lexically_normal().string();
      }
      inputs->emplace_back(where, j.get<std::string>());
    }
  }
}

}  // namespace

Json resolve_stage_config(const Recipe& r, size_t stage_index, const std::string& run_dir) {
  const Stage& s = r.stages.at(stage_index);
  const std::string where = fmt::format("stage '{}' ({}): config", s.name, stage_type_name(s.type));
  Json c = s.config;
  R1_CHECK(!c.contains("output"),
           "{}: 'output' is set by the recipe run ({}/{}); remove it from the stage", where,
           run_dir, s.name);
  std::vector<std::pair<std::string, std::string>> inputs;
  bool is_ref = false;
  resolve_values(r, stage_index, run_dir, c, where, "", &is_ref, &inputs);
  if (s.type != StageType::data || !c.contains("seed")) {
    if (!c.contains("seed")) c["seed"] = r.seed;
  }
  c["output"] = (fs::path(run_dir) / s.name).string();
  return c;
}

Json resolve_and_validate(const Recipe& r, const std::string& run_dir) {
  Json stages = Json::array();
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const Stage& s = r.stages[i];
    const std::string where =
        fmt::format("stage '{}' ({}): config", s.name, stage_type_name(s.type));
    const Json c = resolve_stage_config(r, i, run_dir);
    // Input files that no earlier stage writes must exist now.
    std::vector<std::pair<std::string, std::string>> inputs;
    Json copy = s.config;
    bool is_ref = false;
    resolve_values(r, i, run_dir, copy, where, "", &is_ref, &inputs);
    for (const auto& [w, path] : inputs) {
      std::error_code ec;
      if (path.rfind(run_dir, 0) == 0) continue;  // a reference into the run directory
      const bool looks_like_path = path.find('/') != std::string::npos;
      R1_CHECK(!looks_like_path || fs::exists(path, ec), "{}: {}: no such file or directory", w,
               path);
    }
    validate_stage_config(s.type, c, where);
    stages.push_back(Json{{"name", s.name}, {"type", stage_type_name(s.type)}, {"config", c}});
  }
  return Json{{"name", r.name}, {"seed", r.seed}, {"run_dir", run_dir}, {"stages", stages}};
}

}  // namespace r1kit::recipes
