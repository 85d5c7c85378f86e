// Parsing and normalising the text an embedder takes from its users, as the library reads it:
// image references, platforms, registry credentials, transport specs, durations, digests and
// limits.
// For checking input early (before a long operation starts) and for messages that show a name
// the way the store keeps it. Pure functions: nothing is read or written.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "imgstore/status.hpp"
#include "imgstore/types.hpp"

namespace imgstore {

// "alpine", "alpine:3.19", "localhost:5000/team/app@sha256:..." normalized as docker does
// (docker.io, library/). kInvalidArgument naming what is wrong. No default tag is added.
Result<Reference> ParseReference(std::string_view text);

// "os/arch[/variant]" (PullOptions::platform). kInvalidArgument naming what is wrong.
Result<Platform> ParsePlatform(std::string_view text);

// "USER:PASSWORD" (the password may contain ':'). kInvalidArgument without a ':' or with an
// empty user; the message never quotes the text.
Result<Credentials> ParseCredentials(std::string_view user_password);

// A pull source or push destination: "docker://REF", a bare reference (docker), "oci:DIR[:REF]",
// "oci-archive:FILE[:REF]", "docker-archive:FILE[:REF]". Only the syntax is checked.
Result<TransportSpec> ParseTransport(std::string_view spec);

// A sequence of <number><unit>, units ns, us, ms, s, m, h ("500ms", "1.5s", "1m30s"), or a bare
// "0", as Go's time.ParseDuration. kInvalidArgument for anything else or a negative duration.
// (The library's own parser: src/util/duration.h declares this same function.)
Result<std::chrono::nanoseconds> ParseDuration(std::string_view text);
// The other way: "850ms", "12.4s", "3m20s", "2h5m", short and readable, for tables and logs.
// (Also the library's own: src/util/duration.h declares this same function.)
std::string FormatDuration(std::chrono::nanoseconds d);

// "NAME=VALUE": sets the bound NAME of `limits` (a field of Limits, types.hpp: max_tar_bytes,
// max_ratio, ...). VALUE is a whole number, for byte bounds optionally with a binary unit: K, M,
// G, T or KiB, MiB, GiB, TiB ("512MiB", "100G"). kInvalidArgument naming the unknown name, the
// bad value, or a bound that must be positive; `limits` is unchanged then.
Status SetLimit(std::string_view name_equals_value, Limits* limits);
// The names SetLimit takes, in the order of Limits.
std::vector<std::string_view> LimitNames();

// Whether `text` is a digest as manifests and ids carry it: "sha256:" and 64 lowercase hex
// digits (or another supported algorithm).
bool IsDigest(std::string_view text);

}  // namespace imgstore
