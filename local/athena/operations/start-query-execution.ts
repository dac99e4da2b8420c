import { createHash, randomUUID } from "node:crypto";
import { ApiError } from "../errors";
import {
  optionalObject,
  optionalString,
  optionalStringArray,
  parseS3Location,
  requireString,
} from "../input";
import { enqueueQuery } from "../run-query";
import { statementTypeOf } from "../sql-text";
import type { AthenaState, Execution } from "../state";
import { transition } from "../transitions";

/** A StartQueryExecution request, checked and with the work group's settings applied. */
interface StartRequest {
  query: string;
  workGroup: string;
  parameters: string[] | undefined;
  database: string | undefined;
  catalog: string;
  outputLocation: string;
  bucket: string;
  prefix: string;
  reuse: { enabled: boolean; maxAgeMinutes: number };
  token: string;
}

export function startQueryExecution(
  state: AthenaState,
  input: Record<string, unknown>,
): { QueryExecutionId: string } {
  const request = parseStartRequest(state, input);
  const fingerprint = fingerprintOf(request);
  const known = state.byToken.get(request.token);
  if (known) {
    if (known.fingerprint !== fingerprint) {
      throw new ApiError(
        "InvalidRequestException",
        "Idempotent parameters do not match: the ClientRequestToken was used with a different request.",
      );
    }
    return { QueryExecutionId: known.id };
  }

  const execution = createExecution(request, fingerprint);
  state.executions.set(execution.id, execution);
  state.byToken.set(request.token, execution);

  const reusable = request.reuse.enabled ? findReusable(state, execution) : undefined;
  if (reusable) {
    execution.reusedFrom = reusable;
    execution.rows = reusable.rows;
    transition(state, execution, "QUEUED");
    execution.started = new Date();
    transition(state, execution, "RUNNING");
    transition(state, execution, "SUCCEEDED");
    return { QueryExecutionId: execution.id };
  }

  transition(state, execution, "QUEUED");
  enqueueQuery(state, execution);
  return { QueryExecutionId: execution.id };
}

function parseStartRequest(state: AthenaState, input: Record<string, unknown>): StartRequest {
  const query = requireString(input, "QueryString", 1, 262144);
  const workGroup = optionalString(input, "WorkGroup") ?? "primary";
  const settings = state.workGroups.get(workGroup);
  if (!settings)
    throw new ApiError("InvalidRequestException", `WorkGroup ${workGroup} is not found.`);
  const parameters = optionalStringArray(input, "ExecutionParameters");
  for (const value of parameters ?? []) {
    if (value.length < 1 || value.length > 1024) {
      throw new ApiError(
        "InvalidRequestException",
        "ExecutionParameters values must be between 1 and 1024 characters long.",
      );
    }
  }
  const context = optionalObject(input, "QueryExecutionContext");
  const database = context ? optionalString(context, "Database") : undefined;
  const catalog = (context ? optionalString(context, "Catalog") : undefined) ?? "AwsDataCatalog";
  const requestedLocation = optionalString(
    optionalObject(input, "ResultConfiguration") ?? {},
    "OutputLocation",
  );
  const outputLocation =
    settings.enforceConfiguration === false && requestedLocation
      ? requestedLocation
      : settings.outputLocation;
  const { bucket, prefix } = parseS3Location(outputLocation, workGroup);
  const reuseByAge = optionalObject(
    optionalObject(input, "ResultReuseConfiguration") ?? {},
    "ResultReuseByAgeConfiguration",
  );
  const reuse = {
    enabled: reuseByAge?.Enabled === true,
    maxAgeMinutes:
      typeof reuseByAge?.MaxAgeInMinutes === "number" ? reuseByAge.MaxAgeInMinutes : 60,
  };
  // The SDK fills in a random token when the caller gives none.
  const token = optionalString(input, "ClientRequestToken") ?? randomUUID();
  if (token.length < 32 || token.length > 128) {
    throw new ApiError(
      "InvalidRequestException",
      "ClientRequestToken must be between 32 and 128 characters long.",
    );
  }
  return {
    query,
    workGroup,
    parameters,
    database,
    catalog,
    outputLocation,
    bucket,
    prefix,
    reuse,
    token,
  };
}

/** What makes two requests with one ClientRequestToken the same request. */
function fingerprintOf(request: StartRequest): string {
  return createHash("sha256")
    .update(
      JSON.stringify([
        request.query,
        request.parameters ?? null,
        request.workGroup,
        request.database ?? null,
        request.catalog,
        request.outputLocation,
      ]),
    )
    .digest("hex");
}

function createExecution(request: StartRequest, fingerprint: string): Execution {
  const id = randomUUID();
  return {
    id,
    token: request.token,
    fingerprint,
    query: request.query,
    parameters: request.parameters,
    workGroup: request.workGroup,
    database: request.database,
    catalog: request.catalog,
    statementType: statementTypeOf(request.query),
    bucket: request.bucket,
    key: `${request.prefix}${id}.csv`,
    reuse: request.reuse,
    state: "QUEUED",
    sequence: 0,
    submitted: new Date(),
    cancelRequested: false,
  };
}

/** A previous successful run of the same request, young enough to reuse (no new file is written). */
function findReusable(state: AthenaState, execution: Execution): Execution | undefined {
  const oldest = Date.now() - execution.reuse.maxAgeMinutes * 60_000;
  const candidates = [...state.executions.values()].filter(
    (other) =>
      other !== execution &&
      other.state === "SUCCEEDED" &&
      other.reusedFrom === undefined &&
      other.workGroup === execution.workGroup &&
      other.query === execution.query &&
      JSON.stringify(other.parameters ?? null) === JSON.stringify(execution.parameters ?? null) &&
      (other.completed?.getTime() ?? 0) >= oldest,
  );
  return candidates.at(-1);
}
