// The gateway on AWS: ECS Fargate tasks behind an Application Load Balancer, the three DynamoDB tables
// of the store, a task role with exactly the actions the gateway calls, MASTER_API_KEY from Secrets
// Manager, a log group, and autoscaling on CPU and request count.
import * as cdk from "aws-cdk-lib";
import * as acm from "aws-cdk-lib/aws-certificatemanager";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as ecsPatterns from "aws-cdk-lib/aws-ecs-patterns";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";

export interface GatewayStackProps extends cdk.StackProps {
  /** The gateway image (e.g. an ECR URI with the release's tag). */
  readonly image: string;
  /** An existing VPC (looked up); default: a new one with two AZs and one NAT gateway. */
  readonly vpcId?: string;
  /** An ACM certificate: HTTPS on 443 and HTTP redirected; default: HTTP on 80. */
  readonly certificateArn?: string;
  /** An existing secret whose value is the operator key; default: a generated one. */
  readonly masterKeySecretArn?: string;
  /** DYNAMODB_TABLE_PREFIX (default `anthropic-proxy`). */
  readonly tablePrefix?: string;
}

/** Seconds the gateway drains open requests after SIGTERM (SHUTDOWN_GRACE). */
export const SHUTDOWN_GRACE = 60;
/** Seconds the gateway waits for Bedrock (BEDROCK_TIMEOUT's default): the ALB must wait longer. */
export const BEDROCK_TIMEOUT = 600;

/** The Bedrock runtime actions: InvokeModel (Invoke, Converse, the Messages API), its streaming twin, CountTokens. */
export const BEDROCK_RUNTIME_ACTIONS = [
  "bedrock:InvokeModel",
  "bedrock:InvokeModelWithResponseStream",
  "bedrock:CountTokens",
];
/** The control-plane reads the routes come from (MODEL_REFRESH_INTERVAL). */
export const BEDROCK_CATALOG_ACTIONS = ["bedrock:ListFoundationModels", "bedrock:ListInferenceProfiles"];
/** Bedrock's Anthropic Messages API on Mantle. */
export const MANTLE_ACTIONS = ["bedrock-mantle:CreateInference"];
/** What proxy-store's DynamoDB backend calls while serving (tables checked at start, keys, limits, usage, cache). */
export const DYNAMODB_ACTIONS = [
  "dynamodb:DescribeTable",
  "dynamodb:GetItem",
  "dynamodb:PutItem",
  "dynamodb:UpdateItem",
  "dynamodb:Query",
];

export class GatewayStack extends cdk.Stack {
  constructor(scope: Construct, id: string, props: GatewayStackProps) {
    super(scope, id, props);
    const prefix = props.tablePrefix ?? "anthropic-proxy";

    const vpc = props.vpcId
      ? ec2.Vpc.fromLookup(this, "Vpc", { vpcId: props.vpcId })
      : new ec2.Vpc(this, "Vpc", { maxAzs: 2, natGateways: 1 });

    // The tables exactly as `proxy-admin setup-tables` creates them (proxy-store's dynamo.rs), with
    // point-in-time recovery, kept when the stack is deleted.
    const table = (name: string, tableProps: Partial<dynamodb.TableProps>) =>
      new dynamodb.Table(this, name, {
        partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
        ...tableProps,
        tableName: `${prefix}-${name}`,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        removalPolicy: cdk.RemovalPolicy.RETAIN,
      });
    const keys = table("api-keys", { partitionKey: { name: "key_id", type: dynamodb.AttributeType.STRING } });
    keys.addGlobalSecondaryIndex({
      indexName: "key_hash-index",
      partitionKey: { name: "key_hash", type: dynamodb.AttributeType.STRING },
    });
    keys.addGlobalSecondaryIndex({
      indexName: "user_id-index",
      partitionKey: { name: "user_id", type: dynamodb.AttributeType.STRING },
    });
    const usage = table("usage", { sortKey: { name: "sk", type: dynamodb.AttributeType.STRING } });
    usage.addGlobalSecondaryIndex({
      indexName: "agg_user-index",
      partitionKey: { name: "agg_user", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "sk", type: dynamodb.AttributeType.STRING },
    });
    // Cached responses and the shared limit counters expire by themselves.
    const cache = table("cache", { timeToLiveAttribute: "expires_at" });
    const tables = [keys, usage, cache];

    const masterKey = props.masterKeySecretArn
      ? secretsmanager.Secret.fromSecretCompleteArn(this, "MasterApiKey", props.masterKeySecretArn)
      : new secretsmanager.Secret(this, "MasterApiKey", {
          description: "MASTER_API_KEY of the Bedrock gateway (an operator key)",
          generateSecretString: { passwordLength: 48, excludePunctuation: true },
        });

    const logGroup = new logs.LogGroup(this, "Logs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });

    // The task role: exactly the calls the gateway makes, on the resources it makes them on.
    const taskRole = new iam.Role(this, "TaskRole", {
      assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
      description: "The Bedrock gateway's tasks: Bedrock runtime, catalog, Mantle and its DynamoDB tables",
    });
    taskRole.addToPolicy(
      new iam.PolicyStatement({
        sid: "BedrockRuntime",
        actions: BEDROCK_RUNTIME_ACTIONS,
        resources: [
          "arn:aws:bedrock:*::foundation-model/*",
          `arn:aws:bedrock:*:${this.account}:inference-profile/*`,
          `arn:aws:bedrock:*:${this.account}:application-inference-profile/*`,
        ],
      }),
    );
    taskRole.addToPolicy(
      new iam.PolicyStatement({ sid: "BedrockCatalog", actions: BEDROCK_CATALOG_ACTIONS, resources: ["*"] }),
    );
    taskRole.addToPolicy(
      new iam.PolicyStatement({
        sid: "BedrockMantle",
        actions: MANTLE_ACTIONS,
        resources: [`arn:aws:bedrock-mantle:${this.region}:${this.account}:project/*`],
      }),
    );
    taskRole.addToPolicy(
      new iam.PolicyStatement({
        sid: "GatewayTables",
        actions: DYNAMODB_ACTIONS,
        resources: tables.flatMap((t) => [t.tableArn, `${t.tableArn}/index/*`]),
      }),
    );

    const taskDefinition = new ecs.FargateTaskDefinition(this, "Task", {
      cpu: 512,
      memoryLimitMiB: 1024,
      taskRole,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    taskDefinition.addContainer("gateway", {
      image: ecs.ContainerImage.fromRegistry(props.image),
      portMappings: [{ containerPort: 8000, name: "http" }],
      environment: {
        LISTEN_ADDR: "0.0.0.0:8000",
        AWS_REGION: this.region,
        STORE_BACKEND: "dynamodb",
        DYNAMODB_TABLE_PREFIX: prefix,
        SHUTDOWN_GRACE: String(SHUTDOWN_GRACE),
        LOG_FORMAT: "json",
      },
      secrets: { MASTER_API_KEY: ecs.Secret.fromSecretsManager(masterKey) },
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: "gateway" }),
      healthCheck: {
        command: ["CMD", "/usr/local/bin/proxy-admin", "health"],
        interval: cdk.Duration.seconds(10),
        timeout: cdk.Duration.seconds(5),
        startPeriod: cdk.Duration.seconds(10),
        retries: 3,
      },
      // SIGTERM, then SHUTDOWN_GRACE to drain and time to flush usage before SIGKILL (Fargate's maximum is 120 s).
      stopTimeout: cdk.Duration.seconds(SHUTDOWN_GRACE + 30),
    });

    const certificate = props.certificateArn
      ? acm.Certificate.fromCertificateArn(this, "Certificate", props.certificateArn)
      : undefined;
    const service = new ecsPatterns.ApplicationLoadBalancedFargateService(this, "Service", {
      vpc,
      taskDefinition,
      desiredCount: 2,
      publicLoadBalancer: true,
      // A non-streamed answer can take BEDROCK_TIMEOUT without a byte on the wire.
      idleTimeout: cdk.Duration.seconds(BEDROCK_TIMEOUT + 60),
      certificate,
      protocol: certificate ? elbv2.ApplicationProtocol.HTTPS : elbv2.ApplicationProtocol.HTTP,
      redirectHTTP: certificate !== undefined,
      sslPolicy: certificate ? elbv2.SslPolicy.RECOMMENDED_TLS : undefined,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      healthCheckGracePeriod: cdk.Duration.seconds(30),
    });
    service.targetGroup.configureHealthCheck({
      path: "/health",
      healthyHttpCodes: "200",
      interval: cdk.Duration.seconds(10),
      timeout: cdk.Duration.seconds(5),
      healthyThresholdCount: 2,
      unhealthyThresholdCount: 3,
    });
    // Open streams get the drain's time after a task leaves the target group.
    service.targetGroup.setAttribute("deregistration_delay.timeout_seconds", String(SHUTDOWN_GRACE + 10));

    const scaling = service.service.autoScaleTaskCount({ minCapacity: 2, maxCapacity: 10 });
    scaling.scaleOnCpuUtilization("Cpu", { targetUtilizationPercent: 60 });
    scaling.scaleOnRequestCount("Requests", {
      requestsPerTarget: 300,
      targetGroup: service.targetGroup,
    });

    new cdk.CfnOutput(this, "Url", {
      value: `${certificate ? "https" : "http"}://${service.loadBalancer.loadBalancerDnsName}`,
    });
    new cdk.CfnOutput(this, "MasterKeySecret", { value: masterKey.secretArn });
  }
}
