#!/usr/bin/env python3
"""Invariants of the trustgate chart's rendered manifests, beyond what the Kubernetes schemas
check: security contexts, probes, that every file trustgate.yaml names is mounted from the
Secret or ConfigMap key that holds it, selectors that select, an egress policy without an
allow-all rule, and the dashboard ConfigMap holding exactly dashboards/trustgate.json.

With --config-out DIR it also writes the rendered trustgate.yaml with its paths moved under
DIR and creates every file it names (from --pem-cert/--pem-key/--pem-crl), so that
`trustgate config validate` can check the configuration the chart produces.
"""

import argparse
import hashlib
import json
import os
import re
import sys

import yaml

CONFIG_PATH = "/etc/trustgate/trustgate.yaml"
# An htpasswd entry (bcrypt, cost 4, password "not-a-real-password") for the rendered configuration's htpasswd_file.
HTPASSWD = b"chart-test:$2y$04$UNHIqXwH375EqsxltsuA5OAilMLflhV/c70sKsP15Au0DVsIJkwIy\n"
CACHE_DIR = "/var/cache/trustgate"

failures = []


def check(cond, message):
    if not cond:
        failures.append(message)
    return cond


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def mount_for(path, mounts):
    """The mount whose mountPath is the longest prefix of path."""
    best = None
    for m in mounts:
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    return best


def provides(volume, mount, path):
    """Whether `volume` mounted by `mount` provides the file at `path`."""
    if mount.get("subPath"):
        return path == mount["mountPath"]
    rel = os.path.relpath(path, mount["mountPath"])
    for source in ("secret", "configMap"):
        if source in volume:
            items = volume[source].get("items")
            # Without items every key is a file; with items only their paths are.
            return items is None or any(i["path"] == rel for i in items)
    return "emptyDir" in volume or "persistentVolumeClaim" in volume


def config_files(config):
    """Every (what, path) of a file trustgate.yaml makes trustgate read."""
    out = []
    tls = (config.get("server") or {}).get("tls") or {}
    for key in ("cert_file", "key_file"):
        if key in tls:
            out.append(("server.tls." + key, tls[key]))
    server = config.get("server") or {}
    if "admin_token_file" in server:
        out.append(("server.admin_token_file", server["admin_token_file"]))
    for i, u in enumerate(config.get("upstreams") or []):
        for key in ("password_file", "ca_file"):
            if key in u:
                out.append((f"upstreams[{i}].{key}", u[key]))
    for i, n in enumerate(config.get("notary_servers") or []):
        if "ca_file" in n:
            out.append((f"notary_servers[{i}].ca_file", n["ca_file"]))
    s3 = (config.get("storage") or {}).get("s3") or {}
    for key in ("access_key_id_file", "secret_access_key_file", "trust_state_key_file"):
        if key in s3:
            out.append(("storage.s3." + key, s3[key]))
    auth = config.get("auth") or {}
    for key in ("htpasswd_file", "token_key_file"):
        if key in auth:
            out.append(("auth." + key, auth[key]))
    for i, t in enumerate(auth.get("tokens") or []):
        out.append((f"auth.tokens[{i}].file", t["file"]))
    certs = auth.get("client_certificates") or {}
    if "ca_file" in certs:
        out.append(("auth.client_certificates.ca_file", certs["ca_file"]))
    for i, f in enumerate(certs.get("crl_files") or []):
        out.append((f"auth.client_certificates.crl_files[{i}]", f))
    for i, r in enumerate((config.get("policy") or {}).get("rules") or []):
        for key in r.get("root_keys") or []:
            if not re.fullmatch(r"[0-9a-f]{64}", key):
                out.append((f"policy.rules[{i}].root_keys", key))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rendered", required=True)
    ap.add_argument("--values", required=True, help="merged values, JSON")
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--expect-kinds", required=True, help="comma-separated kinds, exactly")
    ap.add_argument("--config-out")
    ap.add_argument("--pem-cert")
    ap.add_argument("--pem-key")
    ap.add_argument("--pem-crl")
    args = ap.parse_args()

    with open(args.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(args.values) as f:
        values = json.load(f)

    kinds = sorted({d["kind"] for d in docs})
    expected = sorted(k for k in args.expect_kinds.split(",") if k)
    check(kinds == expected, f"kinds {kinds}, expected {expected}")
    seen = set()
    for d in docs:
        key = (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace"))
        check(key not in seen, f"duplicate object {key}")
        seen.add(key)
        check(d["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "Helm",
              f"{key} lacks the standard labels")

    workloads = by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet")
    if not check(len(workloads) == 1, f"{len(workloads)} workloads, expected 1"):
        return
    w = workloads[0]
    pod = w["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    check(selects(w["spec"]["selector"]["matchLabels"], pod_labels), "workload selector")
    check(spec.get("automountServiceAccountToken") is False, "service account token mounted")
    psc = spec.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0,
          f"pod securityContext not non-root: {psc}")
    checksum = pod["metadata"].get("annotations", {}).get("checksum/config", "")
    check(re.fullmatch(r"[0-9a-f]{64}", checksum), "checksum/config annotation missing")
    containers = spec["containers"]
    check(len(containers) == 1, "one container")
    c = containers[0]
    sc = c.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, "root filesystem writable")
    check(sc.get("allowPrivilegeEscalation") is False, "privilege escalation allowed")
    check("ALL" in sc.get("capabilities", {}).get("drop", []), "capabilities not dropped")
    check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, "container may run as root")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports == {"registry": 5000, "admin": 9090}, f"container ports {ports}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") == "admin",
              f"{probe} is not GET {path} on the admin port: {get}")

    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for t in w["spec"].get("volumeClaimTemplates", []):
        volumes[t["metadata"]["name"]] = {"persistentVolumeClaim": {}}
    mounts = c.get("volumeMounts", [])
    for m in mounts:
        check(m["name"] in volumes, f"volumeMount {m['name']} has no volume")
    cache_mount = mount_for(CACHE_DIR, mounts)
    check(cache_mount is not None and cache_mount["mountPath"] == CACHE_DIR
          and cache_mount["name"] == "cache", "cache directory is not the cache volume")
    check(values["cache"]["persistence"]["enabled"] == (w["kind"] == "StatefulSet"),
          "a persistent cache needs a StatefulSet (one cache per replica)")

    # The configuration: mounted, and every file it names is mounted from its source.
    config_mount = mount_for(CONFIG_PATH, mounts)
    config = None
    config_text = ""
    if check(config_mount is not None and config_mount.get("subPath") == "trustgate.yaml",
             "trustgate.yaml is not mounted"):
        cm_name = volumes[config_mount["name"]]["configMap"]["name"]
        cms = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == cm_name]
        if check(len(cms) == 1, f"ConfigMap {cm_name} missing"):
            config_text = cms[0]["data"]["trustgate.yaml"]
            config = yaml.safe_load(config_text)
    if config is not None:
        check(config["cache"]["dir"] == CACHE_DIR, "cache.dir is not the mounted volume")
        check(config["server"]["admin_listen"].endswith(":9090")
              and config["server"]["listen"].endswith(":5000"), "listen ports")
        for what, path in config_files(config):
            m = mount_for(path, mounts)
            check(m is not None and provides(volumes.get(m["name"], {}), m, path),
                  f"{what} {path} is not provided by any mounted volume")
        for i, u in enumerate(values["upstreams"]):
            cred = u.get("credentials")
            if cred:
                m = mount_for(config["upstreams"][i]["password_file"], mounts)
                items = volumes[m["name"]]["secret"]["items"]
                check(items[0]["key"] == cred.get("passwordKey", "password")
                      and volumes[m["name"]]["secret"]["secretName"] == cred["existingSecret"],
                      f"upstreams[{i}] password does not come from its Secret key")
        s3 = values["storage"]["s3"]
        if values["storage"]["backend"] == "s3":
            check(config["storage"]["s3"]["bucket"] == s3["bucket"], "storage.s3.bucket")
            if s3["existingSecret"]:
                m = mount_for(config["storage"]["s3"]["access_key_id_file"], mounts)
                secret = volumes[m["name"]]["secret"]
                check(secret["secretName"] == s3["existingSecret"]
                      and [i["key"] for i in secret["items"]]
                      == [s3["accessKeyIdKey"], s3["secretAccessKeyKey"]],
                      "storage.s3 keys do not come from their Secret")
            if s3.get("trustStateKeySecret"):
                m = mount_for(config["storage"]["s3"]["trust_state_key_file"], mounts)
                secret = volumes[m["name"]]["secret"]
                check(secret["secretName"] == s3["trustStateKeySecret"]
                      and [i["key"] for i in secret["items"]] == [s3["trustStateKeyKey"]],
                      "storage.s3 trust state key does not come from its Secret")
            else:
                check("trust_state_key_file" not in config["storage"]["s3"],
                      "a trust state key file without its Secret")
        else:
            check("storage" not in config, "storage rendered for the local backend")

        if values["auth"]["enabled"]:
            auth = values["auth"]
            check("auth" in config, "auth.enabled without an auth section")
            secrets = [("htpasswd_file", auth["htpasswd"]["existingSecret"],
                        auth["htpasswd"].get("key", "htpasswd")),
                       ("token_key_file", auth["tokenKey"]["existingSecret"],
                        auth["tokenKey"].get("key", "token.key"))]
            for key, name, item in secrets:
                if name:
                    m = mount_for(config["auth"][key], mounts)
                    secret = volumes[m["name"]]["secret"]
                    check(secret["secretName"] == name
                          and [i["key"] for i in secret["items"]] == [item],
                          f"auth.{key} does not come from its Secret key")
                else:
                    check(key not in config["auth"], f"auth.{key} without its Secret")
            tokens = config["auth"].get("tokens") or []
            check([t["name"] for t in tokens] == [t["name"] for t in auth["tokens"]],
                  "auth.tokens names")
            login = auth.get("loginFailures") or {}
            wanted = {k: login[v] for k, v in [("burst", "burst"), ("per_minute", "perMinute")]
                      if login.get(v)}
            check((config["auth"].get("login_failures") or {}) == wanted,
                  "auth.login_failures does not follow auth.loginFailures")
            check(config["auth"].get("password_cache_ttl", "") == auth.get("passwordCacheTtl", ""),
                  "auth.password_cache_ttl does not follow auth.passwordCacheTtl")
            for t, v in zip(tokens, auth["tokens"]):
                m = mount_for(t["file"], mounts)
                secret = volumes[m["name"]]["secret"]
                check(secret["secretName"] == v["secret"]
                      and [i["key"] for i in secret["items"]] == [v.get("key", "token")],
                      f"auth token {t['name']} does not come from its Secret key")
            certs = auth.get("clientCertificates") or {}
            rendered = config["auth"].get("client_certificates")
            if certs.get("enabled"):
                check(rendered is not None, "auth.clientCertificates without client_certificates")
                sources = [("ca_file", rendered["ca_file"], certs["ca"], "ca.crt")]
                files = rendered.get("crl_files") or []
                check(len(files) == len(certs.get("crls") or []), "auth.client_certificates.crl_files")
                sources += [(f"crl_files[{i}]", f, c, "crl.pem")
                            for i, (f, c) in enumerate(zip(files, certs.get("crls") or []))]
                for key, path, source, default in sources:
                    m = mount_for(path, mounts)
                    # A directory, so the kubelet updates the file for the next reload.
                    check(m is not None and not m.get("subPath"),
                          f"auth.client_certificates.{key} is not on a directory mount")
                    volume = volumes[m["name"]]
                    kind, name = (("configMap", "name") if source.get("configMap")
                                  else ("secret", "secretName"))
                    item = source.get("key", default)
                    check(kind in volume
                          and volume[kind][name] == source.get("configMap", source.get("secret"))
                          and [i["key"] for i in volume[kind]["items"]] == [item]
                          and path.endswith("/" + item),
                          f"auth.client_certificates.{key} does not come from its {kind} key")
                check(rendered.get("principals") == certs.get("principals"),
                      "auth.client_certificates.principals")
            else:
                check(rendered is None, "client_certificates without auth.clientCertificates")
        else:
            check("auth" not in config, "auth rendered although auth.enabled is false")

    # Services select the pods and name container ports.
    for s in by_kind(docs, "Service"):
        check(selects(s["spec"]["selector"], pod_labels), f"Service {s['metadata']['name']}")
        for p in s["spec"]["ports"]:
            check(p["targetPort"] in ports, f"Service port {p['name']} targets nothing")
    main_service = [s for s in by_kind(docs, "Service") if s["spec"].get("clusterIP") != "None"]
    check(len(main_service) == 1, "one client-facing Service")

    for h in by_kind(docs, "HorizontalPodAutoscaler"):
        ref = h["spec"]["scaleTargetRef"]
        check(ref["kind"] == w["kind"] and ref["name"] == w["metadata"]["name"], "HPA target")
        check("replicas" not in w["spec"], "replicas set although the HPA owns them")
    for p in by_kind(docs, "PodDisruptionBudget"):
        check(selects(p["spec"]["selector"]["matchLabels"], pod_labels), "PDB selector")
        check(("minAvailable" in p["spec"]) != ("maxUnavailable" in p["spec"]), "PDB fields")
    for sm in by_kind(docs, "ServiceMonitor"):
        svc = main_service[0]
        check(selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]),
              "ServiceMonitor selects no Service")
        names = {p["name"] for p in svc["spec"]["ports"]}
        for e in sm["spec"]["endpoints"]:
            check(e["port"] in names and e.get("path") == "/metrics",
                  f"ServiceMonitor endpoint {e}")
    for i in by_kind(docs, "Ingress"):
        for rule in i["spec"]["rules"]:
            if values["auth"]["enabled"]:
                check(any(p["path"] in ("/token", "/") for p in rule["http"]["paths"]),
                      f"Ingress host {rule.get('host')} does not route /token (the token realm)")
            for p in rule["http"]["paths"]:
                b = p["backend"]["service"]
                check(b["name"] == main_service[0]["metadata"]["name"]
                      and b["port"]["number"] == values["service"]["port"], "Ingress backend")

    for np in by_kind(docs, "NetworkPolicy"):
        check("Egress" in np["spec"]["policyTypes"], "NetworkPolicy does not restrict egress")
        check(selects(np["spec"]["podSelector"]["matchLabels"], pod_labels), "NetworkPolicy")
        blocks = []
        for rule in np["spec"].get("egress", []):
            # A rule without `to` allows every destination: exactly what must not exist.
            check(rule.get("to"), f"egress rule without destinations: {rule}")
            for peer in rule.get("to", []):
                if "ipBlock" in peer:
                    blocks.append(peer["ipBlock"]["cidr"])
                else:
                    check(all(p["port"] == 53 for p in rule.get("ports", [{"port": 0}])),
                          f"a selector egress rule that is not DNS: {rule}")
        want = [t["cidr"] for t in values["networkPolicy"]["egress"]["to"]]
        check(blocks == want, f"egress blocks {blocks}, expected {want}")

    dashboards = [d for d in by_kind(docs, "ConfigMap") if "trustgate.json" in d.get("data", {})]
    for d in dashboards:
        with open(args.dashboard) as f:
            check(json.loads(d["data"]["trustgate.json"]) == json.load(f),
                  "dashboard ConfigMap differs from dashboards/trustgate.json")
        for k, v in values["metrics"]["grafanaDashboard"]["labels"].items():
            check(d["metadata"]["labels"].get(k) == v, f"dashboard label {k}")

    if args.config_out and config is not None:
        write_config(config, config_text, args.config_out, args.pem_cert, args.pem_key,
                     args.pem_crl)

    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        sys.exit(1)
    digest = hashlib.sha256(open(args.rendered, "rb").read()).hexdigest()[:12]
    print(f"ok: {len(docs)} objects ({', '.join(kinds)}), rendered sha256 {digest}")


def write_config(config, text, out, cert, key, crl):
    """The rendered trustgate.yaml `text` with /etc/trustgate and the cache moved under `out`,
    and every file it names created."""
    root = os.path.abspath(out)
    os.makedirs(root, exist_ok=True)
    for what, path in config_files(config):
        target = root + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if what == "auth.htpasswd_file":
            content = HTPASSWD
        elif what == "auth.token_key_file":
            content = b"not-a-real-token-key-0123456789abcdef\n"
        elif what.startswith("auth.tokens["):
            content = b"not-a-real-token\n"
        elif what.endswith("password_file") or what == "server.admin_token_file":
            content = b"not-a-real-password\n"
        elif what == "storage.s3.trust_state_key_file":
            content = b"not-a-real-trust-state-key-0123456789abcdef\n"
        elif what.startswith("storage.s3."):
            content = b"not-a-real-s3-key\n"
        elif what.endswith("key_file"):
            content = open(key, "rb").read()
        elif what.startswith("auth.client_certificates.crl_files["):
            content = open(crl, "rb").read()
        else:
            content = open(cert, "rb").read()
        with open(target, "wb") as f:
            f.write(content)
    text = text.replace("/etc/trustgate/", root + "/etc/trustgate/")
    text = text.replace(CACHE_DIR, root + "/cache")
    with open(os.path.join(root, "trustgate.yaml"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
