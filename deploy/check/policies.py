"""Promotion-flow assertions on argocd/ (no cloud needed).

    python deploy/check/policies.py ROOT

Checks that staging syncs by itself with the image updater while production does neither, each
from its own values file, that staging's syncs post commit statuses, and that promote.yml
requires a successful one for the tag it promotes. Exits non-zero naming what is wrong. The AWS estate's least privilege
(the agent may only send to its queue, ingest only consume it, each IRSA trust one
ServiceAccount, the queue's redrive) is proven on the CloudFormation templates by the cfn-lint
rules in deploy/check/cfn_rules/.
"""

import os
import sys

import yaml


def check(root):
    problems = []

    def expect(ok, message):
        if not ok:
            problems.append(message)

    def app(name):
        with open(os.path.join(root, "argocd", name), encoding="utf-8") as f:
            return yaml.safe_load(f)

    staging, production = app("staging.yaml"), app("production.yaml")
    expect("automated" in (staging["spec"].get("syncPolicy") or {}), "staging must sync automatically")
    expect(any(k.startswith("argocd-image-updater.argoproj.io/") for k in staging["metadata"].get("annotations", {})),
           "staging must follow new tags through the image updater")
    expect("automated" not in (production["spec"].get("syncPolicy") or {}), "production must sync only by hand")
    expect(not any(k.startswith("argocd-image-updater") for k in production["metadata"].get("annotations", {}) or {}),
           "production must not follow tags by itself")
    subscribed = staging["metadata"].get("annotations", {})
    for trigger in ("on-deployed", "on-sync-failed", "on-health-degraded"):
        expect(f"notifications.argoproj.io/subscribe.{trigger}.github" in subscribed,
               f"staging must post a commit status {trigger} (Argo CD Notifications)")
    with open(os.path.join(root, ".github", "workflows", "promote.yml"), encoding="utf-8") as f:
        promote = f.read()
    expect('select(.context == "argocd/statuspage-staging")' in promote and '!= "success"' in promote,
           "promote.yml must require staging's successful sync status for the tag's commit")
    for a, values in ((staging, "values-staging.yaml"), (production, "values-production.yaml")):
        aws = values.replace(".yaml", "-aws.yaml")
        expect(a["spec"]["source"]["helm"]["valueFiles"] == [values, aws], f"{a['metadata']['name']}: must use {values} and {aws}")

    for p in problems:
        print(p)
    if not problems:
        print("Argo CD: the promotion flow holds")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(check(sys.argv[1]))
