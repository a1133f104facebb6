// llama2.c's own tokenizer format (tokenizer.bin, stories260K's tok512.bin) behind the Tokenizer
// interface, encoding and decoding exactly as karpathy/llama2.c's run.c does.
//
// File layout (little-endian, no header beyond the first field, no token count: the vocabulary
// runs to the end of the file; run.c takes its size from the model):
//   int32 max_token_length
//   per token, in id order:  f32 score, int32 length, `length` bytes (the piece, no terminator)
// Pieces use a plain space where SentencePiece writes "▁"; ids 0, 1, 2 are <unk>, BOS ("\n<s>\n")
// and EOS ("\n</s>\n"); byte-fallback pieces "<0x00>".."<0xFF>" follow (ids 3..258 in llama2.c's
// own vocabularies, but they are looked up by their text here).
//
// encode (run.c's encode()):
//   1. BOS (id 1) first when add_special_tokens (run.c's `bos` flag). Special-token text in the
//      input is never recognised: it is plain text, as in run.c.
//   2. When the text is not empty, the piece " " (the dummy prefix; an error if the vocabulary
//      lacks it).
//   3. Each UTF-8 character becomes the token whose piece is that character, else its bytes become
//      <0xXX> tokens (byte fallback).
//   4. Repeatedly merge the adjacent pair whose concatenated pieces form the vocabulary piece with
//      the highest score (scores above -1e10 only; ties go to the leftmost pair), until no pair
//      forms a piece. BOS takes part in pairing, as in run.c. Implemented with a heap (O(n log n))
//      that makes the same choices as run.c's quadratic scan.
// decode (run.c's decode(), then concatenated):
//   - a piece right after BOS loses one leading space (SentencePiece's dummy-prefix strip);
//   - <0xXX> pieces are the raw byte XX;
//   - with skip_special_tokens, <unk>/BOS/EOS contribute nothing; otherwise their stored piece;
//   - the concatenated bytes are returned with ill-formed UTF-8 replaced by U+FFFD (one per
//     offending byte); token_bytes() gives the raw bytes of one token.
// When several ids share one piece, lookups return the lowest id.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "policy/tokenizer.h"

namespace r1kit::policy {

// `file`: a llama2.c tokenizer file, or a directory holding tokenizer.bin (what
// `r1kit convert llama2c` writes). Errors name the file: missing, truncated inside a token record
// (with the token index and byte offset), a length that is negative or above max_token_length, or
// fewer than 3 tokens. When the file sits beside a config.json with "vocab_size", the token count
// must equal it (a file cut exactly at a record boundary is caught this way).
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& file);
// The same, checking that the file holds exactly `vocab_size` tokens (run.c reads that many).
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& file, int64_t vocab_size);

}  // namespace r1kit::policy
