// A minimal test harness for the C++ tests: TEST(Suite, Name) registers a case; EXPECT_* record
// a failure and continue; ASSERT_* record and leave the case. Run all with the
// pagedllm_cpp_tests binary (optionally a substring filter as argv[1]).
#pragma once

#include <cmath>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace pagedllm_test {

struct Case {
  const char* suite;
  const char* name;
  std::function<void()> fn;
};

std::vector<Case>& registry();
void record_failure(const char* file, int line, const std::string& what);
struct AssertionAbort {};

struct Registrar {
  Registrar(const char* suite, const char* name, std::function<void()> fn) {
    registry().push_back({suite, name, std::move(fn)});
  }
};

}  // namespace pagedllm_test

#define TEST(suite, name)                                                        \
  static void suite##_##name##_test();                                           \
  static ::pagedllm_test::Registrar suite##_##name##_registrar(#suite, #name,    \
                                                               suite##_##name##_test); \
  static void suite##_##name##_test()

#define PAGEDLLM_TEST_FAIL_(fatal, msg)                                          \
  do {                                                                           \
    ::pagedllm_test::record_failure(__FILE__, __LINE__, (msg));                  \
    if (fatal) throw ::pagedllm_test::AssertionAbort{};                          \
  } while (0)

#define PAGEDLLM_TEST_BOOL_(cond, fatal)                                         \
  do {                                                                           \
    if (!(cond)) PAGEDLLM_TEST_FAIL_(fatal, std::string("expected: ") + #cond);  \
  } while (0)

#define PAGEDLLM_TEST_CMP_(a, b, op, fatal)                                      \
  do {                                                                           \
    auto&& pt_a_ = (a);                                                          \
    auto&& pt_b_ = (b);                                                          \
    if (!(pt_a_ op pt_b_)) {                                                     \
      std::ostringstream pt_os_;                                                 \
      pt_os_ << "expected " #a " " #op " " #b ", got " << pt_a_ << " vs " << pt_b_; \
      PAGEDLLM_TEST_FAIL_(fatal, pt_os_.str());                                  \
    }                                                                            \
  } while (0)

#define EXPECT_TRUE(c) PAGEDLLM_TEST_BOOL_((c), false)
#define EXPECT_FALSE(c) PAGEDLLM_TEST_BOOL_(!(c), false)
#define ASSERT_TRUE(c) PAGEDLLM_TEST_BOOL_((c), true)
#define ASSERT_FALSE(c) PAGEDLLM_TEST_BOOL_(!(c), true)
#define EXPECT_EQ(a, b) PAGEDLLM_TEST_CMP_(a, b, ==, false)
#define EXPECT_NE(a, b) PAGEDLLM_TEST_CMP_(a, b, !=, false)
#define EXPECT_LT(a, b) PAGEDLLM_TEST_CMP_(a, b, <, false)
#define EXPECT_LE(a, b) PAGEDLLM_TEST_CMP_(a, b, <=, false)
#define EXPECT_GT(a, b) PAGEDLLM_TEST_CMP_(a, b, >, false)
#define EXPECT_GE(a, b) PAGEDLLM_TEST_CMP_(a, b, >=, false)
#define ASSERT_EQ(a, b) PAGEDLLM_TEST_CMP_(a, b, ==, true)
#define ASSERT_LE(a, b) PAGEDLLM_TEST_CMP_(a, b, <=, true)
#define ASSERT_GT(a, b) PAGEDLLM_TEST_CMP_(a, b, >, true)
#define EXPECT_NEAR(a, b, tol)                                                   \
  do {                                                                           \
    double pt_x_ = (a), pt_y_ = (b);                                             \
    if (!(std::fabs(pt_x_ - pt_y_) <= (tol))) {                                  \
      std::ostringstream pt_os_;                                                 \
      pt_os_ << "expected |" #a " - " #b "| <= " << (tol) << ", got " << pt_x_ << " vs " << pt_y_; \
      PAGEDLLM_TEST_FAIL_(false, pt_os_.str());                                  \
    }                                                                            \
  } while (0)
// Expects `stmt` to throw pagedllm::InternalError (a CHECK failure).
#define EXPECT_CHECK_FAILS(stmt)                                                 \
  do {                                                                           \
    bool pt_threw_ = false;                                                      \
    try { stmt; } catch (const ::pagedllm::InternalError&) { pt_threw_ = true; } \
    if (!pt_threw_) PAGEDLLM_TEST_FAIL_(false, "expected a CHECK failure from: " #stmt); \
  } while (0)
