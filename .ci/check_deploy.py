#!/usr/bin/env python3
"""Tests of the packaging and deployment files, run by .ci/deploy_checks.sh (which installs
PyYAML, kubernetes-validate, pykustomize, dockerfile-parse, the Docker SDK for Python and the
npm package @kubernetes-models/prometheus-operator).

    check_deploy.py [--binary BIN] [--node-modules DIR]     run every check
    check_deploy.py --docker-context OUT                    copy the Docker build context
                                                            (after .dockerignore) to OUT

- Dockerfile (read by dockerfile-parse) and .dockerignore (matched by the Docker SDK's own
  rules): every COPY source exists and passes .dockerignore, the
  context holds every file cargo needs for the manifest's targets, the runtime stage is
  non-root with the exporter's port, the revision build argument reaches build.rs.
- systemd: the unit's hardening, every credential the sample config reads is loaded, the
  refresh tokens live in StateDirectory=, the seeding ExecStartPre= works, and the sample
  config passes `--config.check` with its credentials in place.
- Kubernetes: both kustomizations render (kustomize's own engine, PyPI pykustomize) to
  objects that validate against the Kubernetes OpenAPI schemas
  (kubernetes-validate, strict) and the Prometheus Operator schemas (.ci/validate_crds.mjs);
  probes, security contexts, volumes, the seeding init container, the sharded StatefulSet's
  --shard; the PrometheusRules hold exactly the rules of alerts/*.yml and the dashboards
  ConfigMap exactly dashboards/*.json; the ConfigMap's config passes `--config.check` with
  the files the pod mounts.
- Compose: services, images, ports and bind mounts; the mounted files are the ones the e2e
  test (.ci/e2e.sh) runs; host names and ports agree with deploy/prometheus/prometheus.yml.
"""

import asyncio
import copy
import functools
import json
import os
import pathlib
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
import traceback

import pykustomize
import yaml
from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser

ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
SYSTEMD = ROOT / "deploy" / "systemd"
COMPOSE = ROOT / "deploy" / "compose"
NAME = "tenant-exporter"
OPTS = {"binary": ROOT / "target" / "debug" / NAME, "node_modules": None}
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def fail(msg):
    raise AssertionError(msg)


def expect(cond, msg):
    if not cond:
        fail(msg)


def docs(path):
    return [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d is not None]


@functools.cache
def default_port():
    """The default of --web.listen-address, as the binary's --help states it."""
    r = run([str(OPTS["binary"]), "--help"])
    m = re.search(r"--web\.listen-address\b.*?\[default: :(\d+)\]", r.stdout, re.S)
    expect(m, f"{OPTS['binary']} --help: no default --web.listen-address")
    return int(m.group(1))


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


# ---------------------------------------------------------------------------------- Docker


def dockerfile():
    """[(stage index, stage name, INSTRUCTION, arguments)] as dockerfile-parse reads them."""
    out, stage, name = [], -1, None
    for i in DockerfileParser(path=str(ROOT / "Dockerfile")).structure:
        instr, value = i["instruction"], " ".join(i["value"].split())
        if instr == "COMMENT":
            continue
        if instr == "FROM":
            stage += 1
            m = re.search(r"\bAS\s+(\S+)", value, re.I)
            name = m.group(1) if m else None
        out.append((stage, name, instr, value))
    return out


def context_files():
    """The repository files `docker build` sends, by the Docker SDK's own .dockerignore rules
    (it always sends the Dockerfile and .dockerignore)."""
    lines = (line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines())
    patterns = [line for line in lines if line and not line.startswith("#")]
    return sorted(f for f in exclude_paths(str(ROOT), patterns) if (ROOT / f).is_file())


def copied_by_build_stage():
    """The repository files the build stage COPYs, as (sources, destination) pairs."""
    build = [i for i in dockerfile() if i[0] == 0]
    copies = []
    for _, _, instr, args in build:
        if instr in ("COPY", "ADD"):
            expect(instr == "COPY", "Dockerfile: ADD in the build stage; use COPY")
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            copies.append((words[:-1], words[-1]))
    return copies


def context_of_copies():
    """Files of the build context the build stage copies, relative to the repository."""
    files = context_files()
    picked = []
    for sources, _ in copied_by_build_stage():
        for src in sources:
            src = src.rstrip("/")
            picked += [f for f in files if f == src or f.startswith(src + "/")]
    return sorted(set(picked))


def export_context(out):
    out = pathlib.Path(out)
    for rel in context_of_copies():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, out / rel)
    print(f"check_deploy: copied {len(context_of_copies())} files of the Docker build context to {out}")


@check
def dockerignore_is_an_allowlist_and_every_copy_source_passes_it():
    files = context_files()
    for sources, _ in copied_by_build_stage():
        for src in sources:
            expect((ROOT / src).exists(), f"Dockerfile: COPY {src}: not in the repository")
            expect(any(f == src.rstrip("/") or f.startswith(src.rstrip("/") + "/") for f in files),
                   f"Dockerfile: COPY {src}: excluded by .dockerignore")
    leaked = [f for f in files if f.startswith(("target/", ".git")) or f.endswith((".yml", ".yaml", ".key", ".pem"))]
    expect(not leaked, f".dockerignore lets in {leaked[:5]}")
    unused = sorted(set(files) - set(context_of_copies()) - {"Dockerfile", ".dockerignore"})
    expect(not unused, f".dockerignore lets in files the Dockerfile never copies: {unused[:5]}")


@check
def docker_context_holds_every_file_cargo_needs():
    ctx = set(context_of_copies())
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    need = {"Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"}
    build = manifest["package"].get("build", "build.rs" if (ROOT / "build.rs").exists() else None)
    if build:
        need.add(build)
    defaults = {"bench": "benches", "example": "examples", "test": "tests", "bin": "src/bin"}
    for kind, d in defaults.items():
        for t in manifest.get(kind, []):
            need.add(t.get("path", f"{d}/{t['name']}.rs"))
    missing = sorted(f for f in need if f not in ctx)
    expect(not missing, f"the Docker build context lacks {missing}: cargo refuses a manifest whose target files are missing")
    src = {str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*") if p.is_file()}
    expect(src <= ctx, f"src/ files missing from the context: {sorted(src - ctx)[:5]}")


@check
def dockerfile_build_and_runtime_stages():
    instrs = dockerfile()
    froms = [(s, n, a) for s, n, i, a in instrs if i == "FROM"]
    expect(len(froms) == 2, f"Dockerfile: expected 2 stages (build, runtime), found {len(froms)}")
    for _, _, image in froms:
        ref = image.split()[0]
        expect(":" in ref.split("/")[-1] and not ref.endswith(":latest"), f"Dockerfile: FROM {ref}: pin a tag")
    build_stage_name = froms[0][1]
    build = [(i, a) for s, _, i, a in instrs if s == 0]
    runtime = [(i, a) for s, _, i, a in instrs if s == 1]
    runs = " ".join(a for i, a in build if i == "RUN")
    expect("cargo build --release --locked" in runs, "Dockerfile: the build stage must run cargo build --release --locked")
    expect(("ARG", "TENANT_EXPORTER_REVISION=unknown") in build, "Dockerfile: ARG TENANT_EXPORTER_REVISION missing in the build stage")
    expect('std::env::var("TENANT_EXPORTER_REVISION")' in (ROOT / "build.rs").read_text(), "build.rs no longer reads TENANT_EXPORTER_REVISION")
    expect("distroless" in froms[1][2] and "nonroot" in froms[1][2], "Dockerfile: runtime should be distroless :nonroot")
    users = [a for i, a in runtime if i == "USER"]
    expect(users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), f"Dockerfile: runtime USER must be a numeric non-root uid, got {users}")
    expect(("EXPOSE", str(default_port())) in runtime, f"Dockerfile: EXPOSE {default_port()} (the default port) missing")
    expect(not any(i == "HEALTHCHECK" for _, _, i, _ in instrs), "Dockerfile: no HEALTHCHECK (Kubernetes probes instead)")
    entry = [json.loads(a) for i, a in runtime if i == "ENTRYPOINT"]
    expect(entry and isinstance(entry[-1], list), "Dockerfile: ENTRYPOINT in exec form")
    copied = [shlex.split(a) for i, a in runtime if i == "COPY"]
    expect(copied == [[f"--from={build_stage_name}", "/out/", "/"]], f"Dockerfile: the runtime stage should copy the build stage's /out/ to /, not {copied}")
    expect(f"target/release/{NAME} /out{entry[-1][0]}" in runs, f"Dockerfile: ENTRYPOINT {entry[-1][0]} is not the binary installed in /out")
    uid = users[-1].split(":")[0]
    expect(f"install -d -m 0700 -o {uid} -g {uid} /out/var/lib/tenant-exporter" in runs,
           "Dockerfile: /var/lib/tenant-exporter must be owned by the runtime user")
    cmd = [json.loads(a) for i, a in runtime if i == "CMD"]
    expect(cmd and cmd[-1][0].startswith("--config.file=/etc/tenant-exporter/"), "Dockerfile: CMD should name the config file")


# --------------------------------------------------------------------------------- systemd


def unit():
    """{section: [(key, value)]} of the service unit."""
    sections, cur = {}, None
    for line in (SYSTEMD / "tenant-exporter.service").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), [])
            continue
        k, _, v = line.partition("=")
        cur.append((k, v))
    return sections


def unit_values(key, section="Service"):
    return [v for k, v in unit()[section] if k == key]


def config_file_refs(config):
    """(*_file paths, ${VAR} names) of a parsed exporter config."""
    files, env = [], []

    def walk(v, key=""):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str):
            if key.endswith("_file"):
                files.append(v)
            env.extend(re.findall(r"^\$\{(\w+)\}$", v))

    walk(config)
    return files, env


def config_check(text, remap, env=None):
    """Runs `tenant-exporter --config.check` on `text` with every absolute path prefix in
    `remap` moved to a temporary directory holding a file for each referenced path."""
    binary = pathlib.Path(OPTS["binary"])
    expect(binary.exists(), f"{binary} not built")
    with tempfile.TemporaryDirectory() as tmp:
        for prefix in remap:
            text = text.replace(prefix, f"{tmp}/{prefix.strip('/').replace('/', '_')}/")
        files, _ = config_file_refs(yaml.safe_load(text))
        for f in files:
            expect(f.startswith(tmp), f"{f}: not under one of {list(remap)}")
            pathlib.Path(f).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(f).write_text("not-a-real-secret\n")
        cfg = pathlib.Path(tmp) / "tenant-exporter.yml"
        cfg.write_text(text)
        r = run([str(binary), "--config.check", f"--config.file={cfg}"], env={**os.environ, **(env or {})})
        expect(r.returncode == 0, f"--config.check failed:\n{r.stdout}{r.stderr}")
        return r.stdout.strip()


@check
def systemd_unit_is_hardened():
    s = dict(unit()["Service"])
    want = {
        "DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "", "StateDirectory": NAME,
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "SystemCallArchitectures": "native",
        "MemoryDenyWriteExecute": "yes", "RestrictNamespaces": "yes", "ProtectKernelTunables": "yes",
    }
    for k, v in want.items():
        expect(s.get(k) == v, f"tenant-exporter.service: {k}={s.get(k)!r}, want {v!r}")
    expect("@system-service" in unit_values("SystemCallFilter"), "SystemCallFilter=@system-service missing")
    expect(unit_values("LoadCredential"), "no LoadCredential=")
    expect(unit_values("ExecReload") == ["/bin/kill -HUP $MAINPID"], "ExecReload= should send SIGHUP")


@check
def systemd_environment_file_and_exec_start():
    expect(unit_values("EnvironmentFile") == ["-/etc/default/tenant-exporter"], "EnvironmentFile=-/etc/default/tenant-exporter")
    exec_start = shlex.split(unit_values("ExecStart")[0])
    expect(exec_start[0] == "/usr/local/bin/tenant-exporter", "ExecStart= binary")
    expect("--config.file=/etc/tenant-exporter/tenant-exporter.yml" in exec_start, "ExecStart= --config.file")
    expect(exec_start[-1] == "$TENANT_EXPORTER_ARGS", "ExecStart= should end with $TENANT_EXPORTER_ARGS (split on spaces)")
    env = (SYSTEMD / "tenant-exporter.default").read_text()
    m = re.search(r'^TENANT_EXPORTER_ARGS="([^"]*)"$', env, re.M)
    expect(m, "tenant-exporter.default: TENANT_EXPORTER_ARGS missing")
    r = run([str(OPTS["binary"]), *shlex.split(m.group(1)), "--config.check", "--config.file=/nonexistent"])
    expect(r.returncode == 1 and "cannot read config file" in r.stdout + r.stderr,
           f"TENANT_EXPORTER_ARGS {m.group(1)!r}: flags rejected: {r.stderr}")


@check
def systemd_sample_config_reads_only_loaded_credentials_and_state():
    text = (SYSTEMD / "tenant-exporter.yml").read_text()
    files, env = config_file_refs(yaml.safe_load(text))
    expect(not env, "the systemd sample config should take its secrets from credentials")
    creds = dict(v.split(":", 1) for v in unit_values("LoadCredential"))
    cred_dir = "/run/credentials/tenant-exporter.service/"
    state = f"/var/lib/{unit_values('StateDirectory')[0]}/"
    used = set()
    for f in files:
        if f.startswith(cred_dir):
            cid = f[len(cred_dir):]
            expect(cid in creds, f"{f}: no LoadCredential={cid}:...")
            used.add(cid)
        elif f.startswith(state):
            seed = "seed." + f[len(state):]
            expect(seed in creds, f"{f}: no LoadCredential={seed}:... to seed it")
            used.add(seed)
        else:
            fail(f"{f}: neither a credential nor in the StateDirectory")
    expect(set(creds) == used, f"credentials loaded but not used by the sample config: {sorted(set(creds) - used)}")
    refresh = [f for f in files if f.startswith(state)]
    expect(refresh, "the sample config should show an OAuth target with its refresh token in the StateDirectory")
    out = config_check(text, [cred_dir, state])
    expect("1 webex, 1 voss, 1 commvault" in out, out)


def run_seed_script(script, seeds_dir, state_dir, env):
    seeds_dir.mkdir()
    state_dir.mkdir()
    (seeds_dir / "seed-a").write_text("first-token\n")
    r = run(["sh", "-ec", script], env={**os.environ, **env})
    expect(r.returncode == 0, f"seed script failed: {r.stderr}")
    return r


def seeded(state, name):
    f = state / name
    expect(f.exists(), f"seed script did not create {name}: {sorted(p.name for p in state.iterdir())}")
    expect(stat.S_IMODE(f.stat().st_mode) == 0o600, f"seeded file mode {oct(f.stat().st_mode)}, want 0600")
    return f


@check
def systemd_exec_start_pre_seeds_refresh_tokens_once():
    pre = unit_values("ExecStartPre")
    expect(len(pre) == 1, "one ExecStartPre= seeding the refresh tokens")
    # systemd turns $$ into $ and unquotes like a shell.
    argv = shlex.split(pre[0].replace("$$", "$"))
    expect(argv[:2] == ["/bin/sh", "-ec"], f"ExecStartPre= {argv[:2]}")
    script = argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        creds, state = pathlib.Path(tmp, "creds"), pathlib.Path(tmp, "state")
        creds.mkdir()
        (creds / "seed.partner-eu.refresh-token").write_text("first\n")
        (creds / "voss-password").write_text("secret\n")
        state.mkdir()
        env = {**os.environ, "CREDENTIALS_DIRECTORY": str(creds), "STATE_DIRECTORY": str(state)}
        for _ in range(2):
            r = run(["sh", "-ec", script], env=env)
            expect(r.returncode == 0, f"ExecStartPre= failed: {r.stderr}")
            f = seeded(state, "partner-eu.refresh-token")
            expect(sorted(p.name for p in state.iterdir()) == ["partner-eu.refresh-token"], "only the seeds are copied")
            f.write_text("rotated\n")
        expect(f.read_text() == "rotated\n", "ExecStartPre= overwrote a rotated token")


# ------------------------------------------------------------------------------ Kubernetes


@functools.cache
def kustomize(d):
    """The objects `kubectl kustomize d` renders, by kustomize's own build engine (PyPI
    pykustomize: sigs.k8s.io/kustomize/api, kubectl's defaults), so any kustomization field
    works here as it does for the user."""
    try:
        yml = asyncio.run(pykustomize.build(d)).yaml
    except pykustomize.KustomizeError as e:
        fail(f"kustomize build {d.relative_to(ROOT)}: {e}")
    return [o for o in yaml.safe_load_all(yml) if o]


def containers(o, init=True):
    spec = o.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + (spec.get("initContainers", []) if init else [])


def variants():
    return {"single": copy.deepcopy(kustomize(K8S)), "sharded": copy.deepcopy(kustomize(K8S / "sharded"))}


def find(objs, kind, name=None):
    got = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    expect(len(got) == 1, f"expected one {kind} {name or ''}, found {len(got)}")
    return got[0]


def workload(objs):
    got = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
    expect(len(got) == 1, f"expected one workload, found {[o['kind'] for o in got]}")
    return got[0]


def exporter_container(w):
    return next(c for c in containers(w, init=False) if c["name"] == NAME)


@check
def every_manifest_belongs_to_a_kustomization():
    listed = set()
    for kfile in K8S.rglob("kustomization.yaml"):
        listed.add(kfile)
        for r in yaml.safe_load(kfile.read_text())["resources"]:
            listed.add((kfile.parent / r).resolve())
    stray = [str(p.relative_to(ROOT)) for p in K8S.rglob("*.yaml")
             if p.resolve() not in listed and p.name != "secret.example.yaml"]
    expect(not stray, f"manifests in no kustomization: {stray}")
    roots = [yaml.safe_load((d / "kustomization.yaml").read_text()) for d in (K8S, K8S / "sharded")]
    expect(roots[0]["images"] == roots[1]["images"], "the two kustomizations set different images")


def all_objects():
    seen, out = set(), []
    for objs in [*variants().values(), docs(K8S / "secret.example.yaml")]:
        for o in objs:
            key = (o["kind"], o["metadata"]["name"])
            if key not in seen:
                seen.add(key)
                out.append(o)
    return out


@check
def kubernetes_objects_validate_against_the_openapi_schemas():
    import kubernetes_validate
    from kubernetes_validate.version import __version__ as kv_version

    objs = [o for o in all_objects() if not o["apiVersion"].startswith("monitoring.coreos.com/")]
    expect(len(objs) >= 8, f"only {len(objs)} core objects")
    for version in ("1.29.0", kubernetes_validate.utils.latest_version()):
        for o in objs:
            try:
                kubernetes_validate.validate(o, version, strict=True)
            except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
                fail(f"Kubernetes {version}: {o['kind']} {o['metadata']['name']}: {getattr(e, 'message', e)} at {list(getattr(e, 'path', []))}")
    print(f"    ({len(objs)} objects, kubernetes-validate {kv_version} --strict, Kubernetes 1.29 and {kubernetes_validate.utils.latest_version()})")


@check
def prometheus_operator_objects_validate_against_their_schemas():
    nm = OPTS["node_modules"]
    if not nm:
        fail("--node-modules not given: the Prometheus Operator schemas come from npm's @kubernetes-models/prometheus-operator")
    objs = [o for o in all_objects() if o["apiVersion"].startswith("monitoring.coreos.com/")]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(objs, f)
        f.flush()
        r = run(["node", str(ROOT / ".ci" / "validate_crds.mjs"), str(nm), f.name])
    print("\n".join("    " + line for line in r.stdout.splitlines()))
    expect(r.returncode == 0, f"validate_crds.mjs failed {r.stderr}")


@check
def prometheus_rules_hold_exactly_the_rules_of_alerts():
    rules = [o for o in docs(K8S / "common" / "prometheusrule.yaml") if o["kind"] == "PrometheusRule"]
    sources = sorted(p for p in (ROOT / "alerts").glob("*.yml"))
    expect(len(rules) == len(sources), f"{len(rules)} PrometheusRules for {len(sources)} rule files")
    for obj, src in zip(rules, sources):
        want = yaml.safe_load(src.read_text())
        expect(obj["spec"] == want, f"PrometheusRule {obj['metadata']['name']} differs from {src.name}")
    ours = [(g["name"], r.get("alert") or r.get("record"), r) for o in rules for g in o["spec"]["groups"] for r in g["rules"]]
    theirs = [(g["name"], r.get("alert") or r.get("record"), r) for s in sources for g in yaml.safe_load(s.read_text())["groups"] for r in g["rules"]]
    expect(ours == theirs, "the PrometheusRules' groups and rules differ from alerts/*.yml")
    expect(not any((ROOT / "alerts" / "tests").glob("*.yml")) or not any("tests" in o["metadata"]["name"] for o in rules),
           "unit tests must not become PrometheusRules")
    print(f"    ({len(rules)} PrometheusRules, {len(theirs)} rules in {len({t[0] for t in theirs})} groups, as in alerts/*.yml)")


@check
def grafana_dashboards_configmap_holds_exactly_the_dashboards():
    cm = find(docs(K8S / "common" / "grafana-dashboards.yaml"), "ConfigMap")
    files = {p.name: p.read_text() for p in (ROOT / "dashboards").glob("*.json")}
    expect(cm["data"] == files, f"ConfigMap data {sorted(cm['data'])} differs from dashboards/*.json {sorted(files)}")
    expect(cm["metadata"]["labels"].get("grafana_dashboard") == "1", "label grafana_dashboard=\"1\" for Grafana's sidecar")
    size = sum(len(v.encode()) for v in files.values())
    expect(size < 900 * 1024, f"dashboards are {size} bytes: a ConfigMap holds at most 1 MiB")


@check
def workloads_probes_resources_and_security():
    port = default_port()
    for variant, objs in variants().items():
        w = workload(objs)
        where = f"{variant} {w['kind']}"
        pod = w["spec"]["template"]["spec"]
        sc = pod["securityContext"]
        expect(sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) != 0, f"{where}: pod must run as non-root")
        expect(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccompProfile RuntimeDefault")
        expect(pod.get("automountServiceAccountToken") is False, f"{where}: automountServiceAccountToken: false")
        for c in containers(w):
            csc = c.get("securityContext", {})
            expect(csc.get("readOnlyRootFilesystem") is True, f"{where} {c['name']}: readOnlyRootFilesystem")
            expect(csc.get("allowPrivilegeEscalation") is False, f"{where} {c['name']}: allowPrivilegeEscalation: false")
            expect(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{where} {c['name']}: drop ALL capabilities")
            expect(c.get("resources", {}).get("requests") and c["resources"].get("limits", {}).get("memory"),
                   f"{where} {c['name']}: resources requests and a memory limit")
            expect(":" in c["image"] and not c["image"].endswith(":latest"), f"{where} {c['name']}: image {c['image']} untagged")
        c = exporter_container(w)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        expect(ports.get("http") == port, f"{where}: containerPort http should be {port}")
        expect(c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}, f"{where}: readiness on /-/ready")
        expect(c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}, f"{where}: liveness on /-/healthy")
    d = workload(variants()["single"])
    expect(d["kind"] == "Deployment" and d["spec"]["replicas"] == 1, "single: a Deployment of 1 replica")
    expect(d["spec"]["strategy"]["type"] == "Recreate", "single: strategy Recreate (one writer of the refresh tokens)")


@check
def refresh_tokens_live_on_a_persistent_volume_directory():
    for variant, objs in variants().items():
        w = workload(objs)
        pod = w["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        config = yaml.safe_load(find(objs, "ConfigMap", "tenant-exporter-config")["data"]["tenant-exporter.yml"])
        refresh = [t["oauth"]["refresh_token_file"] for t in config.get("webex", []) if "oauth" in t]
        expect(refresh, "the Kubernetes config should show an OAuth target")
        for f in refresh:
            mounts = [m for m in exporter_container(w)["volumeMounts"] if m["mountPath"] == os.path.dirname(f)]
            expect(len(mounts) == 1, f"{variant}: {os.path.dirname(f)} must be a volume mount (a directory, not a file)")
            m = mounts[0]
            expect("subPath" not in m and not m.get("readOnly"), f"{variant}: the state mount must be a writable directory")
            claim = volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName")
            expect(claim, f"{variant}: {f} must be on a PersistentVolumeClaim")
            pvc = find(objs, "PersistentVolumeClaim", claim)
            modes = pvc["spec"]["accessModes"]
            expect(modes == (["ReadWriteOnce"] if variant == "single" else ["ReadWriteMany"]),
                   f"{variant}: PVC {claim} accessModes {modes}")


@check
def kubernetes_config_reads_only_what_the_pod_mounts():
    secrets = {o["metadata"]["name"]: o for o in docs(K8S / "secret.example.yaml")}
    for variant, objs in variants().items():
        w = workload(objs)
        pod = w["spec"]["template"]["spec"]
        c = exporter_container(w)
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
        cm = find(objs, "ConfigMap", "tenant-exporter-config")
        config_mount = next(p for p, v in mounts.items() if v.get("configMap", {}).get("name") == cm["metadata"]["name"])
        arg = f"--config.file={config_mount}/tenant-exporter.yml"
        expect(arg in c["args"], f"{variant}: {arg} missing from args {c['args']}")
        text = cm["data"]["tenant-exporter.yml"]
        files, env_refs = config_file_refs(yaml.safe_load(text))
        seed_volume = next(v for v in pod["volumes"] if v["name"] == "refresh-token-seeds")
        seeds = secrets[seed_volume["secret"]["secretName"]]["stringData"]
        for f in files:
            d, base = os.path.split(f)
            expect(d in mounts, f"{variant}: {f}: no volume mounted at {d}")
            v = mounts[d]
            if "secret" in v:
                keys = secrets[v["secret"]["secretName"]]["stringData"]
                expect(base in keys, f"{variant}: {f}: no key {base} in Secret {v['secret']['secretName']} (secret.example.yaml)")
            else:
                expect(base in seeds, f"{variant}: {f}: no seed {base} in Secret {seed_volume['secret']['secretName']}")
        env = {e["name"]: e for e in c.get("env", [])}
        for var in env_refs:
            expect(var in env, f"{variant}: ${{{var}}} used by the config but not in the container's env")
            ref = env[var]["valueFrom"]["secretKeyRef"]
            expect(ref["key"] in secrets[ref["name"]]["stringData"], f"{variant}: {var}: key {ref['key']} not in Secret {ref['name']}")
        out = config_check(text, sorted({os.path.dirname(f) + "/" for f in files}),
                           env={v: "not-a-real-secret" for v in env_refs})
        expect("1 webex, 1 voss, 1 commvault" in out, out)


@check
def init_container_seeds_refresh_tokens_once_even_when_replicas_race():
    w = workload(variants()["single"])
    init = w["spec"]["template"]["spec"]["initContainers"][0]
    mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    expect(mounts == {"/seed": "refresh-token-seeds", "/var/lib/tenant-exporter": "state"}, f"init container mounts {mounts}")
    expect(init["command"][:2] == ["sh", "-ec"], "init container runs sh -ec SCRIPT")
    with tempfile.TemporaryDirectory() as tmp:
        seeds, state = pathlib.Path(tmp, "seed"), pathlib.Path(tmp, "state")
        script = init["command"][2].replace("/seed/", f"{seeds}/").replace("/var/lib/tenant-exporter/", f"{state}/")
        seeds.mkdir()
        state.mkdir()
        (seeds / "partner-eu.refresh-token").write_text("first\n")
        # A Secret volume's own entries, which the glob must skip.
        (seeds / "..data").mkdir()
        for host in ("tenant-exporter-0", "tenant-exporter-1"):
            r = run(["sh", "-ec", script], env={**os.environ, "HOSTNAME": host})
            expect(r.returncode == 0, f"init container script failed: {r.stderr}")
            f = seeded(state, "partner-eu.refresh-token")
            expect(sorted(p.name for p in state.iterdir()) == ["partner-eu.refresh-token"], f"left {list(state.iterdir())}")
            f.write_text("rotated\n")
        expect(f.read_text() == "rotated\n", "the init container overwrote a rotated token")


@check
def sharded_statefulset_splits_the_targets():
    objs = variants()["sharded"]
    sts = workload(objs)
    expect(sts["kind"] == "StatefulSet", "sharded: a StatefulSet")
    replicas = sts["spec"]["replicas"]
    c = exporter_container(sts)
    shard = [a for a in c["args"] if a.startswith("--shard=")]
    expect(shard == [f"--shard=$(POD_NAME)/{replicas}"], f"sharded: --shard {shard} must be $(POD_NAME)/{replicas}")
    pod_name = next(e for e in c["env"] if e["name"] == "POD_NAME")
    expect(pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "POD_NAME from the downward API")
    svc = find(objs, "Service", sts["spec"]["serviceName"])
    expect(svc["spec"].get("clusterIP") == "None", "the StatefulSet's governing Service should be headless")
    # The exporter accepts every replica's pod name as its shard index.
    for i in range(replicas):
        flag = f"--shard={sts['metadata']['name']}-{i}/{replicas}"
        r = run([str(OPTS["binary"]), flag, "--config.check", "--config.file=/nonexistent"])
        expect("cannot read config file" in r.stdout + r.stderr, f"{flag} rejected: {r.stderr}")
    # The pod template is the Deployment's but for the sharding.
    dep = workload(variants()["single"])
    a, b = copy.deepcopy(dep["spec"]["template"]), copy.deepcopy(sts["spec"]["template"])
    cb = exporter_container({"spec": {"template": b}})
    cb["args"] = [x for x in cb["args"] if not x.startswith("--shard=")]
    cb["env"] = [e for e in cb["env"] if e["name"] != "POD_NAME"]
    for t in (a, b):
        for v in t["spec"]["volumes"]:
            if "persistentVolumeClaim" in v:
                v["persistentVolumeClaim"]["claimName"] = "STATE"
    expect(a == b, "the StatefulSet's pod template differs from the Deployment's beyond --shard, POD_NAME and the state claim")


@check
def service_and_service_monitor_scrape_every_replica_as_job_tenant_exporter():
    for variant, objs in variants().items():
        w = workload(objs)
        svc = find(objs, "Service", NAME)
        labels = w["spec"]["template"]["metadata"]["labels"]
        expect(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), f"{variant}: Service does not select the pods")
        expect([(p["name"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("http", "http")], "Service port http -> http")
        sm = find(objs, "ServiceMonitor")
        sel = sm["spec"]["selector"]["matchLabels"]
        expect(all(svc["metadata"]["labels"].get(k) == v for k, v in sel.items()), "ServiceMonitor does not select the Service")
        expect([e["port"] for e in sm["spec"]["endpoints"]] == ["http"], "ServiceMonitor endpoint port http")
        expect("jobLabel" not in sm["spec"], "the job label must stay the Service name")
        relabel = sm["spec"]["endpoints"][0]["relabelings"]
        expect({"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance"} in relabel,
               "instance should be the pod name")
    job = f'job="{svc["metadata"]["name"]}"'
    expect(job in (ROOT / "alerts" / "tenant-exporter.yml").read_text(), f"alerts select another job than {job}")
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    expect(prom["scrape_configs"][0]["job_name"] == svc["metadata"]["name"], "prometheus.yml job name differs")


# --------------------------------------------------------------------------------- Compose


def compose():
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def binds(service):
    out = {}
    for v in service.get("volumes", []):
        src, dst, *mode = v.split(":")
        if src.startswith("."):
            expect(mode == ["ro"], f"compose: bind mount {v} should be read-only")
            out[dst] = (COMPOSE / src).resolve()
    return out


@check
def compose_services_images_ports_and_mounts():
    c = compose()
    services = c["services"]
    expect(set(services) == {NAME, "prometheus", "alertmanager", "grafana"}, f"compose services {sorted(services)}")
    for name, s in services.items():
        if "image" in s and "build" not in s:
            tag = s["image"].rsplit(":", 1)
            expect(len(tag) == 2 and tag[1] not in ("latest", "") and "/" not in tag[1], f"compose {name}: pin the image tag")
        for p in s.get("ports", []):
            expect(p.startswith("127.0.0.1:"), f"compose {name}: port {p} should listen on 127.0.0.1 only")
        for dst, src in binds(s).items():
            expect(src.exists(), f"compose {name}: {src} does not exist")
    ex = services[NAME]
    expect((COMPOSE / ex["build"]["context"]).resolve() == ROOT, "compose: build from the repository root")
    expect((ROOT / ex["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile", "compose: build the repository's Dockerfile")
    expect(ex["command"] == ["--demo"], "compose: the exporter runs --demo")
    expect(ex["ports"] == [f"127.0.0.1:{default_port()}:{default_port()}"], "compose: the exporter's port")


@check
def compose_mounts_the_files_the_e2e_test_runs():
    services = compose()["services"]
    prom_cfg = ROOT / "deploy/prometheus/prometheus.yml"
    am_cfg = ROOT / "deploy/alertmanager/alertmanager.example.yml"
    e2e = (ROOT / ".ci/e2e_config.py").read_text()
    for f in ("deploy/prometheus/prometheus.yml", "deploy/alertmanager/alertmanager.example.yml", '"alerts"'):
        expect(f in e2e, f".ci/e2e_config.py no longer reads {f}: compose and the e2e test must share their files")
    ci = (ROOT / ".ci/run").read_text()
    expect("lint_dashboards.py dashboards" in ci, ".ci/run no longer lints dashboards/")

    p = binds(services["prometheus"])
    expect(p.get("/etc/prometheus/prometheus.yml") == prom_cfg, "compose: Prometheus must run deploy/prometheus/prometheus.yml")
    prom = yaml.safe_load(prom_cfg.read_text())
    rules_dir = os.path.dirname(prom["rule_files"][0])
    expect(p.get(rules_dir) == ROOT / "alerts", f"compose: alerts/ must be mounted at {rules_dir}, where rule_files points")
    expect(os.path.basename(prom["rule_files"][0]) == "*.yml", "rule_files should take alerts/*.yml, and so not alerts/tests/")
    target = prom["scrape_configs"][0]["static_configs"][0]["targets"][0]
    expect(target == f"{NAME}:{default_port()}", f"prometheus.yml scrapes {target}, not the compose service {NAME}:{default_port()}")
    am_target = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    expect(am_target == "alertmanager:9093", f"prometheus.yml sends alerts to {am_target}, not the compose service")
    expect("127.0.0.1:9093:9093" in services["alertmanager"]["ports"], "compose: Alertmanager on 9093")

    a = binds(services["alertmanager"])
    expect(a.get("/etc/alertmanager/alertmanager.yml") == am_cfg, "compose: Alertmanager must run the example config")

    g = binds(services["grafana"])
    prov = yaml.safe_load((ROOT / "dashboards/provisioning.yml").read_text())
    path = prov["providers"][0]["options"]["path"]
    expect(g.get(path) == ROOT / "dashboards", f"compose: dashboards/ must be mounted at {path}, where provisioning.yml points")
    dash = [d for d, s in g.items() if s == ROOT / "dashboards/provisioning.yml"]
    expect(dash and dash[0].startswith("/etc/grafana/provisioning/dashboards/"), "compose: dashboards/provisioning.yml must be a dashboards provisioning file")
    ds_mounts = [(d, s) for d, s in g.items() if d.startswith("/etc/grafana/provisioning/datasources/")]
    expect(len(ds_mounts) == 1, "compose: one Grafana data source provisioning file")
    ds = yaml.safe_load(ds_mounts[0][1].read_text())["datasources"][0]
    expect(ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090", f"compose: data source {ds['url']}")
    home = services["grafana"]["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
    expect(home.startswith(path + "/") and (ROOT / "dashboards" / os.path.basename(home)).exists(), f"compose: home dashboard {home}")


# ---------------------------------------------------------------------------------- README


@check
def readme_documents_installation_and_upgrades():
    readme = (ROOT / "README.md").read_text()
    for heading in ("## Installation", "## Upgrade notes"):
        expect(heading in readme, f"README: no {heading}")
    inst = readme.split("## Installation", 1)[1].split("\n## ", 1)[0]
    for ref in ("Dockerfile", "deploy/systemd/tenant-exporter.service", "deploy/kubernetes", "deploy/kubernetes/sharded",
                "deploy/compose/compose.yaml", "cargo build --release --locked"):
        expect(ref in inst, f"README Installation does not mention {ref}")


def main(argv):
    args = argv[1:]
    while args:
        opt = args.pop(0)
        if opt == "--docker-context":
            export_context(args.pop(0))
            return 0
        elif opt == "--binary":
            OPTS["binary"] = pathlib.Path(args.pop(0)).resolve()
        elif opt == "--node-modules":
            OPTS["node_modules"] = pathlib.Path(args.pop(0)).resolve()
        else:
            sys.exit(__doc__)
    passed = failed = 0
    for fn in CHECKS:
        name = fn.__name__.replace("_", " ")
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            failed += 1
            detail = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            print(f"FAIL {name}: {detail}")
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"deploy checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
