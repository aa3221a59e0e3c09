"""Negative controls for the CloudFormation rules: one broken copy of a template per claim.

    python deploy/check/cfn_controls.py OUT_DIR

Writes each broken copy into OUT_DIR (never into deploy/aws/cloudformation/) and prints one line
per copy: the rule that must reject it, the file, and what was broken. scripts/check-deploy runs
cfn-lint with the custom rules on each and fails unless that rule reports it.
"""

import os
import sys

SOURCE = "deploy/aws/cloudformation"

# (rule, template, text to find, replacement, what is broken)
BREAKS = [
    ("E9001", "data.yaml", "      MultiAZ: true\n", "      MultiAZ: !Ref AWS::NoValue\n", "RDS Multi-AZ through a !Ref"),
    ("E9001", "data.yaml", "      StorageEncrypted: true\n", "      StorageEncrypted: false\n", "RDS unencrypted"),
    ("E9001", "data.yaml", "      PubliclyAccessible: false\n", "      PubliclyAccessible: true\n", "RDS public"),
    ("E9001", "data.yaml", '        rds.force_ssl: "1"\n', '        rds.force_ssl: "0"\n', "RDS without force_ssl"),
    ("E9002", "network.yaml", "      CidrBlock: !Select [3, !Cidr [!Ref VpcCidr, 9, 12]]\n      MapPublicIpOnLaunch: false\n",
     "      CidrBlock: !Select [3, !Cidr [!Ref VpcCidr, 9, 12]]\n      MapPublicIpOnLaunch: true\n", "a node subnet handing out public IPs"),
    ("E9002", "network.yaml", "    Properties: { SubnetId: !Ref NodeSubnetA, RouteTableId: !Ref NodeRoutesA }\n",
     "    Properties: { SubnetId: !Ref NodeSubnetA, RouteTableId: !Ref PublicRoutes }\n", "a node subnet routed to the internet gateway"),
    ("E9002", "data.yaml", '"${NetworkStack}-DataSubnetIds"', '"${NetworkStack}-PublicSubnetIds"', "the database in the public subnets"),
    ("E9003", "data.yaml", "          SourceSecurityGroupId: { \"Fn::ImportValue\": !Sub \"${NetworkStack}-NodeSecurityGroupId\" }\n          Description: PostgreSQL",
     "          CidrIp: 0.0.0.0/0\n          Description: PostgreSQL", "PostgreSQL open to the internet"),
    ("E9004", "storage.yaml", "      Encrypted: true\n", "      Encrypted: false\n", "EFS unencrypted"),
    ("E9004", "storage.yaml", "        Path: /statuspage-production\n", "        Path: /statuspage-staging\n", "production sharing staging's directory"),
    ("E9004", "storage.yaml", 'PosixUser: { Uid: "65532", Gid: "65532" }\n      RootDirectory:\n        Path: /statuspage-staging',
     'PosixUser: { Uid: "0", Gid: "0" }\n      RootDirectory:\n        Path: /statuspage-staging', "an access point as root"),
    ("E9005", "registry.yaml", "ImageScanningConfiguration: { ScanOnPush: true }", "ImageScanningConfiguration: { ScanOnPush: false }", "ECR without scanning"),
    ("E9005", "registry.yaml", "ImageTagMutability: IMMUTABLE", "ImageTagMutability: MUTABLE", "ECR with mutable tags"),
    ("E9006", "cluster.yaml", "          HttpTokens: required\n", "          HttpTokens: optional\n", "IMDSv1 allowed"),
    ("E9006", "cluster.yaml", "          HttpPutResponseHopLimit: 1\n", "          HttpPutResponseHopLimit: 2\n", "a hop limit pods can reach"),
    ("E9007", "app-iam.yaml", "                Action: sqs:SendMessage\n", "                Action: sqs:*\n", "an agent role allowing sqs:*"),
    ("E9007", "registry.yaml", "                Action: ecr:DescribeImages\n                Resource: !GetAtt Repository.Arn",
     "                Action: ecr:DescribeImages\n                Resource: \"*\"", "a promote role reading every repository"),
    ("E9007", "app-iam.yaml", '"system:serviceaccount:${Namespace}:${Account}"}}}]}\n        - Account: !Ref AgentServiceAccount',
     '"system:serviceaccount:${Namespace}:*"}}}]}\n        - Account: !Ref AgentServiceAccount', "a trust admitting every ServiceAccount"),
    ("E9008", "network.yaml", "      RetentionInDays: !Ref FlowLogRetentionDays\n", "", "flow logs kept forever"),
    ("E9009", "data.yaml", "    DeletionPolicy: Snapshot\n", "    DeletionPolicy: Delete\n", "RDS deleted without a snapshot"),
    ("E9009", "storage.yaml", "  FileSystem:\n    Type: AWS::EFS::FileSystem\n    DeletionPolicy: Retain\n",
     "  FileSystem:\n    Type: AWS::EFS::FileSystem\n    DeletionPolicy: Delete\n", "EFS deleted with its stack"),
    ("E9010", "queue.yaml", "        maxReceiveCount: 10\n", "        maxReceiveCount: 3\n", "a redrive after 3 receives"),
    ("E9011", "app-iam.yaml", "                Action: [sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility, sqs:GetQueueAttributes]\n",
     "                Action: [sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility, sqs:GetQueueAttributes, sqs:PurgeQueue]\n",
     "ingest allowed to purge the queue"),
    ("E9012", "cluster.yaml", "        EndpointPrivateAccess: true\n", "        EndpointPrivateAccess: false\n", "an EKS API without its private endpoint"),
    ("E9012", "cluster.yaml", "            - { Type: audit }\n", "", "EKS without audit logs"),
]


def main(out):
    os.makedirs(out, exist_ok=True)
    for i, (rule, template, find, replace, what) in enumerate(BREAKS):
        with open(os.path.join(SOURCE, template), encoding="utf-8") as f:
            text = f.read()
        if text.count(find) < 1:
            print(f"cfn_controls: {template} no longer contains the text this control breaks ({what})", file=sys.stderr)
            return 1
        broken = os.path.join(out, f"{i:02d}-{rule}-{template}")
        with open(broken, "w", encoding="utf-8") as f:
            f.write(text.replace(find, replace, 1))
        print(f"{rule}\t{broken}\t{what}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
