// The YAML policy loader: validates every key with "FILE:LINE: reason" errors and compiles rules
// and agent matchers. Exceptions are used only here, and never leave LoadPolicyTexts.
#include "policy/loader.h"

#include <charconv>
#include <map>
#include <set>

#include <yaml-cpp/yaml.h>

#include "policy/compiled.h"
#include "policy/loader_base.h"

namespace dbw::policy {
namespace {

static_assert(static_cast<unsigned>(sql::Command::kOther) < 64, "command bit set is 64 bits");

std::string KnownCommands() {
  std::string list;
  for (unsigned i = 0; i <= static_cast<unsigned>(sql::Command::kOther); ++i)
    list +=
        (list.empty() ? "" : ", ") + std::string(sql::CommandName(static_cast<sql::Command>(i)));
  return list;
}

std::string KnownRisks() {
  std::string list;
  for (uint32_t bit = 1; bit <= sql::kRiskWrite; bit <<= 1)
    list += (list.empty() ? "" : ", ") + std::string(sql::RiskName(static_cast<sql::Risk>(bit)));
  return list;
}

class Loader : public LoaderBase {
 public:
  Loader(PolicyData* out, std::map<std::string, std::string>* ids) : out_(out), ids_(ids) {}

  void LoadDocument(const std::string& file, const std::string& text) {
    file_ = file;
    YAML::Node root = YAML::Load(text);
    if (!root.IsDefined() || root.IsNull()) Fail(1, "the policy file is empty");
    ParseRoot(root);
  }

 private:
  void ParseRoot(const YAML::Node& root) {
    if (!root.IsMap())
      Fail(root, "a policy file must be a mapping (version, principals, rules, masking)");
    bool have_version = false;
    ForEachKey(root, "the policy file",
               {"version", "description", "principals", "rules", "masking"},
               [&](const std::string& key, const YAML::Node& v) {
                 if (key == "version") {
                   if (Scalar(v, "version") != "1") Fail(v, "unsupported version (expected 1)");
                   have_version = true;
                 } else if (key == "description") {
                   Scalar(v, "description");
                 } else if (key == "principals") {
                   ParsePrincipals(v);
                 } else if (key == "masking") {
                   ParseMaskingRules(*this, v, file_, ids_, &out_->masking);
                 } else if (!v.IsNull()) {
                   Visit(v);
                   if (!v.IsSequence()) Fail(v, "rules must be a list");
                   for (const auto& r : v) ParseRule(r);
                 }
               });
    if (!have_version) Fail(root, "missing required key \"version\" (use version: 1)");
  }

  void ParsePrincipals(const YAML::Node& node) {
    ForEachKey(node, "principals", {"agents", "groups"},
               [&](const std::string& key, const YAML::Node& v) {
                 if (key == "groups") {
                   ParseGroups(*this, v, &out_->groups);
                   return;
                 }
                 if (v.IsNull()) return;
                 Visit(v);
                 if (!v.IsSequence()) Fail(v, "principals.agents must be a list of matchers");
                 for (const auto& entry : v) {
                   PrincipalMatcher m;
                   ParsePrincipal(entry, "principals.agents entry", false, &m);
                   out_->agents.push_back(std::move(m));
                 }
               });
  }

  void ParseStatement(const YAML::Node& node, const std::string& where, StatementMatcher* m) {
    ForEachKey(node, where,
               {"commands", "object_kinds", "tables", "tables_read", "tables_written", "risks",
                "functions"},
               [&](const std::string& key, const YAML::Node& v) {
                 const std::string what = where + "." + key;
                 if (key == "commands") {
                   for (const auto& [name, line] : Strings(v, what)) {
                     sql::Command c;
                     if (!sql::ParseCommandName(Upper(name), &c))
                       Fail(line, "unknown command \"" + name + "\" in " + what +
                                      " (known: " + KnownCommands() + ")");
                     m->commands |= uint64_t{1} << static_cast<unsigned>(c);
                   }
                 } else if (key == "risks") {
                   for (const auto& [name, line] : Strings(v, what)) {
                     sql::Risk r;
                     if (!sql::ParseRiskName(Lower(name), &r) || r == sql::kRiskNone)
                       Fail(line, "unknown risk \"" + name + "\" in " + what +
                                      " (known: " + KnownRisks() + ")");
                     m->risks |= r;
                   }
                 } else if (key == "object_kinds") {
                   m->object_kinds = Globs(v, what, true);
                 } else if (key == "tables") {
                   m->tables = NameGlobs(v, what);
                 } else if (key == "tables_read") {
                   m->tables_read = NameGlobs(v, what);
                 } else if (key == "tables_written") {
                   m->tables_written = NameGlobs(v, what);
                 } else {
                   m->functions = NameGlobs(v, what);
                 }
               });
  }

  // "HH:MM" -> minutes; "24:00" only as an end.
  int ClockMinutes(std::string_view text, bool is_end, int line, const std::string& what) {
    int h = 0, m = 0;
    auto bad = [&]() {
      Fail(line,
           what + ": expected a window like \"09:00-18:00\", got \"" + std::string(text) + "\"");
    };
    if (text.size() != 5 || text[2] != ':') bad();
    auto [p1, e1] = std::from_chars(text.data(), text.data() + 2, h);
    auto [p2, e2] = std::from_chars(text.data() + 3, text.data() + 5, m);
    if (e1 != std::errc() || e2 != std::errc() || p1 != text.data() + 2 || p2 != text.data() + 5)
      bad();
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !is_end))) bad();
    return h * 60 + m;
  }

  void ParseTime(const YAML::Node& node, const std::string& where, TimeWindow* t) {
    t->present = true;
    size_t count = 0;
    ForEachKey(
        node, where, {"days", "between", "tz"}, [&](const std::string& key, const YAML::Node& v) {
          ++count;
          const std::string what = where + "." + key;
          if (key == "days") {
            static const std::pair<std::string_view, uint8_t> kDays[] = {
                {"sun", 0x01},    {"mon", 0x02},      {"tue", 0x04},       {"wed", 0x08},
                {"thu", 0x10},    {"fri", 0x20},      {"sat", 0x40},       {"sunday", 0x01},
                {"monday", 0x02}, {"tuesday", 0x04},  {"wednesday", 0x08}, {"thursday", 0x10},
                {"friday", 0x20}, {"saturday", 0x40}, {"weekdays", 0x3e},  {"weekends", 0x41}};
            t->days = 0;
            for (const auto& [name, line] : Strings(v, what)) {
              uint8_t bits = 0;
              for (const auto& [n, b] : kDays)
                if (Lower(name) == n) bits = b;
              if (bits == 0)
                Fail(line, what + ": unknown day \"" + name +
                               "\" (use mon, tue, wed, thu, fri, sat, sun, weekdays, weekends)");
              t->days |= bits;
            }
          } else if (key == "between") {
            std::string text = Scalar(v, what);
            size_t dash = text.find('-');
            if (dash == std::string::npos)
              Fail(v, what + ": expected a window like \"09:00-18:00\", got \"" + text + "\"");
            t->start_minute =
                ClockMinutes(std::string_view(text).substr(0, dash), false, Line(v), what);
            t->end_minute =
                ClockMinutes(std::string_view(text).substr(dash + 1), true, Line(v), what);
            if (t->start_minute == t->end_minute) Fail(v, what + ": the window is empty");
          } else {
            std::string tz = Scalar(v, what);
            t->offset_seconds = ParseOffset(tz, v, what);
          }
        });
    if (count == 0) Fail(node, where + " must name at least one key");
  }

  int ParseOffset(const std::string& tz, const YAML::Node& v, const std::string& what) {
    if (Upper(tz) == "UTC" || tz == "Z") return 0;
    int h = 0, m = 0;
    bool ok = tz.size() == 6 && (tz[0] == '+' || tz[0] == '-') && tz[3] == ':';
    if (ok) {
      auto [p1, e1] = std::from_chars(tz.data() + 1, tz.data() + 3, h);
      auto [p2, e2] = std::from_chars(tz.data() + 4, tz.data() + 6, m);
      ok = e1 == std::errc() && e2 == std::errc() && p1 == tz.data() + 3 && p2 == tz.data() + 6 &&
           h <= 14 && m <= 59;
    }
    if (!ok)
      Fail(v, what + ": \"" + tz +
                  "\" is not UTC or a fixed offset like +02:00 (named zones are not supported)");
    int secs = h * 3600 + m * 60;
    return tz[0] == '-' ? -secs : secs;
  }

  void ParseMatcher(const YAML::Node& node, const std::string& where, bool allow_not, Rule* rule,
                    Matcher* m) {
    Keys keys = {"target", "env", "principal", "statement", "time"};
    if (allow_not) keys.push_back("not");
    size_t count = 0;
    ForEachKey(node, where, keys, [&](const std::string& key, const YAML::Node& v) {
      ++count;
      const std::string what = where + "." + key;
      if (key == "target") {
        m->target = Globs(v, what, false);
      } else if (key == "env") {
        m->env = Globs(v, what, false);
      } else if (key == "principal") {
        ParsePrincipal(v, what, true, &m->principal);
      } else if (key == "statement") {
        ParseStatement(v, what, &m->statement);
      } else if (key == "time") {
        ParseTime(v, what, &m->time);
      } else {
        Visit(v);
        if (v.IsSequence()) {
          if (v.size() == 0) Fail(v, what + " must not be an empty list");
          for (const auto& item : v) {
            Matcher x;
            ParseMatcher(item, what + " entry", false, rule, &x);
            rule->exclude.push_back(std::move(x));
          }
        } else {
          Matcher x;
          ParseMatcher(v, what, false, rule, &x);
          rule->exclude.push_back(std::move(x));
        }
      }
    });
    if (count == 0 && !allow_not) Fail(node, where + " must name at least one condition");
  }

  // "10m", "1h30m", "90s", "2d".
  std::chrono::seconds Duration(const YAML::Node& v, const std::string& what) {
    std::string text = Scalar(v, what);
    int64_t total = 0;
    const char* p = text.data();
    const char* end = text.data() + text.size();
    bool ok = p != end;
    while (ok && p != end) {
      int64_t n = 0;
      auto [next, ec] = std::from_chars(p, end, n);
      if (ec != std::errc() || next == p || next == end || n > 100000) {
        ok = false;
        break;
      }
      int64_t unit = *next == 's'   ? 1
                     : *next == 'm' ? 60
                     : *next == 'h' ? 3600
                     : *next == 'd' ? 86400
                                    : 0;
      ok = unit != 0;
      total += n * unit;
      p = next + 1;
    }
    if (!ok || total <= 0 || total > 366 * 86400)
      Fail(v, what + ": expected a duration like 30s, 10m, 1h30m or 2d, got \"" + text + "\"");
    return std::chrono::seconds(total);
  }

  ApprovalSpec ParseApproval(const YAML::Node& node) {
    ApprovalSpec a;
    ForEachKey(node, "approval", {"mode", "timeout", "approvers", "groups", "grant_ttl"},
               [&](const std::string& key, const YAML::Node& v) {
                 const std::string what = "approval." + key;
                 if (key == "mode") {
                   std::string mode = Scalar(v, what);
                   if (mode == "hold") {
                     a.mode = ApprovalMode::kHold;
                   } else if (mode == "ticket") {
                     a.mode = ApprovalMode::kTicket;
                   } else {
                     Fail(v, what + " must be hold or ticket, not \"" + mode + "\"");
                   }
                 } else if (key == "timeout") {
                   a.timeout = Duration(v, what);
                 } else if (key == "grant_ttl") {
                   a.grant_ttl = Duration(v, what);
                 } else if (key == "approvers") {
                   std::string n = Scalar(v, what);
                   auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), a.approvers);
                   if (ec != std::errc() || p != n.data() + n.size() || a.approvers < 1 ||
                       a.approvers > 100)
                     Fail(v, what + " must be a number from 1 to 100");
                 } else {
                   for (auto& [g, line] : Strings(v, what)) a.approver_groups.push_back(g);
                 }
               });
    return a;
  }

  EffectLimits ParseLimits(const YAML::Node& node) {
    EffectLimits l;
    ForEachKey(node, "limits", {"max_rows", "max_read_rows", "max_read_bytes"},
               [&](const std::string& key, const YAML::Node& v) {
                 const std::string what = "limits." + key;
                 std::string n = Scalar(v, what);
                 uint64_t value = 0;
                 auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), value);
                 if (ec != std::errc() || p != n.data() + n.size() || value < 1 ||
                     value > (uint64_t{1} << 50))
                   Fail(v, what + " must be a whole number from 1 to 2^50, got \"" + n + "\"");
                 (key == "max_rows"        ? l.max_rows
                  : key == "max_read_rows" ? l.max_read_rows
                                           : l.max_read_bytes) = value;
               });
    if (!l.any()) Fail(node, "limits: set at least one of max_rows, max_read_rows, max_read_bytes");
    return l;
  }

  void ParseRule(const YAML::Node& node) {
    Rule rule;
    rule.file = file_;
    rule.line = Line(node);
    bool have_action = false, is_limit = false;
    int approval_line = 0, sqlstate_line = 0, limits_line = 0;
    ForEachKey(
        node, "rule",
        {"id", "description", "priority", "match", "action", "message", "sqlstate", "approval",
         "limits"},
        [&](const std::string& key, const YAML::Node& v) {
          if (key == "id") {
            rule.id = Scalar(v, "id");
            if (!ValidId(rule.id))
              Fail(v, "rule id \"" + rule.id +
                          "\" must be 1-128 letters, digits, '-', '_', '.' or ':'");
            auto [it, inserted] = ids_->emplace(rule.id, file_ + ":" + std::to_string(Line(v)));
            if (!inserted)
              Fail(v,
                   "duplicate rule id \"" + rule.id + "\" (first defined at " + it->second + ")");
          } else if (key == "description") {
            rule.description = Scalar(v, "description");
          } else if (key == "message") {
            rule.message = Scalar(v, "message");
          } else if (key == "priority") {
            std::string p = Scalar(v, "priority");
            auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), rule.priority);
            if (ec != std::errc() || ptr != p.data() + p.size() || rule.priority > kMaxPriority ||
                rule.priority < -kMaxPriority)
              Fail(v, "priority must be a whole number from -1000000 to 1000000");
          } else if (key == "action") {
            std::string a = Scalar(v, "action");
            have_action = true;
            if (a == "allow") {
              rule.action = Action::kAllow;
            } else if (a == "log") {
              rule.action = Action::kLog;
            } else if (a == "approve") {
              rule.action = Action::kApprove;
            } else if (a == "deny") {
              rule.action = Action::kDeny;
            } else if (a == "limit") {
              rule.action = Action::kAllow;
              is_limit = true;
            } else {
              Fail(v, "unknown action \"" + a + "\" (use allow, log, approve, deny or limit)");
            }
          } else if (key == "sqlstate") {
            rule.sqlstate = Scalar(v, "sqlstate");
            sqlstate_line = Line(v);
            bool ok = rule.sqlstate.size() == 5;
            for (char c : rule.sqlstate)
              ok = ok && ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'));
            if (!ok) Fail(v, "sqlstate must be five digits or upper-case letters, like 42501");
          } else if (key == "approval") {
            approval_line = Line(v);
            rule.approval = ParseApproval(v);
          } else if (key == "limits") {
            limits_line = Line(v);
            rule.limits = ParseLimits(v);
          } else if (!v.IsNull()) {
            ParseMatcher(v, "match", true, &rule, &rule.match);
          }
        });
    if (rule.id.empty()) Fail(node, "rule is missing required key \"id\"");
    if (!have_action) Fail(node, "rule \"" + rule.id + "\" is missing required key \"action\"");
    if (approval_line != 0 && rule.action != Action::kApprove)
      Fail(approval_line,
           "rule \"" + rule.id + "\": approval is only allowed with action: approve");
    if (sqlstate_line != 0 && rule.action != Action::kDeny && rule.action != Action::kApprove)
      Fail(sqlstate_line,
           "rule \"" + rule.id + "\": sqlstate is only allowed with action: deny or approve");
    if (is_limit != (limits_line != 0))
      Fail(is_limit ? Line(node) : limits_line,
           "rule \"" + rule.id + "\": " +
               (is_limit ? "action: limit needs limits: {max_rows, max_read_rows, max_read_bytes}"
                         : "limits are only allowed with action: limit"));
    if (rule.limits) {
      if (rule.limits->max_rows != 0) rule.limits->write_rule = rule.id;
      if (rule.limits->max_read_rows != 0) rule.limits->read_rows_rule = rule.id;
      if (rule.limits->max_read_bytes != 0) rule.limits->read_bytes_rule = rule.id;
    }
    if (rule.action == Action::kApprove && !rule.approval) rule.approval = ApprovalSpec{};
    if (rule.action == Action::kDeny && rule.sqlstate.empty()) rule.sqlstate = "42501";
    out_->rules.push_back(std::move(rule));
  }

  PolicyData* out_;
  std::map<std::string, std::string>* ids_;  // rule id -> "FILE:LINE" where first defined
  std::string file_;
};

}  // namespace

StatusOr<std::shared_ptr<const CompiledPolicy>> LoadPolicyTexts(
    const std::vector<std::pair<std::string, std::string>>& named_texts, Mode mode,
    std::string source) {
  PolicyData data;
  data.mode = mode;
  data.source = std::move(source);
  std::map<std::string, std::string> ids;
  for (const auto& [name, text] : named_texts) {
    Loader loader(&data, &ids);
    try {
      loader.LoadDocument(name, text);
    } catch (const LoadError& e) {
      return InvalidArgument(name + ":" + std::to_string(e.line) + ": " + e.reason);
    } catch (const YAML::Exception& e) {
      return InvalidArgument(name + ":" + std::to_string(e.mark.line < 0 ? 1 : e.mark.line + 1) +
                             ": " + e.msg);
    } catch (const std::exception& e) {
      return InvalidArgument(name + ":1: " + e.what());
    }
  }
  return MakeCompiledPolicy(std::move(data));
}

}  // namespace dbw::policy
