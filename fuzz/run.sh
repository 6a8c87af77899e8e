#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each), seeded from the test
# fixtures (real signed Notary metadata, real manifests). Needs a nightly toolchain and
# `cargo install cargo-fuzz`; CI runs the same properties on stable instead
# (tests/hostile.rs, module `fuzz`). Crashes land in fuzz/artifacts/<target>/; turn each into
# a regression test there.
#
#   fuzz/run.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(oci_route manifest canonical_json tuf_verify)

good=../tests/data/trust/good-releases-delegation/metadata
files=(root.json timestamp.json snapshot.json targets.json targets/releases.json targets/alice.json)
mkdir -p corpus/tuf_verify corpus/canonical_json corpus/manifest corpus/oci_route
for i in "${!files[@]}"; do
  # The first byte picks which file the input replaces.
  { printf "\\x$(printf %02x "$i")"; cat "$good/${files[$i]}"; } >"corpus/tuf_verify/seed-$i"
  cp "$good/${files[$i]}" "corpus/canonical_json/seed-$i"
done
hex=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
printf '\x01{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":3}]}' "$hex" "$hex" >corpus/manifest/seed-image
printf '\x02{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":2,"platform":{"os":"linux","architecture":"amd64"}}]}' "$hex" >corpus/manifest/seed-index
printf '\x00/v2/library/nginx/manifests/1.27?ns=docker.io' >corpus/oci_route/seed-tag
printf '\x01/v2/a/b/c/blobs/sha256:%s' "$hex" >corpus/oci_route/seed-blob
printf '\x00/v2/a/tags/list?n=10&last=v1' >corpus/oci_route/seed-tags

for target in "${targets[@]}"; do
  echo "=== $target (${seconds}s)"
  cargo +nightly fuzz run -O "$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048
done
