// A Lambda function consuming an encrypted Kinesis stream. The event source
// mapping needs FunctionResponseTypes ["ReportBatchItemFailures"]; the
// function's role needs kms:Decrypt on the key. Set KSSE_KEY_ARNS to the
// KMS key ARN(s) the producers use (comma-separated).
import { KMSClient } from '@aws-sdk/client-kms';
import { Decryptor, lambdaHandler } from 'ksse';

const decryptor = new Decryptor({
  kms: new KMSClient({}),
  allowedKeyArns: (process.env.KSSE_KEY_ARNS ?? '').split(',').filter(Boolean),
});

export const handler = lambdaHandler(decryptor, async (event) => {
  for (const r of event.Records) {
    // r.kinesis.data (base64) and r.kinesis.partitionKey are plaintext here.
    const order = JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString());
    console.log(JSON.stringify({ customer: r.kinesis.partitionKey, order: order.id }));
  }
  return { batchItemFailures: [] };
});
