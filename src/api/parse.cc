// The parsers of include/imgstore/parse.hpp over the internal ones (ParseDuration is
// src/util/duration.cc's own definition).
#include "imgstore/parse.hpp"

#include <utility>

#include "api/convert.h"
#include "images/platform.h"
#include "images/reference.h"
#include "registry/credentials.h"
#include "transports/transports.h"

namespace imgstore {

static_assert(kMinIdPrefix == store::kMinIdPrefix);

Result<Reference> ParseReference(std::string_view text) {
  return api::Guarded("parse reference", [&]() -> Result<Reference> {
    Result<images::Reference> r = images::ParseReference(text);
    if (!r.ok()) return r.status();
    return api::ToReference(*r);
  });
}

Result<Platform> ParsePlatform(std::string_view text) {
  return api::Guarded("parse platform", [&]() -> Result<Platform> {
    Result<images::Platform> p = images::ParsePlatform(text);
    if (!p.ok()) return p.status();
    return Platform{p->os, p->architecture, p->variant};
  });
}

Result<Credentials> ParseCredentials(std::string_view user_password) {
  return api::Guarded("parse credentials", [&]() -> Result<Credentials> {
    Result<registry::Credentials> c = registry::ParseCredentials(user_password);
    if (!c.ok()) return c.status();
    return Credentials{std::move(c->username), std::move(c->password)};
  });
}

Result<TransportSpec> ParseTransport(std::string_view spec) {
  return api::Guarded("parse transport", [&]() -> Result<TransportSpec> {
    Result<transports::TransportSpec> t = transports::ParseTransportSpec(spec);
    if (!t.ok()) return t.status();
    return TransportSpec{std::string(transports::TransportName(t->kind)), std::move(t->rest)};
  });
}

bool IsDigest(std::string_view text) {
  try {
    return Digest::Parse(text).ok();
  } catch (...) {
    return false;
  }
}

}  // namespace imgstore
