#include "recipes/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/fs.h"
#include "recipes/run.h"

namespace r1kit::recipes {

namespace fs = std::filesystem;

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const std::string_view rest(s.data() + i, s.size() - i);
    const size_t bad = utf8_invalid_offset(rest);
    const size_t good = bad == std::string_view::npos ? rest.size() : bad;
    for (size_t k = 0; k < good; ++k) {
      const char c = rest[k];
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&#39;";
          break;
        default:
          out += c;
      }
    }
    i += good;
    if (i < s.size()) {
      out += "\xEF\xBF\xBD";  // U+FFFD for the invalid byte
      ++i;
    }
  }
  return out;
}

std::string svg_line_chart(const std::string& title, const std::vector<double>& x,
                           const std::vector<double>& y) {
  const double W = 360, H = 200, L = 48, R = 12, T = 24, B = 28;
  std::vector<std::pair<double, double>> pts;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i)
    if (std::isfinite(x[i]) && std::isfinite(y[i])) pts.emplace_back(x[i], y[i]);
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "class=\"chart\"><rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fff\"/>"
      "<text x=\"{}\" y=\"16\" font-size=\"13\" font-family=\"sans-serif\">{}</text>",
      W, H, W, H, W, H, L, html_escape(title));
  if (pts.empty()) return s + "<text x=\"60\" y=\"110\" font-size=\"12\">no data</text></svg>";
  double x0 = pts[0].first, x1 = x0, y0 = pts[0].second, y1 = y0;
  for (const auto& [a, b] : pts) {
    x0 = std::min(x0, a);
    x1 = std::max(x1, a);
    y0 = std::min(y0, b);
    y1 = std::max(y1, b);
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  auto px = [&](double v) { return L + (v - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double v) { return H - B - (v - y0) / (y1 - y0) * (H - T - B); };
  s += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#888\"/>"
      "<line x1=\"{0}\" y1=\"{3}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#888\"/>",
      L, H - B, W - R, T);
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.4g}</text>"
      "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.4g}</text>"
      "<text x=\"{}\" y=\"{}\" font-size=\"10\">{:.4g}</text>"
      "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.4g}</text>",
      L - 4, T + 4, y1, L - 4, H - B, y0, L, H - 10, x0, W - R, H - 10, x1);
  std::string path;
  for (const auto& [a, b] : pts)
    path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", px(a), py(b));
  s += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>", path);
  if (pts.size() == 1)
    s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"#1f77b4\"/>",
                     px(pts[0].first), py(pts[0].second));
  return s + "</svg>";
}

namespace {

std::vector<Json> read_rows(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return {};
  JsonlReadOptions ro;
  ro.allow_truncated_last_line = true;
  try {
    return read_jsonl_file(path, ro);
  } catch (const Error&) {
    return {};
  }
}

std::string cell(const Json& v) {
  if (v.is_number_float()) return fmt::format("{:.4g}", v.get<double>());
  if (v.is_string()) return html_escape(v.get<std::string>());
  return html_escape(v.dump());
}

}  // namespace

std::string render_report(const std::string& run_dir, const Json& resolved, const Json& state) {
  std::string h =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" +
      html_escape("r1kit run " + resolved.value("name", std::string())) +
      "</title><style>body{font-family:sans-serif;margin:24px;color:#222}"
      "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
      "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
      ".chart{border:1px solid #ddd;margin:4px}pre{background:#f7f7f7;padding:8px;white-space:"
      "pre-wrap;max-height:240px;overflow:auto}</style></head><body>\n";
  h += "<h1>" + html_escape(resolved.value("name", std::string())) + "</h1>\n<p>run directory " +
       html_escape(run_dir) + "</p>\n";
  // Stages.
  h += "<h2>Stages</h2><table><tr><th>stage</th><th>type</th><th>status</th><th>seconds</th>"
       "</tr>\n";
  for (const Json& s : resolved.at("stages")) {
    const std::string name = s.at("name").get<std::string>();
    const Json st = state.at("stages").value(name, Json::object());
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}</td></tr>\n",
                     html_escape(name), html_escape(s.at("type").get<std::string>()),
                     html_escape(st.value("status", std::string("pending"))),
                     st.value("seconds", 0.0));
  }
  h += "</table>\n";
  // Evaluation table.
  const std::string table = results_table(resolved, state);
  if (!table.empty())
    h += "<h2>Evaluation</h2><pre class=\"table\">" + html_escape(table) + "</pre>\n";
  // Curves per training stage.
  const std::vector<Json> metrics = read_rows((fs::path(run_dir) / "metrics.jsonl").string());
  const std::vector<std::pair<std::string, std::string>> series = {
      {"reward_mean", "reward"},
      {"accuracy", "accuracy"},
      {"response_length_mean", "response length"},
      {"kl", "KL"},
      {"teacher_kl", "KL to the teacher"},
      {"entropy", "entropy"},
      {"loss", "loss"},
      {"eval_loss", "eval loss"}};
  for (const Json& s : resolved.at("stages")) {
    const std::string name = s.at("name").get<std::string>();
    const std::string type = s.at("type").get<std::string>();
    if (type != "sft" && type != "distill" && type != "grpo") continue;
    std::string charts;
    for (const auto& [key, title] : series) {
      std::vector<double> x, y;
      for (const Json& m : metrics) {
        if (m.value("stage", std::string()) != name || !m.contains(key) || !m.contains("step"))
          continue;
        if (!m.at(key).is_number() || !m.at("step").is_number()) continue;
        x.push_back(m.at("step").get<double>());
        y.push_back(m.at(key).get<double>());
      }
      if (!x.empty()) charts += svg_line_chart(name + ": " + title, x, y);
    }
    if (!charts.empty())
      h += "<h2>Stage " + html_escape(name) + " (" + html_escape(type) + ")</h2><div>" + charts +
           "</div>\n";
    // A few traces.
    if (type == "grpo") {
      const auto samples = read_rows(
          (fs::path(s.at("config").at("output").get<std::string>()) / "samples.jsonl").string());
      if (!samples.empty()) {
        h += "<h3>Sample traces (last logged step)</h3>\n";
        const Json& last = samples.back();
        int shown = 0;
        for (const Json& t : samples) {
          if (t.value("step", int64_t{0}) != last.value("step", int64_t{0}) || shown >= 4) continue;
          ++shown;
          h += "<p><b>prompt</b> " + html_escape(t.value("prompt", std::string())) +
               " &mdash; <b>reward</b> " + cell(t.value("reward", Json())) + "</p><pre>" +
               html_escape(t.value("completion", std::string())) + "</pre>\n";
        }
      }
    }
  }
  // Accepted rows of sample stages.
  for (const Json& s : resolved.at("stages")) {
    if (s.at("type") != "sample") continue;
    const auto rows = read_rows(
        (fs::path(s.at("config").at("output").get<std::string>()) / "accepted.jsonl").string());
    h += "<h2>Stage " + html_escape(s.at("name").get<std::string>()) +
         " (sample): " + std::to_string(rows.size()) + " accepted rows</h2>\n";
    for (size_t i = 0; i < std::min<size_t>(rows.size(), 3); ++i) {
      std::string text;
      if (rows[i].contains("messages") && rows[i].at("messages").is_array() &&
          !rows[i].at("messages").empty())
        text = rows[i].at("messages").back().value("content", std::string());
      h += "<pre>" + html_escape(text) + "</pre>\n";
    }
  }
  h += "</body></html>\n";
  return h;
}

void write_report(const std::string& run_dir, const Json& resolved, const Json& state) {
  write_file_atomic((fs::path(run_dir) / "report.html").string(),
                    render_report(run_dir, resolved, state));
}

}  // namespace r1kit::recipes
