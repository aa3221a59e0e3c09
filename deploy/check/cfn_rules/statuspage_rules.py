"""The founding document's security claims about the AWS estate, as cfn-lint rules.

    cfn-lint --append-rules deploy/check/cfn_rules deploy/aws/cloudformation/*.yaml

Each rule reads literal values: a property written as !Ref, !If or a condition does not satisfy a
rule that asks for a literal, so no parameter file can switch a security property off. Every rule
has a negative control in scripts/check-deploy (deploy/check/cfn_controls.py makes the broken
copies). The IDs are E9xxx, cfn-lint's range for custom rules.
"""

import json
import re

from cfnlint.rules import CloudFormationLintRule, RuleMatch

# Allow statements with a wildcard action or resource that are fine, each with its reason.
WILDCARD_ALLOW_LIST = {
    # ECR's login call names no resource: AWS documents Resource "*" for it.
    ("ecr:GetAuthorizationToken", "*"),
    # AWS's default key policy: the account (and so only IAM policies in it) administers its key.
    ("kms:*", "*"),
}


def match(path, message):
    return RuleMatch(path, message)


def literal_sub(value):
    """The text of a string, or of a Fn::Sub's template with its ${...} left in."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub[0] if isinstance(sub, list) else sub
    return None


def policy_document(value):
    """A policy document written as a mapping or as a JSON string (plain or in a Fn::Sub)."""
    if isinstance(value, dict) and "Statement" in value:
        return value
    text = literal_sub(value)
    if text is None:
        return None
    try:
        return json.loads(re.sub(r"\$\{[^}]+\}", "X", text))
    except ValueError:
        return None


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(document):
    return [s for s in as_list((document or {}).get("Statement", [])) if isinstance(s, dict)]


def resources_of(cfn, kind):
    return cfn.get_resources([kind]).items()


class RdsMultiAzEncryptedPrivateTls(CloudFormationLintRule):
    id = "E9001"
    shortdesc = "RDS is Multi-AZ, encrypted with a KMS key, not public, protected, and forces TLS"
    description = shortdesc
    tags = ["statuspage", "rds"]

    def match(self, cfn):
        out = []
        groups = {name: r for name, r in resources_of(cfn, "AWS::RDS::DBParameterGroup")}
        for name, r in resources_of(cfn, "AWS::RDS::DBInstance"):
            p = r.get("Properties", {})
            base = ["Resources", name, "Properties"]
            for key, want in (("MultiAZ", True), ("StorageEncrypted", True), ("PubliclyAccessible", False),
                              ("DeletionProtection", True), ("ManageMasterUserPassword", True),
                              ("EnablePerformanceInsights", True)):
                if p.get(key) is not want:
                    out.append(match(base + [key], f"{name}: {key} must be the literal {str(want).lower()}"))
            if "KmsKeyId" not in p:
                out.append(match(base, f"{name}: StorageEncrypted needs its own KMS key (KmsKeyId)"))
            group = p.get("DBParameterGroupName")
            ref = group.get("Ref") if isinstance(group, dict) else None
            forced = ref in groups and str(groups[ref].get("Properties", {}).get("Parameters", {}).get("rds.force_ssl")) == "1"
            if not forced:
                out.append(match(base + ["DBParameterGroupName"], f"{name}: its parameter group must set rds.force_ssl to 1"))
        return out


class PrivatePlacement(CloudFormationLintRule):
    id = "E9002"
    shortdesc = "Nodes and data sit in private subnets; only public subnets route to the internet gateway"
    description = shortdesc
    tags = ["statuspage", "network"]

    def match(self, cfn):
        out = []

        def imports(value, export):
            text = json.dumps(value)
            return f"-{export}" in text

        for name, r in resources_of(cfn, "AWS::EC2::Subnet"):
            if r.get("Properties", {}).get("MapPublicIpOnLaunch") is not False:
                out.append(match(["Resources", name, "Properties"], f"{name}: MapPublicIpOnLaunch must be the literal false"))
        # A route table with a route to the internet gateway may only serve the public subnets.
        public_tables = set()
        for name, r in resources_of(cfn, "AWS::EC2::Route"):
            p = r.get("Properties", {})
            if "GatewayId" in p:
                table = p.get("RouteTableId", {})
                public_tables.add(table.get("Ref") if isinstance(table, dict) else table)
        subnets = dict(resources_of(cfn, "AWS::EC2::Subnet"))
        for name, r in resources_of(cfn, "AWS::EC2::SubnetRouteTableAssociation"):
            p = r.get("Properties", {})
            table, subnet = p.get("RouteTableId", {}), p.get("SubnetId", {})
            table = table.get("Ref") if isinstance(table, dict) else table
            subnet = subnet.get("Ref") if isinstance(subnet, dict) else subnet
            tags = {t.get("Key"): t.get("Value") for t in subnets.get(subnet, {}).get("Properties", {}).get("Tags", [])}
            if table in public_tables and "kubernetes.io/role/elb" not in tags:
                out.append(match(["Resources", name], f"{name}: {subnet} is not a public subnet but routes to the internet gateway"))
        for name, r in resources_of(cfn, "AWS::RDS::DBSubnetGroup"):
            if not imports(r.get("Properties", {}).get("SubnetIds"), "DataSubnetIds"):
                out.append(match(["Resources", name, "Properties", "SubnetIds"], f"{name}: the database must be in the data subnets"))
        for name, r in resources_of(cfn, "AWS::EKS::Nodegroup"):
            if not imports(r.get("Properties", {}).get("Subnets"), "NodeSubnetIds"):
                out.append(match(["Resources", name, "Properties", "Subnets"], f"{name}: nodes must be in the private node subnets"))
        for name, r in resources_of(cfn, "AWS::EFS::MountTarget"):
            if not imports(r.get("Properties", {}).get("SubnetId"), "NodeSubnetIds"):
                out.append(match(["Resources", name, "Properties", "SubnetId"], f"{name}: mount targets belong in the node subnets"))
        return out


class NoOpenIngress(CloudFormationLintRule):
    id = "E9003"
    shortdesc = "No security group admits 0.0.0.0/0 or ::/0 except on 80 and 443"
    description = shortdesc
    tags = ["statuspage", "network"]

    def match(self, cfn):
        out = []

        def check(name, path, rule):
            if not isinstance(rule, dict):
                return
            open_to_all = rule.get("CidrIp") == "0.0.0.0/0" or rule.get("CidrIpv6") == "::/0"
            ports = (rule.get("FromPort"), rule.get("ToPort"))
            if open_to_all and ports not in ((80, 80), (443, 443)):
                out.append(match(path, f"{name}: ingress from anywhere on {ports} (only 80 and 443, at a load balancer)"))

        for name, r in resources_of(cfn, "AWS::EC2::SecurityGroup"):
            for i, rule in enumerate(as_list(r.get("Properties", {}).get("SecurityGroupIngress", []))):
                check(name, ["Resources", name, "Properties", "SecurityGroupIngress", i], rule)
        for name, r in resources_of(cfn, "AWS::EC2::SecurityGroupIngress"):
            check(name, ["Resources", name, "Properties"], r.get("Properties", {}))
        return out


class EfsEncryptedSeparateAccessPoints(CloudFormationLintRule):
    id = "E9004"
    shortdesc = "EFS is encrypted, refuses plain transport, and gives each environment its own access point as 65532"
    description = shortdesc
    tags = ["statuspage", "efs"]

    def match(self, cfn):
        out = []
        for name, r in resources_of(cfn, "AWS::EFS::FileSystem"):
            p = r.get("Properties", {})
            if p.get("Encrypted") is not True:
                out.append(match(["Resources", name, "Properties"], f"{name}: Encrypted must be the literal true"))
            denies = [s for s in statements(p.get("FileSystemPolicy")) if s.get("Effect") == "Deny"
                      and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")) == "false"]
            if not denies:
                out.append(match(["Resources", name, "Properties"], f"{name}: its policy must deny aws:SecureTransport false"))
        roots = {}
        for name, r in resources_of(cfn, "AWS::EFS::AccessPoint"):
            p = r.get("Properties", {})
            user = p.get("PosixUser", {})
            root = p.get("RootDirectory", {})
            info = root.get("CreationInfo", {})
            if (str(user.get("Uid")), str(user.get("Gid"))) != ("65532", "65532"):
                out.append(match(["Resources", name, "Properties", "PosixUser"], f"{name}: PosixUser must be uid/gid 65532"))
            path = root.get("Path")
            if not isinstance(path, str) or path in ("", "/") or path in roots.values():
                out.append(match(["Resources", name, "Properties", "RootDirectory"], f"{name}: needs its own root directory"))
            roots[name] = path
            if str(info.get("Permissions")) != "0750":
                out.append(match(["Resources", name, "Properties", "RootDirectory"], f"{name}: the root is created with mode 0750"))
        if resources_of(cfn, "AWS::EFS::FileSystem") and len(roots) < 2:
            out.append(match(["Resources"], "EFS needs an access point for staging and one for production"))
        return out


class EcrScannedImmutable(CloudFormationLintRule):
    id = "E9005"
    shortdesc = "ECR scans on push, with immutable tags, encryption and a lifecycle policy"
    description = shortdesc
    tags = ["statuspage", "ecr"]

    def match(self, cfn):
        out = []
        for name, r in resources_of(cfn, "AWS::ECR::Repository"):
            p = r.get("Properties", {})
            base = ["Resources", name, "Properties"]
            if p.get("ImageScanningConfiguration", {}).get("ScanOnPush") is not True:
                out.append(match(base, f"{name}: ScanOnPush must be the literal true"))
            if p.get("ImageTagMutability") != "IMMUTABLE":
                out.append(match(base, f"{name}: ImageTagMutability must be IMMUTABLE"))
            if "EncryptionConfiguration" not in p or "LifecyclePolicy" not in p:
                out.append(match(base, f"{name}: needs EncryptionConfiguration and a LifecyclePolicy"))
        return out


class Imdsv2Only(CloudFormationLintRule):
    id = "E9006"
    shortdesc = "Launch templates require IMDSv2 with a hop limit of 1"
    description = shortdesc
    tags = ["statuspage", "ec2"]

    def match(self, cfn):
        out = []
        for name, r in resources_of(cfn, "AWS::EC2::LaunchTemplate"):
            m = r.get("Properties", {}).get("LaunchTemplateData", {}).get("MetadataOptions", {})
            if m.get("HttpTokens") != "required" or m.get("HttpPutResponseHopLimit") != 1:
                out.append(match(["Resources", name, "Properties", "LaunchTemplateData"],
                                 f"{name}: MetadataOptions must be HttpTokens required, HttpPutResponseHopLimit 1"))
        for name, r in resources_of(cfn, "AWS::EKS::Nodegroup"):
            if "LaunchTemplate" not in r.get("Properties", {}):
                out.append(match(["Resources", name, "Properties"], f"{name}: nodes come from the IMDSv2 launch template"))
        return out


class NoWildcardPermissions(CloudFormationLintRule):
    id = "E9007"
    shortdesc = "No Allow with a * action or resource outside the written allow-list; web-identity trusts pin one subject"
    description = shortdesc
    tags = ["statuspage", "iam"]

    def match(self, cfn):
        out = []

        def check_document(name, path, document):
            for i, s in enumerate(statements(document)):
                if s.get("Effect") != "Allow":
                    continue
                acts = [a for a in as_list(s.get("Action", [])) if isinstance(a, str)]
                res = [x for x in as_list(s.get("Resource", [])) if isinstance(x, str)]
                for a in acts:
                    wild_action = a == "*" or a.endswith(":*")
                    for x in res or [None]:
                        if (wild_action or x == "*") and (a, x) not in WILDCARD_ALLOW_LIST:
                            out.append(match(path + ["Statement", i], f"{name}: Allow {a} on {x} is not on the allow-list"))
                if "NotAction" in s or "NotResource" in s:
                    out.append(match(path + ["Statement", i], f"{name}: NotAction and NotResource are not allowed"))

        for name, r in resources_of(cfn, "AWS::IAM::Role"):
            p = r.get("Properties", {})
            for i, policy in enumerate(as_list(p.get("Policies", []))):
                check_document(name, ["Resources", name, "Properties", "Policies", i], policy.get("PolicyDocument"))
            trust = policy_document(p.get("AssumeRolePolicyDocument"))
            if trust is None:
                out.append(match(["Resources", name, "Properties"], f"{name}: its trust policy must be readable"))
                continue
            for s in statements(trust):
                if s.get("Action") != "sts:AssumeRoleWithWebIdentity":
                    continue
                equals = s.get("Condition", {}).get("StringEquals", {})
                subs = [v for k, v in equals.items() if k.endswith(":sub")]
                auds = [v for k, v in equals.items() if k.endswith(":aud")]
                wildcard = any(isinstance(v, str) and ("*" in v or "?" in v) for v in subs)
                if len(subs) != 1 or wildcard or auds != ["sts.amazonaws.com"]:
                    out.append(match(["Resources", name, "Properties", "AssumeRolePolicyDocument"],
                                     f"{name}: a web-identity trust must admit exactly one subject, audience sts.amazonaws.com"))
                if "StringLike" in s.get("Condition", {}):
                    out.append(match(["Resources", name, "Properties", "AssumeRolePolicyDocument"],
                                     f"{name}: no StringLike in a web-identity trust (a pattern admits more than one subject)"))
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for name, r in resources_of(cfn, kind):
                check_document(name, ["Resources", name, "Properties", "PolicyDocument"], r.get("Properties", {}).get("PolicyDocument"))
        for name, r in resources_of(cfn, "AWS::KMS::Key"):
            check_document(name, ["Resources", name, "Properties", "KeyPolicy"], r.get("Properties", {}).get("KeyPolicy"))
        return out


class LogRetention(CloudFormationLintRule):
    id = "E9008"
    shortdesc = "Every log group has a retention"
    description = shortdesc
    tags = ["statuspage", "logs"]

    def match(self, cfn):
        return [match(["Resources", name, "Properties"], f"{name}: RetentionInDays is required")
                for name, r in resources_of(cfn, "AWS::Logs::LogGroup")
                if "RetentionInDays" not in r.get("Properties", {})]


class DeletionPolicies(CloudFormationLintRule):
    id = "E9009"
    shortdesc = "Data survives a stack deletion: snapshots for RDS, retention for EFS, ECR and KMS keys"
    description = shortdesc
    tags = ["statuspage", "data"]

    WANT = {
        "AWS::RDS::DBInstance": "Snapshot",
        "AWS::EFS::FileSystem": "Retain",
        "AWS::ECR::Repository": "Retain",
        "AWS::KMS::Key": "Retain",
    }

    def match(self, cfn):
        out = []
        for kind, want in self.WANT.items():
            for name, r in resources_of(cfn, kind):
                if r.get("DeletionPolicy") != want or r.get("UpdateReplacePolicy") != want:
                    out.append(match(["Resources", name], f"{name}: DeletionPolicy and UpdateReplacePolicy must be {want}"))
        return out


class QueueRedrive(CloudFormationLintRule):
    id = "E9010"
    shortdesc = "The results queue: redrive after 10 receives, 60 s visibility, 20 s long polling, encryption"
    description = shortdesc
    tags = ["statuspage", "sqs"]

    def match(self, cfn):
        out = []
        for name, r in resources_of(cfn, "AWS::SQS::Queue"):
            p = r.get("Properties", {})
            base = ["Resources", name, "Properties"]
            if p.get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in p:
                out.append(match(base, f"{name}: server-side encryption is required"))
            if "RedrivePolicy" not in p:
                continue
            if p["RedrivePolicy"].get("maxReceiveCount") != 10:
                out.append(match(base + ["RedrivePolicy"], f"{name}: redrive after exactly 10 receives (DESIGN §7)"))
            if p.get("VisibilityTimeout") != 60 or p.get("ReceiveMessageWaitTimeSeconds") != 20:
                out.append(match(base, f"{name}: visibility 60 s and long polling 20 s"))
        return out


class LeastPrivilegeApplicationRoles(CloudFormationLintRule):
    id = "E9011"
    shortdesc = "The agent may only send to its queue; ingest only consume it and read the DLQ's depth"
    description = shortdesc
    tags = ["statuspage", "iam"]

    INGEST = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}

    def match(self, cfn):
        out = []
        roles = dict(resources_of(cfn, "AWS::IAM::Role"))
        for name, want in (("AgentRole", {"sqs:SendMessage"}), ("IngestRole", self.INGEST)):
            if name not in roles:
                continue
            granted = set()
            for policy in as_list(roles[name].get("Properties", {}).get("Policies", [])):
                for s in statements(policy.get("PolicyDocument")):
                    granted |= {a for a in as_list(s.get("Action", [])) if isinstance(a, str)}
                    if "QueueArn" not in json.dumps(s.get("Resource")):
                        out.append(match(["Resources", name], f"{name}: every grant must name the queue (or its DLQ)"))
            if name == "AgentRole" and granted != want or not granted <= want:
                out.append(match(["Resources", name], f"{name}: grants {sorted(granted)}, expected only {sorted(want)}"))
        return out


class PrivateClusterEndpoint(CloudFormationLintRule):
    id = "E9012"
    shortdesc = "EKS: private endpoint, Secrets encrypted with KMS, every control-plane log on"
    description = shortdesc
    tags = ["statuspage", "eks"]

    def match(self, cfn):
        out = []
        for name, r in resources_of(cfn, "AWS::EKS::Cluster"):
            p = r.get("Properties", {})
            base = ["Resources", name, "Properties"]
            if p.get("ResourcesVpcConfig", {}).get("EndpointPrivateAccess") is not True:
                out.append(match(base, f"{name}: EndpointPrivateAccess must be the literal true"))
            if not any("secrets" in as_list(e.get("Resources", [])) for e in as_list(p.get("EncryptionConfig", []))):
                out.append(match(base, f"{name}: Secrets must be envelope-encrypted with KMS"))
            types = {t.get("Type") for t in p.get("Logging", {}).get("ClusterLogging", {}).get("EnabledTypes", [])}
            if types != {"api", "audit", "authenticator", "controllerManager", "scheduler"}:
                out.append(match(base, f"{name}: every control-plane log type must be on"))
        for name, p in cfn.template.get("Parameters", {}).items():
            if name == "PublicEndpointCidrs" and "0.0.0.0/0" in str(p.get("Default", "")):
                out.append(match(["Parameters", name], "the public endpoint must never default to 0.0.0.0/0"))
        return out
