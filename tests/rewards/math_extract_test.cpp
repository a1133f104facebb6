// Answer extraction (rewards/math_extract.h): each source, their priority, the <answer> scope,
// Math-Verify's string-extraction cases and the completions of its edge-case tests, and linear
// time on pathological input.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/json.h"
#include "rewards/math_extract.h"

namespace r1kit::rewards {
namespace {

const std::string kData = R1KIT_SHARED_DIR "/data/rewards/";

// The first candidate's text ("" when none).
std::string first(std::string_view text, const ExtractOptions& o = {}) {
  auto c = extract_answers(text, o);
  return c.empty() ? "" : c[0].text;
}
AnswerSource first_source(std::string_view text, const ExtractOptions& o = {}) {
  auto c = extract_answers(text, o);
  EXPECT_FALSE(c.empty()) << text;
  return c.empty() ? AnswerSource::whole_text : c[0].source;
}

ExtractOptions only(AnswerSource s) {
  ExtractOptions o;
  o.answer_tag = s == AnswerSource::answer_tag;
  o.boxed = s == AnswerSource::boxed;
  o.gsm8k_hashes = s == AnswerSource::gsm8k_hashes;
  o.final_answer_phrase = s == AnswerSource::final_answer_phrase;
  o.answer_colon = s == AnswerSource::answer_colon;
  o.last_number = s == AnswerSource::last_number;
  o.last_math = s == AnswerSource::last_math;
  o.whole_text = s == AnswerSource::whole_text;
  return o;
}

TEST(MathExtract, SourceNames) {
  EXPECT_STREQ(answer_source_name(AnswerSource::answer_tag), "answer_tag");
  EXPECT_STREQ(answer_source_name(AnswerSource::boxed), "boxed");
  EXPECT_STREQ(answer_source_name(AnswerSource::gsm8k_hashes), "gsm8k_hashes");
  EXPECT_STREQ(answer_source_name(AnswerSource::final_answer_phrase), "final_answer_phrase");
  EXPECT_STREQ(answer_source_name(AnswerSource::answer_colon), "answer_colon");
  EXPECT_STREQ(answer_source_name(AnswerSource::last_number), "last_number");
  EXPECT_STREQ(answer_source_name(AnswerSource::whole_text), "whole_text");
  EXPECT_STREQ(answer_source_name(AnswerSource::last_math), "last_math");
  EXPECT_STREQ(answer_source_name(AnswerSource::choice), "choice");
}

TEST(MathExtract, Boxed) {
  EXPECT_EQ(first("so \\boxed{5}."), "5");
  EXPECT_EQ(first("\\boxed{1} then \\boxed{ 2 }"), "2");  // the last one, trimmed
  EXPECT_EQ(first("\\fbox{x+1}"), "x+1");
  EXPECT_EQ(first("$\\boxed{\\frac{1}{2}}$"), "\\frac{1}{2}");  // nested braces
  EXPECT_EQ(first("\\boxed{\\{1, 2\\}}"), "\\{1, 2\\}");        // escaped braces
  EXPECT_EQ(first("\\boxed{\\left\\{ 3 \\right\\}}"), "\\left\\{ 3 \\right\\}");
  EXPECT_EQ(first("\\boxed {7}"), "7");                 // space before the brace
  EXPECT_EQ(first("The answer is $\\boxed 5$."), "5");  // no braces
  EXPECT_EQ(first("\\boxed 12 apples"), "12");
  EXPECT_EQ(first("\\boxed{\\boxed{9}}"), "9");  // unwrapped
  EXPECT_EQ(first("\\boxed{\\boxed{1} + \\boxed{2}}"), "\\boxed{1} + \\boxed{2}");
  EXPECT_EQ(first("\\boxed{\\text{(B)}}"), "\\text{(B)}");
  // A truncated last box is ignored; the complete one before it counts.
  EXPECT_EQ(first("\\boxed{3} and finally \\boxed{\\frac{1}{"), "3");
  // Other macros are not boxes; \\boxed (JSON-mangled) is.
  EXPECT_EQ(first("\\boxedx{3}", only(AnswerSource::boxed)), "");
  EXPECT_EQ(first("\\\\boxed{004}.\\n"), "004");
  EXPECT_EQ(first("\\boxed{}", only(AnswerSource::boxed)), "");
  // A box inside a box's argument is not closed by an escaped brace.
  EXPECT_EQ(first("\\boxed{a\\}b}"), "a\\}b");
}

TEST(MathExtract, AnswerTagScope) {
  // Only the tag's content is searched; boxed inside it comes before the whole content.
  auto c = extract_answers("<think>\\boxed{1} the answer is 2</think><answer>\\boxed{3}</answer>");
  ASSERT_EQ(c.size(), 1u);  // the tag's content, unwrapped, is the same "3"
  EXPECT_EQ(c[0].text, "3");
  EXPECT_EQ(c[0].source, AnswerSource::boxed);
  c = extract_answers("<answer>So x = 3</answer>");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].text, "So x = 3");
  EXPECT_EQ(c[0].source, AnswerSource::answer_tag);
  // A phrase or tag holding a box is the box: no second, longer candidate.
  EXPECT_EQ(
      extract_answers("<answer>The answer is $\\frac{8!}{4} = \\boxed{10080}$.</answer>").size(),
      1u);
  EXPECT_EQ(first("<think>\\boxed{1}</think><answer> 42 </answer>"), "42");
  EXPECT_EQ(first_source("<answer> 42 </answer>"), AnswerSource::answer_tag);
  EXPECT_EQ(first("<answer>$\\frac{3}{4}$</answer>"), "\\frac{3}{4}");
  EXPECT_EQ(first("<answer>1</answer> ... <answer>The final answer is 7.</answer>"), "7");
  EXPECT_EQ(first("<answer>x = 5"), "x = 5");  // unclosed last tag runs to the end
  // An empty tag is no tag.
  EXPECT_EQ(first("\\boxed{8} <answer> </answer>"), "8");
  ExtractOptions no_tag;
  no_tag.answer_tag = false;
  EXPECT_EQ(first("\\boxed{1}<answer>2</answer>", no_tag), "1");
}

TEST(MathExtract, Gsm8kHashes) {
  EXPECT_EQ(first("She has 3+4=<<3+4=7>>7 apples.\n#### 7"), "7");
  EXPECT_EQ(first("#### 1,234\n"), "1,234");
  EXPECT_EQ(first("#### -5."), "-5");
  EXPECT_EQ(first("#### $18"), "$18");
  EXPECT_EQ(first_source("...\n#### 72"), AnswerSource::gsm8k_hashes);
  // Markdown headings are not answers.
  EXPECT_EQ(first("#### 3. Final check\nwe are done", only(AnswerSource::gsm8k_hashes)), "");
  EXPECT_EQ(first("#### Step one", only(AnswerSource::gsm8k_hashes)), "");
  EXPECT_EQ(first("#### 12<|endoftext|>"), "12");
}

TEST(MathExtract, FinalAnswerPhrase) {
  EXPECT_EQ(first("Thus the final answer is 12,000,023. I hope it is correct."), "12,000,023");
  EXPECT_EQ(first("The answer is 3.5."), "3.5");
  EXPECT_EQ(first("Final Answer: The final answer is $(0, 1)$. I hope it is correct."), "(0, 1)");
  EXPECT_EQ(first("The answer is $16,\\!386.20$."), "16,\\!386.20");
  EXPECT_EQ(first("so the answer is \\(x = 2\\)."), "x = 2");
  EXPECT_EQ(first("THE ANSWER IS: **5**"), "5");
  EXPECT_EQ(first("The answer is $5$ apples."), "5");
  EXPECT_EQ(first("The answer is $x$ or $y$."), "$x$ or $y$");
  EXPECT_EQ(first("the answer is\n\n  -7\nmore text"), "-7");                  // on the next line
  EXPECT_EQ(first("the answer is $\\frac{1}{2}. 3$ ok."), "\\frac{1}{2}. 3");  // math kept whole
  EXPECT_EQ(first("the answer is 9<|im_end|>"), "9");
  EXPECT_EQ(first("the answer is $\\boxed{4}$"), "4");
  EXPECT_EQ(first("The answer is $\\dfrac{8!}{4} = \\boxed{10080}$.",
                  only(AnswerSource::final_answer_phrase)),
            "10080");
  // The last phrase; "answer isn't" and "ganswer is" are not the phrase.
  EXPECT_EQ(first("the answer is 1. No, the answer is 2."), "2");
  EXPECT_EQ(first("the answer is 1. the answer isn't 2.", only(AnswerSource::final_answer_phrase)),
            "1");
  EXPECT_EQ(first("ganswer is 2", only(AnswerSource::final_answer_phrase)), "");
  EXPECT_EQ(first_source("The final answer is 4"), AnswerSource::final_answer_phrase);
  // Fillers are dropped; judgements and pointers are not answers.
  const ExtractOptions phrase = only(AnswerSource::final_answer_phrase);
  EXPECT_EQ(first("the answer is that $x = 5$.", phrase), "x = 5");
  EXPECT_EQ(first("so the answer is equal to 12.", phrase), "12");
  EXPECT_EQ(first("The answer is therefore, 7", phrase), "7");
  EXPECT_EQ(first("so our answer is correct.", phrase), "");
  EXPECT_EQ(first("the answer is not 5", phrase), "");
  EXPECT_EQ(first("The answer is below:", phrase), "");
  EXPECT_EQ(first("The answer is Monday.", phrase), "Monday");
  EXPECT_EQ(first("the answer is x_1 + 1", phrase), "x_1 + 1");
  EXPECT_EQ(first("Answer: correct", only(AnswerSource::answer_colon)), "");
  // A judgement after the box does not hide the box (MATH-500 number_theory/1000).
  EXPECT_EQ(first("$17^{-1}\\equiv \\boxed{44}\\pmod{83}$. So our answer is correct."), "44");
}

TEST(MathExtract, AnswerColon) {
  EXPECT_EQ(first("Answer: 42"), "42");
  EXPECT_EQ(first("**Answer:** $\\frac{1}{3}$"), "\\frac{1}{3}");
  EXPECT_EQ(first("**Final Answer**: 17."), "17");
  EXPECT_EQ(first("Answer :\n 8"), "8");
  EXPECT_EQ(first("Final Answer: The volume of $ABCDEFGH$ is 120. I hope it is correct."), "120");
  EXPECT_EQ(first_source("Answer: 42"), AnswerSource::answer_colon);
}

TEST(MathExtract, LastMath) {
  const ExtractOptions o = only(AnswerSource::last_math);
  EXPECT_EQ(first("so $x=1$ and the pair is $(7, 6)$. <|im_start|>user", o), "(7, 6)");
  EXPECT_EQ(first("$$a$$ then \\[ b \\] then \\(c\\).", o), "c");
  EXPECT_EQ(first("costs \\$5 and $y$", o), "y");  // \$ is an escaped dollar
  EXPECT_EQ(first("$a$ and $unclosed", o), "a");
  EXPECT_EQ(first("$\\boxed{3}$", o), "3");
  EXPECT_EQ(first("no math here", o), "");
}

TEST(MathExtract, LastNumber) {
  const ExtractOptions o = only(AnswerSource::last_number);
  EXPECT_EQ(first("P(A) = 2/3 Therefore, the probability is 2/3. <|im_start|>user", o), "2/3");
  EXPECT_EQ(first("between 10 and 1,000.99m\xC2\xB2", o), "1,000.99");
  EXPECT_EQ(first("it is $12,\\!000,\\!023$", o), "12,\\!000,\\!023");
  EXPECT_EQ(first("$14{,}916$", o), "14{,}916");
  EXPECT_EQ(first("x = -5.", o), "-5");
  EXPECT_EQ(first("3-5", o), "5");
  EXPECT_EQ(first("about .4 of it", o), ".4");
  EXPECT_EQ(first("grew 25% then 12.5\\%", o), "12.5\\%");
  EXPECT_EQ(first("AZYUK2A", o), "");  // part of a name
  EXPECT_EQ(first("a_1 + x2", o), "");
  EXPECT_EQ(first("1,0000", o), "0000");  // not a thousands group: "1" then ",0000"
  // Off by default.
  EXPECT_EQ(first("there are 12 of them"), "");
}

TEST(MathExtract, WholeTextAndPriority) {
  ExtractOptions o;
  o.whole_text = true;
  EXPECT_EQ(first("  3/4 ", o), "3/4");
  EXPECT_EQ(first_source("3/4", o), AnswerSource::whole_text);
  // Priority: boxed, ####, phrase, Answer:, math, number, whole text; duplicates dropped.
  o.last_math = true;
  o.last_number = true;
  o.max_candidates = 8;
  auto c = extract_answers("#### 4\nthe answer is 3. Answer: $2$\n\\boxed{1} 5", o);
  std::vector<std::string> texts;
  std::vector<AnswerSource> sources;
  for (const auto& x : c) {
    texts.push_back(x.text);
    sources.push_back(x.source);
  }
  EXPECT_EQ(texts,
            (std::vector<std::string>{"1", "4", "3", "2", "5",
                                      "#### 4\nthe answer is 3. Answer: $2$\n\\boxed{1} 5"}));
  EXPECT_EQ(sources[0], AnswerSource::boxed);
  EXPECT_EQ(sources[1], AnswerSource::gsm8k_hashes);
  EXPECT_EQ(sources[2], AnswerSource::final_answer_phrase);
  EXPECT_EQ(sources[3], AnswerSource::answer_colon);  // "$2$" dedups the last_math "2"
  EXPECT_EQ(sources[4], AnswerSource::last_number);
  EXPECT_EQ(sources[5], AnswerSource::whole_text);
  o.max_candidates = 2;
  EXPECT_EQ(extract_answers("#### 4\nthe answer is 3. \\boxed{1}", o).size(), 2u);
  o.max_candidates = 0;
  EXPECT_TRUE(extract_answers("\\boxed{1}", o).empty());
  EXPECT_TRUE(extract_answers("").empty());
  EXPECT_TRUE(extract_answers("just words, no answer").empty());
}

TEST(MathExtract, CandidateEndOffsets) {
  ExtractOptions o;
  o.last_number = o.whole_text = true;
  o.max_candidates = 8;
  const std::string text = "ab \\boxed{12} then the answer is 7. And 9";
  const auto c = extract_answers(text, o);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].end, text.find("12") + 2);
  EXPECT_EQ(c[1].end, text.find("7.") + 1);
  EXPECT_EQ(c[2].end, text.size());  // the last number, 9
  EXPECT_EQ(c[3].end, text.size());  // the whole text
  // Offsets count from the start of the input even when only its tail is searched.
  o.max_input_bytes = 16;
  const std::string long_text = std::string(100, ' ') + "\\boxed{3}";
  const auto t = extract_answers(long_text, o);
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t[0].end, long_text.size() - 1);
  ExtractOptions choice;
  choice.choices = "AB";
  EXPECT_EQ(extract_answers("The answer is (b)", choice)[0].end, 0u);
}

TEST(MathExtract, MaxInputBytesKeepsTheTail) {
  ExtractOptions o;
  o.max_input_bytes = 64;
  const std::string text = "\\boxed{1}" + std::string(100, ' ') + "\\boxed{2}";
  EXPECT_EQ(first(text, o), "2");
  const std::string early = "\\boxed{1}" + std::string(100, ' ');
  EXPECT_EQ(first(early, o), "");
  // The cut starts on a character boundary: a candidate never begins with a broken character.
  o.whole_text = true;
  o.boxed = false;
  std::string utf8;
  for (int i = 0; i < 40; ++i) utf8 += "\xC3\xA9";  // é
  const std::string t = first(utf8, o);
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(static_cast<unsigned char>(t[0]), 0xC3);
  EXPECT_LE(t.size(), 64u);
}

// Math-Verify's multiple-choice extraction cases (tests/test_string_extraction.py, the 7 rows with
// no gold): expected is [normalised, original]; no match gives [].
TEST(MathExtract, MathVerifyStringExtractionCases) {
  int cases = 0;
  for (const Json& row : read_jsonl_file(kData + "math_verify_tests.jsonl")) {
    if (row.contains("gold") || row.value("test", "") != "test_string_extraction") continue;
    ++cases;
    const std::string pred = row["pred"].get<std::string>();
    ExtractOptions o;
    o.choices = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    auto c = extract_answers(pred, o);
    const Json& expected = row["expected"];
    if (expected.empty()) {
      EXPECT_TRUE(c.empty()) << pred << " -> " << c[0].text;
      continue;
    }
    ASSERT_FALSE(c.empty()) << pred;
    EXPECT_EQ(c[0].text, expected[1].get<std::string>()) << pred;
    EXPECT_EQ(c[0].source, AnswerSource::choice) << pred;
  }
  EXPECT_EQ(cases, 7);
}

TEST(MathExtract, Choices) {
  ExtractOptions o;
  o.choices = "ABCD";
  EXPECT_EQ(first("The answer is (c).", o), "C");
  EXPECT_EQ(first("\\boxed{\\text{(B)}}", o), "B");
  EXPECT_EQ(first("Answer: **D** because", o), "D");
  EXPECT_EQ(first("(A) is right", o), "A");
  EXPECT_EQ(first("I think E is wrong, so B.", o), "B");  // E is not a choice
  EXPECT_EQ(first("\\Delta A' only", o), "");
  ExtractOptions none;
  EXPECT_EQ(first("A. Because", none), "");  // off by default
}

// The completions of Math-Verify's edge-case tests: the intended answer is the first candidate
// with the extraction a verifier for free-form completions uses (math and numbers enabled).
TEST(MathExtract, MathVerifyEdgeCaseCompletions) {
  std::vector<std::string> preds;
  for (const Json& row : read_jsonl_file(kData + "math_verify_tests.jsonl"))
    if (row.value("test", "") == "test_math_extraction_edge_cases")
      preds.push_back(row["pred"].get<std::string>());
  ASSERT_GE(preds.size(), 12u);
  // last_math comes before last_number: #2's last math is "d = \\frac{90}{n}", so it is run with
  // numbers only.
  ExtractOptions numbers;
  numbers.last_number = true;
  ExtractOptions both = numbers;
  both.last_math = true;
  const std::vector<std::pair<std::string, const ExtractOptions*>> expected = {
      {"2/3", &both},                                          // #1: last number
      {"12", &numbers},                                        // #2
      {"(7, 6)", &both},                                       // #3: last math
      {"(0, 1)", &both},                                       // #4: phrase
      {"(-\\infty, -3] \\cup [2, \\infty)", &both},            // #5: last box
      {"\\$16,\\!386.20", &both},                              // #6
      {"120", &both},                                          // #7: "Answer: … is 120"
      {"12,000,023", &both},                                   // #8
      {"14{,}916", &both},                                     // #9
      {"\\left( \\frac{1}{5}, \\frac{1}{6} \\right)", &both},  // #10
      {"\\left( \\frac{4}{5}, \\frac{1}{5} \\right)", &both},  // #11
      {"\\frac{10\\sqrt{10.5}}{27}", &both},                   // the unsimplified one
  };
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(first(preds[i], *expected[i].second), expected[i].first) << i;
}

// Seconds taken by one extraction with every source on.
double seconds(const std::string& text) {
  ExtractOptions o;
  o.last_math = o.last_number = o.whole_text = true;
  o.choices = "ABCD";
  const auto t0 = std::chrono::steady_clock::now();
  auto c = extract_answers(text, o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& x : c) EXPECT_LE(x.text.size(), text.size());
  return s;
}

// 1 MB of each pathological pattern: a quadratic scan would take minutes; a linear one takes
// milliseconds (the bound leaves room for sanitizer builds and a loaded machine).
TEST(MathExtract, LinearOnPathologicalInput) {
  const size_t mb = 1 << 20;
  auto repeat = [&](const std::string& unit) {
    std::string s;
    while (s.size() + unit.size() <= mb) s += unit;
    return s;
  };
  const std::vector<std::string> inputs = {
      repeat("{"),
      repeat("\\boxed{"),
      std::string("\\boxed{") + repeat("{"),
      repeat("\\boxed{") + repeat("}").substr(0, mb / 8),
      repeat("}"),
      repeat("\\"),
      repeat("$"),
      repeat("$$\\("),
      repeat("answer is "),
      repeat("Answer:"),
      repeat("####"),
      repeat("1,000"),
      repeat("-.9/"),
      repeat("<answer>"),
      std::string("<answer>") + repeat("\\boxed{\\boxed 1"),
      repeat("A "),
      repeat("the answer is $") + "\n",
      repeat(std::string("\0\xff\xC3", 3)),
  };
  for (size_t i = 0; i < inputs.size(); ++i) EXPECT_LT(seconds(inputs[i]), 2.0) << "input " << i;
}

TEST(MathExtract, NulBytesAndInvalidUtf8) {
  const std::string nul("\\boxed{4\0 2}", 12);
  EXPECT_EQ(first(nul), std::string("4\0 2", 4));
  EXPECT_EQ(first("\xff\xfe the answer is \xC3\x28."), "\xC3\x28");
  EXPECT_EQ(first(std::string_view("\\boxed{\0", 8)), "");
}

}  // namespace
}  // namespace r1kit::rewards
