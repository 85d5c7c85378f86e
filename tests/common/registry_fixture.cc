// TestRegistry (see registry_fixture.h): config, certificates, htpasswd, start and readiness.
#include "common/registry_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/cli_runner.h"
#include "registry/credentials.h"
#include "util/digest.h"

namespace imgstore::testing {
namespace {

bool WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  return static_cast<bool>(f);
}

// A port the kernel says is free now (bind to :0, read it, close). Another process may take it
// before the registry binds it; Start() then retries with another.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

bool Accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

bool TestRegistry::Available(bool need_skopeo) {
  return ::access(kBinary, X_OK) == 0 && (!need_skopeo || ::access(kSkopeo, X_OK) == 0);
}

bool TestRegistry::MakeCertificates(std::string* error) {
  const std::string d = dir_.Sub("tls");
  ::mkdir(d.c_str(), 0700);
  ::mkdir(cert_dir().c_str(), 0700);
  // EC keys: quick to make, and Go's TLS serves them.
  const std::vector<std::vector<std::string>> steps = {
      {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", d + "/ca.key", "-out", d + "/ca.crt", "-days", "2", "-subj",
       "/CN=imgstore test CA"},
      {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
       d + "/server.key", "-out", d + "/server.csr", "-subj", "/CN=127.0.0.1"},
      {"x509", "-req", "-in", d + "/server.csr", "-CA", d + "/ca.crt", "-CAkey", d + "/ca.key",
       "-CAcreateserial", "-out", d + "/server.crt", "-days", "2", "-extfile", d + "/ext.cnf"},
  };
  if (!WriteFile(d + "/ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")) {
    *error = "cannot write ext.cnf";
    return false;
  }
  for (const auto& args : steps) {
    CliResult r = RunProgram("/usr/bin/openssl", args);
    if (r.exit_code != 0) {
      *error = "openssl " + args[0] + ": " + r.Describe();
      return false;
    }
  }
  std::ifstream in(d + "/ca.crt", std::ios::binary);
  std::stringstream ca;
  ca << in.rdbuf();
  return WriteFile(ca_file(), ca.str());
}

bool TestRegistry::MakeClientCertificate(std::string* error) {
  const std::string d = dir_.Sub("tls");
  const std::vector<std::vector<std::string>> steps = {
      {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
       cert_dir() + "/client.key", "-out", d + "/client.csr", "-subj", "/CN=imgstore test client"},
      {"x509", "-req", "-in", d + "/client.csr", "-CA", d + "/ca.crt", "-CAkey", d + "/ca.key",
       "-CAcreateserial", "-out", cert_dir() + "/client.cert", "-days", "2", "-extfile",
       d + "/client-ext.cnf"},
  };
  if (!WriteFile(d + "/client-ext.cnf", "extendedKeyUsage=clientAuth\n")) {
    *error = "cannot write client-ext.cnf";
    return false;
  }
  for (const auto& args : steps) {
    CliResult r = RunProgram("/usr/bin/openssl", args);
    if (r.exit_code != 0) {
      *error = "openssl " + args[0] + " (client certificate): " + r.Describe();
      return false;
    }
  }
  return true;
}

bool TestRegistry::MakeHtpasswd(std::string* error) {
  // -i: the password comes on stdin, never on a command line.
  Subprocess p;
  if (!p.Start("/usr/bin/htpasswd", {"-iBn", config_.user}, error)) return false;
  p.WriteLine(config_.password);
  p.CloseStdin();
  std::optional<std::string> line = p.ReadLine(std::chrono::seconds(30));
  std::optional<int> st = p.Wait(std::chrono::seconds(30));
  if (!line || !st || *st != 0) {
    *error = "htpasswd failed";
    return false;
  }
  return WriteFile(dir_.Sub("htpasswd"), *line + "\n");
}

bool TestRegistry::Start(const TestRegistryConfig& config, std::string* error) {
  config_ = config;
  ::mkdir(storage_dir().c_str(), 0700);
  if (config.tls && !MakeCertificates(error)) return false;
  if (config.client_ca && !config.tls) {
    *error = "client_ca needs tls";
    return false;
  }
  if (config.client_ca && !MakeClientCertificate(error)) return false;
  if (config.basic_auth && !MakeHtpasswd(error)) return false;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = FreePort();
    if (port_ == 0) {
      *error = "no free port";
      return false;
    }
    host_ = "127.0.0.1:" + std::to_string(port_);
    std::string yaml =
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        "storage:\n  filesystem:\n    rootdirectory: " +
        storage_dir() +
        "\n  delete:\n    enabled: true\n"
        "http:\n  addr: " +
        host_ + "\n";
    if (config.tls) {
      yaml += "  tls:\n    certificate: " + dir_.Sub("tls/server.crt") +
              "\n    key: " + dir_.Sub("tls/server.key") + "\n";
      if (config.client_ca) yaml += "    clientcas:\n      - " + dir_.Sub("tls/ca.crt") + "\n";
    }
    if (config.basic_auth) {
      yaml +=
          "auth:\n  htpasswd:\n    realm: imgstore-test\n    path: " + dir_.Sub("htpasswd") + "\n";
    } else if (config.token_auth) {
      yaml += "auth:\n  token:\n    realm: " + config.token_auth->realm +
              "\n    service: " + config.token_auth->service +
              "\n    issuer: " + config.token_auth->issuer +
              "\n    rootcertbundle: " + config.token_auth->root_cert_bundle + "\n";
    }
    if (!WriteFile(dir_.Sub("config.yml"), yaml)) {
      *error = "cannot write config.yml";
      return false;
    }
    // Its log goes to a file (it logs every 404 at level error); shown when it fails to start.
    if (!process_.Start("/bin/sh",
                        {"-c", "exec \"$0\" serve \"$1\" 2>\"$2\"", kBinary, dir_.Sub("config.yml"),
                         log_file()},
                        error)) {
      return false;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Accepts(port_)) return true;
      if (process_.Wait(std::chrono::milliseconds(50))) break;  // exited: port taken, or config
    }
    process_.KillAndWait();
  }
  std::ifstream log(log_file());
  std::stringstream text;
  text << log.rdbuf();
  *error = "docker-registry did not start listening: " + text.str();
  return false;
}

void TestRegistry::Stop() {
  if (process_.running()) process_.KillAndWait();
}

std::string TestRegistry::WriteAuthFile(const std::string& path) const {
  const std::string auth = registry::Base64Encode(config_.user + ":" + config_.password);
  WriteFile(path, "{\"auths\": {\"" + host_ + "\": {\"auth\": \"" + auth + "\"}}}\n");
  return path;
}

std::string TestRegistry::SkopeoPush(const std::string& from, const std::string& dest,
                                     const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {"--insecure-policy", "copy", "-q"};
  if (config_.tls) {
    args.push_back("--dest-cert-dir=" + cert_dir());
  } else {
    args.push_back("--dest-tls-verify=false");
  }
  if (HasAuth()) {
    args.push_back("--dest-authfile=" + WriteAuthFile(dir_.Sub("skopeo-auth.json")));
  }
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(from);
  args.push_back("docker://" + host_ + "/" + dest);
  CliResult r = RunProgram(kSkopeo, args, {"TMPDIR=" + dir_.path()});
  return r.exit_code == 0 ? "" : r.Describe();
}

std::string TestRegistry::SkopeoManifestDigest(const std::string& ref, std::string* error) const {
  std::vector<std::string> args = {"--insecure-policy", "inspect", "--raw"};
  if (config_.tls) {
    args.push_back("--cert-dir=" + cert_dir());
  } else {
    args.push_back("--tls-verify=false");
  }
  if (HasAuth()) {
    args.push_back("--authfile=" + WriteAuthFile(dir_.Sub("skopeo-auth.json")));
  }
  args.push_back("docker://" + host_ + "/" + ref);
  CliResult r = RunProgram(kSkopeo, args, {"TMPDIR=" + dir_.path()});
  if (r.exit_code != 0) {
    *error = r.Describe();
    return "";
  }
  return Digest::Of(r.out).ToString();
}

}  // namespace imgstore::testing
