// The policy loader's YAML toolkit: "FILE:LINE: reason" errors, strict mappings (unknown and
// repeated keys rejected), scalars, lists, globs and principal matchers. Internal to policy/:
// shared by the rule loader (loader.cc) and the masking loader (masking_loader.cc).
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "policy/compiled.h"
#include "policy/glob.h"

namespace dbw::policy {

using Keys = std::vector<std::string_view>;

struct LoadError {
  int line;
  std::string reason;
};

// yaml-cpp shares aliased nodes, so a tiny file can describe a huge tree; cap the work.
inline constexpr size_t kNodeBudget = 200000;
inline constexpr int kMaxPriority = 1000000;

inline std::string Lower(std::string s) {
  for (char& c : s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return s;
}
inline std::string Upper(std::string s) {
  for (char& c : s) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  return s;
}

// Thrown only inside the loaders and caught by LoadPolicyTexts.
class LoaderBase {
 public:
  [[noreturn]] static void Fail(int line, std::string reason) {
    throw LoadError{line < 1 ? 1 : line, std::move(reason)};
  }
  [[noreturn]] static void Fail(const YAML::Node& node, std::string reason) {
    Fail(Line(node), std::move(reason));
  }
  static int Line(const YAML::Node& node) { return node.Mark().line + 1; }

  void Visit(const YAML::Node& node) {
    if (++visited_ > kNodeBudget) Fail(node, "policy is too large or too deeply aliased");
  }

  // Iterates a mapping, rejecting unknown and repeated keys; `fn(key, value)` handles each.
  template <typename Fn>
  void ForEachKey(const YAML::Node& map, const std::string& where, const Keys& allowed, Fn&& fn) {
    Visit(map);
    if (!map.IsMap()) Fail(map, where + " must be a mapping");
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      Visit(it->first);
      if (!it->first.IsScalar()) Fail(it->first, "keys in " + where + " must be strings");
      const std::string& key = it->first.Scalar();
      bool known = false;
      for (std::string_view a : allowed) known = known || a == key;
      if (!known) {
        std::string list;
        for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        Fail(it->first,
             "unknown key \"" + key + "\" in " + where + " (expected one of: " + list + ")");
      }
      if (!seen.insert(key).second) Fail(it->first, "duplicate key \"" + key + "\" in " + where);
      fn(key, it->second);
    }
  }

  std::string Scalar(const YAML::Node& node, const std::string& what) {
    Visit(node);
    if (!node.IsScalar()) Fail(node, what + " must be a single value");
    return node.Scalar();
  }

  // A scalar or a non-empty list of scalars, each with its line.
  std::vector<std::pair<std::string, int>> Strings(const YAML::Node& node,
                                                   const std::string& what) {
    Visit(node);
    std::vector<std::pair<std::string, int>> out;
    if (node.IsScalar()) {
      out.emplace_back(node.Scalar(), Line(node));
    } else if (node.IsSequence()) {
      for (const auto& item : node) out.emplace_back(Scalar(item, what + " entries"), Line(item));
      if (out.empty()) Fail(node, what + " must not be an empty list");
    } else {
      Fail(node, what + " must be a value or a list of values");
    }
    return out;
  }

  std::vector<Glob> Globs(const YAML::Node& node, const std::string& what, bool fold_case) {
    std::vector<Glob> out;
    for (const auto& [text, line] : Strings(node, what)) {
      Glob g;
      std::string error;
      if (!Glob::Compile(text, fold_case, &g, &error)) Fail(line, what + ": " + error);
      out.push_back(std::move(g));
    }
    return out;
  }

  std::vector<QualifiedGlob> NameGlobs(const YAML::Node& node, const std::string& what) {
    std::vector<QualifiedGlob> out;
    for (const auto& [text, line] : Strings(node, what)) {
      QualifiedGlob g;
      std::string error;
      if (!QualifiedGlob::Compile(text, &g, &error)) Fail(line, what + ": " + error);
      out.push_back(std::move(g));
    }
    return out;
  }

  void ParsePrincipal(const YAML::Node& node, const std::string& where, bool allow_kind,
                      PrincipalMatcher* m) {
    Keys keys = {"subject",     "groups",       "db_user",  "database",    "application_name",
                 "client_addr", "cert_subject", "cert_san", "cert_issuer", "issuer",
                 "claims",      "exe",          "unit",     "container"};
    if (allow_kind) keys.insert(keys.begin(), "kind");
    size_t count = 0;
    ForEachKey(node, where, keys, [&](const std::string& key, const YAML::Node& v) {
      ++count;
      const std::string what = where + "." + key;
      if (key == "kind") {
        std::string kind = Scalar(v, what);
        if (kind == "agent") {
          m->kind = PrincipalKind::kAgent;
        } else if (kind == "human") {
          m->kind = PrincipalKind::kHuman;
        } else {
          Fail(v, what + " must be agent or human, not \"" + kind + "\"");
        }
        return;
      }
      if (key == "claims") {
        if (!v.IsMap() || v.size() == 0)
          Fail(v, what + " must be a mapping of claim names to values (globs)");
        for (const auto& kv : v) {
          std::string name = kv.first.as<std::string>();
          m->claims.emplace_back(name, Globs(kv.second, what + "." + name, false));
        }
        return;
      }
      std::vector<Glob> globs = Globs(v, what, false);
      if (key == "subject") m->subject = std::move(globs);
      if (key == "groups") m->groups = std::move(globs);
      if (key == "db_user") m->db_user = std::move(globs);
      if (key == "database") m->database = std::move(globs);
      if (key == "application_name") m->application_name = std::move(globs);
      if (key == "client_addr") m->client_addr = std::move(globs);
      if (key == "cert_subject") m->cert_subject = std::move(globs);
      if (key == "cert_san") m->cert_san = std::move(globs);
      if (key == "cert_issuer") m->cert_issuer = std::move(globs);
      if (key == "issuer") m->issuer = std::move(globs);
      if (key == "exe") m->exe = std::move(globs);
      if (key == "unit") m->unit = std::move(globs);
      if (key == "container") m->container = std::move(globs);
    });
    if (count == 0) Fail(node, where + " must name at least one key");
  }

  static bool ValidId(const std::string& id) {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.' || c == ':';
      if (!ok) return false;
    }
    return true;
  }

 private:
  size_t visited_ = 0;
};

}  // namespace dbw::policy

namespace dbw::policy {

// masking_loader.cc: a `masking` list and `principals.groups`.
void ParseMaskingRules(LoaderBase& base, const YAML::Node& node, const std::string& file,
                       std::map<std::string, std::string>* ids, std::vector<MaskingRule>* out);
void ParseGroups(LoaderBase& base, const YAML::Node& node,
                 std::vector<std::pair<std::string, std::vector<PrincipalMatcher>>>* out);

}  // namespace dbw::policy
