// Utility statements: DDL, GRANT/REVOKE, roles, session and transaction commands. Each gets
// its command, object kind and risks; the generic walk then collects tables read and functions.
#include <string>

#include "userspace/sql/walker.h"

namespace dbw::sql {

using tree::array;
using tree::element;
using tree::object;

std::string ObjectKindName(std::string_view t) {
  if (t.starts_with("OBJECT_")) t.remove_prefix(7);
  if (t.starts_with("REINDEX_OBJECT_")) t.remove_prefix(15);
  struct Special {
    std::string_view from, to;
  };
  static constexpr Special kSpecial[] = {
      {"MATVIEW", "MATERIALIZED VIEW"},
      {"FDW", "FOREIGN DATA WRAPPER"},
      {"FOREIGN_SERVER", "SERVER"},
      {"TSCONFIGURATION", "TEXT SEARCH CONFIGURATION"},
      {"TSDICTIONARY", "TEXT SEARCH DICTIONARY"},
      {"TSPARSER", "TEXT SEARCH PARSER"},
      {"TSTEMPLATE", "TEXT SEARCH TEMPLATE"},
      {"OPCLASS", "OPERATOR CLASS"},
      {"OPFAMILY", "OPERATOR FAMILY"},
      {"STATISTIC_EXT", "STATISTICS"},
      {"TABCONSTRAINT", "CONSTRAINT"},
      {"DOMCONSTRAINT", "CONSTRAINT"},
      {"DEFACL", "DEFAULT PRIVILEGES"},
      {"LARGEOBJECT", "LARGE OBJECT"},
      {"PUBLICATION_NAMESPACE", "PUBLICATION"},
      {"PUBLICATION_REL", "PUBLICATION"},
  };
  for (const auto& s : kSpecial)
    if (t == s.from) return std::string(s.to);
  std::string out(t);
  for (char& c : out)
    if (c == '_') c = ' ';
  return out;
}

namespace {

bool IsRelationKind(std::string_view objtype) {
  return objtype == "OBJECT_TABLE" || objtype == "OBJECT_VIEW" || objtype == "OBJECT_MATVIEW" ||
         objtype == "OBJECT_FOREIGN_TABLE" || objtype == "OBJECT_INDEX" ||
         objtype == "OBJECT_SEQUENCE";
}

struct KindByType {
  std::string_view type;
  std::string_view kind;
  uint32_t extra_risks;
};

// CREATE statements whose node type names the kind (others fall back on objtype/"OTHER").
constexpr KindByType kCreates[] = {
    {"CreateSchemaStmt", "SCHEMA", 0},
    {"CreateSeqStmt", "SEQUENCE", 0},
    {"CreateExtensionStmt", "EXTENSION", 0},
    {"CreatedbStmt", "DATABASE", 0},
    {"CreateTrigStmt", "TRIGGER", 0},
    {"CreateDomainStmt", "DOMAIN", 0},
    {"CompositeTypeStmt", "TYPE", 0},
    {"CreateEnumStmt", "TYPE", 0},
    {"CreateRangeStmt", "TYPE", 0},
    {"CreatePolicyStmt", "POLICY", kRiskPrivilegeChange},  // who sees which rows
    {"CreateEventTrigStmt", "EVENT TRIGGER", 0},
    {"RuleStmt", "RULE", 0},
    {"CreateCastStmt", "CAST", 0},
    {"CreatePLangStmt", "LANGUAGE", 0},
    {"CreatePublicationStmt", "PUBLICATION", 0},
    {"CreateStatsStmt", "STATISTICS", 0},
    {"CreateTableSpaceStmt", "TABLESPACE", 0},
    {"CreateConversionStmt", "CONVERSION", 0},
    {"CreateOpClassStmt", "OPERATOR CLASS", 0},
    {"CreateOpFamilyStmt", "OPERATOR FAMILY", 0},
    {"CreateAmStmt", "ACCESS METHOD", 0},
    {"CreateTransformStmt", "TRANSFORM", 0},
    {"CreateForeignServerStmt", "SERVER", kRiskExternalAccess},
    {"CreateUserMappingStmt", "USER MAPPING", kRiskExternalAccess},
    {"CreateFdwStmt", "FOREIGN DATA WRAPPER", kRiskExternalAccess},
    {"ImportForeignSchemaStmt", "FOREIGN TABLE", kRiskExternalAccess},
    {"CreateSubscriptionStmt", "SUBSCRIPTION", kRiskExternalAccess},
    {"CreateConversionStmt", "CONVERSION", 0},
};

std::string_view TransactionKind(std::string_view k) {
  struct M {
    std::string_view from, to;
  };
  static constexpr M kKinds[] = {
      {"TRANS_STMT_BEGIN", "BEGIN"},
      {"TRANS_STMT_START", "START"},
      {"TRANS_STMT_COMMIT", "COMMIT"},
      {"TRANS_STMT_ROLLBACK", "ROLLBACK"},
      {"TRANS_STMT_SAVEPOINT", "SAVEPOINT"},
      {"TRANS_STMT_RELEASE", "RELEASE"},
      {"TRANS_STMT_ROLLBACK_TO", "ROLLBACK TO"},
      {"TRANS_STMT_PREPARE", "PREPARE TRANSACTION"},
      {"TRANS_STMT_COMMIT_PREPARED", "COMMIT PREPARED"},
      {"TRANS_STMT_ROLLBACK_PREPARED", "ROLLBACK PREPARED"},
  };
  for (const auto& m : kKinds)
    if (m.from == k) return m.to;
  return {};
}

void RelationWritten(object body, std::string_view field, Walker* w) {
  object rel;
  if (tree::GetObject(body, field, &rel)) w->Written(rel);
}

void Drop(std::string_view type, object body, Walker* w) {
  w->Risk(kRiskDestructive | kRiskSchemaChange);
  if (type == "DropStmt") {
    std::string_view objtype = tree::GetString(body, "removeType");
    w->Top(Command::kDrop, ObjectKindName(objtype));
    if (objtype == "OBJECT_POLICY") w->Risk(kRiskPrivilegeChange);  // row-level security
    array objects;
    if (IsRelationKind(objtype) && tree::GetArray(body, "objects", &objects))
      for (element o : objects) w->WrittenName(o);
    return;
  }
  std::string_view kind = "OTHER";
  if (type == "DropdbStmt") kind = "DATABASE";
  if (type == "DropTableSpaceStmt") kind = "TABLESPACE";
  if (type == "DropSubscriptionStmt") kind = "SUBSCRIPTION";
  if (type == "DropUserMappingStmt") kind = "USER MAPPING";
  if (type == "DropOwnedStmt") {
    kind = "OWNED";
    w->Risk(kRiskPrivilegeChange);
  }
  w->Top(Command::kDrop, std::string(kind));
}

void Create(std::string_view type, object body, Walker* w) {
  w->Risk(kRiskSchemaChange);
  if (type == "CreateStmt") {
    w->Top(Command::kCreate, "TABLE");
    RelationWritten(body, "relation", w);
    return w->WalkFields(body, {"relation"});
  }
  if (type == "CreateForeignTableStmt") {
    w->Top(Command::kCreate, "FOREIGN TABLE");
    w->Risk(kRiskExternalAccess);
    object base;
    if (tree::GetObject(body, "base", &base)) RelationWritten(base, "relation", w);
    return;
  }
  if (type == "CreateTableAsStmt") {
    w->Top(Command::kCreate, ObjectKindName(tree::GetString(body, "objtype")));
    w->Risk(kRiskWrite);
    object into;
    if (tree::GetObject(body, "into", &into)) RelationWritten(into, "rel", w);
    // CREATE TABLE AS EXECUTE name(...) runs a prepared statement the gate resolves by name.
    object query;
    std::string_view query_type;
    element q;
    if (tree::Get(body, "query", &q) && tree::AsNode(q, &query_type, &query) &&
        query_type == "ExecuteStmt")
      w->facts()->prepared = w->Inner(body);
    return w->WalkFields(body, {"into"});
  }
  if (type == "ViewStmt") {
    w->Top(Command::kCreate, "VIEW");
    RelationWritten(body, "view", w);
    return w->WalkFields(body, {"view"});
  }
  if (type == "IndexStmt") {
    w->Top(Command::kCreate, "INDEX");
    RelationWritten(body, "relation", w);
    return w->WalkFields(body, {"relation"});
  }
  if (type == "CreateFunctionStmt") {
    w->Top(Command::kCreate, tree::GetBool(body, "is_procedure") ? "PROCEDURE" : "FUNCTION");
    // A body given as text is analysed by the analyzer (its risks, tables and functions become
    // this statement's); a BEGIN ATOMIC body (sql_body) is a parse tree, walked here.
    std::string language = "sql";
    std::string text;
    array options;
    if (tree::GetArray(body, "options", &options)) {
      for (element o : options) {
        std::string_view t;
        object def;
        if (!tree::AsNode(o, &t, &def) || t != "DefElem") continue;
        std::string_view name = tree::GetString(def, "defname");
        element arg;
        if (!tree::Get(def, "arg", &arg)) continue;
        if (name == "language") language = tree::Lower(tree::StringNode(arg));
        std::string_view lt;
        object list;
        array items;
        if (name == "as" && tree::AsNode(arg, &lt, &list) && lt == "List" &&
            tree::GetArray(list, "items", &items)) {
          for (element i : items) {
            text = std::string(tree::StringNode(i));
            break;  // C functions: obj_file, link_symbol; others: the body
          }
        }
      }
    }
    if (tree::Has(body, "options")) w->LiteralSensitive();  // the body is a string literal
    // C and internal functions name a symbol, not code; any other language runs code the
    // analysis cannot read (the analyzer counts it as dynamic SQL).
    if (!text.empty() && language != "c" && language != "internal")
      w->bodies().push_back({language, std::move(text)});
    return w->WalkFields(body);
  }
  if (type == "DefineStmt") {
    w->Top(Command::kCreate, ObjectKindName(tree::GetString(body, "kind")));
    return w->WalkFields(body);
  }
  std::string kind = "OTHER";
  for (const auto& c : kCreates) {
    if (c.type == type) {
      kind = std::string(c.kind);
      w->Risk(c.extra_risks);
    }
  }
  w->Top(Command::kCreate, kind);
  if (type == "CreateExtensionStmt") {
    std::string_view ext = tree::GetString(body, "extname");
    if (ext == "dblink" || ext == "postgres_fdw") w->Risk(kRiskExternalAccess);
  }
  if (type == "CreateTrigStmt" || type == "RuleStmt" || type == "CreatePolicyStmt") {
    RelationWritten(body, type == "CreatePolicyStmt" ? "table" : "relation", w);
  }
  w->WalkFields(body, {"relation", "table"});
}

void Alter(std::string_view type, object body, Walker* w) {
  w->Risk(kRiskSchemaChange);
  std::string_view objtype = tree::GetString(body, "objtype");
  if (objtype.empty()) objtype = tree::GetString(body, "renameType");
  if (objtype.empty()) objtype = tree::GetString(body, "objectType");
  std::string kind = objtype.empty() ? "OTHER" : ObjectKindName(objtype);
  if (type == "AlterSystemStmt") kind = "SYSTEM";
  if (type == "AlterDatabaseStmt" || type == "AlterDatabaseSetStmt" ||
      type == "AlterDatabaseRefreshCollStmt")
    kind = "DATABASE";
  if (type == "AlterSeqStmt") kind = "SEQUENCE";
  if (type == "AlterFunctionStmt") kind = "FUNCTION";
  if (type == "AlterDomainStmt") kind = "DOMAIN";
  if (type == "AlterEnumStmt") kind = "TYPE";
  if (type == "AlterExtensionStmt" || type == "AlterExtensionContentsStmt") kind = "EXTENSION";
  if (type == "AlterPolicyStmt") kind = "POLICY";
  if (type == "AlterPublicationStmt") kind = "PUBLICATION";
  if (type == "AlterForeignServerStmt") kind = "SERVER";
  if (type == "AlterUserMappingStmt") kind = "USER MAPPING";
  if (type == "AlterSubscriptionStmt") {
    kind = "SUBSCRIPTION";
    w->Risk(kRiskExternalAccess);
  }
  if (type == "AlterOwnerStmt" || type == "AlterPolicyStmt") w->Risk(kRiskPrivilegeChange);
  if (type == "AlterDatabaseSetStmt") {
    // ALTER DATABASE d SET role = x: every later session of d runs as x.
    object set;
    if (tree::GetObject(body, "setstmt", &set)) {
      std::string name = tree::Lower(tree::GetString(set, "name"));
      if (name == "role" || name == "session_authorization") w->Risk(kRiskPrivilegeChange);
      if (name == "search_path" || tree::GetString(set, "kind") == "VAR_RESET_ALL")
        w->Risk(kRiskSearchPathChange);
    }
  }
  if (type == "AlterTableStmt") {
    array cmds;
    if (tree::GetArray(body, "cmds", &cmds)) {
      for (element c : cmds) {
        std::string_view t;
        object cmd;
        if (!tree::AsNode(c, &t, &cmd)) continue;
        std::string_view sub = tree::GetString(cmd, "subtype");
        // Owner changes, and switching row-level security off, change who sees which rows.
        if (sub == "AT_ChangeOwner" || sub == "AT_DisableRowSecurity" ||
            sub == "AT_NoForceRowSecurity")
          w->Risk(kRiskPrivilegeChange);
      }
    }
  }
  w->Top(Command::kAlter, kind);
  RelationWritten(body, "relation", w);
  RelationWritten(body, "sequence", w);
  w->WalkFields(body, {"relation", "sequence"});
}

bool Role(std::string_view type, object body, Walker* w) {
  if (type == "CreateRoleStmt") {
    w->Top(Command::kRole, "CREATE");
  } else if (type == "AlterRoleStmt" || type == "AlterRoleSetStmt") {
    w->Top(Command::kRole, "ALTER");
    object set;
    if (type == "AlterRoleSetStmt" && tree::GetObject(body, "setstmt", &set) &&
        (tree::Lower(tree::GetString(set, "name")) == "search_path" ||
         tree::GetString(set, "kind") == "VAR_RESET_ALL"))
      w->Risk(kRiskSearchPathChange);
  } else if (type == "DropRoleStmt") {
    w->Top(Command::kRole, "DROP");
  } else if (type == "GrantRoleStmt") {
    w->Top(Command::kRole, tree::GetBool(body, "is_grant") ? "GRANT" : "REVOKE");
  } else {
    return false;
  }
  w->Risk(kRiskPrivilegeChange);
  return true;
}

// Settings that decide how the server splits text into tokens.
bool IsLexerSetting(std::string_view name) {
  return name == "standard_conforming_strings" || name == "client_encoding" ||
         name == "backslash_quote";
}

void VariableSet(object body, Walker* w) {
  // Setting names are case-insensitive in PostgreSQL: SET "ROLE" sets the role.
  std::string name = tree::Lower(tree::GetString(body, "name"));
  std::string_view kind = tree::GetString(body, "kind");
  if (kind == "VAR_RESET_ALL" || IsLexerSetting(name)) w->Risk(kRiskLexerChange);
  // SET SCHEMA 'x' is SET search_path by another name; RESET ALL resets it too.
  if (kind == "VAR_RESET_ALL" || name == "search_path") w->Risk(kRiskSearchPathChange);
  if (name == "role" || name == "session_authorization") {
    // RESET ROLE, SET ROLE NONE and SET SESSION AUTHORIZATION DEFAULT return to the login role.
    bool to_login_role = kind != "VAR_SET_VALUE";
    array args;
    if (!to_login_role && name == "role" && tree::GetArray(body, "args", &args)) {
      for (element a : args) {
        std::string_view t;
        object c, v;
        w->LiteralSensitive();  // 'none' or a role name: decided by the literal
        // Exactly `none` (the keyword NONE becomes it): PostgreSQL compares case-sensitively,
        // and SET ROLE 'NONE' switches to a role named NONE.
        if (tree::AsNode(a, &t, &c) && t == "A_Const" && tree::GetObject(c, "sval", &v) &&
            tree::GetString(v, "sval") == "none") {
          to_login_role = true;
        }
        break;
      }
    }
    w->Top(Command::kRole, to_login_role ? "RESET" : "SET");
    if (!to_login_role) w->Risk(kRiskPrivilegeChange);
    return;
  }
  w->Top(kind == "VAR_RESET" || kind == "VAR_RESET_ALL" ? Command::kReset : Command::kSet);
}

// The server-side name a statement acts on; a missing name means ALL (DEALLOCATE ALL, CLOSE ALL).
void NameOf(object body, std::string_view field, Walker* w, StatementFacts* f) {
  f->object_name = std::string(tree::GetString(body, field));
  f->name_all = f->object_name.empty();
}

}  // namespace

void DescribeUtility(std::string_view type, object body, Walker* w) {
  if (type == "TransactionStmt") {
    return w->Top(Command::kTransaction,
                  std::string(TransactionKind(tree::GetString(body, "kind"))));
  }
  if (type == "VariableSetStmt") return VariableSet(body, w);
  if (type == "VariableShowStmt") return w->Top(Command::kShow);
  if (type == "DiscardStmt") {
    std::string_view target = tree::GetString(body, "target");  // DISCARD_ALL, DISCARD_PLANS, ...
    if (target.starts_with("DISCARD_")) target.remove_prefix(8);
    w->Top(Command::kDiscard, std::string(target));
    if (target == "ALL") w->Risk(kRiskLexerChange | kRiskSearchPathChange);  // runs RESET ALL
    return;
  }
  if (type == "ConstraintsSetStmt") return w->Top(Command::kSet);
  if (type == "TruncateStmt") {
    w->Top(Command::kTruncate);
    w->Risk(kRiskDestructive | kRiskWrite);
    array rels;
    if (tree::GetArray(body, "relations", &rels)) {
      for (element r : rels) {
        std::string_view t;
        object rv;
        if (tree::AsNode(r, &t, &rv) && t == "RangeVar") w->Written(rv);
      }
    }
    return;
  }
  if (type == "DoStmt") {
    w->Top(Command::kDo);
    return w->Risk(kRiskDynamicSql);
  }
  if (type == "CallStmt") {
    w->Top(Command::kCall);
    object call;  // a bare FuncCall struct, not a node
    if (tree::GetObject(body, "funccall", &call)) {
      w->Function(call);
      w->WalkFields(call, {"funcname"});
    }
    return;
  }
  if (type == "ExecuteStmt") {
    w->Top(Command::kExecute);
    NameOf(body, "name", w, w->facts());
    return w->WalkFields(body);
  }
  if (type == "DeallocateStmt") {
    w->Top(Command::kDeallocate);
    return NameOf(body, "name", w, w->facts());
  }
  if (type == "FetchStmt") {
    w->Top(Command::kFetch, tree::GetBool(body, "ismove") ? "MOVE" : "");
    w->facts()->fetch_move = tree::GetBool(body, "ismove");
    return NameOf(body, "portalname", w, w->facts());
  }
  if (type == "ClosePortalStmt") {
    w->Top(Command::kClosePortal);
    return NameOf(body, "portalname", w, w->facts());
  }
  if (type == "ListenStmt") return w->Top(Command::kListen);
  if (type == "NotifyStmt") return w->Top(Command::kNotify);
  if (type == "UnlistenStmt") return w->Top(Command::kUnlisten);
  if (type == "CheckPointStmt") return w->Top(Command::kCheckpoint);
  if (type == "LoadStmt") {
    w->Top(Command::kLoad);
    return w->Risk(kRiskServerFileAccess);  // loads a shared library from the server's disk
  }
  if (type == "LockStmt") {
    w->Top(Command::kLock);
    return w->WalkFields(body);  // its RangeVars are listed as read
  }
  if (type == "VacuumStmt") {
    w->Top(tree::GetBool(body, "is_vacuumcmd") ? Command::kVacuum : Command::kAnalyze);
    array rels;
    if (tree::GetArray(body, "rels", &rels)) {
      for (element r : rels) {
        std::string_view t;
        object vr, rel;
        if (tree::AsNode(r, &t, &vr) && tree::GetObject(vr, "relation", &rel)) w->Read(rel);
      }
    }
    return;
  }
  if (type == "GrantStmt") {
    bool grant = tree::GetBool(body, "is_grant");
    std::string_view objtype = tree::GetString(body, "objtype");
    w->Top(grant ? Command::kGrant : Command::kRevoke, ObjectKindName(objtype));
    w->Risk(kRiskPrivilegeChange);
    array objects;
    if (tree::GetString(body, "targtype") == "ACL_TARGET_OBJECT" &&
        tree::GetArray(body, "objects", &objects)) {
      for (element o : objects) {
        std::string_view t;
        object rv;
        if (tree::AsNode(o, &t, &rv) && t == "RangeVar") w->Written(rv);
      }
    }
    return;
  }
  if (type == "AlterDefaultPrivilegesStmt") {
    w->Top(Command::kAlter, "DEFAULT PRIVILEGES");
    return w->Risk(kRiskPrivilegeChange);
  }
  if (type == "ReassignOwnedStmt") {
    w->Top(Command::kAlter, "OWNED");
    return w->Risk(kRiskPrivilegeChange | kRiskSchemaChange);
  }
  if (Role(type, body, w)) return;
  if (type == "CommentStmt") {
    std::string_view objtype = tree::GetString(body, "objtype");
    w->Top(Command::kComment, ObjectKindName(objtype));
    w->Risk(kRiskSchemaChange);
    element object_name;
    if (IsRelationKind(objtype) && tree::Get(body, "object", &object_name))
      w->WrittenName(object_name);
    return;
  }
  if (type == "RefreshMatViewStmt" || type == "ReindexStmt" || type == "ClusterStmt") {
    Command c = type == "RefreshMatViewStmt" ? Command::kRefresh
                : type == "ReindexStmt"      ? Command::kReindex
                                             : Command::kCluster;
    std::string kind;
    if (c == Command::kRefresh) kind = "MATERIALIZED VIEW";
    if (c == Command::kReindex) kind = ObjectKindName(tree::GetString(body, "kind"));
    w->Top(c, kind);
    w->Risk(kRiskSchemaChange);
    return RelationWritten(body, "relation", w);
  }
  if (type == "SecLabelStmt") {
    w->Top(Command::kOther, ObjectKindName(tree::GetString(body, "objtype")));
    return w->Risk(kRiskSchemaChange);
  }
  if (type.starts_with("Drop")) return Drop(type, body, w);
  if (type.starts_with("Create") || type == "ViewStmt" || type == "IndexStmt" ||
      type == "DefineStmt" || type == "CompositeTypeStmt" || type == "RuleStmt" ||
      type == "ImportForeignSchemaStmt")
    return Create(type, body, w);
  if (type.starts_with("Alter") || type == "RenameStmt") return Alter(type, body, w);
  w->Top(Command::kUnknown);
  w->WalkFields(body);
}

}  // namespace dbw::sql
