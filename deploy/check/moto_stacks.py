"""Creates the AWS stacks on a moto server, in dependency order, and prints their outputs as JSON.

    python deploy/check/moto_stacks.py OUT_JSON

Starts moto's server on a free loopback port (the SQS-protocol server the tests use, here for
CloudFormation), creates network, registry, storage, and for staging and production queue, data
and app-iam (with a made-up OIDC issuer), and writes what `aws cloudformation describe-stacks`
would print for them into OUT_JSON, for scripts/values-from-stacks. The cluster stack is not
created: moto does not model EKS (cfn-lint and the rules prove it).

moto implements part of CloudFormation. Each gap is bridged before upload only where it is on the
allow-list below, with the reason; any other "not supported by moto" warning fails the run.
"""

import ipaddress
import json
import socket
import sys
import time
import warnings

import logging

import boto3
from cfnlint.decode import decode
from moto.server import ThreadedMotoServer

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ISSUER = f"oidc.eks.{REGION}.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
SOURCE = "deploy/aws/cloudformation"

# Resource types moto's CloudFormation cannot create, with why leaving them out is sound here.
# References to them become values of the shape the real resource gives.
ALLOWED_GAPS = {
    "AWS::SQS::QueueInlinePolicy": "no moto model; the queues' TLS-only policies are proven by cfn-lint (E3xxx) only",
    "AWS::SecretsManager::Secret": "no moto model; a Ref becomes the secret's ARN built from its Name, as AWS gives it",
    "AWS::IAM::OIDCProvider": "no moto model; the GitHub provider is referenced by ARN, never by Ref",
}
# References moto answers wrongly, replaced by what CloudFormation gives.
ALLOWED_REFS = {
    "AWS::RDS::DBParameterGroup": "moto's Ref gives its model object, which an instance cannot take: the property "
                                  "naming it is left out on moto (E9001 proves the instance uses the force_ssl group)",
}
# Attributes moto does not give, replaced by their documented shape.
ALLOWED_ATTRIBUTES = {
    ("AWS::RDS::DBInstance", "MasterUserSecret.SecretArn"):
        "moto does not manage the master password; AWS gives a secret ARN",
    ("AWS::EFS::AccessPoint", "AccessPointId"):
        "moto's access point has no CloudFormation attributes; the id is read back from moto's EFS API by its Name tag",
}
STAND_IN_ACCESS_POINT = "moto-access-point:"


def cidr(block, count, bits):
    """Fn::Cidr, which moto does not evaluate: the first `count` subnets of `bits` host bits."""
    network = ipaddress.ip_network(block)
    return [str(n) for n in list(network.subnets(new_prefix=network.max_prefixlen - int(bits)))[: int(count)]]


def prepare(template, params):
    """The template as moto can take it: Fn::Cidr resolved, the allowed gaps bridged."""
    resources = template["Resources"]
    gaps = {name: r for name, r in resources.items() if r["Type"] in ALLOWED_GAPS}

    def walk(value):
        if isinstance(value, dict):
            if set(value) == {"Fn::Cidr"}:
                block, count, bits = value["Fn::Cidr"]
                block = params[block["Ref"]] if isinstance(block, dict) else block
                return cidr(block, count, bits)
            if set(value) == {"Ref"} and value["Ref"] in gaps:
                gap = gaps[value["Ref"]]
                if gap["Type"] == "AWS::SecretsManager::Secret":
                    name = gap["Properties"]["Name"]
                    name = name["Fn::Sub"] if isinstance(name, dict) else name
                    return {"Fn::Sub": f"arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{name}-AbCdEf"}
                raise SystemExit(f"moto_stacks: a Ref to {value['Ref']} ({gap['Type']}) has no stand-in")
            refers = lambda v: isinstance(v, dict) and set(v) == {"Ref"} and resources.get(v["Ref"], {}).get("Type") in ALLOWED_REFS
            if any(refers(v) for v in value.values()):
                return {k: walk(v) for k, v in value.items() if not refers(v)}
            if set(value) == {"Fn::GetAtt"}:
                logical, attribute = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) else value["Fn::GetAtt"].split(".", 1)
                kind = resources.get(logical, {}).get("Type")
                if (kind, attribute) == ("AWS::EFS::AccessPoint", "AccessPointId"):
                    tags = {t["Key"]: t["Value"] for t in resources[logical]["Properties"].get("AccessPointTags", [])}
                    return STAND_IN_ACCESS_POINT + tags["Name"]
                if (kind, attribute) in ALLOWED_ATTRIBUTES:
                    return {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:rds!db-0000-AbCdEf"}
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    prepared = walk({k: v for k, v in template.items() if k != "Resources"})
    prepared["Resources"] = {name: walk(r) for name, r in resources.items() if name not in gaps}
    return prepared


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(out_path):
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    cf = boto3.client("cloudformation", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                      aws_access_key_id="test", aws_secret_access_key="test")
    stacks = []
    unexpected = []

    def create(name, template, **params):
        text, problems = decode(f"{SOURCE}/{template}")
        if problems:
            raise SystemExit(f"moto_stacks: {template} does not decode: {problems}")
        declared = {k: v.get("Default") for k, v in text.get("Parameters", {}).items()}
        declared.update(params)
        body = json.dumps(prepare(json.loads(json.dumps(text)), declared))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cf.create_stack(StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_NAMED_IAM"],
                            EnableTerminationProtection=True,
                            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in params.items()])
            deadline = time.monotonic() + 60
            while True:
                stack = cf.describe_stacks(StackName=name)["Stacks"][0]
                if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        for w in caught:
            if "not supported by moto" in str(w.message):
                unexpected.append(f"{name}: {w.message}")
        if stack["StackStatus"] != "CREATE_COMPLETE":
            events = cf.describe_stack_events(StackName=name)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events if "FAILED" in e["ResourceStatus"]]
            raise SystemExit(f"moto_stacks: {name} ended {stack['StackStatus']}: {reasons}")
        if not stack.get("EnableTerminationProtection"):
            raise SystemExit(f"moto_stacks: {name} was created without termination protection")
        stacks.append(stack)
        print(f"{name}: {stack['StackStatus']}, {len(stack.get('Outputs', []))} outputs")

    def read_back_access_points():
        efs = boto3.client("efs", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                           aws_access_key_id="test", aws_secret_access_key="test")
        by_name = {}
        for ap in efs.describe_access_points()["AccessPoints"]:
            tags = {t["Key"]: t["Value"] for t in ap.get("Tags", [])}
            by_name[tags.get("Name", ap.get("Name"))] = ap["AccessPointId"]
        for stack in stacks:
            for o in stack.get("Outputs", []):
                if o["OutputValue"].startswith(STAND_IN_ACCESS_POINT):
                    o["OutputValue"] = by_name[o["OutputValue"][len(STAND_IN_ACCESS_POINT):]]

    try:
        create("statuspage-network", "network.yaml")
        create("statuspage-registry", "registry.yaml", GitHubRepository="statuspage-org/statuspage", CreateGitHubOidcProvider="false")
        create("statuspage-storage", "storage.yaml")
        for env, namespace in (("staging", "statuspage-staging"), ("production", "statuspage")):
            create(f"statuspage-{env}-queue", "queue.yaml", Environment=env)
            create(f"statuspage-{env}-data", "data.yaml", Environment=env)
            create(f"statuspage-{env}-iam", "app-iam.yaml", Environment=env, Namespace=namespace, OidcIssuer=ISSUER,
                   QueueStack=f"statuspage-{env}-queue", DataStack=f"statuspage-{env}-data", AppSecretName=f"statuspage/{env}")
        read_back_access_points()
    finally:
        server.stop()
    if unexpected:
        print("\n".join(unexpected))
        return 1
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"Stacks": stacks}, f, default=str, indent=1)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
