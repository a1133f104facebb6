// The built-in recipes: every recipes/*.json of the source tree, embedded in the binary at build
// time (CMake writes them into a generated source), so `r1kit run tiny-r1` works from any folder.
// Their relative paths (the tokenizer of tiny-r1, the data paths of the templates) are resolved
// against the repository root the binary was built from.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace r1kit::recipes {

// (name, JSON text) for each built-in recipe, by name.
const std::vector<std::pair<std::string, std::string>>& builtin_recipes();
// The folder relative paths in built-in recipes are resolved against (the repository root).
std::string builtin_base_dir();

}  // namespace r1kit::recipes
