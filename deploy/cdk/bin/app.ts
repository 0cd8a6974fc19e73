// The CDK app: one GatewayStack, configured by context (`-c key=value`) or environment:
//   image              the gateway image URI (required), e.g. 111122223333.dkr.ecr.us-west-2.amazonaws.com/bedrock-gateway:0.1.0
//   vpcId              an existing VPC to use (looked up; needs AWS credentials at synth); default: a new VPC
//   certificateArn     an ACM certificate: HTTPS on 443 (HTTP redirects); default: HTTP on 80 only
//   masterKeySecretArn an existing Secrets Manager secret holding MASTER_API_KEY; default: one is generated
//   tablePrefix        DYNAMODB_TABLE_PREFIX (default anthropic-proxy)
import * as cdk from "aws-cdk-lib";
import { GatewayStack } from "../lib/gateway-stack.ts";

const app = new cdk.App();
const context = (key: string): string | undefined => {
  const value = app.node.tryGetContext(key) ?? process.env[`GATEWAY_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`];
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
};
const image = context("image");
if (!image) {
  throw new Error("set the gateway image: cdk synth -c image=<registry>/bedrock-gateway:<version> (deploy/README.md)");
}
new GatewayStack(app, "BedrockGateway", {
  image,
  vpcId: context("vpcId"),
  certificateArn: context("certificateArn"),
  masterKeySecretArn: context("masterKeySecretArn"),
  tablePrefix: context("tablePrefix"),
  env: {
    account: process.env.CDK_DEFAULT_ACCOUNT,
    region: process.env.CDK_DEFAULT_REGION,
  },
});
