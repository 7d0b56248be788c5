// A NATS micro-service written with the nats.js reference library (@nats-io/services, ADR-32).
//
// usage: node service.mjs NATS_URL [--iterator]
//
// Service "js-echo" 1.2.3 with a description, metadata and a stats handler; endpoints:
//   echo  subject js.echo, queue group "jsq", metadata {kind: "echo"}: replies with the request data
//   fail  subject js.fail, the service's default queue group "q", no metadata: throws a
//         ServiceError(422, "js says no"), which the library turns into an error reply (and counts)
// With --iterator, instead: service "js-iter" 1.0.0 with one iterator-style endpoint (no handler,
// the idiom the nats.js docs show first) "spin" on js.spin, which busy-waits >= 1 ms per request
// and then echoes; nats.js then reports processing_time / num_requests unrounded in STATS.
// Prints exactly one line "READY <instance id>" on stdout once its subscriptions reached the server.
// Stops (service, then connection) on SIGTERM, SIGINT or EOF on stdin; exit code 0 when clean.
// Diagnostics go to stderr.

import { connect } from "@nats-io/transport-node";
import { ServiceError, Svcm } from "@nats-io/services";

const [url, mode, ...rest] = process.argv.slice(2);
if (!url || url.startsWith("--") || rest.length > 0 || (mode && mode !== "--iterator")) {
  process.stderr.write("usage: node service.mjs NATS_URL [--iterator]\n");
  process.exit(2);
}

async function echoService(nc) {
  const service = await new Svcm(nc).add({
    name: "js-echo",
    version: "1.2.3",
    description: "echo service written with nats.js",
    metadata: { lang: "javascript", library: "@nats-io/services" },
    statsHandler: async (endpoint) => ({ endpoint: endpoint.name, lang: "javascript" }),
  });
  const group = service.addGroup("js", "jsq");
  group.addEndpoint("echo", {
    metadata: { kind: "echo" },
    handler: (err, msg) => {
      if (err === null) {
        msg.respond(msg.data);
      }
    },
  });
  service.addEndpoint("fail", {
    subject: "js.fail",
    handler: () => {
      throw new ServiceError(422, "js says no");
    },
  });
  return service;
}

async function iteratorService(nc) {
  const service = await new Svcm(nc).add({ name: "js-iter", version: "1.0.0" });
  const requests = service.addEndpoint("spin", { subject: "js.spin" });
  (async () => {
    for await (const msg of requests) {
      const start = Date.now();
      while (Date.now() === start) {
        // busy-wait into the next millisecond: a measurable processing time
      }
      msg.respond(msg.data);
    }
  })();
  return service;
}

const nc = await connect({ servers: url, name: "interop js service" });
const service = mode === "--iterator" ? await iteratorService(nc) : await echoService(nc);
await nc.flush(); // the server has every subscription once the PONG is back

let stopping = null;
function stop(reason) {
  if (stopping === null) {
    process.stderr.write(`service.mjs: stopping (${reason})\n`);
    stopping = service
      .stop()
      .then(() => nc.drain())
      .then(
        () => process.exit(0),
        (err) => {
          process.stderr.write(`service.mjs: stop failed: ${err}\n`);
          process.exit(1);
        },
      );
  }
  return stopping;
}

process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
process.stdin.on("end", () => stop("stdin closed"));
process.stdin.on("error", () => stop("stdin error"));
process.stdin.resume();
service.stopped.then((err) => {
  if (stopping === null) {
    process.stderr.write(`service.mjs: service stopped by itself: ${err}\n`);
    process.exit(1);
  }
});

process.stdout.write(`READY ${service.info().id}\n`);
