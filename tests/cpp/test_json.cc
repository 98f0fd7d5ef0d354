#include <cmath>
#include <string>

#include "test_harness.h"
#include "util/check.h"
#include "weights/json.h"

using pagedllm::JsonValue;
using pagedllm::StatusCode;

namespace {

JsonValue parse_ok(const std::string& text) {
  auto r = JsonValue::parse(text);
  if (!r.ok()) {
    PAGEDLLM_TEST_FAIL_(true, "parse failed for " + text + ": " + r.status().message());
  }
  return r.value();
}

// The string value of a document that is one JSON string (a copy: the document is temporary).
std::string parse_str(const std::string& text) { return parse_ok(text).as_string(); }

void expect_rejected(const std::string& text, const std::string& what) {
  auto r = JsonValue::parse(text);
  if (r.ok()) {
    PAGEDLLM_TEST_FAIL_(false, "accepted malformed JSON (" + what + "): " + text);
    return;
  }
  EXPECT_EQ(static_cast<int>(r.status().code()), static_cast<int>(StatusCode::kCorruptData));
  EXPECT_TRUE(r.status().message().find("at byte") != std::string::npos);
}

}  // namespace

TEST(Json, Scalars) {
  EXPECT_TRUE(parse_ok("null").is_null());
  EXPECT_TRUE(parse_ok("true").as_bool());
  EXPECT_FALSE(parse_ok(" false ").as_bool());
  EXPECT_EQ(parse_str("\"hi\""), std::string("hi"));
  EXPECT_EQ(parse_ok("42").as_int(), 42);
  EXPECT_EQ(parse_ok("-0").as_number(), 0.0);
  EXPECT_EQ(parse_ok("-17").as_int(), -17);
  EXPECT_EQ(parse_ok(" \t\r\n7\n").as_int(), 7);
}

TEST(Json, Numbers) {
  EXPECT_EQ(parse_ok("3.25").as_number(), 3.25);
  EXPECT_EQ(parse_ok("1e-06").as_number(), 1e-6);
  EXPECT_EQ(parse_ok("1E+3").as_number(), 1000.0);
  EXPECT_EQ(parse_ok("-2.5e2").as_number(), -250.0);
  EXPECT_EQ(parse_ok("500000.0").as_int(), 500000);
  EXPECT_EQ(parse_ok("9007199254740992").as_int(), 9007199254740992LL);
  EXPECT_EQ(parse_ok("0.1").as_number(), 0.1);
  EXPECT_EQ(parse_ok("1e-400").as_number(), 0.0);
  EXPECT_TRUE(std::isinf(parse_ok("1e400").as_number()));
  EXPECT_TRUE(std::isnan(parse_ok("NaN").as_number()));
  EXPECT_TRUE(parse_ok("Infinity").as_number() > 0 && std::isinf(parse_ok("Infinity").as_number()));
  EXPECT_TRUE(parse_ok("-Infinity").as_number() < 0);
  EXPECT_TRUE(std::isnan(parse_ok("[NaN]").as_array()[0].as_number()));
}

TEST(Json, NonIntegerAsIntIsACheck) {
  JsonValue v = parse_ok("1.5");
  EXPECT_CHECK_FAILS(v.as_int());
  EXPECT_CHECK_FAILS(parse_ok("1e300").as_int());
  EXPECT_CHECK_FAILS(parse_ok("\"1\"").as_int());
  EXPECT_CHECK_FAILS(parse_ok("1").as_string());
  EXPECT_CHECK_FAILS(parse_ok("{}").as_array());
  EXPECT_CHECK_FAILS(parse_ok("[]").as_object());
  EXPECT_CHECK_FAILS(parse_ok("null").as_bool());
}

TEST(Json, StringEscapes) {
  JsonValue v = parse_ok(R"("a\"b\\c\/d\be\ff\ng\rh\ti")");
  EXPECT_EQ(v.as_string(), std::string("a\"b\\c/d\be\ff\ng\rh\ti"));
  EXPECT_EQ(parse_str(R"("\u0041\u00e9\u20AC")"), std::string("A\xC3\xA9\xE2\x82\xAC"));
  EXPECT_EQ(parse_str(R"("\ud83d\ude00")"), std::string("\xF0\x9F\x98\x80"));
  EXPECT_EQ(parse_str(R"("\u0000x")"), std::string("\0x", 2));
  EXPECT_EQ(parse_str("\"caf\xC3\xA9 \xF0\x9F\x98\x80\""),
            std::string("caf\xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_EQ(parse_str("\"\""), std::string());
}

TEST(Json, Nesting) {
  JsonValue v = parse_ok(R"({"a": [1, {"b": [true, null, "x"]}, []], "c": {}, "d": -1.5})");
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.as_object().size(), 3u);
  const JsonValue* a = v.find("a");
  ASSERT_TRUE(a && a->is_array());
  EXPECT_EQ(a->as_array().size(), 3u);
  EXPECT_EQ(a->as_array()[0].as_int(), 1);
  const JsonValue* b = a->as_array()[1].find("b");
  ASSERT_TRUE(b != nullptr);
  EXPECT_TRUE(b->as_array()[0].as_bool());
  EXPECT_TRUE(b->as_array()[1].is_null());
  EXPECT_EQ(b->as_array()[2].as_string(), std::string("x"));
  EXPECT_TRUE(a->as_array()[2].as_array().empty());
  EXPECT_TRUE(v.find("c")->is_object());
  EXPECT_EQ(v.find("d")->as_number(), -1.5);
  EXPECT_TRUE(v.find("missing") == nullptr);
  EXPECT_TRUE(a->find("a") == nullptr);
}

TEST(Json, ModerateDepthAccepted) {
  std::string text = std::string(500, '[') + std::string(500, ']');
  EXPECT_TRUE(JsonValue::parse(text).ok());
}

TEST(Json, ByteOrderMarkSkipped) {
  EXPECT_EQ(parse_ok("\xEF\xBB\xBF{\"a\": 1}").find("a")->as_int(), 1);
}

TEST(Json, RejectsTruncated) {
  expect_rejected("", "empty");
  expect_rejected("   ", "whitespace only");
  expect_rejected("{", "open object");
  expect_rejected("{\"a\"", "key only");
  expect_rejected("{\"a\":", "no value");
  expect_rejected("{\"a\": 1", "unclosed object");
  expect_rejected("[1, 2", "unclosed array");
  expect_rejected("\"abc", "unterminated string");
  expect_rejected("\"abc\\", "unterminated escape");
  expect_rejected("tru", "truncated literal");
  expect_rejected("-", "lone minus");
}

TEST(Json, RejectsBadEscapes) {
  expect_rejected(R"("\x")", "unknown escape");
  expect_rejected(R"("\u12")", "short \\u");
  expect_rejected(R"("\u12G4")", "bad hex");
  expect_rejected(R"("\ud83d")", "lone high surrogate");
  expect_rejected(R"("\ud83dx")", "high surrogate then text");
  expect_rejected(R"("\ud83d\u0041")", "high surrogate then non-low");
  expect_rejected(R"("\ude00")", "lone low surrogate");
  expect_rejected("\"a\tb\"", "raw tab");
  expect_rejected(std::string("\"a\nb\""), "raw newline");
  expect_rejected(std::string("\"a\0b\"", 5), "raw NUL");
  expect_rejected("\"\xC3\"", "truncated UTF-8");
  expect_rejected("\"\xC0\xAF\"", "overlong UTF-8");
  expect_rejected("\"\xED\xA0\x80\"", "UTF-8 encoded surrogate");
  expect_rejected("\"\xFF\"", "invalid UTF-8 byte");
}

TEST(Json, RejectsBadNumbers) {
  expect_rejected("01", "leading zero");
  expect_rejected("-01", "leading zero after minus");
  expect_rejected("1.", "no fraction digits");
  expect_rejected(".5", "no integer part");
  expect_rejected("+1", "plus sign");
  expect_rejected("1e", "empty exponent");
  expect_rejected("1e+", "signless exponent");
  expect_rejected("0x10", "hex");
  expect_rejected("Inf", "partial Infinity");
  expect_rejected("nan", "lowercase nan");
  expect_rejected("- 1", "space after minus");
}

TEST(Json, RejectsStructuralErrors) {
  expect_rejected("[1, 2,]", "trailing comma in array");
  expect_rejected("{\"a\": 1,}", "trailing comma in object");
  expect_rejected("[1 2]", "missing comma");
  expect_rejected("{\"a\" 1}", "missing colon");
  expect_rejected("{a: 1}", "unquoted key");
  expect_rejected("{1: 1}", "number key");
  expect_rejected("['a']", "single quotes");
  expect_rejected("[,]", "lone comma");
  expect_rejected("{\"a\": 1, \"a\": 2}", "duplicate key");
  expect_rejected("{} {}", "two documents");
  expect_rejected("1 x", "trailing garbage");
  expect_rejected("[1]]", "extra bracket");
  expect_rejected("True", "capitalised literal");
  expect_rejected("nulls", "literal with suffix");
  expect_rejected("/* c */ 1", "comment");
}

TEST(Json, RejectsNestingBomb) {
  expect_rejected(std::string(100000, '['), "deep open arrays");
  expect_rejected(std::string(100000, '[') + std::string(100000, ']'), "deep closed arrays");
  std::string objects;
  for (int i = 0; i < 20000; ++i) objects += "{\"a\":";
  expect_rejected(objects, "deep objects");
  expect_rejected(std::string(513, '[') + std::string(513, ']'), "just past the limit");
}

TEST(Json, ErrorNamesOffset) {
  auto r = JsonValue::parse("[1, 2, x]");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().message().find("byte 7") != std::string::npos);
}
