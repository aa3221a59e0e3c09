"""The pipeline gate: image.yml pushes an image only for a commit CI passed on main.

    python deploy/check/gate.py IMAGE_WORKFLOW CI_WORKFLOW

Checks that image.yml runs only on `workflow_run` of the CI workflow (no push, pull request or
manual trigger), that its job runs only when the run succeeded, for a push, from this repository,
on main, and that it builds exactly the commit CI ran (workflow_run.head_sha). Exits non-zero
naming what is missing.
"""

import sys

import yaml

CONDITIONS = [
    "github.event.workflow_run.conclusion == 'success'",
    "github.event.workflow_run.event == 'push'",
    "github.event.workflow_run.head_repository.full_name == github.repository",
    "github.event.workflow_run.head_branch == 'main'",
]


def main(image_path, ci_path):
    image = yaml.safe_load(open(image_path, encoding="utf-8"))
    ci = yaml.safe_load(open(ci_path, encoding="utf-8"))
    problems = []
    # YAML 1.1 reads the key `on` as true.
    triggers = image.get("on", image.get(True)) or {}
    if set(triggers) != {"workflow_run"}:
        problems.append(f"image.yml must run on workflow_run alone, not on {sorted(set(triggers) - {'workflow_run'})}")
    run = triggers.get("workflow_run") or {}
    if run.get("workflows") != [ci["name"]] or run.get("types") != ["completed"]:
        problems.append(f"image.yml must follow the completed runs of {ci['name']!r} only")
    for name, job in image.get("jobs", {}).items():
        condition = " ".join(str(job.get("if", "")).split())
        for c in CONDITIONS:
            if c not in condition:
                problems.append(f"job {name}: its `if` must require {c}")
        if " || " in condition:
            problems.append(f"job {name}: its `if` must not have an `||` that could bypass the gate")
        checkouts = [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith("actions/checkout@")]
        if not checkouts or any((s.get("with") or {}).get("ref") != "${{ github.event.workflow_run.head_sha }}" for s in checkouts):
            problems.append(f"job {name}: it must check out exactly workflow_run.head_sha")
    for p in problems:
        print(p)
    if not problems:
        print("image.yml builds and pushes only a commit CI passed on a push to main of this repository")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
