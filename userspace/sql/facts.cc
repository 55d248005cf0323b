// Names of commands and risk flags as policy files and audit records spell them.
#include "userspace/sql/facts.h"

#include <array>
#include <utility>

namespace dbw::sql {
namespace {

constexpr std::array<std::pair<Command, std::string_view>, 44> kCommandNames{{
    {Command::kUnknown, "UNKNOWN"},   {Command::kUnparseable, "UNPARSEABLE"},
    {Command::kSelect, "SELECT"},     {Command::kInsert, "INSERT"},
    {Command::kUpdate, "UPDATE"},     {Command::kDelete, "DELETE"},
    {Command::kMerge, "MERGE"},       {Command::kCopy, "COPY"},
    {Command::kTruncate, "TRUNCATE"}, {Command::kDrop, "DROP"},
    {Command::kAlter, "ALTER"},       {Command::kCreate, "CREATE"},
    {Command::kGrant, "GRANT"},       {Command::kRevoke, "REVOKE"},
    {Command::kRole, "ROLE"},         {Command::kDo, "DO"},
    {Command::kCall, "CALL"},         {Command::kPrepare, "PREPARE"},
    {Command::kExecute, "EXECUTE"},   {Command::kDeallocate, "DEALLOCATE"},
    {Command::kSet, "SET"},           {Command::kShow, "SHOW"},
    {Command::kReset, "RESET"},       {Command::kTransaction, "TRANSACTION"},
    {Command::kExplain, "EXPLAIN"},   {Command::kVacuum, "VACUUM"},
    {Command::kAnalyze, "ANALYZE"},   {Command::kLock, "LOCK"},
    {Command::kListen, "LISTEN"},     {Command::kNotify, "NOTIFY"},
    {Command::kUnlisten, "UNLISTEN"}, {Command::kDeclareCursor, "DECLARE"},
    {Command::kFetch, "FETCH"},       {Command::kClosePortal, "CLOSE"},
    {Command::kDiscard, "DISCARD"},   {Command::kComment, "COMMENT"},
    {Command::kRefresh, "REFRESH"},   {Command::kReindex, "REINDEX"},
    {Command::kCluster, "CLUSTER"},   {Command::kCheckpoint, "CHECKPOINT"},
    {Command::kLoad, "LOAD"},         {Command::kOther, "OTHER"},
    {Command::kFastpath, "FASTPATH"}, {Command::kReplication, "REPLICATION"},
}};

constexpr std::array<std::pair<Risk, std::string_view>, 16> kRiskNames{{
    {kRiskNoWhere, "no_where"},
    {kRiskUnboundedSelect, "unbounded_select"},
    {kRiskDynamicSql, "dynamic_sql"},
    {kRiskSchemaChange, "schema_change"},
    {kRiskPrivilegeChange, "privilege_change"},
    {kRiskServerFileAccess, "server_file_access"},
    {kRiskCopyProgram, "copy_program"},
    {kRiskDataModifyingCte, "data_modifying_cte"},
    {kRiskDestructive, "destructive"},
    {kRiskExternalAccess, "external_access"},
    {kRiskUnparseable, "unparseable"},
    {kRiskWrite, "write"},
    {kRiskUnverifiable, "unverifiable"},
    {kRiskLexerChange, "lexer_change"},
    {kRiskSearchPathChange, "search_path_change"},
    {kRiskUserFunction, "user_function"},
}};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

std::string_view CommandName(Command command) {
  for (const auto& [c, name] : kCommandNames)
    if (c == command) return name;
  return "UNKNOWN";
}

bool ParseCommandName(std::string_view name, Command* out) {
  for (const auto& [c, n] : kCommandNames) {
    if (EqualsIgnoreCase(n, name)) {
      *out = c;
      return true;
    }
  }
  return false;
}

std::string_view RiskName(Risk risk) {
  for (const auto& [r, name] : kRiskNames)
    if (r == risk) return name;
  return "none";
}

bool ParseRiskName(std::string_view name, Risk* out) {
  for (const auto& [r, n] : kRiskNames) {
    if (EqualsIgnoreCase(n, name)) {
      *out = r;
      return true;
    }
  }
  return false;
}

std::vector<std::string_view> RiskNames(uint32_t risks) {
  std::vector<std::string_view> out;
  for (const auto& [r, name] : kRiskNames)
    if (risks & r) out.push_back(name);
  return out;
}

}  // namespace dbw::sql
