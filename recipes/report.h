// RUN/report.html: one self-contained page (no scripts, no external files) for a recipe run —
// per-stage status and time, line charts drawn as inline SVG from RUN/metrics.jsonl (reward,
// accuracy, response length, KL, entropy and loss against the step, one chart per series and
// stage), the evaluation table, and a few sample traces with their rewards (the GRPO stages'
// samples.jsonl, the sample stages' accepted rows). Every text from a run is HTML-escaped (model
// output is hostile). Written atomically after each stage.
#pragma once

#include <string>
#include <vector>

#include "core/json.h"

namespace r1kit::recipes {

// An SVG line chart of (x, y) points with axes and min/max labels.
std::string svg_line_chart(const std::string& title, const std::vector<double>& x,
                           const std::vector<double>& y);
// Escapes & < > " ' (and replaces invalid UTF-8 with U+FFFD).
std::string html_escape(const std::string& s);
// The page's HTML.
std::string render_report(const std::string& run_dir, const Json& resolved, const Json& state);
// Writes RUN/report.html atomically.
void write_report(const std::string& run_dir, const Json& resolved, const Json& state);

}  // namespace r1kit::recipes
