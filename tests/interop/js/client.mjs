// Discovery and requests with the nats.js reference client (@nats-io/services, ADR-32).
//
// usage: node client.mjs NATS_URL [--expect N] [--request SUBJECT]... [--data TEXT]
//
// 1. Sends each --request (payload --data, default "") with nc.request and records the reply's
//    data (UTF-8 text), all headers exactly as received ({name: [values]}) and how the reference
//    library reads it as a service error (ServiceError.toServiceError: {code, message} or null).
// 2. Then PINGs, INFOs and STATSes every service with Svcm(nc).client(). With --expect N each
//    verb stops after N replies (strategy "count"); without it, after 300 ms of silence. Both are
//    bounded by 3 s.
// Prints one JSON object on stdout:
//   {"requests": [{subject, data, headers, service_error} | {subject, error}],
//    "ping": [...], "info": [...], "stats": [...],
//    "started_ms": {instance id: Date.parse(stats.started) or null if JS cannot parse it}}
// The documents are the replies as JSON.parse read them. Exit code 0; 2 on bad usage; 3 when the
// whole run took longer than 15 s (a watchdog, so a hung run never outlives its caller).

import { connect } from "@nats-io/transport-node";
import { ServiceError, Svcm } from "@nats-io/services";

const watchdog = setTimeout(() => {
  process.stderr.write("client.mjs: gave up after 15 s\n");
  process.exit(3);
}, 15000);
watchdog.unref();

function usage(problem) {
  process.stderr.write(`client.mjs: ${problem}\n`);
  process.stderr.write(
    "usage: node client.mjs NATS_URL [--expect N] [--request SUBJECT]... [--data TEXT]\n",
  );
  process.exit(2);
}

const argv = process.argv.slice(2);
const url = argv.shift();
if (!url || url.startsWith("--")) {
  usage("missing NATS_URL");
}
let expect = 0;
let data = "";
const subjects = [];
while (argv.length > 0) {
  const flag = argv.shift();
  const value = argv.shift();
  if (value === undefined) {
    usage(`${flag} needs a value`);
  }
  if (flag === "--expect") {
    expect = Number.parseInt(value, 10);
    if (!(expect > 0)) {
      usage(`--expect must be a positive integer, got ${value}`);
    }
  } else if (flag === "--request") {
    subjects.push(value);
  } else if (flag === "--data") {
    data = value;
  } else {
    usage(`unknown option ${flag}`);
  }
}

function headersOf(msg) {
  const out = {};
  if (msg.headers) {
    for (const key of msg.headers.keys()) {
      out[key] = msg.headers.values(key);
    }
  }
  return out;
}

async function request(nc, subject) {
  try {
    const reply = await nc.request(subject, data, { timeout: 2000 });
    const error = ServiceError.toServiceError(reply);
    return {
      subject,
      data: reply.string(),
      headers: headersOf(reply),
      service_error: error === null ? null : { code: error.code, message: error.message },
    };
  } catch (err) {
    return { subject, error: String(err) };
  }
}

async function gather(iterator) {
  const documents = [];
  for await (const document of await iterator) {
    documents.push(document);
  }
  return documents;
}

const nc = await connect({ servers: url, name: "interop js client" });
const output = { requests: [] };
for (const subject of subjects) {
  output.requests.push(await request(nc, subject));
}

const options =
  expect > 0
    ? { strategy: "count", maxMessages: expect, maxWait: 3000 }
    : { strategy: "stall", stall: 300, maxWait: 3000 };
const client = new Svcm(nc).client(options);
output.ping = await gather(client.ping());
output.info = await gather(client.info());
output.stats = await gather(client.stats());
output.started_ms = {};
for (const stats of output.stats) {
  const parsed = Date.parse(stats.started);
  output.started_ms[stats.id] = Number.isNaN(parsed) ? null : parsed;
}

await nc.close();
process.stdout.write(`${JSON.stringify(output)}\n`);
clearTimeout(watchdog);
