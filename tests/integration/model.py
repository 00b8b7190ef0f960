"""The test oracle: what issue 2 (and, for workload identity mode, the design of
issue 7) says the webhook must answer, computed here from the policy file and
the pod, independently of the server.

Python 3.11 standard library only. Used by the integration tests (through
conftest.py) and by tests/fixtures/make_fixtures.py to write the
already-mutated fixture.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

SPARK_CONTAINER_NAMES = ("spark-kubernetes-driver", "spark-kubernetes-executor", "executor")
IDENTITY_LABEL = "aadpodidbinding"
JAVA_OPT_RE = re.compile(r"^SPARK_JAVA_OPT_(0|[1-9][0-9]*)$")


# ---------------------------------------------------------------------------
# A reader for the YAML subset our policies use (block maps and sequences,
# flow [..] and {..}, quoted and plain scalars, comments). Every scalar stays
# a string, which is how libyaml hands them to the server. JSON files are read
# as JSON.
# ---------------------------------------------------------------------------

class YamlSubsetError(ValueError):
    pass


def load_policy(path: str | Path) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return json.loads(text)
    return parse_yaml(text)


def _strip_comment(s: str) -> str:
    quote = None
    for i, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'" and (i == 0 or s[i - 1] in " \t[{,:"):
            quote = ch
        elif ch == "#" and (i == 0 or s[i - 1] in " \t"):
            return s[:i].rstrip()
    return s.rstrip()


def parse_yaml(text: str):
    lines = []
    for no, raw in enumerate(text.splitlines(), 1):
        if raw.strip() in ("---", "..."):
            continue
        body = _strip_comment(raw)
        if not body.strip():
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlSubsetError(f"line {no}: tab in indentation")
        lines.append((len(body) - len(body.lstrip(" ")), body.strip(), no))
    if not lines:
        return None
    value, i = _block(lines, 0, lines[0][0])
    if i != len(lines):
        raise YamlSubsetError(f"line {lines[i][2]}: unexpected indentation")
    return value


def _split_key(content: str, no: int):
    depth, quote = 0, None
    for i, ch in enumerate(content):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'" and i == 0:
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == ":" and depth == 0 and (i + 1 == len(content) or content[i + 1] == " "):
            return _scalar(content[:i].strip()), content[i + 1:].strip()
    raise YamlSubsetError(f"line {no}: expected 'key: value'")


def _block(lines, i, indent):
    if lines[i][1] == "-" or lines[i][1].startswith("- "):
        out = []
        while i < len(lines) and lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1].startswith("- ")):
            rest = lines[i][1][1:].strip()
            if rest:
                out.append(_inline(rest, lines[i][2]))
                i += 1
            else:
                i += 1
                if i < len(lines) and lines[i][0] > indent:
                    v, i = _block(lines, i, lines[i][0])
                    out.append(v)
                else:
                    out.append(None)
        return out, i
    out = {}
    while i < len(lines) and lines[i][0] == indent:
        key, rest = _split_key(lines[i][1], lines[i][2])
        if key in out:
            raise YamlSubsetError(f"line {lines[i][2]}: duplicate key {key!r}")
        if rest:
            out[key] = _inline(rest, lines[i][2])
            i += 1
        else:
            i += 1
            if i < len(lines) and lines[i][0] > indent:
                out[key], i = _block(lines, i, lines[i][0])
            elif i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                out[key], i = _block(lines, i, indent)  # "key:\n- a" at the same indent
            else:
                out[key] = None
    if i < len(lines) and lines[i][0] > indent:
        raise YamlSubsetError(f"line {lines[i][2]}: unexpected indentation")
    return out, i


def _scalar(s: str):
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return json.loads(s)
    if len(s) >= 2 and s[0] == s[-1] == "'":
        return s[1:-1].replace("''", "'")
    if s in ("~", "null"):
        return None
    return s


def _inline(s: str, no: int):
    s = s.strip()
    if s[:1] in "[{":
        v, j = _flow(s, 0, no)
        if s[j:].strip():
            raise YamlSubsetError(f"line {no}: text after flow collection")
        return v
    if s[:1] in "|>&*!":
        raise YamlSubsetError(f"line {no}: unsupported YAML feature {s[:1]!r}")
    return _scalar(s)


def _flow(s: str, j: int, no: int):
    def ws(k):
        while k < len(s) and s[k] == " ":
            k += 1
        return k

    def scalar(k, stops):
        k = ws(k)
        if k < len(s) and s[k] in "\"'":
            q = s[k]
            e = k + 1
            while e < len(s):
                if s[e] == q and not (q == "'" and e + 1 < len(s) and s[e + 1] == "'"):
                    break
                e += 2 if (q == "'" and s[e] == "'") or (q == '"' and s[e] == "\\") else 1
            return _scalar(s[k:e + 1]), e + 1
        e = k
        while e < len(s) and s[e] not in stops and not (s[e] == ":" and stops == ",}:" and (e + 1 == len(s) or s[e + 1] == " ")):
            e += 1
        return _scalar(s[k:e].strip()), e

    def value(k, stops):
        k = ws(k)
        if k < len(s) and s[k] in "[{":
            return _flow(s, k, no)
        return scalar(k, stops)

    if s[j] == "[":
        out, j = [], ws(j + 1)
        if s[j] == "]":
            return out, j + 1
        while True:
            v, j = value(j, ",]")
            out.append(v)
            j = ws(j)
            if j >= len(s):
                raise YamlSubsetError(f"line {no}: unclosed [")
            if s[j] == "]":
                return out, j + 1
            if s[j] != ",":
                raise YamlSubsetError(f"line {no}: expected , or ]")
            j += 1
    out, j = {}, ws(j + 1)
    if s[j] == "}":
        return out, j + 1
    while True:
        k, j = scalar(j, ",}:")
        j = ws(j)
        if j >= len(s) or s[j] != ":":
            raise YamlSubsetError(f"line {no}: expected : in flow mapping")
        v, j = value(j + 1, ",}")
        out[k] = v
        j = ws(j)
        if j >= len(s):
            raise YamlSubsetError(f"line {no}: unclosed {{")
        if s[j] == "}":
            return out, j + 1
        if s[j] != ",":
            raise YamlSubsetError(f"line {no}: expected , or }}")
        j += 1


# ---------------------------------------------------------------------------
# The policy rules of issue 2.
# ---------------------------------------------------------------------------

def deep_merge(base, over):
    """Maps merge key by key; anything else (lists included) in `over` replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


@dataclass
class Rule:
    namespace: str
    identity: str | None               # None only with workload identity, where it is optional
    allowed: list[str]
    mode: str
    on_conflict: str
    java_home: str | None
    flags: list[str]
    jvm_env: str
    hadoop: dict[str, str] = field(default_factory=dict)
    # issue 7 (workload identity); None / empty with pod identity
    auth: str = "podIdentity"
    tenant_id: str | None = None
    client_id: str | None = None
    service_account: str | None = None
    authority_host: str | None = None
    token_expiration: int | None = None
    extra_containers: list[str] = field(default_factory=list)

    @property
    def workload_identity(self) -> bool:
        return self.auth == AUTH_WI

    def may_claim(self) -> list[str]:
        """The aadpodidbinding values pods of the namespace may carry."""
        return ([self.identity] if self.identity else []) + self.allowed


# Workload identity mode, as the design of issue 7 (notes/wi-spec.md) fixes it.
AUTH_PI = "podIdentity"
AUTH_WI = "workloadIdentity"
MSI_PROVIDER = "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
WI_PROVIDER = "org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider"
WI_AUDIENCE = "api://AzureADTokenExchange"
WI_VOLUME = "spark-identity-azure-token"
WI_MOUNT_PATH = "/var/run/secrets/spark-identity/azure"
WI_TOKEN_PATH = "azure-identity-token"
WI_TOKEN_FILE = WI_MOUNT_PATH + "/" + WI_TOKEN_PATH
WI_AUTHORITY_DEFAULT = "https://login.microsoftonline.com/"
WI_TOKEN_EXPIRATION_DEFAULT = 3600
WI_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")
# Kept from the pod (valueFrom aside) only when equal; a different value is a
# conflict (onConflict) for these two, and simply replaced for the others.
WI_ENV_IDENTITY = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID")
# What Azure Workload Identity's own webhook adds (it must never clash with ours).
AWI_VOLUME = "azure-identity-token"
AWI_MOUNT_PATH = "/var/run/secrets/azure/tokens"
AWI_TOKEN_FILE = AWI_MOUNT_PATH + "/azure-identity-token"


BUILTIN_DEFAULTS = {
    "java": {"options": ["-Dio.netty.tryReflectionSetAccessible=true"]},
    "hadoop": {
        "fs.azure.account.auth.type": "OAuth",
        "fs.azure.account.oauth.provider.type": "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider",
    },
}
ANNOTATION = "spark-identity.io/"


def selector_matches(sel: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics: every requirement holds."""
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != str(v):
            return False
    for e in sel.get("matchExpressions") or []:
        key, op = e["key"], e["operator"]
        values = [str(x) for x in e.get("values") or []]
        has = key in labels
        if op == "In" and not (has and labels[key] in values):
            return False
        if op == "NotIn" and has and labels[key] in values:
            return False
        if op == "Exists" and not has:
            return False
        if op == "DoesNotExist" and has:
            return False
    return True


def entry_for(policy: dict, namespace: str, labels: dict | None = None,
              annotations: dict | None = None) -> tuple[dict | None, str | None]:
    """The namespace's entry and where it came from: by name, else its
    annotations (namespaceAnnotations: true), else the first matching selector."""
    entry = (policy.get("namespaces") or {}).get(namespace)
    if entry is not None:
        return entry, namespace
    annotations = annotations or {}
    if str(policy.get("namespaceAnnotations")).lower() == "true" and (
            annotations.get(ANNOTATION + "identity") or annotations.get(ANNOTATION + "auth")):
        e = {}
        for a, k in (("identity", "identity"), ("client-id", "clientId"), ("tenant-id", "tenantId"), ("mode", "mode"),
                     ("auth", "auth"), ("service-account", "serviceAccount")):
            if ANNOTATION + a in annotations:
                e[k] = annotations[ANNOTATION + a]
        return e, f"annotations of {namespace}"
    for i, s in enumerate(policy.get("selectors") or []):
        if selector_matches(s.get("namespaceSelector") or {}, labels or {}):
            e = {k: v for k, v in s.items() if k not in ("name", "namespaceSelector")}
            return e, "selector " + str(s.get("name") or f"selectors[{i}]")
    return None, None


def rule_for(policy: dict, namespace: str, labels: dict | None = None,
             annotations: dict | None = None) -> Rule | None:
    entry, _ = entry_for(policy, namespace, labels, annotations)
    if entry is None:
        return None
    r = deep_merge(deep_merge(BUILTIN_DEFAULTS, policy.get("defaults") or {}), entry)
    java = r.get("java") or {}
    auth = str(r.get("auth") or AUTH_PI)
    wi = auth == AUTH_WI
    hadoop = {str(k): str(v) for k, v in (r.get("hadoop") or {}).items() if v is not None}
    provider = "fs.azure.account.oauth.provider.type"
    if wi and provider not in (entry.get("hadoop") or {}):
        # WorkloadIdentityTokenProvider replaces the MsiTokenProvider of the
        # built-ins or of defaults; only the rule's own hadoop map overrides it.
        hadoop[provider] = WI_PROVIDER
    if r.get("tenantId"):
        hadoop["fs.azure.account.oauth2.msi.tenant"] = str(r["tenantId"])
    if r.get("clientId"):
        hadoop["fs.azure.account.oauth2.client.id"] = str(r["clientId"])
    authority = str(r.get("authorityHost") or WI_AUTHORITY_DEFAULT) if wi else None
    if wi:
        hadoop["fs.azure.account.oauth2.token.file"] = WI_TOKEN_FILE
        if authority != WI_AUTHORITY_DEFAULT:
            hadoop["fs.azure.account.oauth2.msi.authority"] = authority
    accounts = r.get("storageAccounts") or []
    if accounts:
        per = {}
        for k, v in hadoop.items():
            if k.startswith("fs.azure."):
                for a in accounts:
                    per[f"{k}.{a}.dfs.core.windows.net"] = v
            else:
                per[k] = v
        hadoop = per
    flags = [str(o) for o in (java.get("options") or [])]
    flags += [f"-Dspark.hadoop.{k}={hadoop[k]}" for k in sorted(hadoop, key=lambda s: s.encode())]
    return Rule(
        namespace=namespace,
        identity=str(r["identity"]) if r.get("identity") is not None else None,
        allowed=[str(x) for x in (r.get("allowedIdentities") or [])],
        mode=str(r.get("mode") or "enforce"),
        on_conflict=str(r.get("onConflict") or "override"),
        java_home=str(java["home"]) if java.get("home") else None,
        flags=flags,
        jvm_env=str(r.get("jvmEnv") or "spark"),
        hadoop=hadoop,
        auth=auth,
        tenant_id=str(r["tenantId"]) if r.get("tenantId") else None,
        client_id=str(r["clientId"]) if r.get("clientId") else None,
        service_account=str(r["serviceAccount"]) if wi and r.get("serviceAccount") else None,
        authority_host=authority,
        token_expiration=int(r.get("tokenExpirationSeconds") or WI_TOKEN_EXPIRATION_DEFAULT) if wi else None,
        extra_containers=[str(x) for x in (r.get("extraContainers") or [])] if wi else [],
    )


MODE_STRENGTH = {"enforce": 0, "audit": 1, "off": 2}


def identity_protection(policy: dict) -> dict[str, str]:
    """Each identity the policy names, and the mode that protects it: the
    strongest (enforce, audit, off) among the entries and selectors that name
    it, and defaults.mode for the delegable ones (issue 11)."""
    defaults = policy.get("defaults") or {}
    dmode = str(defaults.get("mode") or "enforce")
    out: dict[str, str] = {}

    def add(identity, mode):
        if identity not in out or MODE_STRENGTH[mode] < MODE_STRENGTH[out[identity]]:
            out[identity] = mode

    entries = list((policy.get("namespaces") or {}).values()) + list(policy.get("selectors") or [])
    for e in entries:
        mode = str(e.get("mode") or dmode)
        ids = ([e["identity"]] if e.get("identity") is not None else [])
        ids += list(e.get("allowedIdentities", defaults.get("allowedIdentities")) or [])
        for i in ids:
            add(str(i), mode)
    for i in policy.get("delegableIdentities") or []:
        add(str(i), dmode)
    return out


def judge_claim(policy: dict, rule: "Rule | None", identity: str) -> str:
    """The claim rule: 'allowed', 'warn' or 'denied' for a pod of a namespace
    whose rule is `rule` that carries `identity`. The owners' mode protects a
    listed identity whatever the claimer's mode; an unlisted one follows
    unlistedIdentities, then the claimer's own rule."""
    verdict = {"enforce": "denied", "audit": "warn", "off": "allowed"}
    if rule is not None and identity in rule.may_claim():
        return "allowed"
    owners = identity_protection(policy)
    if identity in owners:
        return verdict[owners[identity]]
    if str(policy.get("unlistedIdentities") or "allow") == "deny":
        return "denied"
    if rule is not None:
        return verdict[rule.mode]
    return "allowed"


def spark_role(pod: dict) -> str | None:
    role = ((pod.get("metadata") or {}).get("labels") or {}).get("spark-role")
    return role if role in ("driver", "executor") else None


def _runs_spark(c: dict) -> bool:
    """Spark's own container: the entrypoint's first arg is the role, and
    Spark always sets SPARK_APPLICATION_ID."""
    args = c.get("args") or []
    if args and args[0] in ("driver", "executor"):
        return True
    return any(e.get("name") == "SPARK_APPLICATION_ID" for e in c.get("env") or [])


def spark_container_index(pod: dict) -> int:
    """Named spark-kubernetes-driver/-executor/executor; else (a pod template
    renamed it, and Spark appends its container after the template's others)
    the one that runs Spark; else the first."""
    containers = pod["spec"]["containers"]
    for i, c in enumerate(containers):
        if c.get("name") in SPARK_CONTAINER_NAMES:
            return i
    for i, c in enumerate(containers):
        if _runs_spark(c):
            return i
    return 0


def _env_find(env: list, name: str):
    for e in env:
        if e.get("name") == name:
            return e
    return None


def merge_opts_value(existing: str | None, flags: list[str]) -> str:
    """Ours first, then the existing literal value; our flags that are already
    whitespace-separated tokens of it are not added again."""
    if existing is None or not existing.strip():
        return " ".join(flags)
    tokens = existing.split()
    missing = [f for f in flags if f not in tokens]
    if not missing:
        return existing
    return " ".join(missing) + " " + existing


@dataclass
class Expectation:
    allowed: bool
    changed: bool = False
    pod: dict | None = None            # the expected object after the patch, when changed
    warnings: bool | None = None       # True: must warn; False: must not; None: either
    message_contains: list[str] = field(default_factory=list)   # for denials
    warn_contains: list[str] = field(default_factory=list)      # substrings some warning must carry
    decision: str = ""
    # issue 7: regexes some warning must match / no warning may match; for
    # denials, alternatives (one per reason) of regexes the message must match
    warn_patterns: list[str] = field(default_factory=list)
    no_warn_patterns: list[str] = field(default_factory=list)
    message_any: list[list[str]] = field(default_factory=list)


def mutate_spark_pod(pod: dict, rule: Rule) -> tuple[dict, list[str]]:
    """Returns the pod as the rules want it, and the names of env vars left
    alone because they are valueFrom (each deserves a warning)."""
    out = copy.deepcopy(pod)
    notes = []
    out["metadata"].setdefault("labels", {})[IDENTITY_LABEL] = rule.identity
    _jvm_settings(out["spec"]["containers"][spark_container_index(out)], rule, spark_role(out), notes)
    return out, notes


def _jvm_settings(c: dict, rule: Rule, role: str | None, notes: list[str]):
    """JAVA_HOME and the rule's JVM flags into the Spark container `c`."""
    env = c.setdefault("env", [])

    def set_literal(name, value):
        e = _env_find(env, name)
        if e is None:
            env.append({"name": name, "value": value})
        elif "valueFrom" in e:
            notes.append(name)
        else:
            e["value"] = value

    if rule.java_home:
        set_literal("JAVA_HOME", rule.java_home)

    def merge(name):
        e = _env_find(env, name)
        if e is None:
            env.append({"name": name, "value": " ".join(rule.flags)})
        elif "valueFrom" in e:
            notes.append(name)
        else:
            e["value"] = merge_opts_value(e.get("value"), rule.flags)

    if rule.jvm_env == "JAVA_TOOL_OPTIONS":
        merge("JAVA_TOOL_OPTIONS")
    elif role == "driver":
        merge("SPARK_SUBMIT_OPTS")
    else:
        present = set()
        top = -1
        for e in env:
            m = JAVA_OPT_RE.match(e.get("name", ""))
            if m:
                top = max(top, int(m.group(1)))
                if "value" in e:
                    present.add(e["value"])
        n = top + 1
        for f in rule.flags:
            if f not in present:
                env.append({"name": f"SPARK_JAVA_OPT_{n}", "value": f})
                present.add(f)
                n += 1


# ---------------------------------------------------------------------------
# Workload identity mode (issue 7).
# ---------------------------------------------------------------------------

# Some warning must match this when the Spark container's image says Spark 3.x
# (Hadoop 3.3 has no WorkloadIdentityTokenProvider), and none may otherwise.
IMAGE_WARNING_RE = r"WorkloadIdentityTokenProvider|Hadoop 3\.4|Spark 4"
# A refusal about an executor's service account must say what it is about.
SERVICE_ACCOUNT_RE = r"(?i)service ?account"
DRIVER_SA_CONF = "spark.kubernetes.authenticate.driver.serviceAccountName"


def wi_env_values(rule: Rule) -> dict[str, str]:
    return dict(zip(WI_ENV, (rule.client_id, rule.tenant_id, WI_TOKEN_FILE, rule.authority_host)))


def wi_volume(rule: Rule) -> dict:
    return {"name": WI_VOLUME, "projected": {"sources": [{"serviceAccountToken": {
        "audience": WI_AUDIENCE, "expirationSeconds": rule.token_expiration, "path": WI_TOKEN_PATH}}]}}


def wi_mount() -> dict:
    return {"name": WI_VOLUME, "mountPath": WI_MOUNT_PATH, "readOnly": True}


def without_api_defaults(volume: dict) -> dict:
    """A volume without what the API server's defaulting adds to a projected
    volume (defaultMode 420), for comparing contents."""
    v = copy.deepcopy(volume)
    proj = v.get("projected")
    if isinstance(proj, dict) and proj.get("defaultMode") == 420:
        del proj["defaultMode"]
    return v


def pod_service_account(pod: dict) -> str:
    spec = pod.get("spec") or {}
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


def spark3_image(image: str) -> bool:
    """The image tag (after an optional 'v') starts with "3."."""
    last = image.rsplit("/", 1)[-1].split("@", 1)[0]
    if ":" not in last:
        return False
    tag = last.split(":", 1)[1]
    if tag.startswith("v"):
        tag = tag[1:]
    return tag.startswith("3.")


def wi_target_containers(pod: dict, rule: Rule) -> list[tuple[str, int]]:
    """(list, index) of the containers that get the env and the token mount:
    the Spark container, then those named in extraContainers."""
    spec = pod["spec"]
    si = spark_container_index(pod)
    out = [("containers", si)]
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            if c.get("name") in rule.extra_containers and (kind, i) not in out:
                out.append((kind, i))
    return out


@dataclass
class WiOutcome:
    pod: dict                     # the pod as the rule wants it (meaningless when refused)
    warn: list[str]               # substrings some warning must carry
    deny: list[list[str]]         # one entry per reason to refuse: regexes the message must match
    image_warning: bool           # the Spark 3.x image warning is due


def mutate_wi_pod(pod: dict, rule: Rule) -> WiOutcome:
    """A Spark pod in a workload-identity namespace, as the design of issue 7
    wants it (enforce)."""
    out = copy.deepcopy(pod)
    warn: list[str] = []
    deny: list[list[str]] = []
    spec = out["spec"]
    role = spark_role(out)

    labels = out["metadata"].get("labels") or {}
    claimed = labels.get(IDENTITY_LABEL)
    if claimed is not None and claimed not in rule.may_claim():
        if rule.on_conflict == "deny":
            deny.append([re.escape(claimed)])
        else:
            del labels[IDENTITY_LABEL]
            warn.append(claimed)

    if rule.service_account:
        sa, want = pod_service_account(out), rule.service_account
        if sa != want:
            if role == "driver":
                deny.append([re.escape(want), re.escape(DRIVER_SA_CONF)])
            elif sa != "default" or rule.on_conflict == "deny":
                deny.append([SERVICE_ACCOUNT_RE])
            else:
                spec["serviceAccountName"] = want
                if "serviceAccount" in spec:
                    spec["serviceAccount"] = want
                warn.append(want)

    values = wi_env_values(rule)
    for kind, i in wi_target_containers(out, rule):
        c = spec[kind][i]
        env = c.setdefault("env", [])
        for name in WI_ENV:
            e = _env_find(env, name)
            if e is None:
                env.append({"name": name, "value": values[name]})
            elif "valueFrom" in e:
                warn.append(name)
            elif e.get("value") == values[name]:
                pass
            elif name in WI_ENV_IDENTITY and rule.on_conflict == "deny":
                deny.append([re.escape(name)])
            else:
                e["value"] = values[name]
                e.pop("valueFrom", None)
                warn.append(name)
        mounts = c.setdefault("volumeMounts", [])
        if any(m.get("mountPath") == WI_MOUNT_PATH and m.get("name") != WI_VOLUME for m in mounts):
            deny.append([re.escape(WI_MOUNT_PATH)])
        ours = [j for j, m in enumerate(mounts) if m.get("name") == WI_VOLUME]
        if not ours:
            mounts.append(wi_mount())
        elif mounts[ours[0]] != wi_mount():
            mounts[ours[0]] = wi_mount()

    vols = spec.setdefault("volumes", [])
    ours = [j for j, v in enumerate(vols) if v.get("name") == WI_VOLUME]
    if not ours:
        vols.append(wi_volume(rule))
    elif without_api_defaults(vols[ours[0]]) != wi_volume(rule):
        vols[ours[0]] = wi_volume(rule)

    sc = spec["containers"][spark_container_index(out)]
    _jvm_settings(sc, rule, role, warn)
    return WiOutcome(out, warn, deny, spark3_image(sc.get("image") or ""))


def expect_wi(pod: dict, rule: Rule) -> Expectation:
    """A Spark pod in a workload-identity namespace (mode enforce or audit)."""
    o = mutate_wi_pod(pod, rule)
    changed = o.pod != pod
    image = dict(warn_patterns=[IMAGE_WARNING_RE]) if o.image_warning else dict(no_warn_patterns=[IMAGE_WARNING_RE])
    if rule.mode == "audit":
        # The design names the Spark 3 image warning for enforce only.
        return Expectation(allowed=True, warnings=True if (changed or o.deny) else None, decision="audit",
                           no_warn_patterns=[] if o.image_warning else [IMAGE_WARNING_RE])
    if o.deny:
        return Expectation(allowed=False, message_any=o.deny, decision="deny-workload-identity")
    return Expectation(
        allowed=True,
        changed=changed,
        pod=o.pod if changed else None,
        warnings=True if (o.warn or o.image_warning) else None,
        warn_contains=o.warn,
        decision="mutate" if changed else "unchanged",
        **image,
    )


def expect(review: dict, policy: dict) -> Expectation:
    req = review["request"]
    kind = (req.get("kind") or {}).get("kind")
    resource = (req.get("resource") or {}).get("resource")
    if kind != "Pod" or resource != "pods" or req.get("subResource") or req.get("operation") != "CREATE":
        return Expectation(allowed=True, decision="ignored")
    pod = req["object"]
    ns = req["namespace"]
    rule = rule_for(policy, ns)
    labels = (pod.get("metadata") or {}).get("labels") or {}
    claimed = labels.get(IDENTITY_LABEL)

    verdict = judge_claim(policy, rule, claimed) if claimed is not None else "allowed"
    if spark_role(pod) is None:
        if claimed is None:
            return Expectation(allowed=True, warnings=False, decision="not-spark")
        if verdict == "allowed":
            return Expectation(allowed=True, decision="not-spark")
        if verdict == "warn":
            return Expectation(allowed=True, warnings=True, warn_contains=[claimed], decision="audit")
        return Expectation(allowed=False, message_contains=[claimed], decision="deny-identity")

    # A Spark pod keeps its label unless an enforcing rule sets it: then the
    # claim is judged whatever the namespace's own mode.
    if verdict == "denied" and (rule is None or rule.mode != "enforce"):
        return Expectation(allowed=False, message_contains=[claimed], decision="deny-identity")
    if rule is None:
        if str(policy.get("unmatched") or "allow") == "deny":
            return Expectation(allowed=False, message_contains=[ns], decision="deny-unmatched")
        return Expectation(allowed=True, decision="unmatched")
    if rule.mode == "off":
        return Expectation(allowed=True, warnings=False, decision="off")
    if rule.workload_identity:
        return expect_wi(pod, rule)

    conflict = claimed is not None and claimed != rule.identity
    if conflict and rule.on_conflict == "deny":
        if rule.mode == "audit":
            return Expectation(allowed=True, warnings=True, warn_contains=[claimed], decision="audit")
        return Expectation(allowed=False, message_contains=[rule.identity], decision="deny-conflict")

    want, notes = mutate_spark_pod(pod, rule)
    changed = want != pod
    warn_contains = list(notes)
    if conflict:
        warn_contains.append(claimed)
    if rule.mode == "audit":
        if changed:
            return Expectation(allowed=True, warnings=True, warn_contains=[rule.identity], decision="audit")
        return Expectation(allowed=True, decision="audit")
    return Expectation(
        allowed=True,
        changed=changed,
        pod=want if changed else None,
        warnings=True if warn_contains else None,
        warn_contains=warn_contains,
        decision="mutate" if changed else "unchanged",
    )


def expected_patch(original: dict, wanted: dict) -> list[dict]:
    """A simple RFC 6902 patch from `original` to `wanted`, for the shapes
    mutate_spark_pod produces (labels and env of one container)."""
    ops = []
    lo = (original.get("metadata") or {}).get("labels")
    lw = wanted["metadata"]["labels"]
    if lo is None:
        ops.append({"op": "add", "path": "/metadata/labels", "value": lw})
    else:
        for k, v in lw.items():
            if k not in lo:
                ops.append({"op": "add", "path": "/metadata/labels/" + _escape(k), "value": v})
            elif lo[k] != v:
                ops.append({"op": "replace", "path": "/metadata/labels/" + _escape(k), "value": v})
    for i, (co, cw) in enumerate(zip(original["spec"]["containers"], wanted["spec"]["containers"])):
        eo, ew = co.get("env"), cw.get("env")
        if eo == ew:
            continue
        base = f"/spec/containers/{i}/env"
        if eo is None:
            ops.append({"op": "add", "path": base, "value": ew})
            continue
        for j, e in enumerate(ew):
            if j < len(eo):
                if eo[j] != e:
                    ops.append({"op": "replace", "path": f"{base}/{j}/value", "value": e["value"]})
            else:
                ops.append({"op": "add", "path": f"{base}/-", "value": e})
    return ops


def _escape(s: str) -> str:
    return s.replace("~", "~0").replace("/", "~1")
