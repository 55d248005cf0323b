// ShapeKey and the scanner behind it: literal-only differences share a key; any structural
// difference (identifier, keyword, operator, quoting) changes it; comments and whitespace runs
// do not count; and literal scrubbing leaves no literal behind.
#include "userspace/sql/shape.h"

#include <string>

#include <gtest/gtest.h>

#include "userspace/sql/analyzer.h"

namespace dbw::sql {
namespace {

void ExpectSame(std::string_view a, std::string_view b) {
  EXPECT_EQ(ShapeKey(a), ShapeKey(b)) << a << "  vs  " << b;
  std::string ca, cb;
  CanonicalShape(a, &ca);
  CanonicalShape(b, &cb);
  EXPECT_EQ(ca, cb) << a << "  vs  " << b;
  EXPECT_EQ(CanonicalShape(a, &ca), ShapeKey(a));
}

void ExpectDifferent(std::string_view a, std::string_view b) {
  EXPECT_NE(ShapeKey(a), ShapeKey(b)) << a << "  vs  " << b;
  std::string ca, cb;
  CanonicalShape(a, &ca);
  CanonicalShape(b, &cb);
  EXPECT_NE(ca, cb) << a << "  vs  " << b;
}

// A number's size class is part of the shape: facts decided by a threshold (a LIMIT that bounds,
// a range bound at a 32-bit domain) differ between the classes.
TEST(ShapeKeyTest, NumbersKeepTheirSizeClass) {
  ExpectDifferent("SELECT * FROM t LIMIT 1000000", "SELECT * FROM t LIMIT 1000001");
  ExpectDifferent("DELETE FROM t WHERE id > -2147483646", "DELETE FROM t WHERE id > -2147483647");
  ExpectDifferent("SELECT * FROM t LIMIT 10", "SELECT * FROM t LIMIT 1e1");
  ExpectSame("SELECT * FROM t LIMIT 000010", "SELECT * FROM t LIMIT 999999");
}

TEST(ShapeKeyTest, LiteralValuesDoNotMatter) {
  ExpectSame("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 987654");
  ExpectSame("SELECT * FROM t WHERE id = 1000001", "SELECT * FROM t WHERE id = 987654321");
  ExpectSame("SELECT * FROM t WHERE id = 2147483647", "SELECT * FROM t WHERE id = 99999999999999");
  ExpectSame("SELECT * FROM t WHERE x = 1.5", "SELECT * FROM t WHERE x = 2.25e10");
  ExpectSame("SELECT * FROM t WHERE x = .5", "SELECT * FROM t WHERE x = 6.");
  ExpectSame("SELECT * FROM t WHERE x = 1e-3", "SELECT * FROM t WHERE x = 7.0");
  ExpectSame("SELECT 'a'", "SELECT 'a much longer string with '' quotes'");
  ExpectSame("SELECT E'x'", "SELECT E'it\\'s \\\\ escaped'");
  ExpectSame("SELECT e'x'", "SELECT e'\\''");
  ExpectSame("SELECT U&'x'", "SELECT U&'d\\0061t'");
  ExpectSame("SELECT B'1'", "SELECT B'101010'");
  ExpectSame("SELECT X'1F'", "SELECT X'DEADBEEF'");
  ExpectSame("SELECT N'a'", "SELECT N'national'");
  ExpectSame("SELECT $$a$$", "SELECT $$it's $1 'quoted'$$");
  ExpectSame("SELECT $fn$a$fn$", "SELECT $fn$ $$ nested $x$ $fn$");
  ExpectSame("SELECT 'a'\n'b'", "SELECT 'continued'\n  -- comment\n'literal'");
  ExpectSame("SELECT interval '1 day'", "SELECT interval '3 hours'");
}

TEST(ShapeKeyTest, StringsNumbersAndLiteralKindsStayDistinct) {
  ExpectDifferent("SELECT 1", "SELECT '1'");
  ExpectDifferent("SELECT 'a'", "SELECT E'a'");
  ExpectDifferent("SELECT 'a'", "SELECT U&'a'");
  ExpectDifferent("SELECT 'a'\n'b'", "SELECT 'a' 'b'");  // continuation vs two literals
  ExpectDifferent("SELECT 1, 2", "SELECT 1");
}

TEST(ShapeKeyTest, StructureMatters) {
  ExpectDifferent("SELECT * FROM t WHERE id = 1", "SELECT * FROM u WHERE id = 1");
  ExpectDifferent("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id > 1");
  ExpectDifferent("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = $1");
  ExpectDifferent("SELECT * FROM t", "select * from t");  // case-sensitive by design
  ExpectDifferent("SELECT * FROM t", "SELECT * FROM \"t\"");
  ExpectDifferent("SELECT * FROM \"a b\"", "SELECT * FROM \"a c\"");
  ExpectDifferent("DELETE FROM t WHERE true", "DELETE FROM t WHERE false");
  ExpectDifferent("SELECT NULL", "SELECT 1");
  ExpectDifferent("SELECT a b", "SELECT ab");
  ExpectDifferent("SELECT $1", "SELECT $2");
  ExpectDifferent("SELECT 1; DROP TABLE t", "SELECT 1");
  ExpectDifferent("SELECT U&\"a\"", "SELECT U&\"b\"");
  // The UESCAPE character changes what the U& text means: it is part of the shape.
  ExpectDifferent("SELECT U&'d!0061' UESCAPE '!'", "SELECT U&'d!0061' UESCAPE '#'");
  // 0x1F is a number then the identifier x1F to the scanner (the parser rejects the junk).
  ExpectDifferent("SELECT 0x1F", "SELECT 0x2A");
  ExpectSame("SELECT 0x1F", "SELECT 7x1F");
}

TEST(ShapeKeyTest, EscapeStringsEndWhereThePostgresLexerEndsThem) {
  // In E'..' a backslash escapes the quote; in '..' it does not.
  ExpectDifferent("SELECT E'\\' ; DROP TABLE t; --'", "SELECT E'x' ; DROP TABLE u; --'");
  ExpectSame("SELECT E'\\' ; DROP TABLE t; --'", "SELECT E'anything'");
  ExpectDifferent("SELECT '\\' ; DROP TABLE t; --'", "SELECT 'x' ; DROP TABLE u; --'");
  // A continued E-string keeps E's escaping rules in its continuation.
  ExpectSame("SELECT E'a'\n'\\' x'", "SELECT E'b'");
}

TEST(ShapeKeyTest, CommentsAndWhitespaceRunsDoNotMatter) {
  ExpectSame("SELECT * FROM t WHERE id = 1", "SELECT  *\n\tFROM t   WHERE id = 2");
  ExpectSame("SELECT * FROM t", "SELECT /* hi */ * -- there\nFROM t");
  ExpectSame("SELECT 1", "/* lead */ SELECT 1 -- trail");
  ExpectSame("SELECT a/**/b", "SELECT a b");
  ExpectSame("SELECT 1 /* a /* nested */ comment */", "SELECT 2");
  ExpectSame("SELECT 1 +-- comment\n 2", "SELECT 1 + 2");
  ExpectSame("SELECT 1 /*/ still a comment */", "SELECT 1");
}

TEST(ShapeKeyTest, HandlesHostileInput) {
  for (std::string s : std::initializer_list<std::string>{
           "'", "E'\\", "$", "$$", "$a$", "/*", "--", "\"", "U&'", "1e", "1.e+", ".", "B'",
           std::string("\0\0'", 3), "$1$", "$a", "\xff\xfe'"}) {
    std::string canon;
    EXPECT_EQ(ShapeKey(s), CanonicalShape(s, &canon)) << s;
    (void)ScrubLiterals(s, ScrubStyle::kQuestionMarks);
  }
  // A NUL byte can never pose as a placeholder.
  ExpectDifferent(std::string("SELECT \0s", 9), "SELECT 'x'");
}

TEST(ScrubTest, ReplacesEveryLiteral) {
  EXPECT_EQ(
      ScrubLiterals("SELECT 'a', 1, E'b', $$c$$ -- x\nFROM t /* y */", ScrubStyle::kQuestionMarks),
      "SELECT '?', ?, E'?', '?' FROM t");
  EXPECT_EQ(ScrubLiterals("COMMENT ON TABLE t IS 'pii' /* x */", ScrubStyle::kParams, 3),
            "COMMENT ON TABLE t IS $3");
  EXPECT_EQ(MaxParamNumber("SELECT $1, $12, '$99'"), 12);
}

TEST(CanonicalTextTest, KeepsLiteralsDropsFormatting) {
  EXPECT_EQ(CanonicalText("  DELETE   FROM t -- all\n WHERE id = 1 /* x */ ;"),
            "delete from t where id = 1 ;");
  EXPECT_EQ(CanonicalText("SELECT 'a  b', $$c$$"), "select 'a  b', $$c$$");
  // Unquoted words fold to lower case as PostgreSQL folds them; literals, quoted names, dollar
  // quotes, E'' contents and the UESCAPE character keep their case.
  EXPECT_EQ(CanonicalText("delete from T where ID = 1"),
            CanonicalText("DELETE FROM t WHERE id = 1"));
  EXPECT_EQ(CanonicalText("SELECT \"MiXed\", 'AbC', E'\\X', $Q$DoLLar$Q$ FROM \"T\""),
            "select \"MiXed\", 'AbC', e'\\X', $Q$DoLLar$Q$ from \"T\"");
  EXPECT_NE(CanonicalText("DELETE FROM \"T\""), CanonicalText("DELETE FROM \"t\""));
  EXPECT_NE(CanonicalText("SELECT 'A'"), CanonicalText("SELECT 'a'"));
  EXPECT_EQ(CanonicalText("SELECT U&'d!0061t!+000061' UESCAPE '!'"),
            "select u&'d!0061t!+000061' uescape '!'");
  EXPECT_NE(CanonicalText("SELECT U&'x' UESCAPE 'Z'"), CanonicalText("SELECT U&'x' UESCAPE 'z'"));
  EXPECT_NE(CanonicalText("DROP TABLE U&\"Z0061\" UESCAPE $$Z$$"),
            CanonicalText("DROP TABLE U&\"Z0061\" UESCAPE $$z$$"));
  // Formatting differs: same text. A literal differs: different text.
  EXPECT_EQ(CanonicalText("DELETE FROM t WHERE id=1"), CanonicalText("DELETE FROM t WHERE id=1\n"));
  EXPECT_NE(CanonicalText("DELETE FROM t WHERE id = 1"),
            CanonicalText("DELETE FROM t WHERE id = 2"));
  EXPECT_NE(CanonicalText("SELECT 'a'"), CanonicalText("SELECT 'b'"));
  // Tokens that only touch without space stay apart from the spaced form where that matters.
  EXPECT_NE(CanonicalText("SELECT a b"), CanonicalText("SELECT ab"));
  // Text that ends inside a comment or literal never equals the complete statement.
  EXPECT_NE(CanonicalText("DROP TABLE t /* open"), CanonicalText("DROP TABLE t"));
  EXPECT_NE(CanonicalText("SELECT 'open"), CanonicalText("SELECT 'open'"));
}

}  // namespace
}  // namespace dbw::sql
