// Assertions on the synthesized template (aws-cdk-lib/assertions), run with node's test runner:
// the task role's exact actions (the same as deploy/iam-policy.json), the tables as proxy-store
// creates them, the health check path, the ALB's idle timeout and listeners, the drain and scaling.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as cdk from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { GatewayStack, SHUTDOWN_GRACE, BEDROCK_TIMEOUT } from "../lib/gateway-stack.ts";

const CERT = "arn:aws:acm:us-west-2:111122223333:certificate/0f0f0f0f-1111-2222-3333-444455556666";

function synth(extra: Partial<ConstructorParameters<typeof GatewayStack>[2]> = {}): Template {
  const app = new cdk.App();
  const stack = new GatewayStack(app, "Test", {
    image: "111122223333.dkr.ecr.us-west-2.amazonaws.com/bedrock-gateway:0.1.0",
    env: { account: "111122223333", region: "us-west-2" },
    ...extra,
  });
  return Template.fromStack(stack);
}

const http = synth();
const https = synth({ certificateArn: CERT });

/** Every statement of the task role's policies: { Sid: [actions] }. */
function taskRoleStatements(t: Template): Record<string, string[]> {
  const roles = t.findResources("AWS::IAM::Role", {
    Properties: { AssumeRolePolicyDocument: { Statement: [{ Principal: { Service: "ecs-tasks.amazonaws.com" } }] } },
  });
  const taskRole = Object.entries(roles).find(([id]) => id.startsWith("TaskRole"));
  assert.ok(taskRole, "no TaskRole");
  const policies = t.findResources("AWS::IAM::Policy");
  const out: Record<string, string[]> = {};
  for (const policy of Object.values(policies)) {
    const attached = policy.Properties.Roles.some((r: { Ref?: string }) => r.Ref === taskRole[0]);
    if (!attached) continue;
    for (const s of policy.Properties.PolicyDocument.Statement) {
      assert.equal(s.Effect, "Allow");
      out[s.Sid] = [s.Action].flat().sort();
    }
  }
  return out;
}

test("the task role has exactly the gateway's actions, and deploy/iam-policy.json the same", () => {
  const expected = {
    BedrockRuntime: ["bedrock:CountTokens", "bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
    BedrockCatalog: ["bedrock:ListFoundationModels", "bedrock:ListInferenceProfiles"],
    BedrockMantle: ["bedrock-mantle:CreateInference"],
    GatewayTables: [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
    ],
  };
  assert.deepEqual(taskRoleStatements(http), expected);
  const doc = JSON.parse(readFileSync(new URL("../../iam-policy.json", import.meta.url), "utf8"));
  const published = Object.fromEntries(
    doc.Statement.map((s: { Sid: string; Action: string[] }) => [s.Sid, [...s.Action].sort()]),
  );
  assert.deepEqual(published, expected);
});

test("the DynamoDB actions are on the three tables and their indexes only", () => {
  const policies = Object.values(http.findResources("AWS::IAM::Policy"));
  const statement = policies
    .flatMap((p) => p.Properties.PolicyDocument.Statement)
    .find((s: { Sid?: string }) => s.Sid === "GatewayTables");
  const tables = Object.keys(http.findResources("AWS::DynamoDB::Table"));
  const arns = JSON.stringify(statement.Resource);
  for (const id of tables) assert.ok(arns.includes(id), `${id} missing in ${arns}`);
  assert.ok(!arns.includes('"*"'));
  assert.equal(statement.Resource.length, 6);
});

test("the tables, exactly as proxy-admin setup-tables creates them", () => {
  http.resourceCountIs("AWS::DynamoDB::Table", 3);
  const common = {
    BillingMode: "PAY_PER_REQUEST",
    PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
  };
  http.hasResource("AWS::DynamoDB::Table", {
    DeletionPolicy: "Retain",
    Properties: {
      ...common,
      TableName: "anthropic-proxy-api-keys",
      KeySchema: [{ AttributeName: "key_id", KeyType: "HASH" }],
      GlobalSecondaryIndexes: [
        Match.objectLike({ IndexName: "key_hash-index", KeySchema: [{ AttributeName: "key_hash", KeyType: "HASH" }] }),
        Match.objectLike({ IndexName: "user_id-index", KeySchema: [{ AttributeName: "user_id", KeyType: "HASH" }] }),
      ],
    },
  });
  http.hasResource("AWS::DynamoDB::Table", {
    DeletionPolicy: "Retain",
    Properties: {
      ...common,
      TableName: "anthropic-proxy-usage",
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      GlobalSecondaryIndexes: [
        Match.objectLike({
          IndexName: "agg_user-index",
          KeySchema: [
            { AttributeName: "agg_user", KeyType: "HASH" },
            { AttributeName: "sk", KeyType: "RANGE" },
          ],
          Projection: { ProjectionType: "ALL" },
        }),
      ],
    },
  });
  http.hasResource("AWS::DynamoDB::Table", {
    DeletionPolicy: "Retain",
    Properties: {
      ...common,
      TableName: "anthropic-proxy-cache",
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      TimeToLiveSpecification: { AttributeName: "expires_at", Enabled: true },
    },
  });
});

test("health checks ask /health; the ALB outwaits Bedrock; the drain fits", () => {
  for (const t of [http, https]) {
    t.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      HealthCheckPath: "/health",
      TargetGroupAttributes: Match.arrayWith([
        { Key: "deregistration_delay.timeout_seconds", Value: String(SHUTDOWN_GRACE + 10) },
      ]),
    });
    // Tasks register on the gateway's port (the health check asks that port).
    t.hasResourceProperties("AWS::ECS::Service", {
      LoadBalancers: [Match.objectLike({ ContainerName: "gateway", ContainerPort: 8000 })],
    });
    t.hasResourceProperties("AWS::ElasticLoadBalancingV2::LoadBalancer", {
      LoadBalancerAttributes: Match.arrayWith([
        { Key: "idle_timeout.timeout_seconds", Value: String(BEDROCK_TIMEOUT + 60) },
      ]),
    });
    t.hasResourceProperties("AWS::ECS::TaskDefinition", {
      ContainerDefinitions: [
        Match.objectLike({
          HealthCheck: Match.objectLike({ Command: ["CMD", "/usr/local/bin/proxy-admin", "health"] }),
          StopTimeout: SHUTDOWN_GRACE + 30,
          Secrets: [Match.objectLike({ Name: "MASTER_API_KEY" })],
          Environment: Match.arrayWith([
            { Name: "STORE_BACKEND", Value: "dynamodb" },
            { Name: "SHUTDOWN_GRACE", Value: String(SHUTDOWN_GRACE) },
          ]),
        }),
      ],
    });
  }
  assert.ok(SHUTDOWN_GRACE + 30 <= 120, "Fargate's stopTimeout maximum");
});

test("HTTPS only when a certificate is given", () => {
  http.resourceCountIs("AWS::ElasticLoadBalancingV2::Listener", 1);
  http.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", { Protocol: "HTTP", Port: 80 });
  https.resourceCountIs("AWS::ElasticLoadBalancingV2::Listener", 2);
  https.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
    Protocol: "HTTPS",
    Port: 443,
    Certificates: [{ CertificateArn: CERT }],
  });
  https.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
    Protocol: "HTTP",
    Port: 80,
    DefaultActions: [Match.objectLike({ Type: "redirect" })],
  });
});

test("autoscaling on CPU and on requests per target", () => {
  http.hasResourceProperties("AWS::ApplicationAutoScaling::ScalableTarget", { MinCapacity: 2, MaxCapacity: 10 });
  http.hasResourceProperties("AWS::ApplicationAutoScaling::ScalingPolicy", {
    TargetTrackingScalingPolicyConfiguration: Match.objectLike({
      PredefinedMetricSpecification: { PredefinedMetricType: "ECSServiceAverageCPUUtilization" },
    }),
  });
  http.hasResourceProperties("AWS::ApplicationAutoScaling::ScalingPolicy", {
    TargetTrackingScalingPolicyConfiguration: Match.objectLike({
      PredefinedMetricSpecification: Match.objectLike({ PredefinedMetricType: "ALBRequestCountPerTarget" }),
    }),
  });
});

test("the master key comes from Secrets Manager; logs go to the stack's log group", () => {
  http.resourceCountIs("AWS::SecretsManager::Secret", 1);
  http.hasResourceProperties("AWS::Logs::LogGroup", { RetentionInDays: 30 });
  const existing = synth({
    masterKeySecretArn: "arn:aws:secretsmanager:us-west-2:111122223333:secret:gateway-master-AbCdEf",
  });
  existing.resourceCountIs("AWS::SecretsManager::Secret", 0);
});
