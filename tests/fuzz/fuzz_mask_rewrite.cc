// Masking by reference: arbitrary statement text against a fixed catalog with masked columns,
// views, routines. Whatever the input, the rewriter answers without crashing (ASan, UBSan), and
// its output goes through the rewriter again. The output need not parse: libpg_query's deparser
// drops what the server would refuse anyway (a type modifier that is an expression: `::r(a&b)`
// comes out as `::r()`), and the server then rejects the text: nothing runs.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

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
  cat->AddRoutine({"public", "f", "sql", "SELECT email FROM customers", false});
  for (const char* f : {"f", "count", "lower", "substr", "row_to_json"}) cat->AddFunctionName(f);
  cat->AddSystemRelation("pg_class");
  return cat;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const mask::Catalog> catalog = FuzzCatalog();
  const mask::Options options{std::string(128, 'a'), std::string(128, 'b')};
  std::string_view sql(reinterpret_cast<const char*>(data), size);
  mask::Rewriter rewriter(catalog, options);
  mask::Result r = rewriter.Rewrite(sql);
  if (r.outcome != mask::Result::Outcome::kRewritten) return 0;
  mask::Rewriter again(catalog, options);
  mask::Result r2 = again.Rewrite(r.sql);
  if (r2.outcome == mask::Result::Outcome::kRewritten && r2.sql.empty()) std::abort();
  return 0;
}
