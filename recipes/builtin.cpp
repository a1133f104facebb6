#include "recipes/builtin.h"

namespace r1kit::recipes {

const std::vector<std::pair<std::string, std::string>>& builtin_recipes() {
  static const std::vector<std::pair<std::string, std::string>> r = {
#include "builtin_recipes.inc"
  };
  return r;
}

std::string builtin_base_dir() {
  return R1KIT_RECIPES_SOURCE_DIR;
}

}  // namespace r1kit::recipes
