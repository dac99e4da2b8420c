import { ApiError } from "../errors";
import { requireString } from "../input";
import type { AthenaState } from "../state";

export function getWorkGroup(state: AthenaState, input: Record<string, unknown>): unknown {
  const name = requireString(input, "WorkGroup", 1, 128);
  const settings = state.workGroups.get(name);
  if (!settings) throw new ApiError("InvalidRequestException", `WorkGroup ${name} is not found.`);
  return {
    WorkGroup: {
      Name: name,
      State: "ENABLED",
      Configuration: {
        ResultConfiguration: { OutputLocation: settings.outputLocation },
        EnforceWorkGroupConfiguration: settings.enforceConfiguration !== false,
        PublishCloudWatchMetricsEnabled: true,
        RequesterPaysEnabled: false,
        EngineVersion: {
          SelectedEngineVersion: "AUTO",
          EffectiveEngineVersion: "Athena engine version 3",
        },
      },
      Description: "Local Athena stand-in",
      CreationTime: state.startedAt.getTime() / 1000,
    },
  };
}
