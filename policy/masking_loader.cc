// Loads the `masking` section of policy files (and `principals.groups`, which exemptions use):
// column and result-name rules, built-in and custom detectors, the masking function.
#include <charconv>

#include "policy/loader_base.h"

namespace dbw::policy {
namespace {

std::string KnownDetectors() {
  std::string list;
  for (size_t i = 0; i < masking::kBuiltinDetectorCount; ++i)
    list += (list.empty() ? "" : ", ") +
            std::string(masking::DetectorName(static_cast<masking::Detector>(i)));
  return list;
}

masking::Function ParseFunction(LoaderBase& b, const YAML::Node& v) {
  std::string name = b.Scalar(v, "masking.function");
  if (name == "redact") return masking::Function::kRedact;
  if (name == "partial") return masking::Function::kPartial;
  if (name == "hash") return masking::Function::kHash;
  if (name == "null") return masking::Function::kNull;
  LoaderBase::Fail(v,
                   "unknown masking function \"" + name + "\" (use redact, partial, hash or null)");
}

void ParseCustom(LoaderBase& b, const YAML::Node& node, MaskingRule* rule) {
  b.Visit(node);
  if (!node.IsSequence() || node.size() == 0)
    LoaderBase::Fail(node, "masking.custom_detectors must be a non-empty list");
  for (const auto& entry : node) {
    masking::DetectorRule d;
    d.detector = masking::Detector::kCustom;
    b.ForEachKey(entry, "masking.custom_detectors entry", {"name", "pattern"},
                 [&](const std::string& key, const YAML::Node& v) {
                   if (key == "name") d.name = b.Scalar(v, "custom detector name");
                   if (key == "pattern") d.regex = b.Scalar(v, "custom detector pattern");
                 });
    if (d.name.empty() || !LoaderBase::ValidId(d.name))
      LoaderBase::Fail(entry, "a custom detector needs a name of letters, digits, '-', '_', '.'");
    if (d.regex.empty())
      LoaderBase::Fail(entry, "custom detector \"" + d.name + "\" needs a pattern");
    // Compiled alone here so a bad pattern is reported at its own line.
    auto compiled = masking::DetectorSet::Compile({d});
    if (!compiled.ok()) LoaderBase::Fail(entry, compiled.status().message());  // names the detector
    rule->detectors.push_back(std::move(d));
  }
}

void ParseRule(LoaderBase& b, const YAML::Node& node, const std::string& file,
               std::map<std::string, std::string>* ids, MaskingRule* rule) {
  rule->file = file;
  rule->line = LoaderBase::Line(node);
  bool have_function = false;
  int keep_line = 0;
  b.ForEachKey(
      node, "masking rule",
      {"id", "description", "match", "except", "columns", "result_columns", "detectors",
       "custom_detectors", "function", "keep_last"},
      [&](const std::string& key, const YAML::Node& v) {
        if (key == "id") {
          rule->id = b.Scalar(v, "id");
          if (!LoaderBase::ValidId(rule->id))
            LoaderBase::Fail(v, "rule id \"" + rule->id +
                                    "\" must be 1-128 letters, digits, '-', '_', '.' or ':'");
          auto [it, inserted] =
              ids->emplace(rule->id, file + ":" + std::to_string(LoaderBase::Line(v)));
          if (!inserted)
            LoaderBase::Fail(
                v, "duplicate rule id \"" + rule->id + "\" (first defined at " + it->second + ")");
        } else if (key == "description") {
          b.Scalar(v, "description");
        } else if (key == "match") {
          b.ForEachKey(v, "masking.match", {"target", "env", "principal"},
                       [&](const std::string& k, const YAML::Node& x) {
                         if (k == "target")
                           rule->target = b.Globs(x, "masking.match.target", false);
                         if (k == "env") rule->env = b.Globs(x, "masking.match.env", false);
                         if (k == "principal")
                           b.ParsePrincipal(x, "masking.match.principal", true, &rule->principal);
                       });
        } else if (key == "except") {
          b.Visit(v);
          if (v.IsSequence()) {
            if (v.size() == 0) LoaderBase::Fail(v, "masking.except must not be an empty list");
            for (const auto& item : v) {
              PrincipalMatcher m;
              b.ParsePrincipal(item, "masking.except entry", true, &m);
              rule->except.push_back(std::move(m));
            }
          } else {
            PrincipalMatcher m;
            b.ParsePrincipal(v, "masking.except", true, &m);
            rule->except.push_back(std::move(m));
          }
        } else if (key == "columns") {
          for (const auto& [text, line] : b.Strings(v, "masking.columns")) {
            ColumnGlob g;
            std::string error;
            if (!ColumnGlob::Compile(text, &g, &error))
              LoaderBase::Fail(line, "masking.columns: " + error);
            rule->columns.push_back(std::move(g));
          }
        } else if (key == "result_columns") {
          rule->result_columns = b.Globs(v, "masking.result_columns", true);
        } else if (key == "detectors") {
          for (const auto& [name, line] : b.Strings(v, "masking.detectors")) {
            auto d = masking::DetectorFromName(name);
            if (!d || *d == masking::Detector::kCustom)
              LoaderBase::Fail(line, "unknown detector \"" + name +
                                         "\" (known: " + KnownDetectors() +
                                         "; custom ones go in custom_detectors)");
            masking::DetectorRule r;
            r.detector = *d;
            r.name = std::string(masking::DetectorName(*d));
            rule->detectors.push_back(std::move(r));
          }
        } else if (key == "custom_detectors") {
          ParseCustom(b, v, rule);
        } else if (key == "function") {
          rule->mask.function = ParseFunction(b, v);
          have_function = true;
        } else {
          std::string n = b.Scalar(v, "keep_last");
          auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), rule->mask.keep_last);
          if (ec != std::errc() || p != n.data() + n.size() || rule->mask.keep_last < 0 ||
              rule->mask.keep_last > 64)
            LoaderBase::Fail(v, "keep_last must be a number from 0 to 64");
          keep_line = LoaderBase::Line(v);
        }
      });
  if (rule->id.empty()) LoaderBase::Fail(node, "masking rule is missing required key \"id\"");
  if (!have_function)
    LoaderBase::Fail(node,
                     "masking rule \"" + rule->id + "\" is missing required key \"function\"");
  if (keep_line != 0 && rule->mask.function != masking::Function::kPartial)
    LoaderBase::Fail(keep_line, "masking rule \"" + rule->id +
                                    "\": keep_last is only allowed with function: partial");
  if (rule->columns.empty() && rule->result_columns.empty() && rule->detectors.empty())
    LoaderBase::Fail(node, "masking rule \"" + rule->id +
                               "\" masks nothing (give columns, result_columns or detectors)");
  rule->mask.rule_id = rule->id;
  for (auto& d : rule->detectors) d.mask = rule->mask;
}

}  // namespace

void ParseMaskingRules(LoaderBase& base, const YAML::Node& node, const std::string& file,
                       std::map<std::string, std::string>* ids, std::vector<MaskingRule>* out) {
  if (node.IsNull()) return;
  base.Visit(node);
  if (!node.IsSequence()) LoaderBase::Fail(node, "masking must be a list of masking rules");
  for (const auto& entry : node) {
    MaskingRule rule;
    ParseRule(base, entry, file, ids, &rule);
    out->push_back(std::move(rule));
  }
}

void ParseGroups(LoaderBase& base, const YAML::Node& node,
                 std::vector<std::pair<std::string, std::vector<PrincipalMatcher>>>* out) {
  if (node.IsNull()) return;
  base.Visit(node);
  if (!node.IsMap()) LoaderBase::Fail(node, "principals.groups must map group names to matchers");
  for (auto it = node.begin(); it != node.end(); ++it) {
    YAML::Node key = it->first;
    std::string name = base.Scalar(key, "group name");
    if (!LoaderBase::ValidId(name))
      LoaderBase::Fail(key, "group name \"" + name + "\" must be letters, digits, '-', '_', '.'");
    std::vector<PrincipalMatcher> matchers;
    YAML::Node v = it->second;  // a handle: the iterator's value is a temporary
    base.Visit(v);
    if (v.IsSequence()) {
      if (v.size() == 0) LoaderBase::Fail(v, "principals.groups." + name + " must not be empty");
      for (const auto& item : v) {
        PrincipalMatcher m;
        base.ParsePrincipal(item, "principals.groups." + name + " entry", true, &m);
        matchers.push_back(std::move(m));
      }
    } else {
      PrincipalMatcher m;
      base.ParsePrincipal(v, "principals.groups." + name, true, &m);
      matchers.push_back(std::move(m));
    }
    auto& slot = *out;
    bool merged = false;
    for (auto& [n, ms] : slot)  // the same group in two files: either file's matchers count
      if (n == name) {
        for (auto& m : matchers) ms.push_back(std::move(m));
        merged = true;
      }
    if (!merged) slot.emplace_back(name, std::move(matchers));
  }
}

}  // namespace dbw::policy
