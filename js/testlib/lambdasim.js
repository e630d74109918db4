/**
 * A simulation of the Lambda Kinesis event source mapping with
 * ReportBatchItemFailures: events are built from real GetRecords records,
 * and after each invocation a shard resumes at the lowest sequence number
 * reported for it, or after the batch.
 */

/**
 * Builds the Lambda event record of a GetRecords record.
 * @param {string} streamArn
 * @param {string} shardId
 * @param {any} r a GetRecords record
 */
export function eventRecord(streamArn, shardId, r) {
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: r.PartitionKey,
      sequenceNumber: r.SequenceNumber,
      data: Buffer.from(r.Data).toString('base64'),
      approximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime?.() ?? Date.now()) / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `${shardId}:${r.SequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::123456789012:role/lambda',
    awsRegion: 'us-east-1',
    eventSourceARN: streamArn,
  };
}

/**
 * Runs handler until every shard is consumed (or maxInvocations).
 * @param {(event: any, ctx: any) => Promise<{batchItemFailures: {itemIdentifier: string}[]}>} handler
 * @param {string} streamArn
 * @param {{shardId: string, records: any[]}[]} shards
 * @param {{batchSize?: number, maxInvocations?: number}} [opts]
 * @returns {Promise<{invocations: number, responses: any[]}>}
 */
export async function simulate(handler, streamArn, shards, { batchSize = 100, maxInvocations = 20 } = {}) {
  const pos = shards.map(() => 0);
  const responses = [];
  let invocations = 0;
  while (shards.some((s, i) => pos[i] < s.records.length)) {
    if (invocations === maxInvocations) throw new Error(`not consumed after ${maxInvocations} invocations`);
    const Records = [];
    const taken = shards.map((s, i) => {
      const rs = s.records.slice(pos[i], pos[i] + batchSize);
      Records.push(...rs.map((r) => eventRecord(streamArn, s.shardId, r)));
      return rs.length;
    });
    invocations++;
    const resp = await handler({ Records }, { awsRequestId: `inv-${invocations}` });
    responses.push(resp);
    const failed = new Set(resp.batchItemFailures.map((f) => f.itemIdentifier));
    shards.forEach((s, i) => {
      const batch = s.records.slice(pos[i], pos[i] + taken[i]);
      const j = batch.findIndex((r) => failed.has(r.SequenceNumber));
      pos[i] += j >= 0 ? j : taken[i];
    });
  }
  return { invocations, responses };
}
