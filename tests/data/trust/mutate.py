#!/usr/bin/env python3
"""Builds the Notary v1 attack fixtures from real notary publications. Run by gen.sh, not by CI.

`build` reads the publications gen.sh downloaded (<pubs>/<name>/metadata/...) and the decrypted
notary keys (<keys>/<client>/<key id>.pem), and writes one folder per case under <out>.
`oracle` replays every case folder through notary's own client (`notary list` against a local
server that serves the folder) and checks that it accepts or rejects the case as case.json says.

Wire rules followed here (see notary's tuf/signed and tuf/utils): signatures cover the canonical
JSON of `signed`; ecdsa signatures are raw r||s over SHA-256; ed25519 uses the method "eddsa"; a
key ID is the SHA-256 of the canonical JSON of {"keytype", "keyval": {"private": null, "public"}};
snapshot and timestamp list the length and the sha256/sha512 (base64) of the exact bytes served.
"""

import argparse
import base64
import datetime as dt
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

GUN_OTHER = "docker.io/trustgate/other"
OVERSIZE_BYTES = 20 * 1024 * 1024

# --- encoding ------------------------------------------------------------------------------------


def canon(value) -> bytes:
    """Canonical JSON as docker/go canonical/json writes it (sorted keys, no spaces, only \\ and " escaped)."""

    def enc(v):
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            assert v.is_integer(), v
            return str(int(v))
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ",".join(enc(x) for x in v) + "]"
        if isinstance(v, dict):
            keys = sorted(v, key=lambda k: k.encode())
            return "{" + ",".join(enc(k) + ":" + enc(v[k]) for k in keys) + "}"
        raise TypeError(type(v))

    return enc(value).encode()


def envelope(doc) -> bytes:
    """Serialises {"signed", "signatures"} the way notary does (signed canonical, compact)."""
    sigs = ",".join(
        json.dumps({"keyid": s["keyid"], "method": s["method"], "sig": s["sig"]}, separators=(",", ":"))
        for s in doc["signatures"]
    )
    return b'{"signed":' + canon(doc["signed"]) + b',"signatures":[' + sigs.encode() + b"]}"


def parse(data: bytes):
    return json.loads(data)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_id(keytype: str, public_b64: str) -> str:
    return hashlib.sha256(canon({"keytype": keytype, "keyval": {"private": None, "public": public_b64}})).hexdigest()


def meta_for(data: bytes):
    return {
        "hashes": {"sha256": b64(hashlib.sha256(data).digest()), "sha512": b64(hashlib.sha512(data).digest())},
        "length": len(data),
    }


def flip_b64(value: str) -> str:
    """Flips one bit of the first byte of a base64 value; the result has the same length."""
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 0x01
    return b64(bytes(raw))


def parse_time(value: str) -> dt.datetime:
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", value)
    assert m, value
    return dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=dt.timezone.utc)


def fmt_time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cert_of(key) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(key["keyval"]["public"]))


def canonical_id_of_cert(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    keytype = "ecdsa" if isinstance(cert.public_key(), ec.EllipticCurvePublicKey) else "rsa"
    return key_id(keytype, b64(spki))


# --- publications --------------------------------------------------------------------------------


class Pub:
    """One publication as downloaded: relative path -> exact bytes, plus what `notary list` said."""

    def __init__(self, path: Path):
        self.name = path.name
        self.gun = (path / "gun").read_text().strip()
        self.files = {}
        for f in sorted((path / "metadata").rglob("*.json")):
            self.files[f.relative_to(path / "metadata").as_posix()] = f.read_bytes()
        for rel, data in self.files.items():
            # The served files are exactly notary's serialisation; re-encoding must reproduce them,
            # so the mutated files below differ from real ones only where a case changes them.
            assert envelope(parse(data)) == data, f"{self.name}/{rel} does not round-trip"
        self.tables = parse_list((path / "list.txt").read_text())
        self.key_list = (path / "keys.txt").read_text()

    def doc(self, rel):
        return parse(self.files[rel])

    def tags(self):
        """The reference answer: the first `notary list` table (DCT's resolution order)."""
        return self.tables[0]

    def copy(self):
        return dict(self.files)


def parse_list(text: str):
    tables, current = [], None
    for line in text.splitlines():
        cols = line.split()
        if not cols:
            continue
        if cols[0] == "NAME":
            current = []
            tables.append(current)
        elif cols[0].startswith("----"):
            continue
        elif current is not None and len(cols) == 4:
            current.append({"tag": cols[0], "digest": "sha256:" + cols[1], "size": int(cols[2]), "role": cols[3]})
    return tables


# --- signing -------------------------------------------------------------------------------------


class Keys:
    """The private keys the notary CLI made, by canonical key ID, plus the generator's own ed25519
    timestamp key (notary-server keeps the real timestamp key to itself)."""

    def __init__(self, keys_dir: Path):
        self.by_id = {}
        for f in sorted(keys_dir.rglob("*.pem")):
            key = serialization.load_pem_private_key(f.read_bytes(), None)
            spki = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            self.by_id[key_id("ecdsa", b64(spki))] = key
        self.timestamp = ed25519.Ed25519PrivateKey.generate()
        raw = self.timestamp.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.timestamp_key = {"keytype": "ed25519", "keyval": {"private": None, "public": b64(raw)}}
        self.timestamp_id = key_id("ed25519", b64(raw))

    def private_for(self, root_signed, kid):
        if kid == self.timestamp_id:
            return self.timestamp
        key = root_signed["keys"][kid]
        if key["keytype"].endswith("-x509"):
            return self.by_id[canonical_id_of_cert(cert_of(key))]
        return self.by_id[kid]

    def sign(self, root_signed, kid, signed):
        priv = self.private_for(root_signed, kid)
        msg = canon(signed)
        if isinstance(priv, ed25519.Ed25519PrivateKey):
            return {"keyid": kid, "method": "eddsa", "sig": b64(priv.sign(msg))}
        r, s = decode_dss_signature(priv.sign(msg, ec.ECDSA(hashes.SHA256())))
        return {"keyid": kid, "method": "ecdsa", "sig": b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}

    def sign_role(self, root_signed, role, signed):
        return [self.sign(root_signed, kid, signed) for kid in root_signed["roles"][role]["keyids"]]


class Resigner:
    """Rebuilds a publication as a chain the generator can sign end to end.

    The root is the real one with the timestamp key swapped for the generator's and is re-signed
    with the real root key; snapshot is re-signed with the real snapshot key; timestamp with the
    generator's key. Versions and expiry dates are kept. The `good-resigned` case proves such a
    chain verifies, so a case built on it fails only where it was changed.
    """

    def __init__(self, keys: Keys):
        self.keys = keys
        self.roots = {}

    def root(self, original: bytes, edit=None) -> bytes:
        cache_key = (original, edit)
        if cache_key not in self.roots:
            signed = parse(original)["signed"]
            old = signed["roles"]["timestamp"]["keyids"]
            for kid in old:
                del signed["keys"][kid]
            signed["keys"][self.keys.timestamp_id] = self.keys.timestamp_key
            signed["roles"]["timestamp"]["keyids"] = [self.keys.timestamp_id]
            signer_view = json.loads(json.dumps(signed))  # keys as they are before `edit`
            if edit:
                edit(signed)
            sigs = self.keys.sign_role(signer_view, "root", signed)
            self.roots[cache_key] = envelope({"signed": signed, "signatures": sigs})
        return self.roots[cache_key]

    def rechain(self, files, resign_snapshot=True, snapshot_bump=0, timestamp_bump=0):
        """Recomputes snapshot meta (unless told not to re-sign it) and timestamp meta, and signs."""
        root = parse(files["root.json"])["signed"]
        if resign_snapshot:
            snap = parse(files["snapshot.json"])["signed"]
            for rel in snap["meta"]:
                snap["meta"][rel] = meta_for(files[rel + ".json"])
            snap["version"] += snapshot_bump
            files["snapshot.json"] = envelope({"signed": snap, "signatures": self.keys.sign_role(root, "snapshot", snap)})
        ts = parse(files["timestamp.json"])["signed"]
        ts["meta"]["snapshot"] = meta_for(files["snapshot.json"])
        ts["version"] += timestamp_bump
        files["timestamp.json"] = envelope({"signed": ts, "signatures": self.keys.sign_role(root, "timestamp", ts)})
        return files

    def world(self, pub: Pub, root_edit=None):
        files = pub.copy()
        files["root.json"] = self.root(pub.files["root.json"], root_edit)
        return self.rechain(files)


# --- validity windows ----------------------------------------------------------------------------


def windows(files):
    """(what, not_before, not_after) for every expiry a verifier checks in one metadata set."""
    out = []
    root = parse(files["root.json"])["signed"]
    for kid in root["roles"]["root"]["keyids"]:
        cert = cert_of(root["keys"][kid])
        out.append(("root certificate", cert.not_valid_before_utc, cert.not_valid_after_utc))
    for rel, data in files.items():
        if re.fullmatch(r"\d+\.root\.json", rel):
            continue
        signed = parse(data)["signed"]
        out.append((rel, None, parse_time(signed["expires"])))
    return out


def violated(files, at):
    return sorted({what for what, nb, na in windows(files) if (nb and at < nb) or at >= na})


# --- cases ---------------------------------------------------------------------------------------


def build(pubs_dir: Path, keys_dir: Path, out: Path):
    pubs = {p.name: Pub(p) for p in sorted(pubs_dir.iterdir()) if p.is_dir()}
    keys = Keys(keys_dir / "main")
    rs = Resigner(keys)
    main2, main3, main4 = (pubs[f"main-{i}"] for i in range(2, 5))
    deleg, short, foreign = pubs["deleg-1"], pubs["short-1"], pubs["foreign-1"]

    # Every case is checked at one instant an hour after generation unless it is about expiry.
    at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=1)
    cases = {}

    def case(name, files, expect, description, *, gun=None, before=None, at_time=None, error=(), any_of=(),
             root_keys=(), tags_from=None, oversize=None, expired=()):
        when = at_time or at
        for label, fs in (("metadata", files), ("before", before)):
            if fs is None:
                continue
            bad = violated(fs, when)
            want = sorted(expired) if label == "metadata" else []
            assert bad == want, f"{name}/{label}: at {fmt_time(when)} violates {bad}, expected {want}"
        body = {"gun": gun or main2.gun, "at": fmt_time(when), "expect": expect}
        if expect == "error":
            body["error_contains"] = list(error)
            if any_of:
                body["error_contains_any"] = list(any_of)
        if root_keys:
            body["root_keys"] = list(root_keys)
        if tags_from is not None:
            body["tags"] = {t["tag"]: t["digest"] for t in tags_from.tags()}
            body["tag_sizes"] = {t["tag"]: t["size"] for t in tags_from.tags()}
            body["tag_roles"] = {t["tag"]: t["role"] for t in tags_from.tags()}
        if oversize:
            body["oversize"] = {"file": oversize, "bytes": OVERSIZE_BYTES}
        body["description"] = description
        assert name not in cases, name
        cases[name] = (body, files, before)

    # --- accepted ------------------------------------------------------------------------------
    case("good-targets", main2.copy(), "ok",
         "Real publication with v1 and v2 signed in targets by the repository key; verifies.",
         tags_from=main2)
    case("good-releases-delegation", deleg.copy(), "ok",
         "v0 signed in targets by the owner and v1 in targets/releases and targets/alice by a signer "
         "with an openssl P-256 certificate; v1 resolves through targets/releases.",
         gun=deleg.gun, tags_from=deleg)
    case("good-root-rotation", main4.copy(), "ok",
         "before/ holds the repository under its first root; metadata/ is after `notary key rotate root`, "
         "with 1.root.json and 2.root.json, root v2 signed by the old and the new root key; verifies.",
         before=main3.copy(), tags_from=main4)
    case("good-resigned", rs.world(main2), "ok",
         "Control for the re-signed cases: main publication with the timestamp key swapped for the "
         "generator's, root and snapshot re-signed with the real notary keys; verifies.",
         tags_from=main2)

    root_signed = main2.doc("root.json")["signed"]
    cert_id = root_signed["roles"]["root"]["keyids"][0]
    canonical_id = canonical_id_of_cert(cert_of(root_signed["keys"][cert_id]))
    assert canonical_id in main2.key_list, "notary key list does not print the canonical root key ID"
    assert canonical_id != cert_id
    case("pinned-root-canonical-id", main2.copy(), "ok",
         "Good data pinned with the canonical root key ID that `notary key list` prints (the ID of the "
         "public key inside the root certificate); verifies.",
         root_keys=[canonical_id], tags_from=main2)
    case("pinned-root-cert-id", main2.copy(), "ok",
         "Good data pinned with the certificate key ID, the key ID used inside root.json; verifies.",
         root_keys=[cert_id], tags_from=main2)

    # --- payload and signature tampering -------------------------------------------------------
    files = main2.copy()
    targets = main2.doc("targets.json")
    targets["signed"]["targets"]["v1"]["hashes"]["sha256"] = flip_b64(targets["signed"]["targets"]["v1"]["hashes"]["sha256"])
    files["targets.json"] = envelope(targets)
    assert len(files["targets.json"]) == len(main2.files["targets.json"])
    case("tampered-target-digest", files, "error",
         "The v1 digest in targets.json is changed and snapshot is left alone, so targets.json no longer "
         "matches the hash snapshot lists for it (same length): the snapshot hash check on targets fails.",
         error=["targets", "hash mismatch"])

    files = rs.world(main2)
    files["targets.json"] = envelope(targets)
    rs.rechain(files)
    case("tampered-target-resigned", files, "error",
         "The v1 digest in targets.json is changed and snapshot/timestamp are recomputed and re-signed "
         "(real snapshot key, generator timestamp key in a re-signed root), so only the targets "
         "signature fails: targets signature threshold not met.",
         error=["targets", "threshold"])

    files = main2.copy()
    ts = main2.doc("timestamp.json")
    ts["signatures"][0]["sig"] = flip_b64(ts["signatures"][0]["sig"])
    files["timestamp.json"] = envelope(ts)
    case("bad-signature", files, "error",
         "One byte of the server's ed25519 signature on timestamp.json is flipped (timestamp is hashed by "
         "nothing else, so the signature check is the first to fail): timestamp threshold not met.",
         error=["timestamp", "threshold"])

    files = rs.world(main2)
    doc = parse(files["targets.json"])
    doc["signatures"] = []
    files["targets.json"] = envelope(doc)
    rs.rechain(files)
    case("missing-signatures", files, "error",
         "targets.json with its signatures array emptied; snapshot and timestamp recomputed and re-signed "
         "so the chain is intact: targets has no signatures, threshold not met.",
         error=["targets"], any_of=["threshold", "no signature"])

    def raise_root_threshold(signed):
        signed["roles"]["root"]["threshold"] = 2

    files = rs.world(main2, raise_root_threshold)
    assert len(parse(files["root.json"])["signatures"]) == 1
    case("threshold-not-met", files, "error",
         "Root threshold raised to 2 and root re-signed with the one real root key (chain recomputed), so "
         "root has 1 of 2 required signatures: root threshold not met.",
         error=["root", "threshold"])

    files = main2.copy()
    ts = main2.doc("timestamp.json")
    ts["signed"]["version"] += 1
    files["timestamp.json"] = envelope(ts)
    case("version-bumped-unsigned", files, "error",
         "timestamp.json version incremented without re-signing (what a replaying server would do to beat "
         "rollback checks): timestamp signature no longer verifies, threshold not met.",
         error=["timestamp", "threshold"])

    files = main2.copy()
    ts = main2.doc("timestamp.json")
    snapshot_kid = root_signed["roles"]["snapshot"]["keyids"][0]
    ts["signatures"][0]["keyid"] = snapshot_kid
    files["timestamp.json"] = envelope(ts)
    case("relabelled-key-id", files, "error",
         "The keyid of timestamp's signature relabelled to the snapshot key's ID (a key root knows, but not "
         "a timestamp key, and not the key that made the signature): timestamp threshold not met.",
         error=["timestamp", "threshold"])

    files = rs.world(main2)
    doc = parse(files["snapshot.json"])
    assert doc["signatures"][0]["method"] == "ecdsa"
    doc["signatures"][0]["method"] = "rsapss"
    files["snapshot.json"] = envelope(doc)
    rs.rechain(files, resign_snapshot=False)
    case("method-mismatch", files, "error",
         "snapshot's ecdsa signature relabelled as rsapss (timestamp recomputed over the new snapshot bytes "
         "and re-signed): the method does not fit the P-256 key, so snapshot has no valid signature.",
         error=["snapshot"], any_of=["does not fit", "threshold"])

    targets_kid = root_signed["roles"]["targets"]["keyids"][0]
    fake_kid = hashlib.sha256(b"trustgate: not the ID of this key").hexdigest()

    def relabel_targets_key(signed):
        signed["keys"][fake_kid] = signed["keys"].pop(targets_kid)
        signed["roles"]["targets"]["keyids"] = [fake_kid]

    files = main2.copy()
    files["root.json"] = rs.root(main2.files["root.json"], relabel_targets_key)
    doc = parse(files["targets.json"])
    doc["signatures"][0]["keyid"] = fake_kid
    files["targets.json"] = envelope(doc)
    rs.rechain(files)
    case("key-id-content-mismatch", files, "error",
         "root.json lists the targets key under an ID that is not the hash of the key (root re-signed, "
         "targets signature relabelled to match, chain recomputed): a key whose ID does not match its "
         "content is an error (root or targets).",
         error=["key id"])

    files = deleg.copy()
    doc = deleg.doc("targets/releases.json")
    doc["signed"]["targets"]["v1"]["hashes"]["sha256"] = flip_b64(doc["signed"]["targets"]["v1"]["hashes"]["sha256"])
    files["targets/releases.json"] = envelope(doc)
    assert len(files["targets/releases.json"]) == len(deleg.files["targets/releases.json"])
    case("delegation-tampered-digest", files, "error",
         "The v1 digest in targets/releases.json is changed and snapshot is left alone: the snapshot hash "
         "check on targets/releases fails (a delegation hash mismatch fails the whole update, as in notary).",
         gun=deleg.gun, error=["targets/releases", "hash mismatch"])

    # --- expiry --------------------------------------------------------------------------------
    ts_expires = parse_time(main2.doc("timestamp.json")["signed"]["expires"]).replace(microsecond=0)
    case("expired-timestamp", main2.copy(), "error",
         "Real data checked one day after timestamp.json's 14-day expiry and before every other expiry "
         "(snapshot, targets, root, root certificate): timestamp expired.",
         at_time=ts_expires + dt.timedelta(days=1), error=["timestamp", "expired"], expired=["timestamp.json"])

    short_root = short.doc("root.json")["signed"]
    short_cert = cert_of(short_root["keys"][short_root["roles"]["root"]["keyids"][0]])
    case("expired-root-certificate", short.copy(), "error",
         "Repository initialised with `notary init --rootkey --rootcert` and a one-day openssl certificate; "
         "checked an hour after the certificate expires, inside every metadata validity window: root "
         "certificate expired.",
         gun=short.gun, at_time=short_cert.not_valid_after_utc + dt.timedelta(hours=1),
         error=["root", "expired"], expired=["root certificate"])

    # --- rollback, freeze and mix-and-match ------------------------------------------------------
    assert main3.doc("timestamp.json")["signed"]["version"] > main2.doc("timestamp.json")["signed"]["version"]
    case("rollback-timestamp", main2.copy(), "error",
         "before/ is a newer real publication (tag v2 re-signed with a new digest), metadata/ the older one from the same server "
         "and keys: timestamp version goes backwards, rollback.",
         before=main3.copy(), error=["timestamp", "rollback"])

    newer = rs.world(main3)
    older = rs.world(main2)
    assert parse(newer["root.json"]) == parse(older["root.json"])
    newer_ts = parse(newer["timestamp.json"])["signed"]["version"]
    older_ts = parse(older["timestamp.json"])["signed"]["version"]
    assert parse(newer["snapshot.json"])["signed"]["version"] > parse(older["snapshot.json"])["signed"]["version"]
    files = dict(older)
    rs.rechain(files, resign_snapshot=False, timestamp_bump=newer_ts + 1 - older_ts)
    case("rollback-snapshot", files, "error",
         "before/ is the newer publication, metadata/ the older snapshot and targets under a fresh timestamp "
         "with a higher version (re-signed with the generator's timestamp key): snapshot version goes "
         "backwards, rollback.",
         before=newer, error=["snapshot", "rollback"])

    assert parse(newer["targets.json"])["signed"]["version"] > parse(older["targets.json"])["signed"]["version"]
    files = dict(newer)
    files["targets.json"] = older["targets.json"]
    rs.rechain(files, snapshot_bump=1, timestamp_bump=1)
    case("rollback-targets", files, "error",
         "before/ is the newer publication, metadata/ a newer snapshot and timestamp (re-signed with the "
         "real snapshot key) that list the older targets.json: targets version goes backwards, rollback.",
         before=newer, error=["targets", "rollback"])

    files = main3.copy()
    files["targets.json"] = main2.files["targets.json"]
    assert len(main2.files["targets.json"]) == len(main3.files["targets.json"]), "gen.sh evens the lengths"
    case("mix-and-match", files, "error",
         "targets.json from one real publication served with root, snapshot and timestamp from the next "
         "one (both files have the same length): the snapshot hash check on targets fails.",
         error=["targets", "hash mismatch"])

    # --- root of trust -------------------------------------------------------------------------
    case("foreign-root", foreign.copy(), "error",
         "before/ is the repository as first trusted; metadata/ is a different repository initialised under "
         "the same GUN with new keys (after `notary delete --remote`): the new root is not signed by the "
         "trusted root's keys, root rotation refused.",
         before=main2.copy(), error=["root rotation"])
    case("wrong-gun-root-cert", main2.copy(), "error",
         f"Data made for {main2.gun} presented as {GUN_OTHER}: the root certificate's common name is not "
         "the GUN.",
         gun=GUN_OTHER, error=["common name"])
    case("pinned-root-mismatch", main2.copy(), "error",
         "Good data, but the root key is pinned to a random 64-hex ID that is neither the certificate nor "
         "the canonical ID: pinned root key mismatch.",
         root_keys=[secrets.token_hex(32)], error=["pinned root key"])

    # --- resource limits (padding added at test time; see tests/trust_fixtures.rs) --------------
    case("oversized-metadata", main2.copy(), "error",
         "Good data whose targets.json the test pads with 20 MiB inside a JSON string before running: "
         "rejected for size (too large, or longer than the length snapshot lists).",
         oversize="targets.json", error=["targets"], any_of=["too large", "length mismatch"])
    case("oversized-timestamp", main2.copy(), "error",
         "Good data whose timestamp.json (which nothing lists a length for) the test pads with 20 MiB "
         "inside a JSON string before running: too large.",
         oversize="timestamp.json", error=["timestamp", "too large"])

    write_cases(out, cases)


def write_cases(out: Path, cases):
    for name, (body, files, before) in sorted(cases.items()):
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        for label, fs in (("metadata", files), ("before", before)):
            if fs is None:
                continue
            for rel, data in sorted(fs.items()):
                path = folder / label / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        (folder / "case.json").write_text(json.dumps(body, indent=2) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


# --- oracle: notary's own client against each folder ----------------------------------------------


class Served:
    directory = None


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves a case folder the way notary-server serves a GUN (plain, checksum and version names)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path in ("/v2/", "/v2"):
            return self.reply(200, b"{}")
        m = re.fullmatch(r"/v2/.+?/_trust/tuf/(.+)\.json", self.path)
        if not m or Served.directory is None:
            return self.reply(404, b"{}")
        name, base = m.group(1), Served.directory
        data = None
        c = re.fullmatch(r"(.+)\.([0-9a-f]{64}|[0-9a-f]{128})", name)
        v = re.fullmatch(r"(\d+)\.(.+)", name)
        if c and (base / (c.group(1) + ".json")).is_file():
            # Served whatever the checksum asked for, as a lying server would, so that notary's
            # client gets to check the hash itself.
            data = (base / (c.group(1) + ".json")).read_bytes()
        elif v and (base / (name + ".json")).is_file():
            data = (base / (name + ".json")).read_bytes()
        elif v and (base / (v.group(2) + ".json")).is_file():
            raw = (base / (v.group(2) + ".json")).read_bytes()
            if parse(raw)["signed"]["version"] == int(v.group(1)):
                data = raw
        elif (base / (name + ".json")).is_file():
            data = (base / (name + ".json")).read_bytes()
        if data is None:
            return self.reply(404, b"{}")
        self.reply(200, data)

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # notary hangs up on oversized bodies


def pad(path: Path, size: int):
    data = path.read_bytes()
    assert data.startswith(b"{")
    path.write_bytes(b'{"padding":"' + b"A" * size + b'",' + data[1:])


def oracle(cases_dir: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    failures = 0
    try:
        for folder in sorted(p for p in cases_dir.iterdir() if (p / "case.json").is_file()):
            spec = json.loads((folder / "case.json").read_text())
            verdict, note = run_notary(folder, spec, url)
            print(f"{folder.name:28} expect {spec['expect']:5} notary: {verdict:5} {note}")
            if verdict not in (spec["expect"], "skip"):
                failures += 1
    finally:
        server.shutdown()
    if failures:
        sys.exit(f"notary's client disagrees with {failures} case(s)")


def run_notary(folder: Path, spec, url):
    if any("expired" in e for e in spec.get("error_contains", [])):
        return "skip", "(about expiry; notary's client only knows the wall clock)"
    if spec.get("root_keys") and spec["expect"] == "ok" and "canonical" in folder.name:
        return "skip", "(notary pins certificate IDs only; trustgate accepts both IDs by design)"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = {"trust_dir": str(tmp / "trust"), "remote_server": {"url": url}}
        if spec.get("root_keys"):
            config["trust_pinning"] = {"certs": {spec["gun"]: spec["root_keys"]}}
        (tmp / "config.json").write_text(json.dumps(config))
        for label in ("before", "metadata"):
            src = folder / label
            if not src.is_dir():
                continue
            shutil.copytree(src, tmp / label)
            if label == "metadata" and "oversize" in spec:
                pad(tmp / label / spec["oversize"]["file"], spec["oversize"]["bytes"])
            Served.directory = tmp / label
            proc = subprocess.run(
                ["notary", "-c", str(tmp / "config.json"), "list", spec["gun"]],
                capture_output=True, text=True, env={**os.environ, "NOTARY_ROOT_PASSPHRASE": "unused"},
            )
            if label == "before" and proc.returncode != 0:
                return "error", f"before/ rejected: {last_line(proc.stdout + proc.stderr)}"
        if proc.returncode != 0:
            return "error", last_line(proc.stdout + proc.stderr)
        listed = {t["tag"]: t["digest"] for t in (parse_list(proc.stdout) or [[]])[0]}
        if spec["expect"] == "ok" and listed != spec.get("tags"):
            return "mismatch", f"lists {listed}"
        return "ok", ""


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return re.sub(r"https?://127\.0\.0\.1:\d+", "<server>", lines[-1]) if lines else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--pubs", type=Path, required=True)
    b.add_argument("--keys", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    o = sub.add_parser("oracle")
    o.add_argument("--cases", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "build":
        build(args.pubs, args.keys, args.out)
    else:
        oracle(args.cases)


if __name__ == "__main__":
    main()
