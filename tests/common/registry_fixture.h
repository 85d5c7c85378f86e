// TestRegistry: a real registry for tests — Debian's `docker-registry` (CNCF distribution 2.8)
// started on 127.0.0.1 at a free port, with its storage and config file in a temporary
// directory; optionally TLS with a test CA made by openssl (and a required client certificate),
// htpasswd basic auth, or Bearer token auth against a TokenServer (common/token_server.h).
//
// Tests that need it skip (GTEST_SKIP) when Available() is false; everything else that goes
// wrong while starting it fails the test with the registry's reason. The password never goes on
// a command line: htpasswd reads it from stdin.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "common/token_server.h"

namespace imgstore::testing {

struct TestRegistryConfig {
  bool tls = false;         // serve https with a certificate for 127.0.0.1 signed by a test CA
  bool basic_auth = false;  // htpasswd auth (docker-registry wants TLS with it; set tls too)
  std::string user = "tester";
  std::string password = "s3cret-Pa55";
  // Token auth (`auth: token`) against a token server, e.g. TokenServer::registry_auth(). The
  // token server must know `user`/`password` for SkopeoPush and SkopeoManifestDigest, which
  // authenticate as that user.
  std::optional<RegistryTokenAuth> token_auth;
  // Require a client certificate signed by the test CA (set tls too). cert_dir() then also
  // holds one, client.cert and client.key, so that --cert-dir cert_dir() presents it.
  bool client_ca = false;
};

class TestRegistry {
 public:
  static constexpr const char* kBinary = "/usr/bin/docker-registry";
  static constexpr const char* kSkopeo = "/usr/bin/skopeo";

  // docker-registry (and, for Available(true), skopeo) are installed.
  static bool Available(bool need_skopeo = true);

  TestRegistry() = default;
  ~TestRegistry() { Stop(); }
  TestRegistry(const TestRegistry&) = delete;
  TestRegistry& operator=(const TestRegistry&) = delete;

  // Writes the config (and certificates, htpasswd), starts the registry and waits until it
  // answers on its port. False with a reason in *error otherwise.
  bool Start(const TestRegistryConfig& config, std::string* error);
  void Stop();

  // "127.0.0.1:PORT".
  const std::string& host() const { return host_; }
  int port() const { return port_; }
  // A certs.d-style directory holding the test CA as ca.crt (TLS only), and with client_ca the
  // client certificate (client.cert, client.key).
  std::string cert_dir() const { return dir_.Sub("certs.d"); }
  std::string ca_file() const { return dir_.Sub("certs.d/ca.crt"); }
  // The registry's storage root (docker/registry/v2/... below it).
  std::string storage_dir() const { return dir_.Sub("storage"); }
  const TestRegistryConfig& config() const { return config_; }
  // What the registry logged (level error and above: failed requests, startup errors).
  std::string log_file() const { return dir_.Sub("registry.log"); }
  // An auth file (containers auth.json format) holding the configured credentials for host().
  // Skopeo uses it when the registry has basic or token auth.
  std::string WriteAuthFile(const std::string& path) const;

  // `skopeo copy` from `from` (e.g. "oci:DIR:REF") to docker://host()/dest, trusting the test
  // CA and using the credentials through an auth file. Extra args go before the positional ones
  // (e.g. "--all"). Returns "" on success, else skopeo's complaint.
  std::string SkopeoPush(const std::string& from, const std::string& dest,
                         const std::vector<std::string>& extra = {}) const;
  // `skopeo inspect --raw`'s digest of docker://host()/ref (the manifest digest), or "" with
  // *error set.
  std::string SkopeoManifestDigest(const std::string& ref, std::string* error) const;

 private:
  bool MakeCertificates(std::string* error);
  bool MakeClientCertificate(std::string* error);
  bool HasAuth() const { return config_.basic_auth || config_.token_auth.has_value(); }
  bool MakeHtpasswd(std::string* error);

  TestRegistryConfig config_;
  TempDir dir_;
  Subprocess process_;
  std::string host_;
  int port_ = 0;
};

// The config of a registry with htpasswd Basic auth over TLS.
inline TestRegistryConfig TlsBasicAuth() {
  TestRegistryConfig c;
  c.tls = true;
  c.basic_auth = true;
  return c;
}

// A registry shared by the tests of one suite (starting one costs about a second), for gtest
// fixtures: `class Tls : public SuiteRegistry<Tls, MyBase> { static void SetUpTestSuite() {
// StartSuiteRegistry({.tls = true}); } };`. Suite is the fixture itself, so that each suite gets
// a registry of its own; Base is the fixture's base (its SetUp skips when docker-registry is
// missing). SetUp fails a test whose suite could not start its registry.
template <typename Suite, typename Base>
class SuiteRegistry : public Base {
 protected:
  static void StartSuiteRegistry(const TestRegistryConfig& config) {
    if (!TestRegistry::Available() || registry_) return;
    registry_ = std::make_unique<TestRegistry>();
    std::string error;
    if (!registry_->Start(config, &error)) {
      registry_.reset();
      FAIL() << "cannot start docker-registry: " << error;
    }
  }
  static void TearDownTestSuite() { registry_.reset(); }
  void SetUp() override {
    Base::SetUp();
    if (this->IsSkipped()) return;
    ASSERT_TRUE(registry_) << "registry not started";
  }
  const TestRegistry& reg() { return *registry_; }
  std::string Ref(const std::string& rest) { return registry_->host() + "/" + rest; }
  std::string Creds() { return reg().config().user + ":" + reg().config().password; }

  static inline std::unique_ptr<TestRegistry> registry_;
};

}  // namespace imgstore::testing
