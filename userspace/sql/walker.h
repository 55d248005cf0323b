// Facts of one statement read from its libpg_query parse tree (a RawStmt's "stmt" node).
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/sql/facts.h"
#include "userspace/sql/json_tree.h"
#include "userspace/sql/predicates.h"

namespace dbw::sql {

// Fills command, object_kind, tables, functions and risks of one StatementFacts. Sets
// *literal_sensitive when a fact depended on a literal's value. Utility statements (DDL, roles,
// session commands) are described by ddl.cc through the public members.
class Walker {
 public:
  Walker(StatementFacts* facts, bool* literal_sensitive);
  void Statement(tree::element stmt);

  void Top(Command c, std::string kind = {});
  void Risk(uint32_t r) { f_->risks |= r; }
  void Read(tree::object range_var);
  void Written(tree::object range_var);
  void WrittenName(tree::element list_of_strings);
  // Marks an unbounded SELECT in body[query_field], if it holds one.
  void Bounded(tree::object body, std::string_view query_field);
  void Walk(tree::element e);
  void WalkFields(tree::object o, std::initializer_list<std::string_view> skip = {});
  // A FuncCall's body: records the function and the risks its name carries.
  void Function(tree::object call);
  StatementFacts* facts() { return f_; }
  // A fact just derived depended on a literal's value: the statement is analysed uncached.
  void LiteralSensitive() { *sensitive_ = true; }
  // CREATE FUNCTION/PROCEDURE bodies given as text (`AS '...'`), for the analyzer to analyse
  // once this statement's tree is no longer in use: language ("sql", "plpgsql") and text.
  struct Body {
    std::string language;
    std::string text;
  };
  std::vector<Body>& bodies() { return bodies_; }
  // The statement in body["query"] (PREPARE, EXPLAIN, DECLARE, CREATE TABLE AS), on its own.
  std::shared_ptr<StatementFacts> Inner(tree::object body);

 private:
  void TopSelect(tree::object body);
  void Copy(tree::object body);
  void CopyOptions(tree::object body);
  void Prepare(tree::object body);
  void Explain(tree::object body);
  bool ExplainOptionOn(tree::object def);
  void Absorb(const StatementFacts& inner, bool with_risks);
  void Dml(std::string_view type, tree::object body, bool nested);
  // A WHEN MATCHED arm that updates or deletes without a restricting condition of its own.
  bool MergeChangesUnrestricted(tree::object body, const RelationScope& scope);
  void Node(std::string_view type, tree::object body);
  bool IsCteRef(tree::object rv) const;
  void SetConfig(tree::object call);
  void AddFunctionName(const std::string& name);

  // Runs `f` with the CTE names of body's WITH clause in scope, after walking the CTE queries
  // (a non-recursive CTE sees only the ones before it).
  template <typename F>
  void WithScope(tree::object body, F&& f) {
    const size_t mark = scope_.size();
    tree::object with;
    tree::array ctes;
    if (tree::GetObject(body, "withClause", &with) && tree::GetArray(with, "ctes", &ctes)) {
      bool recursive = tree::GetBool(with, "recursive");
      auto name_of = [](tree::element c) {
        std::string_view type;
        tree::object b;
        return tree::AsNode(c, &type, &b) ? tree::GetString(b, "ctename") : std::string_view();
      };
      if (recursive)
        for (tree::element c : ctes) scope_.push_back(name_of(c));
      for (tree::element c : ctes) {
        std::string_view type;
        tree::object b;
        tree::element query;
        if (tree::AsNode(c, &type, &b) && tree::Get(b, "ctequery", &query)) {
          ++cte_depth_;
          Walk(query);
          --cte_depth_;
        }
        if (!recursive) scope_.push_back(name_of(c));
      }
    }
    f();
    scope_.resize(mark);
  }

  StatementFacts* f_;
  bool* sensitive_;
  std::vector<std::string_view> scope_;  // CTE names visible here
  std::vector<Body> bodies_;
  int cte_depth_ = 0;  // > 0 while inside a CTE's query
};

// Describes statements that are neither queries nor DML: DDL, GRANT, roles, SET, ...
void DescribeUtility(std::string_view type, tree::object body, Walker* w);

// "OBJECT_MATVIEW" → "MATERIALIZED VIEW", "OBJECT_TABLE" → "TABLE", ...
std::string ObjectKindName(std::string_view object_type);

}  // namespace dbw::sql
