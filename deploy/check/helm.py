"""Lint and render the Helm chart offline, through Helm's own Go library (helm-python-sdk).

    python deploy/check/helm.py lint CHART VALUES...        strict lint, once per values file
    python deploy/check/helm.py render CHART VALUES NAMESPACE OUT
        writes every rendered manifest to OUT, the checks ConfigMap's YAML to OUT.checks.yaml, and
        the names of the Secret keys agents and ingest get as environment (for ${VAR} in checks and
        notifications) to OUT.env
    python deploy/check/helm.py wiring RENDERED BINARY WORKDIR
        starts the real binary as each rendered container would run (its args, its environment,
        with local stand-ins for paths, secrets and addresses) and fails if a flag or environment
        value is refused, as a chart that renders fine but passes `6.7e+07` for a byte count would

Exits non-zero, naming the values file and the problem, when a lint finds a warning or an error,
the values break values.schema.json, or a template fails to render.
"""

import os
import re
import subprocess
import sys

import helm_python as helm
import yaml


def merged(base, over):
    """`over` layered on `base`, as `helm -f base -f over` does: mappings merge, the rest replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def values_of(path):
    """The values of a file, or of several separated by commas, layered in order."""
    values = {}
    for part in path.split(","):
        with open(part, encoding="utf-8") as f:
            values = merged(values, yaml.safe_load(f) or {})
    return values


def lint(chart, files):
    failed = False
    for path in files:
        # Each file is layered over the chart's own values.yaml, as at install.
        values = values_of(path)
        for kube in ("v1.30.0", "v1.37.0"):
            report = helm.lint(chart, values, strict=True, kube_version=kube, namespace="statuspage")
            messages = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
            for m in messages:
                print(f"{path} (Kubernetes {kube}): {m.get('path', '')}: {m.get('error')}")
            if not messages and report.get("errors"):
                for e in report["errors"]:
                    print(f"{path} (Kubernetes {kube}): {e}")
            failed = failed or bool(messages) or bool(report.get("errors"))
        if not failed:
            print(f"{path}: lint clean (strict, Kubernetes 1.30 and 1.37)")
    return 1 if failed else 0


def render(chart, path, namespace, out):
    values = values_of(path)
    loaded = helm.Chart.load(chart)
    try:
        loaded.validate_schema(loaded.merge_values(values))
        manifests = loaded.render(values, name="statuspage", namespace=namespace, is_install=True)
    except helm.HelmError as e:
        print(f"{path}: {e}")
        return 1
    documents = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        documents.append(f"# Source: {template}\n{text.strip()}\n")
    with open(out, "w", encoding="utf-8") as f:
        f.write("---\n".join(documents))
    objects = [d for d in yaml.safe_load_all("---\n".join(documents)) if d]
    checks, env = None, []
    for o in objects:
        if o["kind"] == "ConfigMap" and "checks.yaml" in o.get("data", {}):
            checks = o["data"]["checks.yaml"]
        # The agents' check secrets, and ingest's notification secrets: `validate` reads both.
        container = o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0]
        if o["kind"] == "DaemonSet" or (o["kind"] == "Deployment" and container.get("args") == ["ingest"]):
            for e in container.get("env", []):
                if "secretKeyRef" in e.get("valueFrom", {}) and not e["name"].startswith("STATUSPAGE_"):
                    env.append(e["name"])
    with open(out + ".checks.yaml", "w", encoding="utf-8") as f:
        f.write(checks or "")
    with open(out + ".env", "w", encoding="utf-8") as f:
        f.write("".join(f"{name}\n" for name in env))
    print(f"{path}: rendered {len(objects)} objects into namespace {namespace}: {out}")
    return 0


# What clap prints when a flag or environment value is refused, and what the config loader
# prints when the checks cannot be loaded in that container (an unset ${VAR}, say).
REFUSED = re.compile(r"error: (invalid value|unexpected argument|the following required arguments)|problems? found")


def wiring(rendered, binary, workdir):
    objects = [d for d in yaml.safe_load_all(open(rendered, encoding="utf-8")) if d]
    workloads = [o for o in objects if o["kind"] in ("Deployment", "DaemonSet", "Job")]
    checks = rendered + ".checks.yaml"
    tokens = os.path.join(workdir, "admin-tokens")
    with open(tokens, "w", encoding="utf-8") as f:
        f.write("ci 0123456789abcdef0123456789\n")
    stand_in = {
        "STATUSPAGE_CONFIG": checks,
        "STATUSPAGE_SPOOL_DIR": os.path.join(workdir, "spool"),
        "STATUSPAGE_ADMIN_TOKEN_FILE": tokens,
        # Nothing answers on port 1: no AWS call and no database leaves this machine.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
    }
    failed = False
    for o in workloads:
        for c in o["spec"]["template"]["spec"]["containers"]:
            env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": "ci", "AWS_SECRET_ACCESS_KEY": "ci"}
            for e in c.get("env", []):
                if "value" in e:
                    value = str(e["value"])
                    # Every listener on an ephemeral loopback port.
                    value = re.sub(r"^0\.0\.0\.0:[0-9]+$", "127.0.0.1:0", value)
                    env[e["name"]] = value
                elif "fieldRef" in e.get("valueFrom", {}):
                    env[e["name"]] = "ip-10-0-1-5.ec2.internal"
                elif "secretKeyRef" in e.get("valueFrom", {}):
                    key = e["valueFrom"]["secretKeyRef"]["key"]
                    env[e["name"]] = "postgres://ci:ci@127.0.0.1:1/ci" if key.endswith("database-url") else "placeholder"
            env.update({k: v for k, v in stand_in.items() if k in env or k == "AWS_ENDPOINT_URL"})
            # The service account files do not exist here, so peer discovery would stop the agent.
            env.pop("STATUSPAGE_PEERS_K8S_SERVICE", None)
            what = f"{o['kind']}/{o['metadata']['name']} {' '.join(c.get('args', []))}"
            try:
                run = subprocess.run([binary, *c.get("args", [])], env=env, capture_output=True, text=True, timeout=4)
                output = run.stdout + run.stderr
                if REFUSED.search(output):
                    print(f"{what}: a flag, environment value or the checks are refused:\n{output}")
                    failed = True
                else:
                    print(f"{what}: arguments accepted (exited {run.returncode} on the missing services)")
            except subprocess.TimeoutExpired:
                print(f"{what}: arguments accepted (still running after 4 s)")
    return 1 if failed else 0


def main(argv):
    if len(argv) == 4 and argv[0] == "wiring":
        return wiring(argv[1], argv[2], argv[3])
    if len(argv) >= 3 and argv[0] == "lint":
        return lint(argv[1], argv[2:])
    if len(argv) == 5 and argv[0] == "render":
        return render(argv[1], argv[2], argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
