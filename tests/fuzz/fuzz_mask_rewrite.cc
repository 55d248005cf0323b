// Masking by reference: arbitrary statement text against a fixed catalog with masked columns,
// views, routines expanded through their bodies, and a name in two schemas resolved by the
// search_path (the input's first byte). Whatever the input, the rewriter answers without crashing
// (ASan, UBSan), and its output goes through the rewriter again. The output need not parse:
// libpg_query's deparser drops what the server would refuse anyway (a type modifier that is an
// expression: `::r(a&b)` comes out as `::r()`), and the server then rejects the text: nothing runs.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/sql/mask_rewrite.h"

namespace {

namespace mask = dbw::sql::mask;

std::shared_ptr<const mask::Catalog> FuzzCatalog() {
  auto cat = std::make_shared<mask::Catalog>();
  const std::string text = "\"pg_catalog\".\"text\"", int4 = "\"pg_catalog\".\"int4\"";
  auto col = [&](const char* n, bool is_text, std::optional<mask::MaskFunction> f) {
    mask::Column c{n, is_text ? text : int4,
                   is_text ? mask::ValueClass::kText : mask::ValueClass::kOther, std::nullopt};
    if (f) c.mask = mask::ColumnMask{*f, 4, "rule"};
    return c;
  };
  cat->AddRelation(
      {"public",
       "customers",
       'r',
       {col("id", false, std::nullopt), col("name", true, std::nullopt),
        col("email", true, mask::MaskFunction::kPartial),
        col("ssn", true, mask::MaskFunction::kRedact), col("pw", true, mask::MaskFunction::kHash),
        col("n", false, mask::MaskFunction::kNull)},
       "",
       false});
  cat->AddRelation({"public",
                    "orders",
                    'r',
                    {col("id", false, std::nullopt), col("customer_id", false, std::nullopt)},
                    "",
                    false});
  cat->AddRelation({"public",
                    "v",
                    'v',
                    {col("id", false, std::nullopt), col("email", true, std::nullopt)},
                    " SELECT customers.id, customers.email FROM public.customers;",
                    false});
  cat->AddRelation({"scratch",
                    "customers",
                    'r',
                    {col("id", false, std::nullopt), col("email", true, std::nullopt)},
                    "",
                    false});
  mask::Routine f{"public", "f", "sql", "SELECT email FROM customers", false};
  f.return_type = "text";
  cat->AddRoutine(f);
  // Expanded through their bodies: arguments by name and number, a set of rows, a row type.
  mask::Routine g{"public", "g", "sql", "SELECT email FROM customers WHERE id = i OR id = $2",
                  false};
  g.args = {{'i', "integer", "i"}, {'i', "integer", "j"}};
  g.return_type = "text";
  g.strict = true;
  cat->AddRoutine(g);
  mask::Routine rows{"public", "rows", "sql",
                     "BEGIN ATOMIC SELECT customers.id, customers.ssn FROM public.customers "
                     "WHERE customers.id > rows.k; END",
                     false};
  rows.atomic = true;
  rows.returns_set = true;
  rows.args = {{'i', "integer", "k"}, {'t', "integer", "a"}, {'t', "text", "b"}};
  rows.return_type = "record";
  cat->AddRoutine(rows);
  mask::Routine whole{"public", "whole", "sql", "RETURN (SELECT c FROM customers c LIMIT 1)",
                      false};
  whole.atomic = true;
  whole.return_type = "public.customers";
  whole.return_type_kind = 'c';
  whole.return_schema = "public";
  whole.return_relation = "customers";
  cat->AddRoutine(whole);
  for (const char* f : {"f", "g", "rows", "whole", "count", "lower", "substr", "row_to_json",
                        "set_config", "num_nulls"})
    cat->AddFunctionName(f);
  cat->AddSystemRelation("pg_class");
  return cat;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const mask::Catalog> catalog = FuzzCatalog();
  const mask::Options options{std::string(128, 'a'), std::string(128, 'b')};
  // The first byte picks the search_path: not known, public first, scratch first, or both.
  std::vector<dbw::sql::SearchPath> paths;
  if (size > 0) {
    const uint8_t pick = data[0] % 4;
    if (pick == 1 || pick == 3) paths.push_back({"public", "scratch"});
    if (pick == 2 || pick == 3) paths.push_back({"scratch", "public"});
    ++data;
    --size;
  }
  std::string_view sql(reinterpret_cast<const char*>(data), size);
  mask::Rewriter rewriter(catalog, options);
  mask::Result r = rewriter.Rewrite(sql, paths);
  if (r.outcome != mask::Result::Outcome::kRewritten) return 0;
  mask::Rewriter again(catalog, options);
  mask::Result r2 = again.Rewrite(r.sql);
  if (r2.outcome == mask::Result::Outcome::kRewritten && r2.sql.empty()) std::abort();
  return 0;
}
