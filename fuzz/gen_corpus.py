#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/corpus/<target>/ (docs/fuzzing.md).

The seeds are committed; run this again only to change them (it rewrites every directory it
owns, deterministically: fixed mtimes and owners). Needs python3 and the zstd command.

    python3 fuzz/gen_corpus.py
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MTIME = 1600000000
# Two zero blocks and no padding to 10 KiB: small seeds, and still what tar(1) reads.
tarfile.RECORDSIZE = 512

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def desc(media_type, data, **extra):
    d = {"mediaType": media_type, "digest": sha(data), "size": len(data)}
    d.update(extra)
    return d


def dump(obj):
    return json.dumps(obj, indent=2, sort_keys=False).encode()


def gz(data):
    return gzip.compress(data, mtime=0)


def zst(data):
    return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, check=True,
                          stdout=subprocess.PIPE).stdout


class Tar:
    """A tar built entry by entry, in any format tarfile writes."""

    def __init__(self, fmt=tarfile.USTAR_FORMAT):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=fmt)

    def add(self, name, type_=tarfile.REGTYPE, data=b"", mode=0o644, link="", pax=None,
            uid=0, gid=0, major=0, minor=0):
        info = tarfile.TarInfo(name)
        info.type = type_
        info.mode = mode
        info.mtime = MTIME
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.linkname = link
        info.devmajor, info.devminor = major, minor
        if pax:
            info.pax_headers = pax
        if type_ in (tarfile.REGTYPE, tarfile.AREGTYPE):
            info.size = len(data)
            self.tar.addfile(info, io.BytesIO(data))
        else:
            self.tar.addfile(info)
        return self

    def file(self, name, data=b"", **kw):
        return self.add(name, tarfile.REGTYPE, data, **kw)

    def dir(self, name, **kw):
        return self.add(name, tarfile.DIRTYPE, mode=0o755, **kw)

    def symlink(self, name, target):
        return self.add(name, tarfile.SYMTYPE, link=target, mode=0o777)

    def hardlink(self, name, target):
        return self.add(name, tarfile.LNKTYPE, link=target)

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def reset(target):
    shutil.rmtree(os.path.join(ROOT, target), ignore_errors=True)


# --- Layers ---------------------------------------------------------------------------------

def layer_basic():
    return (Tar().dir("etc").file("etc/hostname", b"fuzz\n")
            .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", mode=0o600)
            .dir("bin").file("bin/sh", b"\x7fELF", mode=0o755)
            .symlink("bin/bash", "sh").hardlink("bin/ash", "bin/sh").bytes())


def layer_whiteouts():
    return (Tar().dir("etc").file("etc/.wh.hostname").dir("var").dir("var/cache")
            .file("var/cache/.wh..wh..opq").file("var/cache/new", b"kept\n")
            .file(".wh.tmp").bytes())


def layer_devices():
    return (Tar().dir("dev").add("dev/null", tarfile.CHRTYPE, mode=0o666, major=1, minor=3)
            .add("dev/loop9", tarfile.BLKTYPE, mode=0o600, major=7, minor=9)
            .add("dev/fifo", tarfile.FIFOTYPE, mode=0o600).bytes())


def layer_pax():
    long = "usr/share/" + "/".join(["d%02d" % i for i in range(30)]) + "/file.txt"
    return (Tar(tarfile.PAX_FORMAT).file(long, b"long name\n")
            .file("caps", b"x", pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
                                     "SCHILY.xattr.user.comment": "hello"})
            .file("owned", b"y", uid=100000, gid=100000)
            .symlink("longlink", "/" + "x" * 150).bytes())


def layer_gnu():
    long = "opt/" + "n" * 120 + "/file"
    return (Tar(tarfile.GNU_FORMAT).file(long, b"gnu long name\n")
            .symlink("opt/l", "t" * 120).file("big-uid", b"z", uid=0o10000000).bytes())


def layer_hostile_names():
    return (Tar().file("../escape", b"x").file("/abs", b"x").file("a/../../up", b"x")
            .file("./ok", b"fine").bytes())


def layer_symlink_escape():
    # A symlink that leaves the root, then entries written through it (CVE-2025-47290 shape).
    return Tar().symlink("link", "../outside").file("link/x", b"through a symlink").bytes()


def layer_symlink_root():
    return Tar().symlink("root", "/").file("root/tmp/x", b"through /").bytes()


def layer_hardlink_through_symlink():
    return (Tar().file("outside", b"o").dir("d").symlink("d/up", "../../outside")
            .hardlink("h", "d/up/x").bytes())


def layer_hardlink_escape():
    return Tar().hardlink("h", "../outside/x").hardlink("h2", "/etc/passwd").bytes()


def layer_replace():
    # A directory replaced by a symlink between entries, then a file below the old name.
    return (Tar().dir("a").file("a/f", b"1").symlink("a", "../outside").file("a/g", b"2")
            .file("f").dir("f").file("f/x", b"3").bytes())


LAYERS = {
    "basic.tar": layer_basic, "whiteouts.tar": layer_whiteouts, "devices.tar": layer_devices,
    "pax.tar": layer_pax, "gnu.tar": layer_gnu, "hostile_names.tar": layer_hostile_names,
    "symlink_escape.tar": layer_symlink_escape, "symlink_root.tar": layer_symlink_root,
    "hardlink_through_symlink.tar": layer_hardlink_through_symlink,
    "hardlink_escape.tar": layer_hardlink_escape,
    "replace.tar": layer_replace,
}


def gen_layers():
    for target in ("extract", "tar_reader"):
        reset(target)
        for name, fn in LAYERS.items():
            write(target, name, fn())
        write(target, "empty.tar", b"\0" * 1024)
        write(target, "truncated.tar", layer_basic()[:700])
    write("extract", "basic.tar.gz", gz(layer_basic()))
    write("extract", "whiteouts.tar.zst", zst(layer_whiteouts()))
    write("extract", "two_members.tar.gz", gz(layer_basic()) + gz(layer_devices()))


# --- Manifests and configs --------------------------------------------------------------------

def config(diff_ids, docker=False, history=True):
    c = {
        "created": "2024-01-02T03:04:05Z", "author": "fuzz", "architecture": "amd64",
        "os": "linux",
        "config": {"User": "1000:1000", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                   "Env": ["PATH=/usr/bin:/bin", "LANG=C"], "Entrypoint": ["/bin/sh", "-c"],
                   "Cmd": ["echo hi"], "Volumes": {"/data": {}}, "WorkingDir": "/srv",
                   "Labels": {"org.opencontainers.image.title": "fuzz"},
                   "StopSignal": "SIGTERM", "Healthcheck": {"Test": ["CMD", "true"]}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if history:
        c["history"] = ([{"created": "2024-01-02T03:04:05Z", "created_by": "ADD x /",
                          "comment": "layer"} for _ in diff_ids] +
                        [{"created_by": "CMD [\"echo\"]", "empty_layer": True}])
    if docker:
        c["container_config"] = {"Cmd": ["/bin/sh"]}
        c["docker_version"] = "24.0.7"
        c["variant"] = "v8"
    return dump(c)


def gen_manifests():
    reset("manifest")
    reset("image_config")
    layer = gz(layer_basic())
    cfg = config([sha(layer_basic())])
    oci = dump({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": desc(OCI_CONFIG, cfg), "layers": [desc(OCI_LAYER_GZIP, layer)],
                "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"}})
    oci_bare = dump({"schemaVersion": 2, "config": desc(OCI_CONFIG, cfg),
                     "layers": [desc(OCI_LAYER, layer_basic()),
                                desc(OCI_LAYER_ZSTD, b"z"),
                                desc("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                                     b"f", urls=["https://example.com/layer"])]})
    docker = dump({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                   "config": desc(DOCKER_CONFIG, cfg), "layers": [desc(DOCKER_LAYER, layer)]})
    artifact = dump({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "artifactType": "application/vnd.example.sbom",
                     "config": desc("application/vnd.oci.empty.v1+json", b"{}"),
                     "layers": [desc("application/spdx+json", b"{}")],
                     "subject": desc(OCI_MANIFEST, oci)})
    index = dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        desc(OCI_MANIFEST, oci, platform={"architecture": "amd64", "os": "linux"}),
        desc(OCI_MANIFEST, oci_bare, platform={"architecture": "arm", "os": "linux",
                                               "variant": "v7"}),
        desc(OCI_MANIFEST, artifact, platform={"architecture": "unknown", "os": "unknown"},
             annotations={"vnd.docker.reference.type": "attestation-manifest"}),
        desc(OCI_INDEX, b"{}", platform={"architecture": "arm64", "os": "linux",
                                         "variant": "v8", "os.features": ["x"]})]})
    dlist = dump({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        desc(DOCKER_MANIFEST, docker, platform={"architecture": "amd64", "os": "linux"}),
        desc(DOCKER_MANIFEST, docker, platform={"architecture": "amd64", "os": "windows",
                                                "os.version": "10.0.17763.1"})]})
    schema1 = dump({"schemaVersion": 1, "name": "a/b", "tag": "latest", "architecture": "amd64",
                    "fsLayers": [], "history": []})
    for name, data in {"oci_manifest.json": oci, "oci_manifest_no_media_type.json": oci_bare,
                       "docker_manifest.json": docker, "artifact.json": artifact,
                       "oci_index.json": index, "docker_list.json": dlist,
                       "schema1.json": schema1,
                       "empty_index.json": b'{"schemaVersion":2,"manifests":[]}',
                       "duplicate_keys.json": b'{"schemaVersion":2,"schemaVersion":2,"layers":[]}',
                       "both_kinds.json": b'{"schemaVersion":2,"manifests":[],"layers":[]}',
                       "sha512.json": oci.replace(sha(layer).encode(),
                                                  b"sha512:" + b"ab" * 64)}.items():
        write("manifest", name, data)

    dcfg = config([sha(layer_basic())], docker=True)
    two = config([sha(b"a"), sha(b"b")], history=False)
    write("image_config", "oci_config.json", cfg)
    write("image_config", "docker_config.json", dcfg)
    write("image_config", "minimal.json", b'{"rootfs":{"type":"layers","diff_ids":[]}}')
    write("image_config", "history_mismatch.json", config([sha(b"a")])
          .replace(b'"empty_layer": true', b'"empty_layer": false'))
    write("image_config", "with_manifest.bin", cfg + b"\0" + oci)
    write("image_config", "docker_with_manifest.bin", dcfg + b"\0" + docker)
    write("image_config", "count_mismatch.bin", two + b"\0" + oci)
    write("image_config", "bad_rootfs.json", b'{"rootfs":{"type":"zfs","diff_ids":[]}}')


# --- Text parsers -----------------------------------------------------------------------------

HEX = "a" * 64


def gen_text():
    reset("reference")
    refs = ["alpine", "alpine:3.19", "library/alpine", "user/app:1.2",
            "docker.io/library/alpine:latest", "index.docker.io/x", "localhost:5000/a/b:t",
            "localhost/a", "[::1]:5000/a/b@sha256:" + HEX,
            "quay.io/org/app:1.0@sha256:" + HEX, "registry.example.com:443/org/team/app",
            "a/b_c__d-e.f/g", "UPPER/case", "app@sha512:" + "b" * 128, "alpine:", "x:y:z",
            "127.0.0.1:5000/a@sha256:" + HEX[:10], "a" * 300]
    for i, r in enumerate(refs):
        write("reference", "ref%02d" % i, r)

    reset("transport_spec")
    specs = ["oci:/srv/layout", "oci:/srv/layout:v1", "oci:d:example.com/a:1",
             "oci-archive:img.tar:latest", "oci-archive:img.tar.gz",
             "docker-archive:/tmp/x.tar:busybox:latest", "docker-archive:a.tar:@0",
             "docker://alpine", "docker://localhost:5000/a/b@sha256:" + HEX, "alpine",
             "foo:bar", "oci:", "oci::ref", "oci:dir:bad ref"]
    for i, s in enumerate(specs):
        write("transport_spec", "spec%02d" % i, s)

    reset("www_authenticate")
    headers = [
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"',
        'Basic realm="Registry Realm"',
        'Bearer realm="https://r/token",error="insufficient_scope",'
        'scope="repository:a/b:pull,push"',
        'Basic realm="a", Bearer realm="https://t", service=r',
        'BEARER Realm="x\\"y",Service=s\nbasic realm=unquoted',
        'Negotiate, NTLM',
        'Bearer realm=, ,=x,"q", realm="unterminated',
    ]
    for i, h in enumerate(headers):
        write("www_authenticate", "challenge%02d" % i, h)


# --- Archives and layouts ---------------------------------------------------------------------

def docker_archive(images, oci_blobs=False, gzip_layers=False):
    """images: list of (repo_tags, [layer tars]); docker save format (classic or docker 25+)."""
    t = Tar()
    entries = []
    seen = set()
    for tags, layers in images:
        names = []
        for layer in layers:
            data = gz(layer) if gzip_layers else layer
            name = ("blobs/sha256/" + hashlib.sha256(data).hexdigest() if oci_blobs
                    else hashlib.sha256(layer).hexdigest()[:16] + "/layer.tar")
            if name not in seen:
                seen.add(name)
                if not oci_blobs:
                    t.dir(os.path.dirname(name))
                t.file(name, data)
            names.append(name)
        cfg = config([sha(layer) for layer in layers], docker=True)
        cname = ("blobs/sha256/" if oci_blobs else "") + hashlib.sha256(cfg).hexdigest() + (
            "" if oci_blobs else ".json")
        t.file(cname, cfg)
        entries.append({"Config": cname, "RepoTags": tags, "Layers": names})
    t.file("manifest.json", json.dumps(entries).encode())
    t.file("repositories", b'{"busybox":{"latest":"' + HEX.encode() + b'"}}')
    return t.bytes()


def oci_layout_tar(compress=None):
    layer = gz(layer_basic())
    cfg = config([sha(layer_basic())])
    man = dump({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, cfg),
                "layers": [desc(OCI_LAYER_GZIP, layer)]})
    index = dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        desc(OCI_MANIFEST, man, annotations={"org.opencontainers.image.ref.name": "v1"})]})
    t = Tar().file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}').file("index.json", index)
    t.dir("blobs").dir("blobs/sha256")
    for blob in (layer, cfg, man):
        t.file("blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob)
    data = t.bytes()
    return gz(data) if compress == "gzip" else zst(data) if compress == "zstd" else data


def gen_archives():
    reset("docker_archive")
    small = Tar().file("hello", b"hello\n").bytes()
    write("docker_archive", "one_image.tar", docker_archive([(["busybox:latest"], [small])]))
    write("docker_archive", "two_layers.tar",
          docker_archive([(["a:1", "docker.io/library/a:2"], [small, layer_whiteouts()])]))
    write("docker_archive", "two_images.tar",
          docker_archive([(["a:1"], [small]), (None, [small, layer_whiteouts()])]))
    write("docker_archive", "oci_blobs_gzip.tar",
          docker_archive([(["b:1"], [small])], oci_blobs=True, gzip_layers=True))

    reset("oci_archive")
    write("oci_archive", "layout.tar", oci_layout_tar())
    write("oci_archive", "layout.tar.gz", oci_layout_tar("gzip"))
    write("oci_archive", "layout.tar.zst", oci_layout_tar("zstd"))

    # oci_layout's record format: index.json, then blobs; @@N/##N name record N's digest/size.
    reset("oci_layout")
    sep = "\n--blob--\n"
    cfg = config([sha(small)]).decode()
    one = sep.join([
        json.dumps({"schemaVersion": 2, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": "@@1", "size": "##1",
             "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}),
        json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": "@@2", "size": "##2"},
                    "layers": [{"mediaType": OCI_LAYER, "digest": "@@3", "size": "##3"}]}),
        cfg, small.decode("latin-1")])
    write("oci_layout", "one_image", fix_sizes(one).encode("latin-1"))
    nested = sep.join([
        json.dumps({"schemaVersion": 2, "manifests": [
            {"mediaType": OCI_INDEX, "digest": "@@1", "size": "##1",
             "annotations": {"org.opencontainers.image.ref.name": "multi"}},
            {"mediaType": OCI_MANIFEST, "digest": "@@2", "size": "##2",
             "annotations": {"org.opencontainers.image.ref.name": "amd64"}}]}),
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": "@@2", "size": "##2",
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": "@@2", "size": "##2",
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}),
        json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": "@@3", "size": "##3"},
                    "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": "@@4", "size": "##4"}]}),
        cfg, gz(small).decode("latin-1")])
    write("oci_layout", "nested_index", fix_sizes(nested).encode("latin-1"))
    write("oci_layout", "bad_blob", fix_sizes(one).replace('"@@3"', '"sha256:' + HEX + '"')
          .encode("latin-1"))


# --- gzip streams (the differential zlib / ISA-L target) -------------------------------------

def gzip_with_header_fields(data):
    # FEXTRA, FNAME, FCOMMENT and FHCRC around a raw deflate stream (RFC 1952 2.3).
    head = b"\x1f\x8b\x08\x1e\0\0\0\0\0\x03" + b"\x06\0AB\x02\0xy" + b"layer.tar\0" + b"a comment\0"
    head += (zlib.crc32(head) & 0xffff).to_bytes(2, "little")
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = c.compress(data) + c.flush()
    return (head + raw + zlib.crc32(data).to_bytes(4, "little") +
            (len(data) & 0xffffffff).to_bytes(4, "little"))


def gen_gzip():
    reset("gzip")
    text = b"layer image store blob digest tar\n" * 200
    write("gzip", "text.gz", gz(text))
    write("gzip", "two_members.gz", gz(b"first") + gz(b"second" * 100))
    write("gzip", "empty.gz", gz(b""))
    write("gzip", "stored.gz", gzip.compress(bytes(range(256)) * 4, compresslevel=0, mtime=0))
    write("gzip", "fixed_huffman.gz", gz(b"abcabcabcabc"))
    write("gzip", "header_fields.gz", gzip_with_header_fields(text))
    write("gzip", "trailing_garbage.gz", gz(b"x") + b"junk")
    write("gzip", "layer.tar.gz", gz(layer_basic()))


def fix_sizes(text):
    # json.dumps quotes the size placeholders; a size is a number.
    for n in range(10):
        text = text.replace('"##%d"' % n, "##%d" % n)
    return text


if __name__ == "__main__":
    gen_layers()
    gen_manifests()
    gen_text()
    gen_archives()
    gen_gzip()
