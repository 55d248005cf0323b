// Masking by reference (userspace/sql/mask_rewrite.h): what is rewritten, how, and what is
// refused. The real server checks the rewritten text's results in
// tests/integration/test_mask_rewrite.py; these pin the rewriter's decisions.
#include "userspace/sql/mask_rewrite.h"

#include <cstdlib>
#include <iostream>

#include <gtest/gtest.h>

namespace dbw::sql::mask {
namespace {

Column Col(std::string name, std::string type, ValueClass cls,
           std::optional<MaskFunction> f = std::nullopt) {
  Column c{std::move(name), std::move(type), cls, std::nullopt};
  if (f) c.mask = ColumnMask{*f, 4, "pii-" + c.name};
  return c;
}

std::shared_ptr<const Catalog> TestCatalog() {
  auto cat = std::make_shared<Catalog>();
  const std::string text = "\"pg_catalog\".\"text\"", int4 = "\"pg_catalog\".\"int4\"",
                    varchar = "\"pg_catalog\".\"varchar\"", jsonb = "\"pg_catalog\".\"jsonb\"";
  cat->AddRelation(
      {"public",
       "customers",
       'r',
       {Col("id", int4, ValueClass::kOther), Col("name", text, ValueClass::kText),
        Col("email", varchar, ValueClass::kText, MaskFunction::kPartial),
        Col("ssn", text, ValueClass::kText, MaskFunction::kRedact),
        Col("password_hash", text, ValueClass::kText, MaskFunction::kHash),
        Col("birth", "\"pg_catalog\".\"date\"", ValueClass::kOther, MaskFunction::kRedact),
        Col("profile", jsonb, ValueClass::kJson, MaskFunction::kRedact)},
       "",
       false});
  cat->AddRelation(
      {"public",
       "orders",
       'r',
       {Col("id", int4, ValueClass::kOther), Col("customer_id", int4, ValueClass::kOther),
        Col("note", text, ValueClass::kText)},
       "",
       false});
  cat->AddRelation({"public",
                    "v_customers",
                    'v',
                    {Col("id", int4, ValueClass::kOther), Col("email", varchar, ValueClass::kText)},
                    " SELECT customers.id, customers.email FROM public.customers;",
                    false});
  cat->AddRelation({"public",
                    "v_orders",
                    'v',
                    {Col("id", int4, ValueClass::kOther), Col("note", text, ValueClass::kText)},
                    " SELECT orders.id, orders.note FROM public.orders;",
                    false});
  cat->AddRelation({"public",
                    "mv_emails",
                    'm',
                    {Col("email", varchar, ValueClass::kText)},
                    " SELECT customers.email FROM public.customers;",
                    false});
  cat->AddRelation(
      {"public",
       "pgbench_accounts",
       'r',
       {Col("aid", int4, ValueClass::kOther), Col("abalance", int4, ValueClass::kOther),
        Col("filler", "\"pg_catalog\".\"bpchar\"", ValueClass::kText, MaskFunction::kRedact)},
       "",
       false});
  cat->AddRoutine({"public", "safe_fn", "sql", "SELECT count(*) FROM public.orders", false});
  Routine leaky{"public", "leaky_fn", "sql", "SELECT email FROM public.customers", false};
  leaky.return_type = "character varying";
  cat->AddRoutine(leaky);
  // SQL functions expanded through their bodies.
  Routine by_id{"public", "email_of", "sql",
                "SELECT email FROM customers WHERE id = $1 AND name = who", false};
  by_id.args = {{'i', "integer", "id_"}, {'i', "text", "who"}};
  by_id.return_type = "text";
  by_id.strict = true;
  cat->AddRoutine(by_id);
  Routine rows{"public", "customer_rows", "sql",
               "BEGIN ATOMIC\n SELECT customers.id, customers.name, customers.email, customers.ssn,"
               " customers.password_hash, customers.birth, customers.profile FROM public.customers "
               "WHERE (customers.id > customer_rows.min_id);\nEND",
               false};
  rows.atomic = true;
  rows.returns_set = true;
  rows.args = {{'i', "integer", "min_id"}};
  rows.return_type = "public.customers";
  rows.return_type_kind = 'c';
  rows.return_schema = "public";
  rows.return_relation = "customers";
  cat->AddRoutine(rows);
  Routine table{"public", "pairs", "sql", "SELECT id, ssn FROM customers", false};
  table.returns_set = true;
  table.args = {{'t', "integer", "cid"}, {'t', "text", "s"}};
  table.return_type = "record";
  cat->AddRoutine(table);
  Routine dflt{"public", "dflt_fn", "sql", "SELECT ssn FROM customers WHERE id = a + b", false};
  dflt.args = {{'i', "integer", "a"}, {'i', "integer", "b"}};
  dflt.defaults = 1;
  dflt.return_type = "text";
  cat->AddRoutine(dflt);
  Routine definer{"public", "definer_fn", "sql", "SELECT ssn FROM customers", false};
  definer.security_definer = true;
  definer.return_type = "text";
  cat->AddRoutine(definer);
  Routine ret{"public", "ret_fn", "sql", "RETURN (SELECT max(ssn) FROM public.customers)", false};
  ret.atomic = true;
  ret.return_type = "text";
  cat->AddRoutine(ret);
  cat->AddRoutine({"public", "calls_leaky", "plpgsql", "BEGIN RETURN leaky_fn(); END", false});
  cat->AddRoutine({"public", "dyn", "plpgsql", "BEGIN EXECUTE $1; END", false});
  cat->AddRoutine({"public", "py", "plpython3u", "return 1", false});
  cat->AddRoutine({"public", "digest", "c", "pg_digest", true});
  for (const char* f :
       {"safe_fn", "leaky_fn",  "calls_leaky", "dyn",           "py",           "digest",
        "count",   "max",       "email_of",    "customer_rows", "pairs",        "definer_fn",
        "ret_fn",  "num_nulls", "length",      "row_to_json",   "query_to_xml", "current_query",
        "f",       "lower",     "dflt_fn"})
    cat->AddFunctionName(f);
  for (const char* r : {"pg_class", "pg_stats", "pg_stat_activity", "columns"})
    cat->AddSystemRelation(r);
  return cat;
}

Options Keyed() {
  return {std::string(128, 'a'), std::string(128, 'b')};
}

Result Rw(std::string_view sql, Options o = Keyed()) {
  Rewriter r(TestCatalog(), std::move(o));
  Result res = r.Rewrite(sql);
  if (std::getenv("DBW_PRINT_REWRITES") != nullptr)
    std::cerr << sql << "\n  => " << static_cast<int>(res.outcome) << " " << res.sql << res.reason
              << "\n";
  return res;
}

bool Rewritten(const Result& r) {
  return r.outcome == Result::Outcome::kRewritten;
}
bool Refused(const Result& r) {
  return r.outcome == Result::Outcome::kRefused;
}

TEST(MaskRewrite, StatementsWithoutMaskedTablesPassUnchanged) {
  for (const char* sql :
       {"SELECT 1", "SELECT * FROM orders WHERE id = $1",
        "UPDATE orders SET note = 'x' WHERE id = 1", "BEGIN", "SET x = 1", "SELECT * FROM v_orders",
        "SELECT safe_fn()", "SELECT digest('a')", "CREATE VIEW v2 AS SELECT email FROM customers",
        "CREATE FUNCTION f() RETURNS text AS 'SELECT email FROM customers' "
        "LANGUAGE sql"})
    EXPECT_EQ(Rw(sql).outcome, Result::Outcome::kUnchanged) << sql;
}

TEST(MaskRewrite, ReadsOfMaskedTablesGoThroughTheMaskingProjection) {
  Result r = Rw("SELECT email FROM customers WHERE email LIKE 'a%'");
  ASSERT_TRUE(Rewritten(r)) << r.reason;
  EXPECT_NE(r.sql.find("FROM (SELECT id, name, CASE WHEN"), std::string::npos) << r.sql;
  EXPECT_NE(r.sql.find(") customers WHERE email LIKE 'a%'"), std::string::npos) << r.sql;
  EXPECT_NE(std::find(r.masked_columns.begin(), r.masked_columns.end(), "public.customers.email"),
            r.masked_columns.end());
}

TEST(MaskRewrite, EveryRouteToAMaskedTableIsRewritten) {
  for (const char* sql :
       {"SELECT c FROM customers c",
        "SELECT row_to_json(c) FROM public.customers AS c",
        "SELECT (SELECT max(ssn) FROM customers)",
        "SELECT 1 UNION SELECT length(ssn) FROM customers",
        "WITH x AS (SELECT * FROM customers) SELECT * FROM x",
        "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id",
        "SELECT * FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE ssn > '5')",
        "SELECT * FROM customers TABLESAMPLE bernoulli (50)",
        "TABLE customers",
        "CREATE TEMP TABLE t AS SELECT * FROM customers",
        "SELECT * INTO t2 FROM customers",
        "INSERT INTO orders (note) SELECT email FROM customers",
        "DECLARE c CURSOR FOR SELECT ssn FROM customers",
        "PREPARE p AS SELECT ssn FROM customers",
        "COPY customers TO STDOUT",
        "COPY customers (email, id) TO STDOUT WITH (FORMAT csv)",
        "COPY (SELECT * FROM customers) TO STDOUT",
        "SELECT * FROM v_customers",
        "SELECT * FROM mv_emails",
        "SELECT public.customers.ssn FROM public.customers",
        "SELECT * FROM orders, LATERAL (SELECT ssn FROM customers WHERE id = customer_id) s",
        "EXPLAIN ANALYZE SELECT ssn FROM customers"}) {
    Result r = Rw(sql, Options{});
    EXPECT_TRUE(Rewritten(r)) << sql << ": " << r.reason;
  }
}

TEST(MaskRewrite, WithNamesShadowTablesOnlyWhereTheyAreVisible) {
  Result cte = Rw("WITH customers AS (SELECT 1 AS email) SELECT email FROM customers");
  EXPECT_EQ(cte.outcome, Result::Outcome::kUnchanged);
  // A non-recursive WITH item does not see later items: this reads the table.
  Result earlier =
      Rw("WITH a AS (SELECT email FROM customers), customers AS (SELECT 1) SELECT * FROM a");
  EXPECT_TRUE(Rewritten(earlier)) << earlier.reason;
}

TEST(MaskRewrite, DataModifyingStatementsMaskTheirTargetWhereTheyReadIt) {
  Result u = Rw("UPDATE customers SET name = email WHERE ssn LIKE '1%' RETURNING *");
  ASSERT_TRUE(Rewritten(u)) << u.reason;
  EXPECT_EQ(u.sql.find("name = email"), std::string::npos) << u.sql;
  EXPECT_EQ(u.sql.find("WHERE ssn"), std::string::npos) << u.sql;
  EXPECT_EQ(u.sql.find("RETURNING *"), std::string::npos) << u.sql;
  Result d = Rw("DELETE FROM customers c WHERE c.ssn = '1' RETURNING c");
  ASSERT_TRUE(Rewritten(d)) << d.reason;
  EXPECT_EQ(d.sql.find("c.ssn = '1'"), std::string::npos) << d.sql;
  EXPECT_NE(d.sql.find("__dbw_row"), std::string::npos) << d.sql;
  Result ins =
      Rw("INSERT INTO customers (id, email) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = "
         "customers.ssn RETURNING email");
  ASSERT_TRUE(Rewritten(ins)) << ins.reason;
  EXPECT_EQ(ins.sql.find("name = customers.ssn"), std::string::npos) << ins.sql;
  // The column an UPDATE sets is a name, not a read; excluded.* are the client's own values.
  Result set = Rw("UPDATE customers SET email = 'x' WHERE id = 1");
  EXPECT_EQ(set.outcome, Result::Outcome::kUnchanged) << set.sql;
  // A column renamed by a nearer FROM item's alias list is that item's, not the target's; the
  // same name without the rename is the target's (correlated) and is masked.
  Result renamed = Rw(
      "DELETE FROM customers WHERE id IN (SELECT o.id FROM orders AS o(id, ssn) WHERE ssn = 'x')");
  EXPECT_EQ(renamed.outcome, Result::Outcome::kUnchanged) << renamed.sql;
  Result correlated =
      Rw("DELETE FROM customers WHERE id IN (SELECT o.id FROM orders AS o WHERE ssn = 'x')");
  ASSERT_TRUE(Rewritten(correlated)) << correlated.reason;
  EXPECT_EQ(correlated.sql.find("WHERE ssn = 'x'"), std::string::npos) << correlated.sql;
  // A subquery's own table column of the same name is not the target's.
  Result inner =
      Rw("DELETE FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE email = 'x')");
  ASSERT_TRUE(Rewritten(inner));
}

TEST(MaskRewrite, WhatRewritingCannotReachIsRefusedWithTheRule) {
  struct Case {
    const char* sql;
    const char* why;
  } cases[] = {
      {"SELECT query_to_xml('select email from customers', true, true, '')", "query_to_xml"},
      {"SELECT * FROM pg_stats", "pg_stats"},
      {"SELECT query FROM pg_catalog.pg_stat_activity", "pg_stat_activity"},
      {"SELECT definer_fn()", "SECURITY DEFINER"},
      {"SELECT calls_leaky()", "public.calls_leaky"},
      {"SELECT dyn('x')", "EXECUTE"},
      {"SELECT py()", "plpython3u"},
      {"DO $$BEGIN PERFORM email FROM customers; END$$", "customers"},
      {"DO $$BEGIN EXECUTE 'select 1'; END$$", "EXECUTE"},
      {"ALTER TABLE customers ADD COLUMN e2 text GENERATED ALWAYS AS (email) STORED",
       "ALTER TABLE"},
      {"CREATE UNIQUE INDEX ON customers (ssn)", "index"},
      {"EXPLAIN SELECT password_hash FROM customers", "key"},
      {"SELECT current_query()", "current_query"},
      {"UPDATE v_customers SET email = 'x'", "view"},
  };
  for (const Case& c : cases) {
    Result r = Rw(c.sql);
    EXPECT_TRUE(Refused(r)) << c.sql << " => " << r.sql;
    EXPECT_NE(r.reason.find(c.why), std::string::npos) << c.sql << ": " << r.reason;
  }
  // Without a key a hash rule masks with the marker, as the result layer does.
  Result hash = Rw("SELECT password_hash FROM customers", Options{});
  ASSERT_TRUE(Rewritten(hash));
  EXPECT_EQ(hash.sql.find("sha256"), std::string::npos);
  EXPECT_NE(hash.sql.find("'[redacted]'"), std::string::npos);
  Result leak = Rw("SELECT calls_leaky()");
  EXPECT_EQ(leak.rule_id, "pii-email, pii-ssn, pii-password_hash, pii-birth, pii-profile");
}

TEST(MaskRewrite, SqlFunctionsAreExpandedThroughTheirBodies) {
  // In an expression: a scalar subquery over the rewritten body, its arguments a FROM item.
  Result r = Rw("SELECT email_of(o.customer_id, 'x') FROM orders o WHERE leaky_fn() LIKE 'a%'");
  ASSERT_TRUE(Rewritten(r)) << r.reason;
  EXPECT_NE(r.sql.find("(SELECT 1, o.customer_id::int, 'x'::text) __dbw_f0(p0, p1, p2)"),
            std::string::npos)
      << r.sql;
  EXPECT_NE(r.sql.find("WHERE id = __dbw_f0.p1 AND name = __dbw_f0.p2"), std::string::npos)
      << r.sql;
  EXPECT_NE(r.sql.find("pg_catalog.num_nulls(__dbw_f0.p1, __dbw_f0.p2) OPERATOR(pg_catalog.=) 0"),
            std::string::npos)
      << r.sql;
  EXPECT_EQ(r.sql.find("FROM customers WHERE"), std::string::npos) << r.sql;  // wrapped
  EXPECT_NE(std::find(r.masked_columns.begin(), r.masked_columns.end(), "public.customers.email"),
            r.masked_columns.end());
  // In FROM: a LATERAL subquery with the declared columns, named as the call was.
  r = Rw("SELECT c.name, c.email FROM customer_rows(1) c");
  ASSERT_TRUE(Rewritten(r)) << r.reason;
  EXPECT_NE(
      r.sql.find("LATERAL (SELECT __dbw_r0.c1::int AS id, __dbw_r0.c2::pg_catalog.text AS name"),
      std::string::npos)
      << r.sql;
  EXPECT_NE(r.sql.find("customers.id > __dbw_f0.p1"), std::string::npos) << r.sql;
  EXPECT_NE(r.sql.find(") c"), std::string::npos) << r.sql;
  r = Rw("SELECT s FROM pairs() WHERE s LIKE '1%'");
  ASSERT_TRUE(Rewritten(r)) << r.reason;
  EXPECT_NE(r.sql.find("__dbw_r0.c2::text AS s FROM (SELECT 1) __dbw_f0(p0) CROSS JOIN LATERAL"),
            std::string::npos)
      << r.sql;
  EXPECT_NE(r.sql.find(") pairs WHERE s LIKE '1%'"), std::string::npos) << r.sql;
  ASSERT_TRUE(Rewritten(Rw("SELECT ret_fn()")));
  ASSERT_TRUE(Rewritten(Rw("SELECT dflt_fn(1, 2)")));
  // Functions that read nothing masked are left as written.
  EXPECT_EQ(Rw("SELECT safe_fn()").outcome, Result::Outcome::kUnchanged);
  // What cannot be expanded is refused.
  for (const char* sql :
       {"SELECT customer_rows(1)", "SELECT definer_fn()",
        "SELECT * FROM ROWS FROM (customer_rows(1))",
        "SELECT * FROM customer_rows(1) WITH ORDINALITY", "SELECT email_of(who => 'x', id_ => 1)",
        "SELECT dflt_fn(1)", "SELECT * FROM dflt_fn(1)"}) {
    Result refused = Rw(sql);
    EXPECT_TRUE(Refused(refused)) << sql << " " << refused.sql;
  }
}

TEST(MaskRewrite, MaskingExpressionsNameOnlyPgCatalogFunctions) {
  Result r = Rw("SELECT * FROM customers");
  ASSERT_TRUE(Rewritten(r));
  // No operator and no unqualified function: a session's search_path cannot redirect them.
  for (const char* op : {" || ", " >= ", " > ", " = "})
    EXPECT_EQ(r.sql.find(op), std::string::npos) << op << " in " << r.sql;
  EXPECT_NE(r.sql.find("pg_catalog.sha256"), std::string::npos);
  EXPECT_NE(r.sql.find(std::string(128, 'a')), std::string::npos);
}

TEST(MaskRewrite, NamesTheCatalogHasNotSeenAreRefused) {
  // Created in the same query string (or since the catalog was read): unknown reads.
  Result view = Rw("CREATE TEMP VIEW v AS SELECT ssn FROM customers; SELECT * FROM v");
  EXPECT_TRUE(Refused(view));
  EXPECT_NE(view.reason.find("\"v\" is not in the catalog"), std::string::npos) << view.reason;
  EXPECT_TRUE(Refused(Rw("SELECT brand_new_function()")));
  // System relations are known by name.
  EXPECT_EQ(Rw("SELECT relname FROM pg_class").outcome, Result::Outcome::kUnchanged);
  EXPECT_EQ(Rw("SELECT * FROM information_schema.columns").outcome, Result::Outcome::kUnchanged);
}

TEST(MaskRewrite, OnlyChangedStatementsAreDeparsed) {
  Result r = Rw("SELECT  1 /* kept */; SELECT ssn FROM customers; SET  x = 1");
  ASSERT_TRUE(Rewritten(r)) << r.reason;
  EXPECT_EQ(r.sql.rfind("SELECT  1 /* kept */;\n", 0), 0u) << r.sql;
  EXPECT_NE(r.sql.find(";\n SET  x = 1"), std::string::npos) << r.sql;
}

TEST(MaskRewrite, CopyOptionsTheDeparserCannotPrintAreRefused) {
  // libpg_query's deparser would dereference the missing value (the server refuses it anyway).
  for (const char* o :
       {"format", "delimiter", "null", "quote", "escape", "encoding", "force_quote"})
    EXPECT_TRUE(Refused(Rw(std::string("COPY customers TO STDOUT (") + o + ")"))) << o;
  EXPECT_TRUE(Rewritten(Rw("COPY customers TO STDOUT (FORMAT csv, HEADER)")));
}

TEST(MaskRewrite, UnparseableTextIsRefused) {
  EXPECT_TRUE(Refused(Rw("SELEC email FROM customers")));
  EXPECT_TRUE(Refused(Rw(std::string_view("SELECT 1\0", 9))));
}

// Prints what the rewriter makes of DBW_REWRITE_SQL (a development aid; skipped without it).
TEST(MaskRewriteDev, FromEnv) {
  const char* s = std::getenv("DBW_REWRITE_SQL");
  if (s == nullptr) GTEST_SKIP() << "set DBW_REWRITE_SQL to print its rewrite";
  Rewriter r(TestCatalog(), std::getenv("DBW_REWRITE_NOKEY") ? Options{} : Keyed());
  Result res = r.Rewrite(s);
  std::cerr << static_cast<int>(res.outcome) << " " << res.sql << res.reason << "\n";
}

}  // namespace
}  // namespace dbw::sql::mask
namespace dbw::sql::mask {
namespace {
TEST(MaskRewrite, EveryBuiltinTypeCastDeparsesToValidSql) {
  auto cat = std::make_shared<Catalog>();
  const char* types[] = {"bool",    "int2",      "int4",        "int8",     "float4", "float8",
                         "numeric", "bpchar",    "varchar",     "text",     "date",   "time",
                         "timetz",  "timestamp", "timestamptz", "interval", "bit",    "varbit",
                         "json",    "jsonb",     "uuid",        "bytea",    "inet",   "_text",
                         "name",    "char",      "money",       "xml",      "oid"};
  for (const char* t : types) {
    const bool text = std::string(t) == "bpchar" || std::string(t) == "varchar" ||
                      std::string(t) == "text" || std::string(t) == "name" ||
                      std::string(t) == "char";
    const bool json = std::string(t) == "json" || std::string(t) == "jsonb";
    std::string type = std::string("\"pg_catalog\".\"") + t + "\"";
    cat->AddRelation({"public",
                      std::string("t_") + t,
                      'r',
                      {Column{"plain_col", type, ValueClass::kOther, std::nullopt},
                       Column{"secret_col", type,
                              text   ? ValueClass::kText
                              : json ? ValueClass::kJson
                                     : ValueClass::kOther,
                              ColumnMask{MaskFunction::kPartial, 4, "r"}}},
                      "",
                      false});
  }
  for (const char* t : types) {
    for (const char* q : {"SELECT plain_col, secret_col FROM t_%s", "SELECT plain_col FROM t_%s"}) {
      char sql[128];
      std::snprintf(sql, sizeof(sql), q, t);
      Rewriter r(cat, Keyed());
      Result res = r.Rewrite(sql);
      ASSERT_TRUE(Rewritten(res)) << sql << ": " << res.reason;
      // The output parses (a syntax error would be refused as unreadable).
      Rewriter again(cat, Keyed());
      Result back = again.Rewrite(res.sql);
      EXPECT_EQ(back.reason.find("cannot be analysed"), std::string::npos)
          << sql << " => " << res.sql << ": " << back.reason;
    }
  }
}
}  // namespace
}  // namespace dbw::sql::mask
