// The transport factory: spec parsing and dispatch, and the errors for what is not a
// transport (unknown prefixes).
#include "transports/transports.h"

#include <gtest/gtest.h>

namespace imgstore::transports {
namespace {

TEST(TransportSpec, KnownPrefixes) {
  struct Case {
    std::string spec;
    TransportKind kind;
    std::string rest;
  };
  for (const Case& c : std::vector<Case>{
           {"oci:/a/b:v1", TransportKind::kOciDir, "/a/b:v1"},
           {"oci-archive:x.tar", TransportKind::kOciArchive, "x.tar"},
           {"docker-archive:x.tar:a:1", TransportKind::kDockerArchive, "x.tar:a:1"},
           {"docker://alpine", TransportKind::kRegistry, "alpine"},
           {"alpine", TransportKind::kRegistry, "alpine"},
           {"localhost:5000/a/b:1", TransportKind::kRegistry, "localhost:5000/a/b:1"},
           {"xyz:1", TransportKind::kRegistry, "xyz:1"},  // a name with a tag
       }) {
    SCOPED_TRACE(c.spec);
    Result<TransportSpec> t = ParseTransportSpec(c.spec);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->kind, c.kind);
    EXPECT_EQ(t->rest, c.rest);
  }
}

TEST(TransportSpec, UnknownTransportsAndGarbage) {
  for (std::string spec : {"xyz:/path", "dir:/tmp/x", "docker-daemon:alpine:latest", "oci:", "",
                           "Upper/Case", "http://example.com/a"}) {
    SCOPED_TRACE(spec);
    Result<TransportSpec> t = ParseTransportSpec(spec);
    EXPECT_EQ(t.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(t.status().message().find('\n'), std::string::npos);
  }
  Status st = ParseTransportSpec("xyz:/path").status();
  EXPECT_NE(st.message().find("unknown transport \"xyz\""), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("oci-archive:"), std::string::npos) << st.message();
}

TEST(TransportSpec, RegistrySourceAndDestinationOpenWithoutNetwork) {
  // Opening a registry source or destination reads nothing from the network (example.com is
  // never contacted; tests/registry pull and push for real).
  Result<std::unique_ptr<images::ImageSource>> s = OpenSource(Env::Default(), "alpine:3");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->Describe(), "docker://docker.io/library/alpine:3");
  Result<std::unique_ptr<images::ImageDestination>> d =
      OpenDestination(Env::Default(), "docker://example.com/a:1");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)->Describe(), "docker://example.com/a:1");
  EXPECT_EQ((*d)->BlobOrigin(), "example.com/a");
  // No tag: pushed as "latest", as docker does.
  d = OpenDestination(Env::Default(), "example.com/team/b");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)->Describe(), "docker://example.com/team/b:latest");
  EXPECT_EQ((*d)->BlobOrigin(), "example.com/team/b");
}

}  // namespace
}  // namespace imgstore::transports
