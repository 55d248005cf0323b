// Statement facts: what a SQL string does, read from PostgreSQL's own parse tree. This is the
// contract between the analyser (userspace/sql) and the policy engine (policy/).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dbw::sql {

enum class Command : uint8_t {
  kUnknown,      // parsed, but not a kind listed here
  kUnparseable,  // the parser rejected the text: never a silent allow
  kSelect,
  kInsert,
  kUpdate,
  kDelete,
  kMerge,
  kCopy,
  kTruncate,
  kDrop,
  kAlter,
  kCreate,
  kGrant,
  kRevoke,
  kRole,  // CREATE/ALTER/DROP ROLE|USER|GROUP, GRANT/REVOKE role membership, SET ROLE
  kDo,
  kCall,
  kPrepare,
  kExecute,
  kDeallocate,
  kSet,
  kShow,
  kReset,
  kTransaction,  // BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ...
  kExplain,
  kVacuum,
  kAnalyze,
  kLock,
  kListen,
  kNotify,
  kUnlisten,
  kDeclareCursor,
  kFetch,
  kClosePortal,
  kDiscard,
  kComment,
  kRefresh,  // REFRESH MATERIALIZED VIEW
  kReindex,
  kCluster,
  kCheckpoint,
  kLoad,  // LOAD 'library'
  kOther,
  // Not SQL text: what the relay's gate judges for protocol routes to execution.
  kFastpath,     // a FunctionCall message (libpq's PQfn), judged as a call of its function
  kReplication,  // a replication connection (startup parameter `replication`)
};
// Upper-case name as used in policy files: "SELECT", "DROP", "ROLE", "UNPARSEABLE", ...
std::string_view CommandName(Command command);
bool ParseCommandName(std::string_view name, Command* out);

// Risk flags, a bit set. Names (for policy files and audit) in RiskName.
enum Risk : uint32_t {
  kRiskNone = 0,
  kRiskNoWhere = 1u << 0,  // UPDATE/DELETE with no effective WHERE (missing or constant true)
  kRiskUnboundedSelect =
      1u << 1,  // returns rows from a table with no WHERE, LIMIT/FETCH or aggregate-only output
  kRiskDynamicSql = 1u << 2,       // DO blocks, EXECUTE of a string, or anything not analysable
  kRiskSchemaChange = 1u << 3,     // CREATE/ALTER/DROP of schema objects, CREATE/DROP INDEX, ...
  kRiskPrivilegeChange = 1u << 4,  // GRANT/REVOKE, role creation/alteration, ALTER DEFAULT
                                   // PRIVILEGES, SET ROLE/SESSION AUTHORIZATION
  kRiskServerFileAccess =
      1u << 5,                 // COPY to/from a server file, pg_read_file & co, lo_import/lo_export
  kRiskCopyProgram = 1u << 6,  // COPY ... PROGRAM
  kRiskDataModifyingCte = 1u << 7,  // WITH x AS (UPDATE/DELETE/INSERT ...) ...
  kRiskDestructive = 1u << 8,       // DROP, TRUNCATE
  kRiskExternalAccess = 1u << 9,    // dblink*, postgres_fdw objects, COPY with external effects
  kRiskUnparseable = 1u << 10,
  kRiskWrite = 1u << 11,  // changes data (INSERT/UPDATE/DELETE/MERGE/COPY FROM/TRUNCATE)
  // The gate cannot read the statement as the server will: EXECUTE/FETCH of a name it does not
  // know, text whose reading depends on a setting change still in flight, bytes that are not
  // valid in the client encoding. Refused on enforcing policies.
  kRiskUnverifiable = 1u << 12,
  // May change a setting that decides how the server reads text (standard_conforming_strings,
  // client_encoding, backslash_quote): SET/RESET of them, RESET ALL, DISCARD ALL, set_config.
  kRiskLexerChange = 1u << 13,
  // Changes the schema search path, by any route (SET/RESET search_path, SET SCHEMA, RESET ALL,
  // DISCARD ALL, set_config, ALTER ROLE|DATABASE ... SET search_path, a startup option): names
  // then resolve to other objects (a function or table shadowing a trusted one).
  kRiskSearchPathChange = 1u << 14,
  // Calls a function or procedure created in the database (not a built-in) that is VOLATILE or
  // SECURITY DEFINER: it may change data or act with its owner's rights, and its body may have
  // been created before dbwarden (or through another path) and never analysed. Set by the relay
  // from the target's catalog (policy eval and the API cannot know it).
  kRiskUserFunction = 1u << 15,
};
std::string_view RiskName(Risk risk);  // "no_where", "unbounded_select", ...
bool ParseRiskName(std::string_view name, Risk* out);
std::vector<std::string_view> RiskNames(uint32_t risks);

struct TableRef {
  std::string schema;  // "" when the statement did not qualify the name
  std::string name;
  // "schema.name", or "name" when unqualified. Names are as PostgreSQL folds them
  // (unquoted identifiers lower-cased, quoted ones kept).
  std::string Qualified() const { return schema.empty() ? name : schema + "." + name; }
  bool operator==(const TableRef&) const = default;
};

// A table column a SELECT's GROUP BY keys are made of, with the table as the statement names it
// (through the FROM clause's aliases).
struct GroupColumn {
  TableRef table;
  std::string column;
  bool operator==(const GroupColumn&) const = default;
};

struct StatementFacts {
  Command command = Command::kUnknown;
  // For CREATE/ALTER/DROP/COMMENT/GRANT: the object kind, upper case ("TABLE", "INDEX", "VIEW",
  // "SCHEMA", "FUNCTION", "DATABASE", "EXTENSION", ...). For COPY: "TO" or "FROM". For
  // transaction control: "BEGIN", "COMMIT", ... Empty otherwise.
  std::string object_kind;
  std::vector<TableRef> tables_read;
  std::vector<TableRef> tables_written;
  std::vector<std::string>
      functions;  // called functions, lower case, schema-qualified if written so
  uint32_t risks = kRiskNone;
  std::string normalized;  // this statement's text with literals replaced by $1, $2, ...
  uint64_t fingerprint =
      0;  // libpg_query fingerprint (same for statements differing only in literals)
  std::string fingerprint_hex;
  // PREPARE name AS <stmt>: the prepared statement's own facts, judged in its place.
  // DECLARE name CURSOR FOR <query>: the query's facts are in `prepared` too.
  std::string prepare_name;
  std::shared_ptr<const StatementFacts> prepared;
  // A statement whose judgement depends on the values bound to its `$n` parameters: its text
  // (as the server reads it), so the gate can judge it again with the values an EXECUTE or a
  // Bind supplies. Set on PREPARE's inner statement when it has parameters (such facts are
  // literal-sensitive), and by the relay on a Parse it judges at Bind.
  std::string source;
  // EXECUTE name (args), also inside EXPLAIN and CREATE TABLE AS: the argument expressions as
  // written (literal-sensitive); `execute_args_known` false when they could not be told apart.
  std::vector<std::string> execute_args;
  bool execute_args_known = false;
  // A SELECT that reads every row of a table only because it groups them (`SELECT status,
  // count(*) FROM orders GROUP BY status`): it keeps `unbounded_select`, and `group_columns`
  // lists what its keys are made of, so the relay can lift the risk when the target's statistics
  // show few groups (docs/sql-analysis.md#grouped-reads).
  bool grouped = false;
  std::vector<GroupColumn> group_columns;
  // The server-side name this statement defines, runs or drops: PREPARE, EXECUTE, DEALLOCATE
  // (prepared statements); DECLARE, FETCH, MOVE, CLOSE (cursors). `name_all` for DEALLOCATE ALL
  // and CLOSE ALL. DISCARD keeps its target in object_kind ("ALL", "PLANS", ...).
  std::string object_name;
  bool name_all = false;
  bool cursor_hold = false;    // DECLARE ... WITH HOLD: survives the transaction
  bool cursor_binary = false;  // DECLARE ... BINARY: rows come in binary format
  bool fetch_move = false;     // MOVE: positions the cursor, returns no rows
  std::string error;           // kUnparseable: the parser's message
  // COPY table (col, ...): the column list as written (masking maps COPY fields by it);
  // `copy_query` when it copies a query's output instead of a table.
  std::vector<std::string> copy_columns;
  bool copy_query = false;
  // COPY ... TO options that shape the output: CSV instead of text, a delimiter other than the
  // default (tab for text, comma for CSV), CSV quote and escape characters, a header line.
  bool copy_csv = false;
  char copy_delimiter = '\t';
  char copy_quote = '"';
  char copy_escape = '"';
  bool copy_header = false;

  bool Has(Risk r) const { return (risks & r) != 0; }
};

struct QueryFacts {
  std::vector<StatementFacts> statements;  // one per statement of the query string
  bool unparseable = false;
  std::string error;  // the parser's message when unparseable
  // True when some fact depended on a literal value (e.g. WHERE 'a' = 'a'), so the facts
  // must not be reused for another statement of the same shape.
  bool literal_sensitive = false;
  // The highest parameter number `$n` in the text (0: none).
  int max_param = 0;
  // Why the gate cannot verify this text (statements carry kRiskUnverifiable); empty otherwise.
  std::string unverifiable;
  uint32_t AllRisks() const {
    uint32_t r = 0;
    for (const auto& s : statements) r |= s.risks;
    return r;
  }
};

}  // namespace dbw::sql
