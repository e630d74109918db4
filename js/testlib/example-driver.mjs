// Runs a Lambda handler module (argv[2]) on the event read from stdin and
// prints the response as the last line, after "RESULT ".
import { pathToFileURL } from 'node:url';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const event = JSON.parse(Buffer.concat(chunks).toString());
const { handler } = await import(pathToFileURL(process.argv[2]).href);
const resp = await handler(event, { awsRequestId: 'example' });
console.log('RESULT ' + JSON.stringify(resp));
