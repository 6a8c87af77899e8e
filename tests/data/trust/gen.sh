#!/usr/bin/env bash
# Regenerates the Notary v1 attack fixtures under tests/data/trust/<case>/.
#
#   bash tests/data/trust/gen.sh
#
# Run by hand, never by CI: the committed folders are the test input, and `cargo test` only reads
# them. Regenerating replaces every case folder this script owns with fresh keys, signatures and
# timestamps (the `at` times in case.json move with them).
#
# Needs, on PATH: notary, notary-server (Debian package `notary`), curl, jq, openssl, and python3
# with the `cryptography` package (`pip install cryptography`; only this script needs it).
#
# What it does:
#   1. starts a throwaway notary-server on a free loopback port (memory backend, local trust service,
#      so the server holds the timestamp key and signs timestamps with ed25519);
#   2. creates real trust data with the real `notary` CLI: several publications of one repository,
#      a repository with targets/releases and a named signer, one whose root certificate lives one
#      day, a root key rotation, and a second repository initialised under the same GUN;
#   3. downloads each publication's metadata with curl from /v2/<GUN>/_trust/tuf/<role>.json;
#   4. hands everything to mutate.py, which writes the case folders (and re-signs where a case needs
#      it, with the keys the notary CLI created; those keys stay in the temporary directory);
#   5. replays every case through notary's own client (`notary list`, against a local file server)
#      as a cross-check that each fixture is accepted or rejected as case.json says.
#
# The passphrases below protect throwaway keys that never leave the temporary directory.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for tool in notary notary-server curl jq openssl python3; do
    command -v "$tool" >/dev/null || { echo "gen.sh: $tool is not on PATH" >&2; exit 1; }
done
python3 -c 'import cryptography' 2>/dev/null \
    || { echo "gen.sh: python3 needs the cryptography package (pip install cryptography)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trustgate-fixtures.XXXXXX")
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

export NOTARY_ROOT_PASSPHRASE=fixture-root-passphrase
export NOTARY_TARGETS_PASSPHRASE=fixture-targets-passphrase
export NOTARY_SNAPSHOT_PASSPHRASE=fixture-snapshot-passphrase
export NOTARY_DELEGATION_PASSPHRASE=fixture-delegation-passphrase

GUN_MAIN=docker.io/trustgate/demo
GUN_DELEG=docker.io/trustgate/delegated
GUN_SHORT=docker.io/trustgate/shortlived

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
cat >"$WORK/server.json" <<EOF
{"server": {"http_addr": "127.0.0.1:$PORT"},
 "trust_service": {"type": "local", "hostname": "", "port": "", "key_algorithm": "ecdsa"},
 "logging": {"level": "error"},
 "storage": {"backend": "memory"}}
EOF
notary-server -config "$WORK/server.json" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do
    curl -fs "$URL/_notary_server/health" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fs "$URL/_notary_server/health" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

# One notary client config (and so one trust dir, one set of keys) per repository.
client() {
    local name=$1
    mkdir -p "$WORK/$name"
    printf '{"trust_dir": "%s", "remote_server": {"url": "%s"}}\n' "$WORK/$name/trust" "$URL" >"$WORK/$name/config.json"
}
nt() {
    local name=$1
    shift
    notary -c "$WORK/$name/config.json" "$@" >>"$WORK/notary.log" 2>&1 \
        || { echo "gen.sh: notary $* failed:" >&2; tail -20 "$WORK/notary.log" >&2; exit 1; }
}

# A tag's "manifest" is a fixed string, so digests are stable across regenerations.
sign() {
    local client=$1 gun=$2 tag=$3 content=$4
    shift 4
    local size hex roles=()
    size=$(printf '%s' "$content" | wc -c)
    hex=$(printf '%s' "$content" | sha256sum | cut -d' ' -f1)
    for role in "$@"; do roles+=(--roles "$role"); done
    nt "$client" addhash "$gun" "$tag" "$size" --sha256 "$hex" "${roles[@]}" --publish
}

# Downloads one publication: every role the snapshot lists, every root version, and what the
# reference client says is signed (`notary list` per role) and which keys it holds.
snap() {
    local client=$1 gun=$2 pub=$3
    local dir="$WORK/pubs/$pub"
    mkdir -p "$dir/metadata"
    local base="$URL/v2/$gun/_trust/tuf"
    for role in root timestamp snapshot targets; do
        curl -fsS "$base/$role.json" -o "$dir/metadata/$role.json"
    done
    for role in $(jq -r '.signed.meta | keys[] | select(startswith("targets/"))' "$dir/metadata/snapshot.json"); do
        mkdir -p "$dir/metadata/$(dirname "$role")"
        curl -fsS "$base/$role.json" -o "$dir/metadata/$role.json"
    done
    local version
    version=$(jq -r '.signed.version' "$dir/metadata/root.json")
    if [ "$version" -gt 1 ]; then
        for v in $(seq 1 "$version"); do
            curl -fsS "$base/$v.root.json" -o "$dir/metadata/$v.root.json"
        done
    fi
    printf '%s\n' "$gun" >"$dir/gun"
    notary -c "$WORK/$client/config.json" list "$gun" >"$dir/list.txt" 2>>"$WORK/notary.log"
    for role in $(jq -r '.signed.meta | keys[] | select(startswith("targets/"))' "$dir/metadata/snapshot.json"); do
        notary -c "$WORK/$client/config.json" list "$gun" --roles "$role" >>"$dir/list.txt" 2>>"$WORK/notary.log"
    done
    notary -c "$WORK/$client/config.json" key list >"$dir/keys.txt" 2>>"$WORK/notary.log"
}

# Decrypts the client's private keys (PKCS#8, PBES2) into $WORK/keys/<client>/<key id>.pem so that
# mutate.py can re-sign; notary writes "role:"/"gun:" headers inside the PEM, openssl skips them.
export_keys() {
    local client=$1
    mkdir -p "$WORK/keys/$client"
    for f in "$WORK/$client/trust/private/"*.key; do
        local role pass
        role=$(sed -n 's/^role: //p' "$f")
        case "$role" in
            root) pass=$NOTARY_ROOT_PASSPHRASE ;;
            targets) pass=$NOTARY_TARGETS_PASSPHRASE ;;
            snapshot) pass=$NOTARY_SNAPSHOT_PASSPHRASE ;;
            *) pass=$NOTARY_DELEGATION_PASSPHRASE ;;
        esac
        grep -v ': ' "$f" | PASS=$pass openssl pkey -passin env:PASS -out "$WORK/keys/$client/$(basename "$f" .key).pem"
    done
}

# --- Repository "main": v1, v2 (main-2), v2 rebuilt (main-3), root key rotation (main-4). ---------
client main
nt main init "$GUN_MAIN" --publish
sign main "$GUN_MAIN" v1 'trustgate fixture manifest v1'
sign main "$GUN_MAIN" v2 'trustgate fixture manifest v2'
snap main "$GUN_MAIN" main-2
# mix-and-match wants main-2's and main-3's targets.json to be the same length, so that only the hash
# differs. Go drops trailing zeros from the nanoseconds in "expires", so now and then a publication
# is a byte shorter; then publish again (with another digest, or notary publishes nothing).
for attempt in 1 2 3 4 5 6 7 8 9; do
    sign main "$GUN_MAIN" v2 "trustgate fixture manifest v2 (rebuild $attempt)"
    rm -rf "$WORK/pubs/main-3"
    snap main "$GUN_MAIN" main-3
    [ "$(wc -c <"$WORK/pubs/main-2/metadata/targets.json")" = "$(wc -c <"$WORK/pubs/main-3/metadata/targets.json")" ] && break
done
echo yes | nt main key rotate "$GUN_MAIN" root
snap main "$GUN_MAIN" main-4
export_keys main

# --- Repository "deleg": v0 signed by the repository owner in targets, v1 by signer alice in
# targets/releases and targets/alice (what `docker trust signer add` + `docker trust sign` make).
client deleg
nt deleg init "$GUN_DELEG" --publish
sign deleg "$GUN_DELEG" v0 'trustgate fixture manifest v0'
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/alice.key" 2>/dev/null
openssl req -new -x509 -key "$WORK/alice.key" -out "$WORK/alice.crt" -days 365 -subj /CN=alice
nt deleg delegation add "$GUN_DELEG" targets/releases "$WORK/alice.crt" --all-paths --publish
nt deleg delegation add "$GUN_DELEG" targets/alice "$WORK/alice.crt" --all-paths --publish
nt deleg key import "$WORK/alice.key" --role targets/alice
sign deleg "$GUN_DELEG" v1 'trustgate fixture manifest v1' targets/releases targets/alice
snap deleg "$GUN_DELEG" deleg-1

# --- Repository "short": the root certificate is made with openssl and lives one day. ------------
client short
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/short.key" 2>/dev/null
openssl req -new -x509 -key "$WORK/short.key" -out "$WORK/short.crt" -days 1 \
    -subj "/CN=${GUN_SHORT//\//\\/}" \
    -addext keyUsage=critical,digitalSignature -addext extendedKeyUsage=codeSigning \
    -addext basicConstraints=critical,CA:FALSE
# notary only imports encrypted root keys, and only PBES2 with the default (SHA-1) PRF.
openssl pkcs8 -topk8 -in "$WORK/short.key" -out "$WORK/short.p8" -v2 aes-256-cbc -v2prf hmacWithSHA1 \
    -passout env:NOTARY_ROOT_PASSPHRASE
nt short init "$GUN_SHORT" --rootkey "$WORK/short.p8" --rootcert "$WORK/short.crt" --publish
sign short "$GUN_SHORT" v1 'trustgate fixture manifest v1'
snap short "$GUN_SHORT" short-1

# --- Repository "foreign": the main GUN deleted on the server and initialised again with new keys.
nt main delete "$GUN_MAIN" --remote
client foreign
nt foreign init "$GUN_MAIN" --publish
sign foreign "$GUN_MAIN" v1 'trustgate fixture manifest v1 (foreign)'
snap foreign "$GUN_MAIN" foreign-1

kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

python3 "$HERE/mutate.py" build --pubs "$WORK/pubs" --keys "$WORK/keys" --out "$HERE"
python3 "$HERE/mutate.py" oracle --cases "$HERE"
