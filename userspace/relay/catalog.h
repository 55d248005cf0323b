// The catalog cache masking resolves result columns with: per worker, per (target, database),
// relation OID -> schema, name and column names by attribute number. Filled over the relay's
// own upstream connection (CatalogLoader), dropped when a session runs DDL.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>

#include "userspace/common/status.h"
#include "userspace/relay/options.h"
#include "userspace/sql/facts.h"
#include "userspace/witness/witness.h"

namespace dbw::relay {

struct TargetRuntime;

// A column's type: its base type (a domain's underlying type) and pg_type.typcategory ('S'
// strings, 'J' json and jsonb).
struct ColumnType {
  std::string schema;
  std::string name;
  char category = 0;
};

struct CatalogRelation {
  std::string schema;
  std::string name;
  std::vector<std::string> columns;  // [attnum - 1]; empty name for a dropped attribute
  std::vector<ColumnType> types;     // [attnum - 1]
  std::string definition;            // views and materialized views (pg_get_viewdef)
  std::vector<uint32_t> parents;     // pg_inherits: tables this one inherits from or partitions
  char kind = 0;                     // pg_class.relkind
  double tuples = -1;                // pg_class.reltuples: estimated rows (-1: never analysed)
  // pg_stats.n_distinct by [attnum - 1]: distinct values (> 0), or minus their fraction of the
  // rows (< 0); NaN without statistics.
  std::vector<double> n_distinct;
};

// A grouped read is bounded when, by the statistics, each table's key columns have at most this
// fraction of its rows in distinct values (docs/sql-analysis.md#grouped-reads).
inline constexpr double kMaxGroupFraction = 0.1;

// OIDs below this were created by initdb (system catalogs, information_schema): they hold no
// user data, so they are not loaded and no column rule applies to them.
inline constexpr uint32_t kFirstNormalObjectId = 16384;

// A function or procedure created in the database (OID >= 16384), for classifying calls.
struct UserFunction {
  std::string schema;
  bool is_volatile = false;
  bool security_definer = false;
  std::string name;        // pg_proc.proname as stored
  std::string language;    // pg_language.lanname
  std::string body;        // prosrc, or the SQL body of a BEGIN ATOMIC function
  bool extension = false;  // a member of an extension
  // For expanding a call through its body (masking by reference).
  char kind = 'f';  // pg_proc.prokind
  bool strict = false;
  bool returns_set = false;
  std::string return_type;       // regtype text
  char return_type_kind = 'b';   // pg_type.typtype
  uint32_t return_relation = 0;  // a composite return type's relation
  struct Arg {
    char mode;  // i, o, b, v, t
    std::string type;
    std::string name;
  };
  std::vector<Arg> args;
  std::optional<std::string> config_search_path;  // SET search_path of the function
  bool has_config = false;                        // any SET clause
  int defaults = 0;                               // pronargdefaults
  bool atomic = false;  // a SQL-standard body (BEGIN ATOMIC / RETURN), `body` deparsed
};

struct CatalogSnapshot {
  std::unordered_map<uint32_t, CatalogRelation> relations;
  // Every function (pg_proc OID → "schema.name"): a FunctionCall message names its function by
  // OID only.
  std::unordered_map<uint32_t, std::string> functions;
  std::unordered_set<std::string> function_names;    // every pg_proc.proname
  std::unordered_set<std::string> system_relations;  // relation names with OID < 16384
  // User-defined functions and procedures by name (pg_proc.proname), every schema.
  std::unordered_map<std::string, std::vector<UserFunction>> user_functions;
  // Whether a call written as `name` (lower case, "schema.name" when qualified) may run a
  // user-defined VOLATILE or SECURITY DEFINER function. An unqualified name matches in every
  // schema: which one the session's search_path picks is not known here.
  bool CallsRiskyUserFunction(std::string_view name) const;
  // Relation OIDs by name, every schema.
  std::unordered_map<std::string, std::vector<uint32_t>> by_name;
  // Whether a SELECT grouped by these columns returns few groups by the statistics: every
  // column a plain table's (every table of that name, when unqualified), analysed, and per
  // table the product of its key columns' distinct values at most kMaxGroupFraction of its rows.
  bool FewGroups(const std::vector<sql::GroupColumn>& columns) const;
  std::chrono::steady_clock::time_point loaded_at;
  // Resolves (table OID, attribute number) to names; nullopt when unknown.
  std::optional<std::pair<const CatalogRelation*, const std::string*>> Find(uint32_t oid,
                                                                            int16_t attnum) const;
};

class CatalogCache {
 public:
  using Ready = std::function<void(std::shared_ptr<const CatalogSnapshot>, const Status&)>;

  static constexpr std::chrono::seconds kRetryAfter{10};
  static constexpr std::chrono::seconds kMaxAge{60};  // a snapshot is re-read after this

  explicit CatalogCache(boost::asio::io_context& context) : context_(context) {}
  // Before the first Get: the catalog reads' connections are reported to `witness` as the
  // relay's own (they carry no session).
  void set_witness(witness::Witness* witness) { witness_ = witness; }

  // Calls `ready` (on this worker, possibly before returning) with the snapshot for the
  // database, loading it first when there is none or it was invalidated. Concurrent callers
  // for one database share one load. After a failed load, calls within kRetryAfter get the
  // failure at once (with the last good snapshot, if any) instead of a new connection each.
  // Without targets[].catalog.user it logs in as `session` (the session's user, and the
  // password the relay holds for it when it injected one).
  void Get(const TargetRuntime& target, const CatalogLogin& session, const std::string& database,
           Ready ready);
  // The current snapshot, without loading; null when none.
  std::shared_ptr<const CatalogSnapshot> Peek(const std::string& target,
                                              const std::string& database) const;
  // A session ran DDL (or saw an unknown relation): the next Get reloads, on every worker (a
  // redefined view or function body must not be judged by its old definition elsewhere).
  void Invalidate(const std::string& target, const std::string& database);
  // Every worker's every catalog reads again at its next Get (DDL the tap saw). Thread-safe.
  static void InvalidateEverywhere() { Generation().fetch_add(1, std::memory_order_release); }

 private:
  struct Entry {
    std::shared_ptr<const CatalogSnapshot> snapshot;
    bool stale = true;
    uint64_t generation = 0;  // Generation() when the snapshot's load started
    bool loading = false;
    std::chrono::steady_clock::time_point failed_at{};  // last failed load (retry backoff)
    Status last_error;
    std::vector<Ready> waiters;
  };
  void Finished(const std::string& key, std::shared_ptr<const CatalogSnapshot> snapshot,
                const Status& status, uint64_t generation);
  // Bumped by every Invalidate in the process: each worker's cache compares it with the
  // generation its snapshot was loaded at.
  static std::atomic<uint64_t>& Generation();

 public:
  static uint64_t generation() { return Generation().load(std::memory_order_acquire); }

  boost::asio::io_context& context_;
  witness::Witness* witness_ = nullptr;
  std::unordered_map<std::string, Entry> entries_;  // key: target '\0' database
};

}  // namespace dbw::relay
