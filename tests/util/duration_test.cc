// Tests of ParseDuration / FormatDuration.
#include "util/duration.h"

#include <gtest/gtest.h>

namespace imgstore {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(DurationTest, ParsesUnitsAndSums) {
  EXPECT_EQ(*ParseDuration("0"), nanoseconds(0));
  EXPECT_EQ(*ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(*ParseDuration("30s"), seconds(30));
  EXPECT_EQ(*ParseDuration("2m"), seconds(120));
  EXPECT_EQ(*ParseDuration("1h30m"), seconds(5400));
  EXPECT_EQ(*ParseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*ParseDuration("10us"), nanoseconds(10000));
}

TEST(DurationTest, RejectsMalformed) {
  for (const char* bad : {"", "10", "s", "5x", "-1s", "1..2s", "1e3s", "1 s", "99999999999h"}) {
    Result<nanoseconds> r = ParseDuration(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseDuration("5x").status().message().find("unknown unit"), std::string::npos);
}

TEST(DurationTest, Formats) {
  EXPECT_EQ(FormatDuration(nanoseconds(500)), "500ns");
  EXPECT_EQ(FormatDuration(milliseconds(850)), "850ms");
  EXPECT_EQ(FormatDuration(milliseconds(12400)), "12.4s");
  EXPECT_EQ(FormatDuration(seconds(200)), "3m20s");
  EXPECT_EQ(FormatDuration(seconds(5400)), "1h30m");
}

}  // namespace
}  // namespace imgstore
