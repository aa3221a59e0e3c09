"""Least-privilege and promotion-flow assertions on deploy/aws and argocd (no cloud needed).

    python deploy/check/policies.py ROOT

Checks that the agent may only send to the queue, that ingest may only consume it and read the
DLQ's depth, that each IRSA trust policy admits exactly one ServiceAccount, that the queue
redrives only after 10 or more receives with long polling on, and that staging syncs by itself
with the image updater while production does neither. Exits non-zero naming what is wrong.
"""

import json
import os
import sys

import yaml

INGEST_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}


def load_json(root, *path):
    with open(os.path.join(root, *path), encoding="utf-8") as f:
        return json.load(f)


def actions(statement):
    a = statement["Action"]
    return {a} if isinstance(a, str) else set(a)


def check(root):
    problems = []

    def expect(ok, message):
        if not ok:
            problems.append(message)

    agent = load_json(root, "deploy/aws/iam/agent-policy.json")["Statement"]
    expect(len(agent) == 1 and actions(agent[0]) == {"sqs:SendMessage"}, "agent policy: only sqs:SendMessage is allowed")
    for s in agent:
        expect("*" not in s["Resource"], "agent policy: the resource must be the queue, not a wildcard")

    ingest = load_json(root, "deploy/aws/iam/ingest-policy.json")["Statement"]
    for s in ingest:
        expect(actions(s) <= INGEST_ACTIONS, f"ingest policy: {sorted(actions(s) - INGEST_ACTIONS)} are not needed")
        expect("*" not in s["Resource"], "ingest policy: resources must be the queues, not a wildcard")
        expect(s["Effect"] == "Allow", "ingest policy: only Allow statements are expected")

    for component in ("agent", "ingest"):
        trust = load_json(root, f"deploy/aws/iam/{component}-trust-policy.json")["Statement"]
        for s in trust:
            subs = [v for k, v in s["Condition"]["StringEquals"].items() if k.endswith(":sub")]
            auds = [v for k, v in s["Condition"]["StringEquals"].items() if k.endswith(":aud")]
            expect(subs == [f"system:serviceaccount:NAMESPACE:statuspage-{component}"],
                   f"{component} trust policy: must admit exactly its own ServiceAccount")
            expect(auds == ["sts.amazonaws.com"], f"{component} trust policy: the audience must be sts.amazonaws.com")

    queue = load_json(root, "deploy/aws/sqs/queue-attributes.json")
    redrive = json.loads(queue["RedrivePolicy"])
    expect(int(redrive["maxReceiveCount"]) >= 10, "queue: redrive maxReceiveCount must be 10 or more (DESIGN §7)")
    expect(queue["ReceiveMessageWaitTimeSeconds"] == "20", "queue: long polling must be 20 s")
    expect(int(queue["VisibilityTimeout"]) >= 60, "queue: the visibility timeout must cover ingest's 60 s")
    json.loads(load_json(root, "deploy/aws/sqs/dlq-attributes.json")["RedriveAllowPolicy"])

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
    for a, values in ((staging, "values-staging.yaml"), (production, "values-production.yaml")):
        expect(a["spec"]["source"]["helm"]["valueFiles"] == [values], f"{a['metadata']['name']}: must use {values}")

    for p in problems:
        print(p)
    if not problems:
        print("IAM, SQS and Argo CD files: least privilege and the promotion flow hold")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(check(sys.argv[1]))
