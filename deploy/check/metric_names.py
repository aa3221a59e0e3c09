"""Every metric the alert rules and the Grafana dashboard use is one the binary exports.

    python deploy/check/metric_names.py ALERTS_YAML DASHBOARD_JSON METRICS_TXT [RULES_YAML...]

METRICS_TXT is the /metrics text of a running `statuspage demo --metrics-listen` (agent, ingest and
dashboard metrics in one); its `# HELP` lines name every family that has samples. A renamed
metric would otherwise leave an alert that can never fire. Further RULES_YAML files (the SLO rules)
are checked too; the series their recording rules make (`statuspage_check:...`) are not exports.
"""

import json
import re
import sys

import yaml

NAME = re.compile(r"\b((?:probe|statuspage)_[a-z_]+)\b(?!:)")
# Exported only in the distributed shape: ingest reports the DLQ's depth when it is given
# --dead-letter-queue-url, which standalone and demo (no queue) never are.
DISTRIBUTED_ONLY = {"statuspage_dead_letter_queue_messages"}


def family(name):
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def main(alerts, dashboard, metrics, *more_rules):
    exported = set()
    with open(metrics, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# HELP "):
                exported.add(line.split()[2])
    used = {}
    for rules in (alerts, *more_rules):
        for group in yaml.safe_load(open(rules, encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                what = f"alert {rule['alert']}" if "alert" in rule else f"rule {rule['record']}"
                for name in NAME.findall(rule["expr"]):
                    used.setdefault(family(name), set()).add(what)
    for panel in json.load(open(dashboard, encoding="utf-8"))["panels"]:
        for target in panel.get("targets", []):
            for name in NAME.findall(target["expr"]):
                used.setdefault(family(name), set()).add(f"panel {panel['title']!r}")
    missing = {n: where for n, where in used.items() if n not in exported and n not in DISTRIBUTED_ONLY}
    for name, where in sorted(missing.items()):
        print(f"{name} is not exported by statuspage, but {', '.join(sorted(where))} uses it")
    if not missing:
        print(f"the {len(used)} metrics the alerts and the dashboard use are all exported")
    return 1 if missing else 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
