// The coverage matrix and the startup packet's settings, read as PostgreSQL 15 reads them.
#include "userspace/gate/coverage.h"

#include <cctype>

namespace dbw::gate {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// pg_split_opts: white space separates switches unless escaped with a backslash, which is dropped.
std::vector<std::string> SplitOptions(std::string_view options) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < options.size()) {
    while (i < options.size() && std::isspace(static_cast<unsigned char>(options[i]))) ++i;
    if (i == options.size()) break;
    std::string word;
    bool escaped = false;
    for (; i < options.size(); ++i) {
      char c = options[i];
      if (std::isspace(static_cast<unsigned char>(c)) && !escaped) break;
      if (!escaped && c == '\\') {
        escaped = true;
      } else {
        escaped = false;
        word.push_back(c);
      }
    }
    out.push_back(std::move(word));
  }
  return out;
}

// ParseLongOption: "name=value", with dashes in the name read as underscores.
Status AddLongOption(std::string_view text, std::vector<StartupSetting>* out) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return InvalidArgument("startup option \"" + std::string(text) + "\" needs name=value");
  std::string name = Lower(text.substr(0, eq));
  for (char& c : name)
    if (c == '-') c = '_';
  out->push_back({std::move(name), std::string(text.substr(eq + 1)), true});
  return Status::Ok();
}

bool IsOff(std::string_view v) {
  std::string l = Lower(v);
  return l == "off" || l == "false" || l == "no" || l == "0" || l == "of" || l == "n" || l == "f" ||
         l == "fa" || l == "fal" || l == "fals";
}

}  // namespace

DoorVerdict FrontendDoor(pg::Phase phase, uint8_t type) {
  namespace fe = pg::fe;
  switch (phase) {
    case pg::Phase::kStartup:
      return {Door::kRefuse, "message before the startup packet"};
    case pg::Phase::kAuthenticating:
      // Only the answers to the server's authentication requests; a statement here would be
      // queued unjudged behind an authentication the relay does not control.
      if (type == fe::kPassword) return {Door::kPass, {}};
      if (type == fe::kTerminate) return {Door::kPass, {}};
      return {Door::kRefuse,
              "message other than a password or SASL response during authentication"};
    case pg::Phase::kTerminated:
      return {Door::kRefuse, "message after Terminate"};
    case pg::Phase::kInitializing:
    case pg::Phase::kReady:
    case pg::Phase::kCopyIn:
    case pg::Phase::kCopyOut:
    case pg::Phase::kCopyBoth:
      break;
  }
  switch (type) {
    case fe::kQuery:
    case fe::kParse:
    case fe::kFunctionCall:
      return {Door::kJudge, {}};
    case fe::kBind:
    case fe::kExecute:
      return {Door::kTrack, {}};
    case fe::kDescribe:
    case fe::kClose:
    case fe::kSync:
    case fe::kFlush:
    case fe::kTerminate:
      return {Door::kPass, {}};
    case fe::kCopyData:
    case fe::kCopyDone:
    case fe::kCopyFail:
      // Rows for a COPY FROM STDIN that was judged; outside COPY the server ignores them.
      return {Door::kPass, {}};
    case fe::kPassword:
      return {Door::kRefuse, "password message outside authentication"};
    default:
      return {Door::kRefuse, "unknown frontend message type"};
  }
}

StatusOr<StartupRequest> ReadStartup(const pg::StartupMessage& message) {
  StartupRequest req;
  for (const auto& [key, value] : message.params) {
    if (key == "user" || key == "database") continue;
    if (key == "replication") {
      req.replication = std::string(value);
      req.replication_requested = !IsOff(value);
      continue;
    }
    if (key.starts_with("_pq_.")) continue;  // protocol options: the server negotiates them
    if (key == "options") {
      std::vector<std::string> words = SplitOptions(value);
      for (size_t i = 0; i < words.size(); ++i) {
        const std::string& w = words[i];
        if (w.starts_with("--") && w.size() > 2) {
          if (Status st = AddLongOption(std::string_view(w).substr(2), &req.settings); !st.ok())
            return st;
        } else if (w == "-c" && i + 1 < words.size()) {
          if (Status st = AddLongOption(words[++i], &req.settings); !st.ok()) return st;
        } else if (w.starts_with("-c") && w.size() > 2) {
          if (Status st = AddLongOption(std::string_view(w).substr(2), &req.settings); !st.ok())
            return st;
        } else {
          return InvalidArgument("startup option \"" + w +
                                 "\" is not a -c name=value setting, so dbwarden cannot judge it");
        }
      }
      continue;
    }
    req.settings.push_back({Lower(key), std::string(value), false});
  }
  return req;
}

std::string SetStatementFor(const StartupSetting& setting) {
  std::string sql = "SET \"";
  for (char c : setting.name) {
    if (c == '"') sql.push_back('"');
    sql.push_back(c);
  }
  sql += "\" = '";
  for (char c : setting.value) {
    if (c == '\'') sql.push_back('\'');
    sql.push_back(c);
  }
  sql += "'";
  return sql;
}

}  // namespace dbw::gate
