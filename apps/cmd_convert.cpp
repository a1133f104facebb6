// `r1kit convert llama2c MODEL.bin --tokenizer tok512.bin --out DIR`: imports a llama2.c checkpoint
// (legacy format) into the Hugging Face Llama layout (policy/llama2c.h); prints a JSON summary.
#include <iostream>

#include "apps/commands.h"
#include "policy/llama2c.h"

namespace r1kit::apps {
namespace {

struct ConvertArgs {
  std::string model, tokenizer, out, dtype = "f32";
  bool overwrite = false;
};

void run_convert_llama2c(const ConvertArgs& a) {
  policy::Llama2cConvertOptions o;
  o.tokenizer = a.tokenizer;
  o.overwrite = a.overwrite;
  if (a.dtype == "f32") {
    o.dtype = DType::f32;
  } else if (a.dtype == "bf16") {
    o.dtype = DType::bf16;
  } else {
    R1_THROW("--dtype {}: expected f32 or bf16", a.dtype);
  }
  std::cout << policy::convert_llama2c(a.model, a.out, o).dump() << "\n";
}

}  // namespace

void register_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "Import a checkpoint of another format");
  cmd->require_subcommand(1);
  auto* l2c = cmd->add_subcommand(
      "llama2c", "llama2.c checkpoint (legacy format) -> Hugging Face Llama directory");
  auto a = std::make_shared<ConvertArgs>();
  l2c->add_option("model", a->model, "the llama2.c checkpoint (e.g. stories260K.bin)")->required();
  l2c->add_option("--tokenizer", a->tokenizer,
                  "its llama2.c tokenizer (e.g. tok512.bin), checked and copied as tokenizer.bin");
  l2c->add_option("--out", a->out, "output directory (written atomically)")->required();
  l2c->add_option("--dtype", a->dtype, "storage dtype: f32 or bf16")->capture_default_str();
  l2c->add_flag("--overwrite", a->overwrite, "replace an existing output directory");
  l2c->callback([a] { run_convert_llama2c(*a); });
}

}  // namespace r1kit::apps
