// SentencePiece tokenizers (tokenizer.model, e.g. Llama-2 and llama2.c's tok512.model) behind the
// Tokenizer interface, through libsentencepiece. Loaded from a model directory the way
// transformers' LlamaTokenizer is: tokenizer.model, plus tokenizer_config.json (add_bos_token,
// add_eos_token) and generation_config.json (eos_token_id) when they are there.
//
// Behaviour, in the terms of policy/tokenizer.h:
//   encode   the text goes through SentencePiece as one piece of text (the model's own normaliser,
//            so decode(encode(s)) loses whitespace when the model removes extra whitespace, as
//            tok512.model and Llama-2's do; its dummy prefix "▁"; byte fallback); with
//            add_special_tokens the text of control and user-defined pieces ("<s>", "</s>") is
//            recognised first (longest match), each plain segment between them is encoded on its
//            own (as transformers' legacy LlamaTokenizer does), and BOS / EOS are added as
//            tokenizer_config.json says (default: BOS only), unless the options ask for
//            special-token text without BOS/EOS.
//   decode   SentencePiece's own decoding (leading dummy-prefix space dropped, <0xXX> pieces joined
//            into bytes, ill-formed UTF-8 from byte pieces replaced by U+FFFD). Special tokens
//            (control pieces and <unk>) are dropped with skip_special_tokens; otherwise they
//            appear as their piece text and split the ids into runs decoded separately.
//   pieces   id_to_token / token_to_id use the stored pieces ("▁the", "<0x0A>").
#pragma once

#include <memory>
#include <string>

#include "policy/tokenizer.h"

namespace r1kit::policy {

// `dir_or_file`: a directory holding tokenizer.model, or the .model file itself. Errors name the
// file: a missing tokenizer.model, a file that is not a SentencePiece model, malformed JSON
// configs.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& dir_or_file);

}  // namespace r1kit::policy
