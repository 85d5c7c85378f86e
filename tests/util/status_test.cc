// Tests of Status and Result: codes, errno mapping, context.
#include "util/status.h"

#include <gtest/gtest.h>

namespace imgstore {
namespace {

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, FromErrnoMapsCodes) {
  EXPECT_EQ(Status::FromErrno(ENOENT, "open x").code(), Code::kNotFound);
  EXPECT_EQ(Status::FromErrno(ENOSPC, "write x").code(), Code::kNoSpace);
  EXPECT_EQ(Status::FromErrno(EACCES, "open x").code(), Code::kPermissionDenied);
  EXPECT_EQ(Status::FromErrno(EIO, "read x").code(), Code::kIOError);
  EXPECT_EQ(Status::FromErrno(ENOENT, "open x").message(), "open x: No such file or directory");
}

TEST(StatusTest, WithContextKeepsCode) {
  Status s = Status(Code::kCorruption, "digest mismatch").WithContext("pull a");
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_EQ(s.message(), "pull a: digest mismatch");
  EXPECT_TRUE(Status().WithContext("x").ok());
}

TEST(ResultTest, ValueAndError) {
  Result<int> good(7);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value(), 7);
  EXPECT_TRUE(good.status().ok());
  Result<int> bad(Status(Code::kNotFound, "no such image"));
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kNotFound);
}

TEST(ResultTest, OkStatusBecomesInternalError) {
  Result<int> r{Status()};
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
}

}  // namespace
}  // namespace imgstore
