// The run report: escaping of hostile model output, the SVG charts, the page's content for a run,
// and the page drawn by headless Chromium (Debian's `chromium`, installed by scripts/setup.sh): the
// screenshot must show the charts' blue curves and text on the white page.
#include "recipes/report.h"

#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace r1kit::recipes {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

TEST(Report, EscapesHostileText) {
  EXPECT_EQ(html_escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
  EXPECT_EQ(html_escape("ok \xff\xfe end"), "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
  EXPECT_EQ(html_escape("héllo"), "héllo");
}

TEST(Report, ChartsDrawAPathThroughThePoints) {
  const std::string s = svg_line_chart("a<b", {1, 2, 3}, {0.5, 0.25, 1.0});
  EXPECT_NE(s.find("<path d=\"M"), std::string::npos);
  EXPECT_EQ(std::count(s.begin(), s.end(), 'L'), 2);  // M + 2 line segments (no other 'L')
  EXPECT_NE(s.find("a&lt;b"), std::string::npos);
  EXPECT_NE(svg_line_chart("t", {}, {}).find("no data"), std::string::npos);
  // Non-finite points are left out.
  const std::string n = svg_line_chart("t", {1, 2}, {std::nan(""), 3});
  EXPECT_NE(n.find("<circle"), std::string::npos);
}

// A run directory with one GRPO stage (metrics, a hostile trace) and one eval stage.
std::pair<Json, Json> fake_run(const ScratchDir& dir) {
  fs::create_directories(dir.file("run/rl"));
  std::vector<Json> metrics;
  for (int s = 1; s <= 20; ++s)
    metrics.push_back(Json{{"stage", "rl"},
                           {"type", "train"},
                           {"step", s},
                           {"reward_mean", 0.1 + 0.03 * s},
                           {"accuracy", 0.05 * s},
                           {"loss", 1.0 / s}});
  write_jsonl_file_atomic(dir.file("run/metrics.jsonl"), metrics);
  write_jsonl_file_atomic(dir.file("run/rl/samples.jsonl"),
                          {Json{{"step", 20},
                                {"prompt", "1+1"},
                                {"completion", "<img src=x onerror=alert(1)>"},
                                {"reward", 1.0}}});
  const Json resolved{
      {"name", "fake"},
      {"stages",
       {Json{{"name", "rl"}, {"type", "grpo"}, {"config", {{"output", dir.file("run/rl")}}}},
        Json{{"name", "ev"}, {"type", "eval"}, {"config", {{"output", dir.file("run/ev")}}}}}}};
  const Json state{
      {"stages",
       {{"rl", {{"status", "done"}, {"seconds", 12.5}}},
        {"ev",
         {{"status", "done"},
          {"summary",
           {{"results",
             {{"datasets",
               {{"sums", {{"problems", 20}, {"pass@1", 0.5}, {"format_rate", 1.0}}}}}}}}}}}}}};
  return {resolved, state};
}

TEST(Report, PageHoldsStagesChartsTablesAndEscapedTraces) {
  ScratchDir dir;
  const auto [resolved, state] = fake_run(dir);
  const std::string h = render_report(dir.file("run"), resolved, state);
  EXPECT_NE(h.find("<h1>fake</h1>"), std::string::npos);
  EXPECT_NE(h.find("rl: reward"), std::string::npos);
  EXPECT_NE(h.find("rl: accuracy"), std::string::npos);
  EXPECT_NE(h.find("sums"), std::string::npos);
  EXPECT_NE(h.find("0.500"), std::string::npos);  // pass@1 in the table
  EXPECT_EQ(h.find("<img"), std::string::npos);   // the trace is text, not markup
  EXPECT_NE(h.find("&lt;img src=x"), std::string::npos);
  EXPECT_EQ(h.find("<script"), std::string::npos);
  write_report(dir.file("run"), resolved, state);
  EXPECT_EQ(read_file(dir.file("run/report.html")), h);
}

// An RGB(A) PNG decoded (8-bit, non-interlaced, as Chromium writes screenshots).
struct Image {
  int64_t w = 0, h = 0, channels = 0;
  std::vector<uint8_t> px;
};

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

Image decode_png(const std::string& bytes) {
  Image im;
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  EXPECT_GE(bytes.size(), 33u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  std::string idat;
  for (size_t p = 8; p + 12 <= bytes.size();) {
    const uint32_t len = be32(b + p);
    const std::string type = bytes.substr(p + 4, 4);
    if (type == "IHDR") {
      im.w = be32(b + p + 8);
      im.h = be32(b + p + 12);
      EXPECT_EQ(b[p + 16], 8);  // bit depth
      EXPECT_EQ(b[p + 20], 0);  // no interlace
      im.channels = b[p + 17] == 6 ? 4 : 3;
    } else if (type == "IDAT") {
      idat += bytes.substr(p + 8, len);
    }
    p += 12 + len;
  }
  const size_t stride = static_cast<size_t>(im.w * im.channels);
  std::vector<uint8_t> raw(static_cast<size_t>(im.h) * (stride + 1));
  uLongf n = raw.size();
  EXPECT_EQ(uncompress(raw.data(), &n, reinterpret_cast<const Bytef*>(idat.data()), idat.size()),
            Z_OK);
  im.px.assign(static_cast<size_t>(im.h) * stride, 0);
  const size_t bpp = static_cast<size_t>(im.channels);
  for (int64_t y = 0; y < im.h; ++y) {
    const uint8_t f = raw[static_cast<size_t>(y) * (stride + 1)];
    const uint8_t* in = &raw[static_cast<size_t>(y) * (stride + 1) + 1];
    uint8_t* out = &im.px[static_cast<size_t>(y) * stride];
    const uint8_t* up = y > 0 ? out - stride : nullptr;
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= bpp ? out[x - bpp] : 0, u = up ? up[x] : 0,
                c = (x >= bpp && up) ? up[x - bpp] : 0;
      int v = in[x];
      if (f == 1) v += a;
      if (f == 2) v += u;
      if (f == 3) v += (a + u) / 2;
      if (f == 4) {
        const int p = a + u - c, pa = std::abs(p - a), pb = std::abs(p - u), pc = std::abs(p - c);
        v += (pa <= pb && pa <= pc) ? a : (pb <= pc ? u : c);
      }
      out[x] = static_cast<uint8_t>(v & 0xff);
    }
  }
  return im;
}

std::string find_chromium() {
  for (const char* c : {"chromium", "chromium-browser", "google-chrome"}) {
    const std::string cmd = std::string("command -v ") + c + " > /dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return c;
  }
  return "";
}

TEST(Report, HeadlessChromiumDrawsThePage) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "no chromium on PATH (scripts/setup.sh installs it)";
  ScratchDir dir;
  const auto [resolved, state] = fake_run(dir);
  write_report(dir.file("run"), resolved, state);
  const std::string png = dir.file("shot.png");
  const std::string cmd = chromium +
                          " --headless --no-sandbox --disable-gpu --hide-scrollbars "
                          "--user-data-dir=" +
                          dir.file("profile") + " --window-size=1000,900 --screenshot=" + png +
                          " file://" + dir.file("run/report.html") + " > " + dir.file("log") +
                          " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(dir.file("log"));
  ASSERT_TRUE(fs::exists(png)) << read_file(dir.file("log"));
  const Image im = decode_png(read_file(png));
  ASSERT_EQ(im.w, 1000);
  ASSERT_EQ(im.h, 900);
  int64_t dark = 0, blue = 0;
  for (size_t i = 0; i + 2 < im.px.size(); i += static_cast<size_t>(im.channels)) {
    const int r = im.px[i], g = im.px[i + 1], b = im.px[i + 2];
    if (r + g + b < 200) ++dark;                         // text
    if (b > 150 && r < 90 && g > 90 && g < 160) ++blue;  // the curves' #1f77b4
  }
  EXPECT_GT(dark, 500) << "no text drawn";
  EXPECT_GT(blue, 200) << "no chart curve drawn";
}

}  // namespace
}  // namespace r1kit::recipes
