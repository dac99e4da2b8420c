import { type Duration, RemovalPolicy } from "aws-cdk-lib";
import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Architecture, Runtime } from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";

export interface TrackingFunctionProps {
  functionName: string;
  description: string;
  /** Absolute path of the handler file (exports `handler`). */
  entry: string;
  memorySize: number;
  timeout: Duration;
  environment: Record<string, string>;
  /** Extra Node.js/V8 flags, appended to NODE_OPTIONS after `--enable-source-maps`. */
  nodeOptions?: readonly string[];
  logRetention: RetentionDays;
  reservedConcurrentExecutions?: number;
}

/**
 * A Lambda with the house defaults: Node.js 24 on arm64, bundled by the local
 * esbuild (no Docker) as one minified ES module with the AWS SDK inside (versions
 * pinned by package-lock, not by the runtime), its own log group with retention,
 * and its own role that starts with nothing but writing to that log group
 * (no AWSLambdaBasicExecutionRole and its account-wide log rights).
 */
export class TrackingFunction extends Construct {
  readonly function: NodejsFunction;
  readonly role: Role;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: TrackingFunctionProps) {
    super(scope, id);

    this.logGroup = new LogGroup(this, "Logs", {
      logGroupName: `/aws/lambda/${props.functionName}`,
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.role = new Role(this, "Role", {
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
      description: `Execution role of ${props.functionName}`,
    });
    this.logGroup.grantWrite(this.role);

    this.function = new NodejsFunction(this, "Function", {
      functionName: props.functionName,
      description: props.description,
      entry: props.entry,
      handler: "handler",
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      role: this.role,
      logGroup: this.logGroup,
      environment: {
        NODE_OPTIONS: ["--enable-source-maps", ...(props.nodeOptions ?? [])].join(" "),
        ...props.environment,
      },
      ...(props.reservedConcurrentExecutions !== undefined
        ? { reservedConcurrentExecutions: props.reservedConcurrentExecutions }
        : {}),
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: "node24",
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        externalModules: [],
        mainFields: ["module", "main"],
        // Bundled CommonJS dependencies call require(); give the ES module one.
        banner:
          "import{createRequire as __createRequire}from'node:module';const require=__createRequire(import.meta.url);",
      },
    });
  }
}
