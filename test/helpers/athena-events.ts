/** EventBridge's "Athena Query State Change" event, as the stack's rule delivers it. */
export function athenaStateChange(
  queryExecutionId: string,
  currentState: "FAILED" | "CANCELLED" | "SUCCEEDED",
  workgroupName: string,
) {
  return {
    version: "0",
    id: `evt-${queryExecutionId}-${currentState}`,
    "detail-type": "Athena Query State Change",
    source: "aws.athena",
    account: "123456789012",
    time: "2025-12-11T06:05:00Z",
    region: "us-east-1",
    resources: [],
    detail: {
      versionId: "0",
      currentState,
      previousState: "RUNNING",
      statementType: "DML",
      queryExecutionId,
      workgroupName,
      sequenceNumber: "3",
    },
  };
}
