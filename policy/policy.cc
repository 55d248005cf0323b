// LoadPolicy: expands file paths and globs, reads each file, and hands the texts to the loader;
// with no files it loads the default pack embedded at build time.
#include <glob.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "policy/loader.h"

namespace dbw::policy {
namespace {

constexpr std::uintmax_t kMaxPolicyFileBytes = 4u << 20;

bool HasGlobChars(const std::string& s) {
  return s.find_first_of("*?[") != std::string::npos;
}

// Adds `pattern`'s matches (sorted, as glob(3) returns them) or the path itself.
Status Expand(const std::string& pattern, std::vector<std::string>* paths) {
  if (!HasGlobChars(pattern)) {
    paths->push_back(pattern);
    return Status::Ok();
  }
  glob_t g{};
  int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) paths->emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  if (rc == GLOB_NOMATCH)
    return InvalidArgument(pattern + ":0: no policy files match this pattern");
  if (rc != 0) return InvalidArgument(pattern + ":0: cannot expand this pattern");
  return Status::Ok();
}

Status ReadPolicyFile(const std::string& path, std::string* text) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) return InvalidArgument(path + ":0: cannot open file");
  if (std::filesystem::is_directory(status))
    return InvalidArgument(path + ":0: is a directory (list its files, e.g. " + path + "/*.yaml)");
  auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxPolicyFileBytes)
    return InvalidArgument(path + ":0: file is larger than 4 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(path + ":0: cannot open file");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return InvalidArgument(path + ":0: cannot read file");
  *text = std::move(buf).str();
  return Status::Ok();
}

}  // namespace

StatusOr<std::shared_ptr<const CompiledPolicy>> LoadPolicy(const std::vector<std::string>& files,
                                                           Mode mode) {
  if (files.empty())
    return LoadPolicyTexts({{std::string(kDefaultPackName), std::string(DefaultPackText())}}, mode,
                           "default pack (guardrails.yaml)");
  std::vector<std::string> paths;
  for (const auto& f : files) DBW_RETURN_IF_ERROR(Expand(f, &paths));
  std::vector<std::pair<std::string, std::string>> texts;
  std::set<std::string> seen;  // a file named twice (path and glob) is loaded once
  std::string source;
  for (const auto& path : paths) {
    std::error_code ec;
    std::string key = std::filesystem::weakly_canonical(path, ec).string();
    if (!seen.insert(ec ? path : key).second) continue;
    std::string text;
    DBW_RETURN_IF_ERROR(ReadPolicyFile(path, &text));
    texts.emplace_back(path, std::move(text));
    source += (source.empty() ? "" : ", ") + path;
  }
  return LoadPolicyTexts(texts, mode, std::move(source));
}

}  // namespace dbw::policy
