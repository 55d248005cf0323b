// Loading policy text: the YAML format documented in docs/policy.md, compiled for the evaluator.
// LoadPolicy (policy.h) reads files and globs; these entry points serve tests, fuzzing and the CLI.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/policy.h"

namespace dbw::policy {

// The built-in default pack (policy/packs/guardrails.yaml, embedded at build time).
std::string_view DefaultPackText();
inline constexpr std::string_view kDefaultPackName = "<builtin>/guardrails.yaml";

// One named YAML document per entry; `name` is what errors cite ("NAME:LINE: reason").
StatusOr<std::shared_ptr<const CompiledPolicy>> LoadPolicyTexts(
    const std::vector<std::pair<std::string, std::string>>& named_texts, Mode mode,
    std::string source);

// Convenience for a single text.
inline StatusOr<std::shared_ptr<const CompiledPolicy>> LoadPolicyText(std::string_view text,
                                                                      std::string name, Mode mode) {
  return LoadPolicyTexts({{name, std::string(text)}}, mode, name);
}

}  // namespace dbw::policy
